"""The language kind's column of the figure across kinds (pipeline.paper)."""

from __future__ import annotations

import pandas as pd


def distance(tables: dict) -> pd.DataFrame:
    """The ICL score (loss at a late token minus at an early one), per model and checkpoint: how far the model is
    from using its context as an induction head does."""
    return tables["icl"][["model", "tokens_seen", "icl_score"]].rename(columns={"icl_score": "value"})
