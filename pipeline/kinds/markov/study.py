"""The Markov kind's phases and study tables: the stretches in which one exact strategy is nearest the model, the
KL from each strategy banded over a study's seeds, each strategy's first onset, and the figure of both."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from pipeline.plotting import log_tokens_axis, trained_only
from pipeline.study import bands
from pipeline.study_figures import variants

STRATEGY_COLORS = {"uniform": "tab:gray", "unigram": "tab:blue", "bigram": "tab:red", "bayes": "tab:purple"}


def strategy_phases(strategies: pd.DataFrame) -> pd.DataFrame:
    """One model's phases (in-context Markov chains): stretches of consecutive checkpoints with the same nearest
    strategy (smallest KL), each with its strategy and first and last step and tokens seen, in order."""
    nearest = strategies[strategies.nearest.astype(bool)].drop_duplicates("step").sort_values("step")
    stretch = (nearest.strategy != nearest.strategy.shift()).cumsum()
    return nearest.groupby(stretch).agg(
        strategy=("strategy", "first"), start_step=("step", "first"), end_step=("step", "last"),
        start_tokens=("tokens_seen", "first"), end_tokens=("tokens_seen", "last")).reset_index(drop=True)


def phases(strategies: pd.DataFrame) -> pd.DataFrame:
    """Each model's phases in order: the stretches with one nearest strategy, with the KL from each strategy at the
    phase's last checkpoint (a run's paper section)."""
    kl = strategies.pivot_table("kl", ["model", "step"], "strategy").add_prefix("kl_").reset_index()
    rows = [strategy_phases(rows).assign(model=model) for model, rows in strategies.groupby("model")]
    out = pd.concat(rows, ignore_index=True).merge(kl, left_on=["model", "end_step"], right_on=["model", "step"])
    return out.drop(columns="step")[["model", *(c for c in out.columns if c not in ("model", "step"))]]


def strategy_bands(strategies: pd.DataFrame, variant: list[str]) -> pd.DataFrame:
    """KL divergence from each strategy: median, min and max over the band per variant and checkpoint."""
    return pd.concat([bands(rows, "kl", variant).assign(strategy=name)
                      for name, rows in strategies.groupby("strategy", sort=False)], ignore_index=True)


def phase_onsets(strategies: pd.DataFrame, variant: list[str]) -> pd.DataFrame:
    """Per variant and strategy: in how many members it is ever the nearest, and the tokens seen at its first
    checkpoint as the nearest (median, min, max over those members)."""
    firsts = pd.concat([strategy_phases(rows).drop_duplicates("strategy").assign(**dict(zip(["run", *variant], key)))
                        for key, rows in strategies.groupby(["run", *variant])], ignore_index=True)
    out = firsts.groupby([*variant, "strategy"]).start_tokens.agg(["median", "min", "max", "count"]).reset_index()
    return out.rename(columns={"count": "n_members"}).merge(signal(strategies, variant), on=[*variant, "strategy"])


def signal(strategies: pd.DataFrame, variant: list[str]) -> pd.DataFrame:
    """How much each strategy beats the uniform one on the members' eval chains (nats per state, median over the
    variant's members): the signal a prior leaves for that strategy to learn, beside its onset."""
    losses = strategies.drop_duplicates(["run", "strategy"]).pivot_table("strategy_loss", ["run", *variant], "strategy")
    gaps = (losses.rsub(losses["uniform"], axis=0)).reset_index().melt(["run", *variant], var_name="strategy",
                                                                       value_name="gain_over_uniform")
    return gaps.groupby([*variant, "strategy"]).gain_over_uniform.median().reset_index()


def strategy_plot(bands: pd.DataFrame, onsets: pd.DataFrame, variant: list[str], band: str) -> plt.Figure:
    """In-context Markov chains, one panel per variant: the KL divergence from each strategy (median over the
    band, min-max shaded) and, dotted, the median tokens seen at which each first becomes the nearest."""
    labels = list(variants(trained_only(bands), variant))
    fig, axes = plt.subplots(1, len(labels), figsize=(4.5 * len(labels), 3.8), sharey=True, squeeze=False)
    for ax, (label, _, rows) in zip(axes[0], labels):
        firsts = onsets.merge(rows[variant].drop_duplicates(), on=variant)
        for strategy, line in rows.groupby("strategy", sort=False):
            line, color = line.sort_values("tokens_seen"), STRATEGY_COLORS[strategy]
            ax.plot(line.tokens_seen, line["median"], "o-", ms=2.5, color=color, label=strategy)
            ax.fill_between(line.tokens_seen, line["min"], line["max"], color=color, alpha=0.2, lw=0)
            for tokens in firsts[firsts.strategy == strategy]["median"]:
                ax.axvline(tokens, color=color, ls=":", lw=1.2)
        ax.set_yscale("log")
        ax.set_title(label, fontsize=9)
        log_tokens_axis(ax)
    axes[0, 0].set_ylabel("KL(strategy || model), nats per state")
    axes[0, -1].legend(fontsize=8)
    fig.suptitle(f"Distance to each exact strategy (line: median over {band}; band: min-max; dotted: first "
                 f"nearest)", fontsize=10)
    fig.tight_layout()
    return fig


def distance(tables: dict) -> pd.DataFrame:
    """KL divergence from the bigram strategy (the Bayes-optimal one under the Dirichlet prior), per model and
    checkpoint: its column of the figure across kinds."""
    strategies = tables["markov_strategies"]
    bigram = strategies[strategies.strategy == "bigram"]
    return bigram[["model", "tokens_seen", "kl"]].rename(columns={"kl": "value"}).reset_index(drop=True)
