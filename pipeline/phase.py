"""Detect the phase-change window from the rise of the best head's score, instead of a hard-coded range.

Window = from the first checkpoint where the running max (over checkpoints) of the max-over-heads score
has covered `low` of its total rise to the first where it has covered `high` of it. Models whose score
rises less than `min_rise` (1-layer models) have no window. The ICL score just before and just after
the window (at the checkpoint before its start, and at its end) is recorded beside it, since that
change is the paper's central claim.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.cli import cli
from pipeline.io import run_cli, write_table


def detect_window(tokens_seen: np.ndarray, best_score: np.ndarray, low: float, high: float, min_rise: float):
    """(start_index, end_index) into checkpoints sorted by tokens seen, or None when there is no rise."""
    running = np.maximum.accumulate(best_score)
    rise = running[-1] - best_score[0]
    if rise < min_rise:
        return None
    start = int(np.argmax(running >= best_score[0] + low * rise))
    end = int(np.argmax(running >= best_score[0] + high * rise))
    return start, end


def window_table(heads: pd.DataFrame, icl: pd.DataFrame, window_cfg) -> pd.DataFrame:
    """One row for the model: window bounds (steps, tokens), score rise, and ICL before/after it."""
    best = (heads[heads.score == window_cfg.score].groupby(["step", "tokens_seen"]).value.max()
            .reset_index().sort_values("step"))
    icl = icl.set_index("step").loc[best.step]
    found = detect_window(best.tokens_seen.to_numpy(), best.value.to_numpy(),
                          window_cfg.low, window_cfg.high, window_cfg.min_rise)
    row = {"score": window_cfg.score, "score_first": best.value.iloc[0], "score_last": best.value.iloc[-1],
           "has_window": found is not None}
    if found is not None:
        start, end = found
        before, after = max(start - 1, 0), end
        row.update(before_step=best.step.iloc[before], start_step=best.step.iloc[start], end_step=best.step.iloc[end],
                   start_tokens=best.tokens_seen.iloc[start], end_tokens=best.tokens_seen.iloc[end],
                   icl_before=icl.icl_score.iloc[before], icl_after=icl.icl_score.iloc[after],
                   icl_change=icl.icl_score.iloc[after] - icl.icl_score.iloc[before])
    return pd.DataFrame([row])


def steps_around_window(steps: list[int], windows: pd.DataFrame, n: int) -> list[int]:
    """`n` checkpoints to show or probe: the first trained one, the window's start and end, the last
    (log-spread when there is no window)."""
    trained = [s for s in sorted(steps) if s > 0] or sorted(steps)  # a single released checkpoint is step 0
    found = windows[windows.has_window]
    if len(found) and n >= 4:
        w = found.iloc[0]
        picks = [trained[0], int(w.start_step), int(w.end_step), trained[-1]]
        picks += list(np.array(trained)[np.linspace(0, len(trained) - 1, n - 4 + 2).round().astype(int)][1:-1])
    else:
        picks = list(np.array(trained)[np.linspace(0, len(trained) - 1, n).round().astype(int)])
    return sorted(set(picks))


def main():
    args, cfg = cli("Detect the phase-change window of one model.", heads="head-score table (.parquet)",
                    icl="ICL table (.parquet)", out="window table (.parquet)")
    table = window_table(pd.read_parquet(args.heads), pd.read_parquet(args.icl), cfg.analysis.window)
    table.insert(0, "model", cfg.model.name)
    write_table(table, args.out)


if __name__ == "__main__":
    run_cli(main)
