"""The hub model source and the pile data source, offline, against a local HF cache the test builds in the
exact layout huggingface_hub and TransformerLens read (tests/fakehub.py): fetch, verify, convert and
analyse; tampered files refused; a model that is not cached fails fast in one line."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import REPO, only_run
from fakehub import DUPLICATED, LABELS, MODEL_REPO, OFFLINE, build_cache, build_pythia, overrides
from safetensors.torch import load_file
from test_pipeline_e2e import FIGURES, TABLES

from pipeline.checkpoints import load_checkpoint
from pipeline.io import sha256_file

pytestmark = pytest.mark.cost(125)  # worker-seconds in a full run: scheduled by weight

PY = sys.executable


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    home = tmp_path_factory.mktemp("hf")
    return home, build_cache(home)


@pytest.fixture(scope="module")
def hub_run(cache, tmp_path_factory):
    home, _ = cache
    workdir = tmp_path_factory.mktemp("hubrun")
    config = "overrides=[" + ",".join(f"'{o}'" for o in overrides(home)) + "]"
    result = subprocess.run([PY, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores",
                             "2", "--config", config], capture_output=True, text=True, timeout=1200, env=OFFLINE)
    assert result.returncode == 0, result.stderr[-3000:]
    return only_run(workdir)


def test_hub_run_writes_the_same_tables_and_figures_as_the_default(hub_run):
    for table in set(TABLES) - {"integrity", "llc_smoothed", "llc_stages"}:  # duplicated revisions only (below);
        # the LLC curve needs 4 or more checkpoints, the hub model has fewer
        models = set(pd.read_csv(hub_run / "tables" / f"{table}.csv").model)
        assert models == (set() if table == "train_log" else {"attn_only_2l_hub"}), table  # nothing was trained
    for figure in FIGURES:
        assert (hub_run / "figures" / f"{figure}.png").stat().st_size > 5000
    heads = pd.read_csv(hub_run / "tables" / "head_scores.csv")
    assert set(heads.model) == {"attn_only_2l_hub"}
    assert sorted(heads.tokens_seen.unique()) == [LABELS[0], LABELS[2], LABELS[-1]]  # indices [0, 2, -1]


def test_fetched_weights_equal_the_cached_checkpoints_and_hashes_match(cache, hub_run):
    home, states = cache
    for position, label in enumerate([LABELS[0], LABELS[2], LABELS[-1]]):
        path = hub_run / "models" / "attn_only_2l_hub" / "checkpoints" / f"hub_{position:03d}.safetensors"
        loaded = load_file(str(path))
        written = {k: v for k, v in states[label].items() if not k.endswith(("attn.mask", "attn.IGNORE"))}
        assert loaded.keys() == written.keys()
        assert all(torch.equal(loaded[k], written[k]) for k in written)
        meta = json.loads(path.with_suffix(".json").read_text())
        assert meta["step"] == meta["tokens_seen"] == label and meta["label_type"] == "token"
        for source in meta["source_files"]:
            assert sha256_file(home / source["file"]) == source["sha256"]
            record = home / "pipeline_manifest" / (source["file"].replace("/", "_") + ".json")
            assert json.loads(record.read_text())["sha256"] == source["sha256"]
    manifest = json.loads((hub_run / "data" / "pipeline-test_tokenizer" / "manifest.json").read_text())
    assert manifest["tokenizer"] == "pipeline-test/tokenizer" and manifest["n_documents"] > 10


def fetch(home, out, *extra, env=OFFLINE, model="attn_only_2l_hub"):
    cmd = [PY, "-m", "pipeline.kinds.language.hub", "--out", str(out), "--position", "1",
           *[o for o in overrides(home) if not o.startswith("model=")], f"model={model}", *extra]
    start = time.time()
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    return result, time.time() - start


def one_line_error(result):
    out = (result.stdout + result.stderr).strip()
    assert result.returncode != 0 and "Traceback" not in out, out[-2000:]
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, out[-2000:]
    return errors[0]


def test_tampered_cached_checkpoint_is_refused(cache, hub_run, tmp_path):
    home, _ = cache
    pth = next((home / "hub").glob(f"models--{MODEL_REPO.replace('/', '--')}/snapshots/*/checkpoints/*_{LABELS[2]}.pth"))
    original = pth.read_bytes()
    try:
        pth.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        result, _ = fetch(home, tmp_path / "hub_001.safetensors")
        assert "does not match the sha256 in its manifest" in one_line_error(result)
        assert not list(tmp_path.iterdir())
    finally:
        pth.write_bytes(original)


@pytest.mark.parametrize("env", [OFFLINE, {**os.environ, "HF_HUB_OFFLINE": "0"}], ids=["offline", "no network"])
def test_model_not_in_the_cache_fails_fast_in_one_line(tmp_path, env):
    result, seconds = fetch(tmp_path / "empty", tmp_path / "out.safetensors", env=env, model="attn_only_3l_hub")
    error = one_line_error(result)
    assert "is not in the HF cache" in error and "model=attn_only_2l" in error
    assert seconds < 60 and not (tmp_path / "out.safetensors").exists()


def test_pythia_revision_is_fetched_and_converted_offline(tmp_path):
    """family `revisions`: TransformerLens converts the transformers-format revision; the converted
    checkpoint computes the same logits as the cached GPT-NeoX itself."""
    from transformers import GPTNeoXForCausalLM

    home = tmp_path / "hf"
    folder = build_pythia(home)
    out = tmp_path / "hub_000.safetensors"
    result = subprocess.run([PY, "-m", "pipeline.kinds.language.hub", "--out", str(out), "--position", "0", "model=pythia_70m",
                             f"hub_cache={home}", "model.hub.checkpoints=[10]"],  # label 10 of 154 = step 512
                            capture_output=True, text=True, timeout=300, env=OFFLINE)
    assert result.returncode == 0, result.stderr[-3000:]
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["step"] == 512 and meta["tokens_seen"] == 512 * 2097152 and meta["label_type"] == "step"
    assert {Path(f["file"]).name for f in meta["source_files"]} >= {"config.json", "model.safetensors"}
    tokens = torch.randint(0, 300, (2, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = load_checkpoint(out)(tokens)
        reference = GPTNeoXForCausalLM.from_pretrained(folder).eval()(tokens).logits
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("model", sorted(p.stem for p in (REPO / "conf" / "model").glob("*.yaml")
                                         if "family: revisions" in p.read_text()))
def test_shipped_pythia_and_stanford_checkpoint_indices_resolve(model):
    """Their label lists are TransformerLens's static ones, so the configured indices check offline."""
    from transformer_lens.loading_from_pretrained import get_checkpoint_labels

    from pipeline.config import compose
    from pipeline.kinds.language.hub import resolve

    cfg = compose([f"model={model}"]).model
    labels, label_type = get_checkpoint_labels(cfg.hub.name)
    steps = resolve(labels, list(cfg.hub.checkpoints))
    assert label_type == "step" and steps == sorted(steps) and steps[0] == 0 and steps[-1] == labels[-1]


def test_duplicated_revision_is_flagged_in_tables_provenance_and_figures(hub_run):
    """The fake cache's label DUPLICATED serves the final weights: one warning row, in provenance too, and
    its head scores equal the final checkpoint's (what made such scans silently wrong)."""
    rows = pd.read_csv(hub_run / "tables" / "integrity.csv")
    assert rows[["step", "identical_to_step", "identical_to_final"]].values.tolist() == [
        [DUPLICATED, LABELS[-1], True]]
    provenance = json.loads((hub_run / "provenance.json").read_text())
    assert provenance["integrity_warnings"] == [f"attn_only_2l_hub step {DUPLICATED} has the same weights as the "
                                                f"final checkpoint, step {LABELS[-1]}"]
    heads = pd.read_csv(hub_run / "tables" / "head_scores.csv").set_index(["score", "layer", "head"])
    assert (heads[heads.step == DUPLICATED].value == heads[heads.step == LABELS[-1]].value).all()


def test_duplicated_checkpoints_stop_the_run_when_set_to_error(cache, hub_run, tmp_path):
    home, _ = cache
    checkpoints = sorted((hub_run / "models" / "attn_only_2l_hub" / "checkpoints").glob("*.safetensors"))
    result = subprocess.run([PY, "-m", "pipeline.integrity", *overrides(home), "analysis.duplicate_checkpoints=error",
                             "--out", str(tmp_path / "integrity.parquet"), "--checkpoints", *map(str, checkpoints)],
                            capture_output=True, text=True, timeout=120, env=OFFLINE)
    assert f"step {DUPLICATED} has the same weights as the final checkpoint" in one_line_error(result)
    assert not (tmp_path / "integrity.parquet").exists()


def test_neel_labels_are_tokens_even_when_the_last_is_below_1e9(tmp_path):
    """TransformerLens calls a NeelNanda label list ending at <= 1e9 'steps'; they are tokens seen, so the
    fetch needs no tokens_per_step and records tokens_seen = label."""
    home = tmp_path / "hf"
    build_cache(home)
    for pth in (home / "hub").glob(f"models--*/snapshots/*/checkpoints/*_{LABELS[-1]}.pth"):
        pth.unlink()
    out = tmp_path / "hub_001.safetensors"
    result, _ = fetch(home, out, "model.hub.checkpoints=[0,-1]")
    assert result.returncode == 0, result.stderr[-2000:]
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["step"] == meta["tokens_seen"] == LABELS[-2] and meta["label_type"] == "token"
