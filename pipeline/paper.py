"""A paper's pages, rendered from its runs' and studies' tables by code (`snakemake --config paper=NAME`): the
figure across kinds, the figures the docs show (copied from the runs and studies that drew them), a results page
whose every number is read from a table it names, and a manifest giving each file's sha256 with the commit and
the config identity that made it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pipeline.cli import spec_cli
from pipeline.io import atomic_path, run_cli, sha256_file, write_json
from pipeline.plotting import MODEL_COLORS, log_tokens_axis, save, shade_windows, trained_only
from pipeline.provenance import git_state
from pipeline.registry import KINDS, resolved

REPO = Path(__file__).resolve().parent.parent
ONSET_COLUMNS = ["n_members", "n_with_window", "start_tokens_median", "end_tokens_median", "icl_change_median"]


def read(tables_dir: Path, names) -> dict[str, pd.DataFrame]:
    return {name: pd.read_csv(Path(tables_dir) / f"{name}.csv") for name in names}


def best_heads(heads: pd.DataFrame, score: str) -> pd.DataFrame:
    """The best head's `score` per model and checkpoint."""
    return heads[heads.score == score].groupby(["model", "tokens_seen"], as_index=False).value.max()


def lines(ax, table: pd.DataFrame, value: str, spread: str | None = None):
    for i, (model, line) in enumerate(trained_only(table).sort_values("tokens_seen").groupby("model")):
        ax.plot(line.tokens_seen, line[value], "o-", ms=2.5, color=MODEL_COLORS[i], label=model)
        if spread:
            ax.fill_between(line.tokens_seen, line[value] - line[spread], line[value] + line[spread],
                            color=MODEL_COLORS[i], alpha=0.2, lw=0)


def kinds_figure(columns: list[tuple[str, str, dict]]) -> plt.Figure:
    """One column per kind (label, kind, its run's tables), over tokens seen: its circuit's best head score, its
    distance to the optimal strategy, its LLC with the stage boundaries (dashed); the windows shaded."""
    fig, axes = plt.subplots(3, len(columns), figsize=(4.6 * len(columns), 8.4), sharex="col", squeeze=False)
    for col, (label, kind, t) in enumerate(columns):
        comparison = KINDS[kind].comparison
        rows = [(best_heads(t["head_scores"], comparison.score), "value", None,
                 f"best head's {comparison.score.replace('_', '-')} score"),
                (resolved(comparison.distance)(t), "value", None, comparison.distance_label),
                (t.get("llc", pd.DataFrame(columns=["model", "tokens_seen"])), "llc_mean", "llc_std", "LLC")]
        for row, (table, value, spread, ylabel) in enumerate(rows):
            ax = axes[row, col]
            lines(ax, table, value, spread)
            shade_windows(ax, t["phase_window"])
            log_tokens_axis(ax)
            ax.set_ylabel(ylabel, fontsize=9)
        for _, stage in t.get("llc_stages", pd.DataFrame(columns=["tokens_seen"])).iterrows():
            axes[2, col].axvline(stage.tokens_seen, color="gray", ls="--", lw=1)
        axes[0, col].set_title(f"{label} ({kind})")
        axes[0, col].legend(fontsize=7)
    fig.suptitle("The phase change across kinds: circuit, distance to the optimal strategy, LLC (dashed: stage "
                 "boundaries; shaded: the window)", fontsize=10)
    fig.tight_layout()
    return fig


def cell(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "–" if np.isnan(value) else f"{value:.4g}"
    return str(value)


def markdown(table: pd.DataFrame) -> str:
    """A table as Markdown, numbers to 4 significant digits."""
    head = "| " + " | ".join(map(str, table.columns)) + " |\n|" + "---|" * len(table.columns) + "\n"
    return head + "".join("| " + " | ".join(cell(v) for v in row) + " |\n" for row in table.itertuples(index=False))


def columns(table: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """These columns of a table, those it has (a table with no row lacks the columns of its values)."""
    return table[[name for name in names if name in table.columns]]


def run_cost(run_dir: Path) -> pd.DataFrame:
    """Wall seconds and CPU-seconds of all the run's jobs (its benchmark files), and each model's training speed
    (tokens trained per wall second of its training jobs)."""
    marks = {p.stem: pd.read_csv(p, sep="\t").iloc[0] for p in sorted((run_dir / "benchmarks").glob("*.tsv"))}
    train_log = pd.read_csv(run_dir / "tables" / "train_log.csv")
    rows = [{"what": "all jobs", "wall_s": sum(m.s for m in marks.values()),
             "cpu_s": sum(m.cpu_time for m in marks.values()), "tokens_per_s": np.nan}]
    for model, log in train_log.groupby("model"):
        jobs = [m for name, m in marks.items() if re.fullmatch(rf"train_{re.escape(model)}_to_\d+", name)]
        wall = sum(m.s for m in jobs)
        rows.append({"what": f"training {model}", "wall_s": wall, "cpu_s": sum(m.cpu_time for m in jobs),
                     "tokens_per_s": log.tokens_seen.max() / wall if wall else np.nan})
    return pd.DataFrame(rows)


def run_section(label: str, run: dict, results: Path, cost: pd.DataFrame) -> str:
    tables = results / run["name"] / "tables"
    window = columns(pd.read_csv(tables / "phase_window.csv"), ["model", "score", "has_window", "start_tokens",
                                                                 "end_tokens", "icl_change"])
    text = (f"### {label}: `{run['name']}` ({run['kind']}; config identity `{run['identity']}`)\n\n"
            f"Phase-change window (`phase_window.csv`):\n\n{markdown(window)}\n")
    if (tables / "llc_stages.csv").is_file():
        stages = columns(pd.read_csv(tables / "llc_stages.csv"), ["model", "kind", "tokens_seen", "lower_tokens",
                                                                  "upper_tokens"])
        text += f"LLC stage boundaries (`llc_stages.csv`):\n\n{markdown(stages)}\n"
    own = cost[cost.run == run["name"]].drop(columns="run")
    return text + f"Cost (the paper's `cost.csv`, from the run's `benchmarks/*.tsv` and `train_log.csv`):\n\n{markdown(own)}\n"


def study_section(study: dict, results: Path) -> str:
    tables = results / study["name"] / "tables"
    variant = [c for c in pd.read_csv(tables / "icl_bands.csv").columns if c not in
               ("step", "tokens_seen", "median", "min", "max", "n_members", "value")]
    onsets = pd.read_csv(tables / "onsets.csv")
    text = (f"### Study `{study['name']}` ({study['kind']}; {len(study['members'])} members, config identity "
            f"`{study['identity']}`)\n\nWindows per variant (`onsets.csv`):\n\n"
            f"{markdown(columns(onsets, [*variant, *ONSET_COLUMNS]))}\n")
    for name in [*KINDS[study["kind"]].study_tables, "stage_recurrence"]:
        if (tables / f"{name}.csv").is_file():
            table = pd.read_csv(tables / f"{name}.csv")
            table = table[table.positions == "mean"] if "positions" in table.columns else table
            text += f"`{name}.csv`:\n\n{markdown(table)}\n"
    return text


def results_page(spec: dict, results: Path, commit: str | None, cost: pd.DataFrame) -> str:
    runs = pd.DataFrame([{"label": label, "run": f"`{r['name']}`", "kind": r["kind"], "identity": f"`{r['identity']}`"}
                         for label, r in spec["runs"].items()])
    return (f"# Results: paper `{spec['name']}`\n\nGenerated by `snakemake --cores 2 --config paper={spec['name']}` "
            f"at commit `{commit}`: every number below is read from the table named beside it, every figure "
            f"drawn by the run or study named in `manifest.json`.\n\n![the phase change across kinds](figures/kinds.png)"
            f"\n\n## Runs\n\n{markdown(runs)}\n"
            + "".join(run_section(label, r, results, cost) for label, r in spec["runs"].items())
            + "## Studies\n\n" + "".join(study_section(s, results) for s in spec["studies"]))


def write_paper(spec: dict, results: Path, out: Path):
    """The paper's directory: its figures (the one across kinds, and copies), results.md and manifest.json."""
    commit = git_state(REPO).get("commit")
    sources = {"figures/kinds.png": ("runs " + ", ".join(r["name"] for r in spec["runs"].values()), spec["identity"])}
    columns = [(label, r["kind"], read(results / r["name"] / "tables", r["tables"])) for label, r in spec["runs"].items()]
    save(kinds_figure(columns), out / "figures" / "kinds", ["png"], 120)
    for name, (source, identity, path) in spec["figures"].items():
        with atomic_path(out / "figures" / f"{name}.png") as tmp:
            shutil.copyfile(results / path, tmp)
        sources[f"figures/{name}.png"] = (source, identity)
    cost = pd.concat([run_cost(results / r["name"]).assign(run=r["name"]) for r in spec["runs"].values()])
    with atomic_path(out / "tables" / "cost.csv") as tmp:
        cost.to_csv(tmp, index=False)
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text(results_page(spec, results, commit, pd.read_csv(out / "tables" / "cost.csv")))
    sources["results.md"] = ("the runs and studies above", spec["identity"])
    sources["tables/cost.csv"] = ("the runs' benchmark files", spec["identity"])
    write_json(out / "manifest.json", {"paper": spec["name"], "commit": commit, "files": {
        name: {"sha256": sha256_file(out / name), "source": source, "identity": identity}
        for name, (source, identity) in sorted(sources.items())}})


def main():
    write_paper(*spec_cli("Render a paper's pages from its runs' and studies' tables.",
                          spec="results/paper/<name>/paper.yaml", out="the paper's directory"))


if __name__ == "__main__":
    run_cli(main)
