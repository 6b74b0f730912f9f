"""The config schema: every key's type and range, checked once per composed config, before any job starts.

One pydantic model per config group (strict types, no unknown keys, ranges as field constraints), plus
the few checks that relate keys to each other (ICL positions inside the context, however they are set).
`validate(cfg)` turns the first violation into one line naming the key, the value and the fix.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from pipeline.interventions import INTERVENTIONS, PATTERNS
from pipeline.io import UserError
from pipeline.kinds import KINDS

HEAD_SCORE_NAMES = KINDS["language"].head_scores  # pipeline.scores.HEAD_SCORES (a test keeps them equal)
ANY_SCORE_NAMES = tuple(dict.fromkeys(s for kind in KINDS.values() for s in kind.head_scores))
DATA_SOURCE_NAMES = ("stdlib", "files", "pile")  # pipeline.data.DATA_SOURCES
HUB_DATA_SOURCES = ("pile",)  # data sources read through the HF cache
HUB_FAMILY_NAMES = ("neel", "revisions", "final")  # pipeline.hub.HUB_FAMILIES
TASK_NAMES = ("induction", "ioi")  # pipeline.tasks.TASKS
MAX_TOKEN_ID = 2 ** 16  # token streams are stored as uint16

Count = Annotated[int, Field(ge=1)]
Size = Annotated[int, Field(ge=1, le=1_000_000)]
NonNegative = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]
Threshold = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.=+/@-]+$")]
Text = Annotated[str, Field(min_length=1, max_length=1000)]
Threads = Annotated[int, Field(ge=1, le=256)]
ScoreName = Literal[HEAD_SCORE_NAMES]  # type: ignore[valid-type]
AnyScoreName = Literal[ANY_SCORE_NAMES]  # type: ignore[valid-type]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class HubSpec(Section):
    name: Name
    family: Literal[HUB_FAMILY_NAMES]  # type: ignore[valid-type]
    checkpoints: Annotated[list[int], Field(min_length=1, max_length=1000)]
    tokens_per_step: Optional[Count] = None

    @model_validator(mode="after")
    def labels_become_tokens(self):
        if self.family == "revisions" and self.tokens_per_step is None:
            raise ValueError("tokens_per_step: a revisions-family model labels checkpoints by step, so tokens seen "
                             "need model.hub.tokens_per_step (sequences x context per optimizer step)")
        if self.family == "neel" and self.tokens_per_step is not None:
            raise ValueError("tokens_per_step: NeelNanda checkpoints are labelled by tokens seen already; "
                             "set model.hub.tokens_per_step=null")
        if self.family == "final" and (self.tokens_per_step is not None or self.checkpoints not in ([0], [-1])):
            raise ValueError("checkpoints: a final-family model is one checkpoint, its released weights; set "
                             "model.hub.checkpoints=[0] and model.hub.tokens_per_step=null")
        return self


class ModelBase(Section):
    kind: Literal["language"]
    name: Name
    tokenizer: Name
    n_ctx: Annotated[int, Field(ge=8, le=8192)]
    icl_late: Annotated[int, Field(ge=1, le=8192)]


class Architecture(Section):
    """A locally trained transformer's shape (every kind)."""
    d_model: Annotated[int, Field(ge=1, le=4096)]
    n_heads: Annotated[int, Field(ge=1, le=128)]
    n_layers: Annotated[int, Field(ge=1, le=48)]
    d_mlp: Optional[Annotated[int, Field(ge=1, le=16384)]] = None

    @model_validator(mode="after")
    def heads_divide_width(self):
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads: {self.n_heads} heads do not divide d_model={self.d_model}; "
                             f"choose n_heads that divides d_model")
        return self


class TrainedModel(ModelBase, Architecture):
    source: Literal["trained"]
    embed_init_std: Optional[Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)]] = None
    smeared_keys: bool = False


class HubModel(ModelBase):
    source: Literal["hub"]
    hub: HubSpec


class RegressionModel(Architecture):
    """The in-context linear-regression transformer (pipeline/regression_model.py): its context is 2 x data.n_pairs."""
    kind: Literal["regression"]
    source: Literal["trained"]
    name: Name


class MarkovModel(Architecture):
    """The in-context Markov-chain transformer (pipeline/markov.py): its context is data.seq_len states."""
    kind: Literal["markov"]
    source: Literal["trained"]
    name: Name


SAMPLER_KINDS = ("regression", "markov")  # kinds whose models have their own schema


def _model_tag(value) -> str:
    """Which model schema a config is: a sampler's kind, else its source (trained or hub)."""
    get = value.get if isinstance(value, dict) else lambda key: getattr(value, key, None)
    return get("kind") if get("kind") in SAMPLER_KINDS else str(get("source"))


class DataBase(Section):
    max_documents: Optional[Count] = None
    vocab_size: Annotated[int, Field(ge=257, le=MAX_TOKEN_ID)]  # 256 bytes + end-of-text
    eval_fraction: Fraction


class StdlibData(DataBase):
    source: Literal["stdlib"]
    exclude_dirs: list[Name]


class FileData(DataBase):
    source: Literal["files"]
    paths: list[Text]
    text_column: Text


class PileData(DataBase):
    source: Literal["pile"]
    dataset: Name
    split: Name
    text_column: Text
    min_document_tokens: Count


class RegressionData(Section):
    """In-context linear regression: x ~ N(0, I_dim), y = w.x + N(0, noise_variance), n_pairs (x, y) pairs per
    sequence, w from n_tasks tasks drawn once from N(0, I) with the run's seed, or fresh (n_tasks null: M = inf)."""
    source: Literal["regression"]
    dim: Annotated[int, Field(ge=1, le=1024)]
    n_pairs: Annotated[int, Field(ge=1, le=4096)]
    noise_variance: Positive
    n_tasks: Optional[Annotated[int, Field(ge=1, le=10_000_000)]] = None


class MarkovData(Section):
    """In-context Markov chains: seq_len states per sequence from its own chain on n_states states, the rows of
    its transition matrix ~ Dirichlet(alpha) (doubly_stochastic: then balanced so every state is as frequent)."""
    source: Literal["markov"]
    n_states: Annotated[int, Field(ge=2, le=1000)]
    seq_len: Annotated[int, Field(ge=2, le=8192)]
    alpha: Positive
    prior: Literal["dirichlet", "doubly_stochastic"]
    bayes_draws: Annotated[int, Field(ge=100, le=1_000_000)]  # doubly_stochastic's importance-sampled Bayes strategy


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
    score: ScoreName
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
    """Seed 002's probe of a regression model: the x of pair `later` repeats the x of pair `earlier`."""
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


class Root(Section):
    models: Annotated[list[Name], Field(min_length=1)]
    run_name: Optional[Annotated[str, Field(pattern=r"^[A-Za-z0-9_=+-][A-Za-z0-9_.=+-]{0,99}$")]] = None
    results_dir: Text
    seed: Annotated[int, Field(ge=0, lt=2 ** 32)]
    hub_cache: Optional[Text] = None
    resources: dict[Name, dict[Name, Union[Annotated[int, Field(ge=0)], Name]]]
    jobs: Jobs
    data: Annotated[Union[StdlibData, FileData, PileData, RegressionData, MarkovData], Field(discriminator="source")]
    model: Annotated[Union[Annotated[TrainedModel, Tag("trained")], Annotated[HubModel, Tag("hub")],
                           Annotated[RegressionModel, Tag("regression")], Annotated[MarkovModel, Tag("markov")]],
                     Discriminator(_model_tag)]
    train: Train
    analysis: Analysis
    figures: Figures

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
                 *((("ablation.score", a.ablation.score),) if kind.name == "language" else ())]
        for key, name in named:
            if name not in kind.head_scores:
                raise ValueError(f"analysis.{key}: '{name}' is not a score of {kind.name} models "
                                 f"({self.model.name}); choose one of {list(kind.head_scores)}")
        self._icl_inside(a.icl, *self._loss_positions(kind.name))
        if a.llc.n_sequences > a.eval.n_sequences or a.llc.batch > a.llc.n_sequences:
            raise ValueError(f"analysis.llc.n_sequences: {a.llc.n_sequences} must lie between analysis.llc.batch="
                             f"{a.llc.batch} and the eval sample (analysis.eval.n_sequences={a.eval.n_sequences})")
        self._interventions_fit()
        if a.window.low >= a.window.high:
            raise ValueError(f"analysis.window.low: {a.window.low} must be below analysis.window.high={a.window.high}")
        if kind.name == "regression":
            if not a.probe.earlier < a.probe.later < self.data.n_pairs:
                raise ValueError(f"analysis.probe: pairs earlier={a.probe.earlier}, later={a.probe.later} must "
                                 f"satisfy 0 <= earlier < later < data.n_pairs={self.data.n_pairs}; fix them")
            return self
        if kind.name == "markov":
            return self._markov_keys_agree()
        return self._language_keys_agree(self.model.n_ctx)

    def _interventions_fit(self):
        """Each intervention names layers, heads and parameters the model has (pipeline.interventions)."""
        if not self.train.interventions:
            return
        if self.model.source == "hub":
            raise ValueError(f"train.interventions: {self.model.name} comes from the hub and is not trained here; "
                             f"remove them (train.interventions=[]) or train a model of that shape")
        shape = dict(n_layers=self.model.n_layers, n_heads=self.model.n_heads, attn_only=self.model.d_mlp is None,
                     n_ctx=self._context_length(),
                     smeared_keys=getattr(self.model, "smeared_keys", False))
        for i, spec in enumerate(self.train.interventions):
            error = INTERVENTIONS[spec.kind].check(spec.model_dump(), shape)
            if error:
                raise ValueError(f"train.interventions[{i}]: {spec.kind} {error}")

    def _context_length(self) -> int:
        """The trained model's n_ctx: model.n_ctx, or what its kind's data makes it."""
        return {"regression": lambda: 2 * self.data.n_pairs, "markov": lambda: self.data.seq_len}.get(
            self.model.kind, lambda: self.model.n_ctx)()

    def _loss_positions(self, kind: str) -> tuple[int, str, str]:
        """How many positions have a loss, what they are, and the key that makes more."""
        if kind == "regression":  # a loss per pair
            return self.data.n_pairs, f"{self.data.n_pairs} predictions per sequence", "raise data.n_pairs"
        if kind == "markov":  # a loss per next state
            return self.data.seq_len - 1, f"a {self.data.seq_len}-state sequence", "raise data.seq_len"
        return self.model.n_ctx - 1, f"a {self.model.n_ctx}-token context", "raise model.n_ctx"

    def _markov_keys_agree(self):
        a, seq_len = self.analysis, self.data.seq_len
        if 2 * a.head_scores.seq_len + 1 > seq_len:
            raise ValueError(f"analysis.head_scores.seq_len: {a.head_scores.seq_len} repeated twice after a first "
                             f"state needs data.seq_len >= {2 * a.head_scores.seq_len + 1}; lower it to <= "
                             f"{(seq_len - 1) // 2}")
        if a.window.score not in a.head_scores.names:
            raise ValueError(f"analysis.window.score: '{a.window.score}' is not computed; add it to "
                             f"analysis.head_scores.names {a.head_scores.names}")
        return self

    @staticmethod
    def _icl_inside(icl, positions: int, where: str, fix: str):
        """Both ICL windows inside the `positions` whose loss is known."""
        start = min(icl.early, icl.late) - icl.window // 2
        end = max(icl.early, icl.late) - icl.window // 2 + icl.window
        if icl.early >= icl.late or start < 0 or end > positions:
            raise ValueError(f"analysis.icl: positions early={icl.early}, late={icl.late} (window {icl.window}) "
                             f"must satisfy window/2 <= early < late <= {positions - icl.window + icl.window // 2} "
                             f"in {where}; lower analysis.icl.late (model.icl_late) or {fix}")

    def _language_keys_agree(self, n_ctx: int):
        a = self.analysis
        for key, seq_len in (("head_scores", a.head_scores.seq_len), ("tasks.induction", a.tasks.induction.seq_len)):
            if 2 * seq_len + 1 > n_ctx:
                raise ValueError(f"analysis.{key}.seq_len: {seq_len} repeated twice after BOS needs n_ctx >= "
                                 f"{2 * seq_len + 1} (model.n_ctx={n_ctx}); lower it to <= {(n_ctx - 1) // 2}")
        for section, name in (("window", a.window.score), ("ablation", a.ablation.score)):
            if name not in a.head_scores.names:
                raise ValueError(f"analysis.{section}.score: '{name}' is not computed; add it to "
                                 f"analysis.head_scores.names {a.head_scores.names}")
        for key in ("n_sequences", "mean_sequences"):
            if getattr(a.ablation, key) > a.eval.n_sequences:
                raise ValueError(f"analysis.ablation.{key}: {getattr(a.ablation, key)} exceeds the eval sample "
                                 f"(analysis.eval.n_sequences={a.eval.n_sequences}); lower it")
        if isinstance(self.data, PileData) and self.data.min_document_tokens <= a.icl.late:
            raise ValueError(f"data.min_document_tokens: {self.data.min_document_tokens} leaves documents without "
                             f"token {a.icl.late} (analysis.icl.late); raise it above {a.icl.late}")
        return self


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
