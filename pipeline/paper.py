"""A paper's pages, rendered from its runs' and studies' tables by code (`snakemake --config paper=NAME`).

Each section — a run, a study, the figure across kinds — is its own target (`paper_<section>`): its page
(`sections/<key>.md`), the figures the docs show from it (copied from the run or study that drew them), its cost
table, and a manifest entry (`sections/<key>.json`: each file's sha256, the commit and the config identity that
made it). The index (`results.md`, `manifest.json`) gathers the sections there are. `publish` copies a paper's
sections into a docs directory and rebuilds the index there, so sections made on different machines and commits
build up one page, each recording its own commit.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from pipeline.io import UserError, atomic_path, run_cli, sha256_file, write_json
from pipeline.paper_figure import kinds_figure
from pipeline.paper_tables import columns, markdown, section_cost
from pipeline.plotting import save
from pipeline.provenance import git_state
from pipeline.registry import KINDS, resolved

REPO = Path(__file__).resolve().parent.parent
ONSET_COLUMNS = ["n_members", "n_with_window", "start_tokens_median", "end_tokens_median", "icl_change_median"]


def read(tables_dir: Path, names) -> dict[str, pd.DataFrame]:
    return {name: pd.read_csv(Path(tables_dir) / f"{name}.csv") for name in names}


def header(key: str, section: dict) -> str:
    what = f"run `{section['name']}`" if section["type"] == "run" else f"study `{section['name']}`"
    members = ", ".join(f"`{m}`" for m in section["members"])
    return (f"## {key}: {what}\n\nKind {section['kind']}; config identity `{section['identity']}`; "
            f"{len(section['members'])} member run(s): {members}.\n\n"
            + "".join(f"![{figure}](figures/{figure}.png)\n" for figure in section["figures"]) + "\n")


def write_summaries(key: str, section: dict, results: Path, out: Path) -> list[str]:
    """The kind's summaries of a run's tables, each a table of the section (tables/<key>_<name>.csv)."""
    for name, (table, summary) in section.get("summaries", {}).items():
        rows = resolved(summary)(pd.read_csv(results / section["name"] / "tables" / f"{table}.csv"))
        with atomic_path(out / "tables" / f"{key}_{name}.csv") as tmp:
            rows.to_csv(tmp, index=False)
    return [f"tables/{key}_{name}.csv" for name in section.get("summaries", {})]


def summaries_body(key: str, section: dict, out: Path) -> str:
    """Each summary under its function's headline (its docstring up to the colon)."""
    text = ""
    for name, (table, summary) in section.get("summaries", {}).items():
        headline = resolved(summary).__doc__.split(":")[0]
        rows = pd.read_csv(out / "tables" / f"{key}_{name}.csv")
        text += f"{headline} (`{key}_{name}.csv`, from the run's `{table}.csv`):\n\n{markdown(rows)}\n"
    return text


def run_body(section: dict, results: Path) -> str:
    tables = results / section["name"] / "tables"
    window = columns(pd.read_csv(tables / "phase_window.csv"), ["model", "score", "has_window", "start_tokens",
                                                                 "end_tokens", "icl_change"])
    text = f"Phase-change window (`phase_window.csv`):\n\n{markdown(window)}\n"
    if (tables / "llc_stages.csv").is_file():
        stages = columns(pd.read_csv(tables / "llc_stages.csv"), ["model", "kind", "tokens_seen", "lower_tokens",
                                                                  "upper_tokens"])
        text += f"LLC stage boundaries (`llc_stages.csv`):\n\n{markdown(stages)}\n"
    return text


def study_body(section: dict, results: Path) -> str:
    tables = results / section["name"] / "tables"
    variant = [c for c in pd.read_csv(tables / "icl_bands.csv").columns if c not in
               ("step", "tokens_seen", "median", "min", "max", "n_members", "value")]
    onsets = pd.read_csv(tables / "onsets.csv")
    text = f"Windows per variant (`onsets.csv`):\n\n{markdown(columns(onsets, [*variant, *ONSET_COLUMNS]))}\n"
    for name, what in (("best_score_bands", "The best head's score"), ("icl_bands", "The ICL score")):
        last = last_checkpoint(pd.read_csv(tables / f"{name}.csv"), variant)
        shown = columns(last, [*variant, "step", "tokens_seen", "value", "median", "min", "max", "n_members"])
        text += f"{what} at each variant's last checkpoint, over seeds (`{name}.csv`):\n\n{markdown(shown)}\n"
    for name in [*KINDS[section["kind"]].study_tables, "stage_recurrence"]:
        if (tables / f"{name}.csv").is_file():
            table = pd.read_csv(tables / f"{name}.csv")
            table = table[table.positions == "mean"] if "positions" in table.columns else table
            caption = f"`{name}.csv`"
            if "step" in table.columns:
                table, caption = last_checkpoint(table, variant), f"{caption} at each variant's last checkpoint"
            text += f"{caption}:\n\n{markdown(table)}\n"
    return text


def last_checkpoint(table: pd.DataFrame, variant: list[str]) -> pd.DataFrame:
    """The rows of a per-checkpoint table at each variant's last checkpoint: a page shows where training ended,
    the study's CSV holds the whole curve."""
    return table[table.step == table.groupby(variant, dropna=False).step.transform("max")]


def kinds_body(section: dict) -> str:
    banded = "; ".join(f"{label}: seed bands of study `{band['study']}`" for label, band in section["bands"].items())
    return ("## The phase change across kinds\n\nOne column per run (" + ", ".join(section["columns"])
            + f"){'; ' + banded if banded else ''}. Config identity `{section['identity']}`.\n\n"
            "![the phase change across kinds](figures/kinds.png)\n\n")


def band_tables(bands: dict, results: Path) -> dict[str, dict]:
    """Per run label, the seed bands of the study the paper names for it (those it has) and the run's variants."""
    return {label: {"variants": band["variants"], **{name: pd.read_csv(path) for name in ("best_score_bands", "llc_bands")
                    if (path := results / band["study"] / "tables" / f"{name}.csv").is_file()}}
            for label, band in bands.items()}


def write_kinds(key: str, spec: dict, results: Path, out: Path) -> list[str]:
    """The figure across kinds from its run columns' tables and the seed bands of the studies named."""
    section, sections = spec["sections"][key], spec["sections"]
    cols = [(label, sections[label]["kind"], read(results / sections[label]["name"] / "tables",
                                                   sections[label]["tables"])) for label in section["columns"]]
    save(kinds_figure(cols, band_tables(section["bands"], results)), out / "figures" / "kinds", ["png"], 120)
    with atomic_path(out / "sections" / f"{key}.md") as tmp:
        tmp.write_text(kinds_body(section))
    return ["figures/kinds.png", f"sections/{key}.md"]


def write_source(key: str, spec: dict, results: Path, out: Path) -> list[str]:
    """A run's or study's section: its figures copied, its cost table, its page."""
    section = spec["sections"][key]
    for figure, path in section["figures"].items():
        with atomic_path(out / "figures" / f"{figure}.png") as tmp:
            shutil.copyfile(results / path, tmp)
    with atomic_path(out / "tables" / f"cost_{key}.csv") as tmp:
        section_cost(section["members"], results).to_csv(tmp, index=False)
    cost = pd.read_csv(out / "tables" / f"cost_{key}.csv")
    summaries = write_summaries(key, section, results, out)
    if section["type"] == "run":
        body = run_body(section, results) + summaries_body(key, section, out)
    else:
        body = study_body(section, results)
    with atomic_path(out / "sections" / f"{key}.md") as tmp:
        tmp.write_text(header(key, section) + body + f"Cost (`cost_{key}.csv`, from the member runs' "
                       f"`benchmarks/*.tsv` and `train_log.csv`):\n\n{markdown(cost)}\n")
    return [*(f"figures/{figure}.png" for figure in section["figures"]), f"tables/cost_{key}.csv", *summaries,
            f"sections/{key}.md"]


def write_section(key: str, spec: dict, results: Path, out: Path):
    """One section's files and its manifest entry (sections/<key>.json)."""
    section = spec["sections"][key]
    files = (write_kinds if section["type"] == "kinds" else write_source)(key, spec, results, out)
    state = git_state(REPO)
    write_json(out / "sections" / f"{key}.json", {
        "section": key, "source": section["name"], "identity": section["identity"], "members": section["members"],
        "commit": state.get("commit"), "dirty": state.get("dirty"),
        "files": {name: sha256_file(out / name) for name in sorted(files)}})


def made_at(entry: dict) -> str:
    return f"`{entry['commit']}`" + (" with local changes" if entry.get("dirty") else "")


def index_page(spec: dict, out: Path, entries: dict) -> str:
    """results.md: which sections there are, the commit and identity that made each, then their pages."""
    rows = pd.DataFrame([{"section": key, "source": f"`{s['name']}`", "kind": s.get("kind", "all"),
                          "identity": f"`{s['identity']}`",
                          "made at commit": made_at(entries[key]) if key in entries else
                          f"not yet: `snakemake --cores 2 paper_{key} --config paper={spec['name']}`"}
                         for key, s in spec["sections"].items()])
    order = ["kinds", *(key for key in spec["sections"] if key != "kinds")]
    return (f"# Results: paper `{spec['name']}`\n\nGenerated by `snakemake --cores 2 --config paper={spec['name']}` "
            "(each section alone: `paper_<section>`): every number below is read from the table named beside it, "
            "every figure drawn by the run or study its section names; `manifest.json` gives each file's sha256 "
            f"with the commit and config identity that made it.\n\n{markdown(rows)}\n"
            + "".join((out / "sections" / f"{key}.md").read_text() for key in order if key in entries))


def write_index(spec: dict, out: Path):
    """results.md and manifest.json from the sections whose manifest entries are in `out`."""
    entries = {key: json.loads((out / "sections" / f"{key}.json").read_text()) for key in spec["sections"]
               if (out / "sections" / f"{key}.json").is_file()}
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text(index_page(spec, out, entries))
    state = git_state(REPO)
    write_json(out / "manifest.json", {
        "paper": spec["name"], "identity": spec["identity"], "sections": entries,
        "index": {"commit": state.get("commit"), "dirty": state.get("dirty"),
                  "files": {"results.md": sha256_file(out / "results.md")}}})


def publish(paper_dir: Path, docs: Path):
    """Copy each section made in `paper_dir` (files as its manifest entry lists them) into `docs`, then rebuild
    the index there from every section it holds: the sections made here replace theirs, the others stay."""
    if not (paper_dir / "paper.yaml").is_file():
        raise UserError(f"{paper_dir} holds no paper (no paper.yaml); make its sections first: snakemake --cores 2 "
                        "paper_<section> --config paper=<name>")
    spec = OmegaConf.to_container(OmegaConf.load(paper_dir / "paper.yaml"))
    if (docs / "manifest.json").is_file() and json.loads((docs / "manifest.json").read_text())["paper"] != spec["name"]:
        raise UserError(f"{docs} holds another paper's pages; publish paper '{spec['name']}' into a directory of its own")
    for entry_path in sorted((paper_dir / "sections").glob("*.json")):
        entry = json.loads(entry_path.read_text())
        for name in [*entry["files"], f"sections/{entry['section']}.json"]:
            (docs / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(paper_dir / name, docs / name)
    shutil.copyfile(paper_dir / "paper.yaml", docs / "paper.yaml")
    write_index(spec, docs)


def main():
    parser = argparse.ArgumentParser(description="Render a paper's pages from its runs' and studies' tables.")
    commands = parser.add_subparsers(dest="command", required=True)
    section = commands.add_parser("section", help="one section's page, figures, cost and manifest entry")
    section.add_argument("key", help="the section: a run's label, a study's name, or kinds")
    index = commands.add_parser("index", help="results.md and manifest.json from the sections made")
    for command in (section, index):
        command.add_argument("--spec", type=Path, required=True, help="results/paper/<name>/paper.yaml")
        command.add_argument("--out", type=Path, required=True, help="the paper's directory")
    section.add_argument("--results", type=Path, required=True, help="the results directory holding the runs")
    to_docs = commands.add_parser("publish", help="copy a paper's sections into a docs directory, rebuild its index")
    to_docs.add_argument("paper_dir", type=Path, help="results/paper/<name>")
    to_docs.add_argument("docs", type=Path, help="e.g. docs/paper")
    args = parser.parse_args()
    if args.command == "publish":
        return publish(args.paper_dir, args.docs)
    spec = OmegaConf.to_container(OmegaConf.load(args.spec))
    if args.command == "section":
        return write_section(args.key, spec, args.results, args.out)
    write_index(spec, args.out)


if __name__ == "__main__":
    run_cli(main)
