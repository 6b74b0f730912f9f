"""The language kind's column of the figure across kinds (pipeline.paper)."""

from __future__ import annotations

import pandas as pd


def distance(tables: dict) -> pd.DataFrame:
    """The ICL score (loss at a late token minus at an early one), per model and checkpoint: how far the model is
    from using its context as an induction head does."""
    return tables["icl"][["model", "tokens_seen", "icl_score"]].rename(columns={"icl_score": "value"})


def final_ablation(ablation: pd.DataFrame) -> pd.DataFrame:
    """The ablation at each model's last checkpoint: the ICL score and loss intact, with its induction heads
    zero- and mean-ablated, and with a control head ablated (a run's paper section)."""
    last = ablation[ablation.step == ablation.groupby("model").step.transform("max")]
    return last[["model", "step", "heads", "method", "ablated", "icl_score", "icl_se", "loss"]].reset_index(drop=True)
