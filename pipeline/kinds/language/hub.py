"""Public training checkpoints from the Hugging Face hub (model source `hub`), fetched once and converted.

The fetch rule is where the network is touched: it resolves the configured checkpoint indices against
TransformerLens's own label list, downloads each checkpoint into the project's HF cache (HF_HOME-style,
`hub_cache`), records each file's size and sha256 in the cache's manifest and the checkpoint's sidecar,
and converts the checkpoint into the pipeline's own format (safetensors + sidecar), so the analysis rules
load it offline exactly like a trained one. One job per checkpoint: each is fetched once, in parallel.
Nothing is unpickled: NeelNanda `.pth` files are read with `torch.load(weights_only=True)`
(TransformerLens itself uses weights_only=False), and a cached file whose sha256 differs from its
manifest is refused.

Families are a registry: a family is `labels(model_cfg) -> (labels, label_type)` and
`fetch(model_cfg, label) -> (HookedTransformerConfig, state_dict, cached files)`: `neel` (NeelNanda
attn-only .pth checkpoints, labelled by tokens), `revisions` (Pythia, stanford-crfm step revisions) and
`final` (any model TransformerLens knows, as one checkpoint: its released weights).
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
from pathlib import Path

from pipeline.cli import cli
from pipeline.io import UserError, cache_home, run_cli, sha256_file, write_json
from pipeline.model import checkpoint_labels, official_name, pretrained, pretrained_config

HUB_HOST = ("huggingface.co", 443)


def use_cache(hub_cache) -> bool:
    """Point huggingface_hub at the project cache and decide whether the hub can be reached (3 s probe);
    when it cannot, switch the HF libraries to offline mode so they answer from the cache at once.
    Must run before transformer_lens / huggingface_hub / datasets are imported."""
    os.environ["HF_HOME"] = str(cache_home(hub_cache))
    online = os.environ.get("HF_HUB_OFFLINE", "0") in ("0", "", "false")
    if online:
        try:
            socket.create_connection(HUB_HOST, timeout=3).close()
        except OSError:
            online = False
    if not online:
        os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"
    return online


def retried(call, attempts: int = 3, wait: float = 5.0):
    """Run a download, retrying transient network errors a bounded number of times (online only; an
    interrupted download resumes from huggingface_hub's .incomplete file)."""
    for attempt in range(attempts):
        try:
            return call()
        except (ConnectionError, TimeoutError, OSError):
            if os.environ.get("HF_HUB_OFFLINE") == "1" or attempt == attempts - 1:
                raise
            time.sleep(wait * (attempt + 1))


def not_cached(what: str) -> UserError:
    """The one-line error for something the hub would have to provide while it cannot be reached."""
    return UserError(f"{what} is not in the HF cache {cache_home(None)} and the hub is unreachable (or "
                     f"HF_HUB_OFFLINE=1); fetch it on a machine with network (same command) and copy the cache "
                     f"there, point hub_cache/HF_HOME at a cache that has it, or use a trained model "
                     f"(model=attn_only_2l)")


def hub_tokenizer(name: str):
    """A model's own tokenizer from the hub (its tokenizer.json, through the HF cache)."""
    from huggingface_hub import hf_hub_download
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(retried(lambda: hf_hub_download(name, "tokenizer.json")))
    except Exception:
        raise not_cached(f"tokenizer {name}") from None


def _neel_repo(model_cfg) -> str:
    return official_name(model_cfg.hub.name)


def _neel_files(repo: str) -> list[str]:
    """The repo's file names: listed by the hub, or offline, those in the cached snapshot."""
    from huggingface_hub import list_repo_files, snapshot_download

    if os.environ.get("HF_HUB_OFFLINE") != "1":
        return list_repo_files(repo)
    try:
        root = Path(snapshot_download(repo, local_files_only=True))
    except Exception:
        raise not_cached(f"model {repo}") from None
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()]


def _checkpoint_label(name: str) -> int | None:
    match = re.match(r"checkpoints/.*_(\d+)\.pth$", name)
    return int(match.group(1)) if match else None


def neel_labels(model_cfg):
    """NeelNanda checkpoints, named by tokens seen: the labels of the repo's checkpoint files (listed by the
    hub, or offline, in the cached snapshot). Not TransformerLens's label type, which guesses 'step' for a
    list ending at <= 1e9 tokens and would then need a tokens_per_step these repos do not have."""
    labels = sorted(label for name in _neel_files(_neel_repo(model_cfg))
                    if (label := _checkpoint_label(name)) is not None)
    return labels, "token"


def neel_fetch(model_cfg, label: int):
    """Config and one checkpoint of a NeelNanda model: (HookedTransformerConfig, state dict, files)."""
    import torch
    from huggingface_hub import hf_hub_download

    repo = _neel_repo(model_cfg)
    matches = [name for name in _neel_files(repo) if _checkpoint_label(name) == label]
    if not matches:
        raise not_cached(f"checkpoint {label} of {model_cfg.hub.name}")
    files = [Path(retried(lambda name=name: hf_hub_download(repo, name))) for name in ["config.json", matches[0]]]
    config = pretrained_config(model_cfg.hub.name)
    return config, torch.load(files[1], map_location="cpu", weights_only=True), files


def revision_labels(model_cfg):
    """Pythia and stanford-crfm: TransformerLens's static step lists."""
    return checkpoint_labels(model_cfg.hub.name)


def revision_fetch(model_cfg, label: int):
    """One revision of a Pythia / stanford-crfm model, converted by TransformerLens (the weights are read
    by transformers, which loads safetensors or unpickles with weights_only)."""
    from huggingface_hub import snapshot_download

    config, state = retried(lambda: pretrained(model_cfg.hub.name, label))
    repo = official_name(model_cfg.hub.name)
    revision = f"step{label}" if repo.startswith("EleutherAI/") else f"checkpoint-{label}"
    snapshot = Path(snapshot_download(repo, revision=revision, local_files_only=True))
    return config, state, sorted(p for p in snapshot.rglob("*") if p.is_file())


def final_labels(model_cfg):
    """Any model TransformerLens knows, at its released weights: a single checkpoint, label 0."""
    return [0], "final"


def final_fetch(model_cfg, label: int):
    """The released weights of any TransformerLens model (gpt2-small, pythia-160m, a Llama), converted by
    TransformerLens from the transformers checkpoint (safetensors, or torch.load with weights_only)."""
    from huggingface_hub import snapshot_download

    config, state = retried(lambda: pretrained(model_cfg.hub.name))
    snapshot = Path(snapshot_download(official_name(model_cfg.hub.name), local_files_only=True))
    return config, state, sorted(p for p in snapshot.rglob("*") if p.is_file())


HUB_FAMILIES = {"neel": (neel_labels, neel_fetch), "revisions": (revision_labels, revision_fetch),
                "final": (final_labels, final_fetch)}


def resolve(labels: list[int], indices) -> list[int]:
    """The labels at the configured indices (negative counts from the end), refusing any out of range."""
    bad = [i for i in indices if not -len(labels) <= i < len(labels)]
    if bad:
        raise UserError(f"model.hub.checkpoints {bad} out of range: this model has {len(labels)} checkpoints "
                        f"(indices {-len(labels)}..{len(labels) - 1}); fix model.hub.checkpoints")
    return [labels[i] for i in indices]


def config_kwargs(config) -> dict:
    """JSON-safe HookedTransformerConfig kwargs: every plain init field but device/dtype/checkpoint state
    and the tokenizer."""
    import dataclasses

    skip = {"device", "dtype", "n_devices", "checkpoint_index", "checkpoint_value", "checkpoint_label_type",
            "from_checkpoint", "seed", "initializer_range", "default_prepend_bos",
            "tokenizer_name"}  # the corpus is tokenized once per tokenizer; the model never loads one
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.init and f.name not in skip}
    return {k: v for k, v in values.items() if isinstance(v, (int, float, str, bool, type(None)))}


def record_or_verify(path: Path, hub_cache) -> dict:
    """Size and sha256 of a cached hub file. The first fetch records them in the cache's own manifest
    (`<cache>/pipeline_manifest/`); later uses must match it, or the file is refused as altered."""
    entry = {"file": str(path.relative_to(cache_home(hub_cache))), "size": path.stat().st_size,
             "sha256": sha256_file(path)}
    record = cache_home(hub_cache) / "pipeline_manifest" / (re.sub(r"[^A-Za-z0-9_.-]", "_", entry["file"]) + ".json")
    if record.exists():
        if json.loads(record.read_text())["sha256"] != entry["sha256"]:
            raise UserError(f"cached file {path} does not match the sha256 in its manifest {record} (corrupted or "
                            f"altered); delete both and fetch it again")
    else:
        write_json(record, entry)
    return entry


def fetch_checkpoint(model_cfg, position: int, out: Path, hub_cache) -> dict:
    """Fetch the checkpoint at `position` of model.hub.checkpoints, verify its files against the cache
    manifest and write it in the pipeline's format; its sidecar lists the source files (size, sha256)."""
    from pipeline.checkpoints import save_checkpoint

    use_cache(hub_cache)
    labels_of, fetch = HUB_FAMILIES[model_cfg.hub.family]
    try:
        labels, label_type = labels_of(model_cfg)
        label = resolve(labels, list(model_cfg.hub.checkpoints))[position]
        config, state, files = fetch(model_cfg, label)
    except UserError:
        raise
    except Exception as err:  # hub / network / format errors from huggingface_hub, transformers, torch
        reason = (str(err).strip().splitlines() or [""])[0][:200]
        raise UserError(f"fetching {model_cfg.hub.name} from the hub failed ({err.__class__.__name__}: {reason}); "
                        f"check model.hub.name and the network, or use a trained model (model=attn_only_2l)") from None
    sources = [record_or_verify(Path(p), hub_cache) for p in files]
    tokens = label * int(model_cfg.hub.tokens_per_step) if label_type == "step" else label  # final: 0 (unknown)
    save_checkpoint(out, state, config_kwargs(config), int(label), int(tokens), hub=model_cfg.hub.name,
                    label_type=label_type, index=int(list(model_cfg.hub.checkpoints)[position]), source_files=sources)
    return {"label": label, "tokens_seen": tokens, "files": sources}


def main():
    args, cfg = cli("Fetch one hub checkpoint into the cache and convert it.", out="checkpoint to write (.safetensors)",
                    position={"type": int, "help": "position in model.hub.checkpoints"})
    use_cache(cfg.hub_cache)  # before anything imports huggingface_hub (pipeline.kinds.language.tasks imports transformer_lens)
    from pipeline.kinds.language.tasks import check_tasks

    check_tasks(cfg, hub_tokenizer(cfg.model.tokenizer))  # the causal step's prompts, before any download
    fetched = fetch_checkpoint(cfg.model, args.position, args.out, cfg.hub_cache)
    print(f"{cfg.model.name}: checkpoint {fetched['label']} ({fetched['tokens_seen']} tokens) from "
          f"{len(fetched['files'])} cached file(s)", file=sys.stderr)


if __name__ == "__main__":
    run_cli(main)
