"""The config schema: every key's type and range, checked once per composed config, before any job starts.

One pydantic model per config group (strict types, no unknown keys, ranges as field constraints), plus
the few checks that relate keys to each other (ICL positions inside the context, however they are set).
The model and data sections are each kind's own (pipeline/kinds/<kind>/schema.py): the root schema is built
from the registry. `validate(cfg)` turns the first violation into one line naming the key, the value and the fix.
"""

from __future__ import annotations

import math
from functools import reduce
from typing import Annotated, Literal, Optional, Union

from pydantic import (
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeline.interventions import INTERVENTIONS, PATTERNS
from pipeline.io import UserError
from pipeline.registry import KINDS
from pipeline.sections import Count, Fraction, Name, NonNegative, Positive, Section, Size, Text, Threads, Threshold

ANY_SCORE_NAMES = tuple(dict.fromkeys(s for kind in KINDS.values() for s in kind.head_scores))
TASK_NAMES = ("induction", "ioi")  # the tasks' registry (TASKS of the causal step)
AnyScoreName = Literal[ANY_SCORE_NAMES]  # type: ignore[valid-type]


class Jobs(Section):
    train_split_at: Annotated[list[Fraction], Field(max_length=100)]
    causal_parts: Annotated[int, Field(ge=1, le=256)]
    llc_parts: Annotated[int, Field(ge=1, le=256)]


class ClampPattern(Section):
    kind: Literal["clamp_pattern"]
    layer: NonNegative
    heads: Annotated[list[NonNegative], Field(min_length=1, max_length=128)]
    pattern: Literal[tuple(PATTERNS)]  # type: ignore[valid-type]


class ClampFrom(Section):
    kind: Literal["clamp_from"]
    layer: NonNegative
    heads: Annotated[list[NonNegative], Field(min_length=1, max_length=128)]
    checkpoint: Annotated[str, Field(min_length=1, max_length=1000)]  # a reference model's checkpoint file


class Freeze(Section):
    kind: Literal["freeze"]
    params: Annotated[list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.*?\[\]-]{1,200}$")]],
                      Field(min_length=1, max_length=100)]  # globs over parameter names


class Train(Section):
    steps: Annotated[int, Field(ge=1, le=10_000_000)]
    batch_size: Annotated[int, Field(ge=1, le=65_536)]
    lr: Positive
    warmup_steps: NonNegative
    weight_decay: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    grad_clip: Optional[Positive] = None  # null: no clipping
    schedule: Literal["constant", "triangle"]  # warm-up then constant; or up to lr at half the run, then down to 0
    n_checkpoints: Annotated[int, Field(ge=1, le=10_000)]
    first_checkpoint: Count
    threads: Threads
    resume_every: Count
    device: Annotated[str, Field(pattern=r"^(cpu|cuda(:\d+)?)$")]
    interventions: Annotated[list[Annotated[Union[ClampPattern, ClampFrom, Freeze], Field(discriminator="kind")]],
                             Field(max_length=100)] = []


class HeadScores(Section):
    names: Annotated[list[AnyScoreName], Field(min_length=1)]  # each a score of the model's kind (keys_agree)
    batch: Size
    seq_len: Size


class Eval(Section):
    n_sequences: Size
    batch: Size


class Icl(Section):
    early: NonNegative
    late: NonNegative
    window: Count
    n_bootstrap: Annotated[int, Field(ge=2, le=1_000_000)]


class Pca(Section):
    n_components: Annotated[int, Field(ge=1, le=100)]


class Window(Section):
    score: AnyScoreName
    low: Threshold
    high: Threshold
    min_rise: Threshold


class Ablation(Section):
    score: AnyScoreName  # a score of the model's kind (keys_agree)
    threshold: Threshold
    top_k: Optional[Count] = None
    methods: Annotated[list[Literal["zero", "mean"]], Field(min_length=1)]
    n_sequences: Size
    mean_sequences: Size


class Patching(Section):
    min_gap: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    resid_checkpoints: NonNegative


class InductionTask(Section):
    corruptions: Annotated[list[Annotated[str, Field(pattern=r"^[ABC][ABC]$")]], Field(min_length=1)]
    batch: Size
    seq_len: Size


class IoiTask(Section):
    templates: Annotated[list[Annotated[str, Field(min_length=1, max_length=1000)]], Field(min_length=1)]
    names: Annotated[list[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z'-]{0,40}$")]], Field(min_length=2)]
    n_prompts: Size

    @field_validator("templates")
    @classmethod
    def slots(cls, templates):
        for template in templates:
            if template.count("{IO}") < 1 or template.count("{S}") < 1:
                raise ValueError(f"template {template!r} needs an {{IO}} and an {{S}} slot (the indirect object "
                                 f"and the subject), e.g. 'When {{IO}} and {{S}} went out, {{S}} gave it to'")
        return templates

    @field_validator("names")
    @classmethod
    def distinct(cls, names):
        if len(set(names)) < 2:
            raise ValueError("needs at least two different names")
        return names


class Tasks(Section):
    names: Annotated[list[Literal[TASK_NAMES]], Field(min_length=1)]  # type: ignore[valid-type]
    attention_heads: NonNegative
    induction: InductionTask
    ioi: IoiTask


class TokenLoss(Section):
    text: Optional[Annotated[str, Field(min_length=1, max_length=100_000)]] = None
    track: list[Text]


class Llc(Section):
    enabled: bool
    hub: bool
    lr: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]
    n_beta: Positive
    localization: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    chains: Annotated[int, Field(ge=1, le=64)]
    draws: Annotated[int, Field(ge=1, le=100_000)]
    burn_in: NonNegative
    batch: Size
    n_sequences: Size
    every: Count
    head_every: Count
    device: Annotated[str, Field(pattern=r"^(cpu|cuda(:\d+)?)$")]


class Probe(Section):
    """Seed 002's probe of an (x, y)-pair model: the x of pair `later` repeats the x of pair `earlier`."""
    earlier: NonNegative
    later: NonNegative
    batch: Size


class Analysis(Section):
    duplicate_checkpoints: Literal["warn", "error"]
    compile: bool
    threads: Threads
    head_scores: HeadScores
    eval: Eval
    icl: Icl
    pca: Pca
    window: Window
    ablation: Ablation
    patching: Patching
    tasks: Tasks
    token_loss: TokenLoss
    llc: Llc
    probe: Probe


class Figures(Section):
    formats: Annotated[list[Literal["png", "pdf", "svg"]], Field(min_length=1)]
    dpi: Annotated[int, Field(ge=10, le=1200)]
    heatmap_checkpoints: Annotated[int, Field(ge=1, le=100)]


def _model_tag(value) -> str:
    """Which model schema a config is: its kind's, for its source (trained here or fetched from the hub)."""
    get = value.get if isinstance(value, dict) else lambda key: getattr(value, key, None)
    return f"{get('kind')}.{get('source')}"


class RootChecks(Section):
    """The checks between keys of the root schema (its fields are the registry's: `Root` below)."""

    @model_validator(mode="after")
    def keys_agree(self):
        """Checks between keys: each names the key to change."""
        kind = KINDS[self.model.kind]
        if self.data.source not in kind.data_sources:
            raise ValueError(f"data.source: '{self.data.source}' does not feed {kind.name} models like "
                             f"{self.model.name}; choose data={' or data='.join(kind.data_sources)}")
        a = self.analysis
        named = [("window.score", a.window.score),
                 *(("head_scores.names", n) for n in a.head_scores.names if "analysis.head_scores" in kind.score_config),
                 *((key, reduce(getattr, key.split("."), a)) for key in kind.score_keys)]
        for key, name in named:
            if name not in kind.head_scores:
                raise ValueError(f"analysis.{key}: '{name}' is not a score of {kind.name} models "
                                 f"({self.model.name}); choose one of {list(kind.head_scores)}")
        self._icl_inside(a.icl, *kind.loss_positions(self))
        if a.llc.n_sequences > a.eval.n_sequences or a.llc.batch > a.llc.n_sequences:
            raise ValueError(f"analysis.llc.n_sequences: {a.llc.n_sequences} must lie between analysis.llc.batch="
                             f"{a.llc.batch} and the eval sample (analysis.eval.n_sequences={a.eval.n_sequences})")
        self._interventions_fit()
        if a.window.low >= a.window.high:
            raise ValueError(f"analysis.window.low: {a.window.low} must be below analysis.window.high={a.window.high}")
        if kind.check:
            kind.check(self)
        return self

    def _interventions_fit(self):
        """Each intervention names layers, heads and parameters the model has (pipeline.interventions)."""
        if not self.train.interventions:
            return
        if self.model.source == "hub":
            raise ValueError(f"train.interventions: {self.model.name} comes from the hub and is not trained here; "
                             f"remove them (train.interventions=[]) or train a model of that shape")
        shape = dict(n_layers=self.model.n_layers, n_heads=self.model.n_heads, attn_only=self.model.d_mlp is None,
                     n_ctx=KINDS[self.model.kind].context_length(self),
                     smeared_keys=getattr(self.model, "smeared_keys", False))
        for i, spec in enumerate(self.train.interventions):
            error = INTERVENTIONS[spec.kind].check(spec.model_dump(), shape)
            if error:
                raise ValueError(f"train.interventions[{i}]: {spec.kind} {error}")

    @staticmethod
    def _icl_inside(icl, positions: int, where: str, fix: str):
        """Both ICL windows inside the `positions` whose loss is known."""
        start = min(icl.early, icl.late) - icl.window // 2
        end = max(icl.early, icl.late) - icl.window // 2 + icl.window
        if icl.early >= icl.late or start < 0 or end > positions:
            raise ValueError(f"analysis.icl: positions early={icl.early}, late={icl.late} (window {icl.window}) "
                             f"must satisfy window/2 <= early < late <= {positions - icl.window + icl.window // 2} "
                             f"in {where}; lower analysis.icl.late (model.icl_late) or {fix}")


DataSection = Annotated[Union[tuple(c for kind in KINDS.values() for c in kind.data_schemas)],  # type: ignore
                        Field(discriminator="source")]
ModelSection = Annotated[Union[tuple(Annotated[c, Tag(f"{kind.name}.{source}")]  # type: ignore
                                     for kind in KINDS.values() for source, c in kind.model_schemas.items())],
                         Discriminator(_model_tag)]


class Root(RootChecks):
    models: Annotated[list[Name], Field(min_length=1)]
    run_name: Optional[Annotated[str, Field(pattern=r"^[A-Za-z0-9_=+-][A-Za-z0-9_.=+-]{0,99}$")]] = None
    results_dir: Text
    seed: Annotated[int, Field(ge=0, lt=2 ** 32)]
    hub_cache: Optional[Text] = None
    resources: dict[Name, dict[Name, Union[Annotated[int, Field(ge=0)], Name]]]
    jobs: Jobs
    data: DataSection
    model: ModelSection
    train: Train
    analysis: Analysis
    figures: Figures


def _located(cfg: dict, loc: tuple) -> tuple[str, object]:
    """The config key an error location points at and the value there; location parts that are not keys
    (a union member's name, a discriminator's tag: model.<source>, data.<source>) are skipped."""
    key, value = "", cfg
    if len(loc) > 1 and loc[0] in ("model", "data") and loc[1] == (cfg.get(loc[0]) or {}).get("source"):
        loc = loc[:1] + loc[2:]
    for part in loc:
        if isinstance(value, dict) and part in value:
            key, value = f"{key}.{part}" if key else str(part), value[part]
        elif isinstance(value, list) and isinstance(part, int) and part < len(value):
            key, value = f"{key}[{part}]", value[part]
    return key, value


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate(cfg: dict):
    """Refuse a composed config (a plain dict) that breaks the schema, in one line: key, value, fix."""
    kind = (cfg.get("model") or {}).get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise UserError(f"model.kind={_short(kind)}: not a subject kind; choose one of {list(KINDS)} (a new kind is a "
                        f"package under pipeline/kinds/, or a module named in PIPELINE_KINDS)")
    try:
        Root.model_validate(cfg)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        key, value = _located(cfg, first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "value_error":  # checks between keys name their key first
            named, _, message = message.partition(": ")
            raise UserError(f"{'.'.join(filter(None, [key, named]))}: {message}") from None
        if first["type"] == "extra_forbidden":
            raise UserError(f"{key} is not a config key here; remove it (~{key}) or fix its spelling "
                            f"(see conf/)") from None
        if first["type"] == "missing":
            raise UserError(f"{key}.{first['loc'][-1]} is missing; set it (see conf/)") from None
        if first["type"] == "union_tag_invalid":  # data.source / model.source / train.interventions[i].kind
            tag = "source" if "source" in value else "kind"
            key, value = f"{key}.{tag}", value.get(tag)
        fix = "give a finite number" if isinstance(value, float) and not math.isfinite(value) else "fix the override"
        raise UserError(f"{key}={_short(value)}: {message[0].lower() + message[1:]}; {fix}") from None
