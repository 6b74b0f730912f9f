"""The whole Snakemake pipeline on the tiny experiment, in a temp dir: every table and figure appears,
a rerun does nothing, and changing an analysis parameter reruns only the rules that depend on it."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_RUN, TINY_RUN_OVERRIDES, overrides_config, snakemake

from pipeline import outputs
from pipeline.config import compose, identity, model_configs
from pipeline.io import sha256_file
from pipeline.schedule import checkpoint_steps

pytestmark = pytest.mark.cost(185)  # worker-seconds in a full run: scheduled by weight

# a language-model run's tables and figures (the regression kind's are tested in test_regression_study.py)
TABLES = [t for t, step in outputs.TABLES.items()
          if outputs.for_kind(t, "language") and outputs.for_kind(step, "language")]
FIGURES = [f for f, (module, _) in outputs.FIGURES.items() if outputs.for_kind(module, "language")]
HTML_FIGURES = list(outputs.HTML_FIGURES)


def test_every_table_and_figure_is_written(tiny_run):
    _, run, _ = tiny_run
    expected = {"integrity": set(), "composition": {"attn_only_2l"},  # distinct checkpoints; pairs need 2 layers
                "llc_stages": set()}  # no stage is credible in 5 checkpoints (the detector: test_stages)
    for table in TABLES:
        models = set(pd.read_csv(run / "tables" / f"{table}.csv").model)
        assert models == expected.get(table, {"attn_only_1l", "attn_only_2l"}), table
    for figure in FIGURES:
        for ext in ["png", "pdf"]:
            assert (run / "figures" / f"{figure}.{ext}").stat().st_size > 5000
    assert "<span title='before" in (run / "figures" / "token_loss_change.html").read_text()
    assert (run / "figures" / "task_attention.html").read_text().count("CircuitsVis.AttentionHeads") == 2  # per model
    assert not list(run.rglob(".*.tmp*")), "temporary files were left behind"


def test_tables_hold_one_row_per_model_checkpoint_layer_head_score(tiny_run):
    _, run, _ = tiny_run
    heads = pd.read_csv(run / "tables" / "head_scores.csv")
    steps = sorted(heads.step.unique())
    assert steps[0] == 0 and steps[-1] == 400 and len(steps) == 5  # step 0 + 4 log-spaced, final included
    per_model = heads.groupby("model").size().to_dict()
    assert per_model == {"attn_only_1l": 5 * 1 * 4 * 6, "attn_only_2l": 5 * 2 * 4 * 6}
    # The induction stripe (22 rows at seq_len 20) holds the 20 second-copy rows prefix-matching averages.
    wide = heads.pivot_table(index=["model", "step", "layer", "head"], columns="score", values="value")
    assert (wide.induction >= wide.prefix_matching * 20 / 22 - 1e-6).all()
    icl = pd.read_csv(run / "tables" / "icl.csv").set_index(["model", "step"])
    assert len(icl) == 10 and icl.icl_se.gt(0).all()
    # Training lowers the loss of both models from its initial ~log(vocab).
    assert (icl.xs(400, level="step").loss < icl.xs(0, level="step").loss - 0.3).all()
    # The ICL score and the mean loss are the loss-by-position table's window means and overall mean.
    positions = pd.read_csv(run / "tables" / "loss_by_position.csv").pivot_table(
        index=["model", "step"], columns="position", values="loss")
    late, early = positions.loc[:, 48:51].mean(axis=1), positions.loc[:, 8:11].mean(axis=1)  # late 50, early 10, w 4
    assert ((late - early) - icl.icl_score).abs().max() < 1e-5
    assert (positions.mean(axis=1) - icl.loss).abs().max() < 1e-5
    # PC1 of the per-token losses follows the loss over training (one row per scored checkpoint).
    pca = pd.read_csv(run / "tables" / "pca.csv").set_index(["model", "step"])
    assert pca.index.equals(icl.index)
    for model in ["attn_only_1l", "attn_only_2l"]:
        assert abs(pca.loc[model].pc1.corr(icl.loc[model].loss)) > 0.9


def test_causal_tables_cover_every_checkpoint(tiny_run):
    _, run, _ = tiny_run
    ablation = pd.read_csv(run / "tables" / "ablation.csv")
    # tiny: top_k=1, so one head and one control head, zero- and mean-ablated, beside the intact row
    assert ablation.groupby("model").size().to_dict() == {"attn_only_1l": 5 * 5, "attn_only_2l": 5 * 5}
    intact = ablation[ablation.heads == "none"].set_index(["model", "step"]).icl_score
    icl = pd.read_csv(run / "tables" / "icl.csv").set_index(["model", "step"]).icl_score
    assert intact.notna().all() and (intact.index == icl.index).all()
    patching = pd.read_csv(run / "tables" / "patching.csv")
    assert set(patching.activation) == {"head_out", "resid_pre"} and patching.value.notna().mean() > 0.5
    copying = pd.read_csv(run / "tables" / "copying.csv")
    assert copying.copying.between(-1, 1).all() and len(copying) == 5 * (4 + 8)
    tokens = pd.read_csv(run / "tables" / "token_losses.csv")
    assert (tokens.groupby(["model", "step"]).size() == 63).all()  # n_ctx - 1 positions per checkpoint


def test_developmental_tables_cover_every_checkpoint_and_agree_with_their_traces(tiny_run):
    _, run, _ = tiny_run
    composition = pd.read_csv(run / "tables" / "composition.csv")
    assert len(composition) == 5 * 3 * 4 * 4  # checkpoints x Q/K/V x (layer-0 head, layer-1 head)
    llc = pd.read_csv(run / "tables" / "llc.csv").set_index(["model", "step"])
    assert len(llc) == 10
    # every estimate has its chains' traces (2 chains x (5 burn-in + 10 draws)); the estimate itself is
    # tested by hand in test_llc.py
    trace = pd.read_csv(run / "tables" / "llc_trace.csv")
    assert trace.groupby(["model", "step"]).size().to_dict() == {key: 2 * 15 for key in llc.index}
    assert np.isfinite(llc[["llc_mean", "llc_chain0", "llc_chain1"]].to_numpy()).all()
    # the chains run on the training twin; the loss at each checkpoint they start from (the whole LLC sample,
    # once) is the score step's HookedTransformer loss on the same 16 eval sequences
    for model, rows in llc.groupby(level="model"):
        hooked = np.load(run / "models" / model / "token_losses.npz")["losses"]
        np.testing.assert_allclose(rows.init_loss, hooked[:, :16].mean(axis=(1, 2)), atol=1e-5)
    heads = pd.read_csv(run / "tables" / "llc_heads.csv")
    assert heads.groupby("model").size().to_dict() == {"attn_only_1l": 3 * 4, "attn_only_2l": 3 * 4}  # 3 of 5 steps
    steps = checkpoint_steps(compose(TINY_RUN_OVERRIDES).train)  # refined at every 2nd checkpoint (tiny)
    assert set(heads.layer) == {0, 1} and sorted(heads.step.unique()) == steps[::2] == [steps[0], steps[2], 400]


def test_task_tables_agree_with_each_other(tiny_run):
    """The patching table's clean/corrupted metrics are the task metrics (all answers for heads, the last answer
    for the residual stream); attention rows exist at the final checkpoint only, for the top |DLA| heads, and
    each query's attention sums to 1."""
    _, run, _ = tiny_run
    metrics = pd.read_csv(run / "tables" / "task_metrics.csv").set_index(["model", "step", "task", "corruption",
                                                                           "answers"])
    patching = pd.read_csv(run / "tables" / "patching.csv")
    for activation, answers in [("head_out", "all"), ("resid_pre", "last")]:
        rows = patching[patching.activation == activation].drop_duplicates(["model", "step", "task", "corruption"])
        expected = metrics.xs(answers, level="answers").loc[list(zip(rows.model, rows.step, rows.task, rows.corruption))]
        assert rows.clean_logit_diff.to_numpy() == pytest.approx(expected.clean.to_numpy(), abs=1e-5)
        assert rows.corrupted_logit_diff.to_numpy() == pytest.approx(expected.corrupted.to_numpy(), abs=1e-5)
    attention = pd.read_csv(run / "tables" / "task_attention.csv")
    assert set(attention.step) == {400}
    sums = attention.groupby(["model", "task", "layer", "head", "query"]).value.sum()
    assert sums.to_numpy() == pytest.approx(1.0, abs=1e-5)
    dla = pd.read_csv(run / "tables" / "logit_attribution.csv").query("kind == 'head' and step == 400")
    for model, rows in attention.groupby("model"):
        top = dla[dla.model == model].assign(size=lambda d: d.value.abs()).nlargest(3, "size").component
        assert set(top) == {f"L{lay}H{h}" for lay, h in zip(rows.layer, rows["head"])}


def test_report_collects_every_figure_drawn(tiny_run):
    workdir, run, _ = tiny_run
    result = snakemake(workdir, "--report", "report.html", config=TINY_RUN)
    assert result.returncode == 0, result.stderr[-2000:]
    report = (workdir / "report.html").read_text()
    drawn = [p.name for p in (run / "figures").iterdir() if p.suffix in {".png", ".html"}]  # PDFs: print copies
    assert len(drawn) >= 20 and report.count("Produced by rule") == len(drawn)  # 24 in the tiny run
    for name in drawn:
        assert name in report, f"{name} is missing from the report"
    # the introduction names the run and the identity of its resolved configs (what names run directories)
    run_identity = identity(model_configs(TINY_RUN_OVERRIDES))[:16]
    assert f"tiny</tt> (resolved configs sha256 {run_identity}" in report.replace('\\"', '"')


def test_rerun_does_nothing(tiny_run):
    workdir, _, _ = tiny_run
    result = snakemake(workdir, "-n", config=TINY_RUN)
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_a_changed_config_plans_a_directory_of_its_own_and_never_rebuilds_the_run(tiny_run):
    """A directory belongs to one config: the tiny run with another analysis setting plans every job into a new
    directory (the experiment's name, the change and its hash) and none into results/tiny; naming that variant
    `tiny` is refused in one line naming both identities, before any job."""
    workdir, _, _ = tiny_run
    variant = [*TINY_RUN_OVERRIDES, "analysis.icl.window=2"]
    result = snakemake(workdir, "-n", config=overrides_config(variant))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-2000:]
    assert "results/tiny_analysis.icl.window=2-" in out and "results/tiny/" not in out
    refused = snakemake(workdir, "-n", config=overrides_config([*variant, "run_name=tiny"]))
    errors = [line for line in (refused.stdout + refused.stderr).splitlines() if line.startswith("error: ")]
    assert refused.returncode != 0 and len(errors) == 1 and "holds another config's results" in errors[0]


def test_per_step_wall_times_are_printed(tiny_run):
    _, _, result = tiny_run
    assert "Per-step wall times" in result.stdout + result.stderr


def test_provenance_traces_every_table(tiny_run):
    _, run, _ = tiny_run
    record = json.loads((run / "provenance.json").read_text())
    assert len(record["config_sha256"]) == 64 and set(record["config"]) == {"attn_only_1l", "attn_only_2l"}
    assert record["config"]["attn_only_2l"]["model"]["n_layers"] == 2
    assert record["packages"]["torch"].startswith("2.13.0") and record["git"]["commit"]
    corpus = json.loads((run / "data" / "bpe" / "manifest.json").read_text())
    assert record["corpus"] == [{k: corpus[k] for k in record["corpus"][0]}]
    assert len(record["checkpoints"]) == 2 * 5
    for table in TABLES:
        path = run / "tables" / f"{table}.csv"
        assert record["outputs"][str(path.relative_to(run.parent.parent))] == sha256_file(path)
