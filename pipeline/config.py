"""Compose the Hydra config (conf/ is the single source of truth) for the Snakefile and the CLIs."""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from pipeline.io import UserError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
MODEL_SOURCES = ["trained", "hub"]  # where a model's checkpoints come from; each has its rule in rules/


def parse_overrides(overrides) -> list[str]:
    """Accept a list, a '[a=1, b=[x,y]]' string or a single 'a=1' string from `--config overrides=`."""
    if overrides is None:
        return []
    if isinstance(overrides, str):
        text = overrides.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        parts, depth, current = [], 0, ""
        for char in text:  # split on commas outside brackets
            depth += {"[": 1, "]": -1}.get(char, 0)
            if char == "," and depth == 0:
                parts.append(current)
                current = ""
            else:
                current += char
        overrides = [p.strip() for p in [*parts, current] if p.strip()]
    return [str(o) for o in overrides]


def compose(overrides=()) -> DictConfig:
    """The root config with Hydra `overrides` applied and every interpolation resolved."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = hydra_compose("config", overrides=list(overrides))
        OmegaConf.resolve(cfg)
    except (HydraException, OmegaConfBaseException) as err:
        lines = []
        for line in map(str.strip, str(err).splitlines()):
            if line.startswith(("Config search path", "full_key", "object_type")):
                break
            lines.append(line)
        reason = " ".join(filter(None, lines))
        raise UserError(f"bad config override {list(overrides)}: {reason} "
                        f"(overrides look like key=value or group=option; groups live in {CONF_DIR})") from None
    _check_types(cfg, overrides)
    return cfg


GROUPS = ("data", "model", "train", "analysis", "figures", "+experiment", "experiment")


def _leaves(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _check_types(cfg: DictConfig, overrides):
    """Refuse a value override whose type differs from the YAML default's (e.g. train.steps=many)."""
    choices = [o for o in overrides if o.split("=", 1)[0] in GROUPS]
    if len(choices) == len(overrides):
        return
    defaults = dict(_leaves(OmegaConf.to_container(compose(choices))))
    for key, value in _leaves(OmegaConf.to_container(cfg)):
        default = defaults.get(key)
        if default is None or value is None or isinstance(value, type(default)):
            continue
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            continue
        raise UserError(f"{key} must be {type(default).__name__} like its default {default!r}, got {value!r}; "
                        f"fix the override")


def split_model_override(overrides: list[str]) -> tuple[list[str] | None, list[str]]:
    """Pull a `model=NAME` override out: it selects the run's models instead of a single group option."""
    models, rest = None, []
    for o in overrides:
        if o.startswith("model="):
            models = [m for m in o.split("=", 1)[1].strip("[]").split(",") if m]
        else:
            rest.append(o)
    return models, rest


def model_configs(overrides) -> dict[str, DictConfig]:
    """One fully composed config per model of the run, keyed by model name."""
    models, rest = split_model_override(parse_overrides(overrides))
    models = models or list(compose(rest).models)
    known = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml") if not p.stem.startswith("_"))
    for m in models:
        if m not in known:
            raise UserError(f"unknown model '{m}'; choose one of {known} (conf/model/<name>.yaml)")
    configs = {m: compose([f"model={m}", *rest]) for m in models}
    for m, cfg in configs.items():
        if cfg.model.source not in MODEL_SOURCES:
            raise UserError(f"model {m} has source '{cfg.model.source}', which this pipeline cannot produce; "
                            f"model sources: {MODEL_SOURCES}")
    return configs


def run_name(cfg: DictConfig, overrides) -> str:
    """Run directory name: config `run_name`, else 'default' or a readable slug + hash of the overrides."""
    if cfg.run_name:
        return str(cfg.run_name)
    overrides = parse_overrides(overrides)
    if not overrides:
        return "default"
    text = ",".join(overrides)
    slug = re.sub(r"[^A-Za-z0-9_.=-]+", "_", text)[:40].strip("_")
    return f"{slug}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def section(cfg: DictConfig, *keys: str) -> str:
    """Canonical JSON of some config sections: a Snakemake param, so a change reruns exactly that rule."""
    def plain(value):
        return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value

    return json.dumps({k: plain(OmegaConf.select(cfg, k)) for k in keys}, sort_keys=True)


def cli(description: str, **paths) -> tuple[argparse.Namespace, DictConfig]:
    """A step's CLI: required path options (`name=help` or `name=argparse kwargs`) then Hydra overrides.

    Returns the parsed arguments and the config composed from the overrides."""
    parser = argparse.ArgumentParser(description=description)
    for name, spec in paths.items():
        spec = {"help": spec} if isinstance(spec, str) else spec
        parser.add_argument(f"--{name.replace('_', '-')}", **{"type": Path, "required": True, **spec})
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=attn_only_2l train.steps=100")
    args = parser.parse_args()
    return args, compose(args.overrides)
