"""Bad input: a non-zero exit, one line naming the problem and the fix, no traceback, no output files."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run(cmd, cwd):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


def assert_one_line_error(result, *phrases):
    out = (result.stdout + result.stderr).strip()
    assert result.returncode != 0
    assert "Traceback" not in out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, out[-2000:]
    for phrase in phrases:
        assert phrase in errors[0]


@pytest.mark.parametrize("override, phrases", [
    ("model=attn_only_9l", ["unknown model 'attn_only_9l'", "attn_only_2l"]),
    ("data=pile_of_nothing", ["Could not find 'data/pile_of_nothing'", "stdlib"]),
    ("train.stepz=3", ["train.stepz", "key=value"]),
    ("train.steps=many", ["train.steps must be int", "many"]),
])
def test_bad_config_is_refused_before_anything_runs(tmp_path, override, phrases):
    result = run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "1",
                  "--config", f"overrides=[{override}]"], cwd=tmp_path)
    assert_one_line_error(result, *phrases)
    assert not (tmp_path / "results").exists()


@pytest.fixture
def corpus(tmp_path):
    (tmp_path / "blank.txt").write_text("   \n\n ")
    (tmp_path / "short.txt").write_text("def f(x):\n    return x\n")
    (tmp_path / "rows.jsonl").write_text('{"body": "some text"}\n')
    return tmp_path


@pytest.mark.parametrize("paths, extra, phrases", [
    ("missing/*.txt", [], ["matched no files", "data.paths"]),
    ("blank.txt", [], ["corpus is empty"]),
    ("short.txt", [], ["fewer than one 256-token sequence", "model.n_ctx"]),
    ("rows.jsonl", [], ["no 'text' field", "data.text_column", "body"]),
])
def test_bad_corpus_is_refused_without_writing(corpus, paths, extra, phrases):
    out = corpus / "data"
    result = run([sys.executable, "-m", "pipeline.data", "--out", str(out), "data=files",
                  f"data.paths=[{corpus / paths}]", *extra], cwd=corpus)
    assert_one_line_error(result, *phrases)
    assert not out.exists()


def test_nan_loss_stops_training_with_advice(tmp_path):
    data = tmp_path / "data"
    prepared = run([sys.executable, "-m", "pipeline.data", "--out", str(data), "+experiment=tiny"], cwd=tmp_path)
    assert prepared.returncode == 0, prepared.stderr
    result = run([sys.executable, "-m", "pipeline.train", "--data", str(data), "--out", str(tmp_path / "ckpt"),
                  "--log", str(tmp_path / "log.csv"), "+experiment=tiny", "train.lr=1e30",
                  "train.grad_clip=1e30"], cwd=tmp_path)
    assert_one_line_error(result, "training loss became nan", "lower train.lr")
    assert not (tmp_path / "log.csv").exists()
