"""A tiny regression study (2 numbers of tasks x 2 seeds) through the real DAG: the same rules, loop, LLC,
study aggregation and figures as the language models; the transition table follows from the member tables,
and a rerun does nothing."""

import pandas as pd
import pytest
from conftest import snakemake

from pipeline.config import compose, resolve_run
from pipeline.outputs import (
    FIGURES,
    run_figures,
    run_tables,
    study_figure_names,
    study_tables,
)

pytestmark = pytest.mark.cost(150)  # worker-seconds in a full run: scheduled by weight

SWEEP = "sweep=[data.n_tasks=2,null,seed=0,1]"
OVERRIDES = "overrides=[+experiment=regression_tiny]"
MEMBER = compose(["+experiment=regression_tiny"])
MEMBER_OVERRIDES = "+experiment=regression_tiny,data.n_tasks=2,seed=0,run_name=null"  # as the study names it


@pytest.fixture(scope="module")
def tiny_regression_study(tmp_path_factory):
    """The study, then one member's own outputs (LLC, figures) asked for as an ordinary run: (workdir, study
    directory, member directories, that member's second snakemake process)."""
    workdir = tmp_path_factory.mktemp("regression_study")
    result = snakemake(workdir, OVERRIDES, config=SWEEP)
    assert result.returncode == 0, result.stderr[-3000:]
    results = workdir / "results"
    (study,) = [p for p in results.iterdir() if p.name.startswith("sweep-")]
    members = {p.name: p for p in results.iterdir() if p != study}
    member = snakemake(workdir, config=f"overrides=[{MEMBER_OVERRIDES}]")
    assert member.returncode == 0, member.stderr[-3000:]
    return workdir, study, members, member


def test_a_member_is_an_ordinary_run_with_every_table_and_figure(tiny_regression_study):
    """A study's target is its aggregate (with the members' LLC, whose bands it draws); the member's own figures
    are one snakemake away and reuse its training, scores and LLC."""
    _, _, members, member = tiny_regression_study
    assert len(members) == 4
    run = members[resolve_run(MEMBER_OVERRIDES.split(",")).name]
    tables, figures = run_tables([MEMBER]), run_figures([MEMBER])
    assert {"regression_eval", "probe_attention", "llc", "icl", "phase_window"} <= set(tables)
    assert not {"ablation", "patching"} & set(tables)  # language-model analyses are not asked of it
    assert {n for n in figures if FIGURES[n][0] == "regression_figures"} == {
        "regression_mse", "regression_deltas", "regression_probe", "regression_attention"}
    for table in set(tables) - {"integrity", "llc_stages"}:  # no duplicated checkpoints; no credible stage in 4
        assert len(pd.read_csv(run / "tables" / f"{table}.csv")), f"{table} is empty"
    for figure in figures:
        assert (run / "figures" / f"{figure}.png").stat().st_size > 0
    steps = pd.read_csv(run / "tables" / "regression_eval.csv").step.unique()
    assert set(pd.read_csv(run / "tables" / "llc.csv").step) == set(steps)  # the LLC on every checkpoint
    out = (member.stdout + member.stderr).splitlines()
    jobs = [line.split()[0] for line in out if len(line.split()) == 2 and line.split()[1].isdigit()]
    assert "plot_llc_figures" in jobs  # the study aggregated the members' LLC (llc_bands): reused, not recomputed
    assert not {"train_model", "score_checkpoints_regression", "estimate_llc"} & set(jobs)


def test_knowing_the_tasks_beats_the_gaussian_prior(tiny_regression_study):
    _, study, _, _ = tiny_regression_study
    evals = pd.read_csv(study / "tables" / "regression_eval.csv")
    finite = evals[(evals.position > 0) & (evals["data.n_tasks"] == 2)]
    pretrain = finite[finite.distribution == "pretrain"]
    assert (pretrain.dmmse_mse < pretrain.ridge_mse).all()  # knowing the 2 tasks beats the Gaussian prior


def test_transition_is_the_band_of_the_members_last_checkpoint(tiny_regression_study):
    """Recomputed here from the member tables: last checkpoint, the mean over positions (Raventos et al.'s
    scalar) and the last position, median/min/max over seeds."""
    _, study, members, _ = tiny_regression_study
    spec = pd.read_csv(study / "tables" / "icl.csv")[["run", "data.n_tasks", "seed"]].drop_duplicates()
    rows = []
    for _, member in spec.iterrows():
        evals = pd.read_csv(members[member.run] / "tables" / "regression_eval.csv")
        last = evals[evals.step == evals.step.max()]
        for distribution, by_position in last.groupby("distribution"):
            for measure in ("mse", "delta_ridge", "delta_dmmse"):
                for positions, value in (("mean", by_position[measure].mean()),
                                         ("last", by_position.sort_values("position")[measure].iloc[-1])):
                    rows.append({"data.n_tasks": member["data.n_tasks"], "distribution": distribution,
                                 "measure": measure, "positions": positions, "value": value})
    keys = ["data.n_tasks", "distribution", "measure", "positions"]
    expected = pd.DataFrame(rows).groupby(keys).value
    transition = pd.read_csv(study / "tables" / "transition.csv").set_index(keys)
    assert len(transition) == 2 * 2 * 3 * 2 and set(transition.n_members) == {2}
    for stat in ("median", "min", "max"):
        pd.testing.assert_series_equal(transition[stat].sort_index(), getattr(expected, stat)().sort_index(),
                                       check_names=False, rtol=1e-12)


def test_every_study_table_and_figure_is_written(tiny_regression_study):
    _, study, _, _ = tiny_regression_study
    for table in study_tables("regression"):
        assert len(pd.read_csv(study / "tables" / f"{table}.csv")), table
    assert "study_transition" in study_figure_names("regression")
    for figure in study_figure_names("regression"):
        assert (study / "figures" / f"{figure}.png").stat().st_size > 0


def test_rerun_does_nothing(tiny_regression_study):
    workdir, _, _, _ = tiny_regression_study
    result = snakemake(workdir, OVERRIDES, "-n", config=SWEEP)
    assert result.returncode == 0 and "Nothing to be done" in result.stdout + result.stderr
