"""Science test: Olsson's Argument 2 (smeared keys) on the default recipe, through the real pipeline. Its own
module so that pytest-xdist runs it beside the default run (test_science.py), not after it."""

import pytest
from conftest import build_tables, table_paths
from test_science import best_prefix_matching

from pipeline.config import resolve_run

pytestmark = [pytest.mark.slow, pytest.mark.cost(110)]  # deselect locally with -m "not slow"; CI runs it

OVERRIDES = ("[model=[attn_only_1l,attn_only_1l_smeared],train.steps=300,train.n_checkpoints=8,"
             "analysis.eval.n_sequences=256,jobs.train_split_at=[],analysis.compile=false]")  # one job per step
READS = ["head_scores", "icl", "phase_window"]


@pytest.fixture(scope="module")
def smeared_run(tmp_path_factory):
    """Olsson's Argument 2 on the default recipe, cut to 300 steps and a 256-sequence eval sample (~2 min):
    plain and smeared-key 1-layer models side by side, and only the per-model tables read here (13 jobs, not
    the whole run's: no causal, LLC, PCA or figure jobs, which the tiny run covers; each model trains and is scored
    in one job, eagerly: a job's imports and a compile cost more than they save on 8 checkpoints)."""
    run = resolve_run(OVERRIDES)
    paths = {name: table_paths(run.name, run.configs, name) for name in READS}
    return build_tables(tmp_path_factory.mktemp("smeared"), paths, config=f"overrides={OVERRIDES}", timeout=2400)


def test_smeared_keys_let_a_1l_model_form_induction_heads(smeared_run):
    heads = smeared_run["head_scores"]
    assert best_prefix_matching(heads, "attn_only_1l").max() < 0.15
    smeared = best_prefix_matching(heads, "attn_only_1l_smeared")
    assert smeared.iloc[0] < 0.1 and smeared.iloc[-1] > 0.3
    windows = smeared_run["phase_window"].set_index("model")
    assert windows.loc["attn_only_1l_smeared", "has_window"] and not windows.loc["attn_only_1l", "has_window"]
    # measured (seed 0, step 300): ICL -0.08 vs +0.06, eval loss 3.21 vs 3.61 nats
    final = smeared_run["icl"].query("step == step.max()").set_index("model")
    assert final.icl_score["attn_only_1l_smeared"] < final.icl_score["attn_only_1l"] - 0.1
    assert final.loss["attn_only_1l_smeared"] < final.loss["attn_only_1l"] - 0.2


def test_smeared_heads_learn_to_use_the_previous_key(smeared_run):
    """sigmoid(alpha) starts at 0.5 (alpha = 0) and the induction head's falls: it reads the previous key."""
    gates = smeared_run["head_scores"].query("model == 'attn_only_1l_smeared' and score == 'smear_gate'")
    assert (gates[gates.step == 0].value == 0.5).all()
    assert gates[gates.step == gates.step.max()].value.min() < 0.3
