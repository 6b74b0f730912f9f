"""ICL score, mean loss and loss-vs-position from the cached per-token losses of every checkpoint.

ICL score (Olsson et al. 2022) = loss at a late token - loss at an early token (500 vs 50 in the paper);
negative means later tokens are predicted better thanks to the context. Each position is averaged over a
`window` of neighbours to tame per-position noise, and the standard error is bootstrapped over sequences.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.cli import cli
from pipeline.io import run_cli, write_table


def window_mean(losses: np.ndarray, position: int, window: int) -> np.ndarray:
    """Mean loss over `window` positions centred on `position`: (..., n_sequences)."""
    start = position - window // 2
    return losses[..., start:start + window].mean(axis=-1)


def icl_per_sequence(losses: np.ndarray, early: int, late: int, window: int) -> np.ndarray:
    """Per-sequence ICL scores (late-window loss - early-window loss): (..., n_sequences); the config schema
    keeps both windows inside the context."""
    return window_mean(losses, late, window) - window_mean(losses, early, window)


def bootstrap_se(values: np.ndarray, n_bootstrap: int, seed: int) -> np.ndarray:
    """Bootstrap standard error of the mean over the last axis (sequences)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.shape[-1], size=(n_bootstrap, values.shape[-1]))
    return values[..., idx].mean(axis=-1).std(axis=-1, ddof=1)


def icl_table(losses: np.ndarray, steps, tokens_seen, icl_cfg, seed: int) -> pd.DataFrame:
    """One row per checkpoint: ICL score, its bootstrap SE, and mean loss. losses: (C, N, P)."""
    per_sequence = icl_per_sequence(losses, icl_cfg.early, icl_cfg.late, icl_cfg.window)  # (C, N)
    return pd.DataFrame({
        "step": steps, "tokens_seen": tokens_seen,
        "icl_score": per_sequence.mean(axis=-1),
        "icl_se": bootstrap_se(per_sequence, icl_cfg.n_bootstrap, seed),
        "loss": losses.mean(axis=(1, 2)),
        "icl_early": icl_cfg.early, "icl_late": icl_cfg.late, "icl_window": icl_cfg.window,
    })


def loss_by_position(losses: np.ndarray, steps, tokens_seen) -> pd.DataFrame:
    """Tidy mean loss per checkpoint and token position (position i = loss of predicting token i + 1)."""
    mean = losses.mean(axis=1)  # (C, P)
    c, p = np.meshgrid(np.arange(mean.shape[0]), np.arange(mean.shape[1]), indexing="ij")
    return pd.DataFrame({"step": np.asarray(steps)[c.ravel()], "tokens_seen": np.asarray(tokens_seen)[c.ravel()],
                         "position": p.ravel(), "loss": mean.ravel()})


def main():
    args, cfg = cli("ICL scores and loss curves from cached per-token losses.",
                    losses="per-token losses (.npz)", icl_out="per-checkpoint table (.parquet)",
                    positions_out="loss-by-position table (.parquet)")
    cached = np.load(args.losses)
    losses, steps, tokens_seen = cached["losses"], cached["steps"], cached["tokens_seen"]  # read each once
    for table, path in [(icl_table(losses, steps, tokens_seen, cfg.analysis.icl, cfg.seed), args.icl_out),
                        (loss_by_position(losses, steps, tokens_seen), args.positions_out)]:
        table.insert(0, "model", cfg.model.name)
        write_table(table, path)


if __name__ == "__main__":
    run_cli(main)
