"""What every figure module shares: matplotlib set up for files (Agg, no creation dates), the house style,
the phase-change window shading, the log tokens axis, and atomic saving in each configured format."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline.io import atomic_path  # noqa: E402

plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.spines.top": False,
                     "axes.spines.right": False, "legend.frameon": False})
WINDOW_STYLE = dict(color="gold", alpha=0.3, lw=0)
TOKENS = "tokens seen (training)"
MODEL_COLORS = plt.get_cmap("tab10").colors


def models_of(table: pd.DataFrame) -> list[str]:
    """The models of a table, sorted."""
    return sorted(table.model.unique())


def shade_windows(ax, windows: pd.DataFrame, model: str | None = None):
    """Shade the phase-change window of `model` (or of every model that has one)."""
    rows = windows[windows.has_window & ((windows.model == model) if model else True)]
    for _, w in rows.iterrows():
        ax.axvspan(w.start_tokens, w.end_tokens, **WINDOW_STYLE,
                   label=None if model else f"phase change ({w.model})")


def log_tokens_axis(ax):
    """A log-scaled x-axis of tokens seen."""
    ax.set_xscale("log")
    ax.set_xlabel(TOKENS)


def trained_only(table: pd.DataFrame) -> pd.DataFrame:
    """Drop step 0, which a log-scaled tokens axis cannot show."""
    return table[table.tokens_seen > 0]


def save(fig: plt.Figure, stem: Path, formats, dpi: int, note: str | None = None):
    """Write the figure in each format, atomically; no creation date, so reruns give identical bytes.
    `note` (the checkpoint-integrity warning) is printed under the figure."""
    if note:
        fig.text(0.01, -0.02, note, ha="left", va="top", fontsize=8, color="firebrick", wrap=True)
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        metadata = {"CreationDate": None} if fmt == "pdf" else {}
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight", metadata=metadata)
    plt.close(fig)


def band_lines(table: pd.DataFrame, windows: pd.DataFrame, value: str, spread: str):
    """A figure with one line of `value` +- `spread` per model vs tokens seen (log), the windows shaded."""
    fig, ax = plt.subplots(figsize=(6, 4))
    shade_windows(ax, windows)
    for i, (model, line) in enumerate(trained_only(table).groupby("model")):
        ax.plot(line.tokens_seen, line[value], "o-", ms=3, color=MODEL_COLORS[i], label=model)
        ax.fill_between(line.tokens_seen, line[value] - line[spread], line[value] + line[spread],
                        color=MODEL_COLORS[i], alpha=0.2, lw=0)
    return fig, ax


def circuit_heads(heads: pd.DataFrame, model: str, score: str) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """(previous-token head, induction head) of a model at its final checkpoint: the best `score` head in a
    layer >= 1, and the best previous-token head in an earlier layer; None for 1-layer models."""
    final = heads[(heads.model == model) & (heads.step == heads[heads.model == model].step.max())]
    later = final[(final.score == score) & (final.layer >= 1)]
    if later.empty:
        return None
    induction = later.loc[later.value.idxmax()]
    earlier = final[(final.score == "previous_token") & (final.layer < induction.layer)]
    previous = earlier.loc[earlier.value.idxmax()]
    return (int(previous.layer), int(previous["head"])), (int(induction.layer), int(induction["head"]))
