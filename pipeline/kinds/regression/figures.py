"""Figures of an in-context-regression run (PNG + PDF): MSE by position against both Bayes baselines, the
distance to each baseline over training, seed 002's probe ranking of every head, and where the top heads
attend from the probe's repeated x.

Like pipeline.kinds.language.figures, each function takes the run's tidy tables and returns a matplotlib Figure.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from pipeline.figure_step import figure_step
from pipeline.io import run_cli
from pipeline.phase import steps_around_window
from pipeline.plotting import MODEL_COLORS, TOKENS, WINDOW_STYLE

DISTRIBUTION_TITLES = {"pretrain": "pretraining tasks", "true": "true tasks (fresh Gaussian w)"}


def _over_training(ax, windows: pd.DataFrame, model: str):
    """Log tokens axis with the model's probe window shaded."""
    for _, w in windows[(windows.model == model) & windows.has_window].iterrows():
        ax.axvspan(w.start_tokens, w.end_tokens, **WINDOW_STYLE, label="probe window")
    ax.set_xscale("log")
    ax.set_xlabel(TOKENS)


def by_distribution(draw, ylabel: str) -> plt.Figure:
    """Two log-y panels, pretraining and true tasks: `draw(ax, distribution, title)` fills each."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, (distribution, title) in zip(axes, DISTRIBUTION_TITLES.items()):
        draw(ax, distribution, title)
        ax.set_yscale("log")
    axes[0].set_ylabel(ylabel)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def mse_by_position(evals: pd.DataFrame, windows: pd.DataFrame, n_checkpoints: int) -> plt.Figure:
    """MSE per position at a few checkpoints, with the ridge and dMMSE baselines, on both distributions."""
    model = sorted(evals.model.unique())[0]
    evals = evals[evals.model == model]
    steps = steps_around_window(sorted(evals.step.unique()), windows[windows.model == model], n_checkpoints)
    colors = plt.get_cmap("viridis")

    def draw(ax, distribution, title):
        rows = evals[evals.distribution == distribution]
        for i, step in enumerate(steps):
            line = rows[rows.step == step]
            ax.plot(line.position, line.mse, "o-", ms=2.5, color=colors(i / max(1, len(steps) - 1)),
                    label=f"step {step}")
        last = rows[rows.step == steps[-1]]
        ax.plot(last.position, last.ridge_mse, "k--", lw=1.2, label="ridge (Bayes, Gaussian prior)")
        ax.plot(last.position, last.dmmse_mse, ":", color="firebrick", lw=1.5, label="dMMSE (Bayes, M tasks)")
        ax.set_xlabel("pair position k (context: k earlier pairs)")
        ax.set_title(f"{model}: {title}")

    return by_distribution(draw, "MSE / D")


def baseline_deltas(evals: pd.DataFrame, windows: pd.DataFrame) -> plt.Figure:
    """Delta_dMMSE and Delta_ridge at the last position over training, on both distributions."""
    model = sorted(evals.model.unique())[0]
    last = evals[(evals.model == model) & (evals.position == evals.position.max()) & (evals.tokens_seen > 0)]

    def draw(ax, distribution, title):
        rows = last[last.distribution == distribution].sort_values("tokens_seen")
        ax.plot(rows.tokens_seen, rows.delta_dmmse, "o-", ms=2.5, color="tab:red", label="Δ dMMSE")
        ax.plot(rows.tokens_seen, rows.delta_ridge, "o-", ms=2.5, color="tab:blue", label="Δ ridge")
        ax.plot(rows.tokens_seen, rows.mse, color="0.5", lw=1, label="MSE")
        _over_training(ax, windows, model)
        ax.set_title(f"{model}: {title}, last position")

    return by_distribution(draw, "mean squared difference / D")


def probe_ranking(heads: pd.DataFrame, chance: pd.DataFrame, windows: pd.DataFrame, score: str) -> plt.Figure:
    """Every head's probe score over training (colour = layer), the final top three named; the score's chance
    level (uniform causal attention) dotted, and the best head on the model's own tasks dashed."""
    model = sorted(heads.model.unique())[0]
    rows = heads[(heads.model == model) & (heads.score == score) & (heads.tokens_seen > 0)]
    final = rows[rows.step == rows.step.max()].sort_values("value", ascending=False)
    top = set(zip(final.layer.head(3), final["head"].head(3)))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for (layer, head), line in rows.sort_values("tokens_seen").groupby(["layer", "head"]):
        named = (layer, head) in top
        ax.plot(line.tokens_seen, line.value, color=MODEL_COLORS[layer % len(MODEL_COLORS)],
                lw=2 if named else 0.8, alpha=1 if named else 0.5, label=f"L{layer}H{head}" if named else None)
    own = heads[(heads.model == model) & (heads.score == f"{score}_pretrain") & (heads.tokens_seen > 0)]
    if len(own):
        best = own.groupby("tokens_seen").value.max()
        ax.plot(best.index, best.values, "k--", lw=1.2, label="best head, own tasks")
    level = chance[(chance.model == model) & (chance.score == score)].chance
    if len(level):
        ax.axhline(level.iloc[0], color="0.5", ls=":", lw=1, label="chance (uniform attention)")
    _over_training(ax, windows, model)
    ax.set_ylabel(f"{score} score")
    ax.set_title(f"{model}: attention from a repeated x to the y after its first copy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def top_head_attention(attention: pd.DataFrame, heads: pd.DataFrame, score: str, probe) -> plt.Figure:
    """Where the three best probe heads of the final checkpoint attend from the repeated x-token, then and
    at the first trained checkpoint; the y after the earlier copy of that x is marked."""
    model = sorted(heads.model.unique())[0]
    rows = heads[(heads.model == model) & (heads.score == score)]
    final = rows[rows.step == rows.step.max()].sort_values("value", ascending=False).head(3)
    attention = attention[attention.model == model]
    steps = [s for s in sorted(attention.step.unique()) if s > 0][:1] + [attention.step.max()]
    fig, axes = plt.subplots(1, len(final), figsize=(4 * len(final), 3.4), sharey=True, squeeze=False)
    for ax, (_, head) in zip(axes[0], final.iterrows()):
        for step, style in zip(steps, ["--", "-"]):
            line = attention[(attention.step == step) & (attention.layer == head.layer)
                             & (attention["head"] == head["head"])]
            ax.plot(line.key, line.attention, style, marker="o", ms=2.5, label=f"step {step}")
        ax.axvline(2 * probe.earlier + 1, color="firebrick", lw=1, label="y after the earlier copy")
        ax.set_title(f"L{head.layer}H{head['head']} ({score} {head.value:.2f})")
        ax.set_xlabel("key position (even: x-tokens, odd: y-tokens)")
    axes[0, 0].set_ylabel(f"attention from x at pair {probe.later}")
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def draws(t: dict, cfg) -> dict:
    """Each figure of the module, from the run's tables."""
    windows, score = t["phase_window"], cfg.analysis.window.score
    return {
        "regression_mse": lambda: mse_by_position(t["regression_eval"], windows, cfg.figures.heatmap_checkpoints),
        "regression_deltas": lambda: baseline_deltas(t["regression_eval"], windows),
        "regression_probe": lambda: probe_ranking(t["head_scores"], t["chance_levels"], windows, score),
        "regression_attention": lambda: top_head_attention(t["probe_attention"], t["head_scores"], score,
                                                           cfg.analysis.probe),
    }


def main():
    figure_step("regression_figures", "Draw the figures of an in-context-regression run from its tables.", draws)


if __name__ == "__main__":
    run_cli(main)
