"""The thin command-line layer every step shares: its path options, then its config — a run's resolved
config.yaml and a model of it (what the Snakefile passes), or Hydra overrides (by hand)."""

from __future__ import annotations

import argparse
from pathlib import Path

from omegaconf import DictConfig

from pipeline.config import compose, load_run_config


def cli(description: str, **paths) -> tuple[argparse.Namespace, DictConfig]:
    """A step's CLI: required path options (`name=help` or `name=argparse kwargs`), then the config: a run's
    resolved config.yaml and a model of it (what the Snakefile passes), or Hydra overrides (by hand).

    Returns the parsed arguments and that model's resolved config."""
    parser = argparse.ArgumentParser(description=description)
    for name, spec in paths.items():
        spec = {"help": spec} if isinstance(spec, str) else spec
        parser.add_argument(f"--{name.replace('_', '-')}", **{"type": Path, "required": True, **spec})
    parser.add_argument("--run-config", type=Path, help="a run's resolved config.yaml (needs --model)")
    parser.add_argument("--model", help="the model of the run whose config to use")
    parser.add_argument("overrides", nargs="*", help="without --run-config: Hydra overrides, e.g. "
                                                     "model=attn_only_2l train.steps=100")
    args = parser.parse_args()
    if args.run_config:
        if not args.model or args.overrides:
            parser.error("--run-config takes --model and no overrides")
        return args, load_run_config(args.run_config, args.model)
    return args, compose([*args.overrides, *([f"model={args.model}"] if args.model else [])])


def spec_cli(description: str, spec: str, out: str) -> tuple[dict, Path, Path]:
    """The CLI of a step over several runs (a study's aggregation, a paper's pages): the spec the Snakefile wrote
    (what it reads), the results directory holding the runs, and where it writes."""
    from omegaconf import OmegaConf

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--spec", type=Path, required=True, help=spec)
    parser.add_argument("--results", type=Path, required=True, help="the results directory holding the runs")
    parser.add_argument("--out", type=Path, required=True, help=out)
    args = parser.parse_args()
    return OmegaConf.to_container(OmegaConf.load(args.spec)), args.results, args.out
