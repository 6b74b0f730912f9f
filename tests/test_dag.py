"""The DAG's logic (pipeline/dag.py), without Snakemake: the paths, parts, checkpoint lists and data keys the
rules read, from the real composed configs, checked against the training schedule and the output registry."""

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.dag import Dag, part_steps
from pipeline.outputs import TABLES
from pipeline.plan import plan
from pipeline.registry import KINDS
from pipeline.schedule import checkpoint_steps


def dag_of(tmp_path: Path, *overrides: str, study: str | None = None) -> Dag:
    planned_study, runs = plan(study=study, overrides=[f"results_dir={tmp_path}", *overrides])
    return Dag(runs, tmp_path, [planned_study])


def steps_of(files: list[str]) -> list[int]:
    return [int(Path(f).stem.split("_")[-1]) for f in files]


def test_the_default_runs_checkpoints_split_into_training_jobs_and_parts(tmp_path):
    dag = dag_of(tmp_path)
    run = next(iter(dag.runs))
    model = dag.first_model(run)
    cfg = dag.configs(run)[model]
    files = dag.checkpoint_files(run, model)
    assert steps_of(files) == checkpoint_steps(cfg.train)
    assert all(Path(f).parent.parent == tmp_path / run / "models" / model / "checkpoints" for f in files)
    score = dag.score_parts(run, model)  # one part per training job (jobs.train_split_at: one split)
    assert len(score) == len(cfg.jobs.train_split_at) + 1
    assert [f for _, checkpoints in score.values() for f in checkpoints] == files
    assert all(sources == [str(Path(checkpoints[0]).parent)] for sources, checkpoints in score.values())
    steps = {s.name: s for s in part_steps() if model in dag.models_of(s.kinds)}
    for name, n_jobs in [("estimate_llc", cfg.jobs.llc_parts * len(score)), ("causal_checkpoints", cfg.jobs.causal_parts)]:
        parts = dag.parts(steps[name], run, model)
        assert len(parts) == n_jobs
        assert sorted(f for _, checkpoints in parts.values() for f in checkpoints) == sorted(files)
    causal = dag.parts(steps["causal_checkpoints"], run, model)
    assert all(sources == dag.checkpoint_sources(run, model) for sources, _ in causal.values())
    assert len(dag.checkpoint_sources(run, model)) == len(score)


def test_priority_favours_the_model_that_trains_longest(tmp_path):
    dag = dag_of(tmp_path)
    run = next(iter(dag.runs))
    priority = {m: dag.priority(run, m) for m in dag.configs(run)}
    layers = {m: c.model.n_layers for m, c in dag.configs(run).items()}
    assert priority[max(layers, key=layers.get)] == 1
    assert priority[min(layers, key=layers.get)] == pytest.approx(min(layers.values()) / max(layers.values()))


def test_hub_checkpoints_are_one_part_over_the_fetched_files(tmp_path):
    dag = dag_of(tmp_path, "model=pythia_70m", "data=pile", f"hub_cache={tmp_path / 'hub'}")
    run = next(iter(dag.runs))
    model = dag.first_model(run)
    files = dag.checkpoint_files(run, model)
    assert [Path(f).name for f in files] == [f"hub_{i:03d}.safetensors"
                                              for i in range(len(dag.configs(run)[model].model.hub.checkpoints))]
    assert dag.score_parts(run, model) == {"all": (files, files)}
    assert dag.checkpoint_sources(run, model) == files
    assert dag.sources("hub") == [model] and dag.sources("trained") == []


def test_data_keys_share_a_tokenizer_and_split_by_kind(tmp_path):
    dag = dag_of(tmp_path)  # two language models on one BPE corpus: one data directory
    run = next(iter(dag.runs))
    assert dag.data_keys(run, "language") == {"bpe": dag.first_model(run)}
    assert {dag.data_dir(run, m) for m in dag.configs(run)} == {tmp_path / run / "data" / "bpe"}
    markov = dag_of(tmp_path, "+experiment=markov_tiny")
    markov_run = next(iter(markov.runs))
    assert markov.data_keys(markov_run, "markov") == {"markov": markov.first_model(markov_run)}
    assert markov.data_keys(markov_run, "language") == {}
    assert [Path(f).name for f in markov.data_files(markov_run, markov.first_model(markov_run))] == \
        list(KINDS["markov"].data_files)


def test_run_outputs_follow_each_kinds_tables_and_the_opt_in_llc(tmp_path):
    def tables(dag):
        run = next(iter(dag.runs))
        return {Path(f).stem for f in dag.run_outputs(run, ["png"]) if f.endswith(".csv")}

    language, markov = dag_of(tmp_path, "+experiment=tiny"), dag_of(tmp_path, "+experiment=markov_tiny")
    assert {"ablation", "patching", "llc", "llc_stages"} <= tables(language)
    assert "markov_strategies" not in tables(language)
    assert "markov_strategies" in tables(markov) and "ablation" not in tables(markov)
    assert tables(language) <= set(TABLES)
    no_llc = dag_of(tmp_path, "+experiment=tiny", "analysis.llc.enabled=false")
    assert not {"llc", "llc_trace", "llc_stages"} & tables(no_llc)
    assert not any("llc" in Path(f).name for f in no_llc.run_outputs(next(iter(no_llc.runs)), ["png"]))


def test_train_log_is_collected_from_every_training_job(tmp_path):
    dag = dag_of(tmp_path)
    run = next(iter(dag.runs))
    logs = dag.collected(run, "train_log")
    assert len(logs) == sum(len(dag.model_segments(run, m)) for m in dag.configs(run))
    assert dag.collected(run, "icl") == [tmp_path / run / "models" / m / "icl.parquet" for m in dag.configs(run)]


def test_part_steps_give_each_kind_its_score_step_and_language_its_causal_step():
    steps = part_steps()
    score = {s.kinds: s.module for s in steps if s.name == "score_checkpoints"}
    assert score == {(k.name,): k.score_module for k in KINDS.values()}
    assert [s.kinds for s in steps if s.name == "causal_checkpoints"] == [("language",)]
    assert [s.kinds for s in steps if s.name == "estimate_llc"] == [tuple(KINDS)]
    rules = [name for s in steps for name in (s.part_rule, s.merge_rule)]
    assert len(rules) == len(set(rules)) and {"score_part", "llc_part", "causal_part"} <= set(rules)


def test_the_generated_rules_are_those_the_registries_name():
    """`snakemake --list-rules` lists the static rules and one rule per generated name, no more."""
    from conftest import REPO

    from pipeline.outputs import FIGURE_MODULES

    listed = subprocess.run([sys.executable, "-m", "snakemake", "--list-rules"], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout.splitlines()
    listed = [line.split()[0] for line in listed if line.strip()]  # a rule's name, then its docstring
    generated = {*(k.data_rule for k in KINDS.values()), *(f"plot_{p}" for p in FIGURE_MODULES),
                 *(name for s in part_steps() for name in (s.part_rule, s.merge_rule))}
    static = {"all", "train_model", "fetch_hub_checkpoint", "check_checkpoints", "score_icl", "loss_pca",
              "detect_phase_window", "collect_table", "detect_llc_stages", "provenance"}
    assert generated <= set(listed) and static <= set(listed)
    assert set(listed) == generated | static
    assert {"prepare_markov", "score_part_regression", "causal_part", "plot_llc_figures"} <= generated


def test_a_studys_outputs_are_its_kinds_tables_and_figures(tmp_path):
    dag = dag_of(tmp_path, study="clamping_tiny")
    (study,) = dag.studies
    outputs = {Path(f).name for f in dag.final_outputs(["png"])}
    assert dag.study_kind(study) == "language" and dag.study_llc(study) and dag.targets == []
    assert {"icl_bands.csv", "llc_bands.csv", "study_llc.png"} <= outputs
    assert not {"transition.csv", "strategy_bands.csv"} & outputs
    assert all(Path(f).parent.parent == tmp_path / study.name for f in dag.final_outputs(["png"]))


@pytest.mark.cost(60)
def test_the_paper_target_plans_its_runs_and_every_study_on_a_fresh_directory(tmp_path):
    """`snakemake -n --config paper=main` on an empty directory: the default run, one run of each other kind and
    the four shipped studies (with the default 2L model the clamping study reads), with no step before it."""
    from conftest import REPO

    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
                             "-n", "--config", "paper=main"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    planned = result.stdout + result.stderr
    studies = ("seeds", "olsson", "raventos", "markov", "clamping")
    for study in studies:
        assert f"rule aggregate_study_{study}:" in planned and f"rule plot_study_figures_{study}:" in planned
    assert "output: results/default/models/attn_only_2l/checkpoints/to_003000" in planned
    for rule in ("prepare_corpus", "prepare_regression", "prepare_markov", "plot_causal_figures",
                 "plot_regression_figures", "plot_markov_figures", "paper", "paper_kinds", "paper_language_run",
                 "paper_regression_run", "paper_markov_run", *(f"paper_{s}" for s in studies)):
        assert f"rule {rule}:" in planned


@pytest.mark.cost(30)
def test_a_section_of_the_paper_is_a_target_of_its_own(tmp_path):
    """`snakemake -n paper_clamping_tiny --config paper=tiny` plans that study's members and page, not the paper's
    other runs: a section fits a session of its own."""
    from conftest import REPO

    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
                             "-n", "paper_clamping_tiny", "--config", "paper=tiny"], capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    planned = result.stdout + result.stderr
    assert "rule paper_clamping_tiny:" in planned and "rule aggregate_study:" in planned
    assert planned.count("rule train_model:") == 2  # two arms, one seed, one training job each
    for other in ("prepare_regression", "prepare_markov", "paper_kinds", "paper_language_run", "paper:",
                  "causal_part", "plot_figures", "provenance"):  # the study's members only as far as it reads them
        assert f"rule {other}" not in planned
    assert "results/tiny/" not in planned  # the paper's language run is not this section's


@pytest.mark.parametrize("text, message", [("runs: [a]\n", "runs: Input should be a valid dictionary"),
                                           ("figures: {x: nowhere}\n", "figures.x: String should match pattern"),
                                           ("colour: red\n", "colour: Extra inputs are not permitted"),
                                           ("figures: {x: elsewhere/icl}\n", "figures come from ['elsewhere']"),
                                           ("bands: {a: olsson}\n", "bands {'a': 'olsson'} must map")])
def test_a_malformed_paper_is_refused_in_one_line(tmp_path, monkeypatch, text, message):
    import pipeline.plan as planning
    from pipeline.io import UserError

    (tmp_path / "paper").mkdir()
    (tmp_path / "paper" / "bad.yaml").write_text(text)
    monkeypatch.setattr(planning, "CONF_DIR", tmp_path)
    with pytest.raises(UserError) as refused:
        planning.plan_paper("bad")
    assert message in str(refused.value) and "\n" not in str(refused.value)
