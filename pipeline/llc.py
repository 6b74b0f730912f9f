"""Local learning coefficient (LLC) of every checkpoint (Lau et al. 2023; Hoogland et al. 2024), with devinterp.

devinterp's `llc` runs localized SGLD chains from a checkpoint on the eval sample and returns each chain's
loss trace. Its own `llc_mean` averages the trace from the first step, burn-in included (its docstring:
"over every step (including burn-in)"), which biases the estimate low while the chain is still moving
away from the checkpoint; here the estimate is n_beta * (mean loss after `burn_in` steps - loss at the
checkpoint), per chain, then mean and std over chains. The chains sample exactly the parameters the checkpoint
trained (not a kind's fixed-at-init ones, nor those a freeze intervention held: the checkpoint is no critical
point along them); the weight-refined LLC of a head samples only that head's trained weights (W_Q, W_K, W_V,
W_O and their biases), both through devinterp's parameter masks.

The defaults (conf/analysis/default.yaml, `analysis.llc`) come from the calibration in the README: loss
traces flat after burn-in, no divergence, chains agreeing.
"""

from __future__ import annotations

import functools
import gc
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.checkpoints import load_checkpoint, load_twin
from pipeline.cli import cli
from pipeline.config import section
from pipeline.interventions import specs, trained_names, untrained
from pipeline.io import StepCache, UserError, run_cli
from pipeline.loop import each_checkpoint, write_model_tables
from pipeline.outputs import STEP_CONFIG, tables_of
from pipeline.registry import kind_of, subject_module

HEAD_PARAMS = ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V")  # indexed by head first


@functools.cache
def freeze_what_is_alive() -> None:
    """Once per process, after devinterp's imports: every object alive now is frozen out of the garbage
    collector's scans. devinterp runs gc.collect() around every chain, which would otherwise rescan the ~10^6
    objects of torch and transformers each time (~0.3 CPU-s a call, 40% of a tiny model's LLC job); results are
    unchanged."""
    gc.collect()
    gc.freeze()


def sgld_llc(model, dataset, llc_cfg, seed: int, param_masks=None, loss_fn=None, shared_batches=False) -> dict:
    """Post-burn-in LLC per chain, its mean and std, and the loss traces (chains, steps) of one estimate. The
    loss at the checkpoint is taken over the whole sample once (devinterp's default, 32 batches, covers it
    twice at batch 16 and only half of it at batch 4). Each chain draws its own batches (devinterp's default
    feeds every chain the same ones, so their spread leaves out the minibatch noise: measured on the default
    2L checkpoints, 4 such chains reported a spread of 0.8-1.1 where repeats with other seeds spread by 3.0-3.7).
    `shared_batches`: devinterp's way, for a calibration that judges SGLD's own mixing on the same data."""
    from devinterp.slt.llc import llc

    freeze_what_is_alive()
    if llc_cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("analysis.llc.device=cuda but no GPU is visible to this job; use analysis.llc.device=cpu "
                        "or request a GPU (+resources.estimate_llc.gpu=1 with profiles/slurm)")
    with tempfile.TemporaryDirectory() as scratch, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # devinterp warns about its own defaults on every call
        result = llc(model, dataset, {}, lr=llc_cfg.lr, n_beta=llc_cfg.n_beta, localization=llc_cfg.localization,
                     num_chains=llc_cfg.chains, num_draws=llc_cfg.draws, num_burnin_steps=llc_cfg.burn_in,
                     batch_size=llc_cfg.batch, num_init_loss_batches=max(1, len(dataset) // llc_cfg.batch),
                     init_seed=seed, param_masks=param_masks, loss_fn=loss_fn,
                     match_sampling_input_ids_across_chains=shared_batches,
                     output_path=Path(scratch) / "samples.zarr", device=llc_cfg.device)
        trace = result.loss_trace.values.astype(np.float64)  # (chains, burn-in + draws), read before cleanup
        init_loss = float(result.init_loss)
    if not np.isfinite(trace).all():
        raise UserError(f"an SGLD chain diverged (loss {trace.max():.3g}); lower analysis.llc.lr or raise "
                        f"analysis.llc.localization")
    per_chain = llc_cfg.n_beta * (trace[:, llc_cfg.burn_in:].mean(axis=1) - init_loss)
    return {"llc_mean": float(per_chain.mean()), "llc_std": float(per_chain.std()), "per_chain": per_chain,
            "init_loss": init_loss, "trace": trace}


def trained_masks(model, frozen=()) -> dict[str, None]:
    """devinterp parameter masks selecting every parameter the checkpoint trained, whole (devinterp neither moves
    nor adds noise to a parameter outside the masks); `frozen`: pipeline.interventions.untrained's globs."""
    return dict.fromkeys(trained_names(model, frozen))


def head_masks(model, layer: int, head: int, frozen=()) -> dict[str, torch.Tensor]:
    """devinterp parameter masks selecting one attention head's trained weights."""
    masks, trained = {}, trained_masks(model, frozen)
    for name in HEAD_PARAMS:
        full_name = f"blocks.{layer}.attn.{name}"
        if full_name in trained:
            mask = torch.zeros_like(getattr(model.blocks[layer].attn, name))
            mask[head] = 1
            masks[full_name] = mask
    return masks


def sampled_count(model, masks: dict) -> int:
    """How many parameters the chains sample under `masks`."""
    params = dict(model.named_parameters())
    return sum(int(params[name].numel() if mask is None else mask.count_nonzero()) for name, mask in masks.items())


def every_kth(checkpoints: list[Path], k: int) -> list[Path]:
    """Every k-th checkpoint in step order, the first and the last always included."""
    return [path for i, path in enumerate(checkpoints) if i % k == 0 or i == len(checkpoints) - 1]


def token_dataset(tokens: torch.Tensor):
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": tokens.tolist()}).with_format("torch")


def estimate_llcs(checkpoints: list[Path], input_ids: torch.Tensor, loss_fn, llc_cfg, seed: int,
                  cache: StepCache | None = None, schedule: list[Path] | None = None,
                  load=load_checkpoint, frozen=()) -> dict[str, pd.DataFrame]:
    """LLC of every `llc.every`-th checkpoint of `schedule` (all the model's checkpoints; default
    `checkpoints`) that is among `checkpoints` (this job's share): mean, std over chains, per-chain values,
    the loss traces, and the refined LLC of each last-layer head at every `llc.head_every`-th of those.
    Chains sample batches of `input_ids` scored by `loss_fn` (the kind's; None: next-token cross-entropy)
    on the module `load` builds (the training twin for models trained here), sampling only the parameters it
    trained (none matching the `frozen` globs)."""
    estimated = every_kth(schedule or checkpoints, llc_cfg.every)
    head_paths, kept = set(every_kth(estimated, llc_cfg.head_every)), set(estimated)
    checkpoints = [path for path in checkpoints if path in kept]
    dataset = token_dataset(input_ids)

    def analyse(model, meta, _shared):
        at = {"step": meta["step"], "tokens_seen": meta["tokens_seen"]}
        with torch.enable_grad():
            masks = trained_masks(model, frozen)
            whole = sgld_llc(model, dataset, llc_cfg, seed, masks, loss_fn)
            heads = []
            if meta["path"] in head_paths:
                layer, attn = len(model.blocks) - 1, model.blocks[-1].attn
                for head in range(attn.W_Q.shape[0]):
                    refined = sgld_llc(model, dataset, llc_cfg, seed, head_masks(model, layer, head, frozen), loss_fn)
                    heads.append({**at, "layer": layer, "head": head, "llc_mean": refined["llc_mean"],
                                  "llc_std": refined["llc_std"]})
        chains, steps = whole["trace"].shape
        return {
            "llc": pd.DataFrame([{**at, "llc_mean": whole["llc_mean"], "llc_std": whole["llc_std"],
                                  "init_loss": whole["init_loss"], "sampled_params": sampled_count(model, masks),
                                  **{f"llc_chain{c}": v for c, v in enumerate(whole["per_chain"])}}]),
            "llc_trace": pd.DataFrame({**at, "chain": np.repeat(np.arange(chains), steps),
                                       "sgld_step": np.tile(np.arange(steps), chains),
                                       "loss": whole["trace"].ravel()}),
            "llc_heads": pd.DataFrame(heads, columns=["step", "tokens_seen", "layer", "head", "llc_mean", "llc_std"]),
        }

    results = each_checkpoint(checkpoints, analyse, cache, load=load)
    return {name: pd.concat([r[name] for r in results], ignore_index=True) for name in tables_of("estimate_llc")}


def sampler_inputs(cfg, data_dir: Path):
    """What a run's model's chains need: the kind's LLC data and loss, the module to sample (the training twin for
    models trained here, the HookedTransformer for hub ones) and the globs of the parameters it never trained."""
    input_ids, loss_fn = subject_module(kind_of(cfg).name).llc_data(cfg, data_dir)
    load = load_twin if cfg.model.source == "trained" else load_checkpoint
    return input_ids, loss_fn, load, untrained(specs(cfg.train), kind_of(cfg).frozen)


def main():
    args, cfg = cli("Local learning coefficient of every checkpoint of one model (devinterp SGLD).",
                    data="data directory (the kind's eval data)",
                    checkpoints={"nargs": "+", "help": "this job's checkpoints of the model"},
                    schedule={"nargs": "+", "help": "all the model's checkpoints, in step order (the thinning by "
                                                    "llc.every and llc.head_every counts over these)"},
                    out="directory for the per-model tables (.parquet)",
                    cache="directory for finished checkpoints' results (resumes a killed job)",
                    part={"type": str, "required": False, "help": "which share of the checkpoints this job has"})
    torch.set_num_threads(cfg.analysis.threads)
    cache = StepCache(args.cache, section(cfg, *STEP_CONFIG["estimate_llc"])
                      + (args.data / "manifest.json").read_text())
    input_ids, loss_fn, load, frozen = sampler_inputs(cfg, args.data)
    tables = estimate_llcs(args.checkpoints, input_ids, loss_fn, cfg.analysis.llc, cfg.seed, cache,
                           schedule=args.schedule, load=load, frozen=frozen)
    write_model_tables("estimate_llc", cfg.model.name, tables, args.out, cache, args.part)


if __name__ == "__main__":
    run_cli(main)
