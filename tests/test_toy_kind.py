"""A fourth subject kind defined outside pipeline/ (tests/toykind: sequences that add modulo p) registers itself
through PIPELINE_KINDS and runs through the real rules — data, training, scores, LLC, figures, report — with
no file under pipeline/ or rules/ naming it."""

import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import REPO, snakemake

from pipeline.checkpoints import load_checkpoint

pytestmark = pytest.mark.cost(120)
TOY = "overrides=[+experiment=toy_tiny]"
MODULUS = 11  # tests/toykind/conf/data/toy.yaml


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("toy")
    env = {**os.environ, "PIPELINE_KINDS": "toykind",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "tests"), os.environ.get("PYTHONPATH")]))}
    result = snakemake(workdir, config=TOY, env=env, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    report = snakemake(workdir, "--report", str(workdir / "report.html"), config=TOY, env=env, timeout=600)
    assert report.returncode == 0, report.stderr[-3000:]
    return workdir, workdir / "results" / "toy_tiny", env


def test_no_file_under_pipeline_or_rules_names_the_toy_kind():
    files = [p for folder in ("pipeline", "rules") for p in (REPO / folder).rglob("*") if p.suffix in (".py", ".smk")]
    assert len(files) > 40
    assert [p for p in files if re.search(r"\btoy", p.read_text(), re.IGNORECASE)] == []


def test_the_toy_run_has_every_table_and_figure_its_kind_registers(toy_run):
    """What the output registry says a toy run has (asked in a process that registers the kind), it has."""
    workdir, run, env = toy_run
    registered = subprocess.run(
        [sys.executable, "-c", "import json, sys; from pipeline.config import load_run_config; "
         "from pipeline.outputs import run_figures, run_tables; cfg = load_run_config(sys.argv[1], 'toy_1l'); "
         "print(json.dumps([run_tables([cfg]), run_figures([cfg]), str(cfg.model.kind)]))", str(run / "config.yaml")],
        capture_output=True, text=True, env=env, cwd=REPO, check=True)
    tables, figures, kind = json.loads(registered.stdout)
    assert kind == "toy"
    assert {p.stem for p in (run / "tables").glob("*.csv")} == set(tables)
    assert {"head_scores", "llc", "icl", "phase_window"} <= set(tables) and "ablation" not in tables
    assert {p.stem for p in (run / "figures").glob("*.png")} == set(figures)
    assert set(figures) == {"toy_loss", "llc", "llc_slope", "llc_heads", "llc_traces"}
    html = (workdir / "report.html").read_text(errors="ignore")
    assert "toy_loss.png" in html and "sum of the two before it modulo p" in html  # its own caption (report/)


def test_the_toy_model_learns_the_rule_and_its_losses_match_a_direct_forward(toy_run):
    """The first next state is a uniform draw (loss log p, the closed form); every later one is the sum of the two
    before it, which the trained model predicts. The score step's losses equal a forward pass done here."""
    _, run, _ = toy_run
    positions = pd.read_csv(run / "tables" / "loss_by_position.csv")
    final = positions[positions.step == positions.step.max()].set_index("position").loss
    assert final.loc[0] == pytest.approx(math.log(MODULUS), abs=0.25)
    assert final.loc[1:].max() < 0.1
    model = load_checkpoint(sorted((run / "models" / "toy_1l" / "checkpoints").rglob("*.safetensors"))[-1])
    tokens = torch.from_numpy(np.load(run / "data" / "toy" / "eval.npy"))
    with torch.no_grad():
        logits = model(tokens)
    direct = F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none").mean(0).numpy()
    assert np.allclose(final.to_numpy(), direct, atol=1e-4)
    llc = pd.read_csv(run / "tables" / "llc.csv")
    assert llc.llc_mean.iloc[-1] > llc.llc_mean.iloc[1]  # the LLC grows as the rule is learned
