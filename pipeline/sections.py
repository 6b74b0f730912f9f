"""The schema's building blocks, shared by the root schema (pipeline.schema) and each kind's own sections
(pipeline/kinds/<kind>/schema.py): strict sections with no unknown keys, the field types with their ranges,
the transformer shape every locally trained kind has, and the head scores on synthetic repeated sequences
(pipeline.measures), whose names are declared here once."""

from __future__ import annotations

from typing import Annotated, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

Count = Annotated[int, Field(ge=1)]
Size = Annotated[int, Field(ge=1, le=1_000_000)]
NonNegative = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]
Threshold = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.=+/@-]+$")]
Text = Annotated[str, Field(min_length=1, max_length=1000)]
Threads = Annotated[int, Field(ge=1, le=256)]

SEQUENCE_SCORES = ("prefix_matching", "induction", "previous_token", "duplicate_token", "current_token", "first_token")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


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
