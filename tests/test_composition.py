"""Composition scores on hand-set rank-1 circuits whose compositions are known, and the random baseline."""

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from pipeline.composition import composition_table, random_baseline

# head -> (query dim, key dim, value dim, output dim): each circuit reads / writes one basis direction
CIRCUITS = {(0, 0): (6, 7, 0, 1), (0, 1): (6, 7, 4, 5), (1, 0): (2, 1, 1, 7), (1, 1): (5, 6, 2, 3)}
KNOWN = {("K", 0, 0, 1, 0): 1.0,   # L0H0 writes e1, which L1H0's key reads
         ("V", 0, 0, 1, 0): 1.0,   # ... and L1H0's value reads
         ("Q", 0, 1, 1, 1): 1.0}   # L0H1 writes e5, which L1H1's query reads


def rank_one_model() -> HookedTransformer:
    cfg = HookedTransformerConfig(n_layers=2, d_model=8, n_heads=2, d_head=1, n_ctx=4, d_vocab=10, act_fn=None,
                                  attn_only=True, normalization_type=None, device="cpu", seed=0)
    model = HookedTransformer(cfg, move_to_device=False)
    with torch.no_grad():
        for (layer, head), (q, k, v, o) in CIRCUITS.items():
            attn = model.blocks[layer].attn
            for weight, dim in ((attn.W_Q, q), (attn.W_K, k), (attn.W_V, v)):
                weight[head].zero_()
                weight[head, dim, 0] = 1.0
            attn.W_O[head].zero_()
            attn.W_O[head, 0, o] = 1.0
    return model


def test_known_compositions_score_one_and_orthogonal_circuits_zero():
    baseline = random_baseline(8, 1)
    table = composition_table(rank_one_model(), baseline)
    assert len(table) == 3 * 2 * 2  # modes x earlier heads x later heads
    for row in table.itertuples():
        expected = KNOWN.get((row.mode, row.layer_from, row.head_from, row.layer_to, row.head_to), 0.0)
        assert row.score == pytest.approx(expected, abs=1e-6), row
        assert row.above_baseline == pytest.approx(expected - baseline, abs=1e-6)


def test_randomly_initialised_heads_score_the_random_baseline():
    """TransformerLens initialises W_Q, W_K, W_V, W_O with iid Gaussians: their mean composition score is the
    baseline's (which is far above 0 in a small residual stream: 0.09 at d_model 128, d_head 32)."""
    cfg = HookedTransformerConfig(n_layers=3, d_model=64, n_heads=8, d_head=8, n_ctx=8, d_vocab=10, act_fn=None,
                                  attn_only=True, device="cpu", seed=1, init_weights=True)
    table = composition_table(HookedTransformer(cfg, move_to_device=False), random_baseline(64, 8))
    assert len(table) == 3 * 3 * 64  # three (earlier, later) layer pairs of 8 x 8 heads, per mode
    for mode, scores in table.groupby("mode"):
        assert abs(scores.above_baseline.mean()) < 0.1 * random_baseline(64, 8), mode
    assert random_baseline(128, 32) == pytest.approx(0.088, abs=0.003)
