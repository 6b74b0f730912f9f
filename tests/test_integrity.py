"""The checkpoint-integrity guard on hand-built sidecars: which checkpoints are flagged, against what."""

from pipeline.integrity import duplicate_checkpoints


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
