"""Ablation, patching, logit attribution and copying on the hand-built model, whose layer-1 head 0 is an
exact induction head fed by an exact previous-token head in layer 0."""

import numpy as np
import pandas as pd
import pytest
import torch
from handbuilt import VOCAB, handbuilt_model, repeated_distinct_tokens
from omegaconf import OmegaConf

from pipeline.causal import (
    ablated,
    control_heads,
    copying_scores,
    induction_heads,
    induction_task,
    mean_head_outputs,
    most_repetitive,
    patching_and_attribution,
)
from pipeline.config import compose
from pipeline.io import UserError
from pipeline.model import hooked_transformer

INDUCTION, PREVIOUS, UNRELATED = (1, 0), (0, 0), (0, 2)


@pytest.fixture(scope="module")
def model():
    return handbuilt_model()


def halves(model, tokens):
    """Mean loss predicting the first copy's tokens and the second copy's tokens."""
    losses = model(tokens, return_type="loss", loss_per_token=True)
    seq_len = (tokens.shape[1] - 1) // 2
    return losses[:, 1:seq_len].mean().item(), losses[:, seq_len + 1:].mean().item()


@torch.no_grad()
def test_ablating_the_induction_head_removes_the_second_repeat_gain(model):
    tokens = repeated_distinct_tokens(8, 20)
    _, second = halves(model, tokens)
    assert second < 0.05
    with ablated(model, [INDUCTION]):
        first_ablated, second_ablated = halves(model, tokens)
    assert second_ablated == pytest.approx(first_ablated, abs=0.05) and second_ablated > np.log(VOCAB) - 0.2
    with ablated(model, [PREVIOUS]):  # the other half of the circuit: no better than chance either
        assert halves(model, tokens)[1] > np.log(VOCAB) - 0.2
    with ablated(model, [UNRELATED]):
        assert halves(model, tokens)[1] == pytest.approx(second, abs=1e-4)
    assert halves(model, tokens)[1] == pytest.approx(second, abs=1e-6)  # weights restored


@torch.no_grad()
@pytest.mark.parametrize("method", ["zero", "mean"])
def test_weight_edit_ablation_equals_hook_ablation(method):
    model = hooked_transformer(dict(n_layers=2, d_model=32, n_heads=4, d_head=8, n_ctx=24, d_vocab=50, act_fn=None,
                                    attn_only=True, normalization_type="LN", positional_embedding_type="shortformer"),
                               seed=3)
    tokens = torch.randint(0, 50, (4, 24), generator=torch.Generator().manual_seed(0))
    mean_z = mean_head_outputs(model, tokens)
    heads = [(1, 2), (0, 1)]

    def replace(z, hook):
        layer = hook.layer()
        for lay, head in heads:
            if lay == layer:
                z[:, :, head] = mean_z[layer, head] if method == "mean" else 0.0
        return z

    hooked = model.run_with_hooks(tokens, fwd_hooks=[(lambda n: n.endswith("hook_z"), replace)])
    with ablated(model, heads, mean_z if method == "mean" else None):
        edited = model(tokens)
    torch.testing.assert_close(edited, hooked, atol=1e-4, rtol=1e-4)


@torch.no_grad()
def test_patching_the_induction_head_recovers_the_clean_metric(model):
    parts = induction_task(torch.arange(1, VOCAB), bos_id=0, batch=8, seq_len=10, seed=0)
    rows, attribution = patching_and_attribution(model, parts, ["AB", "BC"], resid=True, min_gap=0.5)
    rows = pd.DataFrame(rows)
    heads = rows[rows.activation == "head_out"].set_index(["corruption", "layer", "index"]).value
    for corruption in ["AB", "BC"]:
        assert heads[(corruption, *INDUCTION)] > 0.9
        assert abs(heads[(corruption, *UNRELATED)]) < 0.05
    resid = rows[rows.activation == "resid_pre"]
    assert len(resid) == 2 * 2 * 21  # corruptions x layers x positions
    attribution = pd.DataFrame(attribution).set_index(["kind", "component"]).value
    assert attribution[("head", "L1H0")] > 5 * attribution.drop(("head", "L1H0")).loc["head"].abs().max()


def test_a_corruption_that_changes_nothing_is_not_patched(model):
    parts = induction_task(torch.arange(1, VOCAB), bos_id=0, batch=4, seq_len=10, seed=0)
    with torch.no_grad():
        rows, _ = patching_and_attribution(model, parts, ["AA"], resid=False, min_gap=0.5)
    assert len(rows) == 2 * 4 and all(np.isnan(r["value"]) for r in rows)
    with pytest.raises(UserError, match=r"analysis.patching.corruptions\[1\]='AX': string should match"):
        compose(["analysis.patching.corruptions=[AB,AX]"])  # refused when the config is composed


def test_copying_score_of_the_induction_head_is_one(model):
    scores = copying_scores(model, torch.arange(VOCAB))
    assert scores[INDUCTION].item() == pytest.approx(1.0, abs=1e-4)
    assert torch.isnan(scores[UNRELATED])  # no OV circuit at all: 0 / 0


def test_head_selection():
    final = pd.DataFrame({"step": 9, "score": "prefix_matching", "layer": [1, 1, 1, 0], "head": [0, 1, 2, 0],
                          "value": [0.6, 0.35, 0.1, 0.9]})
    heads = pd.concat([final, final.assign(step=0, value=0.0)])
    cfg = OmegaConf.create({"score": "prefix_matching", "threshold": 0.3, "top_k": None})
    assert induction_heads(heads, cfg) == [(0, 0), (1, 0), (1, 1)]
    assert induction_heads(heads, OmegaConf.merge(cfg, {"top_k": 1})) == [(0, 0)]
    control = control_heads([(1, 0)], n_layers=2, n_heads=4, seed=0)
    assert len(control) == 1 and control[0][0] == 1 and control != [(1, 0)]
    assert control_heads([(1, 0)], 2, 4, seed=0) == control
    assert len(set(control_heads([(1, 0), (1, 1), (1, 2)], 2, 4, seed=0))) == 3  # spills into layer 0


def test_most_repetitive_sequence():
    sample = torch.tensor([[1, 2, 3, 4, 5, 6], [1, 2, 1, 2, 1, 2], [7, 7, 8, 9, 7, 7]])
    assert most_repetitive(sample) == 1
