"""Figures of the run (PNG + PDF), each with the detected phase-change window shaded.

Every plotting function takes the tidy tables (DataFrames) and returns a matplotlib Figure, so the
figures can be rebuilt in a notebook from results/<run>/tables/*.csv without rerunning anything.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline.figure_step import figure_step  # noqa: E402
from pipeline.io import run_cli  # noqa: E402
from pipeline.kinds.language.snapshots import PHASE_SNAPSHOTS  # noqa: E402
from pipeline.phase import steps_around_window  # noqa: E402
from pipeline.plotting import (  # noqa: E402
    MODEL_COLORS,
    band_lines,
    circuit_heads,
    log_tokens_axis,
    models_of,
    shade_windows,
    trained_only,
)


def head_score_lines(heads: pd.DataFrame, windows: pd.DataFrame, scores: list[str]) -> plt.Figure:
    """Each head's score vs tokens seen: one row per score, one column per model; colour = layer."""
    heads = trained_only(heads)
    models = models_of(heads)
    fig, axes = plt.subplots(len(scores), len(models), figsize=(4.2 * len(models), 2.6 * len(scores)),
                             squeeze=False, sharex=True, sharey="row")
    for col, model in enumerate(models):
        for row, score in enumerate(scores):
            ax = axes[row, col]
            subset = heads[(heads.model == model) & (heads.score == score)]
            for (layer, head), line in subset.groupby(["layer", "head"]):
                ax.plot(line.tokens_seen, line.value, color=MODEL_COLORS[layer], lw=1.2, alpha=0.85,
                        label=f"layer {layer}" if head == 0 else None)
            shade_windows(ax, windows, model)
            log_tokens_axis(ax)
            ax.set_ylim(0, 1)
            ax.set_title(f"{model}: {score.replace('_', '-')}")
            if col == 0:
                ax.set_ylabel(f"{score.replace('_', '-')} score")
        axes[0, col].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def head_heatmaps(heads: pd.DataFrame, windows: pd.DataFrame, score: str, n_checkpoints: int) -> plt.Figure:
    """Layer x head heatmaps of `score` per model at the first, window-start, window-end, last checkpoints."""
    models = models_of(heads)
    heads = heads[heads.score == score]
    picks = steps_around_window(heads.step.unique().tolist(), windows, n_checkpoints)
    layers = [heads[heads.model == m].layer.max() + 1 for m in models]
    fig, axes = plt.subplots(len(models), len(picks), figsize=(2.4 * len(picks), 0.9 + 0.55 * sum(layers)),
                             squeeze=False, layout="constrained", gridspec_kw={"height_ratios": layers})
    for row, model in enumerate(models):
        for col, step in enumerate(picks):
            ax = axes[row, col]
            at = heads[(heads.model == model) & (heads.step == step)]
            grid = at.pivot(index="layer", columns="head", values="value").to_numpy()
            image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
            for (layer, head), value in np.ndenumerate(grid):
                ax.text(head, layer, f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if value > 0.6 else "white")
            ax.set_xticks(range(grid.shape[1]))
            ax.set_yticks(range(grid.shape[0]))
            if row == len(models) - 1:
                ax.set_xlabel("head")
            if col == 0:
                ax.set_ylabel(f"{model}\nlayer")
            if row == 0:
                ax.set_title(f"step {step}\n{at.tokens_seen.iloc[0]:.2g} tokens", fontsize=9)
    fig.colorbar(image, ax=axes, label=f"{score.replace('_', '-')} score", shrink=0.9)
    return fig


def icl_score(icl: pd.DataFrame, windows: pd.DataFrame) -> plt.Figure:
    """ICL score (late - early token loss) vs tokens seen, one line per model with +-1 SE bands."""
    icl = trained_only(icl)
    fig, ax = band_lines(icl, windows, "icl_score", "icl_se")
    ax.axhline(0, color="gray", lw=0.8)
    first = icl.iloc[0]
    ax.set_ylabel(f"ICL score (nats)\nloss@{first.icl_late} - loss@{first.icl_early}")
    log_tokens_axis(ax)
    ax.legend()
    ax.set_title("In-context learning score over training")
    fig.tight_layout()
    return fig


def k_composition(composition: pd.DataFrame, heads: pd.DataFrame, windows: pd.DataFrame, score: str) -> plt.Figure:
    """K-composition above its random baseline of every (earlier, later) head pair vs tokens seen: the pair
    from the previous-token head into the induction head in colour, the others in grey; one panel per
    model with more than one layer."""
    composition = trained_only(composition[composition["mode"] == "K"])
    models = [m for m in models_of(composition) if circuit_heads(heads, m, score)]
    fig, axes = plt.subplots(1, max(len(models), 1), figsize=(4.6 * max(len(models), 1), 3.6), squeeze=False)
    for ax, model in zip(axes[0], models):
        (l0, h0), (l1, h1) = circuit_heads(heads, model, score)
        rows = composition[composition.model == model]
        shade_windows(ax, windows, model)
        for (la, ha, lb, hb), line in rows.groupby(["layer_from", "head_from", "layer_to", "head_to"]):
            circuit = (la, ha, lb, hb) == (l0, h0, l1, h1)
            ax.plot(line.tokens_seen, line.above_baseline, color="crimson" if circuit else "0.75",
                    lw=2 if circuit else 0.8, zorder=3 if circuit else 1,
                    label=f"L{l0}H{h0} (previous-token) -> L{l1}H{h1} ({score})" if circuit else None)
        ax.axhline(0, color="gray", lw=0.8, ls="--")
        ax.set_title(model)
        ax.set_ylabel("K-composition - random baseline")
        log_tokens_axis(ax)
        ax.legend(fontsize=8, loc="upper left")
    if not models:
        axes[0, 0].text(0.5, 0.5, "no model with more than one layer", ha="center", transform=axes[0, 0].transAxes)
        axes[0, 0].set_axis_off()
    fig.tight_layout()
    return fig


def loss_curves(icl: pd.DataFrame, train_log: pd.DataFrame, windows: pd.DataFrame) -> plt.Figure:
    """Eval loss at each checkpoint (markers) over the smoothed training loss (thin line)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    shade_windows(ax, windows)
    for i, model in enumerate(models_of(icl)):
        log = trained_only(train_log[train_log.model == model])
        smooth = log.train_loss.rolling(25, min_periods=1).mean()
        ax.plot(log.tokens_seen, smooth, color=MODEL_COLORS[i], lw=0.8, alpha=0.6)
        line = trained_only(icl[icl.model == model])
        ax.plot(line.tokens_seen, line.loss, "o-", ms=3, color=MODEL_COLORS[i], label=f"{model} (eval)")
    log_tokens_axis(ax)
    ax.set_xlim(left=trained_only(icl).tokens_seen.min() / 2)
    ax.set_ylabel("loss (nats / token)")
    ax.set_ylim(top=min(ax.get_ylim()[1], 6))
    ax.legend()
    ax.set_title("Loss over training (thin: training loss, smoothed)")
    fig.tight_layout()
    return fig


def pca_trajectories(pca: pd.DataFrame, windows: pd.DataFrame) -> plt.Figure:
    """Each model's checkpoints in per-token-loss PC space, coloured by log tokens seen."""
    models = models_of(pca)
    fig, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 4), squeeze=False)
    for ax, model in zip(axes[0], models):
        points = pca[pca.model == model].sort_values("step")
        window = windows[(windows.model == model) & windows.has_window]
        ax.plot(points.pc1, points.pc2, "--", color="gray", lw=0.8)
        if len(window):
            inside = points[(points.tokens_seen >= window.start_tokens.iloc[0])
                            & (points.tokens_seen <= window.end_tokens.iloc[0])]
            ax.plot(inside.pc1, inside.pc2, "-", color="red", lw=2, label="phase-change window")
            ax.legend(loc="best", fontsize=8)
        dots = ax.scatter(points.pc1, points.pc2, c=np.log10(points.tokens_seen.clip(lower=1)), cmap="viridis",
                          s=22, zorder=3)
        ax.set_xlabel(f"PC1 ({points.pc1_explained.iloc[0]:.0%} of variance)")
        ax.set_ylabel(f"PC2 ({points.pc2_explained.iloc[0]:.0%} of variance)")
        ax.set_title(f"{model}: per-token loss PCA")
        fig.colorbar(dots, ax=ax, label="log10 tokens seen")
    fig.tight_layout()
    return fig


def loss_by_position(positions: pd.DataFrame, windows: pd.DataFrame, icl_positions) -> plt.Figure:
    """Loss vs token position at the first, pre-window, end-of-window and last checkpoints; dotted lines
    mark the two ICL-score positions."""
    models = models_of(positions)
    fig, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 3.8), squeeze=False, sharey=True)
    reference = windows[windows.has_window]
    for ax, model in zip(axes[0], models):
        subset = positions[positions.model == model]
        steps = sorted(subset.step.unique())
        picks = {steps[min(1, len(steps) - 1)]: "early", steps[-1]: "final"}  # one released checkpoint: final
        if len(reference):  # the same steps for every model, so 1L and 2L compare at equal training
            w = reference.iloc[0]
            picks[int(w.before_step)] = "before window"
            picks[int(w.end_step)] = "end of window"
        colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(picks)))
        for color, step in zip(colors, sorted(picks)):
            line = subset[subset.step == step].sort_values("position")
            ax.plot(line.position + 1, line.loss.rolling(5, center=True, min_periods=1).mean(), color=color,
                    label=f"step {step} ({picks[step]})")
        for position in icl_positions:
            ax.axvline(position + 1, color="gray", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("token position in context")
        ax.set_title(model)
        ax.legend(fontsize=8)
    axes[0, 0].set_ylabel("loss (nats / token)")
    fig.tight_layout()
    return fig


def draws(t: dict, cfg) -> dict:
    """Each figure of the module, from the run's tables."""
    windows, score = t["phase_window"], cfg.analysis.window.score
    return {
        "prefix_matching": lambda: head_score_lines(t["head_scores"], windows, [score]),
        "head_scores": lambda: head_score_lines(t["head_scores"], windows, list(cfg.analysis.head_scores.names)),
        "head_heatmaps": lambda: head_heatmaps(t["head_scores"], windows, score, cfg.figures.heatmap_checkpoints),
        "icl_score": lambda: icl_score(t["icl"], windows),
        "loss": lambda: loss_curves(t["icl"], t["train_log"], windows),
        "pca": lambda: pca_trajectories(t["pca"], windows),
        "k_composition": lambda: k_composition(t["composition"], t["head_scores"], windows, score),
        "loss_by_position": lambda: loss_by_position(t["loss_by_position"], windows,
                                                     t["icl"][["icl_early", "icl_late"]].iloc[0].tolist()),
    }


def main():
    figure_step("figures", "Draw the phase-change figures of a run from its tables.", draws, PHASE_SNAPSHOTS)


if __name__ == "__main__":
    run_cli(main)
