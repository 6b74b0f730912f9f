import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from pipeline.tables import collect

sys.path.insert(0, str(Path(__file__).parent))  # tests import their helpers (handbuilt.py) by name

REPO = Path(__file__).resolve().parent.parent
TINY = "overrides=[+experiment=tiny]"
# The shared tiny run (and the resume test's runs, compared with it byte for byte) trains each model as a chain
# of two jobs, as the default run does, so the chain and kills mid-chain are tested through the pipeline.
TINY_RUN_OVERRIDES = ["+experiment=tiny", "jobs.train_split_at=[0.5]"]


def overrides_config(overrides: list[str]) -> str:
    """The `--config` entry that passes these Hydra overrides to the Snakefile."""
    return f"overrides=[{','.join(overrides)}]"


TINY_RUN = overrides_config(TINY_RUN_OVERRIDES)


def snakemake(workdir, *args, config=TINY, targets=(), env=None, timeout=1200):
    """Run this repo's Snakefile in `workdir` (2 cores) and return the completed process. `--config` takes every
    word after it (`config`, then `args`: more config entries, or flags), so `targets` go before it; config=None
    runs the default config."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--cores", "2", *targets, *(["--config", config] if config else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def table_paths(run: str, models, table: str) -> list[str]:
    """Where a run's models write one per-model table: results/<run>/models/<model>/<table>.parquet."""
    return [f"results/{run}/models/{model}/{table}.parquet" for model in models]


def build_tables(workdir, paths: dict[str, list[str]], *args, config=TINY, timeout=3600) -> dict[str, pd.DataFrame]:
    """Ask Snakemake for only these per-model tables (key -> paths under `workdir`), and read each key's paths as
    one table: a science test builds what it reads and no more."""
    result = snakemake(workdir, *args, config=config, targets=[path for group in paths.values() for path in group],
                       timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return {key: collect([workdir / path for path in group]) for key, group in paths.items()}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups
def pytest_collection_modifyitems(items):
    """For `pytest -n 2 --dist loadgroup` (the README's test command): a module runs whole on one worker, so
    its module-scoped runs are made once, and the modules that read the shared tiny run run together. Groups are
    handed out heaviest first (by their modules' `cost` marks; pyproject turns off xdist's reordering by test
    count), so the default run starts at once and the quick modules fill the other worker around it."""
    shares_tiny_run = {item.module for item in items if "tiny_run" in item.fixturenames}
    group_of = {item.module: "tiny_run" if item.module in shares_tiny_run else item.module.__name__ for item in items}
    module_cost = {item.module: mark.args[0] for item in items if (mark := item.get_closest_marker("cost"))}
    group_cost = Counter()
    for module, seconds in module_cost.items():
        group_cost[group_of[module]] += seconds
    items.sort(key=lambda item: -group_cost[group_of[item.module]])  # stable: collection order within a group
    for item in items:
        item.add_marker(pytest.mark.xdist_group(group_of[item.module]))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One clean local run of the tiny experiment, trained as a chain: (workdir, run directory, completed process)."""
    workdir = tmp_path_factory.mktemp("tiny")
    result = snakemake(workdir, config=TINY_RUN)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, workdir / "results" / "tiny", result


def only_run(workdir: Path) -> Path:
    """The one run directory under workdir/results (a variant of a named experiment has a directory of its own)."""
    (run,) = [p for p in (Path(workdir) / "results").iterdir() if (p / "config.yaml").is_file()]
    return run


def result_files(run: Path, suffixes=(".csv",)) -> list[Path]:
    """A run's result files (relative paths) with the given suffixes, sorted."""
    return sorted(p.relative_to(run) for p in run.rglob("*") if p.suffix in suffixes)


def assert_same_files(reference: Path, run: Path, suffixes=(".csv",)) -> list[Path]:
    """Both runs hold the same result files (by suffix), byte for byte; returns them."""
    files = result_files(reference, suffixes)
    assert files and files == result_files(run, suffixes)
    for path in files:
        assert (reference / path).read_bytes() == (run / path).read_bytes(), f"{path} differs between the runs"
    return files


def fake_reference(path, model_cfg):
    """A stand-in for a clamp_from reference checkpoint, enough for compose (which reads only the sidecar's shape):
    placeholder weights and a sidecar with `model_cfg`'s layers, heads and context."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"weights")
    path.with_suffix(".json").write_text(json.dumps({"config": {k: model_cfg[k] for k in ("n_layers", "n_heads",
                                                                                          "n_ctx")}}))
