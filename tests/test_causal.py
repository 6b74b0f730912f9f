"""Ablation, patching, logit attribution and copying on the hand-built model, whose layer-1 head 0 is an
exact induction head fed by an exact previous-token head in layer 0."""

import numpy as np
import pandas as pd
import pytest
import torch
from handbuilt import N_CTX, VOCAB, handbuilt_model, repeated_distinct_tokens
from omegaconf import OmegaConf

from pipeline.config import compose
from pipeline.io import UserError
from pipeline.kinds.language.causal import (
    ablated,
    control_heads,
    copying_scores,
    induction_heads,
    mean_head_outputs,
    most_repetitive,
)
from pipeline.kinds.language.tasks import TaskContext, induction, task_tables
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
    heads = [(1, 2), (0, 1)]
    mean_z = mean_head_outputs(model, tokens, {0, 1})
    _, full = model.run_with_cache(tokens)  # the means stop the forward after their layers, same numbers
    torch.testing.assert_close(mean_z[0], full["z", 0].mean(dim=(0, 1)), atol=0, rtol=0)

    def replace(z, hook):
        layer = hook.layer()
        for lay, head in heads:
            if lay == layer:
                z[:, :, head] = mean_z[layer][head] if method == "mean" else 0.0
        return z

    hooked = model.run_with_hooks(tokens, fwd_hooks=[(lambda n: n.endswith("hook_z"), replace)])
    with ablated(model, heads, mean_z if method == "mean" else None):
        edited = model(tokens)
    torch.testing.assert_close(edited, hooked, atol=1e-4, rtol=1e-4)


def induction_task(corruptions, batch, seq_len=10, seed=0):
    cfg = OmegaConf.create({"corruptions": corruptions, "batch": batch, "seq_len": seq_len})
    return induction(cfg, TaskContext(torch.arange(1, VOCAB), 0, None, N_CTX), seed)


@torch.no_grad()
def test_patching_the_induction_head_recovers_the_clean_metric(model):
    tables = task_tables(model, induction_task(["AB", "BC"], batch=8), resid=True, min_gap=0.5)
    rows = pd.DataFrame(tables["patching"])
    heads = rows[rows.activation == "head_out"].set_index(["corruption", "layer", "index"]).value
    for corruption in ["AB", "BC"]:
        assert heads[(corruption, *INDUCTION)] > 0.9
        assert abs(heads[(corruption, *UNRELATED)]) < 0.05
    resid = rows[rows.activation == "resid_pre"]
    assert len(resid) == 2 * 2 * 21  # corruptions x layers x positions
    attribution = pd.DataFrame(tables["logit_attribution"]).set_index(["kind", "component"]).value
    assert attribution[("head", "L1H0")] > 5 * attribution.drop(("head", "L1H0")).loc["head"].abs().max()


@torch.no_grad()
def test_position_resolved_patching_shows_where_the_circuit_reads(model):
    """Single-answer metric (the last second-copy prediction, at query position 2L-1). AB corrupts the second
    copy: the query token alone restores it, at either layer. BA corrupts the first copy: only layer 1's
    input at position L (the token after the query token's earlier occurrence, with its previous-token
    information) restores it; no single layer-0 position can, since layer 0 builds that key from two."""
    seq_len = 10
    tables = task_tables(model, induction_task(["AB", "BA"], batch=16, seq_len=seq_len), resid=True, min_gap=0.5)
    resid = pd.DataFrame(tables["patching"]).query("activation == 'resid_pre'")
    grid = {c: g.pivot(index="layer", columns="index", values="value").to_numpy()
            for c, g in resid.groupby("corruption")}
    query, after_earlier = 2 * seq_len - 1, seq_len
    # (random tokens drawn with replacement repeat now and then, so the peaks fall a little short of 1)
    assert grid["AB"][0, query] > 0.8 and grid["AB"][1, query] > 0.8
    assert np.abs(np.delete(grid["AB"], query, axis=1)).max() < 0.1
    assert grid["BA"][1, after_earlier] > 0.8 and np.abs(np.delete(grid["BA"][1], after_earlier)).max() < 0.1
    assert np.abs(grid["BA"][0]).max() < 0.1


def test_a_corruption_that_changes_nothing_is_not_patched(model):
    with torch.no_grad():
        rows = task_tables(model, induction_task(["AA"], batch=4), resid=False, min_gap=0.5)["patching"]
    assert len(rows) == 2 * 4 and all(np.isnan(r["value"]) for r in rows)
    with pytest.raises(UserError, match=r"analysis.tasks.induction.corruptions\[1\]='AX': string should match"):
        compose(["analysis.tasks.induction.corruptions=[AB,AX]"])  # refused when the config is composed


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
