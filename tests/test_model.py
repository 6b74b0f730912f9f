"""The training twin and the HookedTransformer are the same model; checkpoints round-trip."""

from types import SimpleNamespace

import torch

from pipeline.model import (
    AttnOnlyTransformer,
    hooked_config_kwargs,
    hooked_transformer,
    load_checkpoint,
    save_checkpoint,
)

CFG = SimpleNamespace(name="test_2l", n_layers=2, d_model=64, n_heads=4, n_ctx=32)


def test_twin_matches_hooked_transformer_logits():
    hooked = hooked_transformer(hooked_config_kwargs(CFG, d_vocab=100), seed=3)
    twin = AttnOnlyTransformer.from_hooked(hooked)
    # Train the twin a few steps so the comparison is not only at initialisation.
    opt = torch.optim.AdamW(twin.parameters(), lr=1e-2)
    for _ in range(3):
        tokens = torch.randint(0, 100, (4, 32))
        loss = torch.nn.functional.cross_entropy(twin(tokens)[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    hooked.load_state_dict(twin.state_dict(), strict=False)
    tokens = torch.randint(0, 100, (3, 32))
    with torch.no_grad():
        torch.testing.assert_close(twin(tokens), hooked(tokens), atol=1e-4, rtol=0)


def test_positions_reach_only_queries_and_keys():
    hooked = hooked_transformer(hooked_config_kwargs(CFG, d_vocab=100), seed=0)
    tokens = torch.randint(0, 100, (1, 8))
    _, cache = hooked.run_with_cache(tokens, names_filter="blocks.0.hook_resid_pre")
    torch.testing.assert_close(cache["blocks.0.hook_resid_pre"], hooked.embed.W_E[tokens])


def test_checkpoint_round_trip(tmp_path):
    kwargs = hooked_config_kwargs(CFG, d_vocab=100)
    twin = AttnOnlyTransformer.from_hooked(hooked_transformer(kwargs, seed=1))
    save_checkpoint(tmp_path / "step_000007.safetensors", twin.state_dict(), kwargs, step=7, tokens_seen=7 * 128)
    loaded = load_checkpoint(tmp_path / "step_000007.safetensors")
    tokens = torch.randint(0, 100, (2, 32))
    with torch.no_grad():
        torch.testing.assert_close(loaded(tokens), twin(tokens), atol=1e-5, rtol=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000007.json", "step_000007.safetensors"]
