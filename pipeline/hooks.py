"""The hook points each analysis caches, declared once in TransformerLens's own names (`get_act_name`):
an analysis caches exactly these and nothing else."""

from __future__ import annotations

from typing import Callable

from transformer_lens.utilities import get_act_name

HEAD_SCORES = ("pattern",)  # head scores (pipeline.measures): attention patterns of every head
MEAN_ABLATION = ("z",)  # mean ablation: each head's output before W_O, for its mean
TASKS = ("z", "resid_pre", "resid_post")  # tasks: patching, direct logit attribution, logit lens
FINAL_SCALE = get_act_name("scale")  # tasks: the final LayerNorm's scale, to attribute through it


def names_filter(n_layers: int, activations: tuple[str, ...], *extra: str) -> Callable[[str], bool]:
    """A `names_filter` for `run_with_cache`: these activations of every layer, plus `extra` hook names."""
    names = {get_act_name(activation, layer) for activation in activations for layer in range(n_layers)}
    return names.union(extra).__contains__
