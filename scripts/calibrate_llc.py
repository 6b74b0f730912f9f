"""Calibrate the LLC sampler (analysis.llc) for one model of a run, of any kind: for each SGLD setting in a grid,
estimate the LLC at a few checkpoints exactly as the pipeline does (the kind's LLC data and loss, the training
twin, only the trained parameters), and judge each setting by devinterp's criteria:

- flat after burn-in: |drift| < MAX_DRIFT (how far the post-burn-in trace still moves, relative to its rise);
- above the initial loss: fewer than MAX_DIPS of the post-burn-in draws whose moving average (over SMOOTH draws, so
  that one minibatch's noise is not a dip) lies below the loss at the checkpoint;
- no divergence: every chain finite;
- chains agree: their spread over the mean below MAX_CHAIN_CV;
- stable in the step size: the estimate moves less than MAX_EPS_CHANGE from the one at the next smaller step size
  of the grid (the same other keys and checkpoint): past the plateau, SGLD's discretisation, not the posterior,
  sets the value (devinterp's calibration: read the estimate against epsilon, pick from its plateau).

It writes the criteria table (criteria.csv), the traces figure (traces.png: every chain of every setting at each
checkpoint, burn-in shaded, the loss at the checkpoint dotted), and picks, among the settings that pass at every
checkpoint, the largest step size, then the one whose chains agree best (picked.yaml, for the kind's YAML). With
--repeats it re-runs the picked setting at production lengths (--setting) with other seeds and sets the seeds'
spread beside the spread the estimate reports (noise.csv).

    python scripts/calibrate_llc.py --run results/default --model attn_only_2l --steps 236 1117 3000 \
        --grid "lr=1e-4,3e-4,1e-3" "n_beta=10,30,100" "burn_in=100" "draws=100" --chains 4 \
        --repeats 4 --setting burn_in=15 draws=20 --out docs/calibration/language

(docs/calibration/README.md: each kind's commands and what they found.)
"""

from __future__ import annotations

import argparse
import functools
import itertools
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from pipeline.checkpoints import checkpoint_meta  # noqa: E402
from pipeline.config import load_run_config  # noqa: E402
from pipeline.io import UserError  # noqa: E402
from pipeline.llc import sampler_inputs, sgld_llc, token_dataset, trained_masks  # noqa: E402
from pipeline.registry import kind_of  # noqa: E402
from pipeline.schedule import checkpoint_name  # noqa: E402

MAX_DRIFT, MAX_DIPS, MAX_CHAIN_CV, MAX_EPS_CHANGE, SMOOTH = 0.1, 0.05, 0.1, 0.2, 10


def drift(trace: np.ndarray, burn_in: int) -> float:
    """How far the post-burn-in trace still moves: (mean of its last quarter - mean of its second quarter)
    over the rise of the post-burn-in mean above the first sampled loss; ~0 when the chain has equilibrated."""
    after = trace[:, burn_in:]
    quarter = max(after.shape[1] // 4, 1)
    rise = after.mean() - trace[:, 0].mean()
    return float((after[:, -quarter:].mean() - after[:, quarter:2 * quarter].mean()) / abs(rise))


def dips(trace: np.ndarray, burn_in: int, init_loss: float) -> float:
    """The share of post-burn-in draws, over all chains, whose moving average over SMOOTH draws is below
    `init_loss`: the sampler finding lower loss than the checkpoint's, not one noisy minibatch."""
    after = trace[:, burn_in:]
    width = min(SMOOTH, after.shape[1])
    smoothed = np.apply_along_axis(lambda chain: np.convolve(chain, np.ones(width) / width, "valid"), 1, after)
    return float((smoothed < init_loss).mean())


def criteria(estimate: dict, llc_cfg) -> dict:
    """The calibration measures of one estimate; `rise` (the post-burn-in loss above the checkpoint's, llc /
    n_beta) among them: where it does not fall as n_beta grows, the localization, not the loss, holds the chains,
    and only the estimates' ordering means something."""
    return {"rise": estimate["llc_mean"] / llc_cfg.n_beta, "llc_mean": estimate["llc_mean"],
            "llc_std": estimate["llc_std"], "chain_cv": estimate["llc_std"] / max(abs(estimate["llc_mean"]), 1e-12),
            "drift": drift(estimate["trace"], llc_cfg.burn_in),
            "dips": dips(estimate["trace"], llc_cfg.burn_in, estimate["init_loss"]),
            "init_loss": estimate["init_loss"], "max_loss": float(estimate["trace"].max())}


def judge(table: pd.DataFrame) -> pd.DataFrame:
    """`eps_change` (see above; none at the grid's smallest step size) and `passes`: every criterion met (a
    diverged setting fails). The loss rise is no criterion: it is llc / n_beta, which may exceed the loss itself
    at a large LLC (timaeus's published regression settings do)."""
    others = [k for k in ("step", "seed", "n_beta", "localization", "batch", "burn_in", "draws") if k in table]
    ordered = table.sort_values("lr") if "lr" in table else table
    previous = ordered.groupby(others).llc_mean.shift() if "lr" in table else np.nan
    table = table.assign(eps_change=((ordered.llc_mean - previous) / previous.abs()).reindex(table.index))
    passes = ((table.drift.abs() < MAX_DRIFT) & (table.dips < MAX_DIPS) & (table.chain_cv < MAX_CHAIN_CV)
              & ~(table.eps_change.abs() >= MAX_EPS_CHANGE) & ~table.diverged.astype(bool))
    return table.assign(passes=passes.fillna(False))


def grid_of(pairs: list[str]) -> dict[str, list]:
    """"key=v1,v2" -> {key: [v1, v2]}, numbers parsed."""
    return {key: [float(v) if any(c in v for c in ".e") else int(v) for v in values.split(",")]
            for key, values in (pair.split("=", 1) for pair in pairs)}


def checkpoint_at(run: Path, model: str, step: int) -> Path:
    found = sorted((run / "models" / model / "checkpoints").glob(f"*/{checkpoint_name(step)}"))
    if not found:
        raise UserError(f"no checkpoint at step {step} of {model} in {run}; pick steps from its checkpoints/")
    return found[0]


def sweep(run: Path, model: str, steps: list[int], grid: dict, chains: int, seed_offsets=(0,), shared_batches=True):
    """Every setting of `grid` at every step (and seed offset): criteria rows and the loss traces. The chains share
    their batches (devinterp's default), so their spread is SGLD's own: the mixing the criteria judge."""
    cfg = load_run_config(run / "config.yaml", model)
    torch.set_num_threads(cfg.analysis.threads)
    data_dir = run / "data" / kind_of(cfg).data_key(cfg)
    inputs = functools.cache(lambda n: sampler_inputs(OmegaConf.merge(cfg, {"analysis": {"llc": {"n_sequences": n}}}),
                                                      data_dir))  # n_sequences may be swept: read once per value
    rows, traces = [], []
    for step in steps:
        path = checkpoint_at(run, model, step)
        twin = inputs(cfg.analysis.llc.n_sequences)[2](path)  # loaded once per checkpoint (chains run on copies)
        for values, offset in itertools.product(itertools.product(*grid.values()), seed_offsets):
            llc_cfg = OmegaConf.merge(cfg.analysis.llc, dict(zip(grid, values)), {"chains": chains})
            input_ids, loss_fn, _, frozen = inputs(llc_cfg.n_sequences)
            row = {"model": model, "step": step, "tokens_seen": checkpoint_meta(path)["tokens_seen"],
                   **dict(zip(grid, values)), "seed": cfg.seed + offset}
            start = time.perf_counter()
            try:
                estimate = sgld_llc(twin, token_dataset(input_ids), llc_cfg, cfg.seed + offset,
                                    trained_masks(twin, frozen), loss_fn, shared_batches)
            except UserError:  # a diverged chain: the setting is unusable
                rows.append({**row, "diverged": True, "seconds": time.perf_counter() - start})
                continue
            rows.append({**row, "diverged": False, **criteria(estimate, llc_cfg),
                         "seconds": time.perf_counter() - start})
            traces.append({**row, "trace": estimate["trace"], "init_loss": estimate["init_loss"],
                           "burn": llc_cfg.burn_in})
            print({k: v for k, v in rows[-1].items() if k != "trace"}, flush=True)
    return cfg, pd.DataFrame(rows), traces


def traces_figure(traces: list[dict], grid: dict) -> plt.Figure:
    """Every chain of every setting (rows) at each checkpoint (columns)."""
    settings = sorted({tuple(t[k] for k in grid) for t in traces})
    steps = sorted({t["step"] for t in traces})
    fig, axes = plt.subplots(len(settings), len(steps), figsize=(3.4 * len(steps), 2.1 * len(settings)),
                             squeeze=False, sharex=True)
    for t in traces:
        ax = axes[settings.index(tuple(t[k] for k in grid)), steps.index(t["step"])]
        ax.plot(t["trace"].T, lw=0.6)
        ax.axhline(t["init_loss"], color="black", ls=":", lw=0.8)
        ax.axvspan(0, t["burn"], color="0.9", lw=0)
        ax.set_title(f"step {t['step']}: " + ", ".join(f"{k}={t[k]:g}" for k in grid), fontsize=7)
        ax.tick_params(labelsize=6)
    fig.tight_layout()
    return fig


def pick(table: pd.DataFrame, grid: dict) -> pd.Series | None:
    """Among the settings that pass at every checkpoint, the largest step size (its chains mix fastest, so a budget
    buys the most draws after burn-in), then the smallest mean chain spread (None: none passes)."""
    per_setting = table.groupby(list(grid)).agg(passes=("passes", "all"), chain_cv=("chain_cv", "mean"),
                                                seconds=("seconds", "mean")).reset_index()
    passing = per_setting[per_setting.passes]
    order = (["lr"] if "lr" in grid else []) + ["chain_cv"]
    return None if passing.empty else passing.sort_values(order, ascending=[k != "lr" for k in order]).iloc[0]


def noise_check(run: Path, model: str, steps: list[int], setting: dict, chains: int, repeats: int) -> pd.DataFrame:
    """`setting` re-run with `repeats` other seeds at each step, each chain on its own batches as in the pipeline:
    the seeds' spread of the estimate beside the spread it reports (the chains' sd, and over sqrt(chains): the
    standard error the stage GP takes as its noise)."""
    _, noise, _ = sweep(run, model, steps, {k: [v] for k, v in setting.items()}, chains,
                        seed_offsets=range(1, repeats + 1), shared_batches=False)
    summary = noise.groupby(["step", "tokens_seen"]).agg(
        llc_mean=("llc_mean", "mean"), seeds_sd=("llc_mean", "std"), reported_std=("llc_std", "mean"),
        seconds=("seconds", "mean")).reset_index()
    return summary.assign(reported_se=summary.reported_std / np.sqrt(chains), chains=chains, repeats=repeats,
                          **{k: str(v) for k, v in setting.items()})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a run directory (results/<run>)")
    parser.add_argument("--model", required=True)
    parser.add_argument("--steps", type=int, nargs="+", required=True, help="checkpoint steps (three points)")
    parser.add_argument("--grid", nargs="+", default=[], help="analysis.llc keys with comma-separated values")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=0, help="re-run the picked setting with this many seeds")
    parser.add_argument("--setting", nargs="+", default=[],
                        help="analysis.llc keys for the repeats: the production lengths (burn_in, draws, batch) "
                             "over the picked setting, or a whole setting without --grid")
    parser.add_argument("--out", type=Path, required=True, help="directory for criteria.csv, traces.png, ...")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    setting = {}
    if args.grid:
        grid = grid_of(args.grid)
        _, table, traces = sweep(args.run, args.model, args.steps, grid, args.chains)
        table = judge(table)
        table.to_csv(args.out / "criteria.csv", index=False)
        traces_figure(traces, grid).savefig(args.out / "traces.png", dpi=60)
        chosen = pick(table, grid)
        if chosen is None:
            print("no setting passes every criterion at every checkpoint: widen the grid", flush=True)
            return
        setting = {key: chosen[key].item() if hasattr(chosen[key], "item") else chosen[key] for key in grid}
        (args.out / "picked.yaml").write_text(OmegaConf.to_yaml({"chains": args.chains, **setting}))
    setting.update({k: v[0] for k, v in grid_of(args.setting).items()})
    if args.repeats:
        noise = noise_check(args.run, args.model, args.steps, setting, args.chains, args.repeats)
        noise.to_csv(args.out / "noise.csv", index=False)
        print(noise.to_string(), flush=True)

if __name__ == "__main__":
    main()
