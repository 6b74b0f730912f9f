"""Compose the Hydra config once per model and derive every path of the run from it."""

import re
import shlex
import sys
from pathlib import Path

import pandas as pd

from pipeline.config import model_configs, parse_overrides, run_name, section, split_model_override
from pipeline.io import UserError, require_writable
from pipeline.schedule import checkpoint_name, checkpoint_steps
from pipeline.tables import CAUSAL_TABLES

OVERRIDES = parse_overrides(config.get("overrides"))
try:
    MODEL_CFGS = model_configs(OVERRIDES)
    CFG = next(iter(MODEL_CFGS.values()))  # model-independent sections (data, figures, ...) are shared
    require_writable(CFG.results_dir, "results_dir")
except UserError as err:
    sys.exit(f"error: {err}")
MODELS = list(MODEL_CFGS)
RUN = Path(CFG.results_dir) / run_name(CFG, OVERRIDES)
PY = shlex.quote(sys.executable)
# What each step's CLI recomposes its config from; rules append model={wildcards.model} (model-independent
# steps: the run's first model, whose config carries the shared sections). It is used in shell templates,
# not params, so only the config sections a rule declares in params trigger its rerun.
CLI_OVERRIDES = shlex.join(split_model_override(OVERRIDES)[1])


def one_of(names):
    """A wildcard regex matching exactly these names (nothing, for an empty list)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


TRAINED = [m for m in MODELS if MODEL_CFGS[m].model.source == "trained"]
HUB = [m for m in MODELS if MODEL_CFGS[m].model.source == "hub"]


wildcard_constraints:
    model=one_of(MODELS),


def resources_of(rule_name):
    """The rule's resources from conf/config.yaml (falling back to `default`)."""
    return dict(CFG.resources.get(rule_name, CFG.resources.default))


def params_of(model, *keys):
    """The config sections a rule depends on, as a Snakemake param (a change reruns the rule)."""
    return section(MODEL_CFGS[model] if model else CFG, *keys)


STEPS = checkpoint_steps(CFG.train)  # the same schedule for every trained model of the run
CHECKPOINTS = [str(RUN / "models" / "{model}" / "checkpoints" / checkpoint_name(s)) for s in STEPS]


def checkpoint_files(model):
    """A model's checkpoints: the training schedule's, or one per configured hub checkpoint index."""
    if model in HUB:
        return [str(RUN / "models" / model / "checkpoints" / f"hub_{i:03d}.safetensors")
                for i in range(len(MODEL_CFGS[model].model.hub.checkpoints))]
    return expand(CHECKPOINTS, model=model)


def tokenizer_key(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


# Each tokenizer gets its own tokenized corpus: "bpe" is trained on the corpus; hub models use their own.
TOKENIZERS = {tokenizer_key(cfg.model.tokenizer): cfg.model.tokenizer for cfg in MODEL_CFGS.values()}


def data_dir(model):
    return RUN / "data" / tokenizer_key(MODEL_CFGS[model].model.tokenizer)


def data_file(name):
    """Input function: a file of the model's tokenized corpus."""
    return lambda wc: data_dir(wc.model) / name


def figure_files(name):
    return [RUN / "figures" / f"{name}.{ext}" for ext in CFG.figures.formats]


def report_figures(names, category):
    """A figure rule's outputs; the PNGs go into `snakemake --report` with report/<name>.rst as caption."""
    return [report(f, caption=f"../report/{name}.rst", category=category) if f.suffix == ".png" else f
            for name in names for f in figure_files(name)]


FIGURES = ["prefix_matching", "head_scores", "head_heatmaps", "icl_score", "loss", "pca", "loss_by_position"]
CAUSAL_FIGURES = ["ablation", "patching_heads", "patching_resid", "patching_over_training", "logit_attribution",
                  "copying", "token_loss_change", "token_loss_over_training"]
BASE_TABLES = ["head_scores", "icl", "loss_by_position", "pca", "phase_window", "train_log"]
TABLES = BASE_TABLES + CAUSAL_TABLES


def final_outputs():
    figures = [f for name in FIGURES + CAUSAL_FIGURES for f in figure_files(name)]
    return figures + [RUN / "figures" / "token_loss_change.html"] + [RUN / "tables" / f"{t}.csv" for t in TABLES]


onsuccess:
    timings = sorted(RUN.glob("benchmarks/*.tsv"))
    if timings:
        table = pd.concat([pd.read_csv(t, sep="\t").assign(job=t.stem) for t in timings])
        print(f"\nPer-step wall times ({RUN}):")
        print(table[["job", "s", "max_rss"]].rename(columns={"s": "wall_s", "max_rss": "max_rss_mb"})
              .to_string(index=False, float_format="%.1f"))
