"""Figures of the causal tables (PNG + PDF; the token-loss change also as HTML): ablation, patching,
direct logit attribution, copying vs prefix-matching, and per-token losses before/after the window.

Like pipeline.figures, each function takes tidy tables and returns a matplotlib Figure.
"""

from __future__ import annotations

import html

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pipeline.config import cli
from pipeline.figures import MODEL_COLORS, _log_tokens, _models, _shade, _trained, save
from pipeline.integrity import integrity_note
from pipeline.io import UserError, atomic_path, run_cli
from pipeline.outputs import figures_of, tables_of

ABLATION_STYLE = {("none", "none"): dict(color="black", ls="-", label="intact"),
                  ("induction", "zero"): dict(color="tab:red", ls="-", label="induction heads zero-ablated"),
                  ("induction", "mean"): dict(color="tab:red", ls="--", label="induction heads mean-ablated"),
                  ("control", "zero"): dict(color="tab:blue", ls="-", label="random control heads zero-ablated"),
                  ("control", "mean"): dict(color="tab:blue", ls="--", label="random control heads mean-ablated")}


def ablation_icl(ablation: pd.DataFrame, windows: pd.DataFrame) -> plt.Figure:
    """ICL score vs tokens seen with the induction heads ablated, a random control ablated, and intact,
    for each model that has heads above the ablation threshold."""
    models = _models(ablation) if len(ablation) else []
    fig, axes = plt.subplots(1, max(1, len(models)), figsize=(5.5 * max(1, len(models)), 3.8), squeeze=False)
    if not models:
        axes[0, 0].text(0.5, 0.5, "no model has a head above the ablation threshold", ha="center", color="gray")
    for ax, model in zip(axes[0], models):
        rows = _trained(ablation[ablation.model == model])
        _shade(ax, windows, model)
        for (heads, method), line in rows.groupby(["heads", "method"]):
            style = ABLATION_STYLE[(heads, method)]
            label = f"{style['label']} ({line.ablated.iloc[0]})" if heads != "none" else style["label"]
            ax.plot(line.tokens_seen, line.icl_score, marker="o", ms=2.5, lw=1.3, color=style["color"],
                    ls=style["ls"], label=label)
        ax.axhline(0, color="gray", lw=0.8)
        _log_tokens(ax)
        ax.set_ylabel("ICL score (nats)")
        ax.set_title(f"{model}: ICL score under head ablation")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def patching_heatmaps(patching: pd.DataFrame, activation: str) -> plt.Figure:
    """Normalised patching effect of each head (or residual position) at each model's probed checkpoints
    (around its own window): one row per model and corruption that was ever patched; a checkpoint where
    clean and corrupted runs do not differ by min_gap is left unpatched."""
    rows = patching[patching.activation == activation]
    probed = patching[patching.activation == "resid_pre"].groupby("model").step.unique().map(sorted)
    patched = rows[rows.value.notna()]  # a model whose runs never separate (no induction: 1L) has no row
    keys = patched[["model", "corruption"]].drop_duplicates().sort_values(["model", "corruption"]).to_numpy()
    if not len(keys):
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.text(0.5, 0.5, "no model separates clean from corrupted runs", ha="center", color="gray")
        return fig
    wide, n_cols = activation == "resid_pre", probed.map(len).max()
    fig, axes = plt.subplots(len(keys), n_cols, squeeze=False, layout="constrained",
                             figsize=((4.2 if wide else 2.3) * n_cols, 1.3 * len(keys) + 1))
    image = None
    for r, (model, corruption) in enumerate(keys):
        for c, step in enumerate(probed[model]):
            ax = axes[r, c]
            at = rows[(rows.model == model) & (rows.corruption == corruption) & (rows.step == step)]
            grid = at.pivot(index="layer", columns="index", values="value").to_numpy()
            if np.isnan(grid).all():
                ax.text(0.5, 0.5, "clean ~ corrupted:\nnot patched", ha="center", va="center", fontsize=7,
                        color="gray", transform=ax.transAxes)
            else:
                image = ax.imshow(grid, vmin=-1, vmax=1, cmap="RdBu", aspect="auto")
            ax.set_yticks(range(grid.shape[0]))
            ax.set_title(f"step {step} ({at.tokens_seen.iloc[0]:.2g} tokens)", fontsize=7)
            if c == 0:
                ax.set_ylabel(f"{model}\n{corruption}: layer", fontsize=8)
            if r == len(keys) - 1:
                ax.set_xlabel("position" if wide else "head")
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="patched metric (clean = 1, corrupted = 0)")
    fig.suptitle(f"Activation patching of {'the residual stream' if wide else 'head outputs'} on the induction task")
    return fig


def top_head(heads: pd.DataFrame, model: str, score: str) -> tuple[int, int]:
    """The model's head with the highest final `score`."""
    final = heads[(heads.model == model) & (heads.score == score)]
    best = final[final.step == final.step.max()].sort_values("value").iloc[-1]
    return int(best["layer"]), int(best["head"])


def patching_over_training(patching: pd.DataFrame, heads: pd.DataFrame, windows, score, models) -> plt.Figure:
    """Patching effect of each model's top induction head vs tokens seen, one line per corruption."""
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.6), squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models):
        layer, head = top_head(heads, model, score)
        rows = _trained(patching[(patching.model == model) & (patching.activation == "head_out")
                                 & (patching.layer == layer) & (patching["index"] == head)])
        _shade(ax, windows, model)
        for i, (corruption, line) in enumerate(rows.groupby("corruption")):
            ax.plot(line.tokens_seen, line.value, "o-", ms=2.5, color=MODEL_COLORS[i], label=corruption)
        _log_tokens(ax)
        ax.set_xlim(_trained(heads).tokens_seen.min() / 1.5, heads.tokens_seen.max() * 1.5)
        ax.set_title(f"{model}: patching L{layer}H{head}'s output")
        ax.legend(fontsize=8, title="corruption")
    axes[0, 0].set_ylabel("patched metric\n(clean = 1, corrupted = 0)")
    fig.tight_layout()
    return fig


def logit_attribution(attribution: pd.DataFrame, windows: pd.DataFrame, models: list[str]) -> plt.Figure:
    """Direct logit attribution of each head (top) and the logit lens per layer (bottom) to the correct
    second-copy token (logit minus mean logit) vs tokens seen."""
    fig, axes = plt.subplots(2, len(models), figsize=(5 * len(models), 6.5), squeeze=False, sharex=True)
    for col, model in enumerate(models):
        rows = _trained(attribution[attribution.model == model])
        for row, (kind, ylabel) in enumerate([("head", "direct logit attribution"), ("logit_lens", "logit lens")]):
            ax = axes[row, col]
            _shade(ax, windows, model)
            subset = rows[rows.kind == kind]
            for i, (component, line) in enumerate(subset.groupby("component", sort=False)):
                color = MODEL_COLORS[int(component[1]) if kind == "head" else i]
                ax.plot(line.tokens_seen, line.value, lw=1.2, color=color,
                        ls=["-", "--", ":", "-."][int(component[3:]) % 4] if kind == "head" else "-",
                        label=component)
            _log_tokens(ax)
            ax.axhline(0, color="gray", lw=0.8)
            ax.set_ylabel(f"{ylabel}\n(logit - mean logit)")
            ax.set_title(f"{model}: {ylabel}")
            ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def copying_vs_prefix_matching(copying: pd.DataFrame, heads: pd.DataFrame, windows, score, models) -> plt.Figure:
    """Each head's prefix-matching score (top) and copying score (bottom) vs tokens seen: where a head
    attends and what it writes, forming together."""
    fig, axes = plt.subplots(2, len(models), figsize=(5 * len(models), 6), squeeze=False, sharex=True)
    pm = heads[heads.score == score]
    for col, model in enumerate(models):
        for row, (table, column, label) in enumerate([(pm, "value", f"{score.replace('_', '-')} score"),
                                                       (copying, "copying", "copying score")]):
            ax = axes[row, col]
            _shade(ax, windows, model)
            rows = _trained(table[table.model == model])
            n_heads = rows["head"].max() + 1
            for (layer, head), line in rows.groupby(["layer", "head"]):
                ax.plot(line.tokens_seen, line[column], lw=1.2, color=plt.get_cmap("tab20")(layer * n_heads + head),
                        label=f"L{layer}H{head}")
            _log_tokens(ax)
            ax.set_ylim(-1 if column == "copying" else 0, 1)
            ax.set_ylabel(label)
            ax.set_title(f"{model}: {label}")
        axes[0, col].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def window_steps(tokens: pd.DataFrame, windows: pd.DataFrame, model: str) -> tuple[int, int, int]:
    """(first trained, before window, end of window) steps of the model's window, else of another model's
    (so a 1-layer model is compared across the same training span); with no window at all, (first,
    first, last)."""
    steps = sorted(_trained(tokens).step.unique())
    found = windows[windows.has_window]
    if found.empty:
        return steps[0], steps[0], steps[-1]
    window = found[found.model == model] if model in set(found.model) else found
    return steps[0], int(window.before_step.iloc[0]), int(window.end_step.iloc[0])


def loss_change(tokens: pd.DataFrame, before: int, after: int) -> pd.DataFrame:
    """Per-position losses at two steps and their difference (after - before), with the tokens."""
    a = tokens[tokens.step == before].set_index("position")
    b = tokens[tokens.step == after].set_index("position")
    return pd.DataFrame({"token": a.token, "before": a.loss, "after": b.loss, "change": b.loss - a.loss})


def _show(token: str) -> str:
    return token.replace("\n", "\\n").replace("\t", "\\t")


def token_loss_change(tokens: pd.DataFrame, windows: pd.DataFrame, models: list[str], per_row: int = 16):
    """Seed 003's B - A per-token loss map: each token coloured by its loss change across the window."""
    fig, axes = plt.subplots(len(models), 1, figsize=(per_row * 0.75, 0.28 * 18 * len(models) + 0.5), squeeze=False)
    for ax, model in zip(axes[:, 0], models):
        rows = tokens[tokens.model == model]
        _, before, after = window_steps(rows, windows, model)
        change = loss_change(rows, before, after)
        n = len(change) // per_row * per_row
        grid = change.change.to_numpy()[:n].reshape(-1, per_row)
        image = ax.imshow(grid, cmap="RdBu_r", vmin=-3, vmax=3, aspect="auto")
        for (r, c), _ in np.ndenumerate(grid):
            ax.text(c, r, _show(change.token.iloc[r * per_row + c])[:8], ha="center", va="center", fontsize=6)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{model}: loss(step {after}) - loss(step {before}) per token (blue = better)", fontsize=9)
        fig.colorbar(image, ax=ax, shrink=0.8, label="loss change (nats)")
    fig.tight_layout()
    return fig


def token_loss_html(tokens: pd.DataFrame, windows: pd.DataFrame, models: list[str]) -> str:
    """The loss-change map as HTML: one span per token, hover for its losses."""
    cmap = plt.get_cmap("RdBu_r")
    parts = ["<!doctype html><meta charset='utf-8'><title>Per-token loss change</title>",
             "<style>body{font-family:monospace;white-space:pre-wrap;line-height:1.6}</style>"]
    for model in models:
        rows = tokens[tokens.model == model]
        _, before, after = window_steps(rows, windows, model)
        parts.append(f"<h3>{html.escape(model)}: loss(step {after}) - loss(step {before}); blue = better</h3><p>")
        for r in loss_change(rows, before, after).itertuples():
            red, green, blue, _ = cmap(np.clip((r.change + 3) / 6, 0, 1))
            title = f"before {r.before:.2f}, after {r.after:.2f}, change {r.change:+.2f}"
            parts.append(f"<span title='{title}' style='background:rgb({red * 255:.0f},{green * 255:.0f},"
                         f"{blue * 255:.0f})'>{html.escape(r.token)}</span>")
        parts.append("</p>")
    return "".join(parts)


def tracked_positions(rows: pd.DataFrame, windows: pd.DataFrame, model: str, track: list[str]) -> dict[str, int]:
    """Positions to follow over training: the configured tokens (first occurrence), else the token whose
    loss fell most before the window and the one whose loss fell most inside it."""
    first, before, after = window_steps(rows, windows, model)
    at_first = rows[rows.step == first].set_index("position")
    if track:
        found = {}
        for token in track:
            matches = at_first.index[at_first.token == token]
            if matches.empty:
                raise UserError(f"token {token!r} is not in the tracked text; analysis.token_loss.track takes "
                                f"tokens of it, e.g. {sorted(set(at_first.token))[:8]}")
            found[token] = int(matches[0])
        return found
    early = loss_change(rows, first, before).change
    during = loss_change(rows, before, after).change
    picks = {"most learned inside the window": int(during.idxmin())}
    picks["most learned before it"] = int(early.drop(picks["most learned inside the window"]).idxmin())
    return {f"{_show(at_first.token.loc[p])!r} @{p} ({why})": p for why, p in picks.items()}


def token_loss_over_training(tokens: pd.DataFrame, windows: pd.DataFrame, models: list[str], track) -> plt.Figure:
    """Seed 003's per-token loss over training for chosen tokens, with the text's mean loss dashed."""
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.8), squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models):
        rows = _trained(tokens[tokens.model == model])
        _shade(ax, windows, model)
        for i, (label, position) in enumerate(tracked_positions(rows, windows, model, track).items()):
            line = rows[rows.position == position]
            ax.plot(line.tokens_seen, line.loss, "o-", ms=2.5, color=MODEL_COLORS[i], label=label)
        mean = rows.groupby("tokens_seen").loss.mean()
        ax.plot(mean.index, mean.values, "--", color="gray", label="mean over the text")
        _log_tokens(ax)
        ax.set_title(f"{model}: per-token loss over training")
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("loss (nats / token)")
    fig.tight_layout()
    return fig


def main():
    args, cfg = cli("Draw the causal figures of a run from its tables.",
                    tables="directory of the run's tables (*.csv)", out="figure directory")
    t = {name: pd.read_csv(args.tables / f"{name}.csv", keep_default_na=False, na_values=[""])
         for name in [*tables_of("causal_checkpoints"), "head_scores", "phase_window"]}
    windows, score, models = t["phase_window"], cfg.analysis.ablation.score, _models(t["head_scores"])
    draw = {
        "ablation": lambda: ablation_icl(t["ablation"], windows),
        "patching_heads": lambda: patching_heatmaps(t["patching"], "head_out"),
        "patching_resid": lambda: patching_heatmaps(t["patching"], "resid_pre"),
        "patching_over_training": lambda: patching_over_training(t["patching"], t["head_scores"], windows, score,
                                                                 models),
        "logit_attribution": lambda: logit_attribution(t["logit_attribution"], windows, models),
        "copying": lambda: copying_vs_prefix_matching(t["copying"], t["head_scores"], windows, score, models),
        "token_loss_change": lambda: token_loss_change(t["token_losses"], windows, models),
        "token_loss_over_training": lambda: token_loss_over_training(t["token_losses"], windows, models,
                                                                     list(cfg.analysis.token_loss.track)),
    }
    note = integrity_note(args.tables / "integrity.csv")
    for name in figures_of("causal_figures"):
        save(draw[name](), args.out / name, cfg.figures.formats, cfg.figures.dpi, note)
    with atomic_path(args.out / "token_loss_change.html") as tmp:
        tmp.write_text(token_loss_html(t["token_losses"], windows, models), encoding="utf-8")


if __name__ == "__main__":
    run_cli(main)
