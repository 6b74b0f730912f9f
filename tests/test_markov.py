"""The in-context Markov-chain world: the generator against the matrices it samples, the strategies on
hand-counted contexts and against a Monte-Carlo posterior, KL against scipy, and the bad inputs refused."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from scipy.stats import entropy

from pipeline.config import compose
from pipeline.io import UserError
from pipeline.kinds.markov.data import (
    cross_entropy,
    importance_bayes,
    kl_from,
    sample,
    sample_chains,
    sinkhorn,
    strategies,
    transition_matrices,
)
from pipeline.kinds.markov.subject import training_subject
from pipeline.train import generator_rng


def data_cfg(**changes):
    return OmegaConf.create({"n_states": 3, "seq_len": 100, "alpha": 1.0, "prior": "dirichlet", **changes})


def test_strategies_on_a_hand_counted_context():
    """Context 0 1 2 1 2 (k = 3, alpha = 0.5): from state 2 the one transition seen is 2 -> 1, so the bigram
    strategy is (0 + .5, 1 + .5, 0 + .5) / (1 + 1.5); the unigram counts are 1, 2, 2 of 5 states."""
    p = strategies(np.array([[0, 1, 2, 1, 2, 1]]), k=3, alpha=0.5)
    np.testing.assert_allclose(p["bigram"][0, 4], [0.2, 0.6, 0.2])
    np.testing.assert_allclose(p["unigram"][0, 4], np.array([1.5, 2.5, 2.5]) / 6.5)
    np.testing.assert_allclose(p["bigram"][0, 0], [1 / 3] * 3)  # nothing seen yet: the prior mean
    np.testing.assert_allclose(p["bigram"][0, 3], [0.5 / 2.5, 0.5 / 2.5, 1.5 / 2.5])  # from 1: 1 -> 2 once
    np.testing.assert_allclose(p["uniform"], 1 / 3)


def test_bigram_strategy_is_the_monte_carlo_posterior_predictive():
    """Under Dirichlet(alpha) rows and a uniform first state, the posterior predictive of the next state is the
    prior's matrices weighted by the context's likelihood: 400k draws agree with the closed form to 0.01."""
    k, alpha, context = 3, 0.7, np.array([0, 0, 1, 2, 0, 1, 1, 0, 2, 2, 0])
    rng = np.random.default_rng(0)
    draws = rng.dirichlet(np.full(k, alpha), size=(400_000, k))
    likelihood = np.prod(draws[:, context[:-1], context[1:]], axis=1)
    posterior = (likelihood[:, None] * draws[:, context[-1]]).sum(0) / likelihood.sum()
    closed = strategies(np.append(context, 0)[None], k, alpha)["bigram"][0, -1]
    np.testing.assert_allclose(closed, posterior, atol=0.01)


def test_kl_is_zero_for_the_strategy_itself_and_scipys_elsewhere():
    tokens, _ = sample(64, data_cfg(), np.random.default_rng(1))
    p = strategies(tokens, 3, 1.0)
    model = np.log(p["bigram"])  # a model that outputs the bigram strategy
    assert kl_from(p["bigram"], model) == pytest.approx(0, abs=1e-12)
    expected = entropy(p["unigram"].reshape(-1, 3), p["bigram"].reshape(-1, 3), axis=1).mean()
    assert kl_from(p["unigram"], model) == pytest.approx(expected, rel=1e-9)
    assert cross_entropy(model, tokens).shape == (64, 99)


def test_chains_follow_their_matrices():
    """Empirical transition frequencies of 20k-step chains lie within 0.02 of each sampled matrix."""
    matrices = np.random.default_rng(2).dirichlet(np.ones(3), size=(4, 3))
    states = sample_chains(matrices, 20_000, np.random.default_rng(3))
    for chain, matrix in zip(states, matrices):
        counts = np.zeros((3, 3))
        np.add.at(counts, (chain[:-1], chain[1:]), 1)
        np.testing.assert_allclose(counts / counts.sum(1, keepdims=True), matrix, atol=0.02)


def test_doubly_stochastic_prior_has_no_unigram_signal():
    tokens, matrices = sample(8, data_cfg(prior="doubly_stochastic", seq_len=20_000), np.random.default_rng(4))
    np.testing.assert_allclose(matrices.sum(-1), 1, atol=1e-12)
    np.testing.assert_allclose(matrices.sum(-2), 1, atol=1e-9)
    frequencies = np.stack([np.bincount(chain, minlength=3) / len(chain) for chain in tokens])
    np.testing.assert_allclose(frequencies, 1 / 3, atol=0.03)  # every state equally frequent in every chain


def test_importance_sampled_bayes_is_the_closed_form_under_the_dirichlet_prior():
    """The importance sampler with the Dirichlet prior (no balancing) against the bigram strategy, which is the
    exact posterior predictive there: within 0.01 on average over positions, and the same loss to 0.002."""
    cfg = data_cfg(seq_len=40)
    tokens, _ = sample(32, cfg, np.random.default_rng(6))
    predictive, ess = importance_bayes(tokens, cfg, 2000, np.random.default_rng(7))
    bigram = strategies(tokens, 3, 1.0)["bigram"]
    assert np.abs(predictive - bigram).mean() < 0.01 and np.median(ess) > 100
    assert cross_entropy(np.log(predictive), tokens).mean() == pytest.approx(cross_entropy(np.log(bigram), tokens).mean(),
                                                                             abs=0.002)


def test_bayes_under_the_doubly_stochastic_prior_matches_forward_simulation():
    """The doubly stochastic prior's posterior predictive after four states, against the generative process run
    forward: 600k chains drawn from the prior, the next state's frequencies among those that start with the
    context (~7k each, SE < 0.006)."""
    cfg = data_cfg(prior="doubly_stochastic", seq_len=5)
    chains, _ = sample(600_000, cfg, np.random.default_rng(8))
    contexts = np.array([[0, 0, 0, 0], [0, 1, 0, 1], [0, 1, 2, 0], [2, 2, 1, 1]])
    predictive, _ = importance_bayes(np.c_[contexts, np.zeros(len(contexts), int)], cfg, 20_000,
                                     np.random.default_rng(9))
    for context, bayes in zip(contexts, predictive[:, -1]):
        following = chains[(chains[:, :4] == context).all(1), 4]
        assert len(following) > 5000
        np.testing.assert_allclose(bayes, np.bincount(following, minlength=3) / len(following), atol=0.02)
    bigram = strategies(np.c_[contexts, np.zeros(len(contexts), int)], 3, 1.0)["bigram"][:, -1]
    assert np.abs(predictive[:, -1] - bigram).max() > 0.05  # the bigram strategy is not Bayes here


def test_sinkhorn_flags_what_it_cannot_balance_and_the_prior_redraws_or_refuses():
    """A zero column cannot be balanced (0/0); at alpha 1e-8 rows are one-hot, so only permutations balance:
    on 3 states the prior redraws until every matrix is one, on 10 states (3.6e-4 of draws) it refuses."""
    balanced, ok = sinkhorn(np.array([[[0.5, 0.5], [0.2, 0.8]], [[1.0, 0.0], [1.0, 0.0]]]))
    assert ok.tolist() == [True, False]
    np.testing.assert_allclose(balanced[0].sum(0), 1, atol=1e-12)
    matrices = transition_matrices(50, data_cfg(prior="doubly_stochastic", alpha=1e-8), np.random.default_rng(10))
    assert np.isfinite(matrices).all()
    np.testing.assert_allclose(np.sort(matrices.round(6), -1)[..., -1], 1)  # one-hot rows...
    np.testing.assert_allclose(matrices.sum(-2), 1, atol=1e-9)  # ...in distinct columns
    with pytest.raises(UserError, match=r"could not be Sinkhorn-balanced .*; raise data.alpha") as refused:
        transition_matrices(4, data_cfg(prior="doubly_stochastic", alpha=1e-8, n_states=10), np.random.default_rng(11))
    assert "\n" not in str(refused.value)


def test_training_batches_replay_from_the_generator_state():
    """The trainer saves the torch generator's state: restoring it redraws the same chains (resume is exact)."""
    cfg = OmegaConf.create({"model": {"name": "m", "n_layers": 1, "d_model": 8, "n_heads": 2, "d_mlp": None},
                            "data": dict(data_cfg(seq_len=12)), "train": {"batch_size": 4}})
    subject = training_subject(cfg, None)
    generator = torch.Generator().manual_seed(0)
    subject.batch(generator)
    state = generator.get_state()
    (second,) = subject.batch(generator)
    (replayed,) = subject.batch(torch.Generator().set_state(state))
    assert torch.equal(second, replayed) and second.shape == (4, 12) and int(second.max()) < 3
    assert not np.array_equal(generator_rng(torch.Generator().manual_seed(0)).random(3),
                              generator_rng(torch.Generator().manual_seed(1)).random(3))


@pytest.mark.parametrize("override, message", [
    ("data.n_states=1", "data.n_states=1: input should be greater than or equal to 2"),
    ("data.alpha=0.0", "data.alpha=0.0: input should be greater than 0"),
    ("data.seq_len=1", "data.seq_len=1: input should be greater than or equal to 2"),
    ("data.prior=uniform", "data.prior='uniform'"),
    ("analysis.head_scores.seq_len=60", "analysis.head_scores.seq_len: 60 repeated twice"),
    ("analysis.icl.late=120", "raise data.seq_len"),
])
def test_bad_markov_settings_are_refused_at_compose(override, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")) as refused:
        compose(["+experiment=markov", override])
    assert "\n" not in str(refused.value)


def test_markov_data_does_not_feed_a_language_model():
    with pytest.raises(UserError, match="data.source: 'markov' does not feed language models"):
        compose(["data=markov"])


def followers_by_loop(tokens: np.ndarray, t: int) -> list[int]:
    """Positions j <= t whose previous state equals x_t, counted by hand."""
    return [j for j in range(1, t + 1) if tokens[j - 1] == tokens[t]]


def test_statistical_induction_scores_hand_built_attention():
    """Three heads on real chains: one spreading its attention evenly over the followers of x_t (else on the first
    state) scores the share of positions that have followers; one attending to t - 1 scores the share of t with
    x_{t-2} = x_t; uniform causal attention scores the chance level. Each against a loop over positions."""
    from pipeline.kinds.markov.scores import chance_level, statistical_induction

    tokens, _ = sample(3, OmegaConf.create({"n_states": 3, "seq_len": 30, "alpha": 1.0, "prior": "dirichlet"}),
                       np.random.default_rng(0))
    n, T = tokens.shape
    pattern = torch.zeros(n, 3, T, T)
    expected = np.zeros((n, 3))
    for s in range(n):
        for t in range(T):
            followers = followers_by_loop(tokens[s], t)
            pattern[s, 0, t, followers or [0]] = 1 / max(len(followers), 1)
            pattern[s, 1, t, max(t - 1, 0)] = 1
            pattern[s, 2, t, : t + 1] = 1 / (t + 1)
            if t:
                expected[s] += [bool(followers), (t - 1) in followers, len(followers) / (t + 1)]
    expected /= T - 1
    scores = statistical_induction(pattern, torch.from_numpy(tokens)).numpy()
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    assert 0.5 < scores[:, 0].min() and scores[:, 0].max() <= 1
    assert chance_level(statistical_induction, torch.from_numpy(tokens)) == pytest.approx(expected[:, 2].mean(), abs=1e-6)


def test_statistical_induction_is_a_markov_score_only():
    with pytest.raises(UserError, match="'statistical_induction' is not a score of language models") as refused:
        compose(["analysis.window.score=statistical_induction"])
    assert "\n" not in str(refused.value)
    assert compose(["+experiment=markov"]).analysis.window.score == "statistical_induction"
