"""Resolve the run (or every member of a study) once and derive every path of the DAG from it.

Every run-level path holds the {run} wildcard: a study's members are ordinary runs side by side in one DAG.
Each run's resolved config is written once to results/<run>/config.yaml and every step reads it.
"""

import re
import shlex
import sys
from pathlib import Path

import pandas as pd
import yaml

from pipeline.config import identity, plan, section
from pipeline.interventions import describe, reads
from pipeline.io import UserError, atomic_path, sha256_file
from pipeline.kinds import KINDS, kind_of
from pipeline.outputs import (FIGURE_INPUTS, FIGURES, HTML_FIGURES, STEP_CONFIG, STUDY_FIGURES, TABLES, caption,
                              has_table, run_figures, run_tables, study_figure_names, study_member_tables, study_tables,
                              tables_of)
from pipeline.schedule import checkpoint_name, interleaved, segments

try:
    STUDY, RUNS = plan(config.get("study"), config.get("sweep"), config.get("overrides"))
except UserError as err:
    sys.exit(f"error: {err}")
CFG = next(iter(next(iter(RUNS.values())).configs.values()))  # results_dir, resources, figures: shared
# What the report's introduction names: the study and each run with the sha256 of its resolved configs.
config["report"] = {"study": STUDY.name if STUDY else None,
                    "runs": {name: identity(run.configs)[:16] for name, run in RUNS.items()}}
RESULTS = Path(CFG.results_dir)
RUN = RESULTS / "{run}"
MODEL = RUN / "models" / "{model}"  # a model's directory, in a rule's paths
TEE = "2>&1 | tee {log}"  # the end of every step's shell command: its output to the terminal and its log


def model_dir(wc):
    """A model's directory, in an input function or param."""
    return RESULTS / wc.run / "models" / wc.model


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
PY = shlex.quote(sys.executable)


def one_of(names):
    """A wildcard regex matching exactly these names (nothing, for an empty list)."""
    return "|".join(re.escape(n) for n in sorted(set(names), key=len, reverse=True)) or "(?!)"


def configs(run):
    return RUNS[run].configs


def sources(source):
    return [m for r in RUNS.values() for m, c in r.configs.items() if c.model.source == source]


def models_of_kind(kind):
    return [m for r in RUNS.values() for m, c in r.configs.items() if kind_of(c).name == kind]


def kind_of_model(run, model):
    return kind_of(configs(run)[model])


wildcard_constraints:
    run=one_of(RUNS),
    model=one_of([m for r in RUNS.values() for m in r.configs]),


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
    return lambda wc: section(configs(wc.run)[wc.get("model", first_model(wc.run))], *keys)


def run_interventions(run):
    """What each model of the run had clamped or frozen in training ('' if nothing): the figures' captions say so."""
    clamped = {m: c.train.interventions for m, c in configs(run).items() if c.train.interventions}
    return "; ".join(f"{m}: {describe(specs)}" for m, specs in clamped.items())


def study_interventions(study):
    """What each variant of a study had clamped or frozen in training, named by its arm or swept values ('' if
    nothing): the study figures' captions say so."""
    described = {", ".join(f"{k}={v}" for k, v in run.values.items() if k != study.band): run_interventions(name)
                 for name, run in RUNS.items()}
    return "; ".join(f"{variant}: {text}" for variant, text in described.items() if text)


def intervention_reads(wc):
    """The files a model's interventions read (clamp_from's reference checkpoints): inputs of its training."""
    return reads(configs(wc.run)[wc.model].train.interventions)


def training_params(wc):
    """A training job's param: its config sections, then the sha256s of the files its interventions read when
    there are any (a reference replaced by other bytes retrains the model clamped from it; its mtime would not,
    a directory output's being its newest file's). Runs that read none keep the param they had."""
    digests = [sha256_file(path) for path in intervention_reads(wc)]
    return params_of("data", "model", "train", "seed")(wc) + (f" reads {digests}" if digests else "")


def first_model(run):
    return next(iter(configs(run)))


def first_config(run):
    """The config of the run's first model: it carries the sections every model of a run shares."""
    return configs(run)[first_model(run)]


def shared_config_args(run):
    """CLI config arguments of a rule without a {model} wildcard: the run's first model's config, which
    carries the shared sections (figures, analysis defaults)."""
    return f"--run-config {RESULTS / run / 'config.yaml'} --model {first_model(run)}"


def model_segments(run, model):
    """A trained model's training jobs: segment name -> the checkpoint steps it writes."""
    cfg = configs(run)[model]
    return segments(cfg.train, cfg.jobs.train_split_at)


def checkpoint_dir(run, model):
    return RESULTS / run / "models" / model / "checkpoints"


def checkpoint_files(run, model):
    """A model's checkpoints in order: the training schedule's, or one per configured hub checkpoint index."""
    cfg, directory = configs(run)[model], checkpoint_dir(run, model)
    if cfg.model.source == "hub":
        return [str(directory / f"hub_{i:03d}.safetensors") for i in range(len(cfg.model.hub.checkpoints))]
    return [str(directory / segment / checkpoint_name(s)) for segment, steps in model_segments(run, model).items()
            for s in steps]


def score_parts(run, model):
    """score_checkpoints's jobs, part -> (what its checkpoints come from, the checkpoints): one per training
    job, scored as soon as that job ends, or one over a hub model's fetched files."""
    if configs(run)[model].model.source == "hub":
        files = checkpoint_files(run, model)
        return {"all": (files, files)}
    directory = checkpoint_dir(run, model)
    return {segment: ([str(directory / segment)], [str(directory / segment / checkpoint_name(s)) for s in steps])
            for segment, steps in model_segments(run, model).items()}


def causal_parts(run, model):
    """causal_checkpoints's jobs, side by side: part -> every n-th checkpoint (jobs.causal_parts)."""
    return interleaved(checkpoint_files(run, model), configs(run)[model].jobs.causal_parts)


def llc_parts(run, model):
    """estimate_llc's jobs: each score part's checkpoints dealt into `jobs.llc_parts` jobs side by side, so the
    SGLD chains of a training job's checkpoints do not queue behind one another on one core."""
    n = configs(run)[model].jobs.llc_parts
    return {f"{part}_{share}": (sources, files) for part, (sources, checkpoints) in score_parts(run, model).items()
            for share, files in interleaved(checkpoints, n).items()}


def checkpoint_sources(run, model):
    """What a model's checkpoints come from: each fetched hub file, or the training jobs' directories."""
    return [source for sources, _ in score_parts(run, model).values() for source in sources]


def critical_first(wc):
    """Priority of a model's analysis jobs: the model that trains longest (steps x layers, a proxy of its
    cost) ends the run, so its analysis goes first once ready; training jobs (priority 10) go before all."""
    cost = lambda c: c.train.steps * c.model.n_layers if c.model.source == "trained" else 0
    return cost(configs(wc.run)[wc.model]) / max(1, *(cost(c) for r in RUNS.values() for c in r.configs.values()))


def checkpoint_inputs(wc):
    return checkpoint_sources(wc.run, wc.model)


def data_keys(run, kind):
    """A run's data directories of one kind -> the first model reading each (language models: one per
    tokenizer, "bpe" trained on the corpus, hub models their own)."""
    keys = {}
    for model, cfg in configs(run).items():
        if kind_of(cfg).name == kind:
            keys.setdefault(kind_of(cfg).data_key(cfg), model)
    return keys


def data_dir(run, model):
    cfg = configs(run)[model]
    return RESULTS / run / "data" / kind_of(cfg).data_key(cfg)


def data_file(name):
    """Input function: a file of the model's data directory."""
    return lambda wc: str(data_dir(wc.run, wc.model) / name)


def data_files(wc):
    """Input function: every file the model's data step writes."""
    return [str(data_dir(wc.run, wc.model) / f) for f in kind_of_model(wc.run, wc.model).data_files]


def figure_files(root, name):
    return [str(Path(root) / "figures" / f"{name}.{ext}") for ext in CFG.figures.formats]


def report_figures(root, registry, module):
    """A figure rule's outputs; the PNGs go into `snakemake --report` with report/<name>.rst as caption."""
    outputs = [report(f, caption=str(caption(name)), category=registry[name][1]) if f.endswith(".png") else f
               for name, (producer, _) in registry.items() if producer == module for f in figure_files(root, name)]
    outputs += [report(str(Path(root) / "figures" / f"{name}.html"), caption=str(caption(f"{name}_html")),
                       category=registry[name][1]) for name, producer in HTML_FIGURES.items()
                if producer == module and name in registry]
    return outputs


def run_outputs(run):
    """Every table and figure of one run (opt-in analyses when switched on), and its provenance."""
    root, cfgs = RESULTS / run, list(configs(run).values())
    figures = run_figures(cfgs)
    files = [f for name in figures for f in figure_files(root, name)]
    files += [str(root / "figures" / f"{name}.html") for name in HTML_FIGURES if name in figures]
    return files + [str(root / "tables" / f"{t}.csv") for t in run_tables(cfgs)] + [str(root / "provenance.json")]


def study_kind():
    return kind_of(CFG).name


def study_llc():
    """Whether every member model has the LLC: then the study has its bands and the stages that recur."""
    return all(has_table("llc_stages", c) for run in RUNS for c in configs(run).values())


def study_outputs():
    root = RESULTS / STUDY.name
    return ([f for name in study_figure_names(study_kind(), study_llc()) for f in figure_files(root, name)]
            + [str(root / "tables" / f"{t}.csv") for t in study_tables(study_kind(), study_llc())])


def final_outputs():
    """A study's aggregated tables and figures (its members' own figures are one `snakemake` away), or
    every output of the run."""
    return study_outputs() if STUDY else [f for run in RUNS for f in run_outputs(run)]


onsuccess:
    timings = sorted(p for run in RUNS for p in (RESULTS / run).glob("benchmarks/*.tsv"))
    if timings:
        table = pd.concat([pd.read_csv(t, sep="\t").assign(job=f"{t.parent.parent.name}/{t.stem}")
                           for t in timings])
        print(f"\nPer-step wall times ({RESULTS}):")
        print(table[["job", "s", "max_rss"]].rename(columns={"s": "wall_s", "max_rss": "max_rss_mb"})
              .to_string(index=False, float_format="%.1f"))
