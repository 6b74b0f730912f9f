"""Q-, K- and V-composition between heads of different layers (Elhage et al. 2021), from the weights alone.

The score of a pair is ||W_B W_OV^A||_F / (||W_B||_F ||W_OV^A||_F) for the earlier head A's OV circuit and
the later head B's QK (Q-, K-composition) or OV circuit (V-composition), as TransformerLens's
`all_composition_scores` computes it on FactoredMatrix circuits. Random matrices of the same shapes already
score well above 0 in a small residual stream, so each score is reported beside that random baseline
(Elhage et al. subtract it): the induction circuit shows as the K-composition of the previous-token head
into the induction head rising above it.
"""

from __future__ import annotations

import pandas as pd
import torch
from transformer_lens import FactoredMatrix
from transformer_lens.utilities import composition_scores

MODES = ("Q", "K", "V")


def random_baseline(d_model: int, d_head: int, samples: int = 200, seed: int = 0) -> float:
    """Mean composition score of two random rank-d_head (d_model x d_model) circuits with Gaussian factors."""
    generator = torch.Generator().manual_seed(seed)

    def circuit():
        return FactoredMatrix(torch.randn(samples, d_model, d_head, generator=generator),
                              torch.randn(samples, d_head, d_model, generator=generator))

    return float(composition_scores(circuit(), circuit(), broadcast_dims=False).mean())


def composition_table(model, baseline: float) -> pd.DataFrame:
    """One row per mode and (earlier head, later head) pair: score and score - baseline."""
    rows = []
    for mode in MODES:
        with torch.no_grad():  # (layer A, head A, layer B, head B), zero unless A < B
            scores = model.all_composition_scores(mode)
        for layer_a, head_a, layer_b, head_b in torch.nonzero(scores.new_ones(scores.shape)).tolist():
            if layer_a < layer_b:
                value = float(scores[layer_a, head_a, layer_b, head_b])
                rows.append({"mode": mode, "layer_from": layer_a, "head_from": head_a, "layer_to": layer_b,
                             "head_to": head_b, "score": value, "above_baseline": value - baseline})
    return pd.DataFrame(rows, columns=["mode", "layer_from", "head_from", "layer_to", "head_to", "score",
                                       "above_baseline"])
