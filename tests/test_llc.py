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
    estimate = sgld_llc(torch.nn.Linear(1, 1), token_dataset(torch.zeros(8, 2, dtype=torch.long)), settings, seed=0)
    assert estimate["per_chain"].tolist() == [15.0, 35.0]
    assert (estimate["llc_mean"], estimate["llc_std"]) == (25.0, 10.0)


# The LLC's module: the training twin of a model trained here (pipeline.checkpoints.load_twin).
LANGUAGE = dict(n_layers=2, d_model=32, n_heads=4, d_head=8, n_ctx=24, d_vocab=50, act_fn=None, attn_only=True,
                normalization_type="LN", positional_embedding_type="shortformer", model_name="llc")
VARIANTS = {"language": LANGUAGE, "smeared": {**LANGUAGE, "smeared_keys": True},
            "markov": {**LANGUAGE, "d_vocab": 3, "positional_embedding_type": "standard"},
            "mlp": {**LANGUAGE, "attn_only": False, "d_mlp": 64, "act_fn": "gelu"}}


def checkpoint_pair(tmp_path, kwargs):
    """A checkpoint of a random model (trained-looking: random smear gates too), loaded both ways."""
    from pipeline.checkpoints import load_checkpoint, load_twin, save_checkpoint
    from pipeline.model import hooked_transformer, trainable_state_dict

    hooked = hooked_transformer(kwargs, seed=1)
    state = trainable_state_dict(hooked.state_dict())
    generator = torch.Generator().manual_seed(1)
    state = {k: torch.randn(v.shape, generator=generator) if k.endswith("smear_alpha") else v for k, v in state.items()}
    save_checkpoint(tmp_path / "step_000010.safetensors", state, kwargs, step=10, tokens_seen=100)
    path = tmp_path / "step_000010.safetensors"
    return load_checkpoint(path), load_twin(path)


@pytest.mark.parametrize("variant", VARIANTS)
def test_twin_per_token_losses_equal_the_hooked_transformers_inside_the_llc_loss(tmp_path, variant):
    """devinterp's own loss (what the chains sample) on the twin vs on the HookedTransformer of one checkpoint."""
    from devinterp.slt.lm_loss import compute_per_token_loss

    hooked, twin = checkpoint_pair(tmp_path, VARIANTS[variant])
    ids = torch.randint(0, VARIANTS[variant]["d_vocab"], (6, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, reference = compute_per_token_loss(twin, ids), compute_per_token_loss(hooked, ids)
    assert ours.shape == (6, 23)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


def test_head_masks_name_twin_parameters_of_the_same_shapes(tmp_path):
    """The refined LLC's masks (built by attribute) address the twin's parameters by name, shape for shape."""
    from pipeline.llc import head_masks

    _, twin = checkpoint_pair(tmp_path, LANGUAGE)
    shapes = {name: p.shape for name, p in twin.named_parameters()}
    masks = head_masks(twin, 1, 2)
    assert len(masks) == 7 and all(shapes[name] == mask.shape for name, mask in masks.items())
    assert all(mask.sum() == mask[2].numel() for mask in masks.values())  # head 2's slice only


def test_an_estimate_on_the_twin_is_bit_reproducible(tmp_path):
    _, twin = checkpoint_pair(tmp_path, LANGUAGE)
    ids = torch.randint(0, 50, (32, 24), generator=torch.Generator().manual_seed(0))
    settings = OmegaConf.create({"lr": 3e-4, "n_beta": 30.0, "localization": 300.0, "chains": 2, "draws": 20,
                                 "burn_in": 5, "batch": 8, "device": "cpu"})
    first, again = (sgld_llc(twin, token_dataset(ids), settings, seed=3) for _ in range(2))
    assert np.array_equal(first["trace"], again["trace"]) and first["llc_mean"] == again["llc_mean"]
    assert first["trace"].std() > 0  # the chains moved


@pytest.mark.parametrize("variant", ["language", "smeared"])
def test_sampler_steps_on_the_twin_follow_the_hooked_transformers(tmp_path, variant):
    """With SGLD's noise switched off (devinterp's testing knob) a chain is deterministic drift along the batch
    gradients and the localization: the twin's loss trace must follow the HookedTransformer's step for step
    (its gradients are the same up to float rounding), over 30 steps that move the loss visibly."""
    import warnings

    from devinterp.slt.llc import llc

    hooked, twin = checkpoint_pair(tmp_path, VARIANTS[variant])
    dataset = token_dataset(torch.randint(0, 50, (32, 24), generator=torch.Generator().manual_seed(0)))
    traces = []
    for model in (twin, hooked):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = llc(model, dataset, {}, lr=1e-2, n_beta=30.0, localization=10.0, num_chains=1, num_draws=30,
                         batch_size=8, init_seed=0, noise_level=0.0, output_path=tmp_path / f"{len(traces)}.zarr")
        traces.append(result.loss_trace.values[0])
    ours, reference = traces
    assert reference[0] - reference[-1] > 0.05  # the drift lowers the loss: the test has something to follow
    np.testing.assert_allclose(ours, reference, atol=2e-4)


def test_the_regression_llc_samples_exactly_the_52741_trained_parameters(tmp_path):
    """A saved and reloaded L2H4 regression checkpoint (its twin, as the LLC loads it): the chains' masks cover
    the timaeus layout's 52,741 trained parameters and none of the 512 zero attention biases; a head's refined
    masks hold W_Q, W_K, W_V, W_O only."""
    from pipeline.checkpoints import load_twin, save_checkpoint
    from pipeline.config import compose
    from pipeline.interventions import untrained
    from pipeline.kinds.regression.subject import config_kwargs, initial_model
    from pipeline.llc import head_masks, sampled_count, trained_masks
    from pipeline.registry import KINDS

    cfg = compose(["+experiment=regression"])
    kwargs = config_kwargs(cfg.model, cfg.data)
    save_checkpoint(tmp_path / "step_000010.safetensors", initial_model(kwargs, 0).state_dict(), kwargs, 10, 100)
    twin = load_twin(tmp_path / "step_000010.safetensors")
    assert all(p.requires_grad for p in twin.parameters())  # loading alone would let the chains move the biases
    frozen = untrained([], KINDS["regression"].frozen)
    masks = trained_masks(twin, frozen)
    assert sampled_count(twin, masks) == 52741
    assert sum(p.numel() for p in twin.parameters()) - sampled_count(twin, masks) == 512
    assert sorted(name.rsplit(".", 1)[1] for name in head_masks(twin, 1, 0, frozen)) == ["W_K", "W_O", "W_Q", "W_V"]


def test_a_chain_leaves_frozen_parameters_bit_identical(tmp_path, monkeypatch):
    """A language model with layer 0 frozen by a freeze intervention: every chain's model, read at every draw,
    still holds layer 0 bit for bit, while the trained layer 1 moved; with no masks layer 0 would move too."""
    import devinterp.slt.sampling

    from pipeline.interventions import untrained
    from pipeline.llc import trained_masks

    _, twin = checkpoint_pair(tmp_path, LANGUAGE)
    frozen = untrained([{"kind": "freeze", "params": ["blocks.0.*"]}])
    start = {name: p.detach().clone() for name, p in twin.named_parameters()}
    seen = []
    chain = devinterp.slt.sampling.sample_single_chain

    def recording(*args, callbacks, **kwargs):
        record = lambda model, **_: seen.append({n: p.detach().clone() for n, p in model.named_parameters()})
        return chain(*args, callbacks=[*callbacks, record], **kwargs)

    monkeypatch.setattr(devinterp.slt.sampling, "sample_single_chain", recording)
    ids = torch.randint(0, 50, (32, 24), generator=torch.Generator().manual_seed(0))
    settings = OmegaConf.create({"lr": 3e-4, "n_beta": 30.0, "localization": 300.0, "chains": 2, "draws": 5,
                                 "burn_in": 2, "batch": 8, "device": "cpu"})
    for masks, layer0_moves in ((trained_masks(twin, frozen), False), (None, True)):
        seen.clear()
        sgld_llc(twin, token_dataset(ids), settings, seed=0, param_masks=masks)
        assert len(seen) == 2 * 5
        for state in seen:
            assert any(not torch.equal(state[n], start[n]) for n in start if n.startswith("blocks.1."))
            unchanged = all(torch.equal(state[n], start[n]) for n in start if n.startswith("blocks.0."))
            assert unchanged != layer0_moves
