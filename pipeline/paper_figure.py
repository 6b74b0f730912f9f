"""The figure across kinds: one column per kind's run, over tokens seen — its circuit's best head score, its
distance to the optimal strategy, its LLC with stage boundaries — windows shaded, and a study's seed bands (median
dashed, min–max shaded) beside the run where the paper names one."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import NullFormatter

from pipeline.plotting import MODEL_COLORS, log_tokens_axis, shade_windows, trained_only
from pipeline.registry import KINDS, resolved
from pipeline.study import best_score

EMPTY = pd.DataFrame(columns=["model", "tokens_seen"])


def lines(ax, table: pd.DataFrame, value: str, spread: str | None = None):
    for i, (model, line) in enumerate(trained_only(table).sort_values("tokens_seen").groupby("model")):
        ax.plot(line.tokens_seen, line[value], "o-", ms=2.5, color=MODEL_COLORS[i], label=model)
        if spread:
            ax.fill_between(line.tokens_seen, line[value] - line[spread], line[value] + line[spread],
                            color=MODEL_COLORS[i], alpha=0.2, lw=0)


def matches(column: pd.Series, value) -> pd.Series:
    """Rows whose value of a swept key is `value` (numbers compared as numbers: a CSV reads 64 back as 64.0)."""
    numeric = pd.to_numeric(column, errors="coerce")
    if isinstance(value, (int, float)) and numeric.notna().any():
        return numeric == value
    return column.astype(str) == str(value)


def band_lines(ax, table: pd.DataFrame, variants: list[dict]):
    """Per variant (the run's models in the study), the band's median dashed and its min–max shaded."""
    for i, variant in enumerate(sorted(variants, key=lambda v: v["model"])):
        keep = pd.Series(True, index=table.index)
        for key, value in variant.items():
            keep &= matches(table[key], value) if key in table.columns else True
        band = trained_only(table[keep]).sort_values("tokens_seen")
        if len(band) and band.n_members.max() > 1:
            ax.plot(band.tokens_seen, band["median"], "--", lw=1, color=MODEL_COLORS[i],
                    label=f"{variant['model']}: median of {band.n_members.max()} seeds")
            ax.fill_between(band.tokens_seen, band["min"], band["max"], color=MODEL_COLORS[i], alpha=0.12, lw=0)


def column_rows(kind: str, tables: dict) -> list[tuple]:
    """A column's three rows: (table, value, spread, (a study's band table, the value it bands), y label)."""
    comparison = KINDS[kind].comparison
    return [(best_score(tables["head_scores"], comparison.score), "value", None,
             ("best_score_bands", comparison.score), f"best head's {comparison.score.replace('_', '-')} score"),
            (resolved(comparison.distance)(tables), "value", None, (None, None), comparison.distance_label),
            (tables.get("llc", EMPTY), "llc_mean", "llc_std", ("llc_bands", "llc_mean"), "LLC")]


def kinds_figure(columns: list[tuple[str, str, dict]], bands: dict[str, dict]) -> plt.Figure:
    """`columns`: (label, kind, its run's tables); `bands`: label -> the band tables of a study ("variants": the
    run's models in it)."""
    fig, axes = plt.subplots(3, len(columns), figsize=(4.6 * len(columns), 8.4), sharex="col", squeeze=False)
    for col, (label, kind, tables) in enumerate(columns):
        for row, (table, value, spread, (band, banded), ylabel) in enumerate(column_rows(kind, tables)):
            ax = axes[row, col]
            lines(ax, table, value, spread)
            if band in bands.get(label, {}):
                study = bands[label][band]
                band_lines(ax, study[study.value == banded], bands[label]["variants"])
            shade_windows(ax, tables["phase_window"])
            log_tokens_axis(ax)
            ax.xaxis.set_minor_formatter(NullFormatter())  # a narrow range would label its minor ticks, crowded
            ax.set_xlabel(ax.get_xlabel() if row == 2 else "")
            ax.set_ylabel(ylabel, fontsize=9)
        for _, stage in tables.get("llc_stages", EMPTY).iterrows():
            axes[2, col].axvline(stage.tokens_seen, color="gray", ls="--", lw=1)
        axes[0, col].set_title(f"{label} ({kind})")
        axes[0, col].legend(fontsize=7)
    fig.suptitle("The phase change across kinds: circuit, distance to the optimal strategy, LLC (gray dashed: stage "
                 "boundaries; shaded: the window; colored dashed: a study's seed median, min–max shaded)", fontsize=9)
    fig.tight_layout()
    return fig
