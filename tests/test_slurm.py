"""Cluster submission through a real SLURM: tests/slurm/cluster.sh brings up a single-node cluster on this
machine (installing Debian's slurm-wlm and munge if needed; root), Snakemake submits the tiny pipeline
with profiles/slurm, and every job must be recorded by SLURM and the tables must equal a local run's.

Deselected by default (`-m slurm` runs it; CI does, as a separate step)."""

import os
import re
import subprocess
import sys

import pytest
from conftest import REPO, TINY, assert_same_files
from test_pipeline_e2e import TABLES

pytestmark = pytest.mark.slurm
CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"


def submitted_jobs(out: str, local: set[str]) -> set[str]:
    """SLURM job ids of a finished run, checked against Snakemake's own log: every job of a rule outside
    `local` went through sbatch, and the seconds-long bookkeeping rules in `local` ran on this node."""
    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", out))
    remote = re.findall(r"^rule (\w+):", out, re.M)
    jobs_run = int(re.search(r"(\d+) of \1 steps \(100%\) done", out).group(1))
    assert set(re.findall(r"^localrule (\w+):", out, re.M)) == local
    assert len(submitted) == len(remote) == jobs_run - len(re.findall(r"^localrule ", out, re.M))
    assert {"train_model", "score_part"} <= set(remote)
    return submitted


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    directory = tmp_path_factory.mktemp("slurm") / "cluster"
    started = subprocess.run(["bash", str(CLUSTER), "start", str(directory)], capture_output=True, text=True,
                             timeout=900)
    assert started.returncode == 0, started.stdout + started.stderr
    yield directory
    subprocess.run(["bash", str(CLUSTER), "stop", str(directory)], timeout=60)


def test_tiny_pipeline_runs_through_slurm_with_local_results(cluster, tiny_run, tmp_path):
    env = {**os.environ, "SLURM_CONF": str(cluster / "slurm.conf")}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
           "--profile", str(REPO / "profiles" / "slurm"), "--slurm-no-account", "--jobs", "4",
           "--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2",
           "--slurm-status-command", "squeue", "--latency-wait", "5", "--config", TINY]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=2400, env=env)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]

    submitted = submitted_jobs(out, local={"all", "check_checkpoints", "collect_table", "provenance"})
    records = (cluster / "jobcomp.log").read_text()
    completed = set(re.findall(r"JobId=(\d+) .*JobState=COMPLETED", records))
    assert submitted <= completed, f"jobs missing from SLURM's completion log: {submitted - completed}"
    print(f"\n{len(submitted)} SLURM jobs, e.g.\n" + "\n".join(records.splitlines()[:3]))

    assert len(assert_same_files(tiny_run[1], tmp_path / "results" / "tiny")) == len(TABLES)  # every table, byte-identical


def test_a_tiny_study_runs_through_slurm_unchanged(cluster, tmp_path):
    """The same profile submits a study: every member job and the aggregation go through sbatch."""
    env = {**os.environ, "SLURM_CONF": str(cluster / "slurm.conf")}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
           "--profile", str(REPO / "profiles" / "slurm"), "--slurm-no-account", "--jobs", "4",
           "--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2",
           "--slurm-status-command", "squeue", "--latency-wait", "5",
           "--config", "sweep=[seed=0,1]", "overrides=[+experiment=tiny,model=[attn_only_1l]]"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=2400, env=env)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    submitted_jobs(out, local={"all", "check_checkpoints", "collect_table", "aggregate_study"})
    assert "rule plot_study_figures:" in out
    (study,) = (tmp_path / "results").glob("sweep-*")
    icl = (study / "tables" / "icl.csv").read_text().splitlines()
    assert icl[0].startswith("run,seed,model") and len(icl) == 1 + 2 * 5  # 2 members x 5 checkpoints
