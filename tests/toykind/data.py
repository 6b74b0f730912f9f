"""The toy kind's world and data step: sequences x_{t+1} = (x_t + x_{t-1}) mod p from two uniform states."""

import sys

import numpy as np

from pipeline.cli import cli
from pipeline.io import atomic_path, run_cli, write_json


def sequences(n: int, modulus: int, seq_len: int, rng: np.random.Generator) -> np.ndarray:
    """(n, seq_len) states: two uniform, then each the sum of the two before it, mod p."""
    states = np.empty((n, seq_len), dtype=np.int64)
    states[:, :2] = rng.integers(0, modulus, (n, 2))
    for t in range(2, seq_len):
        states[:, t] = (states[:, t - 1] + states[:, t - 2]) % modulus
    return states


def main():
    args, cfg = cli("Draw the toy kind's fixed eval sequences.", out="data directory to write")
    tokens = sequences(cfg.analysis.eval.n_sequences, cfg.data.modulus, cfg.data.seq_len,
                       np.random.default_rng(cfg.seed + 1))
    with atomic_path(args.out / "eval.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, tokens)
    write_json(args.out / "manifest.json", {"kind": "toy", "modulus": cfg.data.modulus, "seq_len": cfg.data.seq_len,
                                            "seed": cfg.seed, "eval_sequences": len(tokens)})
    print(f"toy data: {len(tokens)} eval sequences mod {cfg.data.modulus}", file=sys.stderr)


if __name__ == "__main__":
    run_cli(main)
