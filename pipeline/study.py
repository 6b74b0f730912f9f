"""Aggregate a study's member runs: their tables stacked with the swept keys as columns, bands over the
`band` key (median and min-max over seeds), phase-change onsets per variant, and one per-token-loss PCA
fitted jointly over every model x checkpoint of the study (Olsson et al.'s Argument 1 figure).

A variant is a model together with the swept values other than the band key (e.g. attn_only_2l at
n_ctx=512); its band runs over the members that differ only in the band key.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

from pipeline.cli import spec_cli
from pipeline.config import unbounded
from pipeline.io import UserError, run_cli, write_table
from pipeline.outputs import kind_study_tables, study_member_tables


def stack(tables: dict[str, pd.DataFrame], values: dict[str, dict]) -> pd.DataFrame:
    """Member tables stacked, each row carrying its member's run name and swept values (a swept key the
    table already has as a column, e.g. model, is not repeated)."""
    frames = []
    for run, table in tables.items():
        swept = {k: unbounded(v) for k, v in values[run].items() if k not in table.columns}
        frames.append(table.assign(run=run, **swept))
    frame = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)
    front = ["run", *[k for k in next(iter(values.values())) if k in frame.columns and k != "model"]]
    return frame[front + [c for c in frame.columns if c not in front]]


def variant_keys(stacked: pd.DataFrame, swept: list[str], band: str) -> list[str]:
    """The columns naming a variant: the model and every swept key but the band key."""
    return ["model", *[k for k in swept if k not in (band, "model") and k in stacked.columns]]


def best_score(heads: pd.DataFrame, score: str) -> pd.DataFrame:
    """The max over heads of `score`, per member, model and checkpoint."""
    keys = [c for c in heads.columns if c not in ("layer", "head", "score", "value")]
    return heads[heads.score == score].groupby(keys, as_index=False).value.max()


def bands(table: pd.DataFrame, value: str, variant: list[str]) -> pd.DataFrame:
    """Median, min and max of `value` over the band (members of one variant) at each checkpoint."""
    grouped = table.groupby([*variant, "step", "tokens_seen"])[value]
    out = grouped.agg(["median", "min", "max", "count"]).reset_index()
    return out.rename(columns={"count": "n_members"}).assign(value=value)


def onsets(windows: pd.DataFrame, variant: list[str]) -> pd.DataFrame:
    """Per variant: how many members have a window, its start/end (tokens, steps) and the ICL score's change
    across it, each as median, min, max over those members; the onset spread is max - min of the start."""
    rows = []
    for key, group in windows.groupby(variant):
        found = group[group.has_window.astype(bool)]
        row = dict(zip(variant, key if isinstance(key, tuple) else (key,)),
                   n_members=len(group), n_with_window=len(found))
        for end in ("start", "end"):
            for stat in ("median", "min", "max"):
                row[f"{end}_tokens_{stat}"] = getattr(found[f"{end}_tokens"], stat)() if len(found) else np.nan
                row[f"{end}_step_{stat}"] = getattr(found[f"{end}_step"], stat)() if len(found) else np.nan
        for stat in ("median", "min", "max"):
            row[f"icl_change_{stat}"] = getattr(found.icl_change, stat)() if len(found) else np.nan
        row["onset_spread_tokens"] = row["start_tokens_max"] - row["start_tokens_min"]
        rows.append(row)
    return pd.DataFrame(rows)


def stage_recurrence(stages: pd.DataFrame, llc: pd.DataFrame, variant: list[str]) -> pd.DataFrame:
    """Per variant, the members' LLC stage boundaries matched across the band: boundaries of one kind (peak,
    trough) whose intervals share a common stretch, one per member, taken in token order. A boundary shown by a
    majority of the members is a `stage`; one that a single seed alone shows is not. Each with its tokens seen
    (median, min, max over the members that show it) and the stretch all their intervals share."""
    members = llc.groupby(variant).run.nunique()
    rows = []
    for key, found in stages.groupby([*variant, "kind"], sort=True):
        for group in _overlapping(found.sort_values("tokens_seen")):
            n_members = int(members.loc[key[:-1] if len(variant) > 1 else key[0]])
            rows.append({**dict(zip([*variant, "kind"], key)), "n_members": n_members, "n_with": len(group),
                         "stage": 2 * len(group) > n_members, "tokens_median": group.tokens_seen.median(),
                         "tokens_min": group.tokens_seen.min(), "tokens_max": group.tokens_seen.max(),
                         "common_lower": group.lower_tokens.max(), "common_upper": group.upper_tokens.min()})
    columns = [*variant, "kind", "n_members", "n_with", "stage", "tokens_median", "tokens_min", "tokens_max",
               "common_lower", "common_upper"]
    return pd.DataFrame(rows, columns=columns).sort_values([*variant, "tokens_median"], ignore_index=True)


def _overlapping(found: pd.DataFrame):
    """Greedy groups of boundaries (in token order) whose intervals all share a stretch, one per member run."""
    group, lower, upper = [], -np.inf, np.inf
    for _, row in found.iterrows():
        fits = row.lower_tokens <= upper and row.upper_tokens >= lower and row.run not in {g.run for g in group}
        if group and not fits:
            yield pd.DataFrame(group)
            group, lower, upper = [], -np.inf, np.inf
        group.append(row)
        lower, upper = max(lower, row.lower_tokens), min(upper, row.upper_tokens)
    if group:
        yield pd.DataFrame(group)


def llc_tables(member_tables: dict[str, pd.DataFrame], variant: list[str]) -> dict[str, pd.DataFrame]:
    """The LLC's band over the members and the stage boundaries that recur (when every member has the LLC)."""
    if "llc" not in member_tables:
        return {}
    return {"llc_bands": bands(member_tables["llc"], "llc_mean", variant),
            "stage_recurrence": stage_recurrence(member_tables["llc_stages"], member_tables["llc"], variant)}


def joint_pca(losses: dict[tuple[str, str], dict], n_components: int, seed: int) -> pd.DataFrame:
    """Every (member, model) x trained checkpoint as one point in a shared per-token-loss PC space.

    Features are the losses at one fixed random position of each eval sequence, the same pairs for every
    model (so every model must share the eval sample and context). Step 0 (untrained, loss ~log V
    everywhere) is left out of the fit and the table: it would be PC1 on its own. Features are centred,
    not scaled, so a PC's variance is in nats."""
    shapes = {key: value["losses"].shape[1:] for key, value in losses.items()}
    if len(set(shapes.values())) > 1:
        raise UserError(f"the joint PCA needs one eval sample for every model of the study, got per-token loss "
                        f"shapes {shapes}; keep data and model.n_ctx fixed across the study (or sweep them in "
                        f"separate studies)")
    n_sequences, n_positions = next(iter(shapes.values()))
    positions = np.random.default_rng(seed).integers(0, n_positions, size=n_sequences)
    rows, features = [], []
    for (run, model), value in losses.items():
        trained = value["tokens_seen"] > 0
        features.append(value["losses"][trained][:, np.arange(n_sequences), positions])
        rows.append(pd.DataFrame({"run": run, "model": model, "step": value["steps"][trained],
                                  "tokens_seen": value["tokens_seen"][trained]}))
    features = np.concatenate(features)
    pca = PCA(n_components=min(n_components, len(features)), random_state=seed)
    coords = pca.fit_transform(features - features.mean(axis=0))
    table = pd.concat(rows, ignore_index=True)
    for i in range(coords.shape[1]):
        table[f"pc{i + 1}"] = coords[:, i]
        table[f"pc{i + 1}_explained"] = pca.explained_variance_ratio_[i]
    return table


def aggregate(spec: dict, results: Path) -> dict[str, pd.DataFrame]:
    """Every study table from the members' tables and per-token losses under `results`."""
    values = {m["name"]: m["values"] for m in spec["members"]}
    swept, band = spec["swept"], spec["band"]
    member_tables = {name: stack({run: pd.read_csv(results / run / "tables" / f"{name}.csv") for run in values},
                                 values) for name in study_member_tables(spec["kind"], spec.get("llc", False))}
    variant = variant_keys(member_tables["icl"], swept, band)
    best = best_score(member_tables["head_scores"], spec["score"])
    losses = {(run, model): dict(np.load(results / run / "models" / model / "token_losses.npz"))
              for run, models in ((m["name"], m["models"]) for m in spec["members"]) for model in models}
    pca = joint_pca(losses, spec["pca_components"], spec["seed"])
    pca = pca.assign(**{k: pca.run.map(lambda run, k=k: values[run][k]) for k in swept if k != "model"})
    return {**member_tables,
            "best_score_bands": bands(best, "value", variant).assign(value=spec["score"]),
            "icl_bands": bands(member_tables["icl"], "icl_score", variant),
            "onsets": onsets(member_tables["phase_window"], variant),
            "joint_pca": pca,
            **kind_study_tables(member_tables, variant), **llc_tables(member_tables, variant)}


def main():
    spec, results, out = spec_cli("Aggregate a study's member runs into study tables.",
                                  spec="results/<study>/study.yaml", out="directory for the study tables (*.csv)")
    for name, table in aggregate(spec, results).items():
        write_table(table, out / f"{name}.csv")


if __name__ == "__main__":
    run_cli(main)
