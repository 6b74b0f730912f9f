"""The language figures' views of a run whose models each have one checkpoint (hub family `final`: gpt2-small,
a released Pythia): per-head heatmaps and per-model bars under the figures' own names (pipeline.figure_step)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from pipeline.plotting import models_of
from pipeline.snapshots import bars, composition, head_grids, head_scores, note, per_model

PHASE_SNAPSHOTS = {  # a run of released weights, one checkpoint per model: per-head and per-model views
    "prefix_matching": lambda t, cfg: head_scores(t, cfg, [cfg.analysis.window.score]),
    "head_scores": head_scores,
    "icl_score": lambda t, cfg: bars(t["icl"], "icl_score", "ICL score (nats)", err="icl_se",
                                     title="ICL score: loss at the late minus the early token"),
    "loss": lambda t, cfg: bars(t["icl"], "loss", "eval loss (nats / token)", title="eval loss"),
    "pca": lambda t, cfg: note("per-token-loss PCA over training needs two or more checkpoints"),
    "k_composition": composition,
}


def parsed_heads(attribution: pd.DataFrame) -> pd.DataFrame:
    """Head rows of the logit-attribution table with layer and head parsed from 'L<l>H<h>'."""
    heads = attribution[attribution.kind == "head"].copy()
    parts = heads.component.str.extract(r"L(\d+)H(\d+)").astype(int)
    return heads.assign(layer=parts[0], head=parts[1])


def token_losses(t, cfg) -> plt.Figure:
    fig, axes = plt.subplots(len(models_of(t["token_losses"])), 1, figsize=(8, 2.6 * len(models_of(t["token_losses"]))),
                             squeeze=False)
    for ax, (model, rows) in zip(axes[:, 0], per_model(t["token_losses"])):
        ax.plot(rows.position, rows.loss, lw=1, color="black")
        ax.set_xlabel("position in the tracked text")
        ax.set_ylabel("loss (nats)")
        ax.set_title(f"{model}: per-token loss (one checkpoint: no change over training to show)", fontsize=9)
    fig.tight_layout()
    return fig


def task_bars(t, cfg) -> plt.Figure:
    rows = t["task_metrics"][t["task_metrics"].answers == "all"]
    clean = rows.drop_duplicates(["model", "task"]).assign(what=lambda d: d.model + " " + d.task + ": clean")
    corrupted = rows.assign(what=lambda d: d.model + " " + d.task + ": " + d.corruption, clean=rows.corrupted)
    return bars(pd.concat([clean, corrupted]), "clean", "logit difference", by="what", title="task metrics")


def ablation_bars(t, cfg) -> plt.Figure:
    rows = t["ablation"]
    if rows.empty:
        return note("no model has a head above the ablation threshold")
    rows = rows.assign(what=lambda d: d.model + ": " + d.heads + " " + d.method)
    return bars(rows, "icl_score", "ICL score (nats)", by="what", err="icl_se", title="ICL score under head ablation")


CAUSAL_SNAPSHOTS = {  # a run of released weights, one checkpoint per model: per-head and per-model views
    "ablation": ablation_bars,
    "patching_over_training": lambda t, cfg: note("one checkpoint: its head patching is in patching_heads"),
    "logit_attribution": lambda t, cfg: head_grids(
        [(f"{model}, {task}: direct logit attribution", part[part.task == task])
         for model, part in per_model(parsed_heads(t["logit_attribution"]))
         for task in sorted(part.task.unique())], "value", "logit difference", cmap="RdBu_r"),
    "task_metrics": task_bars,
    "copying": lambda t, cfg: head_grids([(f"{model}: copying score", rows) for model, rows in per_model(t["copying"])],
                                         "copying", "copying score", -1, 1, cmap="RdBu_r"),
    "token_loss_change": token_losses,
    "token_loss_over_training": token_losses,
}
