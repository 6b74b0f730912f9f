"""The registry of subject kinds, the kinds of model the pipeline studies (torch-free: the Snakefile and the
schema read it).

Each kind is a package, `pipeline/kinds/<name>/`, whose `KIND` declares everything kind-specific the shared
modules and rules read: its schema classes, data sources and data step, training subject, score step and
head scores, the tables and figures it adds, its study tables and figures, and its checks between config keys.
Everything else — the rules, the training-job chain with resume, the per-checkpoint loop, studies, provenance,
integrity, LLC, composition, the output registry and the report — is shared and reads this registry. A kind
outside the package (a plugin, or a kind a test defines) is a module named in the PIPELINE_KINDS
environment variable (comma-separated), found on the Python path.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, get_args

from omegaconf import OmegaConf


@dataclass(frozen=True)
class FigureModule:
    """A module drawing some of a run's figures (its CLI is pipeline.figure_step's; rule plot_<producer>)."""
    module: str  # the importable module whose CLI draws them
    category: str  # their section of the report
    figures: tuple[str, ...]
    tables: tuple[str, ...]  # the run tables it reads (its rule's inputs)
    config: tuple[str, ...]  # the config sections it depends on (its rule's params)
    html: tuple[str, ...] = ()  # figures also written as interactive .html


@dataclass(frozen=True)
class Step:
    """An analysis step only this kind runs, as jobs over shares of a model's checkpoints that one rule merges."""
    module: str  # its CLI
    part_rule: str  # the name of its jobs' rule (the merge rule is the step's name)
    jobs: str  # the jobs.<key> of how many jobs share its checkpoints
    tables: tuple[str, ...]  # the per-model tables it writes
    config: tuple[str, ...]  # the config sections it reads (rule params, cache key)
    reads: tuple[str, ...] = ()  # what else of the model it reads: "losses", "heads", "window"


@dataclass(frozen=True)
class StudyFigure:
    """A figure of a study of one kind: `draw(*tables, variant, band) -> Figure` from these study tables."""
    draw: str  # "module:function"
    tables: tuple[str, ...]


@dataclass(frozen=True)
class Comparison:
    """How a kind stands in the figure across kinds (pipeline.paper): its circuit's head score, and its distance
    to the optimal strategy, `distance(tables) -> DataFrame[model, tokens_seen, value]` from the run's tables."""
    score: str  # the head score of its circuit (the best head's, per model and checkpoint)
    distance: str  # "module:function"
    distance_tables: tuple[str, ...]  # the run tables `distance` reads
    distance_label: str


@dataclass(frozen=True)
class Kind:
    name: str
    data_module: str  # the data step's CLI (writes data_files)
    score_module: str  # the score step's CLI (the shared tables, extra_tables, losses)
    subject_module: str  # training_subject(cfg, data_dir), llc_data(cfg, data_dir)
    data_schemas: tuple  # the schema classes of the data sections that feed this kind (each names its `source`)
    model_schemas: dict  # model.source -> the schema class of such a model section
    data_files: tuple[str, ...]  # what its data step writes (manifest.json always last)
    head_scores: tuple[str, ...]  # the per-head scores its score step writes (analysis.window.score is one)
    context_length: Callable  # Root -> the model's n_ctx
    loss_positions: Callable  # Root -> (how many positions have a loss, what they are, the key that makes more)
    check: Callable | None = None  # Root -> None: its checks between keys (raise ValueError naming the key)
    score_keys: tuple[str, ...] = ()  # analysis keys naming a head score it must have, beyond window.score
    extra_tables: tuple[str, ...] = ()  # per-model tables its score step writes beside the shared ones
    steps: dict = field(default_factory=dict)  # its own analysis steps: name -> Step
    figure_modules: dict = field(default_factory=dict)  # producer -> FigureModule
    study_member_tables: tuple[str, ...] = ()  # its member tables a study stacks
    study_tables: dict = field(default_factory=dict)  # study table -> (member table, "module:function")
    study_figures: dict = field(default_factory=dict)  # study figure -> StudyFigure
    data_key_from: str | None = None  # the config key naming a model's data directory (else the kind's name)
    score_config: tuple[str, ...] = ()  # the config sections its score step reads (rule params, cache key)
    data_config: tuple[str, ...] = ("data", "hub_cache")  # the config sections its data step reads
    data_rule: str = "prepare_corpus"  # the name of its data step's rule
    rule_suffix: str = ""  # its analysis rules' names: score_part<suffix>, score_checkpoints<suffix>
    frozen: tuple[str, ...] = ()  # parameter-name globs its models hold at their init (never trained, never sampled)
    hub_module: str | None = None  # the CLI fetching its hub checkpoints (model.source=hub)
    hub_data_sources: tuple[str, ...] = ()  # its data sources read through the HF cache
    comparison: Comparison | None = None  # its column of the figure across kinds
    run_summaries: dict = field(default_factory=dict)  # a run's paper section: name -> (its table, "module:function")

    @property
    def data_sources(self) -> tuple[str, ...]:
        """The data.source values that feed this kind (its data schemas' `source`)."""
        return tuple(get_args(schema.model_fields["source"].annotation)[0] for schema in self.data_schemas)

    def data_key(self, cfg) -> str:
        """A model's data directory under results/<run>/data/: the value of the config key
        `data_key_from` (e.g. one per tokenizer, a corpus being tokenized once per tokenizer), else one per kind."""
        if self.data_key_from is None:
            return self.name
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(OmegaConf.select(cfg, self.data_key_from)))


PACKAGE = "pipeline.kinds"  # the kinds' packages live under it


def kind_modules() -> list[str]:
    """Every kind's module: the packages under pipeline/kinds/, then those named in PIPELINE_KINDS."""
    folder = importlib.import_module(PACKAGE).__path__
    packaged = [f"{PACKAGE}.{m.name}" for m in pkgutil.iter_modules(folder) if m.ispkg]
    return packaged + [name.strip() for name in os.environ.get("PIPELINE_KINDS", "").split(",") if name.strip()]


def kind_folders(name: str) -> list[Path]:
    """The folders `name` that kinds outside this package ship beside their module: conf/ (their models, data
    and experiments as config groups, searched after the repository's conf/), report/ (their figures' captions)."""
    found = []
    for module in kind_modules():
        spec = None if module.startswith(f"{PACKAGE}.") else importlib.util.find_spec(module)
        folder = Path(spec.origin).parent / name if spec and spec.origin else None
        if folder and folder.is_dir():
            found.append(folder)
    return found


class Registry(Mapping):
    """name -> Kind, found on first use (a kind's package imports this module for the classes above)."""

    def __init__(self):
        self._kinds: dict[str, Kind] = {}

    def _found(self) -> dict[str, Kind]:
        if not self._kinds:
            for module in kind_modules():
                kind = importlib.import_module(module).KIND
                self._kinds[kind.name] = kind
        return self._kinds

    def __getitem__(self, name: str) -> Kind:
        return self._found()[name]

    def __iter__(self):
        return iter(self._found())

    def __len__(self) -> int:
        return len(self._found())


KINDS = Registry()


def kind_of(cfg) -> Kind:
    """The kind of a model's composed config."""
    return KINDS[str(cfg.model.kind)]


def subject_module(kind: str):
    """The module supplying a kind's training subject and LLC data."""
    return importlib.import_module(KINDS[kind].subject_module)


def resolved(reference: str) -> Callable:
    """The function a "module:function" reference names."""
    module, _, function = reference.partition(":")
    return getattr(importlib.import_module(module), function)


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
