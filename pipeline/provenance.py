"""The run's provenance file: the resolved config of every model and its hash, package versions, the git
commit, the corpus and checkpoint hashes, and the sha256 of every table and figure, so any result file
can be traced (by its hash) to exactly what produced it. No timestamps: a rerun gives the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from pipeline.config import CONF_DIR
from pipeline.io import run_cli, sha256_file, write_json

PACKAGES = ["torch", "transformer-lens", "snakemake", "hydra-core", "omegaconf", "numpy", "pandas", "pyarrow",
            "scikit-learn", "tokenizers", "safetensors", "matplotlib", "einops", "circuitsvis"]


def git_state(repo: Path) -> dict:
    """Commit of the pipeline's checkout and whether tracked files differ from it."""
    def git(*args):
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30)

    head = git("rev-parse", "HEAD")
    if head.returncode:
        return {"commit": None, "note": "not a git checkout"}
    return {"commit": head.stdout.strip(), "dirty": bool(git("status", "--porcelain", "--untracked-files=no").stdout)}


def provenance(run_config: dict, data_manifests: list[dict], checkpoints: list[Path], outputs: list[Path],
               integrity_warnings: list[str]) -> dict:
    """Everything that determines the run's results, and the hash of each result. `run_config` is the
    run's resolved config.yaml (its overrides, run-level sections and each model's); `integrity_warnings` the
    checkpoint-integrity guard's rows (checkpoints with identical weights)."""
    configs = run_config["models"]
    canonical = json.dumps({"run": run_config["run"], "models": configs}, sort_keys=True)
    return {
        "overrides": run_config["overrides"],
        "config_sha256": hashlib.sha256(canonical.encode()).hexdigest(),
        "run_config": run_config["run"],
        "config": configs,
        "git": git_state(CONF_DIR.parent),
        "python": sys.version.split()[0],
        "packages": {name: metadata.version(name) for name in PACKAGES},
        "corpus": [{k: v for k, v in m.items() if k != "documents"} for m in data_manifests],  # any kind's manifest
        "checkpoints": {str(p): json.loads(p.with_suffix(".json").read_text()).get("sha256") or sha256_file(p)
                        for p in sorted(checkpoints)},
        "outputs": {str(p): sha256_file(p) for p in sorted(outputs)},
        "smear_gate": final_smear_gates(checkpoints),
        "integrity_warnings": integrity_warnings,
    }


def final_smear_gates(checkpoints: list[Path]) -> dict:
    """sigmoid(alpha) per layer and head of each smeared-key model's last checkpoint (Olsson's Argument 2)."""
    import torch
    from safetensors import safe_open

    gates = {}
    for path in sorted(checkpoints):  # sorted by name = by step within a model: the last one wins
        with safe_open(str(path), "pt") as weights:
            keys = [k for k in weights.keys() if k.endswith("attn.smear_alpha")]  # blocks.<layer>.attn...
            alphas = [weights.get_tensor(k) for k in sorted(keys, key=lambda k: int(k.split(".")[1]))]
        if alphas:
            gates[Path(path).parent.parent.name] = torch.sigmoid(torch.stack(alphas)).round(decimals=4).tolist()
    return gates


def main():
    parser = argparse.ArgumentParser(description="Write the run's provenance file.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--manifests", type=Path, nargs="+", required=True,
                        help="each tokenized corpus's manifest.json")
    parser.add_argument("--checkpoints", type=Path, nargs="+", required=True)
    parser.add_argument("--outputs", type=Path, nargs="+", required=True, help="tables and figures to hash")
    parser.add_argument("--run-config", type=Path, required=True, help="the run's resolved config.yaml")
    parser.add_argument("--integrity", type=Path, required=True, help="the run's tables/integrity.csv")
    args = parser.parse_args()
    record = provenance(OmegaConf.to_container(OmegaConf.load(args.run_config)),
                        [json.loads(p.read_text()) for p in args.manifests], args.checkpoints, args.outputs,
                        pd.read_csv(args.integrity).warning.tolist())
    write_json(args.out, record, sort_keys=True)


if __name__ == "__main__":
    run_cli(main)
