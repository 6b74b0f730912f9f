"""Training-time interventions: each does the same thing in the training twin and in the HookedTransformer
(through its hooks), travels with the checkpoint, joins the run's identity, and bad specs are refused at
compose in one line."""

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import only_run, snakemake
from test_model import assert_same_after_training

from pipeline.checkpoints import load_checkpoint, load_references, load_twin, save_checkpoint
from pipeline.config import compose, resolve_run
from pipeline.interventions import parameter_names
from pipeline.io import UserError
from pipeline.kinds.language.subject import corpus_subject, next_token_loss
from pipeline.model import TrainingTwin, hooked_config_kwargs, hooked_transformer
from pipeline.schedule import checkpoint_name
from pipeline.train import train

pytestmark = pytest.mark.cost(110)  # worker-seconds in a full run: scheduled by weight

CFG = SimpleNamespace(name="test_2l", n_layers=2, d_model=32, n_heads=4, n_ctx=16)
PREVIOUS = {"kind": "clamp_pattern", "layer": 0, "heads": [0, 2], "pattern": "previous_token"}
UNIFORM = {"kind": "clamp_pattern", "layer": 1, "heads": [3], "pattern": "uniform"}
FIRST = {"kind": "clamp_pattern", "layer": 1, "heads": [1], "pattern": "first_token"}


def clamped_pair(*interventions, variant=CFG, seed=0):
    kwargs = {**hooked_config_kwargs(variant, d_vocab=50), "interventions": list(interventions)}
    hooked = hooked_transformer(kwargs, seed=seed)
    return hooked, TrainingTwin.from_hooked(hooked), kwargs


def test_parameter_names_are_the_twins():
    """The schema's torch-free list of parameter names (for `freeze` globs) is the twin's, every variant."""
    for extra in ({}, {"d_mlp": 64}, {"smeared_keys": True}):
        variant = SimpleNamespace(**vars(CFG), **extra)
        twin = TrainingTwin(**hooked_config_kwargs(variant, d_vocab=50))
        assert parameter_names(2, "d_mlp" not in extra, "smeared_keys" in extra) == [n for n, _ in
                                                                                      twin.named_parameters()]


def test_a_clamped_pattern_is_the_fixed_pattern_and_the_head_reads_through_it():
    """The HookedTransformer's pattern for a clamped head is the hand-built one (previous token: position t
    attends to t-1, position 0 to itself), and its output is the previous position's value vector."""
    hooked, _, _ = clamped_pair(PREVIOUS, FIRST)
    tokens = torch.randint(0, 50, (3, 16))
    _, cache = hooked.run_with_cache(tokens)
    previous = np.zeros((16, 16))
    previous[np.arange(16), np.maximum(np.arange(16) - 1, 0)] = 1
    for head in (0, 2):
        np.testing.assert_array_equal(cache["pattern", 0][:, head].numpy(), np.broadcast_to(previous, (3, 16, 16)))
        v, z = cache["v", 0][:, :, head], cache["z", 0][:, :, head]  # (batch, pos, d_head)
        torch.testing.assert_close(z[:, 1:], v[:, :-1], atol=1e-6, rtol=0)
    assert (cache["pattern", 0][:, 1] != torch.from_numpy(previous).float()).any()  # the other heads are free
    torch.testing.assert_close(cache["z", 1][:, :, 1], cache["v", 1][:, :1, 1].expand(-1, 16, -1), atol=1e-6, rtol=0)


@pytest.mark.parametrize("variant", ["attn_only", "mlp"])
def test_twin_and_hooked_transformer_train_the_same_clamped_model(variant):
    """Three SGD steps on each from the same init: the same losses and the same weights (clamped heads in
    both layers; each model's own clamp: the twin in its forward, the HookedTransformer through hooks). SGD, not
    AdamW: Adam scales the ~1e-9 rounding noise of gradients that are zero in exact arithmetic (b_K) up to lr."""
    extra = {"attn_only": {}, "mlp": {"d_mlp": 64}}[variant]
    hooked, twin, _ = clamped_pair(PREVIOUS, UNIFORM, variant=SimpleNamespace(**vars(CFG), **extra))
    optimizers = [torch.optim.SGD(m.parameters(), lr=0.1) for m in (hooked, twin)]
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        tokens = torch.randint(0, 50, (4, 16), generator=generator)
        losses = []
        for model, optimizer in zip((hooked, twin), optimizers):
            loss = next_token_loss(model, (tokens,))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert losses[0] == pytest.approx(losses[1], abs=1e-4)
    hooked_state = hooked.state_dict()
    for name, weight in twin.state_dict().items():
        torch.testing.assert_close(weight, hooked_state[name], atol=1e-4, rtol=0, msg=name)


def test_a_clamped_smeared_twin_computes_what_the_hooked_transformer_does():
    """With smeared keys (whose gates the HookedTransformer holds as buffers: only the twin trains them), the
    twin trained three steps and the HookedTransformer given its weights compute the same logits."""
    hooked, twin, _ = clamped_pair(PREVIOUS, UNIFORM, variant=SimpleNamespace(**vars(CFG), smeared_keys=True))
    assert_same_after_training(twin, hooked, d_vocab=50, n_ctx=16)


def test_a_clamp_changes_the_model_and_travels_with_its_checkpoint(tmp_path):
    """Saved with its config kwargs, a clamped model loads clamped, as a HookedTransformer and as a twin; the
    same weights without the clamp compute something else."""
    hooked, twin, kwargs = clamped_pair(PREVIOUS, UNIFORM, seed=1)
    path = tmp_path / "step.safetensors"
    save_checkpoint(path, twin.state_dict(), kwargs, step=0, tokens_seen=0)
    tokens = torch.randint(0, 50, (2, 16))
    with torch.no_grad():
        reference = twin(tokens)
        torch.testing.assert_close(load_checkpoint(path)(tokens), reference, atol=1e-5, rtol=0)
        torch.testing.assert_close(load_twin(path)(tokens), reference, atol=0, rtol=0)
        free = TrainingTwin(**{k: v for k, v in kwargs.items() if k != "interventions"})
        free.load_state_dict(twin.state_dict())
        assert (free(tokens) - reference).abs().max() > 1e-3


@pytest.fixture
def reference(tmp_path):
    """A reference model's checkpoint (seed 7, its own L0H0 clamped to previous-token: the clamp travels too)."""
    _, twin, kwargs = clamped_pair({**PREVIOUS, "heads": [0]}, seed=7)
    path = tmp_path / "reference" / "step_000000.safetensors"
    save_checkpoint(path, twin.state_dict(), kwargs, step=0, tokens_seen=0)
    return str(path)


def from_reference(path, heads=(1, 3)):
    """A fresh model (seed 0) whose layer-1 `heads` take their patterns from the reference at `path`."""
    spec = {"kind": "clamp_from", "layer": 1, "heads": list(heads), "checkpoint": path}
    kwargs = {**hooked_config_kwargs(CFG, d_vocab=50), "interventions": [spec]}
    hooked = hooked_transformer(kwargs, seed=0, references=load_references(kwargs))
    return hooked, TrainingTwin.from_hooked(hooked), kwargs


def test_clamp_from_reads_the_reference_heads_own_patterns(reference):
    """The clamped heads' patterns are the reference model's (TransformerLens's cache of the reference, itself
    clamped, on the same tokens); the other heads are the model's own. The twin's `pattern` is TL's too."""
    hooked, twin, _ = from_reference(reference)
    tokens = torch.randint(0, 50, (3, 16), generator=torch.Generator().manual_seed(1))
    _, ours = hooked.run_with_cache(tokens)
    _, theirs = load_checkpoint(reference).run_with_cache(tokens)
    torch.testing.assert_close(ours["pattern", 1][:, [1, 3]], theirs["pattern", 1][:, [1, 3]], atol=1e-6, rtol=0)
    assert (ours["pattern", 1][:, [0, 2]] - theirs["pattern", 1][:, [0, 2]]).abs().max() > 1e-2
    with torch.no_grad():
        for layer in (0, 1):
            torch.testing.assert_close(twin.pattern(tokens, layer), ours["pattern", layer], atol=1e-6, rtol=0)


def test_twin_and_hooked_transformer_train_the_same_model_clamped_from_a_reference(reference):
    hooked, twin, _ = from_reference(reference)
    assert_same_after_training(twin, hooked, d_vocab=50, n_ctx=16)


def test_a_model_clamped_from_a_reference_loads_with_it(reference, tmp_path):
    """Its checkpoint names the reference, which loads with it: the same logits as a HookedTransformer and a
    twin; the reference's weights stay out of the model's own state dict."""
    _, twin, kwargs = from_reference(reference)
    path = tmp_path / "clamped.safetensors"
    save_checkpoint(path, twin.state_dict(), kwargs, step=0, tokens_seen=0)
    tokens = torch.randint(0, 50, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(load_checkpoint(path)(tokens), twin(tokens), atol=1e-5, rtol=0)
        torch.testing.assert_close(load_twin(path)(tokens), twin(tokens), atol=0, rtol=0)
    assert set(twin.state_dict()) == set(TrainingTwin(**hooked_config_kwargs(CFG, d_vocab=50)).state_dict())


def test_clamp_from_refuses_references_it_cannot_read(reference):
    """At compose, in one line: a reference lacking the layer or heads, or a shorter context; at load, one
    trained on another vocabulary."""
    for spec, message in [({"layer": 1, "heads": [4]}, "heads [4] do not exist in the reference"),
                          ({"layer": 0, "heads": [0], "n_ctx": 32}, "has n_ctx=16 < model.n_ctx=32")]:
        n_ctx = spec.pop("n_ctx", 16)
        with pytest.raises(UserError, match=message.replace("[", r"\[")):
            compose(["+experiment=tiny", "model=attn_only_2l", "model.n_heads=8", f"model.n_ctx={n_ctx}",
                     "analysis.head_scores.seq_len=7", "analysis.icl.early=2", "analysis.icl.late=12",
                     f"train.interventions=[{{kind: clamp_from, checkpoint: '{reference}', layer: {spec['layer']}, "
                     f"heads: {spec['heads']}}}]"])
    kwargs = {**hooked_config_kwargs(CFG, d_vocab=60), "interventions": [
        {"kind": "clamp_from", "layer": 1, "heads": [0], "checkpoint": reference}]}
    with pytest.raises(UserError, match="has d_vocab=50, this model 60"):
        load_references(kwargs)


def test_frozen_parameters_stop_training_and_the_rest_train_on(tmp_path):
    """`freeze` through the real trainer: the frozen parameters keep their step-0 values bit for bit (AdamW's
    weight decay included), every other parameter moves."""
    cfg = compose(["+experiment=tiny", "model=attn_only_2l", "train.steps=6", "train.first_checkpoint=6",
                   "train.n_checkpoints=1",
                   "train.interventions=[{kind: freeze, params: ['blocks.0.attn.*', embed.W_E]}]"])
    tokens = np.random.default_rng(0).integers(0, 300, 5000).astype(np.uint16)
    subject = corpus_subject(cfg, tokens, d_vocab=300)
    train(subject, cfg.train, cfg.seed, tmp_path / "ckpt", tmp_path / "state")
    start, end = (load_twin(tmp_path / "ckpt" / checkpoint_name(step)) for step in (0, 6))
    frozen = {n for n, _ in start.named_parameters() if n.startswith("blocks.0.attn.") or n == "embed.W_E"}
    assert len(frozen) == 9
    for (name, before), after in zip(start.named_parameters(), end.parameters()):
        assert torch.equal(before, after) == (name in frozen), name


def test_interventions_join_the_identity_and_leave_the_default_bytes_alone():
    clamp = "train.interventions=[{kind: clamp_pattern, layer: 0, heads: [0], pattern: previous_token}]"
    assert resolve_run([clamp]).name != resolve_run([]).name == "default"
    cfg = compose([])
    assert "interventions" not in corpus_subject(cfg, np.zeros(10, np.uint16), d_vocab=300).config_kwargs
    assert corpus_subject(compose([clamp]), np.zeros(10, np.uint16), d_vocab=300).config_kwargs["interventions"] == [
        {"kind": "clamp_pattern", "layer": 0, "heads": [0], "pattern": "previous_token"}]


@pytest.mark.parametrize("spec, message", [
    ("{kind: clamp_pattern, layer: 2, heads: [0], pattern: previous_token}", "layer 2 does not exist"),
    ("{kind: clamp_pattern, layer: 0, heads: [0, 8], pattern: previous_token}", "heads [8] do not exist"),
    ("{kind: clamp_pattern, layer: 0, heads: [0], pattern: induction}", "pattern='induction'"),
    ("{kind: freeze, params: ['blocks.3.*']}", "match no parameter of this model"),
    ("{kind: melt}", "kind='melt'"),
])
def test_bad_interventions_are_refused_at_compose_in_one_line(spec, message):
    with pytest.raises(UserError) as refused:
        compose(["model=attn_only_2l", f"train.interventions=[{spec}]"])
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert str(refused.value).startswith("train.interventions[0]")


def test_a_hub_model_takes_no_interventions():
    with pytest.raises(UserError, match="comes from the hub and is not trained here"):
        compose(["model=attn_only_2l_hub", "train.interventions=[{kind: freeze, params: ['*']}]"])


@pytest.fixture(scope="module")
def clamped_run(tmp_path_factory):
    """The tiny 2-layer model trained with L0H0 clamped to previous-token attention (a named set), no LLC."""
    workdir = tmp_path_factory.mktemp("clamped")
    config = ("overrides=[+experiment=tiny,model=[attn_only_2l],interventions=previous_token_l0,"
              "analysis.llc.enabled=false]")
    for args in ((), ("--report", "report.html")):  # the run, then its report
        result = snakemake(workdir, *args, config=config)
        assert result.returncode == 0, result.stderr[-3000:]
    return workdir, only_run(workdir)


def test_a_clamped_run_is_analysed_clamped_and_says_so(clamped_run):
    """Every checkpoint carries the clamp; the head scores read it (L0H0 attends to the previous token at step 0
    already, which no free head does); provenance records it and every figure's caption names it."""
    workdir, run = clamped_run
    spec = {"kind": "clamp_pattern", "layer": 0, "heads": [0], "pattern": "previous_token"}
    sidecars = list((run / "models" / "attn_only_2l" / "checkpoints").glob("*/*.json"))
    assert len(sidecars) == 5 and all(json.loads(p.read_text())["config"]["interventions"] == [spec] for p in sidecars)
    scores = pd.read_csv(run / "tables" / "head_scores.csv").query("score == 'previous_token'")
    clamped = scores[(scores.layer == 0) & (scores["head"] == 0)]
    assert len(clamped) == 5 and (clamped.value > 0.99).all()
    assert scores[scores.step == 0].query("layer != 0 or head != 0").value.max() < 0.5
    provenance = json.loads((run / "provenance.json").read_text())
    assert provenance["config"]["attn_only_2l"]["train"]["interventions"] == [spec]
    report, drawn = (workdir / "report.html").read_text(), list((run / "figures").glob("*.png"))
    assert len(drawn) >= 18 and report.count("attn_only_2l: L0H0 attention clamped to previous_token") >= len(drawn)


def test_a_head_clamped_from_a_reference_scores_as_the_reference_head(clamped_run):
    """L1H2 clamped from a reference checkpoint no run makes (the clamped tiny run's final one, copied): at every
    checkpoint of the new run, L1H2 scores exactly what the reference's L1H2 scored at its end (the scores read
    the reference's patterns, computed by its own model); the reference's bytes are a param of training, so
    replacing it retrains. (A reference a run makes is an edge of the DAG instead: tests/test_config.py.)"""
    workdir, tiny = clamped_run
    source = tiny / "models" / "attn_only_2l" / "checkpoints" / "to_000400" / "step_000400.safetensors"
    target = workdir / "references" / "step_003000.safetensors"
    target.parent.mkdir(parents=True)
    for suffix in (".safetensors", ".json"):
        shutil.copyfile(source.with_suffix(suffix), target.with_suffix(suffix))
    config = ("overrides=[+experiment=tiny,model=[attn_only_2l],train.interventions=[{kind:clamp_from,layer:1,"
              "heads:[2],checkpoint:references/step_003000.safetensors}],analysis.llc.enabled=false,"
              "run_name=tiny_from]")
    table = "results/tiny_from/tables/head_scores.csv"
    result = snakemake(workdir, config=config, targets=[table])
    assert result.returncode == 0, result.stderr[-3000:]
    ours, theirs = (pd.read_csv(path).set_index(["score", "layer", "head"]) for path in (workdir / table,
                                                                                           tiny / "tables/head_scores.csv"))
    reference = theirs[theirs.step == 400].loc[(slice(None), 1, 2), "value"]
    clamped = ours.loc[(slice(None), 1, 2)]
    assert clamped.step.nunique() == 5
    for step, rows in clamped.groupby("step"):
        np.testing.assert_allclose(rows.value.to_numpy(), reference.to_numpy(), atol=1e-5, err_msg=str(step))
    assert (ours.loc[(slice(None), 1, 0)].value.to_numpy() != ours.loc[(slice(None), 1, 2)].value.to_numpy()).any()
    earlier = source.with_name("step_000147.safetensors")  # another checkpoint of the reference
    for suffix in (".safetensors", ".json"):
        shutil.copyfile(earlier.with_suffix(suffix), target.with_suffix(suffix))
    result = snakemake(workdir, "-n", config=config, targets=[table])
    assert result.returncode == 0 and "rule train_model" in result.stdout + result.stderr
