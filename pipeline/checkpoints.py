"""Checkpoint files: safetensors weights plus a JSON sidecar (HookedTransformerConfig kwargs, step, tokens seen,
the weights' sha256, and where they came from), verified before any analysis reads them."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.interventions import reads
from pipeline.io import UserError, atomic_path, sha256_file, write_json
from pipeline.model import HOOKED_BUFFERS, TrainingTwin, hooked_transformer, trainable_state_dict


def save_checkpoint(path: Path, state_dict: dict, config_kwargs: dict, step: int, tokens_seen: int, **extra):
    """Write weights (safetensors), then a JSON sidecar: HookedTransformerConfig kwargs, step, tokens seen,
    the weights' sha256 (checked on every load) and any `extra` fields (e.g. the hub files it came from)."""
    from safetensors.torch import save_file

    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in trainable_state_dict(state_dict).items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))
    meta = {"config": config_kwargs, "step": step, "tokens_seen": tokens_seen, "sha256": sha256_file(path), **extra}
    write_json(path.with_suffix(".json"), meta)


def checkpoint_meta(path: Path) -> dict:
    """The JSON sidecar of a checkpoint: config kwargs, step, tokens seen, sha256 of the weights."""
    sidecar = Path(path).with_suffix(".json")
    try:
        return json.loads(sidecar.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"checkpoint sidecar {sidecar} is missing or unreadable ({err.__class__.__name__}); "
                        f"delete the run's models/ directory and rerun training") from None


def remedy(meta: dict) -> str:
    """How to replace a bad checkpoint, by where it came from."""
    if meta.get("hub"):
        return "delete it and rerun snakemake to fetch it again from the hub cache"
    return "delete it (and its training job's checkpoint directory) and rerun snakemake: training resumes"


def stamp(path: Path) -> tuple[int, int]:
    """A file's size and modification time: whether it changed since it was last read."""
    stat = Path(path).stat()
    return stat.st_size, stat.st_mtime_ns


_VERIFIED: dict[tuple, dict] = {}  # (path, size, mtime) -> sidecar: a checkpoint is hashed once per process


def verify_checkpoint(path: Path) -> dict:
    """Refuse a checkpoint that is missing, or whose weights do not match the sha256 in its sidecar (truncated,
    corrupted or altered), in one line naming the file and the fix for its source; returns the sidecar. The
    weights are hashed once per process (again only if the file changes): a 300-MB hub checkpoint takes seconds."""
    if not Path(path).is_file():
        raise UserError(f"checkpoint {path} does not exist; rerun the training rule (snakemake --cores 2)")
    sidecar = Path(path).with_suffix(".json")
    key = (str(Path(path).resolve()), *stamp(path), *(stamp(sidecar) if sidecar.is_file() else ()))
    if key not in _VERIFIED:
        meta = checkpoint_meta(path)
        if meta.get("sha256") and sha256_file(path) != meta["sha256"]:
            raise UserError(f"checkpoint {path} does not match the sha256 in its sidecar (truncated, corrupted or "
                            f"altered); {remedy(meta)}")
        _VERIFIED[key] = meta
    return dict(_VERIFIED[key])


def load_weights(model, path: Path):
    """Copy a checkpoint's weights into an existing HookedTransformer of the same config, in place,
    after checking them against the sha256 in the sidecar."""
    from safetensors.torch import load_file

    meta = verify_checkpoint(path)
    try:
        state = load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for truncated/garbled files
        raise UserError(f"checkpoint {path} cannot be read ({err}); {remedy(meta)}") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith(HOOKED_BUFFERS)]
    if missing or unexpected:
        raise UserError(f"checkpoint {path} does not match its config (missing {missing[:3]}, "
                        f"unexpected {unexpected[:3]}); delete it and retrain")
    return model


def load_references(config_kwargs: dict) -> dict[str, TrainingTwin]:
    """The reference models a model's interventions read (clamp_from), as frozen twins, by path."""
    references = {path: load_twin(Path(path)).requires_grad_(False) for path in reads(config_kwargs.get("interventions"))}
    for path, twin in references.items():
        if twin.embed.W_E.shape[0] != config_kwargs["d_vocab"]:
            raise UserError(f"clamp_from reference {path} has d_vocab={twin.embed.W_E.shape[0]}, this model "
                            f"{config_kwargs['d_vocab']}; use a reference trained on the same tokens")
    return references


def initial_twin(config_kwargs: dict, seed: int) -> TrainingTwin:
    """The training twin at TransformerLens's init (step 0), wired to the reference models it reads."""
    return TrainingTwin.from_hooked(hooked_transformer(config_kwargs, seed, load_references(config_kwargs)))


def load_checkpoint(path: Path):
    """Load a saved checkpoint as a `transformer_lens.HookedTransformer` in eval mode."""
    config = verify_checkpoint(path)["config"]
    return load_weights(hooked_transformer(config, references=load_references(config)), path).eval()


def load_twin(path: Path) -> TrainingTwin:
    """Load a checkpoint of a model trained here into its training twin (same parameter names; SDPA forward,
    the fast module for work that needs gradients, such as the LLC's SGLD chains)."""
    config = verify_checkpoint(path)["config"]
    return load_weights(TrainingTwin(**config, references=load_references(config)), path).eval()
