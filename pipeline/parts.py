"""Merge the parts of a step that ran as several jobs, each over a share of a model's checkpoints (a training
job's checkpoints, or every n-th one), into the model's tables: the bytes one job over all of them writes."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.io import atomic_path, run_cli, write_table


def merge_tables(parts: list[Path]) -> dict[str, pd.DataFrame]:
    """Each table the parts hold (the step's, for its model's kind), its parts concatenated in checkpoint
    order (rows of one checkpoint keep their order: they come from one part). Empty parts are skipped so
    they cannot turn integer columns into floats."""
    tables = {}
    for name in sorted(p.stem for p in Path(parts[0]).glob("*.parquet")):
        frames = [pd.read_parquet(Path(part) / f"{name}.parquet") for part in parts]
        table = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)
        tables[name] = table.sort_values("step", kind="stable", ignore_index=True) if "step" in table else table
    return tables


def merge_losses(parts: list[Path]) -> dict[str, np.ndarray]:
    """The parts' per-token losses (and their steps, tokens seen) stacked in checkpoint order."""
    arrays = [dict(np.load(Path(part) / "token_losses.npz")) for part in parts]
    order = np.argsort(np.concatenate([a["steps"] for a in arrays]), kind="stable")
    return {key: np.concatenate([a[key] for a in arrays])[order] for key in arrays[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=Path, nargs="+", required=True, help="the parts' output directories")
    parser.add_argument("--out", type=Path, required=True, help="directory for the model's tables")
    parser.add_argument("--losses-out", type=Path, help="stacked per-token losses (.npz), where the parts have them")
    args = parser.parse_args()
    if args.losses_out:
        with atomic_path(args.losses_out) as tmp, open(tmp, "wb") as f:
            np.savez(f, **merge_losses(args.parts))
    for name, table in merge_tables(args.parts).items():
        write_table(table, args.out / f"{name}.parquet")


if __name__ == "__main__":
    run_cli(main)
