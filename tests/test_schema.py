"""The config schema: every key of every composed config has a type and a range, and any value for any key
either composes into a valid config or is refused in one line naming the key, through the Snakefile's own
entry point (`plan`), before any job starts."""

import copy
import os
import string
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from pipeline.config import _leaves, compose
from pipeline.io import UserError
from pipeline.kinds.language.data import DATA_SOURCES
from pipeline.kinds.language.hub import HUB_FAMILIES
from pipeline.kinds.language.schema import DATA_SOURCE_NAMES, HUB_FAMILY_NAMES
from pipeline.kinds.language.tasks import TASKS
from pipeline.kinds.regression.scores import REGRESSION_SCORES
from pipeline.plan import plan
from pipeline.registry import KINDS
from pipeline.schema import TASK_NAMES, validate

REPO = Path(__file__).resolve().parent.parent
# One base per kind of config section: trained model + stdlib corpus, hub model + hub dataset, user files,
# the regression subject.
BASES = (["+experiment=tiny"], ["model=pythia_70m", "data=pile"], ["+experiment=tiny", "data=files"],
         ["+experiment=regression_tiny"])
KEYS = sorted({(i, key) for i, base in enumerate(BASES)
               for key, _ in _leaves(OmegaConf.to_container(compose(base)))})
# A value of each kind the issue lists: wrong type, out of range, negative, huge, empty, unicode.
CATEGORIES = {"wrong type": "many", "bool": "true", "negative": "-7", "zero": "0", "huge": "1000000000000000",
              "huge float": "1e308", "not finite": "nan", "empty string": "''", "empty list": "[]", "null": "null",
              "unicode": "'Δx✓'", "list": "[1,2]", "fraction": "0.5"}


def test_schema_names_match_the_registries():
    """The schema knows registry names without importing torch (the Snakefile parses it); they must agree."""
    assert KINDS["regression"].head_scores == tuple(REGRESSION_SCORES)
    assert DATA_SOURCE_NAMES == tuple(DATA_SOURCES)
    assert HUB_FAMILY_NAMES == tuple(HUB_FAMILIES)
    assert TASK_NAMES == tuple(TASKS)


def refused_in_one_line(overrides, key) -> bool:
    """True if the override set is refused as a UserError naming `key`; False if it composes. Anything else
    (a traceback-bound exception, a multi-line message) fails the test."""
    try:
        plan(overrides=overrides)
        return False
    except UserError as err:
        assert_names(str(err), key)
        return True


def assert_names(message: str, key: str):
    assert "\n" not in message, message
    assert key in message or key.rsplit(".", 1)[0] in message or "bad config override" in message, message


def with_value(cfg: dict, key: str, text: str) -> dict:
    """A copy of a composed config with `key` set to what Hydra's override parser makes of `text`."""
    value = OverridesParser.create().parse_override(f"{key}={text}").value()
    cfg = copy.deepcopy(cfg)
    *parents, leaf = key.split(".")
    node = cfg
    for part in parents:
        node = node[part]
    node[leaf] = value
    return cfg


@pytest.mark.parametrize("base, key", KEYS, ids=[f"{b}:{k}" for b, k in KEYS])
def test_every_key_has_a_type_and_range(base, key):
    """Each kind of value for every key: valid, or refused in one line naming the key; and every key refuses
    at least one kind (it is typed and ranged). The schema check runs on the composed config, as in compose."""
    composed = OmegaConf.to_container(compose(BASES[base]))
    refused = []
    for name, text in CATEGORIES.items():
        try:
            validate(with_value(composed, key, text))
        except UserError as err:
            assert_names(str(err), key)
            refused.append(name)
    assert refused, f"{key} accepts every kind of value: it has no declared type or range"


def override_values():
    word = st.text(string.ascii_letters + "_", min_size=1, max_size=12)
    unicode = st.text(min_size=0, max_size=12).map(lambda s: "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'")
    numbers = st.one_of(st.integers(-10**18, 10**18), st.floats(allow_nan=True, allow_infinity=True))
    return st.one_of(word, unicode, numbers.map(str), st.sampled_from(["null", "[]", "{}", "true", "''"]),
                     st.lists(st.integers(-5, 5), max_size=3).map(lambda xs: "[" + ",".join(map(str, xs)) + "]"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(KEYS), value=override_values())
def test_fuzzed_values_compose_or_fail_in_one_line(key, value):
    base, name = key
    refused_in_one_line([*BASES[base], f"{name}={value}"], name)


def test_declared_ranges_are_enforced():
    """Known values on both sides of some boundaries, with the refusal's text."""
    cases = {"train.steps=0": "train.steps=0: input should be greater than or equal to 1",
             "data.eval_fraction=1.0": "data.eval_fraction=1.0: input should be less than 1",
             "analysis.window.high=1.5": "analysis.window.high=1.5: input should be less than or equal to 1",
             "train.lr=inf": "train.lr=inf: input should be a finite number; give a finite number",
             "model.n_heads=3": "model.n_heads: 3 heads do not divide d_model=128",
             "model.icl_late=251": "analysis.icl: positions early=50, late=251 (window 10) must satisfy",
             "analysis.head_scores.seq_len=128": "analysis.head_scores.seq_len: 128 repeated twice after BOS needs "
                                                 "n_ctx >= 257",
             "analysis.ablation.n_sequences=2000": "analysis.ablation.n_sequences: 2000 exceeds the eval sample",
             "analysis.window.score=induction": None, "model.icl_late=250": None, "train.lr=1": None,
             "analysis.head_scores.seq_len=127": None}
    for override, expected in cases.items():
        if expected is None:
            plan(overrides=[override])
            continue
        with pytest.raises(UserError) as err:
            plan(overrides=[override])
        assert str(err.value).startswith(expected), str(err.value)
    with pytest.raises(UserError, match="analysis.window.score: 'induction' is not computed"):
        plan(overrides=["analysis.head_scores.names=[prefix_matching]", "analysis.window.score=induction"])
    with pytest.raises(UserError, match="model.hub.tokens_per_step: a revisions-family model"):
        plan(overrides=["model=pythia_70m", "model.hub.tokens_per_step=null"])


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from([k for b, k in KEYS if b == 0 and not k.startswith(("results_dir", "run_name"))]),
       value=st.sampled_from(list(CATEGORIES.values())))
def test_snakemake_refuses_bad_values_before_any_job(tmp_path_factory, key, value):
    """End to end through `snakemake` on the tiny config: a refused value exits non-zero with one error line
    and leaves no results directory; an accepted one builds the DAG."""
    work = tmp_path_factory.mktemp("fuzz")
    overrides = f"[+experiment=tiny,results_dir={work / 'results'},{key}={value}]"
    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-n", "--cores", "1",
                             "--config", f"overrides={overrides}"], cwd=work, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    out = result.stdout + result.stderr
    assert "Traceback" not in out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    if result.returncode:
        assert len(errors) == 1, out[-2000:]
        assert not (work / "results").exists()
    else:
        assert not errors and list((work / "results").glob("tiny*/config.yaml")), out[-2000:]
