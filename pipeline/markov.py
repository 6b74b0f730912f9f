"""In-context Markov chains (Edelman et al. 2024): the world, its exact strategies, the data step, and what the
shared trainer and the LLC need of the subject.

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
import torch

from pipeline.cli import cli
from pipeline.interventions import attach
from pipeline.io import atomic_path, run_cli, write_json
from pipeline.kinds import TrainingSubject

STRATEGIES = ("uniform", "unigram", "bigram")


def generator_rng(generator: torch.Generator) -> np.random.Generator:
    """A numpy generator seeded from the torch generator, so the trainer's saved torch state resumes it."""
    return np.random.default_rng(int(torch.randint(0, 2 ** 62, (1,), generator=generator)))


def sinkhorn(matrices: np.ndarray, tol: float = 1e-12, max_iter: int = 10_000) -> np.ndarray:
    """The doubly stochastic matrices nearest in Sinkhorn's sense: rows and columns alternately normalised."""
    balanced = matrices.copy()
    for _ in range(max_iter):
        balanced /= balanced.sum(-2, keepdims=True)
        balanced /= balanced.sum(-1, keepdims=True)
        if np.abs(balanced.sum(-2) - 1).max() < tol:
            break
    return balanced


def transition_matrices(n: int, data_cfg, rng: np.random.Generator) -> np.ndarray:
    """(n, k, k) row-stochastic matrices from the prior `data.prior`."""
    k = data_cfg.n_states
    rows = rng.dirichlet(np.full(k, float(data_cfg.alpha)), size=(n, k))
    return sinkhorn(rows) if data_cfg.prior == "doubly_stochastic" else rows


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


def strategies(tokens: np.ndarray, k: int, alpha: float) -> dict[str, np.ndarray]:
    """Each strategy's predictive distribution of state t + 1 from states 0..t: (n, seq_len - 1, k), float64.

    uniform 1/k; unigram (count(s) + alpha) / (t + 1 + k alpha); bigram, the Bayes predictor under the
    Dirichlet(alpha) prior: (count(x_t -> s) + alpha) / (count(x_t -> .) + k alpha), transitions within 0..t.
    """
    n, seq_len = tokens.shape
    onehot = np.eye(k)[tokens]  # (n, T, k)
    seen = np.arange(1, seq_len)[None, :, None]
    unigram = (np.cumsum(onehot, 1)[:, :-1] + alpha) / (seen + k * alpha)
    transitions = np.einsum("nti,ntj->ntij", onehot[:, :-1], onehot[:, 1:])  # (n, T-1, k, k): t -> t + 1
    before = np.cumsum(transitions, 1) - transitions  # transitions that ended at or before state t
    rows = before[np.arange(n)[:, None], np.arange(seq_len - 1)[None], tokens[:, :-1]]  # from the current state
    bigram = (rows + alpha) / (rows.sum(-1, keepdims=True) + k * alpha)
    return {"uniform": np.full_like(bigram, 1 / k), "unigram": unigram, "bigram": bigram}


def kl_from(strategy: np.ndarray, log_probs: np.ndarray) -> float:
    """KL(strategy || model) in nats, averaged over sequences and positions; `log_probs` the model's (n, T-1, k)."""
    return float((strategy * (np.log(strategy) - log_probs)).sum(-1).mean())


def cross_entropy(log_probs: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """(n, T-1) losses of predicting each next state with the given log-probabilities."""
    return -np.take_along_axis(log_probs, tokens[:, 1:, None], -1)[..., 0]


def config_kwargs(model_cfg, data_cfg) -> dict:
    """HookedTransformerConfig kwargs: attention-only (or with GELU MLPs), pre-LN, learned positions (JSON-safe)."""
    d_mlp = model_cfg.d_mlp
    kwargs = dict(n_layers=int(model_cfg.n_layers), d_model=int(model_cfg.d_model), n_heads=int(model_cfg.n_heads),
                  d_head=int(model_cfg.d_model) // int(model_cfg.n_heads), n_ctx=int(data_cfg.seq_len),
                  d_vocab=int(data_cfg.n_states), act_fn="gelu" if d_mlp else None, attn_only=not d_mlp,
                  normalization_type="LN", positional_embedding_type="standard", model_name=str(model_cfg.name))
    if d_mlp:
        kwargs["d_mlp"] = int(d_mlp)
    return kwargs


def training_subject(cfg, data_dir: Path) -> TrainingSubject:
    """Fresh chains every step from the seeded generator; next-state cross-entropy (the language models' loss)."""
    from pipeline.checkpoints import initial_twin
    from pipeline.language import next_token_loss

    kwargs = attach(config_kwargs(cfg.model, cfg.data), cfg.train)
    batch_size = cfg.train.batch_size

    def batch(generator):
        tokens, _ = sample(batch_size, cfg.data, generator_rng(generator))
        return (torch.from_numpy(tokens),)

    return TrainingSubject(
        name=str(cfg.model.name), config_kwargs=kwargs, tokens_per_step=batch_size * cfg.data.seq_len,
        fingerprint=[cfg.data.n_states, cfg.data.seq_len, float(cfg.data.alpha), str(cfg.data.prior)],
        init=lambda seed: initial_twin(kwargs, seed), batch=batch,
        loss=next_token_loss)


def load_eval(data_dir: Path) -> dict[str, np.ndarray]:
    with np.load(Path(data_dir) / "eval.npz") as cached:
        return dict(cached)


def llc_data(cfg, data_dir: Path):
    """The LLC's `input_ids` (the first `llc.n_sequences` eval chains) and loss (None: next-token cross-entropy)."""
    return torch.from_numpy(load_eval(data_dir)["tokens"][: cfg.analysis.llc.n_sequences]), None


def main():
    args, cfg = cli("Draw the fixed eval sample of in-context Markov chains.", out="data directory to write")
    tokens, matrices = sample(cfg.analysis.eval.n_sequences, cfg.data, np.random.default_rng(cfg.seed + 1))
    with atomic_path(args.out / "eval.npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, tokens=tokens, matrices=matrices)
    losses = {name: float(cross_entropy(np.log(p), tokens).mean())
              for name, p in strategies(tokens, cfg.data.n_states, cfg.data.alpha).items()}
    write_json(args.out / "manifest.json", {
        "kind": "markov", "n_states": cfg.data.n_states, "seq_len": cfg.data.seq_len, "alpha": cfg.data.alpha,
        "prior": cfg.data.prior, "seed": cfg.seed, "eval_sequences": len(tokens), "strategy_losses": losses})
    print(f"markov data: k={cfg.data.n_states}, T={cfg.data.seq_len}, {cfg.data.prior}({cfg.data.alpha}); eval "
          f"losses (nats) " + ", ".join(f"{n} {v:.3f}" for n, v in losses.items()), file=sys.stderr)


if __name__ == "__main__":
    run_cli(main)
