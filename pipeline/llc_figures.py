"""Figures of the local learning coefficient over training (analysis.llc.enabled; hub models: analysis.llc.hub), beside the window.

Stage boundaries follow Hoogland et al. 2024: the critical points of a GP-smoothed LLC curve (pipeline.stages).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from pipeline.figure_step import figure_step
from pipeline.io import run_cli
from pipeline.plotting import band_lines, circuit_heads, log_tokens_axis, models_of, shade_windows, trained_only
from pipeline.snapshots import bars, head_grids, note, per_model
from pipeline.stages import Z95


def llc_over_training(llc: pd.DataFrame, windows: pd.DataFrame) -> plt.Figure:
    """LLC (mean +- std over chains) vs tokens seen, one line per model."""
    fig, ax = band_lines(llc, windows, "llc_mean", "llc_std")
    ax.set_ylabel("local learning coefficient")
    log_tokens_axis(ax)
    ax.legend()
    ax.set_title("LLC over training")
    fig.tight_layout()
    return fig


def stages_against_prefix_matching(llc: pd.DataFrame, curve: pd.DataFrame, stages: pd.DataFrame, heads: pd.DataFrame,
                                   windows: pd.DataFrame, score: str) -> plt.Figure:
    """Per model: the LLC estimates with the GP-smoothed curve and its band (top), d LLC / d log t of the smoothed
    curve with its 95% band (bottom), the stage boundaries with their intervals, and the best head's `score`."""
    models = models_of(curve) if len(curve) else []
    fig, axes = plt.subplots(2, max(len(models), 1), figsize=(4.6 * max(len(models), 1), 6.4), squeeze=False,
                             sharex="col")
    for (top, bottom), model in zip(axes.T, models):
        line, points = curve[curve.model == model], trained_only(llc[llc.model == model])
        top.errorbar(points.tokens_seen, points.llc_mean, yerr=points.llc_std, fmt="o", ms=3, color="0.5", capsize=2)
        top.plot(line.tokens_seen, line.llc_smooth, color="black", label="GP posterior mean")
        top.fill_between(line.tokens_seen, line.llc_smooth - Z95 * line.llc_smooth_sd,
                         line.llc_smooth + Z95 * line.llc_smooth_sd, color="0.8", lw=0)
        bottom.plot(line.tokens_seen, line.slope, color="black", label="d LLC / d log t")
        bottom.fill_between(line.tokens_seen, line.slope - Z95 * line.slope_sd, line.slope + Z95 * line.slope_sd,
                            color="0.8", lw=0, label="95% band")
        bottom.axhline(0, color="gray", lw=0.8)
        for ax in (top, bottom):
            shade_windows(ax, windows, model)
            for _, b in stages[stages.model == model].iterrows():
                ax.axvspan(b.lower_tokens, b.upper_tokens, color="purple", alpha=0.12, lw=0)
                ax.axvline(b.tokens_seen, color="purple", ls=":", lw=1.2)
        best = trained_only(heads[(heads.model == model) & (heads.score == score)]).groupby("tokens_seen").value.max()
        twin = bottom.twinx()
        twin.plot(best.index, best.values, color="crimson", lw=1.2)
        twin.set_ylabel(f"best {score}", color="crimson")
        top.set_ylabel("local learning coefficient")
        bottom.set_ylabel("d LLC / d log tokens")
        top.set_title(f"{model}: stage boundaries (purple): {len(stages[stages.model == model])}")
        log_tokens_axis(bottom)
    fig.tight_layout()
    return fig


def head_llc(llc_heads: pd.DataFrame, heads: pd.DataFrame, windows: pd.DataFrame, score: str) -> plt.Figure:
    """Weight-refined LLC of each last-layer head over training; the induction head in colour."""
    llc_heads = trained_only(llc_heads)
    models = models_of(llc_heads) if len(llc_heads) else []
    fig, axes = plt.subplots(1, max(len(models), 1), figsize=(4.6 * max(len(models), 1), 3.6), squeeze=False)
    for ax, model in zip(axes[0], models):
        circuit = circuit_heads(heads, model, score)
        shade_windows(ax, windows, model)
        for (layer, head), line in llc_heads[llc_heads.model == model].groupby(["layer", "head"]):
            induction = circuit is not None and circuit[1] == (layer, head)
            ax.errorbar(line.tokens_seen, line.llc_mean, yerr=line.llc_std, marker="o", ms=3, capsize=2,
                        color="crimson" if induction else "0.6", lw=2 if induction else 1,
                        label=f"L{layer}H{head}" + (f" ({score} head)" if induction else ""))
        ax.set_ylabel("refined LLC (head's weights only)")
        ax.set_title(model)
        log_tokens_axis(ax)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def sgld_traces(trace: pd.DataFrame, burn_in: int) -> plt.Figure:
    """Calibration: every chain's SGLD loss trace at the first, middle and last trained checkpoints of each
    model; burn-in shaded. A calibrated sampler is flat after burn-in, chains agreeing."""
    trace = trained_only(trace) if (trace.tokens_seen > 0).any() else trace  # one released checkpoint: step 0
    models = models_of(trace)
    fig, axes = plt.subplots(len(models), 3, figsize=(12, 2.8 * len(models)), squeeze=False)
    for row, model in enumerate(models):
        rows = trace[trace.model == model]
        steps = sorted(rows.step.unique())
        for ax in axes[row, len(set(steps[:3])):]:  # fewer than three checkpoints
            ax.axis("off")
        for ax, step in zip(axes[row], sorted({steps[0], steps[len(steps) // 2], steps[-1]})):
            for chain, line in rows[rows.step == step].groupby("chain"):
                ax.plot(line.sgld_step, line.loss, lw=0.8, label=f"chain {chain}")
            ax.axvspan(0, burn_in, color="0.9", lw=0)
            ax.set_title(f"{model}, step {step}", fontsize=9)
            ax.set_xlabel("SGLD step")
            ax.set_ylabel("sampled loss")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def draws(t: dict, cfg) -> dict:
    """Each figure of the module, from the run's tables."""
    windows, score = t["phase_window"], cfg.analysis.window.score
    return {
        "llc": lambda: llc_over_training(t["llc"], windows),
        "llc_slope": lambda: stages_against_prefix_matching(t["llc"], t["llc_smoothed"], t["llc_stages"],
                                                            t["head_scores"], windows, score),
        "llc_heads": lambda: head_llc(t["llc_heads"], t["head_scores"], windows, score),
        "llc_traces": lambda: sgld_traces(t["llc_trace"], cfg.analysis.llc.burn_in),
    }


SNAPSHOTS = {  # a run of released weights, one checkpoint per model: per-model and per-head views
    "llc": lambda t, cfg: bars(t["llc"], "llc_mean", "LLC", err="llc_std", title="local learning coefficient"),
    "llc_slope": lambda t, cfg: note("d LLC / d log t needs two or more checkpoints"),
    "llc_heads": lambda t, cfg: head_grids([(f"{model}: refined LLC", rows) for model, rows in per_model(t["llc_heads"])],
                                           "llc_mean", "refined LLC"),
}


def main():
    figure_step("llc_figures", "Draw the LLC figures of a run from its tables.", draws, SNAPSHOTS)


if __name__ == "__main__":
    run_cli(main)
