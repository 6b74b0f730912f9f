"""Induction heads / ICL phase change (Olsson et al. 2022) as a reproducible pipeline.

    snakemake --cores 2                                          # the default, embedded run
    snakemake --cores 2 --config overrides='[train.steps=500]'   # Hydra overrides -> results/<slug>/
    snakemake --cores 2 --config study=olsson                    # a declared study (conf/study/olsson.yaml)
    snakemake --cores 2 --config sweep='[seed=0,1,2]'            # an ad hoc study
    snakemake --cores 2 --config paper=main                      # a paper's runs and studies (conf/paper/main.yaml)
"""

import sys

from snakemake.utils import min_version

min_version("8.0")
sys.path.insert(0, workflow.basedir)  # the pipeline package, installed or not


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/hub.smk"
include: "rules/analysis.smk"
include: "rules/figures.smk"
include: "rules/provenance.smk"
include: "rules/study.smk"
include: "rules/paper.smk"


# Seconds-long bookkeeping stays on the submitting node instead of waiting in a cluster queue.
localrules:
    all,
    check_checkpoints,
    collect_table,
    provenance,


rule all:
    input:
        GRAPH.final_outputs(FORMATS),
        PAPER_OUTPUTS,
