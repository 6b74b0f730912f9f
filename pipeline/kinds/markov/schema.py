"""The Markov kind's config sections and checks: in-context Markov chains (Edelman et al. 2024)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from pipeline.sections import Architecture, Name, Positive, Section


class MarkovModel(Architecture):
    """The in-context Markov-chain transformer (pipeline/kinds/markov/subject.py): its context is data.seq_len states."""
    kind: Literal["markov"]
    source: Literal["trained"]
    name: Name


class MarkovData(Section):
    """In-context Markov chains: seq_len states per sequence from its own chain on n_states states, the rows of
    its transition matrix ~ Dirichlet(alpha) (doubly_stochastic: then balanced so every state is as frequent)."""
    source: Literal["markov"]
    n_states: Annotated[int, Field(ge=2, le=1000)]
    seq_len: Annotated[int, Field(ge=2, le=8192)]
    alpha: Positive
    prior: Literal["dirichlet", "doubly_stochastic"]
    bayes_draws: Annotated[int, Field(ge=100, le=1_000_000)]  # doubly_stochastic's importance-sampled Bayes strategy


def context_length(root) -> int:
    return root.data.seq_len


def loss_positions(root) -> tuple[int, str, str]:
    """A loss per next state."""
    return root.data.seq_len - 1, f"a {root.data.seq_len}-state sequence", "raise data.seq_len"


def check(root):
    """The repeated-state probe fits a sequence, and the window's score is computed."""
    a, seq_len = root.analysis, root.data.seq_len
    if 2 * a.head_scores.seq_len + 1 > seq_len:
        raise ValueError(f"analysis.head_scores.seq_len: {a.head_scores.seq_len} repeated twice after a first "
                         f"state needs data.seq_len >= {2 * a.head_scores.seq_len + 1}; lower it to <= "
                         f"{(seq_len - 1) // 2}")
    if a.window.score not in a.head_scores.names:
        raise ValueError(f"analysis.window.score: '{a.window.score}' is not computed; add it to "
                         f"analysis.head_scores.names {a.head_scores.names}")
