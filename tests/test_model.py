"""The training twin and the HookedTransformer are the same model; checkpoints round-trip."""

from types import SimpleNamespace

import pytest
import torch

from pipeline.checkpoints import load_checkpoint, save_checkpoint
from pipeline.model import TrainingTwin, hooked_config_kwargs, hooked_transformer

CFG = SimpleNamespace(name="test_2l", n_layers=2, d_model=64, n_heads=4, n_ctx=32)
VARIANTS = {"attn_only": CFG, "smeared_keys": SimpleNamespace(**vars(CFG), smeared_keys=True),
            "mlp": SimpleNamespace(**vars(CFG), d_mlp=256),
            "smeared_mlp": SimpleNamespace(**vars(CFG), d_mlp=256, smeared_keys=True)}


def assert_same_after_training(twin, hooked, d_vocab: int, n_ctx: int):
    """Train the twin three AdamW steps (so the comparison is not only at initialisation), give the
    HookedTransformer its weights: the same logits."""
    opt = torch.optim.AdamW(twin.parameters(), lr=1e-2)
    for _ in range(3):
        tokens = torch.randint(0, d_vocab, (4, n_ctx))
        loss = torch.nn.functional.cross_entropy(twin(tokens)[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    hooked.load_state_dict(twin.state_dict(), strict=False)
    tokens = torch.randint(0, d_vocab, (3, n_ctx))
    with torch.no_grad():
        torch.testing.assert_close(twin(tokens), hooked(tokens), atol=1e-4, rtol=0)


@pytest.mark.parametrize("variant", VARIANTS)
def test_twin_matches_hooked_transformer_logits(variant):
    hooked = hooked_transformer(hooked_config_kwargs(VARIANTS[variant], d_vocab=100), seed=3)
    twin = TrainingTwin.from_hooked(hooked)
    assert_same_after_training(twin, hooked, d_vocab=100, n_ctx=32)
    assert sorted(twin.state_dict()) == sorted(k for k in hooked.state_dict() if not k.endswith(("mask", "IGNORE")))


def test_smeared_keys_mix_each_key_with_the_previous_one():
    """A hand-set alpha: sigmoid(alpha) = 0.25 gives key_j = 0.25 key_j + 0.75 key_{j-1} in hook_k's output,
    key_0 unchanged; alpha -> +inf is the plain model."""
    kwargs = hooked_config_kwargs(VARIANTS["smeared_keys"], d_vocab=100)
    hooked = hooked_transformer(kwargs, seed=0)
    plain = hooked_transformer(hooked_config_kwargs(CFG, d_vocab=100), seed=0)
    plain.load_state_dict(hooked.state_dict(), strict=False)
    tokens = torch.randint(0, 100, (2, 10))
    with torch.no_grad():
        hooked.blocks[0].attn.smear_alpha.fill_(-torch.log(torch.tensor(3.0)))  # sigmoid = 0.25
        raw = plain.run_with_cache(tokens, names_filter="blocks.0.attn.hook_k")[1]["blocks.0.attn.hook_k"]
        smeared = hooked.run_with_cache(tokens, names_filter="blocks.0.attn.hook_k")[1]["blocks.0.attn.hook_k"]
        torch.testing.assert_close(smeared[:, 0], raw[:, 0])
        torch.testing.assert_close(smeared[:, 5], 0.25 * raw[:, 5] + 0.75 * raw[:, 4])
        for block in hooked.blocks:
            block.attn.smear_alpha.fill_(30.0)
        torch.testing.assert_close(hooked(tokens), plain(tokens), atol=1e-5, rtol=0)


def test_smeared_checkpoint_round_trip_keeps_alpha_and_compiles(tmp_path):
    from pipeline.kinds.language.scores import compiled, per_token_losses

    kwargs = hooked_config_kwargs(VARIANTS["smeared_mlp"], d_vocab=100)
    twin = TrainingTwin.from_hooked(hooked_transformer(kwargs, seed=1))
    with torch.no_grad():
        twin.blocks[1].attn.smear_alpha.copy_(torch.tensor([-2.0, -1.0, 1.0, 2.0]))
    save_checkpoint(tmp_path / "step_000001.safetensors", twin.state_dict(), kwargs, step=1, tokens_seen=128)
    loaded = load_checkpoint(tmp_path / "step_000001.safetensors")
    torch.testing.assert_close(loaded.blocks[1].attn.smear_alpha, torch.tensor([-2.0, -1.0, 1.0, 2.0]))
    tokens = torch.randint(0, 100, (4, 32))
    with torch.no_grad():
        torch.testing.assert_close(loaded(tokens), twin(tokens), atol=1e-5, rtol=0)
        eager = per_token_losses(loaded, tokens, batch=2)
        torch.testing.assert_close(per_token_losses(compiled(loaded, True), tokens, batch=2), eager, atol=1e-4, rtol=0)


def test_positions_reach_only_queries_and_keys():
    hooked = hooked_transformer(hooked_config_kwargs(CFG, d_vocab=100), seed=0)
    tokens = torch.randint(0, 100, (1, 8))
    _, cache = hooked.run_with_cache(tokens, names_filter="blocks.0.hook_resid_pre")
    torch.testing.assert_close(cache["blocks.0.hook_resid_pre"], hooked.embed.W_E[tokens])


def test_checkpoint_round_trip(tmp_path):
    kwargs = hooked_config_kwargs(CFG, d_vocab=100)
    twin = TrainingTwin.from_hooked(hooked_transformer(kwargs, seed=1))
    save_checkpoint(tmp_path / "step_000007.safetensors", twin.state_dict(), kwargs, step=7, tokens_seen=7 * 128)
    loaded = load_checkpoint(tmp_path / "step_000007.safetensors")
    tokens = torch.randint(0, 100, (2, 32))
    with torch.no_grad():
        torch.testing.assert_close(loaded(tokens), twin(tokens), atol=1e-5, rtol=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000007.json", "step_000007.safetensors"]
