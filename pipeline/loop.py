"""The one per-checkpoint loop every analysis step goes through (scores, causal, composition, LLC).

A step walks a model's checkpoints in order; one HookedTransformer is built at the first checkpoint that
needs computing and every later checkpoint's weights are loaded into it in place (no rebuild, so a
compiled forward keeps working); what all checkpoints share (the compiled forward, the eval sample) is
prepared once; and results found in the step's cache (left by a killed job) are reused, new ones saved.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from pipeline.checkpoints import checkpoint_meta, load_checkpoint, load_weights, verify_checkpoint
from pipeline.cli import cli
from pipeline.config import section
from pipeline.io import StepCache, atomic_path, write_table
from pipeline.outputs import tables_of
from pipeline.registry import KINDS


def write_model_tables(step: str, model: str, tables: dict, out: Path, cache: StepCache, part: str | None = None):
    """A step's per-model tables (<out>/<table>.parquet, each with its `model` column), then the summary
    line the resume test reads, then the cache, no longer needed, removed. `part`: the job's share of the
    checkpoints, when the step runs as several jobs (merged by pipeline.parts)."""
    for name, table in tables.items():
        table.insert(0, "model", model)
        write_table(table, Path(out) / f"{name}.parquet")
    print(f"{step} {model}{f'[{part}]' if part else ''}: {cache.summary()}", file=sys.stderr)
    cache.clear()


def each_checkpoint(checkpoints: list[Path], analyse: Callable, cache: StepCache | None = None,
                    prepare: Callable | None = None, load: Callable = load_checkpoint) -> list[dict]:
    """`analyse(model, meta, shared)` for each checkpoint in order (a dict of tables/arrays per checkpoint),
    under no_grad (`meta`: the checkpoint's sidecar and its `path`); `shared = prepare(model)` is built once, at the first checkpoint computed. `load` builds
    the module at that first checkpoint (default: the HookedTransformer)."""
    for path in checkpoints:  # seconds: a bad file is refused before minutes of work on the ones before it
        verify_checkpoint(path)
    model = shared = None
    results = []
    for path in checkpoints:
        result = cache.load(path) if cache else None
        if result is None:
            if model is None:
                model = load(path)
                shared = prepare(model) if prepare else None
            else:
                load_weights(model, path)
            with torch.no_grad():  # not inference_mode: torch.compile's guards reject inference tensors
                result = analyse(model, {**checkpoint_meta(path), "path": path}, shared)
            if cache:
                cache.save(path, result)
        results.append(result)
    return results


def stack_results(results: list[dict], kind: str) -> tuple[dict[str, pd.DataFrame], np.ndarray]:
    """A score step's per-checkpoint results stacked in checkpoint order: each of its kind's tables, and the
    per-position losses (n_checkpoints, n_sequences, n_positions)."""
    tables = {name: pd.concat([r[name] for r in results], ignore_index=True)
              for name in tables_of("score_checkpoints", kind)}
    return tables, np.stack([r["losses"] for r in results])


def score_step(description: str, kind: str, analyse: Callable):
    """The thin CLI of every kind's score step: `analyse(checkpoints, data_dir, cfg, cache) -> (tables, losses)`
    over the model's checkpoints, then its tables and its stacked per-position losses (n_checkpoints,
    n_sequences, n_positions) with their steps and tokens seen; the cache key is the kind's score_config."""
    args, cfg = cli(description, data="the model's data directory",
                    checkpoints={"nargs": "+", "help": "the model's checkpoints (.safetensors)"},
                    out="directory for the per-model tables (.parquet)", losses_out="per-position losses (.npz)",
                    cache="directory for finished checkpoints' results (resumes a killed job)",
                    part={"type": str, "required": False, "help": "which share of the checkpoints this job has"})
    torch.set_num_threads(cfg.analysis.threads)
    cache = StepCache(args.cache, section(cfg, *KINDS[kind].score_config) + (args.data / "manifest.json").read_text())
    tables, losses = analyse(sorted(args.checkpoints), args.data, cfg, cache)
    steps = tables["head_scores"].groupby("step", sort=False).tokens_seen.first()
    with atomic_path(args.losses_out) as tmp, open(tmp, "wb") as f:
        np.savez(f, losses=losses.astype(np.float32), steps=steps.index.to_numpy(), tokens_seen=steps.to_numpy())
    write_model_tables("score_checkpoints", cfg.model.name, tables, args.out, cache, args.part)
