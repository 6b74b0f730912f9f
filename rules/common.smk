"""Resolve the run (or every member of a study) once and derive every path of the DAG from it.

Every run-level path holds the {run} wildcard: a study's members are ordinary runs side by side in one DAG.
Each run's resolved config is written once to results/<run>/config.yaml and every step reads it. The logic
(paths, parts, checkpoint lists, data keys) is pipeline/dag.py's, unit-tested; these are its wildcard adapters.
"""

import os
import re
import sys
from pathlib import Path

import pandas as pd
import yaml

from pipeline.config import identity, section
from pipeline.plan import plan, plan_paper
from pipeline.dag import Dag, part_steps
from pipeline.paper_plan import PaperPlan
from pipeline.paper_tables import job_timings
from pipeline.io import UserError, atomic_path, sha256_file
from pipeline.registry import KINDS, kind_of
from pipeline.outputs import (FIGURE_MODULES, FIGURES, HTML_FIGURES, STUDY_FIGURES, TABLES, caption,
                              study_figure_names, study_member_tables, study_tables, tables_of)

try:
    if config.get("paper"):  # a paper's runs and studies (conf/paper/<name>.yaml)
        PAPER, RUNS = plan_paper(str(config["paper"]))
        STUDIES, TARGETS = PAPER.studies, list(PAPER.runs.values())
    else:  # one study (--config study=NAME or sweep=...) or one run
        STUDY, RUNS = plan(config.get("study"), config.get("sweep"), config.get("overrides"))
        PAPER, STUDIES, TARGETS = None, [STUDY] if STUDY else [], None
except UserError as err:
    sys.exit(f"error: {err}")
CFG = next(iter(next(iter(RUNS.values())).configs.values()))  # results_dir, resources, figures: shared
# What the report's introduction names: the study and each run with the sha256 of its resolved configs.
config["report"] = {"study": ", ".join(study.name for study in STUDIES) or None,
                    "runs": {name: identity(run.configs)[:16] for name, run in RUNS.items()}}
RESULTS = Path(CFG.results_dir)
GRAPH = Dag(RUNS, RESULTS, STUDIES, TARGETS)  # the DAG's logic (pipeline/dag.py); "DAG" is a name Snakemake itself uses
FORMATS = CFG.figures.formats
RUN = RESULTS / "{run}"
MODEL = RUN / "models" / "{model}"  # a model's directory, in a rule's paths


def write_if_changed(path: Path, text: str):
    """Write a file (atomically) only when its content changes. Done while the DAG is built, before any
    job: a job writing it would hide the params-triggered reruns of every rule that reads it."""
    if not path.is_file() or path.read_text() != text:
        with atomic_path(path) as tmp:
            tmp.write_text(text)


try:
    for name, run in RUNS.items():  # each run's resolved config, read by every step of the run
        write_if_changed(RESULTS / name / "config.yaml", run.to_yaml())
except OSError as err:  # plan() checked the directories; this is what changed since, or a full disk
    sys.exit(f"error: cannot write {err.filename} ({err.strerror}); check results_dir={RESULTS} and its space")
# Every step runs `python -m pipeline.<step>` with the repository on the path: the driver's interpreter, or with
# --software-deployment-method conda, the rules' environment (environment.yml) that Snakemake activates first.
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")]))
ENVIRONMENT = "../environment.yml"  # each rule's conda environment (relative to rules/)


envvars:
    "PATH",
    "PYTHONPATH",


def one_of(names):
    """A wildcard regex matching exactly these names (nothing, for an empty list)."""
    return "|".join(re.escape(n) for n in sorted(set(names), key=len, reverse=True)) or "(?!)"


def configs(run):
    return GRAPH.configs(run)


wildcard_constraints:
    run=one_of(RUNS),
    model=one_of(GRAPH.models()),


def run_config(wc):
    """Every step reads its model's resolved config from the run's config.yaml, an ancient() input: only
    the config sections a rule declares in params (not the file's mtime) trigger its rerun."""
    return ancient(str(RESULTS / wc.run / "config.yaml"))


def resources_of(rule_name):
    """The rule's resources from conf/config.yaml (falling back to `default`)."""
    return dict(CFG.resources.get(rule_name, CFG.resources.default))


def params_of(*keys):
    """Input function: the config sections a rule depends on, as a Snakemake param (a change reruns it).
    Rules without a {model} wildcard read the run's first model, whose config carries the shared sections."""
    return lambda wc: section(configs(wc.run)[wc.get("model", GRAPH.first_model(wc.run))], *keys)


def intervention_reads(wc):
    return GRAPH.intervention_reads(wc.run, wc.model)


def training_params(wc):
    """A training job's param: its config sections, then the sha256s of the files its interventions read that no
    planned run writes, when there are any (a reference replaced by other bytes retrains the model clamped from it;
    its mtime would not). A reference a planned run writes is an edge of the DAG instead. Runs that read none keep
    the param they had."""
    digests = [sha256_file(path) for path in GRAPH.external_reads(wc.run, wc.model)]
    return params_of("data", "model", "train", "seed")(wc) + (f" reads {digests}" if digests else "")


def shared_config_args(run):
    """CLI config arguments of the steps without a {model} wildcard — the run's first model's config, which
    carries the shared sections (figures, analysis defaults)."""
    return f"--run-config {RESULTS / run / 'config.yaml'} --model {GRAPH.first_model(run)}"


def model_dir(wc):
    """A model's directory, in an input function or param."""
    return GRAPH.model_dir(wc.run, wc.model)


def critical_first(wc):
    return GRAPH.priority(wc.run, wc.model)


def checkpoint_inputs(wc):
    return GRAPH.checkpoint_sources(wc.run, wc.model)


def data_dir(wc):
    return GRAPH.data_dir(wc.run, wc.model)


def data_files(wc):
    """Input function: every file the model's data step writes."""
    return GRAPH.data_files(wc.run, wc.model)


def previous_segment(wc):
    """The training job this one continues from (its state, left in train_state/), none for the first."""
    return GRAPH.previous_segment(wc.run, wc.model, wc.segment)


def part_dir(wc, step):
    """Where one job of a step split into parts writes its tables."""
    return model_dir(wc) / "parts" / step / wc.part


def integrity_first(wc):
    """Hub checkpoints are checked for duplicates before they are scored (refused there when set to error);
    a trained model's are scored as its training jobs end, and checked before the merge."""
    source = configs(wc.run)[wc.model].model.source
    return [str(model_dir(wc) / "integrity.parquet")] if source == "hub" else []


def report_figures(root, registry, module):
    """A figure rule's outputs; the PNGs go into `snakemake --report` with its caption (pipeline.outputs.caption)."""
    outputs = [report(f, caption=str(caption(name)), category=registry[name][1]) if f.endswith(".png") else f
               for name, (producer, _) in registry.items() if producer == module
               for f in GRAPH.figure_files(root, name, FORMATS)]
    outputs += [report(str(Path(root) / "figures" / f"{name}.html"), caption=str(caption(f"{name}_html")),
                       category=registry[name][1]) for name, producer in HTML_FIGURES.items()
                if producer == module and name in registry]
    return outputs


onsuccess:
    table = pd.concat([job_timings(RESULTS / run).assign(job=lambda t, run=run: run + "/" + t.job) for run in RUNS])
    if len(table):
        print(f"\nPer-step wall times ({RESULTS}):")
        print(table[["job", "s", "max_rss"]].rename(columns={"s": "wall_s", "max_rss": "max_rss_mb"})
              .to_string(index=False, float_format="%.1f"))
