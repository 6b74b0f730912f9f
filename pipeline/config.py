"""Compose the Hydra config (conf/ is the single source of truth) for the Snakefile and the CLIs."""

from __future__ import annotations

import copy
import functools
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from pipeline.io import UserError
from pipeline.registry import kind_folders
from pipeline.schema import validate

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
MODEL_SOURCES = ["trained", "hub"]  # where a model's checkpoints come from; each has its rule in rules/


_NEXT_OVERRIDE = re.compile(r"\s*(?:[+~]{0,2}[A-Za-z_][\w.@/-]*=|~[A-Za-z_][\w.@/-]*\s*(?=,|$))")


def parse_overrides(overrides) -> list[str]:
    """Accept a list, a '[a=1, b=[x,y]]' string or a single 'a=1' string from `--config overrides=`.

    A comma splits overrides only outside brackets and before another `key=`, so sweeps (`seed=0,1,2`)
    and lists (`paths=[x,y]`) stay whole."""
    if overrides is None:
        return []
    if not isinstance(overrides, str):  # snakemake --config reads '[seed=0,1]' as YAML: ['seed=0', 1]
        overrides = ",".join(map(str, overrides))
    text = overrides.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"[": 1, "]": -1, "(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0 and _NEXT_OVERRIDE.match(text, i + 1):
            parts.append(text[start:i])
            start = i + 1
    return [p.strip() for p in [*parts, text[start:]] if p.strip()]


def compose(overrides=()) -> DictConfig:
    """The root config with Hydra `overrides` applied and every interpolation resolved."""
    return copy.deepcopy(_compose(tuple(overrides)))  # a study composes the same member configs many times


@functools.lru_cache(maxsize=None)
def _compose(overrides: tuple[str, ...]) -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        searchpath = [f"file://{path}" for path in kind_folders("conf")]  # config groups a kind ships itself
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = hydra_compose("config", overrides=[*overrides, *([f"hydra.searchpath=[{','.join(searchpath)}]"]
                                                                   if searchpath else [])])
        OmegaConf.resolve(cfg)
    except (HydraException, OmegaConfBaseException) as err:
        lines = []
        for line in map(str.strip, str(err).splitlines()):
            if line.startswith(("Config search path", "full_key", "object_type")):
                break
            lines.append(line)
        reason = " ".join(filter(None, lines))
        raise UserError(f"bad config override {list(overrides)}: {reason} "
                        f"(overrides look like key=value or group=option; groups live in {CONF_DIR})") from None
    validate(OmegaConf.to_container(cfg))
    return cfg


def _leaves(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def group_options(group: str) -> list[str]:
    """A config group's options: conf/<group>/*.yaml, and those of the kinds that ship their own conf/."""
    return sorted({p.stem for folder in [CONF_DIR, *kind_folders("conf")] for p in (folder / group).glob("*.yaml")
                   if not p.stem.startswith("_")})


def split_model_override(overrides: list[str]) -> tuple[list[str] | None, list[str]]:
    """Pull a `model=NAME` override out: it selects the run's models instead of a single group option."""
    models, rest = None, []
    for o in overrides:
        if o.startswith("model="):
            models = [m for m in o.split("=", 1)[1].strip("[]").split(",") if m]
        else:
            rest.append(o)
    return models, rest


def model_configs(overrides) -> dict[str, DictConfig]:
    """One fully composed config per model of the run, keyed by model name."""
    models, rest = split_model_override(parse_overrides(overrides))
    models = models or list(compose(rest).models)
    known = group_options("model")
    for m in models:
        if m not in known:
            raise UserError(f"unknown model '{m}' in models; choose one of {known} (conf/model/<name>.yaml)")
    configs = {m: compose([f"model={m}", *rest]) for m in models}
    for m, cfg in configs.items():
        if cfg.model.source not in MODEL_SOURCES:
            raise UserError(f"model {m} has source '{cfg.model.source}', which this pipeline cannot produce; "
                            f"model sources: {MODEL_SOURCES}")
    return configs


# Keys of the run as a whole, the same for each of its models: its models, where and how it executes, its seed
# and its figures. The rest (data, model, train, analysis) is each model's, the subject's.
RUN_LEVEL = ("models", "run_name", "results_dir", "seed", "hub_cache", "resources", "jobs", "figures")
# Keys that say where and how a run executes, not what it computes: they do not change its identity.
NAMED_GROUPS = ("interventions",)  # config groups whose choice names a run (conf/interventions/<name>.yaml)
NOT_IDENTITY = ("run_name", "results_dir", "hub_cache", "resources", "jobs")


def identity(configs: dict[str, DictConfig]) -> str:
    """sha256 of a run's resolved per-model configs, less NOT_IDENTITY: two override texts that resolve
    to the same configs are the same run."""
    plain = {m: {k: v for k, v in OmegaConf.to_container(c).items() if k not in NOT_IDENTITY}
             for m, c in configs.items()}
    return hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()


def run_name(configs: dict[str, DictConfig], overrides=()) -> str:
    """Run directory name: the `run_name` the user gives; an experiment's `run_name` for that experiment's own
    config, and for a variant of it the name with a slug of what the variant changes and its hash; 'default' for
    the default configs; else a readable slug of what differs from the defaults and the hash of the resolved
    configs. So a directory belongs to one config."""
    first_model, cfg = next(iter(configs.items()))
    if cfg.run_name and named_by_user(overrides):
        return str(cfg.run_name)
    if cfg.run_name:
        experiment = [o for o in overrides if o.lstrip("+").startswith("experiment=")]
        own = model_configs(experiment)
        if identity(configs) == identity(own):
            return str(cfg.run_name)
        groups = [o.lstrip("+") for o in overrides if o.lstrip("+").split("=", 1)[0] in NAMED_GROUPS]
        reference = experiment_reference([*experiment, *groups], first_model, overrides)
        return f"{cfg.run_name}_{slug(configs, overrides, reference, groups, list(own))}-{identity(configs)[:8]}"
    default = model_configs([])
    if identity(configs) == identity(default):
        return "default"
    # named sets (interventions=<name>) name the run; so does the experiment a model of another kind composes only
    # with: the slug names them and lists what else differs from them
    groups = [o.lstrip("+") for o in overrides if o.lstrip("+").split("=", 1)[0] in NAMED_GROUPS]
    try:
        reference = compose([*groups, f"model={first_model}"])
    except UserError:
        groups = [o.lstrip("+") for o in overrides if not o.startswith("model=")
                  and group_options(o.lstrip("+").split("=", 1)[0])]
        reference = compose([*(o for o in overrides if o.lstrip("+") in groups), f"model={first_model}"])
    return f"{slug(configs, overrides, reference, groups, list(default))}-{identity(configs)[:8]}"


def experiment_reference(named: list[str], model: str, overrides) -> DictConfig:
    """What a variant of a named experiment is compared with: the experiment with this model (and the overrides'
    key deletions, which another kind's model may need: ~model.d_model), else the model's defaults."""
    deletions = [o for o in overrides if o.startswith("~")]
    try:
        return compose([*named, f"model={model}", *deletions])
    except UserError:
        return compose([f"model={model}"])


def slug(configs: dict[str, DictConfig], overrides, reference: DictConfig, groups: list[str], models: list[str]):
    """What the first model's config changes from `reference`, readable: the named groups, the keys the overrides
    name, the models (unless `models`), then the other changed keys; at most 40 characters."""
    reference = dict(_leaves(OmegaConf.to_container(reference)))
    named = {o.split("=", 1)[0] for o in overrides}
    changed = [f"{k}={v}" for k, v in _leaves(OmegaConf.to_container(next(iter(configs.values()))))
               if k.split(".")[0] not in NOT_IDENTITY + ("models",) and reference.get(k, object()) != v]
    changed = groups + ([kv for kv in changed if kv.split("=", 1)[0] in named]
               + ([] if list(configs) == models else ["+".join(configs)])
               + [kv for kv in changed if kv.split("=", 1)[0] not in named])
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", ",".join(changed))[:40].strip("_") or "run"


def named_by_user(overrides) -> bool:
    """Whether the overrides name the run (run_name=...), rather than an experiment's YAML."""
    return any(o.lstrip("+").split("=", 1)[0] == "run_name" and o.split("=", 1)[1] not in ("null", "")
               for o in overrides)


def require_own_directory(directory: Path, run: "Run"):
    """Refuse a run the user named whose directory holds another config's results: never a silent rebuild over
    them."""
    written = Path(directory) / "config.yaml"
    if not named_by_user(run.overrides) or not written.is_file():
        return
    models = OmegaConf.load(written).models
    theirs, ours = identity({m: load_run_config(written, m) for m in models}), identity(run.configs)
    if theirs != ours:
        raise UserError(f"{directory} holds another config's results (identity {theirs[:12]}, this run's "
                        f"{ours[:12]}); give this run another run_name, or remove {directory}")


@dataclass
class Run:
    """One run: its overrides, one resolved config per model, and the directory name they determine."""
    overrides: list[str]
    configs: dict[str, DictConfig]
    name: str = ""
    values: dict = field(default_factory=dict)  # the swept keys' values, for a study member

    def __post_init__(self):
        self.name = self.name or run_name(self.configs, self.overrides)

    def to_yaml(self) -> str:
        """The run's resolved config file (results/<run>/config.yaml) that every step reads: the run-level
        sections once (`run`), then each model's subject-level sections (`models`)."""
        first = OmegaConf.to_container(next(iter(self.configs.values())))
        return OmegaConf.to_yaml({"overrides": self.overrides, "run": {k: first[k] for k in RUN_LEVEL},
                                  "models": {m: {k: v for k, v in OmegaConf.to_container(c).items()
                                                 if k not in RUN_LEVEL} for m, c in self.configs.items()}})


def resolve_run(overrides) -> Run:
    return Run(parse_overrides(overrides), model_configs(overrides))


def load_run_config(path: Path, model: str) -> DictConfig:
    """One model's resolved config from a run's config.yaml (written as the Snakefile builds the DAG): the
    run-level sections with the model's own."""
    written = OmegaConf.load(path)
    if model not in written.models:
        raise UserError(f"model {model} is not in {path} (it has {list(written.models)}); rerun snakemake")
    return OmegaConf.merge(written.run, written.models[model])


def expand_sweep(sweep: list[str]) -> list[list[str]]:
    """Hydra sweep overrides (`seed=0,1,2`, `seed=range(3)`, `model=a,b`) -> one override list per member,
    the cartesian product in the order given, parsed by Hydra's own override parser."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides([str(s) for s in sweep])
    except HydraException as err:
        raise UserError(f"bad sweep {sweep}: {str(err).splitlines()[0]} "
                        f"(sweeps look like seed=0,1,2 or seed=range(0,3))") from None
    axes = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] if o.is_sweep_override()
            else [f"{o.get_key_element()}={o.get_value_element_as_str()}"] for o in parsed]
    return [list(member) for member in itertools.product(*axes)]


STUDY_KEYS = {"description", "overrides", "arms", "sweep", "band"}


def unbounded(value):
    """A swept value as a study's tables hold it: a null (data.n_tasks: M = inf) is unbounded, inf."""
    return float("inf") if value is None else value


@dataclass
class Study:
    """Runs that differ in the swept keys, aggregated over `band` (bands of median and min-max)."""
    name: str
    members: list[Run]
    swept: list[str]
    band: str = "seed"

    def spec(self, score: str, n_components: int) -> dict:
        """What the aggregation reads (results/<study>/study.yaml): members with their swept values (typed
        as YAML reads them) and models, the band key, the window score and the PCA size."""
        import yaml

        first = next(iter(self.members[0].configs.values()))
        return {"name": self.name, "kind": str(first.model.kind), "swept": self.swept, "band": self.band,
                "score": score,
                "pca_components": n_components, "seed": int(first.seed),
                "members": [{"name": m.name, "values": {k: yaml.safe_load(v) for k, v in m.values.items()},
                             "models": list(m.configs)} for m in self.members]}


def load_study(name: str | None = None, sweep=None, overrides=None) -> Study:
    """A declared study (conf/study/<name>.yaml: overrides, arms, sweep {key: values}, band) or an ad hoc sweep.
    Arms ({name: [overrides]}) are variants that are not a product of keys (Hydra sweeps only multiply): each
    arm runs at every point of the sweep, and its name is the variant's `arm` column."""
    fixed, band, arms = parse_overrides(overrides), "seed", {}
    if name:
        path = CONF_DIR / "study" / f"{name}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in (CONF_DIR / "study").glob("*.yaml"))
            raise UserError(f"unknown study '{name}'; choose one of {known} (conf/study/<name>.yaml)")
        spec = OmegaConf.to_container(OmegaConf.load(path))
        unknown = set(spec) - STUDY_KEYS
        if unknown:
            raise UserError(f"{path} has unknown key(s) {sorted(unknown)}; a study has {sorted(STUDY_KEYS)}")
        fixed = [*map(str, spec.get("overrides") or []), *fixed]
        sweep = [f"{k}={v}" for k, v in (spec.get("sweep") or {}).items()]
        band = spec.get("band", band)
        arms = spec.get("arms") or {}
        if not isinstance(arms, dict) or not all(isinstance(v, (list, type(None))) for v in arms.values()):
            raise UserError(f"{path}: arms must map each arm's name to a list of overrides "
                            f"(arms: {{plain: [], clamped: [interventions=previous_token_l0]}})")
        arms = {str(arm): list(map(str, arm_overrides or [])) for arm, arm_overrides in arms.items()}
    else:
        sweep = parse_overrides(sweep)
        name = "sweep-" + hashlib.sha256(",".join([*sweep, "|", *fixed]).encode()).hexdigest()[:8]
    if not sweep:
        raise UserError(f"study {name} sweeps nothing; give it a sweep such as seed=0,1,2")
    swept = [*(["arm"] if arms else []), *(s.split("=", 1)[0] for s in sweep)]
    members = []
    for (arm, arm_overrides), member in itertools.product(arms.items() or [(None, [])], expand_sweep(sweep)):
        run = resolve_run([*fixed, *arm_overrides, *member, "run_name=null"])  # members are named by their configs
        run.values = {**({"arm": arm} if arms else {}), **dict(o.split("=", 1) for o in member)}
        members.append(run)
    names = [m.name for m in members]
    if len(set(names)) < len(names):
        raise UserError(f"study {name} has members with identical configs ({names}); sweep keys that change them")
    return Study(name, members, swept, band)


def section(cfg: DictConfig, *keys: str) -> str:
    """Canonical JSON of some config sections: a Snakemake param, so a change reruns exactly that rule."""
    def plain(value):
        return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value

    return json.dumps({k: plain(OmegaConf.select(cfg, k)) for k in keys}, sort_keys=True)
