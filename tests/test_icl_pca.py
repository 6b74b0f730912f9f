"""ICL score, phase-window detection and loss PCA on constructed arrays with known answers."""

import numpy as np
import pytest
from omegaconf import OmegaConf

from pipeline.config import compose
from pipeline.icl import bootstrap_se, icl_per_sequence, icl_table, loss_by_position
from pipeline.io import UserError
from pipeline.pca import loss_pca
from pipeline.phase import detect_window

ICL = OmegaConf.create({"early": 5, "late": 20, "window": 4, "n_bootstrap": 500})


def test_icl_is_late_window_minus_early_window():
    losses = np.tile(4.0 - 0.1 * np.arange(30), (3, 1))  # loss falls by 0.1 per position
    scores = icl_per_sequence(losses, early=5, late=20, window=4)
    np.testing.assert_allclose(scores, -1.5, atol=1e-12)  # 15 positions later, 1.5 nats lower


def test_icl_table_rows_and_se():
    rng = np.random.default_rng(0)
    n = 400
    flat = rng.normal(3.0, 1.0, size=(1, n, 30))  # no ICL: score ~ 0 with SE ~ sqrt(2 * 1/4) / sqrt(n)
    learned = flat.copy()
    learned[..., 18:] -= 0.5  # late positions 0.5 nats better
    table = icl_table(np.concatenate([flat, learned]), [0, 100], [0, 409600], ICL, seed=0)
    assert list(table.step) == [0, 100]
    expected_se = np.sqrt(2 / ICL.window) / np.sqrt(n)
    assert table.icl_se.to_numpy() == pytest.approx([expected_se, expected_se], rel=0.2)
    assert abs(table.icl_score[0]) < 3 * expected_se
    assert table.icl_score[1] - table.icl_score[0] == pytest.approx(-0.5, abs=1e-9)
    assert table.loss[0] == pytest.approx(flat.mean())


def test_bootstrap_se_matches_analytic():
    values = np.random.default_rng(1).normal(size=1000)
    assert bootstrap_se(values, 2000, seed=0) == pytest.approx(values.std() / np.sqrt(1000), rel=0.1)


def test_positions_outside_context_are_refused_when_the_config_is_composed():
    with pytest.raises(UserError, match="analysis.icl.late"):
        compose(["analysis.icl.late=500"])
    with pytest.raises(UserError, match=r"late <= 250 in a 256-token context"):
        compose(["analysis.icl.late=251"])
    assert compose(["analysis.icl.late=250"]).analysis.icl.late == 250  # window 245..254 of positions 0..254


def test_loss_by_position_is_tidy():
    losses = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)
    table = loss_by_position(losses, [0, 10], [0, 40])
    assert len(table) == 8
    assert table.query("step == 10 and position == 1").loss.item() == losses[1, :, 1].mean()


def test_pca_recovers_one_dominant_direction():
    # 12 checkpoints whose per-token losses move along one direction with small noise: PC1 ~ all variance,
    # and PC1 coordinates are monotone in training time.
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 12)
    direction = rng.normal(size=(50, 8))
    losses = 3 + t[:, None, None] * direction + 0.01 * rng.normal(size=(12, 50, 8))
    coords, explained = loss_pca(losses, n_components=2, seed=0)
    assert coords.shape == (12, 2)
    assert explained[0] > 0.95
    assert abs(np.corrcoef(coords[:, 0], t)[0, 1]) > 0.99


def test_window_found_on_a_sigmoid_rise_and_absent_when_flat():
    tokens = np.geomspace(1e4, 1e7, 30)
    rise = 0.02 + 0.5 / (1 + np.exp(-8 * (np.log10(tokens) - 5.5)))
    start, end = detect_window(tokens, rise, low=0.1, high=0.9, min_rise=0.1)
    assert 10 ** 5.2 < tokens[start] < 10 ** 5.5 < tokens[end] < 10 ** 5.9
    assert detect_window(tokens, np.full(30, 0.02), low=0.1, high=0.9, min_rise=0.1) is None
