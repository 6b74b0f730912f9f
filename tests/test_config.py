"""Config composition: every group option composes, overrides parse, run names never collide."""

from pathlib import Path

import pytest
from conftest import fake_reference
from omegaconf import OmegaConf

from pipeline.config import (
    CONF_DIR,
    compose,
    expand_sweep,
    load_study,
    model_configs,
    parse_overrides,
    resolve_run,
    section,
)
from pipeline.dag import Dag
from pipeline.interventions import reads
from pipeline.io import UserError
from pipeline.plan import plan
from pipeline.registry import KINDS
from pipeline.schedule import checkpoint_steps


@pytest.mark.parametrize("group, option", [(p.parent.name, p.stem) for p in sorted(CONF_DIR.glob("*/*.yaml"))
                                           if not p.stem.startswith("_") and p.parent.name not in ("study", "paper")])
def test_every_config_option_composes(group, option, tmp_path, monkeypatch):
    """Each option composes (an option of a sampler kind with that kind's experiment; a set of interventions
    beside stand-ins for the files it reads) and is what is selected."""
    spec = OmegaConf.load(CONF_DIR / group / f"{option}.yaml")
    monkeypatch.chdir(tmp_path)
    for path in reads(spec.get("interventions")):
        fake_reference(path, compose(["model=attn_only_2l"]).model)
    kind = next((k for k in ("regression", "markov")
                 if spec.get("kind") == k or spec.get("source") in KINDS[k].data_sources), None)
    override = f"+experiment={option}" if group == "experiment" else f"{group}={option}"
    cfg = compose([*([f"+experiment={kind}"] if kind else []), override])
    if group == "model":
        assert cfg.model.name == option
    if group == "data":
        assert cfg.data.source == spec.source
    if cfg.model.source == "hub":  # indices into TransformerLens's label list, which the fetch resolves
        assert cfg.model.hub.name and cfg.model.hub.checkpoints and cfg.model.tokenizer


def test_overrides_parse_from_list_or_string():
    assert parse_overrides(["a=1", "b=2"]) == ["a=1", "b=2"]
    assert parse_overrides("[train.steps=5, data.paths=[x.txt,y.txt]]") == ["train.steps=5",
                                                                           "data.paths=[x.txt,y.txt]"]
    assert parse_overrides(None) == []
    # sweeps stay whole, also when snakemake --config has already split '[seed=0,1]' as YAML
    assert parse_overrides("[seed=0,1,2, model=a,b]") == ["seed=0,1,2", "model=a,b"]
    assert parse_overrides(["seed=0", 1, "+experiment=tiny"]) == ["seed=0,1", "+experiment=tiny"]
    assert parse_overrides("[+experiment=tiny,~model.d_model,model=a]") == ["+experiment=tiny", "~model.d_model",
                                                                           "model=a"]


def test_run_name_is_the_identity_of_the_resolved_config():
    assert resolve_run([]).name == "default"
    assert resolve_run(["train.steps=3000"]).name == "default"  # the default value: the default run
    a, b = resolve_run(["train.steps=5"]).name, resolve_run(["train.steps=6"]).name
    assert a != b and a.startswith("train.steps=5-")
    assert resolve_run(["seed=1", "train.steps=3000"]).name == resolve_run(["seed=1"]).name
    assert resolve_run(["+experiment=tiny"]).name == "tiny"


def test_a_named_experiments_variant_gets_a_directory_of_its_own():
    """`+experiment=tiny,seed=1` must not plan into the seed-0 run's results/tiny: the experiment's name, what the
    variant changes and its hash; jobs.* (how, not what) keeps the name; a name the user gives is kept."""
    variant = resolve_run(["+experiment=tiny", "seed=1"]).name
    assert variant.startswith("tiny_seed=1-") and variant != resolve_run(["+experiment=tiny", "seed=2"]).name
    assert resolve_run(["+experiment=tiny", "data=files"]).name.startswith("tiny_data")
    assert resolve_run(["+experiment=tiny", "jobs.train_split_at=[0.5]"]).name == "tiny"
    assert resolve_run(["+experiment=tiny", "seed=1", "run_name=mine"]).name == "mine"


def test_a_run_the_user_names_over_another_configs_results_is_refused_in_one_line(tmp_path):
    """The directory results/mine holds the seed-0 tiny config: naming a seed-1 run `mine` is refused, naming
    the same config again is not (a rerun)."""
    results = f"results_dir={tmp_path}"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.yaml").write_text(resolve_run(["+experiment=tiny", results, "run_name=mine"]).to_yaml())
    plan(overrides=["+experiment=tiny", results, "run_name=mine"])
    with pytest.raises(UserError, match=r"mine holds another config's results \(identity [0-9a-f]{12}, this run's "
                                        r"[0-9a-f]{12}\); give this run another run_name") as refused:
        plan(overrides=["+experiment=tiny", results, "seed=1", "run_name=mine"])
    assert "\n" not in str(refused.value)


def test_sweeps_expand_with_hydras_parser_in_order():
    assert expand_sweep(["seed=range(0,2)", "model=a,b", "train.lr=0.1"]) == [
        ["seed=0", "model=a", "train.lr=0.1"], ["seed=0", "model=b", "train.lr=0.1"],
        ["seed=1", "model=a", "train.lr=0.1"], ["seed=1", "model=b", "train.lr=0.1"]]


def test_the_olsson_study_has_three_seeds_of_six_variants():
    study = load_study("olsson")
    assert [m.values for m in study.members] == [{"seed": "0"}, {"seed": "1"}, {"seed": "2"}]
    assert len({m.name for m in study.members}) == 3 and study.band == "seed"
    for seed, member in enumerate(study.members):
        assert len(member.configs) == 6 and {c.seed for c in member.configs.values()} == {seed}
    smeared = study.members[0].configs["attn_only_1l_smeared"].model
    assert smeared.smeared_keys and smeared.n_layers == 1
    assert study.members[0].configs["transformer_2l"].model.d_mlp == 512


def test_study_members_are_named_by_their_configs_even_when_the_experiment_names_the_run():
    study = load_study(sweep="[seed=0,1]", overrides="[+experiment=tiny]")
    names = [m.name for m in study.members]
    assert len(set(names)) == 2 and "tiny" not in names and study.name.startswith("sweep-")


def test_bad_studies_fail_in_one_line():
    with pytest.raises(UserError, match="unknown study 'nope'.*olsson"):
        load_study("nope")
    with pytest.raises(UserError, match="sweeps nothing"):
        load_study(sweep="[]", overrides="[seed=1]")
    with pytest.raises(UserError, match="identical configs"):
        load_study(sweep="[seed=0,0]")


def test_model_override_selects_the_run_models():
    configs = model_configs(["model=attn_only_3l", "train.steps=7"])
    assert list(configs) == ["attn_only_3l"]
    assert configs["attn_only_3l"].model.n_layers == 3 and configs["attn_only_3l"].train.steps == 7
    assert list(model_configs([])) == ["attn_only_1l", "attn_only_2l"]


def test_section_is_canonical_json_of_only_the_named_keys():
    cfg = compose([])
    assert section(cfg, "analysis.icl", "seed") == section(compose(["train.steps=1"]), "analysis.icl", "seed")
    assert section(cfg, "analysis.icl") != section(compose(["analysis.icl.window=4"]), "analysis.icl")


def test_checkpoint_schedule_is_log_spaced_with_step_zero_and_final():
    steps = checkpoint_steps(compose([]).train)
    assert steps[0] == 0 and steps[1] == 50 and steps[-1] == 3000 and len(steps) == 31
    gaps = [b / a for a, b in zip(steps[1:], steps[2:])]
    assert max(gaps) / min(gaps) < 1.2


def test_unknown_model_lists_the_choices():
    with pytest.raises(UserError, match="attn_only_2l"):
        model_configs(["model=gpt5"])


def test_run_config_holds_the_run_level_once_and_each_models_own(tmp_path):
    """config.yaml: run-level sections once (`run`), subject-level per model; each step's config, read back,
    is the composed one."""
    from pipeline.config import RUN_LEVEL, load_run_config

    run = resolve_run(["+experiment=tiny", "seed=3"])
    path = tmp_path / "config.yaml"
    path.write_text(run.to_yaml())
    written = OmegaConf.load(path)
    assert set(written.run) == set(RUN_LEVEL) and written.run.seed == 3
    for model, cfg in run.configs.items():
        assert set(written.models[model]) == {"data", "model", "train", "analysis"}
        assert OmegaConf.to_container(load_run_config(path, model)) == OmegaConf.to_container(cfg)
    with pytest.raises(UserError, match="model attn_only_3l is not in"):
        load_run_config(path, "attn_only_3l")


def test_the_llc_is_on_for_trained_models_and_opt_in_for_hub_models():
    """Every trained model of a run gets the LLC tables and figures by default; a hub model only when asked, and a
    run mixing both collects the LLC of the models that have it."""
    from pipeline.outputs import has_table, run_figures, run_tables

    trained, hub = compose(["model=attn_only_2l"]), compose(["model=attn_only_2l_hub"])
    hub_on = compose(["model=attn_only_2l_hub", "analysis.llc.hub=true"])
    off = compose(["model=attn_only_2l", "analysis.llc.enabled=false"])
    llc = {"llc", "llc_trace", "llc_heads"}
    assert llc <= set(run_tables([trained])) and "llc_slope" in run_figures([trained])
    assert not llc & set(run_tables([hub])) and "llc_slope" not in run_figures([hub])
    assert llc <= set(run_tables([hub_on])) and not llc & set(run_tables([off]))
    assert llc <= set(run_tables([hub, trained])) and [has_table("llc", c) for c in (hub, trained)] == [False, True]


def test_the_clamping_study_plans_the_run_it_reads_a_checkpoint_of(tmp_path, monkeypatch):
    """Its induction arm reads the default run's final 2L checkpoint: on a fresh directory the plan holds the
    default run beside the eight members (four arms x two seeds, each arm its model and interventions), and the
    arm's training reads that run's last training job (an edge: Snakemake builds or reuses it). A reference no
    run makes and no file holds is refused in one line."""
    monkeypatch.chdir(tmp_path)
    study, runs = plan(study="clamping")
    assert list(runs) == [*(m.name for m in study.members), "default"]
    graph = Dag(runs, Path("results"), [study])
    assert graph.members(study) == [m.name for m in study.members] and graph.targets == []
    reads = {tuple(graph.intervention_reads(m.name, model)) for m in study.members for model in m.configs}
    assert reads == {(), ("results/default/models/attn_only_2l/checkpoints/to_003000",)}
    assert "results/default/models/attn_only_2l/checkpoints/to_003000/step_003000.safetensors" in \
        graph.checkpoint_files("default", "attn_only_2l")
    assert not any(graph.external_reads(m.name, model) for m in study.members for model in m.configs)
    with pytest.raises(UserError) as refused:
        plan(overrides=["model=attn_only_2l", "train.interventions=[{kind: clamp_from, layer: 1, heads: [2], "
                                              "checkpoint: results/nowhere/models/m/step_000010.safetensors}]"])
    assert "does not exist and no run makes it" in str(refused.value) and "\n" not in str(refused.value)
    reference = Path("results/default/models/attn_only_2l/checkpoints/to_003000/step_003000.safetensors")
    study = load_study("clamping")
    arms = {"none": [], "previous_token_l0": [{"kind": "clamp_pattern", "layer": 0, "heads": [0],
                                              "pattern": "previous_token"}],
            "induction_from_default": [{"kind": "clamp_from", "layer": 1, "heads": [2], "checkpoint": str(reference)}],
            "smeared_keys": []}
    assert [m.values for m in study.members] == [{"arm": a, "seed": str(s)} for a in arms for s in range(2)]
    for member in study.members:
        arm = member.values["arm"]
        model = "attn_only_2l_smeared" if arm == "smeared_keys" else "attn_only_2l"
        assert {m: list(c.train.interventions) for m, c in member.configs.items()} == {model: arms[arm]}
        assert next(iter(member.configs.values())).train.steps == 2000
    assert len({m.name for m in study.members}) == 8


def test_arms_that_are_not_a_mapping_of_override_lists_are_refused_in_one_line(monkeypatch, tmp_path):
    import pipeline.config as config

    (tmp_path / "study").mkdir()
    for arms in ("[none, clamped]", "{clamped: interventions=previous_token_l0}"):
        (tmp_path / "study" / "bad.yaml").write_text(f"arms: {arms}\nsweep:\n  seed: 0\n")
        monkeypatch.setattr(config, "CONF_DIR", tmp_path)
        with pytest.raises(UserError, match="arms must map each arm's name to a list of overrides") as refused:
            load_study("bad")
        assert "\n" not in str(refused.value)
