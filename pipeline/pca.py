"""Per-token-loss PCA across checkpoints (seed 003 / Olsson et al. Fig. "per-token loss PCA").

Each checkpoint is a point whose features are its losses on a fixed set of (sequence, position) pairs,
one random position per eval sequence; features are standardised across checkpoints, then PCA(2).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from pipeline.cli import cli
from pipeline.io import run_cli, write_table


def loss_pca(losses: np.ndarray, n_components: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """PCA coordinates (C, n_components) and explained-variance ratios of losses (C, N, P)."""
    n_checkpoints, n_sequences, n_positions = losses.shape
    positions = np.random.default_rng(seed).integers(0, n_positions, size=n_sequences)
    features = losses[:, np.arange(n_sequences), positions]  # (C, N)
    pca = PCA(n_components=min(n_components, n_checkpoints), random_state=seed)
    coords = pca.fit_transform(StandardScaler().fit_transform(features))
    return coords, pca.explained_variance_ratio_


def pca_table(losses, steps, tokens_seen, n_components: int, seed: int) -> pd.DataFrame:
    """One row per checkpoint with its PC coordinates and each component's explained-variance ratio."""
    coords, explained = loss_pca(losses, n_components, seed)
    table = pd.DataFrame({"step": steps, "tokens_seen": tokens_seen})
    for i in range(coords.shape[1]):
        table[f"pc{i + 1}"] = coords[:, i]
        table[f"pc{i + 1}_explained"] = explained[i]
    return table


def main():
    args, cfg = cli("PCA of per-token losses across checkpoints.", losses="per-token losses (.npz)",
                    out="PCA table (.parquet)")
    cached = np.load(args.losses)
    table = pca_table(cached["losses"], cached["steps"], cached["tokens_seen"], cfg.analysis.pca.n_components,
                      cfg.seed)
    table.insert(0, "model", cfg.model.name)
    write_table(table, args.out)


if __name__ == "__main__":
    run_cli(main)
