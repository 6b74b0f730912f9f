"""The tables of a paper's pages: Markdown from DataFrames, and a section's cost from its runs' benchmark files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd


def cell(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "–" if np.isnan(value) else f"{value:.4g}"
    return str(value)


def markdown(table: pd.DataFrame) -> str:
    """A table as Markdown, numbers to 4 significant digits."""
    head = "| " + " | ".join(map(str, table.columns)) + " |\n|" + "---|" * len(table.columns) + "\n"
    return head + "".join("| " + " | ".join(cell(v) for v in row) + " |\n" for row in table.itertuples(index=False))


def columns(table: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """These columns of a table, those it has (a table with no row lacks the columns of its values)."""
    return table[[name for name in names if name in table.columns]]


def job_timings(run_dir: Path) -> pd.DataFrame:
    """A run's jobs from its Snakemake benchmark files: name, wall seconds, CPU-seconds, peak RSS (MiB) and
    when each ended (the file's mtime); the one reader of `benchmarks/*.tsv` (none yet: no rows)."""
    paths = sorted((Path(run_dir) / "benchmarks").glob("*.tsv"))
    marks = [pd.read_csv(p, sep="\t").iloc[0] for p in paths]
    return pd.DataFrame({"job": [p.stem for p in paths], "s": [m.s for m in marks],
                         "cpu_s": [m.cpu_time for m in marks], "max_rss": [m.max_rss for m in marks],
                         "ended": [p.stat().st_mtime for p in paths]}).astype({"job": str})


def trainings(run_dir: Path, jobs: pd.DataFrame) -> pd.DataFrame:
    """Each trained model's training jobs: their wall and CPU-seconds, and tokens trained per wall second."""
    rows, log_path = [], run_dir / "tables" / "train_log.csv"
    for model, log in (pd.read_csv(log_path).groupby("model") if log_path.is_file() else []):
        own = jobs[jobs.job.str.fullmatch(rf"train_{re.escape(model)}_to_\d+")]
        rows.append({"model": model, "s": own.s.sum(), "cpu_s": own.cpu_s.sum(),
                     "tokens_per_s": log.tokens_seen.max() / own.s.sum() if own.s.sum() else np.nan})
    return pd.DataFrame(rows, columns=["model", "s", "cpu_s", "tokens_per_s"])


def section_cost(runs: list[str], results: Path) -> pd.DataFrame:
    """The cost of a section's runs: all their jobs (summed wall and CPU-seconds, and the span from the first
    job's start to the last job's end), then per model its training (summed; tokens/s the median over runs)."""
    jobs = {run: job_timings(results / run) for run in runs}
    every = pd.concat(jobs.values())
    train = pd.concat([trainings(results / run, table) for run, table in jobs.items()])
    rows = [{"what": "all jobs", "runs": len(runs), "job_s": every.s.sum(), "cpu_s": every.cpu_s.sum(),
             "elapsed_s": every.ended.max() - (every.ended - every.s).min(), "tokens_per_s": np.nan}]
    rows += [{"what": f"training {model}", "runs": len(group), "job_s": group.s.sum(), "cpu_s": group.cpu_s.sum(),
              "elapsed_s": np.nan, "tokens_per_s": group.tokens_per_s.median()} for model, group in train.groupby("model")]
    return pd.DataFrame(rows).round({"job_s": 1, "cpu_s": 1, "elapsed_s": 1, "tokens_per_s": 0})
