"""Config composition: every group option composes, overrides parse, run names never collide."""

import pytest

from pipeline.config import CONF_DIR, compose, model_configs, parse_overrides, run_name, section
from pipeline.io import UserError
from pipeline.schedule import checkpoint_steps


@pytest.mark.parametrize("group, option", [(p.parent.name, p.stem) for p in sorted(CONF_DIR.glob("*/*.yaml"))
                                           if not p.stem.startswith("_")])
def test_every_config_option_composes(group, option):
    override = f"+experiment={option}" if group == "experiment" else f"{group}={option}"
    cfg = compose([override])
    assert cfg.model.name and cfg.model.n_ctx > 0 and cfg.train.steps > 0
    if cfg.model.source == "hub":  # indices into TransformerLens's label list, which the fetch resolves
        assert cfg.model.hub.name and cfg.model.hub.checkpoints and cfg.model.tokenizer


def test_overrides_parse_from_list_or_string():
    assert parse_overrides(["a=1", "b=2"]) == ["a=1", "b=2"]
    assert parse_overrides("[train.steps=5, data.paths=[x.txt,y.txt]]") == ["train.steps=5",
                                                                           "data.paths=[x.txt,y.txt]"]
    assert parse_overrides(None) == []


def test_run_names_differ_per_override_set():
    base = compose([])
    assert run_name(base, []) == "default"
    a, b = run_name(base, ["train.steps=5"]), run_name(base, ["train.steps=6"])
    assert a != b and a.startswith("train.steps=5-")
    assert run_name(compose(["+experiment=tiny"]), ["+experiment=tiny"]) == "tiny"


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
