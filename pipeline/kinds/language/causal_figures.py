"""Figures of the causal tables (PNG + PDF; the token-loss change also as HTML): ablation, patching,
direct logit attribution, copying vs prefix-matching, and per-token losses before/after the window.

Like pipeline.kinds.language.figures, each function takes tidy tables and returns a matplotlib Figure.
"""

from __future__ import annotations

import html
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pipeline.figure_step import figure_step
from pipeline.io import UserError, atomic_path, run_cli
from pipeline.kinds.language.snapshots import CAUSAL_SNAPSHOTS
from pipeline.outputs import HTML_FIGURES
from pipeline.plotting import MODEL_COLORS, log_tokens_axis, models_of, shade_windows, trained_only

ABLATION_STYLE = {("none", "none"): dict(color="black", ls="-", label="intact"),
                  ("induction", "zero"): dict(color="tab:red", ls="-", label="induction heads zero-ablated"),
                  ("induction", "mean"): dict(color="tab:red", ls="--", label="induction heads mean-ablated"),
                  ("control", "zero"): dict(color="tab:blue", ls="-", label="random control heads zero-ablated"),
                  ("control", "mean"): dict(color="tab:blue", ls="--", label="random control heads mean-ablated")}


def ablation_icl(ablation: pd.DataFrame, windows: pd.DataFrame) -> plt.Figure:
    """ICL score vs tokens seen with the induction heads ablated, a random control ablated, and intact,
    for each model that has heads above the ablation threshold."""
    models = models_of(ablation) if len(ablation) else []
    fig, axes = plt.subplots(1, max(1, len(models)), figsize=(5.5 * max(1, len(models)), 3.8), squeeze=False)
    if not models:
        axes[0, 0].text(0.5, 0.5, "no model has a head above the ablation threshold", ha="center", color="gray")
    for ax, model in zip(axes[0], models):
        rows = trained_only(ablation[ablation.model == model])
        shade_windows(ax, windows, model)
        for (heads, method), line in rows.groupby(["heads", "method"]):
            style = ABLATION_STYLE[(heads, method)]
            label = f"{style['label']} ({line.ablated.iloc[0]})" if heads != "none" else style["label"]
            ax.plot(line.tokens_seen, line.icl_score, marker="o", ms=2.5, lw=1.3, color=style["color"],
                    ls=style["ls"], label=label)
        ax.axhline(0, color="gray", lw=0.8)
        log_tokens_axis(ax)
        ax.set_ylabel("ICL score (nats)")
        ax.set_title(f"{model}: ICL score under head ablation")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def patching_heatmaps(patching: pd.DataFrame, activation: str) -> plt.Figure:
    """Normalised patching effect of each head (or residual position) at each model's probed checkpoints
    (around its own window): one row per model, task and corruption that was ever patched, one axis per
    checkpoint where it was (where clean and corrupted differ by less than min_gap it is not, and no axis
    is drawn)."""
    rows = patching[patching.activation == activation]
    probed = patching[patching.activation == "resid_pre"].groupby("model").step.unique()
    rows = rows[rows.value.notna() & rows.apply(lambda r: r.step in probed.get(r.model, []), axis=1)]
    keys = rows[["model", "task", "corruption"]].drop_duplicates().sort_values(["model", "task", "corruption"])
    if keys.empty:
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.text(0.5, 0.5, "no model separates clean from corrupted runs", ha="center", color="gray")
        ax.axis("off")
        return fig
    steps = {key: sorted(group.step.unique()) for key, group in rows.groupby(["model", "task", "corruption"])}
    wide, n_cols = activation == "resid_pre", max(map(len, steps.values()))
    fig, axes = plt.subplots(len(keys), n_cols, squeeze=False, layout="constrained",
                             figsize=((4.2 if wide else 2.3) * n_cols, 1.3 * len(keys) + 1))
    image = None
    for r, key in enumerate(keys.itertuples(index=False, name=None)):
        for c in range(n_cols):
            ax = axes[r, c]
            if c >= len(steps[key]):
                ax.axis("off")
                continue
            at = rows[(rows.model == key[0]) & (rows.task == key[1]) & (rows.corruption == key[2])
                      & (rows.step == steps[key][c])]
            grid = at.pivot(index="layer", columns="index", values="value").to_numpy()
            image = ax.imshow(grid, vmin=-1, vmax=1, cmap="RdBu", aspect="auto")
            ax.set_yticks(range(grid.shape[0]))
            ax.set_title(f"step {steps[key][c]} ({at.tokens_seen.iloc[0]:.2g} tokens)", fontsize=7)
            if c == 0:
                ax.set_ylabel(f"{key[0]}\n{key[1]} {key[2]}: layer", fontsize=8)
            ax.set_xlabel("position" if wide else "head", fontsize=7)
    fig.colorbar(image, ax=axes, shrink=0.6, label="patched metric (clean = 1, corrupted = 0)")
    what = "the residual stream (single-answer metric)" if wide else "head outputs (all-answers metric)"
    fig.suptitle(f"Activation patching of {what}")
    return fig


def top_head(heads: pd.DataFrame, model: str, score: str) -> tuple[int, int]:
    """The model's head with the highest final `score`."""
    final = heads[(heads.model == model) & (heads.score == score)]
    best = final[final.step == final.step.max()].sort_values("value").iloc[-1]
    return int(best["layer"]), int(best["head"])


def patching_over_training(patching: pd.DataFrame, heads: pd.DataFrame, windows, score, models) -> plt.Figure:
    """Patching effect of each model's top induction head vs tokens seen, one line per task and corruption."""
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.6), squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models):
        layer, head = top_head(heads, model, score)
        rows = trained_only(patching[(patching.model == model) & (patching.activation == "head_out")
                                 & (patching.layer == layer) & (patching["index"] == head)])
        shade_windows(ax, windows, model)
        for i, ((task, corruption), line) in enumerate(rows.groupby(["task", "corruption"])):
            ax.plot(line.tokens_seen, line.value, "o-", ms=2.5, color=MODEL_COLORS[i % len(MODEL_COLORS)],
                    label=f"{task} {corruption}")
        log_tokens_axis(ax)
        ax.set_xlim(trained_only(heads).tokens_seen.min() / 1.5, heads.tokens_seen.max() * 1.5)
        ax.set_title(f"{model}: patching L{layer}H{head}'s output")
        ax.legend(fontsize=8, title="task, corruption")
    axes[0, 0].set_ylabel("patched metric\n(clean = 1, corrupted = 0)")
    fig.tight_layout()
    return fig


def logit_attribution(attribution: pd.DataFrame, windows: pd.DataFrame, models: list[str]) -> plt.Figure:
    """Per task: direct logit attribution of each head and the logit lens per layer, along the task's answer
    direction (answer logit minus the competitor's, or the mean logit), vs tokens seen."""
    tasks = sorted(attribution.task.unique())
    panels = [(task, kind) for task in tasks for kind in ("head", "logit_lens")]
    fig, axes = plt.subplots(len(panels), len(models), figsize=(5 * len(models), 3.2 * len(panels)), squeeze=False,
                             sharex=True)
    for col, model in enumerate(models):
        rows = trained_only(attribution[attribution.model == model])
        for row, (task, kind) in enumerate(panels):
            ax = axes[row, col]
            ylabel = "direct logit attribution" if kind == "head" else "logit lens"
            shade_windows(ax, windows, model)
            subset = rows[(rows.kind == kind) & (rows.task == task)]
            for i, (component, line) in enumerate(subset.groupby("component", sort=False)):
                color = MODEL_COLORS[(int(component[1]) if kind == "head" else i) % len(MODEL_COLORS)]
                ax.plot(line.tokens_seen, line.value, lw=1.2, color=color,
                        ls=["-", "--", ":", "-."][int(component[3:]) % 4] if kind == "head" else "-",
                        label=component)
            log_tokens_axis(ax)
            ax.axhline(0, color="gray", lw=0.8)
            ax.set_ylabel(f"{ylabel}\n(logit difference)")
            ax.set_title(f"{model}, {task}: {ylabel}")
            ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def task_metrics(metrics: pd.DataFrame, windows: pd.DataFrame, models: list[str]) -> plt.Figure:
    """Each task's logit difference on clean prompts (solid) and on each corruption (dotted) vs tokens seen."""
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.6), squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models):
        rows = trained_only(metrics[(metrics.model == model) & (metrics.answers == "all")])
        shade_windows(ax, windows, model)
        for i, (task, group) in enumerate(rows.groupby("task")):
            color = MODEL_COLORS[i % len(MODEL_COLORS)]
            clean = group.drop_duplicates("step")
            ax.plot(clean.tokens_seen, clean.clean, "o-", ms=2.5, color=color, label=f"{task}: clean")
            for corruption, line in group.groupby("corruption"):
                ax.plot(line.tokens_seen, line.corrupted, ":", lw=1, color=color, label=f"{task}: {corruption}")
        ax.axhline(0, color="gray", lw=0.8)
        log_tokens_axis(ax)
        ax.set_title(f"{model}: task metrics")
        ax.legend(fontsize=7, ncol=2)
    axes[0, 0].set_ylabel("logit difference")
    fig.tight_layout()
    return fig


def _prompts(attention: pd.DataFrame):
    """Per (model, task, head): the prompt's tokens and its attention pattern (query x key)."""
    for (model, task, layer, head), rows in attention.groupby(["model", "task", "layer", "head"]):
        n = int(rows["query"].max()) + 1
        pattern = np.zeros((n, n))
        pattern[rows["query"], rows["key"]] = rows.value
        tokens = rows.drop_duplicates("key").sort_values("key").key_token.fillna("").map(_show).tolist()
        yield model, task, layer, head, tokens, pattern


def task_attention(attention: pd.DataFrame) -> plt.Figure:
    """The final checkpoint's attention pattern of each task's top heads (largest |direct logit attribution|)
    on the first clean prompt: one row per model and task."""
    prompts = list(_prompts(attention)) if len(attention) else []
    rows = sorted({(m, t) for m, t, *_ in prompts})
    if not rows:
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.text(0.5, 0.5, "no attention patterns (analysis.tasks.attention_heads = 0)", ha="center", color="gray")
        ax.axis("off")
        return fig
    n_cols = max(sum(1 for m, t, *_ in prompts if (m, t) == row) for row in rows)
    size = min(6.0, 1.5 + 0.18 * max(len(p[4]) for p in prompts))
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(size * n_cols, size * len(rows)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, row in enumerate(rows):
        for c, (model, task, layer, head, tokens, pattern) in enumerate(p for p in prompts if p[:2] == row):
            ax = axes[r, c]
            ax.axis("on")
            ax.imshow(pattern, cmap="Blues", vmin=0, vmax=1)
            ticks = range(len(tokens)) if len(tokens) <= 40 else []
            ax.set_xticks(ticks, [tokens[i] for i in ticks], rotation=90, fontsize=6)
            ax.set_yticks(ticks, [tokens[i] for i in ticks], fontsize=6)
            ax.set_title(f"{model}, {task}: L{layer}H{head}", fontsize=8)
    fig.tight_layout()
    return fig


def task_attention_html(attention: pd.DataFrame) -> str:
    """The same patterns as circuitsvis's interactive attention view, one section per model and task."""
    import circuitsvis as cv

    parts = ["<!doctype html><meta charset='utf-8'><title>Attention of the top heads per task</title>"]
    prompts = list(_prompts(attention)) if len(attention) else []
    for model, task in sorted({(m, t) for m, t, *_ in prompts}):
        chosen = [p for p in prompts if p[:2] == (model, task)]
        patterns = np.stack([p[5] for p in chosen])
        parts.append(f"<h3>{html.escape(model)}, {html.escape(task)}: "
                     f"{', '.join(f'L{p[2]}H{p[3]}' for p in chosen)}</h3>")
        view = cv.attention.attention_heads(attention=patterns, tokens=chosen[0][4],
                                            attention_head_names=[f"L{p[2]}H{p[3]}" for p in chosen])
        # the JS bundle inline (~1.3 MB), so the report opens offline; a fixed element id, so reruns give equal bytes
        parts.append(re.sub(r"circuits-vis-[0-9a-f]+-[0-9a-f]+", f"circuits-vis-{len(parts)}", view.local_src))
    if not prompts:
        parts.append("<p>no attention patterns (analysis.tasks.attention_heads = 0)</p>")
    return "".join(parts)


def copying_vs_prefix_matching(copying: pd.DataFrame, heads: pd.DataFrame, windows, score, models) -> plt.Figure:
    """Each head's prefix-matching score (top) and copying score (bottom) vs tokens seen: where a head
    attends and what it writes, forming together."""
    fig, axes = plt.subplots(2, len(models), figsize=(5 * len(models), 6), squeeze=False, sharex=True)
    pm = heads[heads.score == score]
    for col, model in enumerate(models):
        for row, (table, column, label) in enumerate([(pm, "value", f"{score.replace('_', '-')} score"),
                                                       (copying, "copying", "copying score")]):
            ax = axes[row, col]
            shade_windows(ax, windows, model)
            rows = trained_only(table[table.model == model])
            n_heads = rows["head"].max() + 1
            for (layer, head), line in rows.groupby(["layer", "head"]):
                ax.plot(line.tokens_seen, line[column], lw=1.2, color=plt.get_cmap("tab20")(layer * n_heads + head),
                        label=f"L{layer}H{head}")
            log_tokens_axis(ax)
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
    steps = sorted(trained_only(tokens).step.unique()) or sorted(tokens.step.unique())  # one released checkpoint: 0
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
        rows = trained_only(tokens[tokens.model == model])
        shade_windows(ax, windows, model)
        for i, (label, position) in enumerate(tracked_positions(rows, windows, model, track).items()):
            line = rows[rows.position == position]
            ax.plot(line.tokens_seen, line.loss, "o-", ms=2.5, color=MODEL_COLORS[i], label=label)
        mean = rows.groupby("tokens_seen").loss.mean()
        ax.plot(mean.index, mean.values, "--", color="gray", label="mean over the text")
        log_tokens_axis(ax)
        ax.set_title(f"{model}: per-token loss over training")
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("loss (nats / token)")
    fig.tight_layout()
    return fig


def draws(t: dict, cfg) -> dict:
    """Each figure of the module, from the run's tables."""
    windows, score, models = t["phase_window"], cfg.analysis.ablation.score, models_of(t["head_scores"])
    return {
        "ablation": lambda: ablation_icl(t["ablation"], windows),
        "patching_heads": lambda: patching_heatmaps(t["patching"], "head_out"),
        "patching_resid": lambda: patching_heatmaps(t["patching"], "resid_pre"),
        "patching_over_training": lambda: patching_over_training(t["patching"], t["head_scores"], windows, score,
                                                                 models),
        "logit_attribution": lambda: logit_attribution(t["logit_attribution"], windows, models),
        "task_metrics": lambda: task_metrics(t["task_metrics"], windows, models),
        "task_attention": lambda: task_attention(t["task_attention"]),
        "copying": lambda: copying_vs_prefix_matching(t["copying"], t["head_scores"], windows, score, models),
        "token_loss_change": lambda: token_loss_change(t["token_losses"], windows, models),
        "token_loss_over_training": lambda: token_loss_over_training(t["token_losses"], windows, models,
                                                                     list(cfg.analysis.token_loss.track)),
    }


def main():
    t, cfg, out = figure_step("causal_figures", "Draw the causal figures of a run from its tables.", draws, CAUSAL_SNAPSHOTS)
    windows, models = t["phase_window"], models_of(t["head_scores"])
    html_views = {"token_loss_change": lambda: token_loss_html(t["token_losses"], windows, models),
                  "task_attention": lambda: task_attention_html(t["task_attention"])}
    for name in [name for name, producer in HTML_FIGURES.items() if producer == "causal_figures"]:
        with atomic_path(out / f"{name}.html") as tmp:
            tmp.write_text(html_views[name](), encoding="utf-8")


if __name__ == "__main__":
    run_cli(main)
