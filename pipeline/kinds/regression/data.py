"""In-context linear regression (Garg et al. 2022; Raventós et al. 2023; the timaeus `icl` repository's
src/icl/regression/): the world of the pipeline's second subject kind, its exact baselines, and its data step.

A sequence holds `n_pairs` pairs (x_i, y_i) with x ~ N(0, I_D) and y = w.x + N(0, sigma^2); w is one of M
tasks drawn once from N(0, I_D) from a random stream of their own (the run's seed and TASKS_STREAM: not the
training stream's, as Raventos et al. and timaeus keep a task seed apart), or fresh from N(0, I_D) for every
sequence (M = inf, data.n_tasks null). The model reads each pair as two tokens of width D + 1, x as [0, x] and y as [y, 0...0],
and predicts y_k at the token of x_k. Both Bayes predictors are closed-form:
- ridge, optimal under w ~ N(0, I): w_k = (X^T X + sigma^2 I)^-1 X^T y over the first k pairs (0 at k = 0);
- dMMSE, optimal under the uniform prior on the M tasks: the posterior mean of the tasks, weights a softmax
  of -sum_i (y_i - w_m.x_i)^2 / (2 sigma^2) over the first k pairs (the mean task at k = 0).
MSEs and distances to the baselines are reported per dimension (divided by D), as Raventos et al. report them
(the timaeus repository does not divide by D).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

from pipeline.cli import cli
from pipeline.io import atomic_path, run_cli, write_json

DISTRIBUTIONS = ("pretrain", "true")  # the tasks the model trained on; fresh Gaussian tasks (M = inf)
TASKS_STREAM = 1  # the task pool's stream, beside the run's seed (training draws from manual_seed(seed) itself)


def task_seed(seed: int) -> int:
    """The task pool's seed: a stream of its own derived from the run's seed (numpy's SeedSequence)."""
    return int(np.random.SeedSequence([seed, TASKS_STREAM]).generate_state(1, np.uint64)[0])


def draw_tasks(data_cfg, seed: int) -> torch.Tensor:
    """The M pretraining tasks (M, D), drawn once from N(0, I) on the task stream of the run's `seed`; (0, D)
    when M = inf."""
    generator = torch.Generator().manual_seed(task_seed(seed))
    return torch.randn(data_cfg.n_tasks or 0, data_cfg.dim, generator=generator)


def sample_sequences(n: int, data_cfg, tasks: torch.Tensor | None, generator: torch.Generator):
    """`n` sequences: x (n, K, D), y (n, K), w (n, D); w from `tasks` (uniformly), or fresh when `tasks` is
    None or empty."""
    if tasks is not None and len(tasks):
        w = tasks[torch.randint(0, len(tasks), (n,), generator=generator)]
    else:
        w = torch.randn(n, data_cfg.dim, generator=generator)
    x = torch.randn(n, data_cfg.n_pairs, data_cfg.dim, generator=generator)
    noise = torch.randn(n, data_cfg.n_pairs, generator=generator) * data_cfg.noise_variance ** 0.5
    return x, torch.einsum("nkd,nd->nk", x, w) + noise, w


def to_tokens(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Interleave pairs into tokens of width D + 1: x_i as [0, x_i], y_i as [y_i, 0, ..., 0]: (n, 2K, D + 1)."""
    n, k, d = x.shape
    tokens = x.new_zeros(n, k, 2, d + 1)
    tokens[:, :, 0, 1:] = x
    tokens[:, :, 1, 0] = y
    return tokens.reshape(n, 2 * k, d + 1)


def ridge_predictions(x: torch.Tensor, y: torch.Tensor, noise_variance: float) -> torch.Tensor:
    """Ridge (lambda = sigma^2) prediction of y_k from the k pairs before it, for every k: (n, K), float64."""
    x, y = x.double(), y.double()
    outer = torch.einsum("nkd,nke->nkde", x, x)
    gram = torch.cumsum(outer, 1) - outer  # sum over i < k of x_i x_i^T
    moment = torch.cumsum(x * y[..., None], 1) - x * y[..., None]  # sum over i < k of x_i y_i
    eye = torch.eye(x.shape[-1], dtype=x.dtype)
    w = torch.linalg.solve(gram + noise_variance * eye, moment[..., None])[..., 0]  # (n, K, D)
    return (w * x).sum(-1)


def dmmse_predictions(x: torch.Tensor, y: torch.Tensor, tasks: torch.Tensor, noise_variance: float,
                      chunk: int = 256) -> torch.Tensor:
    """Posterior-mean prediction of y_k under the uniform prior on `tasks` (M, D), from the k pairs before it:
    (n, K), float64; chunked along n so n x K x M floats stay small."""
    tasks = tasks.double()
    out = []
    for xs, ys in zip(x.double().split(chunk), y.double().split(chunk)):
        residual = (ys[..., None] - torch.einsum("nkd,md->nkm", xs, tasks)) ** 2  # (n, K, M)
        log_weights = -(torch.cumsum(residual, 1) - residual) / (2 * noise_variance)  # pairs i < k
        w = torch.softmax(log_weights, -1) @ tasks  # (n, K, D)
        out.append((w * xs).sum(-1))
    return torch.cat(out)


def eval_sample(data_cfg, tasks: torch.Tensor, n: int, seed: int) -> dict[str, np.ndarray]:
    """The fixed eval sample of each distribution (x, y, w) with both baselines' predictions; the dMMSE of
    M = inf is ridge (the Bayes predictor under the Gaussian prior)."""
    arrays = {}
    for i, distribution in enumerate(DISTRIBUTIONS):
        generator = torch.Generator().manual_seed(seed + 1 + i)
        x, y, w = sample_sequences(n, data_cfg, tasks if distribution == "pretrain" else None, generator)
        ridge = ridge_predictions(x, y, data_cfg.noise_variance)
        dmmse = dmmse_predictions(x, y, tasks, data_cfg.noise_variance) if len(tasks) else ridge
        arrays.update({f"{distribution}_x": x.numpy(), f"{distribution}_y": y.numpy(), f"{distribution}_w": w.numpy(),
                       f"{distribution}_ridge": ridge.numpy(), f"{distribution}_dmmse": dmmse.numpy()})
    return arrays


def load_eval(data_dir: Path) -> dict[str, np.ndarray]:
    with np.load(Path(data_dir) / "eval.npz") as cached:
        return dict(cached)


def load_tasks(data_dir: Path) -> torch.Tensor:
    return torch.from_numpy(np.load(Path(data_dir) / "tasks.npy"))


def main():
    args, cfg = cli("Draw the regression tasks and the fixed eval samples with their Bayes baselines.",
                    out="data directory to write")
    tasks = draw_tasks(cfg.data, cfg.seed)
    arrays = eval_sample(cfg.data, tasks, cfg.analysis.eval.n_sequences, cfg.seed)
    with atomic_path(args.out / "tasks.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, tasks.numpy())
    with atomic_path(args.out / "eval.npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    manifest = {"kind": "regression", "dim": cfg.data.dim, "n_pairs": cfg.data.n_pairs,
                "noise_variance": cfg.data.noise_variance, "n_tasks": cfg.data.n_tasks, "seed": cfg.seed,
                "eval_sequences": cfg.analysis.eval.n_sequences,
                "tasks_sha256": hashlib.sha256(tasks.numpy().tobytes()).hexdigest()}
    write_json(args.out / "manifest.json", manifest)
    print(f"regression data: D={cfg.data.dim}, K={cfg.data.n_pairs}, M={cfg.data.n_tasks or 'inf'}, "
          f"{cfg.analysis.eval.n_sequences} eval sequences per distribution", file=sys.stderr)


if __name__ == "__main__":
    run_cli(main)
