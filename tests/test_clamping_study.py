"""A tiny study with arms through the real DAG (conf/study/clamping_tiny.yaml): each arm a member run, the
study tables carrying the arm as a column, and the study report's captions naming each arm's interventions."""

import pandas as pd
import pytest
from conftest import snakemake

from pipeline.outputs import study_figure_names

pytestmark = pytest.mark.cost(55)  # worker-seconds in a full run: scheduled by weight

CONFIG = "study=clamping_tiny"


@pytest.fixture(scope="module")
def clamping_study(tmp_path_factory):
    """(workdir, study directory), the study run and then its report."""
    workdir = tmp_path_factory.mktemp("clamping_study")
    for args in ((), ("--report", "report.html")):
        result = snakemake(workdir, *args, config=CONFIG)
        assert result.returncode == 0, result.stderr[-3000:]
    return workdir, workdir / "results" / "clamping_tiny"


def test_each_arm_is_a_member_and_a_variant_of_the_study_tables(clamping_study):
    """The stacked head scores say which arm a row came from: only the clamped arm's L0H0 attends to the
    previous token at every checkpoint (step 0 included); the ICL bands of a one-seed arm are its member's."""
    workdir, study = clamping_study
    heads = pd.read_csv(study / "tables" / "head_scores.csv")
    assert set(heads.arm) == {"none", "previous_token_l0"} and heads.groupby("arm").run.nunique().eq(1).all()
    l0h0 = heads.query("score == 'previous_token' and layer == 0 and head == 0").set_index(["arm", "step"]).value
    assert (l0h0["previous_token_l0"] > 0.99).all() and l0h0["previous_token_l0"].size == 5
    assert l0h0["none"].loc[0] < 0.5
    icl, bands = (pd.read_csv(study / "tables" / f"{t}.csv") for t in ("icl", "icl_bands"))
    merged = bands.merge(icl, on=["arm", "model", "step"])
    assert len(merged) == len(icl) == 10 and (merged["median"] == merged.icl_score).all()
    onsets = pd.read_csv(study / "tables" / "onsets.csv")
    assert sorted(onsets.arm) == ["none", "previous_token_l0"] and (onsets.n_members == 1).all()


def test_the_study_report_names_each_arms_interventions(clamping_study):
    workdir, study = clamping_study
    report = (workdir / "report.html").read_text()
    figures = study_figure_names("language", llc=True)  # its members have the LLC: study_llc too
    assert all((study / "figures" / f"{name}.png").stat().st_size > 5000 for name in figures)
    caption = ("Trained with interventions, which every analysis of the model keeps: "
               "arm=previous_token_l0: attn_only_2l: L0H0 attention clamped to previous_token.")
    assert report.count(caption) == len(figures) and "arm=none" not in report
