"""Cluster submission through a real SLURM: tests/slurm/cluster.sh brings up a single-node cluster on this
machine (installing Debian's slurm-wlm and munge if needed; root), Snakemake submits a one-member study of the
tiny experiment's 2-layer model with profiles/slurm, every job must be recorded by SLURM, and the member's tables
must equal the local tiny run's rows of that model.

Deselected by default (`-m slurm` runs it; the README's test command and CI select it)."""

import os
import re
import subprocess
import sys

import pandas as pd
import pytest
from conftest import REPO
from test_pipeline_e2e import TABLES

from pipeline.config import load_study

pytestmark = [pytest.mark.slurm, pytest.mark.cost(230)]
CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"
MODEL = "attn_only_2l"
MEMBER = f"+experiment=tiny,model={MODEL}"  # the tiny run's 2-layer model alone


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


def test_a_study_whose_member_is_the_tiny_runs_2l_model_runs_through_slurm_with_local_results(cluster, tiny_run,
                                                                                              tmp_path):
    """One submission covers both paths (one cluster run instead of two, for the suite's budget): a study of one
    seed whose member is the tiny run's 2-layer model alone (every rule), asked for the study's
    outputs and the member's own (every table and figure, through its provenance), every job but the bookkeeping
    through sbatch, and the member's tables equal to the local tiny run's rows of that model."""
    (member,) = [m.name for m in load_study(sweep="[seed=0]", overrides=f"[{MEMBER}]").members]
    env = {**os.environ, "SLURM_CONF": str(cluster / "slurm.conf")}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
           "--profile", str(REPO / "profiles" / "slurm"), "--slurm-no-account", "--jobs", "4",
           "--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2",
           "--slurm-status-command", "squeue", "--latency-wait", "5", "all", f"results/{member}/provenance.json",
           "--config", "sweep=[seed=0]", f"overrides=[{MEMBER}]"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=2400, env=env)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]

    local = {"all", "check_checkpoints", "collect_table", "aggregate_study", "provenance"}
    submitted = submitted_jobs(out, local)
    remote = set(re.findall(r"^rule (\w+):", out, re.M))
    assert {"plot_study_figures", "causal_part", "llc_part", "plot_figures"} <= remote
    records = (cluster / "jobcomp.log").read_text()
    completed = set(re.findall(r"JobId=(\d+) .*JobState=COMPLETED", records))
    assert submitted <= completed, f"jobs missing from SLURM's completion log: {submitted - completed}"
    print(f"\n{len(submitted)} SLURM jobs, e.g.\n" + "\n".join(records.splitlines()[:3]))

    (study,) = (tmp_path / "results").glob("sweep-*")
    icl = pd.read_csv(study / "tables" / "icl.csv")
    assert list(icl.run.unique()) == [member] and len(icl) == 5  # the 2L model's 5 checkpoints
    for table in TABLES:  # every table: the member's rows are the tiny run's rows of its model
        local_rows = pd.read_csv(tiny_run[1] / "tables" / f"{table}.csv")
        if "model" in local_rows:
            local_rows = local_rows[local_rows.model == MODEL].reset_index(drop=True)
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "results" / member / "tables" / f"{table}.csv"),
                                      local_rows, check_dtype=False, obj=table)
