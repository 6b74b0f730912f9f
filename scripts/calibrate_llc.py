"""Calibrate the LLC sampler (analysis.llc) on a run's checkpoints: for each SGLD setting in a grid, estimate
the LLC at a few checkpoints (on the training twin, as the pipeline does) and report what makes a setting
usable -- the trace is flat after burn-in (drift), no chain diverges, chains agree -- and the seconds per
estimate.

    python scripts/calibrate_llc.py --run results/default --model attn_only_2l --steps 50 731 3000 \
        --grid "lr=1e-4,3e-4" "localization=300,1000" --out results/default/llc_calibration.csv
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import pandas as pd
import torch

from pipeline.checkpoints import checkpoint_meta, load_twin
from pipeline.config import load_run_config
from pipeline.data import eval_windows, load_split
from pipeline.io import UserError
from pipeline.llc import sgld_llc, token_dataset
from pipeline.schedule import checkpoint_name


def drift(trace, burn_in: int) -> float:
    """How far the post-burn-in trace still moves: (mean of its last quarter - mean of its second quarter)
    over the rise of the post-burn-in mean above the first sampled loss; ~0 when the chain has equilibrated."""
    after = trace[:, burn_in:]
    quarter = after.shape[1] // 4
    rise = after.mean() - trace[:, 0].mean()
    return float((after[:, -quarter:].mean() - after[:, quarter:2 * quarter].mean()) / abs(rise))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a run directory (results/<run>)")
    parser.add_argument("--model", required=True)
    parser.add_argument("--steps", type=int, nargs="+", required=True, help="checkpoint steps to estimate at")
    parser.add_argument("--grid", nargs="+", default=[], help="analysis.llc keys with comma-separated values")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    cfg = load_run_config(args.run / "config.yaml", args.model)
    torch.set_num_threads(cfg.analysis.threads)
    eval_tokens = load_split(args.run / "data" / "bpe", "eval")
    axes = {k: [float(v) if "." in v or "e" in v else int(v) for v in vs.split(",")]
            for k, vs in (g.split("=", 1) for g in args.grid)}
    rows = []
    for step in args.steps:
        path = next((args.run / "models" / args.model / "checkpoints").glob(f"*/{checkpoint_name(step)}"))
        model = load_twin(path)  # the module the pipeline's chains run on
        sample = eval_windows(eval_tokens, cfg.analysis.eval.n_sequences, cfg.model.n_ctx)
        dataset = token_dataset(sample[: cfg.analysis.llc.n_sequences])
        for values in itertools.product(*axes.values()):
            llc_cfg = cfg.analysis.llc.copy()
            for key, value in zip(axes, values):
                llc_cfg[key] = value
            start = time.perf_counter()
            row = {"step": step, "tokens_seen": checkpoint_meta(path)["tokens_seen"], **dict(zip(axes, values))}
            try:
                estimate = sgld_llc(model, dataset, llc_cfg, cfg.seed)
            except UserError:  # a diverged chain: the setting is unusable
                rows.append({**row, "diverged": True, "seconds": time.perf_counter() - start})
                continue
            rows.append({**row, "diverged": False, "llc_mean": estimate["llc_mean"], "llc_std": estimate["llc_std"],
                         "chain_cv": estimate["llc_std"] / abs(estimate["llc_mean"]),
                         "drift": drift(estimate["trace"], llc_cfg.burn_in), "init_loss": estimate["init_loss"],
                         "max_loss": float(estimate["trace"].max()), "seconds": time.perf_counter() - start})
            print(rows[-1], flush=True)
    pd.DataFrame(rows).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
