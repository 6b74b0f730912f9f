"""Figures of the local learning coefficient over training (analysis.llc.enabled; hub models: analysis.llc.hub), beside the window.

Stage boundaries follow Hoogland et al. 2024: the checkpoints where d LLC / d log t changes sign.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pipeline.figures import band_lines, circuit_heads
from pipeline.io import run_cli
from pipeline.plotting import log_tokens_axis, models_of, shade_windows, trained_only
from pipeline.snapshots import figure_step


def llc_slope(llc: pd.DataFrame) -> pd.DataFrame:
    """d LLC / d log(tokens) between consecutive trained checkpoints of each model (at their log-midpoint),
    and the stage boundaries: the midpoints where its sign changes (`boundary` True)."""
    rows = []
    for model, line in trained_only(llc).sort_values("tokens_seen").groupby("model"):
        log_t, value = np.log(line.tokens_seen.to_numpy(float)), line.llc_mean.to_numpy()
        slope = np.diff(value) / np.diff(log_t)
        sign_change = np.r_[False, np.sign(slope[1:]) != np.sign(slope[:-1])][:len(slope)]  # none: one trained
        rows.append(pd.DataFrame({"model": model, "tokens_seen": np.exp((log_t[1:] + log_t[:-1]) / 2),
                                  "slope": slope, "boundary": sign_change}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["model", "tokens_seen", "slope",
                                                                                 "boundary"])


def llc_over_training(llc: pd.DataFrame, windows: pd.DataFrame) -> plt.Figure:
    """LLC (mean +- std over chains) vs tokens seen, one line per model."""
    fig, ax = band_lines(llc, windows, "llc_mean", "llc_std")
    ax.set_ylabel("local learning coefficient")
    log_tokens_axis(ax)
    ax.legend()
    ax.set_title("LLC over training")
    fig.tight_layout()
    return fig


def slope_against_prefix_matching(llc: pd.DataFrame, heads: pd.DataFrame, windows: pd.DataFrame,
                                  score: str) -> plt.Figure:
    """d LLC / d log t with its sign changes (stage boundaries), on the axis of the best head's `score`."""
    slopes = llc_slope(llc)
    models = models_of(slopes) if len(slopes) else []
    fig, axes = plt.subplots(1, max(len(models), 1), figsize=(4.6 * max(len(models), 1), 3.6), squeeze=False)
    for ax, model in zip(axes[0], models):
        line = slopes[slopes.model == model]
        shade_windows(ax, windows, model)
        ax.plot(line.tokens_seen, line.slope, "o-", ms=3, color="black", label="d LLC / d log t")
        for boundary in line.tokens_seen[line.boundary]:
            ax.axvline(boundary, color="purple", ls=":", lw=1.2)
        ax.axhline(0, color="gray", lw=0.8)
        best = trained_only(heads[(heads.model == model) & (heads.score == score)]).groupby("tokens_seen").value.max()
        twin = ax.twinx()
        twin.plot(best.index, best.values, color="crimson", lw=1.2, label=f"best {score}")
        twin.set_ylabel(f"best {score}", color="crimson")
        ax.set_ylabel("d LLC / d log tokens")
        ax.set_title(f"{model} (dotted: stage boundaries)")
        log_tokens_axis(ax)
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
        "llc_slope": lambda: slope_against_prefix_matching(t["llc"], t["head_scores"], windows, score),
        "llc_heads": lambda: head_llc(t["llc_heads"], t["head_scores"], windows, score),
        "llc_traces": lambda: sgld_traces(t["llc_trace"], cfg.analysis.llc.burn_in),
    }


def main():
    figure_step("llc_figures", "Draw the LLC figures of a run from its tables.", draws)


if __name__ == "__main__":
    run_cli(main)
