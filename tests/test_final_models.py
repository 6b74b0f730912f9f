"""Hub family `final`: any TransformerLens model at its released weights as one checkpoint. A tiny random
GPT-2 written into the HF cache under the `gpt2` repo name (tests/fakehub.py) is fetched offline, computes
transformers' own logits, and runs the whole pipeline with the induction and IOI tasks, its figures over
training degraded to per-head and per-model views."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch
from conftest import REPO
from fakehub import build_cache, build_gpt2, gpt2_overrides
from omegaconf import OmegaConf
from test_pipeline_e2e import FIGURES, HTML_FIGURES, TABLES

from pipeline.config import compose
from pipeline.io import UserError
from pipeline.model import load_checkpoint
from pipeline.tasks import TaskContext, ioi, logit_difference

PY = sys.executable
OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    home = tmp_path_factory.mktemp("hf")
    build_cache(home)  # the pile-shaped corpus
    return home, build_gpt2(home)


@pytest.fixture(scope="module")
def gpt2_run(cache, tmp_path_factory):
    home, _ = cache
    workdir = tmp_path_factory.mktemp("gpt2run")
    config = "overrides=[" + ",".join(map(repr, gpt2_overrides(home))) + "]"  # the templates hold quotes
    result = subprocess.run([PY, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores",
                             "2", "--config", config], capture_output=True, text=True, timeout=900, env=OFFLINE)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir / "results" / "tiny"


def test_gpt2_is_fetched_offline_with_the_logits_of_transformers(cache, tmp_path):
    from transformers import GPT2LMHeadModel

    home, folder = cache
    out = tmp_path / "hub_000.safetensors"
    result = subprocess.run([PY, "-m", "pipeline.hub", "--out", str(out), "--position", "0",
                             *gpt2_overrides(home)], capture_output=True, text=True, timeout=300, env=OFFLINE)
    assert result.returncode == 0, result.stderr[-3000:]
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["label_type"] == "final" and meta["step"] == meta["tokens_seen"] == 0
    assert {f["file"].split("/")[-1] for f in meta["source_files"]} >= {"config.json", "model.safetensors"}
    assert all(len(f["sha256"]) == 64 for f in meta["source_files"])
    tokens = torch.randint(0, 600, (2, 20), generator=torch.Generator().manual_seed(0))
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
    cfg = compose(gpt2_overrides(cache[0])).analysis.tasks.ioi
    task = ioi(cfg, TaskContext(torch.arange(600), 0, lambda text: tokenizer.encode(text).ids, 64), seed=0)
    with torch.no_grad():
        logits = GPT2LMHeadModel.from_pretrained(folder).eval()(task.clean).logits
    assert reported == pytest.approx(logit_difference(logits, task).item(), abs=1e-4)
    attention = pd.read_csv(gpt2_run / "tables" / "task_attention.csv")
    assert set(attention.task) == {"induction", "ioi"}


def test_a_final_model_is_one_checkpoint():
    with pytest.raises(UserError, match=r"model.hub.checkpoints: a final-family model is one checkpoint"):
        compose(["model=gpt2_small", "data=pile", "model.hub.checkpoints=[0,1]"])
    assert OmegaConf.to_container(compose(["model=gpt2_small", "data=pile"]).model.hub) == {
        "name": "gpt2-small", "family": "final", "checkpoints": [0], "tokens_per_step": None}
