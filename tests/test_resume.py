"""Kill anywhere: SIGKILL training or the whole pipeline mid-way, rerun, and get the same bytes as an
uninterrupted run, with no finished checkpoint trained or analysed twice and no partial files left."""

import os
import re
import signal
import subprocess
import sys
import time

from conftest import REPO, TINY, assert_same_files

from pipeline.outputs import TABLES

PY = sys.executable


def kill_when(cmd, cwd, ready, timeout=300):
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
    prepared = subprocess.run([PY, "-m", "pipeline.data", "--out", "data", "+experiment=tiny"], cwd=tmp_path,
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


def analysed(output: str) -> dict[str, tuple[int, int]]:
    """(analysed, reused) checkpoint counts per job from the analysis steps' summary lines."""
    return {f"{job}:{model}": (int(n), int(m)) for job, model, n, m in re.findall(
        r"(score_checkpoints|causal_checkpoints|estimate_llc) (\S+): (\d+) checkpoint\(s\) analysed, (\d+) reused", output)}


def test_pipeline_killed_mid_training_and_mid_analysis_completes_with_identical_tables(tiny_run, tmp_path):
    cmd = [PY, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--cores", "2",
           "--config", TINY]
    models = tmp_path / "results" / "tiny" / "models"
    kill_when(cmd, tmp_path, lambda: any(models.glob("*/train_state/resume.pt")))
    assert not list(models.glob("*/train_log.parquet")) or not list(models.glob("*/head_scores.parquet"))

    unlock = subprocess.run([*cmd, "--unlock"], capture_output=True, text=True)  # Snakemake's lock outlives a kill
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    second = kill_when(cmd, tmp_path, lambda: any(p.name.startswith("step_") for p in models.glob("*/cache/*/*")))
    assert "resuming from step" in second

    assert subprocess.run([*cmd, "--unlock"], capture_output=True).returncode == 0
    third = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert third.returncode == 0, third.stderr[-3000:]
    finished = analysed(third.stdout + third.stderr)
    resumed = {job: counts for job, counts in finished.items() if counts[1]}
    assert resumed, f"no analysis job resumed from its finished checkpoints: {finished}"
    for job, (new, reused) in resumed.items():
        assert new + reused == 5, f"{job}: {new} analysed + {reused} reused != 5 checkpoints"

    run = tmp_path / "results" / "tiny"
    assert len(assert_same_files(tiny_run[1], run)) == len(TABLES)
    assert not list(run.rglob(".*.tmp*")), "partial files were left behind"
    assert not list(models.glob("*/train_state")) and not list(models.glob("*/cache/*/*"))

