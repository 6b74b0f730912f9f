"""Training-time interventions (`train.interventions`; Singh et al. 2024's clamping): a registry like the head
scores, one entry per kind of intervention.

An entry says what it does to the training twin's forward, to the HookedTransformer's forward (through a
permanent hook, so every analysis of the model sees what training saw) and to training itself, and checks its
spec against the model's shape at compose (torch-free: the schema calls `check`). The specs travel in the
checkpoint's config kwargs (its sidecar), so a clamped model is clamped wherever it is loaded; an empty list
leaves the config kwargs, and so the default run's bytes, as they were.

Spec keys: `kind`, and for `clamp_pattern` a `layer`, its `heads` and a fixed `pattern` (PATTERNS); for
`clamp_from` a `layer`, its `heads` and a reference `checkpoint` (a trained model's file, which must exist:
on every input the heads attend as that model's same heads do); for `freeze` the `params` (globs over
parameter names, e.g. `blocks.0.attn.*`) that stop training.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fnmatch import fnmatch
from functools import lru_cache
from pathlib import Path
from typing import Callable


@lru_cache(maxsize=8)  # built once per context length, not on every forward (never mutated)
def previous_token(n: int):
    """Each position attends to the one before it (position 0 to itself): the previous-token head, exact."""
    import torch

    pattern = torch.zeros(n, n)
    pattern[torch.arange(n), (torch.arange(n) - 1).clamp(min=0)] = 1.0
    return pattern


@lru_cache(maxsize=8)  # built once per context length, not on every forward (never mutated)
def first_token(n: int):
    """Every position attends to position 0 (BOS): a head that does nothing but read the first token."""
    import torch

    pattern = torch.zeros(n, n)
    pattern[:, 0] = 1.0
    return pattern


@lru_cache(maxsize=8)  # built once per context length, not on every forward (never mutated)
def uniform(n: int):
    """Each position attends uniformly to itself and every earlier position: the running mean."""
    import torch

    return torch.ones(n, n).tril() / torch.arange(1, n + 1)[:, None]


PATTERNS = {"previous_token": previous_token, "first_token": first_token, "uniform": uniform}


def parameter_names(n_layers: int, attn_only: bool, smeared_keys: bool = False) -> list[str]:
    """The trainable parameter names of a trained model (the twin's and the HookedTransformer's), torch-free
    for the schema; tests/test_interventions.py checks them against the twin."""
    attn = [f"attn.{m}_{x}" for x in "QKV" for m in "Wb"] + ["attn.W_O", "attn.b_O"] + (
        ["attn.smear_alpha"] if smeared_keys else [])
    block = ["ln1.w", "ln1.b", *attn] + ([] if attn_only else
                                        ["ln2.w", "ln2.b", "mlp.W_in", "mlp.b_in", "mlp.W_out", "mlp.b_out"])
    blocks = [f"blocks.{layer}.{name}" for layer in range(n_layers) for name in block]
    return ["embed.W_E", "pos_embed.W_pos", *blocks, "ln_final.w", "ln_final.b", "unembed.W_U", "unembed.b_U"]


def _check_clamp(spec: dict, arch: dict) -> str | None:
    layers = arch["n_layers"]
    if spec["layer"] >= layers:
        return f"layer {spec['layer']} does not exist (model.n_layers={layers}); choose 0-{layers - 1}"
    bad = [h for h in spec["heads"] if h >= arch["n_heads"]]
    if bad:
        return f"heads {bad} do not exist (model.n_heads={arch['n_heads']}); choose among 0-{arch['n_heads'] - 1}"
    return None


def _check_freeze(spec: dict, arch: dict) -> str | None:
    names = parameter_names(arch["n_layers"], arch["attn_only"], arch["smeared_keys"])
    unmatched = [glob for glob in spec["params"] if not any(fnmatch(name, glob) for name in names)]
    if unmatched:
        return f"params {unmatched} match no parameter of this model; use names like {names[2]} or globs: blocks.0.*"
    return None


def check_reference(spec: dict, reference: dict, arch: dict, path) -> str | None:
    """The reference model (its layers, heads and context) has the layer and heads, and a context as long."""
    error = _check_clamp(spec, reference)
    if error:
        return f"{error.split(' (')[0]} in the reference {path}; choose a layer and heads it has"
    if reference["n_ctx"] < arch["n_ctx"]:
        return f"reference {path} has n_ctx={reference['n_ctx']} < model.n_ctx={arch['n_ctx']}; use a reference as long"
    return _check_clamp(spec, arch)


def _check_reference(spec: dict, arch: dict) -> str | None:
    """A reference checkpoint that exists has a sidecar with the layer and heads (torch-free). One that does not
    exist yet is checked by the plan (pipeline.plan), which knows the runs that make checkpoints."""
    path = Path(spec["checkpoint"])
    if not path.is_file():
        return _check_clamp(spec, arch)
    try:
        config = json.loads(path.with_suffix(".json").read_text())["config"]
    except (OSError, ValueError, KeyError):
        return (f"checkpoint {path} has no readable sidecar {path.with_suffix('.json').name}; point at a checkpoint "
                f"trained here (weights and sidecar)")
    return check_reference(spec, {k: config[k] for k in ("n_layers", "n_heads", "n_ctx")}, arch, path)


def _fixed(build):
    """A clamp source for a fixed pattern: the same (T, T) matrix for every input."""
    return lambda tokens, n, heads: build(n)


def _reference(twin, layer: int):
    """A clamp source reading the reference model's own patterns at `layer` on the same input (no gradient)."""
    import torch

    def source(tokens, n, heads):
        with torch.no_grad():
            return twin.to(tokens.device).pattern(tokens, layer)[:, heads]
    return source


def _clamp_twin(twin, spec: dict, source):
    twin.clamps.setdefault(spec["layer"], []).append((list(spec["heads"]), source))


def _clamp_hooked(model, spec: dict, source):
    """A permanent hook on the layer's `hook_pattern` replacing the heads' patterns (out of place: softmax's
    backward reads its own output); the input tokens reach the source through a forward pre-hook on the embed."""
    from pipeline.hooks import get_act_name

    heads = list(spec["heads"])
    if not hasattr(model, "clamp_inputs"):  # the latest input, for sources that read it (clamp_from)
        model.clamp_inputs = {}
        model.embed.register_forward_pre_hook(lambda module, args: model.clamp_inputs.update(tokens=args[0]))
    seen = model.clamp_inputs

    def clamp(pattern, hook):
        clamped = pattern.clone()
        clamped[:, heads] = source(seen.get("tokens"), pattern.shape[-1], heads).to(pattern)
        return clamped

    model.hook_dict[get_act_name("pattern", spec["layer"])].add_hook(clamp, is_permanent=True)


def _source(spec: dict, references: dict | None):
    if spec["kind"] == "clamp_from":
        if not references or spec["checkpoint"] not in references:
            raise ValueError(f"clamp_from needs its reference model {spec['checkpoint']} loaded (references=...)")
        return _reference(references[spec["checkpoint"]], spec["layer"])
    return _fixed(PATTERNS[spec["pattern"]])


def freeze(model, globs):
    """Parameters whose names match any of the globs get no gradient: AdamW skips them, weight decay included."""
    for name, param in model.named_parameters():
        if any(fnmatch(name, glob) for glob in globs):
            param.requires_grad_(False)


@dataclass(frozen=True)
class Intervention:
    check: Callable[[dict, dict], str | None]  # (spec, architecture) -> a refusal naming the fix, or None
    describe: Callable[[dict], str]  # for captions and provenance
    twin: Callable | None = None  # (twin, spec, source): its effect on the training twin's forward
    hooked: Callable | None = None  # (HookedTransformer, spec, source): the same effect through hooks
    train: Callable | None = None  # (model being trained, spec): its effect on training alone
    reads: Callable[[dict], list[str]] = lambda spec: []  # files it reads: inputs of training, loaded with the model
    holds: Callable[[dict], list[str]] = lambda spec: []  # parameter-name globs it keeps out of training


INTERVENTIONS = {
    "clamp_pattern": Intervention(
        check=_check_clamp, twin=_clamp_twin, hooked=_clamp_hooked,
        describe=lambda s: f"L{s['layer']}H{','.join(map(str, s['heads']))} attention clamped to {s['pattern']}"),
    "clamp_from": Intervention(
        check=_check_reference, twin=_clamp_twin, hooked=_clamp_hooked, reads=lambda s: [s["checkpoint"]],
        describe=lambda s: (f"L{s['layer']}H{','.join(map(str, s['heads']))} attention clamped to that of the "
                            f"same heads of {s['checkpoint']}")),
    "freeze": Intervention(check=_check_freeze, train=lambda model, s: freeze(model, s["params"]),
                           holds=lambda s: list(s["params"]), describe=lambda s: f"{', '.join(s['params'])} frozen"),
}


def specs(train_cfg) -> list[dict]:
    """The run's interventions as plain dicts (JSON-safe, for the checkpoint's config kwargs); none when the
    train section has none (or, built by hand, no such key)."""
    from omegaconf import OmegaConf

    interventions = train_cfg.get("interventions")
    return OmegaConf.to_container(interventions) if interventions else []


def attach(config_kwargs: dict, train_cfg) -> dict:
    """The config kwargs, with the interventions when there are any (none: unchanged, bytes and all)."""
    interventions = specs(train_cfg)
    return {**config_kwargs, "interventions": interventions} if interventions else config_kwargs


def reads(interventions) -> list[str]:
    """The files the interventions read (clamp_from's reference checkpoints), in order, once each."""
    return list(dict.fromkeys(f for spec in interventions or () for f in INTERVENTIONS[spec["kind"]].reads(spec)))


def untrained(interventions, kind_frozen=()) -> list[str]:
    """Globs of the parameters a model never trained: those its kind holds at their init (kinds.Kind.frozen) and
    those its freeze interventions held. Whatever samples or perturbs "the trained model" (the LLC's chains, their
    head masks) must leave these alone: the checkpoint is no critical point along them."""
    return [*kind_frozen, *(glob for spec in interventions or () for glob in INTERVENTIONS[spec["kind"]].holds(spec))]


def trained_names(model, globs) -> list[str]:
    """The names of `model`'s parameters that match none of `globs` (pipeline.interventions.untrained)."""
    return [name for name, _ in model.named_parameters() if not any(fnmatch(name, glob) for glob in globs)]


def apply(model, interventions, side: str, references: dict | None = None):
    """Wire each intervention into `model` for `side`: 'twin', 'hooked' or 'train'; `references` holds the
    reference models (path -> training twin) that clamp_from reads."""
    for spec in interventions or ():
        effect = getattr(INTERVENTIONS[spec["kind"]], side)
        if effect is None:
            continue
        if side == "train":
            effect(model, spec)
        else:
            effect(model, spec, _source(spec, references))


def describe(interventions) -> str:
    """One phrase for captions: what was clamped or frozen during training ('' when nothing)."""
    return "; ".join(INTERVENTIONS[spec["kind"]].describe(spec) for spec in interventions or ())
