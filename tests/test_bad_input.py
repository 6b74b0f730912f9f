"""The bad-input matrix: every bad input gives a non-zero exit, one line naming the problem and the fix,
no traceback, and no output files."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fakehub import build_cache, overrides

pytestmark = pytest.mark.cost(80)  # worker-seconds in a full run: scheduled by weight

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable


def run(cmd, cwd):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny corpus and a few tiny checkpoints, built once by the real CLIs, and a local hub cache."""
    root = tmp_path_factory.mktemp("trained")
    build_cache(root / "hf")
    for cmd in ([PY, "-m", "pipeline.kinds.language.data", "--out", "data", "+experiment=tiny"],
                [PY, "-m", "pipeline.train", "--data", "data", "--out", "ckpt", "--state", "state", "--log", "log.csv",
                 "+experiment=tiny", "model=attn_only_1l", "train.steps=30"]):
        result = run(cmd, root)
        assert result.returncode == 0, result.stderr[-2000:]
    return root


def snakemake(override):
    return [PY, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "1", "--config", f"overrides=[{override}]"]


def corpus_step(paths, *extra):
    return [PY, "-m", "pipeline.kinds.language.data", "--out", "data_out", "data=files", f"data.paths=[{paths}]", *extra]


def scores_step(checkpoint):
    return [PY, "-m", "pipeline.kinds.language.scores", "--data", "data", "--checkpoints", checkpoint, "--out", "tables_out",
            "--losses-out", "losses.npz", "--cache", "cache", "+experiment=tiny", "model=attn_only_1l", "train.steps=30"]


def corrupt(root):
    """Flip one byte in the middle of a checkpoint (a copy, so other cases keep the good one)."""
    shutil.copy(root / "ckpt" / "step_000030.safetensors", root / "bad.safetensors")
    shutil.copy(root / "ckpt" / "step_000030.json", root / "bad.json")
    data = bytearray((root / "bad.safetensors").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (root / "bad.safetensors").write_bytes(bytes(data))


def truncate(root):
    shutil.copy(root / "ckpt" / "step_000030.safetensors", root / "cut.safetensors")
    (root / "cut.json").write_text((root / "ckpt" / "step_000030.json").read_text().replace('"sha256"', '"old"'))
    (root / "cut.safetensors").write_bytes((root / "cut.safetensors").read_bytes()[:100])


def halve(root):
    """Truncate a copy of a checkpoint to half its size, its sidecar intact; and one that came from the hub."""
    for name, extra in (("half", {}), ("hubhalf", {"hub": "NeelNanda/attn-only-2l"})):
        meta = json.loads((root / "ckpt" / "step_000030.json").read_text())
        (root / f"{name}.json").write_text(json.dumps({**meta, **extra}))
        data = (root / "ckpt" / "step_000030.safetensors").read_bytes()
        (root / f"{name}.safetensors").write_bytes(data[: len(data) // 2])


def integrity_step(*checkpoints):
    return [PY, "-m", "pipeline.integrity", "--out", "integrity_out.parquet", "--checkpoints", *checkpoints,
            "+experiment=tiny", "model=attn_only_1l", "train.steps=30"]


def write_corpus(root):
    (root / "blank.txt").write_text("   \n\n ")
    (root / "short.txt").write_text("def f(x):\n    return x\n")
    (root / "rows.jsonl").write_text('{"body": "some text"}\n')
    (root / "a_file").write_text("not a directory")


NO_OUTPUT = ["results", "docs_out", "data_out", "tables_out", "losses.npz", "log2.csv", "hub.safetensors", "integrity_out.parquet"]
CASES = {
    "unknown model": (snakemake("model=attn_only_9l"), ["unknown model 'attn_only_9l'", "attn_only_2l"]),
    "unknown paper": ([PY, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "1", "--config", "paper=nope"],
                      ["unknown paper 'nope'", "main"]),
    "publish without a paper": ([PY, "-m", "pipeline.paper", "publish", "nowhere", "docs_out"],
                                ["nowhere holds no paper", "paper_<section>"]),
    "unknown data source": (snakemake("data=pile_of_nothing"), ["Could not find 'data/pile_of_nothing'", "stdlib"]),
    "unknown key": (snakemake("train.stepz=3"), ["train.stepz", "key=value"]),
    "wrong type": (snakemake("train.steps=many"), ["train.steps='many': input should be a valid integer", "fix the override"]),
    "malformed override": (snakemake("train.steps"), ["bad config override", "key=value"]),
    "unwritable results dir": (snakemake("results_dir=a_file/results"), ["results_dir=a_file/results",
                                                                          "cannot be written"]),
    "run directory is a file": (snakemake("+experiment=tiny,results_dir=.,run_name=a_file"),
                                ["run_name=a_file", "cannot be written"]),
    "hub cache under a file": (snakemake("model=pythia_70m,data=pile,hub_cache=a_file/hf"),
                               ["hub_cache=a_file/hf cannot be written"]),
    "missing corpus": (corpus_step("missing/*.txt"), ["matched no files", "data.paths"]),
    "empty corpus": (corpus_step("blank.txt"), ["corpus is empty"]),
    "too-short corpus": (corpus_step("short.txt"), ["fewer than one 256-token sequence", "model.n_ctx"]),
    "corpus without text field": (corpus_step("rows.jsonl"), ["no 'text' field", "data.text_column", "body"]),
    "corrupted checkpoint": (scores_step("bad.safetensors"), ["does not match the sha256", "training resumes"]),
    "truncated checkpoint": (scores_step("cut.safetensors"), ["cannot be read", "training resumes"]),
    "truncated checkpoint, integrity step": (integrity_step("ckpt/step_000000.safetensors", "half.safetensors",
                                                            "ckpt/step_000030.safetensors"),
                                             ["half.safetensors does not match the sha256", "training resumes"]),
    "truncated hub checkpoint, integrity step": (integrity_step("hubhalf.safetensors"),
                                                 ["hubhalf.safetensors does not match", "fetch it again"]),
    "missing checkpoint": (scores_step("gone.safetensors"), ["does not exist", "rerun the training rule"]),
    "out-of-range hub checkpoint index": ([PY, "-m", "pipeline.kinds.language.hub", "--out", "hub.safetensors", "--position", "1",
                                           *overrides(Path("hf"), "model.hub.checkpoints=[0,7]")],
                                          ["model.hub.checkpoints [7] out of range", "fix model.hub.checkpoints"]),
    "IOI name not one token": ([PY, "-m", "pipeline.train", "--data", "data", "--out", "ckpt2", "--state", "state2",
                                "--log", "log2.csv", "+experiment=tiny", "analysis.tasks.names=[induction,ioi]"],
                               ["analysis.tasks.ioi.names: 'Mary' is", "not one", "single tokens"]),
    "IOI name not one token (hub)": ([PY, "-m", "pipeline.kinds.language.hub", "--out", "hub.safetensors", "--position", "0",
                                      *overrides(Path("hf"), "analysis.tasks.names=[induction,ioi]")],
                                     ["analysis.tasks.ioi.names: 'Mary' is", "not one"]),
    "regression: no dimensions": (snakemake("+experiment=regression_tiny,data.dim=0"),
                                  ["data.dim=0: input should be greater than or equal to 1"]),
    "regression: no pairs": (snakemake("+experiment=regression_tiny,data.n_pairs=0"),
                             ["data.n_pairs=0: input should be greater than or equal to 1"]),
    "regression: no noise": (snakemake("+experiment=regression_tiny,data.noise_variance=0"),
                             ["data.noise_variance=0", "greater than 0"]),
    "regression: no tasks": (snakemake("+experiment=regression_tiny,data.n_tasks=0"),
                             ["data.n_tasks=0: input should be greater than or equal to 1"]),
    "regression: probe outside the context": (snakemake("+experiment=regression_tiny,analysis.probe.later=8"),
                                              ["analysis.probe: pairs earlier=1, later=8", "data.n_pairs=8"]),
    "regression: a language-model score": (snakemake("+experiment=regression_tiny,"
                                                     "analysis.window.score=prefix_matching"),
                                           ["analysis.window.score: 'prefix_matching' is not a score of regression",
                                            "xy_probe"]),
    "language model: a regression score": (snakemake("+experiment=tiny,analysis.window.score=xy_probe"),
                                           ["analysis.window.score: 'xy_probe' is not a score of language",
                                            "prefix_matching"]),
    "language model on regression data": (snakemake("data=regression"),
                                          ["data.source: 'regression' does not feed language models", "data=stdlib"]),
    "intervention on a missing layer": (snakemake("model=[attn_only_1l],interventions=previous_token_l0,"
                                                  "train.interventions.0.layer=1"),
                                        ["train.interventions[0]: clamp_pattern layer 1 does not exist",
                                         "model.n_layers=1"]),
    "NaN loss": ([PY, "-m", "pipeline.train", "--data", "data", "--out", "ckpt2", "--state", "state2", "--log",
                  "log2.csv", "+experiment=tiny", "train.lr=1e30", "train.grad_clip=1e30"],
                 ["training loss became nan", "lower train.lr"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_in_one_line_without_output(trained, case):
    cmd, phrases = CASES[case]
    write_corpus(trained)
    corrupt(trained)
    truncate(trained)
    halve(trained)
    result = run(cmd, trained)
    out = (result.stdout + result.stderr).strip()
    assert result.returncode != 0
    assert "Traceback" not in out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, out[-2000:]
    for phrase in phrases:
        assert phrase in errors[0]
    for path in NO_OUTPUT:
        assert not (trained / path).exists(), f"{path} was written"
    assert not list(trained.rglob(".*.tmp*")), "temporary files were left behind"
