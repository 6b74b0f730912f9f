"""The paper target on the tiny experiments (conf/paper/tiny.yaml): one run of each kind and a tiny study, then the
paper's pages — every figure and table of its results page produced, every number on the page read from a table
the test reads too, the manifest true to the files, and a rerun that does nothing."""

import functools
import io
import json
import re
import shutil
from hashlib import sha256

import pandas as pd
import pytest
from conftest import snakemake

pytestmark = pytest.mark.cost(200)
PAPER = "paper=tiny"


@pytest.fixture(scope="module")
def paper(tiny_run, tmp_path_factory):
    """The tiny paper in a copy of the shared tiny run's directory (its Snakemake records too): the paper's
    language run is that run (conf/paper/tiny.yaml gives its overrides), reused, not rebuilt."""
    workdir = tmp_path_factory.mktemp("paper") / "work"
    shutil.copytree(tiny_run[0], workdir, symlinks=True)
    result = snakemake(workdir, config=PAPER, timeout=3600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not re.search(r"output: results/tiny/", result.stdout + result.stderr)  # the tiny run, reused
    return workdir, workdir / "results" / "paper" / "tiny"


def numbers(text: str) -> list[str]:
    """The numbers a page shows (in its tables' cells), as written."""
    return [cell.strip() for line in text.splitlines() if line.startswith("|") and not line.startswith("|---")
            for cell in line.strip("|").split("|") if re.fullmatch(r"\s*-?\d[\d.e+-]*\s*", cell)]


def test_every_figure_and_table_of_the_page_is_produced(paper):
    workdir, out = paper
    page = (out / "results.md").read_text()
    figures = re.findall(r"\]\((figures/[^)]+)\)", page)
    assert figures == ["figures/kinds.png", *(f"figures/{name}.png" for name in ("prefix_matching", "regression_mse",
                                                                                 "markov_strategies", "clamping_icl"))]
    assert all((out / f).stat().st_size > 10_000 for f in figures)
    tables = set(re.findall(r"`([a-z_]+\.csv)`", page))
    assert {"phase_window.csv", "llc_stages.csv", "onsets.csv", "stage_recurrence.csv", "cost_clamping_tiny.csv"} <= tables
    manifest = json.loads((out / "manifest.json").read_text())
    assert list(manifest["sections"]) == ["language_run", "regression_run", "markov_run", "clamping_tiny", "kinds"]
    listed = {name: digest for entry in manifest["sections"].values() for name, digest in entry["files"].items()}
    assert set(figures) | {f"sections/{key}.md" for key in manifest["sections"]} <= set(listed)
    for name, digest in {**listed, **manifest["index"]["files"]}.items():
        assert digest == sha256((out / name).read_bytes()).hexdigest()
    for entry in manifest["sections"].values():
        assert re.fullmatch(r"[0-9a-f]{40}", entry["commit"] or "0" * 40) and len(entry["identity"]) == 16
    members = manifest["sections"]["clamping_tiny"]["members"]  # two arms, one seed: runs that trained, named on the page
    assert len(members) == 2 and all((workdir / "results" / m / "tables" / "train_log.csv").is_file() for m in members)
    assert all(f"`{m}`" in (out / "sections" / "clamping_tiny.md").read_text() for m in members)


def test_publishing_keeps_the_sections_made_elsewhere(paper, tmp_path):
    """Publishing a paper's sections into docs replaces those sections and keeps the others with the commit that
    made them: a page built up over sessions, true to its manifest."""
    from pipeline.paper import publish

    workdir, out = paper
    docs = tmp_path / "docs"
    publish(out, docs)
    earlier = json.loads((docs / "sections" / "markov_run.json").read_text()) | {"commit": "e" * 40}
    (docs / "sections" / "markov_run.json").write_text(json.dumps(earlier))
    partial = tmp_path / "partial"
    shutil.copytree(out, partial)
    (partial / "sections" / "markov_run.json").unlink()
    publish(partial, docs)
    manifest = json.loads((docs / "manifest.json").read_text())
    assert manifest["sections"]["markov_run"]["commit"] == "e" * 40
    assert manifest["sections"]["language_run"]["commit"] == json.loads((out / "manifest.json").read_text())[
        "sections"]["language_run"]["commit"]
    for entry in [*manifest["sections"].values(), manifest["index"]]:
        for name, digest in entry["files"].items():
            assert digest == sha256((docs / name).read_bytes()).hexdigest()
    page = (docs / "results.md").read_text()
    assert f"`{'e' * 40}`" in page and page.count("\n## ") == 5  # every section's page, one made elsewhere


def test_every_number_on_the_page_comes_from_a_table(paper):
    """Each number in the page's tables is a value of the run or study tables it names, to 4 significant digits (an
    integer whole)."""
    workdir, out = paper
    page = (out / "results.md").read_text()
    written = numbers(page)
    assert len(written) > 15
    known = set()
    for table in [*(workdir / "results").glob("*/tables/*.csv"), *(out / "tables").glob("*.csv")]:
        values = pd.read_csv(table).select_dtypes("number").to_numpy().ravel()
        known |= {f"{v:.4g}" for v in values if v == v} | {str(int(v)) for v in values if v == v and v == int(v)}
    assert [n for n in written if n not in known] == []


def test_a_rerun_of_the_paper_does_nothing(paper):
    workdir, _ = paper
    result = snakemake(workdir, "-n", config=PAPER, timeout=600)
    assert result.returncode == 0 and "Nothing to be done" in result.stdout + result.stderr


def test_the_figure_across_kinds_is_in_the_report(paper):
    workdir, _ = paper
    result = snakemake(workdir, "--report", str(workdir / "report.html"), config=PAPER, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    html = (workdir / "report.html").read_text(errors="ignore")
    assert "kinds.png" in html and "The phase change across subject kinds" in html


@functools.cache
def main_spec() -> dict:
    """What the main paper's sections read, as the Snakefile plans it today."""
    from conftest import REPO

    from pipeline.dag import Dag
    from pipeline.paper_plan import PaperPlan
    from pipeline.plan import plan_paper

    paper, runs = plan_paper("main")
    return PaperPlan(Dag(runs, REPO / "results", paper.studies, list(paper.runs.values())), paper).spec


def test_the_published_pages_are_the_paper_targets_output():
    """docs/paper/ (the main paper, published a section at a time): every file matches its manifest's sha256, each
    section's config identity is the one the paper plans today (a changed config shows its section stale), and every
    figure the README and the docs show is there."""
    from conftest import REPO

    docs = REPO / "docs" / "paper"
    manifest = json.loads((docs / "manifest.json").read_text())
    for entry in [*manifest["sections"].values(), manifest["index"]]:
        for name, digest in entry["files"].items():
            assert digest == sha256((docs / name).read_bytes()).hexdigest(), name
    spec = main_spec()
    assert {key: entry["identity"] for key, entry in manifest["sections"].items()} == {
        key: spec["sections"][key]["identity"] for key in manifest["sections"]}
    for page in [REPO / "README.md", *(REPO / "docs").glob("*.md"), docs / "results.md"]:
        for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page.read_text()):
            assert (page.parent / link).is_file(), f"{page.name}: {link}"


def test_the_bands_beside_a_run_are_its_own_models_in_the_study():
    """The figure across kinds draws beside each run the study's variants that are that run's models: by model, and
    by the value of every other swept key (M = inf is a null, which a study table holds as inf)."""
    from pipeline.paper_figure import matches

    bands = main_spec()["sections"]["kinds"]["bands"]
    default_models = [{"model": "attn_only_1l"}, {"model": "attn_only_2l"}]
    assert bands == {"language_run": {"study": "seeds", "variants": default_models},
                     "regression_run": {"study": "raventos",
                                        "variants": [{"model": "regression_l2h4", "data.n_tasks": float("inf")}]}}
    tasks = pd.read_csv(io.StringIO("data.n_tasks\n4.0\n64.0\n1024.0\ninf\n"))["data.n_tasks"]  # as a study writes it
    assert matches(tasks, float("inf")).tolist() == [False, False, False, True]
    assert matches(tasks, 64).tolist() == [False, True, False, False]
    assert matches(pd.Series(["attn_only_1l", "attn_only_2l"]), "attn_only_2l").tolist() == [False, True]


def test_a_per_checkpoint_study_table_shows_each_variants_last_checkpoint():
    """Variants that stop at different steps each show their own last rows, every strategy of them (the Markov
    study's strategy bands: a row per checkpoint, variant and strategy)."""
    from pipeline.paper import last_checkpoint

    table = pd.DataFrame({"n_states": [3, 3, 3, 3, 5, 5, 5], "step": [5, 10, 10, 10, 5, 5, 8],
                          "strategy": ["bigram", "bigram", "unigram", "uniform", "bigram", "unigram", "bigram"]})
    shown = last_checkpoint(table, ["n_states"])
    assert shown[["n_states", "step", "strategy"]].values.tolist() == [
        [3, 10, "bigram"], [3, 10, "unigram"], [3, 10, "uniform"], [5, 8, "bigram"]]


def test_job_timings_reads_benchmark_files_and_an_unbuilt_run_gives_a_string_job_column(tmp_path):
    """The onsuccess table prefixes each job with its run: a run with no benchmark files yet must not crash it."""
    from pipeline.paper_tables import job_timings

    assert (job_timings(tmp_path).job + "/x").tolist() == []
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "train_a.tsv").write_text("s\th:m:s\tmax_rss\tcpu_time\n12.5\t0:00:12\t300.0\t20.25\n")
    row = job_timings(tmp_path).iloc[0]
    assert (row.job, row.s, row.cpu_s, row.max_rss) == ("train_a", 12.5, 20.25, 300.0)
