"""The language kind's config sections and checks: trained or hub models over a tokenized corpus (stdlib
sources, user files, or the Pile through the HF cache)."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field, model_validator

from pipeline.sections import Architecture, Count, Fraction, Name, Section, Text

DATA_SOURCE_NAMES = ("stdlib", "files", "pile")  # pipeline.kinds.language.data.DATA_SOURCES
HUB_DATA_SOURCES = ("pile",)  # data sources read through the HF cache
HUB_FAMILY_NAMES = ("neel", "revisions", "final")  # pipeline.kinds.language.hub.HUB_FAMILIES
MAX_TOKEN_ID = 2 ** 16  # token streams are stored as uint16


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


class TrainedModel(ModelBase, Architecture):
    source: Literal["trained"]
    embed_init_std: Optional[Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)]] = None
    smeared_keys: bool = False


class HubModel(ModelBase):
    source: Literal["hub"]
    hub: HubSpec


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


def context_length(root) -> int:
    return root.model.n_ctx


def loss_positions(root) -> tuple[int, str, str]:
    """A loss per next token of the context."""
    return root.model.n_ctx - 1, f"a {root.model.n_ctx}-token context", "raise model.n_ctx"


def check(root):
    """The repeated-token probes fit the context, the scores the analyses read are computed, the ablation's
    samples fit the eval sample, and Pile documents reach the ICL score's late token."""
    a, n_ctx = root.analysis, root.model.n_ctx
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
    if isinstance(root.data, PileData) and root.data.min_document_tokens <= a.icl.late:
        raise ValueError(f"data.min_document_tokens: {root.data.min_document_tokens} leaves documents without "
                         f"token {a.icl.late} (analysis.icl.late); raise it above {a.icl.late}")
