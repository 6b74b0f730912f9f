"""Figures of an in-context Markov-chain run (PNG + PDF): Edelman et al.'s Figure 1 — the model's KL divergence
from each exact strategy over training, each stretch shaded by the strategy nearest the model — above the
best head scores (the statistical induction head) with the phase-change window.

Like pipeline.kinds.language.figures, each function takes the run's tidy tables and returns a matplotlib Figure.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from pipeline.figure_step import figure_step
from pipeline.io import run_cli
from pipeline.kinds.markov.study import STRATEGY_COLORS, strategy_phases
from pipeline.plotting import log_tokens_axis, shade_windows, trained_only


def strategy_kl(strategies: pd.DataFrame, chance: pd.DataFrame, heads: pd.DataFrame, windows: pd.DataFrame,
                score: str) -> plt.Figure:
    """Per model, KL(strategy || model) for each strategy (log-log), stretches shaded by the nearest one; below,
    the best statistical-induction (dotted grey: its chance level), window `score`, previous-token and
    prefix-matching scores over heads, with the phase-change window."""
    models = sorted(strategies.model.unique())
    fig, axes = plt.subplots(2, len(models), figsize=(5.5 * len(models), 6), sharex="col", squeeze=False)
    for (top, bottom), model in zip(axes.T, models):
        rows = trained_only(strategies[strategies.model == model])
        for strategy, line in rows.groupby("strategy", sort=False):
            top.plot(line.tokens_seen, line.kl, "o-", ms=2.5, color=STRATEGY_COLORS[strategy], label=strategy)
        for _, phase in strategy_phases(rows).iterrows():
            top.axvspan(phase.start_tokens, phase.end_tokens, color=STRATEGY_COLORS[phase.strategy], alpha=0.12, lw=0)
        top.set_yscale("log")
        top.set_title(f"{model}: KL(strategy || model), nearest shaded")
        best = trained_only(heads[heads.model == model]).groupby(["score", "tokens_seen"]).value.max().reset_index()
        names = dict.fromkeys([score, "statistical_induction", "previous_token", "prefix_matching"])
        for name, style in zip(names, ["-", "-.", "--", ":"]):
            line = best[best.score == name]
            if len(line):
                bottom.plot(line.tokens_seen, line.value, style, marker="o", ms=2.5, label=f"best {name}")
        for _, level in chance[chance.model == model].drop_duplicates("score").iterrows():
            bottom.axhline(level.chance, color="0.5", ls=":", lw=1, label=f"{level.score}: chance")
        shade_windows(bottom, windows, model)
        bottom.set_ylabel("score (max over heads)")
        log_tokens_axis(bottom)
    axes[0, 0].set_ylabel("nats per state")
    axes[0, -1].legend(fontsize=8)
    axes[1, -1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def draws(t: dict, cfg) -> dict:
    """Each figure of the module, from the run's tables."""
    return {"markov_strategies": lambda: strategy_kl(t["markov_strategies"], t["chance_levels"], t["head_scores"],
                                                     t["phase_window"], cfg.analysis.window.score)}


def main():
    figure_step("markov_figures", "Draw the figures of an in-context Markov-chain run from its tables.", draws)


if __name__ == "__main__":
    run_cli(main)
