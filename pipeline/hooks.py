"""The hook points each analysis caches, declared once in TransformerLens's own names (`get_act_name`):
an analysis caches exactly these and nothing else."""

from __future__ import annotations

from typing import Callable

HEAD_SCORES = ("pattern",)  # pipeline.scores, pipeline.regression_scores: attention patterns of every head
MEAN_ABLATION = ("z",)  # pipeline.causal: each head's output before W_O, for its mean
TASKS = ("z", "resid_pre", "resid_post")  # pipeline.tasks: patching, direct logit attribution, logit lens
FINAL_SCALE = ("scale",)  # pipeline.tasks: the final LayerNorm's scale (no layer), to attribute through it


def names_filter(n_layers: int, activations: tuple[str, ...], final: tuple[str, ...] = ()) -> Callable[[str], bool]:
    """A `names_filter` for `run_with_cache`: these activations of every layer, plus `final` ones outside the
    layers. TransformerLens is imported here, not with this module: training and LLC jobs, which import the
    modules that import this one, never load it (~5 CPU-s a job)."""
    from transformer_lens.utilities import get_act_name

    names = {get_act_name(activation, layer) for activation in activations for layer in range(n_layers)}
    return names.union(get_act_name(activation) for activation in final).__contains__
