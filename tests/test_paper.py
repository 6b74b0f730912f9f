"""The paper target on the tiny experiments (conf/paper/tiny.yaml): one run of each kind and a tiny study, then the
paper's pages — every figure and table of its results page produced, every number on the page read from a table
the test reads too, the manifest true to the files, and a rerun that does nothing."""

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
    assert figures == ["figures/kinds.png"] and all((out / f).stat().st_size > 10_000 for f in figures)
    tables = set(re.findall(r"`([a-z_]+\.csv)`", page))
    assert {"phase_window.csv", "llc_stages.csv", "onsets.csv", "stage_recurrence.csv"} <= tables
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["files"]) == {"results.md", "tables/cost.csv", "figures/kinds.png", *(f"figures/{name}.png" for name in
                                      ("prefix_matching", "regression_mse", "markov_strategies", "clamping_icl"))}
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == sha256((out / name).read_bytes()).hexdigest() and len(entry["identity"]) == 16
    assert re.fullmatch(r"[0-9a-f]{40}", manifest["commit"] or "0" * 40)


def test_every_number_on_the_page_comes_from_a_table(paper):
    """Each number in the page's tables is a value of the run or study tables it names, to 4 significant digits."""
    workdir, out = paper
    page = (out / "results.md").read_text()
    written = numbers(page)
    assert len(written) > 15
    known = set()
    for table in [*(workdir / "results").glob("*/tables/*.csv"), out / "tables" / "cost.csv"]:
        values = pd.read_csv(table).select_dtypes("number").to_numpy().ravel()
        known |= {f"{v:.4g}" for v in values if v == v}
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
