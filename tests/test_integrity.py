"""The checkpoint-integrity guard on hand-built sidecars: which checkpoints are flagged, against what; and each
checkpoint hashed once per analysis job."""

import pytest
import torch

import pipeline.checkpoints as checkpoints
from pipeline.integrity import duplicate_checkpoints
from pipeline.io import StepCache, UserError, sha256_file
from pipeline.loop import each_checkpoint
from pipeline.model import hooked_transformer, trainable_state_dict


def meta(step, sha):
    return {"step": step, "tokens_seen": 10 * step, "sha256": sha}


def test_early_labels_serving_the_final_weights_are_flagged_against_the_final():
    rows = duplicate_checkpoints([meta(300, "f"), meta(0, "a"), meta(100, "f"), meta(200, "b"), meta(50, "c")], "m")
    assert rows[["step", "tokens_seen", "identical_to_step", "identical_to_final"]].values.tolist() == [
        [100, 1000, 300, True]]
    assert rows.warning[0] == "m step 100 has the same weights as the final checkpoint, step 300"


def test_other_duplicates_are_flagged_against_the_earliest_and_distinct_checkpoints_pass():
    rows = duplicate_checkpoints([meta(0, "a"), meta(10, "b"), meta(20, "b"), meta(30, "b"), meta(40, "c")], "m")
    assert rows[["step", "identical_to_step", "identical_to_final"]].values.tolist() == [
        [20, 10, False], [30, 10, False]]
    assert duplicate_checkpoints([meta(0, "a"), meta(10, "b")], "m").empty


def test_an_analysis_job_hashes_each_checkpoint_once_and_still_refuses_a_changed_one(tmp_path, monkeypatch):
    """The loop's verification, the step cache's key and the weights' load used to hash every checkpoint three
    times (seconds each for a 300-MB hub checkpoint): now once per job, and a checkpoint rewritten after its
    first check is hashed again and refused."""
    kwargs = {"n_layers": 1, "d_model": 16, "n_heads": 2, "d_head": 8, "n_ctx": 8, "d_vocab": 11,
              "attn_only": True, "normalization_type": None, "positional_embedding_type": "standard"}
    paths = []
    for step in (1, 2, 3):
        state = trainable_state_dict(hooked_transformer(kwargs, seed=step).state_dict())
        paths.append(tmp_path / f"step_{step:06d}.safetensors")
        checkpoints.save_checkpoint(paths[-1], state, kwargs, step=step, tokens_seen=step)
    hashed = []
    monkeypatch.setattr(checkpoints, "sha256_file", lambda path: hashed.append(path) or sha256_file(path))
    each_checkpoint(paths, lambda model, meta, shared: {}, StepCache(tmp_path / "cache", "key"))
    assert sorted(hashed) == paths
    torch.save({}, paths[1])  # altered after the job's check: hashed again, and refused
    with pytest.raises(UserError, match="does not match the sha256"):
        checkpoints.verify_checkpoint(paths[1])
