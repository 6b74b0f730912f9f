"""The LLC estimator on a model whose answer is known: a full-rank linear regression with d parameters has
LLC d/2 (its loss is quadratic around the minimum, so n_beta * E[L - L0] = d/2 under the tempered posterior)."""

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
