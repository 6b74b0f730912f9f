"""Subject kinds: what a kind of model studied by the pipeline supplies (torch-free: the Snakefile and the
schema read it).

A kind names its data sources (conf/data), the files its data step writes under results/<run>/data/<key>/,
the modules of its data step and its score step (each a CLI a rule calls), the module supplying its
training subject and LLC data, its per-head scores, and the extra tables its score step writes beside the
shared ones (head_scores, composition, per-position losses). Everything else — the
rules, the training-job chain with resume, the per-checkpoint loop, studies, provenance, integrity, LLC,
composition, the output registry, figures and the report — is shared and reads this registry.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Callable

from omegaconf import OmegaConf


@dataclass(frozen=True)
class Kind:
    name: str
    data_module: str  # pipeline.<module>: the data step's CLI (writes data_files)
    score_module: str  # pipeline.<module>: the score step's CLI (the shared tables, extra_tables, losses)
    subject_module: str  # pipeline.<module>: training_subject(cfg, data_dir), llc_data(cfg, data_dir)
    data_sources: tuple[str, ...]  # the data.source values that feed this kind
    data_files: tuple[str, ...]  # what its data step writes (manifest.json always last)
    head_scores: tuple[str, ...]  # the per-head scores its score step writes (analysis.window.score is one)
    extra_tables: tuple[str, ...] = ()  # per-model tables its score step writes beside the shared ones
    data_key_from: str | None = None  # the config key naming a model's data directory (else the kind's name)
    score_config: tuple[str, ...] = ()  # the config sections its score step reads (rule params, cache key)
    data_config: tuple[str, ...] = ("data", "hub_cache")  # the config sections its data step reads
    data_rule: str = "prepare_corpus"  # the name of its data step's rule
    rule_suffix: str = ""  # its analysis rules' names: score_part<suffix>, score_checkpoints<suffix>
    frozen: tuple[str, ...] = ()  # parameter-name globs its models hold at their init (never trained, never sampled)

    def data_key(self, cfg) -> str:
        """A model's data directory under results/<run>/data/: one per tokenizer for language models (the
        corpus is tokenized once per tokenizer), one for a sampler's run."""
        if self.data_key_from is None:
            return self.name
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(OmegaConf.select(cfg, self.data_key_from)))


KINDS = {
    "language": Kind(
        name="language", data_module="data", score_module="scores", subject_module="language",
        data_sources=("stdlib", "files", "pile"), data_key_from="model.tokenizer",
        score_config=("analysis.head_scores", "analysis.eval", "analysis.compile", "seed"),
        data_files=("tokenizer.json", "train.npy", "eval.npy", "manifest.json"),
        head_scores=("prefix_matching", "induction", "previous_token", "duplicate_token", "current_token",
                     "first_token")),
    "regression": Kind(
        name="regression", data_module="regression", score_module="regression_scores",
        subject_module="regression_model", data_sources=("regression",),
        data_files=("tasks.npy", "eval.npz", "manifest.json"),
        head_scores=("xy_probe", "previous_token", "xy_probe_pretrain"),
        extra_tables=("regression_eval", "probe_attention", "chance_levels"),
        score_config=("analysis.probe", "analysis.eval", "data", "seed"),
        data_config=("data", "seed", "analysis.eval.n_sequences"), data_rule="prepare_regression",
        rule_suffix="_regression", frozen=("*attn.b_Q", "*attn.b_K", "*attn.b_V", "*attn.b_O")),  # timaeus: no biases
    "markov": Kind(
        name="markov", data_module="markov", score_module="markov_scores", subject_module="markov",
        data_sources=("markov",), data_files=("eval.npz", "manifest.json"),
        head_scores=("prefix_matching", "induction", "previous_token", "duplicate_token", "current_token",
                     "first_token", "statistical_induction"),  # the last on its eval chains (markov_scores)
        extra_tables=("markov_strategies", "chance_levels"),
        score_config=("analysis.head_scores", "analysis.eval", "data", "seed"),
        data_config=("data", "seed", "analysis.eval.n_sequences"), data_rule="prepare_markov",
        rule_suffix="_markov"),
}


def kind_of(cfg) -> Kind:
    """The kind of a model's composed config."""
    return KINDS[str(cfg.model.kind)]


def subject_module(kind: str):
    """The module supplying a kind's training subject and LLC data."""
    return importlib.import_module(f"pipeline.{KINDS[kind].subject_module}")


@dataclass
class TrainingSubject:
    """What the shared trainer (pipeline.train) needs of a kind: its model at step 0, a batch from the
    seeded generator (a tuple of tensors), the loss of a batch, and how to label checkpoints."""
    name: str
    config_kwargs: dict  # HookedTransformerConfig kwargs, saved in every checkpoint's sidecar
    tokens_per_step: int
    fingerprint: object  # what else identifies the training data (a resume with other data restarts)
    init: Callable  # seed -> the training twin at step 0
    batch: Callable  # torch.Generator -> tuple of tensors
    loss: Callable  # (model, batch) -> scalar loss
