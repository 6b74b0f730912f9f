"""The regression kind's config sections and checks: in-context linear regression, a transformer over
(x, y) pairs (Raventos et al. 2023; timaeus `icl`)."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field

from pipeline.sections import Architecture, Name, Positive, Section


class RegressionModel(Architecture):
    """The in-context linear-regression transformer (pipeline/kinds/regression/subject.py): its context is 2 x data.n_pairs."""
    kind: Literal["regression"]
    source: Literal["trained"]
    name: Name


class RegressionData(Section):
    """In-context linear regression: x ~ N(0, I_dim), y = w.x + N(0, noise_variance), n_pairs (x, y) pairs per
    sequence, w from n_tasks tasks drawn once from N(0, I) with the run's seed, or fresh (n_tasks null: M = inf)."""
    source: Literal["regression"]
    dim: Annotated[int, Field(ge=1, le=1024)]
    n_pairs: Annotated[int, Field(ge=1, le=4096)]
    noise_variance: Positive
    n_tasks: Optional[Annotated[int, Field(ge=1, le=10_000_000)]] = None


def context_length(root) -> int:
    return 2 * root.data.n_pairs


def loss_positions(root) -> tuple[int, str, str]:
    """A loss per pair."""
    return root.data.n_pairs, f"{root.data.n_pairs} predictions per sequence", "raise data.n_pairs"


def check(root):
    """The probe's two pairs lie in the sequence, in order."""
    probe = root.analysis.probe
    if not probe.earlier < probe.later < root.data.n_pairs:
        raise ValueError(f"analysis.probe: pairs earlier={probe.earlier}, later={probe.later} must "
                         f"satisfy 0 <= earlier < later < data.n_pairs={root.data.n_pairs}; fix them")
