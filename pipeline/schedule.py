"""Which training steps are checkpointed and what the files are called (no torch: the Snakefile uses it)."""

import numpy as np


def checkpoint_steps(train_cfg) -> list[int]:
    """Step 0 plus `n_checkpoints` log-spaced steps from `first_checkpoint` to the final step."""
    steps = np.geomspace(train_cfg.first_checkpoint, train_cfg.steps, train_cfg.n_checkpoints)
    return sorted({0, *np.round(steps).astype(int).tolist(), int(train_cfg.steps)})


def checkpoint_name(step: int) -> str:
    return f"step_{step:06d}.safetensors"
