"""Subjects beyond the trained models, with the induction and IOI tasks, offline against fake HF caches
(tests/fakehub.py). Family `final`: a tiny random GPT-2 under the `gpt2` repo name is fetched, computes
transformers' own logits and runs the whole pipeline, its figures over training degraded to per-head and
per-model views. A Pythia checkpoint list (two revisions of a tiny GPT-NeoX) runs the tasks over training."""

import json
import subprocess
import sys

import pandas as pd
import pytest
import torch
from conftest import REPO, only_run
from fakehub import (
    OFFLINE,
    PYTHIA_REVISIONS,
    TASK_VOCAB,
    build_cache,
    build_gpt2,
    build_pythia,
    task_overrides,
)
from omegaconf import OmegaConf
from test_pipeline_e2e import FIGURES, HTML_FIGURES, TABLES

from pipeline.checkpoints import load_checkpoint
from pipeline.config import compose
from pipeline.io import UserError
from pipeline.kinds.language.tasks import TaskContext, ioi, logit_difference

pytestmark = pytest.mark.cost(175)  # worker-seconds in a full run: scheduled by weight

PY = sys.executable


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    home = tmp_path_factory.mktemp("hf")
    build_cache(home)  # the pile-shaped corpus
    build_pythia(home)
    return home, build_gpt2(home)


def run_pipeline(workdir, overrides: list[str]):
    config = "overrides=[" + ",".join(map(repr, overrides)) + "]"  # the templates hold quotes
    result = subprocess.run([PY, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores",
                             "2", "--config", config], capture_output=True, text=True, timeout=1800, env=OFFLINE)
    assert result.returncode == 0, result.stderr[-3000:]
    return only_run(workdir)


@pytest.fixture(scope="module")
def gpt2_run(cache, tmp_path_factory):
    return run_pipeline(tmp_path_factory.mktemp("gpt2run"), task_overrides(cache[0], "gpt2_small"))


def test_gpt2_is_fetched_offline_with_the_logits_of_transformers(cache, tmp_path):
    from transformers import GPT2LMHeadModel

    home, folder = cache
    out = tmp_path / "hub_000.safetensors"
    result = subprocess.run([PY, "-m", "pipeline.kinds.language.hub", "--out", str(out), "--position", "0",
                             *task_overrides(home, "gpt2_small")], capture_output=True, text=True, timeout=300, env=OFFLINE)
    assert result.returncode == 0, result.stderr[-3000:]
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["label_type"] == "final" and meta["step"] == meta["tokens_seen"] == 0
    assert {f["file"].split("/")[-1] for f in meta["source_files"]} >= {"config.json", "model.safetensors"}
    assert all(len(f["sha256"]) == 64 for f in meta["source_files"])
    tokens = torch.randint(0, TASK_VOCAB, (2, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = load_checkpoint(out)(tokens)
        reference = GPT2LMHeadModel.from_pretrained(folder).eval()(tokens).logits
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=1e-4)


def test_gpt2_runs_every_step_with_the_ioi_task(cache, gpt2_run):
    """Every table and figure of a trained run, with one checkpoint; the IOI metric the pipeline reports
    equals logit(IO) - logit(S) computed by transformers on the same prompts."""
    from tokenizers import Tokenizer
    from transformers import GPT2LMHeadModel

    _, folder = cache
    for table in TABLES:
        assert set(pd.read_csv(gpt2_run / "tables" / f"{table}.csv").model) <= {"gpt2_small"}, table
    for figure in FIGURES:
        assert (gpt2_run / "figures" / f"{figure}.png").stat().st_size > 5000, figure
    for view in HTML_FIGURES:
        assert (gpt2_run / "figures" / f"{view}.html").stat().st_size > 1000
    metrics = pd.read_csv(gpt2_run / "tables" / "task_metrics.csv")
    assert set(metrics.task) == {"induction", "ioi"} and set(metrics.step) == {0}
    reported = metrics[(metrics.task == "ioi") & (metrics.answers == "all")].clean.item()

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    cfg = compose(task_overrides(cache[0], "gpt2_small")).analysis.tasks.ioi
    task = ioi(cfg, TaskContext(torch.arange(TASK_VOCAB), 0, lambda text: tokenizer.encode(text).ids, 64), seed=0)
    with torch.no_grad():
        logits = GPT2LMHeadModel.from_pretrained(folder).eval()(task.clean).logits
    assert reported == pytest.approx(logit_difference(logits, task).item(), abs=1e-4)
    attention = pd.read_csv(gpt2_run / "tables" / "task_attention.csv")
    assert set(attention.task) == {"induction", "ioi"}


def test_a_pythia_checkpoint_list_runs_the_tasks_over_training(cache, tmp_path):
    """family `revisions` at steps 0 and 512 (the tiny GPT-NeoX serves one set of weights for both, which the
    integrity guard reports): task metrics, attribution and patching at both checkpoints, tokens seen from
    steps x tokens_per_step."""
    run = run_pipeline(tmp_path, task_overrides(cache[0], "pythia_70m", "model.hub.checkpoints=[0,10]"))
    metrics = pd.read_csv(run / "tables" / "task_metrics.csv")
    assert sorted(metrics.step.unique()) == PYTHIA_REVISIONS and set(metrics.task) == {"induction", "ioi"}
    assert sorted(metrics.tokens_seen.unique()) == [0, 512 * 2097152]
    for table in ["patching", "logit_attribution"]:
        rows = pd.read_csv(run / "tables" / f"{table}.csv")
        assert set(zip(rows.task, rows.step)) == {(t, s) for t in ["induction", "ioi"] for s in PYTHIA_REVISIONS}
    assert len(pd.read_csv(run / "tables" / "integrity.csv")) == 1
    for figure in FIGURES:
        assert (run / "figures" / f"{figure}.png").stat().st_size > 5000, figure


def test_a_final_model_is_one_checkpoint():
    with pytest.raises(UserError, match=r"model.hub.checkpoints: a final-family model is one checkpoint"):
        compose(["model=gpt2_small", "data=pile", "model.hub.checkpoints=[0,1]"])
    assert OmegaConf.to_container(compose(["model=gpt2_small", "data=pile"]).model.hub) == {
        "name": "gpt2-small", "family": "final", "checkpoints": [0], "tokens_per_step": None}


def test_the_pythia_circuits_experiment_resolves_the_documented_steps():
    """conf/experiment/pythia_circuits.yaml: 12 Pythia-160m revisions around the induction reference points
    (steps 512 and 1000) with both tasks; TransformerLens's static label list resolves them offline."""
    from transformer_lens.loading_from_pretrained import get_checkpoint_labels

    from pipeline.kinds.language.hub import resolve

    cfg = compose(["+experiment=pythia_circuits", "model=pythia_160m"])
    labels, label_type = get_checkpoint_labels(cfg.model.hub.name)
    assert label_type == "step" and list(cfg.analysis.tasks.names) == ["induction", "ioi"]
    assert resolve(labels, list(cfg.model.hub.checkpoints)) == [0, 128, 256, 512, 1000, 2000, 3000, 4000, 6000,
                                                               10000, 30000, 143000]
