"""A paper's sections over the DAG (rules/paper.smk): what each section reads and writes, and the spec its pages
are rendered from (results/paper/<name>/paper.yaml, read by pipeline/paper.py). Torch-free, like pipeline/dag.py."""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path

from omegaconf import OmegaConf

from pipeline.config import Study, identity, unbounded
from pipeline.dag import Dag
from pipeline.outputs import has_table
from pipeline.plan import Paper
from pipeline.registry import kind_of


class PaperPlan:
    """The sections of `paper` (its runs by label, its studies, the figure across kinds) over the DAG's runs."""

    def __init__(self, dag: Dag, paper: Paper):
        self.dag, self.paper = dag, paper
        self.studies = {study.name: study for study in dag.studies}

    def tables(self, run: str) -> list[str]:
        """The run tables its section and the figure across kinds read: head scores, the window, the LLC and its
        stages (when the run has them), what the kind's distance to the optimal strategy reads, its summaries'."""
        cfg = self.dag.configs(run)[self.dag.first_model(run)]
        llc = ["llc", "llc_stages"] if has_table("llc_stages", cfg) else []
        summaries = [table for table, _ in self.summaries(run).values()]
        return list(dict.fromkeys(["head_scores", "phase_window", *llc, *kind_of(cfg).comparison.distance_tables,
                                   *summaries]))

    def summaries(self, run: str) -> dict[str, list[str]]:
        """The kind's summaries of the run tables it has, each a table of the run's section: name -> [its run table,
        "module:function"]."""
        cfg = self.dag.configs(run)[self.dag.first_model(run)]
        return {name: list(source) for name, source in kind_of(cfg).run_summaries.items() if has_table(source[0], cfg)}

    def run_section(self, run: str) -> dict:
        return {"type": "run", "name": run, "kind": self.dag.kind_of_run(run), "members": [run],
                "identity": identity(self.dag.configs(run))[:16], "tables": self.tables(run),
                "summaries": self.summaries(run)}

    def study_section(self, study: Study) -> dict:
        configs = {f"{member.name}/{model}": cfg for member in study.members for model, cfg in member.configs.items()}
        return {"type": "study", "name": study.name, "kind": self.dag.study_kind(study),
                "members": self.dag.members(study), "identity": identity(configs)[:16]}

    @cached_property
    def spec(self) -> dict:
        """Its sections in order — each run by label (kind, config identity, the tables its page and the figure
        across kinds read), each study (kind, members, identity), each with the figures the docs show from it (name
        -> file under results/) — then the figure across kinds: its run columns and, per column, the study whose
        seed bands it draws and their variants."""
        sections = {label: self.run_section(run) for label, run in self.paper.runs.items()}
        sections.update({study.name: self.study_section(study) for study in self.dag.studies})
        for key, section in sections.items():
            section["figures"] = {figure: f"{section['name']}/figures/{name}.png"
                                  for figure, (source, name) in self.paper.figures.items() if source == key}
        bands = {label: {"study": study, "variants": self.band_variants(self.paper.runs[label], self.studies[study])}
                 for label, study in self.paper.bands.items()}
        whole = hashlib.sha256(str([sections, bands]).encode()).hexdigest()[:16]
        sections["kinds"] = {"type": "kinds", "name": "kinds", "columns": list(self.paper.runs), "bands": bands,
                             "members": list(self.paper.runs.values()), "identity": whole, "figures": {}}
        return {"name": self.paper.name, "identity": whole, "sections": sections}

    def band_variants(self, run: str, study: Study) -> list[dict]:
        """The study's variants that are the run's models: per model, its name and its values of the study's
        swept keys (the band key aside), as the study's band tables name them (a null as inf, pipeline.study.stack)."""
        keys = [k for k in study.swept if k not in (study.band, "model")]
        return [{"model": model, **{k: unbounded(OmegaConf.select(cfg, k)) for k in keys}}
                for model, cfg in self.dag.configs(run).items()]

    def section_inputs(self, key: str, formats) -> list[str]:
        """What a section reads: a run's whole output (its provenance is written last), its tables and figures; a
        study's outputs and its members as far as the study reads them (their train_log, for the cost), not their
        own causal steps and figures; the figure across kinds, its columns' tables and its bands' studies."""
        results, section = self.dag.results, self.spec["sections"][key]
        if section["type"] == "kinds":
            columns = [self.spec["sections"][label] for label in section["columns"]]
            bands = [self.studies[band["study"]] for band in section["bands"].values()]
            return [*(str(results / c["name"] / "tables" / f"{t}.csv") for c in columns for t in c["tables"]),
                    *(f for study in bands for f in self.dag.study_outputs(study, formats))]
        if section["type"] == "run":
            reads = [results / section["name"] / "provenance.json",
                     *(results / section["name"] / "tables" / f"{t}.csv" for t in section["tables"])]
        else:
            reads = [*(results / run / "tables" / "train_log.csv" for run in section["members"]),
                     *self.dag.study_outputs(self.studies[section["name"]], formats)]
        return [str(f) for f in [*reads, *(results / path for path in section["figures"].values())]]

    def section_outputs(self, paper_dir: Path, key: str) -> list[str]:
        """What a section writes under the paper's directory (pipeline/paper.py)."""
        section, files = self.spec["sections"][key], [f"sections/{key}.md", f"sections/{key}.json"]
        files += ["figures/kinds.png"] if section["type"] == "kinds" else [f"tables/cost_{key}.csv"]
        files += [f"tables/{key}_{name}.csv" for name in section.get("summaries", {})]
        return [str(paper_dir / f) for f in [*files, *(f"figures/{figure}.png" for figure in section["figures"])]]
