"""Science test of the Markov-chain subject, through the real DAG as a study of both priors on a short CPU
schedule: under the Dirichlet prior the model is nearest the in-context unigram strategy before it is nearest
the bigram (Bayes) one; the study's tables follow from the member tables; a rerun does nothing."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import snakemake

from pipeline.outputs import study_figure_names, study_tables

pytestmark = [pytest.mark.slow, pytest.mark.cost(95)]  # deselect locally with -m "not slow"; CI runs it

SWEEP = "sweep=[data.prior=dirichlet,doubly_stochastic]"
OVERRIDES = ("overrides=[+experiment=markov,train.steps=400,train.n_checkpoints=12,analysis.eval.n_sequences=256,"
             "analysis.llc.enabled=false,jobs.train_split_at=[]]")  # one training job per member


@pytest.fixture(scope="module")
def markov_study(tmp_path_factory):
    """(workdir, study directory, {prior: member directory})."""
    workdir = tmp_path_factory.mktemp("markov_study")
    result = snakemake(workdir, OVERRIDES, config=SWEEP, timeout=3600)
    assert result.returncode == 0, result.stderr[-3000:]
    results = workdir / "results"
    (study,) = [p for p in results.iterdir() if p.name.startswith("sweep-")]
    members = {json.loads((p / "data" / "markov" / "manifest.json").read_text())["prior"]: p
               for p in results.iterdir() if p != study}
    return workdir, study, members


def strategies_of(member):
    return pd.read_csv(member / "tables" / "markov_strategies.csv")


def nearest_by_step(table: pd.DataFrame) -> pd.Series:
    """The strategy of smallest KL at each checkpoint, recomputed from the KL column."""
    return table.loc[table.groupby("step").kl.idxmin()].set_index("step").strategy.sort_index()


def test_the_model_passes_through_unigram_to_bigram(markov_study):
    _, _, members = markov_study
    table = strategies_of(members["dirichlet"])
    nearest = nearest_by_step(table)
    assert nearest.iloc[0] == "uniform" and nearest.iloc[-1] == "bigram"
    first_unigram = nearest[nearest == "unigram"].index.min()
    assert first_unigram < nearest[nearest == "bigram"].index.min()  # unigram first
    final = table[table.step == table.step.max()].set_index("strategy")
    assert final.kl["bigram"] < final.kl["unigram"] / 2
    assert final.model_loss.iloc[0] - final.strategy_loss["bigram"] < 0.05  # nats above the Bayes loss


def test_final_kl_and_statistical_induction_match_a_count_by_hand_on_the_models_own_outputs(markov_study):
    """At the final checkpoint of the Dirichlet member, from TransformerLens's own forward of its eval chains:
    KL(bigram || model) by scipy against bigram predictions counted transition by transition, and each
    layer-1 head's statistical-induction score summed position by position from its attention."""
    from scipy.stats import entropy

    from pipeline.checkpoints import load_checkpoint

    member = markov_study[2]["dirichlet"]
    final = sorted((member / "models" / "markov_2l" / "checkpoints").glob("*/step_*.safetensors"))[-1]
    tokens = np.load(member / "data" / "markov" / "eval.npz")["tokens"]
    with torch.no_grad():
        logits, cache = load_checkpoint(final).run_with_cache(torch.from_numpy(tokens))
    probs, pattern = logits.softmax(-1).double().numpy(), cache["pattern", 1].numpy()
    (k, alpha), T = (3, 1.0), tokens.shape[1]
    kls, scores = [], np.zeros(2)
    for s, chain in enumerate(tokens):
        counts, followers = np.full((k, k), alpha), {state: [] for state in range(k)}
        for t in range(T):
            if t:
                counts[chain[t - 1], chain[t]] += 1
                followers[chain[t - 1]].append(t)  # j = t: x_{j-1} -> x_j, seen by now
                scores += pattern[s, :, t, followers[chain[t]]].sum(0) / ((T - 1) * len(tokens))
            if t < T - 1:
                kls.append(entropy(counts[chain[t]] / counts[chain[t]].sum(), probs[s, t]))
    heads = pd.read_csv(member / "tables" / "head_scores.csv")
    final_rows = heads[(heads.step == heads.step.max()) & (heads.score == "statistical_induction") & (heads.layer == 1)]
    table_kl = strategies_of(member).query("strategy == 'bigram'").sort_values("step").kl.iloc[-1]
    assert np.mean(kls) == pytest.approx(table_kl, rel=1e-4)
    np.testing.assert_allclose(scores, final_rows.sort_values("head").value, rtol=1e-4)


def test_strategy_losses_follow_the_priors(markov_study):
    """Without unigram signal (doubly stochastic) the unigram strategy loses to uniform, with it (Dirichlet) it
    wins; the bigram (Bayes under Dirichlet) strategy beats both under either prior."""
    _, _, members = markov_study
    for prior, member in members.items():
        losses = strategies_of(member).drop_duplicates("strategy").set_index("strategy").strategy_loss
        assert losses["bigram"] < min(losses["unigram"], losses["uniform"])
        assert (losses["unigram"] < losses["uniform"]) == (prior == "dirichlet")


def test_phase_onsets_are_the_first_nearest_checkpoints_of_each_member(markov_study):
    _, study, members = markov_study
    onsets = pd.read_csv(study / "tables" / "phase_onsets.csv").set_index(["data.prior", "strategy"])
    for prior, member in members.items():
        table = strategies_of(member)
        nearest = nearest_by_step(table)
        tokens = table.drop_duplicates("step").set_index("step").tokens_seen
        for strategy in nearest.unique():
            assert onsets.loc[(prior, strategy), "median"] == tokens[nearest[nearest == strategy].index.min()]
    bands = pd.read_csv(study / "tables" / "strategy_bands.csv")
    member = strategies_of(members["dirichlet"])
    rows = bands[(bands["data.prior"] == "dirichlet") & (bands.strategy == "bigram")].sort_values("step")
    np.testing.assert_array_equal(rows["median"], member[member.strategy == "bigram"].sort_values("step").kl)


def test_every_study_table_and_figure_is_written_and_a_rerun_does_nothing(markov_study):
    workdir, study, _ = markov_study
    for table in study_tables("markov"):
        assert len(pd.read_csv(study / "tables" / f"{table}.csv")), table
    assert "study_strategies" in study_figure_names("markov")
    for figure in study_figure_names("markov"):
        assert (study / "figures" / f"{figure}.png").stat().st_size > 5000
    result = snakemake(workdir, OVERRIDES, "-n", config=SWEEP)
    assert result.returncode == 0 and "Nothing to be done" in result.stdout + result.stderr
