"""Small I/O helpers shared by every step: user-facing errors, atomic writes, CLI entry wrapper."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path


class UserError(Exception):
    """Bad input the user can fix; reported as one line, never as a traceback."""


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temporary sibling of `path`; rename it into place only if the block succeeds.

    A killed or failing job therefore never leaves a half-written result for a later step.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_table(df, path: Path):
    """Write a DataFrame atomically as CSV or parquet, chosen by the suffix."""
    with atomic_path(Path(path)) as tmp:
        if Path(path).suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)


def write_json(path: Path, record, **dumps):
    """Write a JSON file atomically (indent 1; `dumps`: more json.dumps options)."""
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(json.dumps(record, indent=1, **dumps))


def run_cli(main):
    """Run a CLI `main()`; turn a UserError into one line on stderr and exit status 2."""
    try:
        main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_sha256(checkpoint: Path) -> str:
    """A checkpoint's sha256: its sidecar's (which the analysis loop verifies before any cache lookup, so the
    weights are not hashed again), else the file's own."""
    sidecar = Path(checkpoint).with_suffix(".json")
    recorded = json.loads(sidecar.read_text()).get("sha256") if sidecar.is_file() else None
    return recorded or sha256_file(checkpoint)


class StepCache:
    """Per-checkpoint results of a job, kept outside its declared outputs so that a killed job, rerun,
    resumes instead of analysing a finished checkpoint again. Entries are keyed by the checkpoint's bytes
    and a fingerprint of the config; each is written atomically (a directory renamed into place).
    `clear()` once the job's outputs are written."""

    def __init__(self, directory: Path, fingerprint: str):
        self.directory, self.fingerprint = Path(directory), fingerprint
        self.reused = self.computed = 0
        self._entries = {}  # checkpoint -> entry: each checkpoint is hashed once per job

    def _entry(self, checkpoint: Path) -> Path:
        if checkpoint not in self._entries:
            if not Path(checkpoint).is_file():
                raise UserError(f"checkpoint {checkpoint} does not exist; rerun the training rule "
                                f"(snakemake --cores 2)")
            key = hashlib.sha256(f"{self.fingerprint}\0{weights_sha256(checkpoint)}".encode()).hexdigest()[:20]
            self._entries[checkpoint] = self.directory / f"{Path(checkpoint).stem}-{key}"
        return self._entries[checkpoint]

    def load(self, checkpoint: Path) -> dict | None:
        """The cached results of `checkpoint` (name -> DataFrame or array), or None."""
        import numpy as np
        import pandas as pd

        entry = self._entry(checkpoint)
        if not entry.is_dir():
            return None
        self.reused += 1
        return {p.stem: pd.read_parquet(p) if p.suffix == ".parquet" else np.load(p) for p in entry.iterdir()}

    def save(self, checkpoint: Path, results: dict):
        import numpy as np

        entry = self._entry(checkpoint)
        tmp = entry.with_name(f".{entry.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name, value in results.items():
            if isinstance(value, np.ndarray):
                np.save(tmp / f"{name}.npy", value)
            else:
                value.to_parquet(tmp / f"{name}.parquet", index=False)
        shutil.rmtree(entry, ignore_errors=True)
        os.replace(tmp, entry)
        self.computed += 1

    def clear(self):
        shutil.rmtree(self.directory, ignore_errors=True)

    def summary(self) -> str:
        return f"{self.computed} checkpoint(s) analysed, {self.reused} reused from an interrupted run"


def require_writable(directory: Path, setting: str):
    """Refuse an output directory that cannot be created or written, before any job starts."""
    existing = Path(directory).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{setting}={directory} cannot be written ({existing} is not a writable directory); "
                        f"set {setting} to a directory you can write")


def cache_home(hub_cache) -> Path:
    """The HF_HOME-style cache of hub checkpoints, tokenizers and datasets: `hub_cache` from the config, else
    $HF_HOME, else resources/hf in this checkout."""
    return Path(hub_cache or os.environ.get("HF_HOME") or Path(__file__).resolve().parent.parent / "resources" / "hf")
