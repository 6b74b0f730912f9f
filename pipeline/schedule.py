"""Which training steps are checkpointed, how a run is cut into jobs, and what the files are called (no torch:
the Snakefile uses it)."""

import numpy as np


def checkpoint_steps(train_cfg) -> list[int]:
    """Step 0 plus `n_checkpoints` log-spaced steps from `first_checkpoint` to the final step."""
    steps = np.geomspace(train_cfg.first_checkpoint, train_cfg.steps, train_cfg.n_checkpoints)
    return sorted({0, *np.round(steps).astype(int).tolist(), int(train_cfg.steps)})


def checkpoint_name(step: int) -> str:
    return f"step_{step:06d}.safetensors"


def segment_ends(train_cfg, split_at) -> list[int]:
    """The last step of each training job: the checkpoint steps nearest to the `split_at` fractions of the
    run, then the final step. A model trains as a chain of jobs so its early checkpoints can be analysed
    while it trains on (a job resumes from the previous one's state: the bytes are those of one job)."""
    steps = checkpoint_steps(train_cfg)[1:]
    return sorted({min(steps, key=lambda s: abs(s - f * train_cfg.steps)) for f in split_at} | {train_cfg.steps})


def segment_name(end: int) -> str:
    return f"to_{end:06d}"


def segments(train_cfg, split_at) -> dict[str, list[int]]:
    """Segment name -> the checkpoint steps its job writes (step 0 in the first), in training order."""
    steps, ends, found = checkpoint_steps(train_cfg), segment_ends(train_cfg, split_at), {}
    for previous, end in zip([-1, *ends], ends):
        found[segment_name(end)] = [s for s in steps if previous < s <= end]
    return found


def interleaved(items: list, parts: int) -> dict[str, list]:
    """`items` dealt into `parts` groups (every parts-th item), named "1of2", "2of2": even shares of a
    log-spaced checkpoint list, whose later checkpoints cost the same as its early ones."""
    parts = max(1, min(parts, len(items)))
    return {f"{p + 1}of{parts}": items[p::parts] for p in range(parts)}
