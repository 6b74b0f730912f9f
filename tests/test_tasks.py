"""The task registry: the IOI task on a hand-built model whose logit difference, attribution, logit lens
and patching effects are known in closed form, and one-line refusals of malformed task prompts."""

import time

import pandas as pd
import pytest
import torch
from conftest import snakemake
from omegaconf import OmegaConf
from transformer_lens import HookedTransformer, HookedTransformerConfig

from pipeline.config import compose
from pipeline.io import UserError
from pipeline.kinds.language.tasks import TaskContext, ioi, task_tables

WORDS = ["<bos>", "When", "and", "met", ",", "waved", "to", "Mary", "John", "Tom", "Amy"]
TEMPLATE = "When {IO} and {S} met , {S} waved to"  # [BOS] + 9 words: IO at 2, S at 4 and 7, query at 9
LENGTH = 10


def encode(text: str) -> list[int]:
    """A word-level tokenizer: every name is one token."""
    return [WORDS.index(word) for word in text.split()]


def averaging_model() -> HookedTransformer:
    """1 layer, no LayerNorm, one-hot embeddings and unembedding. Head 0 has no query/key weights, so it
    attends uniformly to every position so far, and writes 2 x the mean one-hot of those tokens; head 1
    writes nothing. At the query, logit(IO) - logit(S) = 2 * (count(IO) - count(S)) / 10."""
    vocab = len(WORDS)
    cfg = HookedTransformerConfig(n_layers=1, d_model=vocab, n_heads=2, d_head=vocab, n_ctx=16, d_vocab=vocab,
                                  act_fn=None, attn_only=True, normalization_type=None,
                                  positional_embedding_type="standard", device="cpu")
    model = HookedTransformer(cfg, move_to_device=False)
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
        model.embed.W_E.copy_(torch.eye(vocab))
        model.blocks[0].attn.W_V[0] = torch.eye(vocab)
        model.blocks[0].attn.W_O[0] = 2 * torch.eye(vocab)
        model.unembed.W_U.copy_(torch.eye(vocab))
    return model


def ioi_cfg(**changes):
    return OmegaConf.create({"templates": [TEMPLATE], "names": ["Mary", "John", "Tom", "Amy"], "n_prompts": 6,
                             **changes})


def context(**changes):
    return TaskContext(**{"vocab": torch.arange(len(WORDS)), "bos_id": 0, "encode": encode, "n_ctx": 16, **changes})


def test_ioi_prompts_answers_and_swap():
    task = ioi(ioi_cfg(), context(), seed=0)
    assert task.clean.shape == (6, LENGTH) and (task.positions[:, 0] == LENGTH - 1).all()
    assert (task.clean[:, 2] == task.answers[:, 0]).all() and (task.clean[:, 4] == task.wrong[:, 0]).all()
    assert (task.clean[:, 7] == task.wrong[:, 0]).all() and (task.answers != task.wrong).all()
    swapped = task.corrupted["swap"]
    assert (swapped[:, 2] == task.wrong[:, 0]).all() and (swapped[:, [4, 7]] == task.answers).all()


@torch.no_grad()
def test_ioi_metric_attribution_lens_and_patching_equal_their_closed_form():
    """Clean: IO once, S twice in 10 positions -> -0.2; swapped: +0.2. All of it is head 0's direct
    attribution, none the embedding's (the query token is 'to'). Patching head 0 restores the clean run (1),
    head 1 nothing (0). Patching the residual at one name position of the swapped prompt: at 4 or 7 (S back
    in place of IO) the metric returns to -0.2, normalised 1; at 2 (IO where S stood) it rises to
    2 * (3 - 0) / 10 = 0.6, normalised (0.6 - 0.2) / (-0.2 - 0.2) = -1; elsewhere nothing changes."""
    tables = task_tables(averaging_model(), ioi(ioi_cfg(), context(), seed=0), resid=True, min_gap=0.1)
    metrics = pd.DataFrame(tables["task_metrics"]).set_index("answers")
    assert metrics.loc["all", "clean"] == pytest.approx(-0.2, abs=1e-6)
    assert metrics.loc["all", "corrupted"] == pytest.approx(0.2, abs=1e-6)
    attribution = pd.DataFrame(tables["logit_attribution"]).set_index(["kind", "component"]).value
    assert attribution[("head", "L0H0")] == pytest.approx(-0.2, abs=1e-6)
    assert attribution[("head", "L0H1")] == pytest.approx(0.0, abs=1e-6)
    assert attribution.loc["logit_lens"].tolist() == pytest.approx([0.0, -0.2], abs=1e-6)
    patching = pd.DataFrame(tables["patching"])
    heads = patching[patching.activation == "head_out"].set_index("index").value
    assert heads.tolist() == pytest.approx([1.0, 0.0], abs=1e-5)
    resid = patching[patching.activation == "resid_pre"].set_index("index").value
    expected = [0.0] * LENGTH
    expected[2], expected[4], expected[7] = -1.0, 1.0, 1.0
    assert resid.tolist() == pytest.approx(expected, abs=1e-5)
    attention = pd.DataFrame(tables["task_attention"])
    assert attention.empty
    attention = pd.DataFrame(task_tables(averaging_model(), ioi(ioi_cfg(), context(), seed=0), resid=False,
                                         min_gap=0.1, attention_heads=1)["task_attention"])
    assert set(zip(attention.layer, attention["head"])) == {(0, 0)}  # the head with the attribution
    at_query = attention[attention["query"] == LENGTH - 1]
    assert at_query.value.tolist() == pytest.approx([1 / LENGTH] * LENGTH)  # uniform, as built


@pytest.mark.parametrize("changes, match", [
    ({"names": ["Mary", "Mary Ann"]}, r"analysis.tasks.ioi.names\[1\]='Mary Ann': string should match"),
    ({"templates": ["When {IO} went home, she gave it to"]}, r"needs an \{IO\} and an \{S\} slot"),
    ({"names": ["Mary", "Mary"]}, r"at least two different names"),
])
def test_malformed_task_prompts_are_refused_when_the_config_is_composed(changes, match):
    key, value = next(iter(changes.items()))
    listed = "[" + ",".join(f"'{v}'" for v in value) + "]"
    with pytest.raises(UserError, match=match):
        compose([f"analysis.tasks.ioi.{key}={listed}"])


def test_a_name_that_is_not_one_token_is_refused_before_any_checkpoint():
    with pytest.raises(UserError, match=r"analysis.tasks.ioi.names: 'Bartholomew' is 2 tokens .* not one"):
        ioi(ioi_cfg(names=["Mary", "Bartholomew"]), context(encode=lambda text: encode(text.replace(
            "Bartholomew", "Tom Amy"))), seed=0)
    with pytest.raises(UserError, match=r"templates: a filled template is 10 tokens, longer than the model's "
                                        r"context \(8\)"):
        ioi(ioi_cfg(), context(n_ctx=8), seed=0)


def test_a_bad_task_stops_the_run_before_training(tmp_path):
    """The trained models' small BPE splits 'Mary': the training step refuses it as it starts, before any
    checkpoint is written."""
    started = time.monotonic()
    result = snakemake(tmp_path, config="overrides=[+experiment=tiny,'analysis.tasks.names=[induction,ioi]']")
    assert result.returncode != 0
    errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("error: ")]
    assert errors and all("analysis.tasks.ioi.names: 'Mary' is" in line for line in errors)
    assert not list(tmp_path.rglob("step_*.safetensors"))
    assert time.monotonic() - started < 180  # seconds of corpus building, not minutes of training
