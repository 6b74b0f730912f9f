"""The in-context-regression kind: its exact baselines against closed forms and independent references, its
token layout, the training twin against the HookedTransformer, and the probe on hand-built attention."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from scipy.stats import norm
from sklearn.linear_model import Ridge

from pipeline.config import compose
from pipeline.kinds.regression.data import (
    dmmse_predictions,
    draw_tasks,
    ridge_predictions,
    sample_sequences,
    to_tokens,
)
from pipeline.kinds.regression.scores import chance_levels, previous_token, xy_probe
from pipeline.kinds.regression.subject import (
    config_kwargs,
    hooked_outputs,
    initial_model,
    mse_loss,
    predictions,
)
from pipeline.model import TrainingTwin, hooked_transformer

DATA = OmegaConf.create({"dim": 3, "n_pairs": 10, "noise_variance": 0.25, "n_tasks": 5})


def sample(n=16, data=DATA, tasks=None, seed=0):
    return sample_sequences(n, data, tasks, torch.Generator().manual_seed(seed))


def test_ridge_matches_sklearn_on_every_prefix():
    """Ridge with lambda = sigma^2 and no intercept, refit by sklearn on each prefix; 0 with no context."""
    x, y, _ = sample()
    ours = ridge_predictions(x, y, DATA.noise_variance).numpy()
    assert np.all(ours[:, 0] == 0)
    for n in range(3):
        for k in range(1, DATA.n_pairs):
            fit = Ridge(alpha=DATA.noise_variance, fit_intercept=False).fit(x[n, :k].double(), y[n, :k].double())
            assert ours[n, k] == pytest.approx(float(fit.predict(x[n, k:k + 1].double())[0]), abs=1e-8)


def test_ridge_recovers_w_without_noise_once_it_has_d_pairs():
    data = OmegaConf.create({**DATA, "noise_variance": 1e-12})
    x, y, w = sample(data=data)
    y = torch.einsum("nkd,nd->nk", x, w)  # noise-free
    ours = ridge_predictions(x, y, 1e-10)
    truth = torch.einsum("nkd,nd->nk", x.double(), w.double())
    assert torch.allclose(ours[:, DATA.dim:], truth[:, DATA.dim:], atol=1e-5)
    assert not torch.allclose(ours[:, 1:DATA.dim], truth[:, 1:DATA.dim], atol=1e-2)  # fewer pairs than dimensions


def test_dmmse_with_one_task_is_that_task():
    tasks = draw_tasks(OmegaConf.create({**DATA, "n_tasks": 1}), seed=3)
    x, y, w = sample(tasks=tasks)
    assert torch.equal(w, tasks.expand_as(w))
    expected = torch.einsum("nkd,d->nk", x.double(), tasks[0].double())
    assert torch.allclose(dmmse_predictions(x, y, tasks, DATA.noise_variance), expected, atol=1e-12)


def test_dmmse_is_the_posterior_mean_from_gaussian_likelihoods():
    """An independent reference: the posterior over tasks from products of normal densities (scipy)."""
    tasks = draw_tasks(DATA, seed=1)
    x, y, _ = sample(n=4, tasks=tasks, seed=2)
    ours = dmmse_predictions(x, y, tasks, DATA.noise_variance, chunk=3).numpy()
    X, Y, T = x.double().numpy(), y.double().numpy(), tasks.double().numpy()
    for n in range(4):
        for k in range(DATA.n_pairs):
            likelihood = np.array([np.prod(norm.pdf(Y[n, :k], X[n, :k] @ t, DATA.noise_variance ** 0.5)) for t in T])
            w_hat = (likelihood / likelihood.sum()) @ T
            assert ours[n, k] == pytest.approx(float(X[n, k] @ w_hat), abs=1e-9)
    assert ours[:, 0] == pytest.approx(X[:, 0] @ T.mean(0), abs=1e-9)  # the mean task without context


def test_tokens_interleave_x_and_y():
    x, y, _ = sample(n=2)
    tokens = to_tokens(x, y)
    assert tokens.shape == (2, 2 * DATA.n_pairs, DATA.dim + 1)
    assert torch.equal(tokens[:, 0::2, 1:], x) and torch.all(tokens[:, 0::2, 0] == 0)
    assert torch.equal(tokens[:, 1::2, 0], y) and torch.all(tokens[:, 1::2, 1:] == 0)


@pytest.mark.parametrize("d_mlp", [64, None])
def test_training_twin_equals_the_hooked_transformer(d_mlp):
    """Same weights, same outputs and the same loss gradient: the twin trains what the analysis reads."""
    cfg = compose(["+experiment=regression", f"model.d_mlp={'null' if d_mlp is None else d_mlp}"])
    hooked = hooked_transformer(config_kwargs(cfg.model, cfg.data), seed=0)
    twin = TrainingTwin.from_hooked(hooked)
    x, y, _ = sample_sequences(8, cfg.data, None, torch.Generator().manual_seed(0))
    tokens = to_tokens(x, y)
    assert torch.allclose(hooked_outputs(hooked, tokens), twin(tokens), atol=1e-5)
    hooked_loss = torch.nn.functional.mse_loss(predictions(hooked_outputs(hooked, tokens)), y)
    assert mse_loss(twin, (tokens, y)).item() == pytest.approx(hooked_loss.item(), rel=1e-5)


def test_the_trained_parameters_are_the_timaeus_layouts():
    """52,741 trainable parameters at D=4, K=16 (L2H4, width 64, MLP 64); the attention biases stay 0."""
    cfg = compose(["+experiment=regression"])
    twin = initial_model(config_kwargs(cfg.model, cfg.data), seed=0)
    assert sum(p.numel() for p in twin.parameters() if p.requires_grad) == 52741
    frozen = [p for name, p in twin.named_parameters() if not p.requires_grad]
    assert len(frozen) == 8 and all(torch.all(p == 0) for p in frozen)


def test_probe_scores_hand_built_attention():
    """A head attending exactly to the y after the earlier copy scores 1; uniform causal attention scores
    1 / (query position + 1); previous-token attention scores 1 on previous_token and 0 on the probe."""
    probe = OmegaConf.create({"earlier": 2, "later": 7, "batch": 4})
    n_ctx, query = 20, 2 * probe.later
    exact = torch.zeros(4, 2, n_ctx, n_ctx)
    exact[:, :, query, 2 * probe.earlier + 1] = 1
    uniform = torch.tril(torch.ones(n_ctx, n_ctx)) / torch.arange(1, n_ctx + 1)[:, None]
    uniform = uniform.expand(4, 2, n_ctx, n_ctx)
    previous = torch.diag_embed(torch.ones(n_ctx - 1), offset=-1).expand(4, 2, n_ctx, n_ctx)
    assert torch.equal(xy_probe(exact, probe), torch.ones(2))
    assert torch.allclose(xy_probe(uniform, probe), torch.full((2,), 1 / (query + 1)))
    assert torch.equal(previous_token(previous, probe), torch.ones(2))
    assert torch.equal(xy_probe(previous, probe), torch.zeros(2))


def test_chance_levels_are_the_closed_forms_of_uniform_attention():
    """xy_probe reads one key of the query at x-token `later`: 1 / (2 later + 1); previous_token the mean of
    1 / (q + 1) over queries 1..2K-1; the probe on the model's own tasks has the probe's chance."""
    probe = OmegaConf.create({"earlier": 2, "later": 7, "batch": 4})
    chance = chance_levels(probe, 20).set_index("score").chance
    assert chance["xy_probe"] == pytest.approx(1 / 15) and chance["xy_probe_pretrain"] == chance["xy_probe"]
    assert chance["previous_token"] == pytest.approx(np.mean([1 / (q + 1) for q in range(1, 20)]))


def test_dmmse_over_many_tasks_tends_to_ridge():
    """The finite-M Bayes predictor becomes the Gaussian prior's as the pool grows: over 20,000 tasks from
    N(0, I) dMMSE is within 0.04 of ridge (per prediction, mean; 0.021 measured, 0.098 over 1,000 tasks), over
    4 tasks it is far from it (0.98)."""
    x, y, _ = sample(n=64, tasks=None, seed=4)
    ridge = ridge_predictions(x, y, DATA.noise_variance)
    many = dmmse_predictions(x, y, draw_tasks(OmegaConf.create({**DATA, "n_tasks": 20_000}), 5), DATA.noise_variance)
    few = dmmse_predictions(x, y, draw_tasks(OmegaConf.create({**DATA, "n_tasks": 4}), 5), DATA.noise_variance)
    assert (many - ridge).abs().mean() < 0.04 and (few - ridge).abs().mean() > 10 * (many - ridge).abs().mean()


def test_the_task_pool_is_not_the_training_streams_first_draws():
    """Raventos et al. and timaeus keep the task seed apart from the training stream's: the pool drawn for seed
    s is not the first normals of manual_seed(s), whose generator the trainer draws its batches from."""
    tasks = draw_tasks(DATA, seed=0)
    same_stream = torch.randn(*tasks.shape, generator=torch.Generator().manual_seed(0))
    assert tasks.shape == (5, 3) and not torch.allclose(tasks, same_stream)
    assert torch.equal(tasks, draw_tasks(DATA, seed=0)) and not torch.equal(tasks, draw_tasks(DATA, seed=1))


def test_training_resumes_exactly_across_a_chain_of_jobs(tmp_path):
    """Two jobs (0-20, then 20-40) end with the bytes of one job 0-40: the sampler's state travels with the
    resume state, so every step sees the batch it would have seen."""
    from pipeline.kinds.regression.subject import tasks_subject
    from pipeline.train import train

    cfg = compose(["+experiment=regression_tiny", "train.steps=40", "train.n_checkpoints=3"])
    tasks = draw_tasks(cfg.data, cfg.seed)
    whole = train(tasks_subject(cfg, tasks), cfg.train, cfg.seed, tmp_path / "whole", tmp_path / "whole_state")
    train(tasks_subject(cfg, tasks), cfg.train, cfg.seed, tmp_path / "first", tmp_path / "state", after=0, until=20)
    chained = train(tasks_subject(cfg, tasks), cfg.train, cfg.seed, tmp_path / "second", tmp_path / "state",
                    after=20, until=40)
    assert [row["train_loss"] for row in chained] == [row["train_loss"] for row in whole]
    final = "step_000040.safetensors"
    assert (tmp_path / "second" / final).read_bytes() == (tmp_path / "whole" / final).read_bytes()
