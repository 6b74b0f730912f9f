"""The LLC estimator on a model whose answer is known: a full-rank linear regression with d parameters has
LLC d/2 (its loss is quadratic around the minimum, so n_beta * E[L - L0] = d/2 under the tempered posterior)."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from pipeline.llc import sgld_llc, token_dataset

SGLD = OmegaConf.create({"lr": 1e-3, "n_beta": 100.0, "localization": 0.0, "chains": 4, "draws": 400,
                         "burn_in": 100, "batch": 256, "device": "cpu"})


@pytest.mark.parametrize("d", [4, 10])
def test_linear_regression_llc_is_half_its_parameter_count(d):
    generator = torch.Generator().manual_seed(d)
    n = 4096
    x = torch.randn(n, d, generator=generator)
    y = x @ torch.randn(d, generator=generator) + 0.5 * torch.randn(n, generator=generator)
    model = torch.nn.Linear(d, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.linalg.lstsq(x, y[:, None]).solution.T)  # the minimum

    def squared_error(model, rows):  # devinterp's loss interface: (model, input_ids) -> (batch, seq - 1)
        i = rows[:, 0]
        return 0.5 * (y[i] - model(x[i])[:, 0])[:, None] ** 2

    rows = torch.arange(n)[:, None].repeat(1, 2)  # each "sequence" names one data point
    estimate = sgld_llc(model, token_dataset(rows), SGLD, seed=0, loss_fn=squared_error)
    assert estimate["llc_mean"] == pytest.approx(d / 2, rel=0.15)
    assert estimate["trace"].shape == (4, 500)  # burn-in + draws per chain


def test_estimate_is_n_beta_times_the_post_burn_in_rise_per_chain(monkeypatch):
    """By hand, on a synthetic trace: chains [1, 1, 2, 3] and [1, 1, 4, 5], loss 1 at the checkpoint, burn-in 2,
    n_beta 10: chain LLCs 10 * (2.5 - 1) = 15 and 10 * (4.5 - 1) = 35, mean 25, std 10 (devinterp's own mean
    would keep the burn-in: 10 * (1.75 - 1) = 7.5 and 12.5)."""
    import devinterp.slt.llc
    import xarray as xr

    trace = np.array([[1.0, 1, 2, 3], [1.0, 1, 4, 5]])
    fake = xr.Dataset({"loss_trace": (("chain", "step"), trace), "init_loss": 1.0})
    monkeypatch.setattr(devinterp.slt.llc, "llc", lambda *args, **kwargs: fake)
    settings = OmegaConf.create({**SGLD, "n_beta": 10.0, "burn_in": 2, "draws": 2, "chains": 2})
    estimate = sgld_llc(torch.nn.Linear(1, 1), None, settings, seed=0)
    assert estimate["per_chain"].tolist() == [15.0, 35.0]
    assert (estimate["llc_mean"], estimate["llc_std"]) == (25.0, 10.0)
