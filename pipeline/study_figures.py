"""Figures that span a study's members (PNG + PDF): best prefix-matching score and ICL score per variant
with a band over seeds, the phase-change windows of every member, the joint per-token-loss PCA, and the
derivative of the loss curve in log tokens (the bump of the phase change).

Like the run figure modules, each function takes the study's tidy tables and returns a matplotlib Figure; the
study figures a kind adds (its `study_figures`) are drawn here too.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from pipeline.cli import cli
from pipeline.io import run_cli
from pipeline.outputs import kind_study_figures, study_figure_names
from pipeline.plotting import MODEL_COLORS, log_tokens_axis, save, trained_only
from pipeline.registry import resolved
from pipeline.study import variant_keys


def variants(table: pd.DataFrame, variant: list[str]):
    """(label, colour, rows) per variant, in a stable order."""
    for i, (key, rows) in enumerate(table.groupby(variant, sort=True)):
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join([str(key[0]), *[f"{k}={v}" for k, v in zip(variant[1:], key[1:])]])
        yield label, MODEL_COLORS[i % len(MODEL_COLORS)], rows


def band_lines(bands: pd.DataFrame, variant: list[str], ylabel: str, title: str, band: str) -> plt.Figure:
    """Median over the band (line) and its min-max (shaded) vs tokens seen, one colour per variant."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, color, rows in variants(trained_only(bands), variant):
        rows = rows.sort_values("tokens_seen")
        ax.plot(rows.tokens_seen, rows["median"], "o-", ms=2.5, lw=1.4, color=color,
                label=f"{label} (n={rows.n_members.max()})")
        ax.fill_between(rows.tokens_seen, rows["min"], rows["max"], color=color, alpha=0.2, lw=0)
    log_tokens_axis(ax)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title}\nline: median over {band}; band: min-max")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def windows_dotplot(windows: pd.DataFrame, onsets: pd.DataFrame, variant: list[str], band: str) -> plt.Figure:
    """Each member's phase-change window (start to end, in tokens) per variant; the onset spread over the
    band is written beside it. Variants without a window say so."""
    labels = list(variants(windows, variant))
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(labels) + 1.5))
    for y, (label, color, rows) in enumerate(labels):
        found = rows[rows.has_window.astype(bool)].sort_values(band if band in rows.columns else "run")
        offsets = np.linspace(-0.2, 0.2, max(len(found), 1))
        for dy, (_, w) in zip(offsets, found.iterrows()):
            ax.plot([w.start_tokens, w.end_tokens], [y + dy] * 2, "-", color=color, lw=2)
            ax.plot(w.start_tokens, y + dy, "o", color=color, ms=5)
            ax.plot(w.end_tokens, y + dy, "|", color=color, ms=9)
        onset = onsets.merge(rows[variant].drop_duplicates(), on=variant).iloc[0]
        text = (f"onset {onset.start_tokens_min / 1e6:.2g}-{onset.start_tokens_max / 1e6:.2g}M tokens "
                f"({onset.n_with_window}/{onset.n_members})" if onset.n_with_window else
                f"no window in {onset.n_members} member(s)")
        ax.annotate(text, (1.01, y), xycoords=("axes fraction", "data"), va="center", fontsize=7, color=color)
    ax.set_yticks(range(len(labels)), [label for label, _, _ in labels], fontsize=8)
    ax.set_ylim(-0.6, len(labels) - 0.4)
    ax.invert_yaxis()
    log_tokens_axis(ax)
    found = windows[windows.has_window.astype(bool)]
    if len(found):
        ax.set_xlim(found.start_tokens.min() / 2, found.end_tokens.max() * 2)
    ax.set_title(f"Phase-change window of each member (dot: start, bar: end; one row per {band})")
    fig.tight_layout()
    return fig


def joint_pca(pca: pd.DataFrame, windows: pd.DataFrame, variant: list[str]) -> plt.Figure:
    """Every member's trajectory through the study's shared per-token-loss PC space, coloured by variant;
    the checkpoints inside a member's window are drawn thick, its first checkpoint as a square."""
    fig, ax = plt.subplots(figsize=(7, 5.5))
    for label, color, rows in variants(pca, variant):
        for i, (run, line) in enumerate(rows.groupby("run")):
            line = line.sort_values("step")
            ax.plot(line.pc1, line.pc2, "-", color=color, lw=0.9, alpha=0.7, label=label if i == 0 else None)
            ax.plot(line.pc1.iloc[0], line.pc2.iloc[0], "s", color=color, ms=4)
            w = windows[(windows.run == run) & (windows.model == line.model.iloc[0]) & windows.has_window.astype(bool)]
            if len(w):
                inside = line[line.tokens_seen.between(w.start_tokens.iloc[0], w.end_tokens.iloc[0])]
                ax.plot(inside.pc1, inside.pc2, "-", color=color, lw=3.5, alpha=0.9)
    ax.set_xlabel(f"PC1 ({pca.pc1_explained.iloc[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({pca.pc2_explained.iloc[0]:.0%} of variance)")
    ax.set_title("Joint per-token-loss PCA over every model and checkpoint\n"
                 "(square: first trained checkpoint; thick: phase-change window)")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def loss_derivative(icl: pd.DataFrame, variant: list[str], band: str) -> plt.Figure:
    """d(eval loss)/d(log tokens) between checkpoints: median over the band and its min-max. The phase
    change shows as a bump: the loss falls faster in log time while induction heads form."""
    icl = trained_only(icl).sort_values("tokens_seen")
    rows = []
    for keys, line in icl.groupby(["run", *variant]):
        slope = np.gradient(line.loss.to_numpy(), np.log(line.tokens_seen.to_numpy()))
        rows.append(line[[*variant, "step", "tokens_seen"]].assign(slope=slope))
    slopes = pd.concat(rows).groupby([*variant, "step", "tokens_seen"]).slope.agg(["median", "min", "max"])
    slopes = slopes.reset_index().assign(n_members=icl.groupby(variant).run.nunique().max())
    fig = band_lines(slopes, variant, "d loss / d ln(tokens)  (nats)", "Loss-curve derivative", band)
    fig.axes[0].axhline(0, color="gray", lw=0.8)
    return fig


def llc_stage_bands(bands: pd.DataFrame, recurrence: pd.DataFrame, variant: list[str], band: str) -> plt.Figure:
    """The LLC per variant (median over the band, min-max shaded) with the stage boundaries a majority of the
    members show: dashed at their median tokens, shaded over the stretch all their intervals share."""
    fig = band_lines(bands, variant, "LLC estimate", "LLC per variant; dashed: stage boundaries a majority of "
                     f"the {band}s show", band)
    ax = fig.axes[0]
    for _, color, rows in variants(trained_only(bands), variant):
        stages = recurrence.merge(rows[variant].drop_duplicates(), on=variant)
        for _, stage in stages[stages.stage.astype(bool)].iterrows():
            ax.axvline(stage.tokens_median, color=color, ls="--", lw=1)
            ax.axvspan(stage.common_lower, stage.common_upper, color=color, alpha=0.08, lw=0)
    return fig




def main():
    args, cfg = cli("Draw the figures of a study from its tables.", tables="directory of the study's tables (*.csv)",
                    spec="the study's study.yaml", out="figure directory")
    spec = OmegaConf.to_container(OmegaConf.load(args.spec))
    names = study_figure_names(spec["kind"], spec.get("llc", False))
    kind_figures = kind_study_figures(names)
    llc = ["llc_bands", "stage_recurrence"] if "study_llc" in names else []
    t = {name: pd.read_csv(args.tables / f"{name}.csv")
         for name in ["icl", "phase_window", "best_score_bands", "icl_bands", "onsets", "joint_pca", *llc,
                      *[table for figure in kind_figures.values() for table in figure.tables]]}
    variant, band = variant_keys(t["icl"], spec["swept"], spec["band"]), spec["band"]
    score = spec["score"].replace("_", "-")
    draw = {
        "study_best_score": lambda: band_lines(t["best_score_bands"], variant, f"best head's {score} score",
                                               f"Best {score} score per variant", band),
        "study_icl": lambda: band_lines(t["icl_bands"], variant, "ICL score (nats)", "ICL score per variant", band),
        "study_windows": lambda: windows_dotplot(t["phase_window"], t["onsets"], variant, band),
        "study_pca": lambda: joint_pca(t["joint_pca"], t["phase_window"], variant),
        "study_loss_derivative": lambda: loss_derivative(t["icl"], variant, band),
        "study_llc": lambda: llc_stage_bands(t["llc_bands"], t["stage_recurrence"], variant, band),
        **{name: (lambda f=figure: resolved(f.draw)(*(t[n] for n in f.tables), variant, band))
           for name, figure in kind_figures.items()},
    }
    for name in names:
        save(draw[name](), args.out / name, cfg.figures.formats, cfg.figures.dpi)


if __name__ == "__main__":
    run_cli(main)
