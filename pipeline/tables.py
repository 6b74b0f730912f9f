"""Collect per-model tables into one tidy CSV per table under results/<run>/tables/."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from pipeline.io import run_cli, write_table


def collect(paths: list[Path]) -> pd.DataFrame:
    """Concatenate per-model parquet tables (each already carries its `model` column)."""
    return pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)


def main():
    parser = argparse.ArgumentParser(description="Concatenate per-model tables into one CSV.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("tables", type=Path, nargs="+")
    args = parser.parse_args()
    write_table(collect(args.tables), args.out)


if __name__ == "__main__":
    run_cli(main)
