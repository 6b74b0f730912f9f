"""The regression kind's study table and figure: the task-diversity transition (Raventos et al. 2023) across the
members' numbers of pretraining tasks, from their `regression_eval` tables."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def transition(evals: pd.DataFrame, variant: list[str]) -> pd.DataFrame:
    """The task-diversity transition (Raventos et al. 2023): at each member's last checkpoint, the MSE and the
    distance to each baseline on pretraining and on true tasks, averaged over the positions (`positions` mean:
    Raventos et al.'s scalar) and at the last position (`positions` last), as median, min and max over the band
    (e.g. seeds) per variant (e.g. number of tasks)."""
    last = evals[evals.step == evals.groupby("run").step.transform("max")]
    measures = ["mse", "delta_ridge", "delta_dmmse"]
    keys = [*variant, "run", "distribution"]
    summaries = pd.concat([last.groupby(keys)[measures].mean().reset_index().assign(positions="mean"),
                           last[last.position == last.position.max()][[*keys, *measures]].assign(positions="last")])
    long = summaries.melt(id_vars=[*keys, "positions"], value_vars=measures, var_name="measure")
    out = long.groupby([*variant, "distribution", "measure", "positions"]).value.agg(["median", "min", "max", "count"])
    return out.reset_index().rename(columns={"count": "n_members"})


TRANSITION_LINES = [("pretrain", "delta_dmmse", "Δ dMMSE, pretraining tasks"),
                    ("pretrain", "delta_ridge", "Δ ridge, pretraining tasks"), ("true", "mse", "MSE, true tasks")]


def transition_plot(transition: pd.DataFrame, variant: list[str], band: str) -> plt.Figure:
    """The task-diversity transition: distance to each baseline on pretraining tasks and MSE on true tasks at
    the last checkpoint, averaged over positions (Raventos et al.'s scalar), vs the number of tasks M (inf drawn
    at the right), median and min-max over the band."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    key = next(k for k in variant if k != "model")
    finite = transition[key][np.isfinite(transition[key])]
    right = (finite.max() if len(finite) else 1) * 8  # where M = inf is drawn
    for (distribution, measure, label), color in zip(TRANSITION_LINES, ["tab:red", "tab:blue", "black"]):
        rows = transition[(transition.distribution == distribution) & (transition.measure == measure)
                          & (transition.positions == "mean")]
        rows = rows.assign(x=rows[key].replace(np.inf, right)).sort_values("x")
        ax.plot(rows.x, rows["median"], "o-", color=color, label=label)
        ax.fill_between(rows.x, rows["min"], rows["max"], color=color, alpha=0.2, lw=0)
    ax.set_xscale("log", base=2)
    ticks = sorted(transition[key].replace(np.inf, right).unique())
    ax.set_xticks(ticks, [("∞" if t == right else f"{t:g}") for t in ticks])
    ax.set_yscale("log")
    ax.set_xlabel(f"number of pretraining tasks M ({key})")
    ax.set_ylabel("per-dimension squared error, mean over positions")
    ax.set_title(f"Task-diversity transition (Raventós et al. 2023)\nline: median over {band}; band: min-max")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def distance(tables: dict) -> pd.DataFrame:
    """The distance to ridge regression (the optimal predictor at M = inf) on pretraining tasks, averaged over
    positions (Raventos et al.'s scalar), per model and checkpoint: its column of the figure across kinds."""
    evals = tables["regression_eval"]
    pretrain = evals[evals.distribution == "pretrain"]
    return pretrain.groupby(["model", "tokens_seen"], as_index=False).delta_ridge.mean().rename(
        columns={"delta_ridge": "value"})


def final_eval(evals: pd.DataFrame) -> pd.DataFrame:
    """Each model's last checkpoint per distribution: MSE/D, Δ ridge, Δ dMMSE and ridge's own MSE/D, averaged over
    the positions (Raventós et al.'s scalar) and at the last one (a run's paper section)."""
    last = evals[evals.step == evals.groupby("model").step.transform("max")]
    values = ["mse", "delta_ridge", "delta_dmmse", "ridge_mse"]
    mean = last.groupby(["model", "step", "distribution"], as_index=False)[values].mean().assign(positions="mean")
    final = last[last.position == last.position.max()].assign(positions="last")
    return pd.concat([mean, final[mean.columns]], ignore_index=True)[["model", "step", "distribution", "positions",
                                                                      *values]]
