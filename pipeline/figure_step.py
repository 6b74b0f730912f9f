"""The CLI every figure module shares: read the run tables the module declares (pipeline.outputs), draw each
figure it owns and save it in every configured format, with the checkpoint-integrity note.

A run whose models each have one checkpoint (hub family `final`) gets the module's single-checkpoint views
(pipeline.snapshots) instead of curves over training, under the same names, so the report keeps its layout.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.cli import cli
from pipeline.integrity import integrity_note
from pipeline.outputs import FIGURE_INPUTS, figures_of
from pipeline.plotting import save
from pipeline.snapshots import single_checkpoint


def figure_step(module: str, description: str, draws, snapshots: dict | None = None) -> tuple[dict, object, Path]:
    """The CLI of a figure module: read the run tables it declares (pipeline.outputs.FIGURE_INPUTS), then draw
    and save its figures, `draws(tables, cfg) -> {name: () -> Figure}`; `snapshots` holds its single-checkpoint
    views, `{name: (tables, cfg) -> Figure}`. Returns the tables, config and figure directory for what else the
    module writes."""
    args, cfg = cli(description, tables="directory of the run's tables (*.csv)", out="figure directory")
    tables = {name: pd.read_csv(args.tables / f"{name}.csv", keep_default_na=False, na_values=[""])
              for name in FIGURE_INPUTS[module][0]}
    draw = draws(tables, cfg)
    if single_checkpoint(tables["head_scores"]):
        draw |= {name: (lambda view=view: view(tables, cfg)) for name, view in (snapshots or {}).items()}
    note = integrity_note(args.tables / "integrity.csv")
    for name in figures_of(module):
        save(draw[name](), args.out / name, cfg.figures.formats, cfg.figures.dpi, note)
    return tables, cfg, args.out
