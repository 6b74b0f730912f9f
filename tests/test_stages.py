"""Stage boundaries from the GP-smoothed LLC curve (pipeline.stages): known critical points are found to within
a checkpoint, noise gives none, and the slope's band is the derivative of sklearn's own posterior."""

import numpy as np
import pandas as pd
import pytest

from pipeline.stages import fit_gp, llc_stages, posterior

TOKENS = np.unique(np.geomspace(2e4, 1.2e7, 31).round())  # log-spaced checkpoints, as the default recipe's
LOG_T = np.log(TOKENS)
STEP = np.diff(LOG_T).max()  # one checkpoint, in log tokens


def curve(value: np.ndarray, noise: float = 0.5) -> pd.DataFrame:
    return pd.DataFrame({"tokens_seen": TOKENS, "llc_mean": value, "llc_std": np.full(len(TOKENS), noise)})


@pytest.mark.parametrize("seed", range(4))
def test_two_known_critical_points_are_found_within_a_checkpoint(seed):
    """10 + 6 sin(2 pi u) on u = log t scaled to [0, 1]: a peak at u = 1/4 and a trough at u = 3/4, under noise
    of sd 0.8 (the seed-to-seed spread measured on the default run's LLC)."""
    u = (LOG_T - LOG_T.min()) / np.ptp(LOG_T)
    noisy = 10 + 6 * np.sin(2 * np.pi * u) + np.random.default_rng(seed).normal(0, 0.8, len(u))
    _, found = llc_stages(curve(noisy), chains=2)
    assert found.kind.tolist() == ["peak", "trough"]
    truth = LOG_T.min() + np.ptp(LOG_T) * np.array([0.25, 0.75])
    assert np.abs(np.log(found.tokens_seen.to_numpy()) - truth).max() < STEP
    assert (found.lower_tokens < found.tokens_seen).all() and (found.tokens_seen < found.upper_tokens).all()


@pytest.mark.parametrize("seed", range(6))
def test_pure_noise_has_no_stage(seed):
    """A flat LLC with noise of sd 1 (twice the chains' reported spread), and a monotone rise with noise: no
    critical point is credible."""
    rng = np.random.default_rng(100 + seed)
    assert llc_stages(curve(10 + rng.normal(0, 1, len(TOKENS))), chains=2)[1].empty
    rise = 5 + 3 * (LOG_T - LOG_T.min()) / np.ptp(LOG_T)
    assert llc_stages(curve(rise + rng.normal(0, 0.3, len(TOKENS))), chains=2)[1].empty


def test_the_raw_finite_difference_would_call_noise_stages():
    """The measure it replaces: sign changes of d LLC / d log t between checkpoints mark ~half the checkpoints
    of a flat noisy curve."""
    value = 10 + np.random.default_rng(0).normal(0, 1, len(TOKENS))
    slope = np.diff(value) / np.diff(LOG_T)
    assert (np.sign(slope[1:]) != np.sign(slope[:-1])).sum() >= 10


def test_posterior_and_slope_band_match_sklearns_posterior():
    """The closed-form mean is sklearn's predict; its sd plus the fitted white noise is sklearn's predictive sd;
    the slope is the finite difference of the mean; the slope's sd is that of a finite difference under sklearn's
    posterior covariance."""
    rng = np.random.default_rng(3)
    x = np.sort(rng.uniform(0, 1, 25))
    y = np.sin(3 * x) + rng.normal(0, 0.1, len(x))
    gp = fit_gp(x, y, np.full(len(x), 0.05))
    grid = np.linspace(0, 1, 201)
    post = posterior(gp, grid)
    mean, sd = gp.predict(grid[:, None], return_std=True)
    np.testing.assert_allclose(post["mean"], mean, atol=1e-8)
    np.testing.assert_allclose(np.sqrt(post["sd"] ** 2 + gp.kernel_.k2.noise_level), sd, rtol=1e-6)
    np.testing.assert_allclose(post["slope"][1:-1], np.gradient(post["mean"], grid)[1:-1], atol=2e-3)
    h, at = 1e-3, np.array([0.2, 0.5, 0.8])
    _, cov = gp.predict(np.r_[at - h, at + h][:, None], return_cov=True)
    cov -= gp.kernel_.k2.noise_level * np.eye(len(cov))  # the latent curve's covariance (no observation noise)
    n = len(at)
    fd_var = (cov.diagonal()[:n] + cov.diagonal()[n:] - 2 * cov.diagonal(n)) / (2 * h) ** 2
    np.testing.assert_allclose(np.sqrt(fd_var), posterior(gp, at)["slope_sd"], rtol=1e-2)


def test_a_boundary_is_a_stage_when_a_majority_of_seeds_show_it():
    """Three seeds' boundaries of one model, matched by hand: the peak all three show at ~0.3M (overlapping
    intervals), a trough two show at ~1M, a trough one seed alone shows at 2.4M (not a stage), and a peak whose
    intervals do not overlap the others' (two groups, neither a majority)."""
    from pipeline.study import stage_recurrence

    rows = [("s0", "peak", 0.31, 0.29, 0.33), ("s1", "peak", 0.32, 0.30, 0.34), ("s2", "peak", 0.30, 0.28, 0.33),
            ("s0", "trough", 0.90, 0.82, 1.00), ("s2", "trough", 0.95, 0.85, 1.10),
            ("s1", "trough", 2.40, 2.20, 4.90),
            ("s0", "peak", 5.0, 4.8, 5.2), ("s1", "peak", 6.0, 5.5, 6.5)]
    stages = pd.DataFrame(rows, columns=["run", "kind", "tokens_seen", "lower_tokens", "upper_tokens"])
    stages[["tokens_seen", "lower_tokens", "upper_tokens"]] *= 1e6
    stages["model"] = "m"
    llc = pd.DataFrame({"run": ["s0", "s1", "s2"], "model": "m"})
    table = stage_recurrence(stages, llc, ["model"])
    assert table.kind.tolist() == ["peak", "trough", "trough", "peak", "peak"]
    assert table.n_with.tolist() == [3, 2, 1, 1, 1] and (table.n_members == 3).all()
    assert table.stage.tolist() == [True, True, False, False, False]
    np.testing.assert_allclose(table.loc[0, ["tokens_median", "common_lower", "common_upper"]].to_numpy(float),
                               [0.31e6, 0.30e6, 0.33e6])
