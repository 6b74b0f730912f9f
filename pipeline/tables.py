"""Collect per-model tables into one tidy CSV per table under results/<run>/tables/."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from pipeline.io import run_cli, write_table

EMPTY_COLUMNS = {"train_log": ["model", "step", "tokens_seen", "train_loss"]}  # a run of hub models only


def collect(paths: list[Path]) -> pd.DataFrame:
    """Concatenate per-model parquet tables (each already carries its `model` column). Empty ones (a model
    with no induction head to ablate) are skipped so they cannot turn integer columns into floats."""
    frames = [pd.read_parquet(p) for p in paths]
    return pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)


def main():
    parser = argparse.ArgumentParser(description="Concatenate per-model tables into one CSV.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("tables", type=Path, nargs="*")
    args = parser.parse_args()
    write_table(collect(args.tables) if args.tables else pd.DataFrame(columns=EMPTY_COLUMNS[args.out.stem]), args.out)


if __name__ == "__main__":
    run_cli(main)
