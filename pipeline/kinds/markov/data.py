"""In-context Markov chains (Edelman et al. 2024): the world, its exact strategies and the data step (the
model and its training are pipeline.kinds.markov.subject's).

Each sequence is `seq_len` states of its own chain on `n_states` states: the rows of its transition matrix are
drawn from Dirichlet(alpha), and with `prior: doubly_stochastic` the matrix is then Sinkhorn-balanced so its
columns sum to 1 too (the stationary distribution is uniform: no unigram signal). The first state is uniform,
so under the Dirichlet prior the in-context bigram strategy is exactly the Bayes-optimal predictor (the
likelihood factorises over rows). Training draws fresh chains every step from the seeded generator (resume
is exact); evaluation uses a fixed sample. The model is an attention-only HookedTransformer over the states
with learned positions, trained on next-state cross-entropy like the language models.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from pipeline.cli import cli
from pipeline.io import UserError, atomic_path, run_cli, write_json

SINKHORN_OK = 1e-9  # a balanced matrix's columns sum to 1 within this
MAX_REDRAWS = 100
MIXTURE = (0.0, 0.25, 0.5, 1.0)  # the Bayes predictor's proposal: Dirichlet(alpha + m x the sequence's counts)
BAYES_STREAM = 2  # a numpy stream of its own for the Bayes predictor's prior draws (eval: default_rng(seed + 1))


def sinkhorn(matrices: np.ndarray, tol: float = 1e-12, max_iter: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    """The doubly stochastic matrices nearest in Sinkhorn's sense (rows and columns alternately normalised, each
    matrix until its own columns sum to 1 within `tol`), and whether each got there: one with an all-zero column
    (its 0/0 is NaN) or without a doubly stochastic scaling (zeros without total support) did not."""
    k = matrices.shape[-1]
    balanced = matrices.reshape(-1, k, k).copy()
    active = np.arange(len(balanced))
    with np.errstate(invalid="ignore", divide="ignore"):
        for _ in range(max_iter):
            moving = balanced[active]
            moving /= moving.sum(-2, keepdims=True)
            moving /= moving.sum(-1, keepdims=True)
            balanced[active] = moving
            error = np.abs(moving.sum(-2) - 1).max(-1)
            active = active[np.isfinite(error) & (error >= tol)]
            if not len(active):
                break
    ok = np.isfinite(balanced).all((-2, -1)) & (np.abs(balanced.sum(-2) - 1).max(-1) < SINKHORN_OK)
    return balanced.reshape(matrices.shape), ok.reshape(matrices.shape[:-2])


def transition_matrices(n: int, data_cfg, rng: np.random.Generator) -> np.ndarray:
    """(n, k, k) row-stochastic matrices from the prior `data.prior`. The doubly stochastic prior is Dirichlet
    rows conditioned on Sinkhorn balancing them: a draw that cannot be balanced (small alpha) is drawn again,
    and refused in one line when redraws keep failing."""
    k, alpha = data_cfg.n_states, float(data_cfg.alpha)
    rows = rng.dirichlet(np.full(k, alpha), size=(n, k))
    if data_cfg.prior != "doubly_stochastic":
        return rows
    balanced, ok = sinkhorn(rows)
    for _ in range(MAX_REDRAWS):
        if ok.all():
            return balanced
        balanced[~ok], ok[~ok] = sinkhorn(rng.dirichlet(np.full(k, alpha), size=(int((~ok).sum()), k)))
    raise UserError(f"data.prior=doubly_stochastic: {int((~ok).sum())} Dirichlet({alpha}) draws on {k} states "
                    f"could not be Sinkhorn-balanced in {MAX_REDRAWS} redraws (an all-zero column, or zeros with no "
                    f"doubly stochastic scaling); raise data.alpha")


def sample_chains(matrices: np.ndarray, seq_len: int, rng: np.random.Generator) -> np.ndarray:
    """(n, seq_len) states: a uniform first state, then each next state from its row of the chain's matrix."""
    n, k, _ = matrices.shape
    states = np.empty((n, seq_len), dtype=np.int64)
    states[:, 0] = rng.integers(0, k, n)
    cumulative = np.cumsum(matrices, -1)
    for t in range(1, seq_len):
        rows = cumulative[np.arange(n), states[:, t - 1]]
        states[:, t] = np.minimum((rng.random((n, 1)) > rows).sum(-1), k - 1)
    return states


def sample(n: int, data_cfg, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n sequences (n, seq_len) and their transition matrices (n, k, k)."""
    matrices = transition_matrices(n, data_cfg, rng)
    return sample_chains(matrices, data_cfg.seq_len, rng), matrices


def transition_counts(tokens: np.ndarray, k: int) -> np.ndarray:
    """(n, T-1, k, k): at each state t, how often each transition a -> b occurred within states 0..t."""
    onehot = np.eye(k)[tokens]  # (n, T, k)
    transitions = np.einsum("nti,ntj->ntij", onehot[:, :-1], onehot[:, 1:])  # (n, T-1, k, k): t -> t + 1
    return np.cumsum(transitions, 1) - transitions  # transitions that ended at or before state t


def strategies(tokens: np.ndarray, k: int, alpha: float) -> dict[str, np.ndarray]:
    """Each strategy's predictive distribution of state t + 1 from states 0..t: (n, seq_len - 1, k), float64.

    uniform 1/k; unigram (count(s) + alpha) / (t + 1 + k alpha); bigram, the Bayes predictor under the
    Dirichlet(alpha) prior: (count(x_t -> s) + alpha) / (count(x_t -> .) + k alpha), transitions within 0..t.
    """
    n, seq_len = tokens.shape
    onehot = np.eye(k)[tokens]  # (n, T, k)
    seen = np.arange(1, seq_len)[None, :, None]
    unigram = (np.cumsum(onehot, 1)[:, :-1] + alpha) / (seen + k * alpha)
    before = transition_counts(tokens, k)
    rows = before[np.arange(n)[:, None], np.arange(seq_len - 1)[None], tokens[:, :-1]]  # from the current state
    bigram = (rows + alpha) / (rows.sum(-1, keepdims=True) + k * alpha)
    return {"uniform": np.full_like(bigram, 1 / k), "unigram": unigram, "bigram": bigram}


def dirichlet_log_density(rows: np.ndarray, concentration: np.ndarray) -> np.ndarray:
    """log Dirichlet(concentration) density of each row (last axis), summed over the rows of each matrix."""
    from scipy.special import gammaln

    per_row = (gammaln(concentration.sum(-1)) - gammaln(concentration).sum(-1)
               + ((concentration - 1) * np.log(np.maximum(rows, 1e-300))).sum(-1))
    return per_row.sum(-1)


def importance_bayes(tokens: np.ndarray, data_cfg, draws: int, rng: np.random.Generator,
                     chunk: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The posterior predictive of state t + 1 given states 0..t under the prior `data.prior`, by self-normalised
    importance sampling over Dirichlet rows R (the prior's own latent draw; the chain's matrix is R, or R
    Sinkhorn-balanced), each weighted by Dirichlet(alpha)(R) / q(R) times its in-context likelihood
    prod P[x_{i-1}, x_i]. The proposal q, per sequence, is a defensive mixture of Dirichlet(alpha + m counts)
    rows, m in MIXTURE, over the sequence's transition counts: the prior itself for early states, near the
    posterior for late ones. Unbalanceable draws weigh 0 (the prior redraws them). Returns (n, T-1, k) and the
    effective sample size of the weights (n, T-1)."""
    from scipy.special import logsumexp

    n, seq_len = tokens.shape
    k, alpha = data_cfg.n_states, float(data_cfg.alpha)
    predictive, ess = np.empty((n, seq_len - 1, k)), np.empty((n, seq_len - 1))
    mixture = np.asarray(MIXTURE)
    for rows in np.array_split(np.arange(n), max(1, n // chunk)):
        before = transition_counts(tokens[rows], k)  # (c, T-1, k, k)
        full = before[:, -1] + np.eye(k)[tokens[rows, -2]][:, :, None] * np.eye(k)[tokens[rows, -1]][:, None, :]
        concentrations = alpha + mixture[:, None, None, None] * full[None]  # (components, c, k, k)
        pick = rng.integers(0, len(mixture), (len(rows), draws))
        latent = rng.gamma(np.take_along_axis(concentrations, pick.T[..., None, None], 0).swapaxes(0, 1))
        latent /= latent.sum(-1, keepdims=True)  # (c, M, k, k) Dirichlet rows
        log_q = logsumexp([dirichlet_log_density(latent, c[:, None]) for c in concentrations], 0) - np.log(len(mixture))
        log_ratio = dirichlet_log_density(latent, np.full((k, k), alpha)) - log_q
        matrices, ok = sinkhorn(latent) if data_cfg.prior == "doubly_stochastic" else (latent, np.ones_like(log_q, bool))
        log_matrices = np.log(np.maximum(np.where(ok[..., None, None], matrices, 1 / k), 1e-300))
        log_w = np.einsum("ctab,cmab->ctm", before, log_matrices) + np.where(ok, log_ratio, -np.inf)[:, None]
        weights = np.exp(log_w - log_w.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        current = matrices[np.arange(len(rows))[:, None, None], np.arange(draws)[None, None], tokens[rows, :-1, None]]
        predictive[rows] = np.einsum("ctm,ctmk->ctk", weights, np.nan_to_num(current))
        ess[rows] = 1 / (weights ** 2).sum(-1)
    return predictive, ess


def prior_strategies(tokens: np.ndarray, data_cfg, seed: int) -> dict[str, np.ndarray]:
    """The strategies of `strategies`, and where the bigram strategy is not the Bayes predictor of the prior (the
    doubly stochastic one) the Bayes predictor itself, `bayes`, by importance sampling with `data.bayes_draws`
    draws per sequence (seeded: the data step and the score step get the same)."""
    found = strategies(tokens, data_cfg.n_states, data_cfg.alpha)
    if data_cfg.prior == "doubly_stochastic":
        found["bayes"] = importance_bayes(tokens, data_cfg, data_cfg.bayes_draws,
                                          np.random.default_rng([seed, BAYES_STREAM]))[0]
    return found


def kl_from(strategy: np.ndarray, log_probs: np.ndarray) -> float:
    """KL(strategy || model) in nats, averaged over sequences and positions; `log_probs` the model's (n, T-1, k)."""
    return float((strategy * (np.log(strategy) - log_probs)).sum(-1).mean())


def cross_entropy(log_probs: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """(n, T-1) losses of predicting each next state with the given log-probabilities."""
    return -np.take_along_axis(log_probs, tokens[:, 1:, None], -1)[..., 0]


def load_eval(data_dir: Path) -> dict[str, np.ndarray]:
    with np.load(Path(data_dir) / "eval.npz") as cached:
        return dict(cached)


def main():
    args, cfg = cli("Draw the fixed eval sample of in-context Markov chains.", out="data directory to write")
    tokens, matrices = sample(cfg.analysis.eval.n_sequences, cfg.data, np.random.default_rng(cfg.seed + 1))
    with atomic_path(args.out / "eval.npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, tokens=tokens, matrices=matrices)
    losses = {name: float(cross_entropy(np.log(p), tokens).mean())
              for name, p in prior_strategies(tokens, cfg.data, cfg.seed).items()}
    write_json(args.out / "manifest.json", {
        "kind": "markov", "n_states": cfg.data.n_states, "seq_len": cfg.data.seq_len, "alpha": cfg.data.alpha,
        "prior": cfg.data.prior, "seed": cfg.seed, "eval_sequences": len(tokens), "strategy_losses": losses})
    print(f"markov data: k={cfg.data.n_states}, T={cfg.data.seq_len}, {cfg.data.prior}({cfg.data.alpha}); eval "
          f"losses (nats) " + ", ".join(f"{n} {v:.3f}" for n, v in losses.items()), file=sys.stderr)


if __name__ == "__main__":
    run_cli(main)
