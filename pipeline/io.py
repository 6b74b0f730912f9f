"""Small I/O helpers shared by every step: user-facing errors, atomic writes, CLI entry wrapper."""

from __future__ import annotations

import contextlib
import os
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


def run_cli(main):
    """Run a CLI `main()`; turn a UserError into one line on stderr and exit status 2."""
    try:
        main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
