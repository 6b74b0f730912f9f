"""The DAG's logic, out of the Snakefile: from the planned runs (one run, or every member of a study) to every
path, part, checkpoint list and data key the rules read, and the steps split into parts whose rules one loop
generates (rules/analysis.smk). Torch-free and pure: tests/test_dag.py checks it without Snakemake.

The generated rules, by name (`snakemake --list-rules` lists them all; tests/test_dag.py checks this list):
- per kind (its KIND): its data step `data_rule` (prepare_corpus, prepare_regression, prepare_markov), and its
  score step's `score_part<rule_suffix>` and merge `score_checkpoints<rule_suffix>`;
- the LLC's `llc_part` and merge `estimate_llc`; each kind's own steps (e.g. `causal_part` and
  merge `causal_checkpoints`), from `part_steps()` below;
- per figure module (pipeline.outputs.FIGURE_MODULES): `plot_<producer>` (plot_figures, plot_causal_figures,
  plot_llc_figures, plot_regression_figures, plot_markov_figures);
- with a paper (rules/paper.smk): `paper_<section>` per section of `pipeline.paper_plan.PaperPlan`, and `paper`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from pipeline.config import Run, Study
from pipeline.interventions import describe, reads
from pipeline.outputs import (
    HTML_FIGURES,
    STEP_CONFIG,
    has_table,
    run_figures,
    run_tables,
    study_figure_names,
    study_tables,
)
from pipeline.plan import checkpoint_dirs
from pipeline.registry import KINDS, kind_of
from pipeline.schedule import checkpoint_name, interleaved, segments


@dataclass(frozen=True)
class PartStep:
    """A step run as jobs over shares of a model's checkpoints (rule `part_rule`), merged into the model's tables
    by rule `merge_rule`: the score step of each kind, the LLC, and each kind's own steps."""
    name: str  # the step: its tables' producer (pipeline.outputs.TABLES), resources and log names
    part_rule: str
    merge_rule: str
    module: str  # its CLI
    kinds: tuple[str, ...]  # whose models run it
    config: tuple[str, ...]  # the config sections its jobs read (their params)
    parts: str  # how its checkpoints are shared out: "training_jobs" (scored as each ends), "llc", or a jobs.* key
    reads: tuple[str, ...] = ()  # the model's files it reads: "integrity", "losses", "heads", "window"
    env: str = ""  # environment of its shell command

    @property
    def writes_losses(self) -> bool:
        return self.name == "score_checkpoints"

    def options(self, inputs, outputs, schedule: list[str]) -> str:
        """Its CLI's options beyond the shared ones: the model's files it reads, where the score step writes the
        stacked losses, the LLC's whole checkpoint schedule."""
        options = [f"--{read} {inputs[read]}" for read in self.reads if read != "integrity"]
        options += [f"--losses-out {outputs.losses}"] if self.writes_losses else []
        options += [f"--schedule {' '.join(schedule)}"] if self.name == "estimate_llc" else []
        return " ".join(options)


def part_steps() -> list[PartStep]:
    """Every step split into parts: each kind's score step, the LLC, then each kind's own steps."""
    every = tuple(KINDS)
    steps = [PartStep("score_checkpoints", f"score_part{k.rule_suffix}", f"score_checkpoints{k.rule_suffix}",
                      k.score_module, (k.name,), k.score_config, "training_jobs", reads=("integrity",))
             for k in KINDS.values()]
    steps.append(PartStep("estimate_llc", "llc_part", "estimate_llc", "pipeline.llc", every,
                          STEP_CONFIG["estimate_llc"], "llc", env="TQDM_DISABLE=1"))
    steps += [PartStep(name, step.part_rule, name, step.module, (k.name,), step.config, f"jobs.{step.jobs}",
                       reads=step.reads, env="TQDM_DISABLE=1") for k in KINDS.values() for name, step in k.steps.items()]
    return steps


class Paths:
    """The planned runs' paths, parts, checkpoint lists and data keys, under `results`."""

    def __init__(self, runs: dict[str, Run], results: Path):
        self.runs, self.results = runs, Path(results)

    def configs(self, run: str) -> dict:
        return self.runs[run].configs

    def first_model(self, run: str) -> str:
        return next(iter(self.configs(run)))

    def models(self) -> list[str]:
        return [m for r in self.runs.values() for m in r.configs]

    def sources(self, source: str) -> list[str]:
        """The models whose checkpoints come from `source` (trained, hub)."""
        return [m for r in self.runs.values() for m, c in r.configs.items() if c.model.source == source]

    def models_of(self, kinds) -> list[str]:
        return [m for r in self.runs.values() for m, c in r.configs.items() if kind_of(c).name in kinds]

    def model_dir(self, run: str, model: str) -> Path:
        return self.results / run / "models" / model

    def model_segments(self, run: str, model: str) -> dict[str, list[int]]:
        """A trained model's training jobs: segment name -> the checkpoint steps it writes."""
        cfg = self.configs(run)[model]
        return segments(cfg.train, cfg.jobs.train_split_at)

    def checkpoint_dir(self, run: str, model: str) -> Path:
        return self.model_dir(run, model) / "checkpoints"

    def previous_segment(self, run: str, model: str, segment: str) -> list[str]:
        """The training job `segment` continues from (its state, left in train_state/): none for the first."""
        names = list(self.model_segments(run, model))
        at = names.index(segment)
        return [str(self.checkpoint_dir(run, model) / names[at - 1])] if at else []

    def checkpoint_files(self, run: str, model: str) -> list[str]:
        """A model's checkpoints in order: the training schedule's, or one per configured hub checkpoint index."""
        cfg, directory = self.configs(run)[model], self.checkpoint_dir(run, model)
        if cfg.model.source == "hub":
            return [str(directory / f"hub_{i:03d}.safetensors") for i in range(len(cfg.model.hub.checkpoints))]
        return [file for _, files in self.score_parts(run, model).values() for file in files]

    def score_parts(self, run: str, model: str) -> dict[str, tuple[list[str], list[str]]]:
        """part -> (what its checkpoints come from, the checkpoints): one per training job, scored as soon as that
        job ends, or one over a hub model's fetched files."""
        if self.configs(run)[model].model.source == "hub":
            files = self.checkpoint_files(run, model)
            return {"all": (files, files)}
        directory = self.checkpoint_dir(run, model)
        return {segment: ([str(directory / segment)], [str(directory / segment / checkpoint_name(s)) for s in steps])
                for segment, steps in self.model_segments(run, model).items()}

    def llc_parts(self, run: str, model: str) -> dict[str, tuple[list[str], list[str]]]:
        """Each score part's checkpoints dealt into `jobs.llc_parts` jobs side by side, so the SGLD chains of a
        training job's checkpoints do not queue behind one another on one core."""
        n = self.configs(run)[model].jobs.llc_parts
        return {f"{part}_{share}": (sources, files) for part, (sources, checkpoints) in self.score_parts(run, model).items()
                for share, files in interleaved(checkpoints, n).items()}

    def checkpoint_sources(self, run: str, model: str) -> list[str]:
        """What a model's checkpoints come from: each fetched hub file, or the training jobs' directories."""
        return [source for sources, _ in self.score_parts(run, model).values() for source in sources]

    def parts(self, step: PartStep, run: str, model: str) -> dict[str, tuple[list[str], list[str]]]:
        """A step's jobs for one model: part -> (what its checkpoints come from, its checkpoints)."""
        if step.parts == "training_jobs":
            return self.score_parts(run, model)
        if step.parts == "llc":
            return self.llc_parts(run, model)
        n = self.configs(run)[model].jobs[step.parts.removeprefix("jobs.")]
        sources = self.checkpoint_sources(run, model)
        return {part: (sources, files) for part, files in interleaved(self.checkpoint_files(run, model), n).items()}

    def priority(self, run: str, model: str) -> float:
        """Priority of a model's analysis jobs: the model that trains longest (steps x layers, a proxy of its
        cost) ends the run, so its analysis goes first once ready; training jobs (priority 10) go before all."""
        cost = lambda c: c.train.steps * c.model.n_layers if c.model.source == "trained" else 0  # noqa: E731
        return cost(self.configs(run)[model]) / max(1, *(cost(c) for r in self.runs.values()
                                                          for c in r.configs.values()))

    def data_keys(self, run: str, kind: str) -> dict[str, str]:
        """A run's data directories of one kind -> the first model reading each (the kind's data key: e.g.
        one per tokenizer for a corpus tokenized once per tokenizer, one for a sampler's run)."""
        keys = {}
        for model, cfg in self.configs(run).items():
            if kind_of(cfg).name == kind:
                keys.setdefault(kind_of(cfg).data_key(cfg), model)
        return keys

    def data_dir(self, run: str, model: str) -> Path:
        cfg = self.configs(run)[model]
        return self.results / run / "data" / kind_of(cfg).data_key(cfg)

    def data_files(self, run: str, model: str) -> list[str]:
        """Every file the model's data step writes."""
        return [str(self.data_dir(run, model) / f) for f in kind_of(self.configs(run)[model]).data_files]



class Dag(Paths):
    """The planned runs' paths (above), and what the rules and the targets need beyond them: the files of
    interventions, the captions' notes, the tables collected, every output of a run or a study.

    `targets` are the runs whose every output is asked for: the one run planned, or a paper's runs; a study's
    members, and the runs read for their checkpoints, are built as far as the studies need."""

    def __init__(self, runs: dict[str, Run], results: Path, studies: list[Study] = (), targets=None):
        super().__init__(runs, results)
        self.studies = [study for study in studies if study]
        self.targets = list(targets) if targets is not None else ([] if self.studies else list(runs)[:1])

    @staticmethod
    def members(study: Study) -> list[str]:
        return [member.name for member in study.members]

    @cached_property
    def made(self) -> dict[Path, str]:
        """Every checkpoint a planned run trains -> the training job's directory that writes it (a rule output)."""
        return {path: str(directory) for planned in self.runs.values()
                for path, (_, directory) in checkpoint_dirs(planned, self.results).items()}

    def intervention_reads(self, run: str, model: str) -> list[str]:
        """What a model's interventions read (clamp_from's reference checkpoints), inputs of its training: the
        training job of a planned run that writes a reference (the cross-run edge, pipeline.plan), else the file."""
        read = reads(self.configs(run)[model].train.interventions)
        return [self.made.get(Path(path), path) for path in read] if read else []

    def external_reads(self, run: str, model: str) -> list[str]:
        """The files a model's interventions read that no planned run writes (their bytes are a training param)."""
        return [path for path in reads(self.configs(run)[model].train.interventions) if Path(path) not in self.made]

    def run_interventions(self, run: str) -> str:
        """What each model of the run had clamped or frozen in training ('' if nothing): the captions say so."""
        clamped = {m: c.train.interventions for m, c in self.configs(run).items() if c.train.interventions}
        return "; ".join(f"{m}: {describe(specs)}" for m, specs in clamped.items())

    def study_interventions(self, study: Study) -> str:
        """What each variant of the study had clamped or frozen in training, named by its arm or swept values."""
        described = {", ".join(f"{k}={v}" for k, v in run.values.items() if k != study.band):
                     self.run_interventions(run.name) for run in study.members}
        return "; ".join(f"{variant}: {text}" for variant, text in described.items() if text)

    def collected(self, run: str, table: str) -> list[Path]:
        """The per-model files a run table is collected from."""
        configs = self.configs(run)
        if table == "train_log":
            return [self.model_dir(run, m) / "train_log" / f"{s}.parquet" for m, c in configs.items()
                    if c.model.source == "trained" for s in self.model_segments(run, m)]
        return [self.model_dir(run, m) / f"{table}.parquet" for m, c in configs.items() if has_table(table, c)]

    def figure_files(self, root: Path, name: str, formats) -> list[str]:
        return [str(Path(root) / "figures" / f"{name}.{ext}") for ext in formats]

    def run_outputs(self, run: str, formats) -> list[str]:
        """Every table and figure of one run (opt-in analyses when switched on), and its provenance."""
        root, cfgs = self.results / run, list(self.configs(run).values())
        figures = run_figures(cfgs)
        files = [f for name in figures for f in self.figure_files(root, name, formats)]
        files += [str(root / "figures" / f"{name}.html") for name in HTML_FIGURES if name in figures]
        return files + [str(root / "tables" / f"{t}.csv") for t in run_tables(cfgs)] + [str(root / "provenance.json")]

    def kind_of_run(self, run: str) -> str:
        return kind_of(self.configs(run)[self.first_model(run)]).name

    def study_config(self, study: Study):
        """The config of the study's first member's first model: it carries what the study shares."""
        first = study.members[0]
        return first.configs[self.first_model(first.name)]

    def study_kind(self, study: Study) -> str:
        return kind_of(self.study_config(study)).name

    def study_llc(self, study: Study) -> bool:
        """Whether every member model has the LLC: then the study has its bands and the stages that recur."""
        return all(has_table("llc_stages", c) for run in study.members for c in run.configs.values())

    def study_outputs(self, study: Study, formats) -> list[str]:
        root, kind, llc = self.results / study.name, self.study_kind(study), self.study_llc(study)
        return ([f for name in study_figure_names(kind, llc) for f in self.figure_files(root, name, formats)]
                + [str(root / "tables" / f"{t}.csv") for t in study_tables(kind, llc)])

    def final_outputs(self, formats) -> list[str]:
        """Each study's aggregated tables and figures (its members' own figures are one `snakemake` away), and
        every output of the target runs."""
        return ([f for study in self.studies for f in self.study_outputs(study, formats)]
                + [f for run in self.targets for f in self.run_outputs(run, formats)])
