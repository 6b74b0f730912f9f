"""Figures for a run whose models each have one checkpoint (hub family `final`: gpt2-small, a released
Pythia): every figure whose x-axis is training time becomes a per-head heatmap or a per-model bar chart
of that checkpoint, under the same name, so the report keeps its layout.

Each figure module declares its own views, `{name: (tables, cfg) -> Figure}`, from these panels; the figure step
(pipeline.figure_step) draws them instead when `single_checkpoint(head_scores)`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from pipeline.plotting import MODEL_COLORS, models_of


def single_checkpoint(heads: pd.DataFrame) -> bool:
    """Whether every model of the run has exactly one checkpoint."""
    return bool(len(heads)) and bool((heads.groupby("model").step.nunique() == 1).all())


def head_grids(panels: list[tuple[str, pd.DataFrame]], value: str, label: str, vmin=None, vmax=None,
               cmap="viridis") -> plt.Figure:
    """One layer x head heatmap per (title, rows with layer/head/value) panel, three panels a row."""
    n_cols = min(3, len(panels))
    n_rows = -(-len(panels) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4 * n_cols, 3.4 * n_rows), squeeze=False, layout="constrained")
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (title, rows) in zip(axes.flat, panels):
        grid = rows.pivot_table(index="layer", columns="head", values=value).to_numpy()
        image = ax.imshow(grid, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
        ax.set_xticks(range(0, grid.shape[1], max(1, grid.shape[1] // 12)))
        ax.set_yticks(range(0, grid.shape[0], max(1, grid.shape[0] // 12)))
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_title(title, fontsize=9)
        fig.colorbar(image, ax=ax, shrink=0.8, label=label)
    return fig


def bars(rows: pd.DataFrame, value: str, label: str, by: str = "model", err: str | None = None,
         title: str = "") -> plt.Figure:
    """One bar per `by` value (with an error bar from column `err`)."""
    fig, ax = plt.subplots(figsize=(max(3.5, 0.9 * len(rows) + 1.5), 3.4))
    ax.bar(rows[by].astype(str), rows[value], yerr=rows[err] if err else None, capsize=4,
           color=[MODEL_COLORS[i % len(MODEL_COLORS)] for i in range(len(rows))])
    ax.axhline(0, color="gray", lw=0.8)
    ax.set_ylabel(label)
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", rotation=30, labelsize=8)
    fig.tight_layout()
    return fig


def note(text: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 1.6))
    ax.text(0.5, 0.5, text, ha="center", va="center", color="gray", wrap=True)
    ax.axis("off")
    return fig


def per_model(table: pd.DataFrame, query: str = "") -> list[tuple[str, pd.DataFrame]]:
    rows = table.query(query) if query else table
    return [(model, rows[rows.model == model]) for model in models_of(table)]


def head_scores(t, cfg, names=None) -> plt.Figure:
    names = names or list(cfg.analysis.head_scores.names)
    panels = [(f"{model}: {name.replace('_', '-')}", rows[rows.score == name])
              for name in names for model, rows in per_model(t["head_scores"])]
    return head_grids(panels, "value", "score", 0, 1)


def composition(t, cfg) -> plt.Figure:
    rows = t["composition"][t["composition"]["mode"] == "K"]
    if rows.empty:
        return note("no composition scores (the model has one layer)")
    best = rows.groupby(["model", "layer_to", "head_to"]).above_baseline.max().reset_index()
    panels = [(f"{model}: best K-composition into each head", part.rename(columns={"layer_to": "layer",
                                                                                    "head_to": "head"}))
              for model, part in per_model(best)]
    return head_grids(panels, "above_baseline", "K-composition above the random baseline", cmap="RdBu_r")
