"""A tiny study (2 seeds x 2 models) through the real DAG: member runs side by side, aggregated tables whose
rows and bands follow from the member tables, one joint PCA, the study figures, and reruns that redo only
what changed."""

import numpy as np
import pandas as pd
import pytest
from conftest import snakemake
from sklearn.decomposition import PCA

from pipeline.outputs import study_figure_names, study_tables
from pipeline.study import joint_pca, onsets

pytestmark = pytest.mark.cost(110)  # worker-seconds in a full run: scheduled by weight

STUDY_TABLES, STUDY_FIGURES = study_tables("language", llc=True), study_figure_names("language", llc=True)
SWEEP = "sweep=[seed=0,1]"
OVERRIDES = "overrides=[+experiment=tiny,model=[attn_only_1l,attn_only_2l_smeared]]"


def run_study(workdir, *args, sweep=SWEEP):
    return snakemake(workdir, OVERRIDES, *args, config=sweep)  # --config SWEEP OVERRIDES ARGS


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("study")
    result = run_study(workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    results = workdir / "results"
    (study,) = [p for p in results.iterdir() if p.name.startswith("sweep-")]
    tables = {name: pd.read_csv(study / "tables" / f"{name}.csv") for name in STUDY_TABLES}
    return workdir, study, tables


def test_every_member_is_an_ordinary_run_with_its_rows_in_the_study_tables(tiny_study):
    workdir, _, tables = tiny_study
    icl = tables["icl"]
    assert icl.groupby(["seed", "model"]).size().to_dict() == {
        (s, m): 5 for s in (0, 1) for m in ("attn_only_1l", "attn_only_2l_smeared")}
    for run, rows in icl.groupby("run"):
        member = pd.read_csv(workdir / "results" / run / "tables" / "icl.csv")
        assert (workdir / "results" / run / "config.yaml").is_file()
        pd.testing.assert_frame_equal(rows.drop(columns=["run", "seed"]).reset_index(drop=True), member)
    assert tables["phase_window"].groupby("seed").size().to_dict() == {0: 2, 1: 2}


def test_the_llc_band_is_over_the_member_estimates(tiny_study):
    """Every member has the LLC (the tiny recipe's): its band is the median, min and max of the members'
    llc.csv per checkpoint, and the stages table counts the members of each model."""
    workdir, _, tables = tiny_study
    llc = pd.concat([pd.read_csv(workdir / "results" / run / "tables" / "llc.csv").assign(run=run)
                     for run in tables["icl"].run.unique()]).pivot_table("llc_mean", ["model", "step"], "run")
    bands = tables["llc_bands"].set_index(["model", "step"]).loc[llc.index]
    np.testing.assert_allclose(bands["median"], llc.median(axis=1))
    np.testing.assert_allclose(bands[["min", "max"]].to_numpy(), np.c_[llc.min(axis=1), llc.max(axis=1)])
    assert (tables["stage_recurrence"].n_members == 2).all()


def test_bands_are_median_min_max_of_the_member_tables(tiny_study):
    workdir, _, tables = tiny_study
    best = []
    for run in tables["icl"].run.unique():
        heads = pd.read_csv(workdir / "results" / run / "tables" / "head_scores.csv")
        best.append(heads[heads.score == "prefix_matching"].groupby(["model", "step"]).value.max())
    best = pd.concat(best, axis=1)
    bands = tables["best_score_bands"].set_index(["model", "step"]).loc[best.index]
    np.testing.assert_allclose(bands["median"], best.median(axis=1))
    np.testing.assert_allclose(bands["min"], best.min(axis=1))
    np.testing.assert_allclose(bands["max"], best.max(axis=1))
    assert (bands.n_members == 2).all()
    icl = tables["icl"].pivot_table(index=["model", "step"], columns="seed", values="icl_score")
    icl_bands = tables["icl_bands"].set_index(["model", "step"]).loc[icl.index]
    np.testing.assert_allclose(icl_bands["max"] - icl_bands["min"], (icl[0] - icl[1]).abs(), rtol=1e-6)


def test_joint_pca_is_one_fit_over_every_member_and_model(tiny_study):
    workdir, _, tables = tiny_study
    pca = tables["joint_pca"]
    assert pca.groupby(["seed", "model"]).size().to_dict() == {
        (s, m): 4 for s in (0, 1) for m in ("attn_only_1l", "attn_only_2l_smeared")}  # step 0 left out
    assert pca.pc1_explained.nunique() == 1 and pca.pc2_explained.nunique() == 1
    # the reference: sklearn's PCA on the matrix stacked here, one row per (member, model, trained checkpoint),
    # the losses at one position per eval sequence drawn as the study draws them (seed 0)
    rows = []
    for run, model in pca[["run", "model"]].drop_duplicates().itertuples(index=False):
        cached = np.load(workdir / "results" / run / "models" / model / "token_losses.npz")
        losses = cached["losses"][cached["tokens_seen"] > 0]
        positions = np.random.default_rng(0).integers(0, losses.shape[2], size=losses.shape[1])
        rows.append(losses[:, np.arange(losses.shape[1]), positions])
    reference = PCA(n_components=2).fit(np.concatenate(rows))
    coords = reference.transform(np.concatenate(rows))
    np.testing.assert_allclose(np.abs(coords[:, 0]), pca.pc1.abs(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(reference.explained_variance_ratio_, [pca.pc1_explained[0], pca.pc2_explained[0]],
                               rtol=1e-5)


def test_every_study_figure_is_drawn_and_reported_with_its_caption(tiny_study):
    workdir, study, _ = tiny_study
    for name in STUDY_FIGURES:
        for ext in ["png", "pdf"]:
            assert (study / "figures" / f"{name}.{ext}").stat().st_size > 5000
    result = run_study(workdir, "--report", "study_report.html")
    assert result.returncode == 0, result.stderr[-2000:]
    report = (workdir / "study_report.html").read_text()
    assert all(f"{name}.png" in report for name in STUDY_FIGURES)
    assert report.count("Produced by rule") == len(STUDY_FIGURES)


def test_rerun_does_nothing_and_a_new_seed_trains_only_its_member(tiny_study):
    workdir, _, _ = tiny_study
    result = run_study(workdir, "-n")
    assert result.returncode == 0 and "Nothing to be done" in result.stdout + result.stderr
    result = run_study(workdir, "-n", sweep="sweep=[seed=0,1,2]")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-2000:]
    jobs = dict(line.split()[:2] for line in out.splitlines() if line.split()[:1] in (["train_model"],
                                                                                      ["score_checkpoints"]))
    # the new member's two models only, each trained as one job (the tiny experiment does not split training)
    assert jobs == {"train_model": "2", "score_checkpoints": "2"}


def test_joint_pca_on_known_losses():
    """Two models whose per-token losses differ along one direction: PC1 is that direction (all the
    variance), separates them, and the untrained step 0 is left out of the fit."""
    rng = np.random.default_rng(0)
    direction = rng.normal(size=(8, 5))
    base = np.full((8, 5), 3.0)

    def losses(offset):
        steps = np.array([0, 10, 20])
        stack = np.stack([np.full((8, 5), 9.0), base + offset * direction, base + 2 * offset * direction])
        return {"losses": stack, "steps": steps, "tokens_seen": steps * 100}

    table = joint_pca({("run", "a"): losses(1.0), ("run", "b"): losses(-1.0)}, 2, seed=0)
    assert list(table.step) == [10, 20, 10, 20]
    assert table.pc1_explained.iloc[0] > 0.999
    a, b = table[table.model == "a"].pc1.to_numpy(), table[table.model == "b"].pc1.to_numpy()
    np.testing.assert_allclose(a, -b, atol=1e-9)
    np.testing.assert_allclose(abs(a[1]), 2 * abs(a[0]))


def test_every_registered_figure_has_a_report_caption():
    from pipeline.outputs import FIGURES, HTML_FIGURES, STUDY_FIGURES, caption

    names = [*FIGURES, *STUDY_FIGURES, *[f"{name}_html" for name in HTML_FIGURES]]
    assert [n for n in names if not caption(n).is_file()] == []


def test_onsets_summarise_the_members_with_a_window():
    """Hand-made windows of one variant, two of three members with a window: their start, end and ICL change as
    median/min/max (the member without one counts only in n_members)."""
    windows = pd.DataFrame({"model": ["m"] * 3, "arm": ["a"] * 3, "has_window": [True, False, True],
                            "start_tokens": [100.0, np.nan, 300.0], "end_tokens": [500.0, np.nan, 900.0],
                            "start_step": [1.0, np.nan, 3.0], "end_step": [5.0, np.nan, 9.0],
                            "icl_change": [-0.2, np.nan, -0.4]})
    (row,) = onsets(windows, ["model", "arm"]).to_dict("records")
    assert (row["n_members"], row["n_with_window"]) == (3, 2)
    assert (row["start_tokens_median"], row["start_tokens_min"], row["end_tokens_max"]) == (200, 100, 900)
    assert row["icl_change_median"] == pytest.approx(-0.3) and row["icl_change_min"] == -0.4
    assert row["onset_spread_tokens"] == 200
