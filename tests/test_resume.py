"""Kill anywhere: SIGKILL training or the whole pipeline mid-way, rerun, and get the same bytes as an
uninterrupted run, with no finished checkpoint trained or analysed twice and no partial files left."""

import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import REPO, TINY_RUN, TINY_RUN_OVERRIDES, assert_same_files
from test_pipeline_e2e import TABLES

from pipeline.config import compose
from pipeline.schedule import checkpoint_steps, interleaved, segments

pytestmark = pytest.mark.cost(265)  # worker-seconds in a full run: scheduled by weight

PY = sys.executable


def kill_when(cmd, cwd, ready, timeout=600):
    """Start `cmd` in its own process group and SIGKILL the whole group once `ready()` is true."""
    process = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    deadline = time.time() + timeout
    while not ready():
        assert process.poll() is None, "finished before it could be killed:\n" + process.stdout.read()[-2000:]
        assert time.time() < deadline, "never reached the point to kill it"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return process.stdout.read()


def train_cmd(out):
    return [PY, "-m", "pipeline.train", "--data", "data", "--out", f"{out}/ckpt", "--state", f"{out}/state",
            "--log", f"{out}/log.parquet", "+experiment=tiny", "model=attn_only_2l", "train.resume_every=25"]


def test_killed_training_resumes_to_identical_weights(tmp_path):
    prepared = subprocess.run([PY, "-m", "pipeline.kinds.language.data", "--out", "data", "+experiment=tiny"], cwd=tmp_path,
                              capture_output=True, text=True)
    assert prepared.returncode == 0, prepared.stderr
    whole = subprocess.run(train_cmd("whole"), cwd=tmp_path, capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr[-2000:]
    assert not (tmp_path / "whole" / "state").exists()  # the resume state goes once training has finished

    kill_when(train_cmd("killed"), tmp_path, lambda: len(list((tmp_path / "killed" / "ckpt").glob("*.json"))) >= 3)
    assert not (tmp_path / "killed" / "log.parquet").exists()
    resumed = subprocess.run(train_cmd("killed"), cwd=tmp_path, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    start = int(re.search(r"resuming from step (\d+)", resumed.stderr).group(1))
    assert 0 < start < 400
    files = sorted(p.name for p in (tmp_path / "whole" / "ckpt").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "killed" / "ckpt").iterdir()) and len(files) == 10
    for name in [*files, "log.parquet"]:
        sub = "" if name == "log.parquet" else "ckpt"
        assert (tmp_path / "whole" / sub / name).read_bytes() == (tmp_path / "killed" / sub / name).read_bytes(), name

    # the same training as a chain of two jobs (steps 0-147, then 147-400): the same checkpoints and log rows
    first = subprocess.run([*train_cmd("first"), "--until", "147", "--state", "chain"], cwd=tmp_path,
                           capture_output=True, text=True)
    assert first.returncode == 0 and (tmp_path / "chain" / "resume.pt").exists(), first.stderr[-2000:]
    second = subprocess.run([*train_cmd("second"), "--after", "147", "--state", "chain"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert second.returncode == 0 and "resuming" not in second.stderr, second.stderr[-2000:]
    assert not (tmp_path / "chain").exists()
    chained = {p.name: p.read_bytes() for job in ("first", "second") for p in (tmp_path / job / "ckpt").iterdir()}
    assert sorted(chained) == files and len(list((tmp_path / "second" / "ckpt").glob("*.json"))) == 1
    assert all(chained[name] == (tmp_path / "whole" / "ckpt" / name).read_bytes() for name in files)
    logs = [pd.read_parquet(tmp_path / job / "log.parquet") for job in ("first", "second")]
    assert [len(log) for log in logs] == [147, 253]
    whole_log = pd.read_parquet(tmp_path / "whole" / "log.parquet")
    pd.testing.assert_frame_equal(pd.concat(logs, ignore_index=True), whole_log)


def analysed(output: str) -> dict[str, tuple[int, int]]:
    """(analysed, reused) checkpoint counts per job from the analysis steps' summary lines."""
    return {f"{job}:{model}": (int(n), int(m)) for job, model, n, m in re.findall(
        r"(score_checkpoints|causal_checkpoints|estimate_llc) (\S+): (\d+) checkpoint\(s\) analysed, (\d+) reused", output)}


def job_sizes(models) -> dict[str, int]:
    """How many checkpoints each analysis job of the tiny run has: a score job per training job, the causal
    step's interleaved parts; the LLC, each training job's checkpoints dealt into interleaved parts."""
    cfg = compose(TINY_RUN_OVERRIDES)
    steps = checkpoint_steps(cfg.train)
    sizes = {}
    for model in models:
        for part, part_steps in segments(cfg.train, cfg.jobs.train_split_at).items():
            sizes[f"score_checkpoints:{model}[{part}]"] = len(part_steps)
            for share, share_steps in interleaved(part_steps, cfg.jobs.llc_parts).items():
                sizes[f"estimate_llc:{model}[{part}_{share}]"] = len(share_steps)
        for part, part_steps in interleaved(steps, cfg.jobs.causal_parts).items():
            sizes[f"causal_checkpoints:{model}[{part}]"] = len(part_steps)
    return sizes


def test_pipeline_killed_mid_training_and_mid_analysis_completes_with_identical_tables(tiny_run, tmp_path):
    cmd = [PY, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--cores", "2",
           "--config", TINY_RUN]
    models = tmp_path / "results" / "tiny" / "models"
    kill_when(cmd, tmp_path, lambda: any(models.glob("*/train_state/resume.pt")))
    assert not list(models.glob("*/head_scores.parquet"))

    unlock = subprocess.run([*cmd, "--unlock"], capture_output=True, text=True)  # Snakemake's lock outlives a kill
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    second = kill_when(cmd, tmp_path, lambda: any(p.name.startswith("step_") for p in models.glob("*/cache/*/*")))
    assert "resuming from step" in second

    assert subprocess.run([*cmd, "--unlock"], capture_output=True).returncode == 0
    third = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert third.returncode == 0, third.stderr[-3000:]
    finished = analysed(third.stdout + third.stderr)
    resumed = {job: counts for job, counts in finished.items() if counts[1]}
    assert resumed, f"no analysis job resumed from its finished checkpoints: {finished}"
    sizes = job_sizes(["attn_only_1l", "attn_only_2l"])
    for job, (new, reused) in resumed.items():
        assert new + reused == sizes[job], f"{job}: {new} analysed + {reused} reused != {sizes[job]}"

    run = tmp_path / "results" / "tiny"  # the determinism test: the same bytes as the clean run, kills and all
    compared = assert_same_files(tiny_run[1], run, {".csv", ".safetensors", ".npy", ".json", ".pdf"})
    assert {f"tables/{t}.csv" for t in TABLES} <= set(map(str, compared)) and "provenance.json" in map(str, compared)
    assert not list(run.rglob(".*.tmp*")), "partial files were left behind"
    assert not list(models.glob("*/train_state")) and not list(models.glob("*/cache/*/*"))

