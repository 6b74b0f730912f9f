"""Checkpoint-integrity guard: every checkpoint of a model matches its sidecar's sha256, and none duplicates another.

Hub revisions can be wrong upstream: EleutherAI/pythia #205 and #206 report step revisions of the 2.8b and
12b models that serve the final model's weights. A phase-change scan over them would be meaningless and
look fine, so every model's checkpoints are compared by the sha256 of their weights (recorded in each
sidecar when it was trained or converted) before any analysis reads them. By default a duplicate is a
warning row (tables/integrity.csv, provenance.json, a note under every figure); with
`analysis.duplicate_checkpoints=error` it stops the run.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.cli import cli
from pipeline.io import UserError, run_cli, write_table

COLUMNS = ["model", "step", "tokens_seen", "identical_to_step", "identical_to_final", "warning"]


def duplicate_checkpoints(metas: list[dict], model: str) -> pd.DataFrame:
    """One row per checkpoint whose weights equal another's (sidecar dicts with step, tokens_seen, sha256).

    Each group of identical checkpoints is reported against the final checkpoint when it is in the group
    (an early label serving the final weights), else against the group's earliest step."""
    ordered = sorted(metas, key=lambda m: m["step"])
    final = ordered[-1]
    groups: dict[str, list[dict]] = {}
    for meta in ordered:
        groups.setdefault(meta["sha256"], []).append(meta)
    rows = []
    for group in groups.values():
        reference = final if final in group else group[0]
        for meta in group:
            if meta is reference:
                continue
            to_final = reference is final
            rows.append({"model": model, "step": meta["step"], "tokens_seen": meta["tokens_seen"],
                         "identical_to_step": reference["step"], "identical_to_final": to_final,
                         "warning": f"{model} step {meta['step']} has the same weights as "
                                    f"{'the final checkpoint, ' if to_final else ''}step {reference['step']}"})
    return pd.DataFrame(rows, columns=COLUMNS).sort_values("step", ignore_index=True)


def integrity_note(table: Path) -> str | None:
    """The line every figure of the run carries when a model has duplicated checkpoints."""
    rows = pd.read_csv(table)
    if rows.empty:
        return None
    shown = "; ".join(rows.warning.head(3)) + (f"; and {len(rows) - 3} more" if len(rows) > 3 else "")
    return f"Checkpoint integrity warning ({len(rows)}, tables/integrity.csv): {shown}"


def main():
    from pipeline.checkpoints import verify_checkpoint

    args, cfg = cli("Verify every checkpoint of one model against its sidecar and flag byte-identical ones.",
                    out="table to write (.parquet)",
                    checkpoints={"nargs": "+", "help": "the model's checkpoints (.safetensors)"})
    rows = duplicate_checkpoints([verify_checkpoint(p) for p in args.checkpoints], cfg.model.name)
    if len(rows) and cfg.analysis.duplicate_checkpoints == "error":
        raise UserError(f"{rows.warning.iloc[0]} ({len(rows)} duplicated checkpoint(s)); fix the checkpoints "
                        f"(model.hub.checkpoints) or set analysis.duplicate_checkpoints=warn")
    write_table(rows, args.out)


if __name__ == "__main__":
    run_cli(main)
