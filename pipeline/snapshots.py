"""Figures for a run whose models each have one checkpoint (hub family `final`: gpt2-small, a released
Pythia): every figure whose x-axis is training time becomes a per-head heatmap or a per-model bar chart
of that checkpoint, under the same name, so the report keeps its layout.

`SNAPSHOTS[name](tables, cfg) -> Figure`; the figure modules use it when `single_checkpoint(head_scores)`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from pipeline.cli import cli
from pipeline.integrity import integrity_note
from pipeline.outputs import FIGURE_INPUTS, figures_of
from pipeline.plotting import MODEL_COLORS, models_of, save


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


def parsed_heads(attribution: pd.DataFrame) -> pd.DataFrame:
    """Head rows of the logit-attribution table with layer and head parsed from 'L<l>H<h>'."""
    heads = attribution[attribution.kind == "head"].copy()
    parts = heads.component.str.extract(r"L(\d+)H(\d+)").astype(int)
    return heads.assign(layer=parts[0], head=parts[1])


def head_scores(t, cfg, names=None) -> plt.Figure:
    names = names or list(cfg.analysis.head_scores.names)
    panels = [(f"{model}: {name.replace('_', '-')}", rows[rows.score == name])
              for name in names for model, rows in per_model(t["head_scores"])]
    return head_grids(panels, "value", "score", 0, 1)


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


def composition(t, cfg) -> plt.Figure:
    rows = t["composition"][t["composition"]["mode"] == "K"]
    if rows.empty:
        return note("no composition scores (the model has one layer)")
    best = rows.groupby(["model", "layer_to", "head_to"]).above_baseline.max().reset_index()
    panels = [(f"{model}: best K-composition into each head", part.rename(columns={"layer_to": "layer",
                                                                                    "head_to": "head"}))
              for model, part in per_model(best)]
    return head_grids(panels, "above_baseline", "K-composition above the random baseline", cmap="RdBu_r")


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


SNAPSHOTS = {
    "prefix_matching": lambda t, cfg: head_scores(t, cfg, [cfg.analysis.window.score]),
    "head_scores": head_scores,
    "icl_score": lambda t, cfg: bars(t["icl"], "icl_score", "ICL score (nats)", err="icl_se",
                                     title="ICL score: loss at the late minus the early token"),
    "loss": lambda t, cfg: bars(t["icl"], "loss", "eval loss (nats / token)", title="eval loss"),
    "pca": lambda t, cfg: note("per-token-loss PCA over training needs two or more checkpoints"),
    "k_composition": composition,
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
    "llc": lambda t, cfg: bars(t["llc"], "llc_mean", "LLC", err="llc_std", title="local learning coefficient"),
    "llc_slope": lambda t, cfg: note("d LLC / d log t needs two or more checkpoints"),
    "llc_heads": lambda t, cfg: head_grids([(f"{model}: refined LLC", rows) for model, rows in per_model(t["llc_heads"])],
                                           "llc_mean", "refined LLC"),
}


def snapshot_draws(names: list[str], t: dict, cfg) -> dict:
    """The snapshot figure for each of `names` that has one (the others draw as usual)."""
    return {name: (lambda name=name: SNAPSHOTS[name](t, cfg)) for name in names if name in SNAPSHOTS}


def figure_step(module: str, description: str, draws) -> tuple[dict, object, Path]:
    """The CLI of a figure module: read the run tables it declares (pipeline.outputs.FIGURE_INPUTS), then draw
    and save its figures, `draws(tables, cfg) -> {name: () -> Figure}`. Returns the tables, config and figure
    directory for what else the module writes."""
    args, cfg = cli(description, tables="directory of the run's tables (*.csv)", out="figure directory")
    tables = {name: pd.read_csv(args.tables / f"{name}.csv", keep_default_na=False, na_values=[""])
              for name in FIGURE_INPUTS[module][0]}
    save_figures(module, draws(tables, cfg), tables, cfg, args.tables, args.out)
    return tables, cfg, args.out


def save_figures(module: str, draw: dict, tables: dict, cfg, tables_dir: Path, out: Path):
    """Draw and save every figure `module` owns (pipeline.outputs), each from its `draw[name]()`; a run of
    released weights only (one checkpoint per model) gets the per-head / per-model views instead."""
    if single_checkpoint(tables["head_scores"]):
        draw = {**draw, **snapshot_draws(list(draw), tables, cfg)}
    note = integrity_note(tables_dir / "integrity.csv")
    for name in figures_of(module):
        save(draw[name](), out / name, cfg.figures.formats, cfg.figures.dpi, note)
