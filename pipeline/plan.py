"""What the Snakefile runs: one run or a study's members, every config validated and every directory checked,
plus the runs whose checkpoints they read — the cross-run edges.

A run that clamps heads from another run's checkpoint (`clamp_from`, e.g. the clamping study's induction arm
reading the default run's final 2L checkpoint) has that run in its DAG: the reference's training job is an input
of its own, so Snakemake builds the reference when it is missing and reuses it when it is up to date. A run is
found from its directory's name (`default`, or a named experiment's `run_name`); a reference no run makes must
exist as a file, or the plan is refused in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

from omegaconf import DictConfig, OmegaConf
from pydantic import Field, ValidationError

from pipeline.config import CONF_DIR, Run, Study, compose, group_options, load_study, require_own_directory, resolve_run
from pipeline.interventions import check_reference, reads
from pipeline.io import UserError, cache_home, require_writable
from pipeline.registry import kind_of
from pipeline.schedule import checkpoint_name, segments
from pipeline.sections import Name, Section, Text


class PaperSpec(Section):
    """conf/paper/<name>.yaml: runs by label (their overrides), studies by name, the figures its pages show."""
    description: Optional[Text] = None
    runs: dict[Name, list[Text]] = {}
    studies: list[Name] = []
    figures: dict[Name, Annotated[str, Field(pattern=r"^[A-Za-z0-9_.=+-]+/[A-Za-z0-9_]+$")]] = {}
    bands: dict[Name, Name] = {}  # run label -> a study whose seed bands the figure across kinds draws for it


def checkpoint_dirs(run: Run, results: Path) -> dict[Path, tuple[str, Path]]:
    """Every checkpoint a run's trained models write -> (its model, the training job's directory, a rule output)."""
    found = {}
    for model, cfg in run.configs.items():
        if cfg.model.source != "trained":
            continue
        for segment, steps in segments(cfg.train, cfg.jobs.train_split_at).items():
            directory = results / run.name / "models" / model / "checkpoints" / segment
            found.update({directory / checkpoint_name(step): (model, directory) for step in steps})
    return found


def named_run(name: str) -> Run | None:
    """The run whose directory is `name` when the name says which config it holds: the default run, or a named
    experiment's own run (its `run_name`); None for any other name (a slug's config cannot be read back)."""
    candidates = [[]] + [[f"+experiment={e}"] for e in group_options("experiment")
                         if compose([f"+experiment={e}"]).run_name == name]
    for overrides in candidates:
        run = resolve_run(overrides)
        if run.name == name:
            return run
    return None


def producer(path: Path, results: Path, planned: dict[str, Run]) -> Run | None:
    """The run that writes checkpoint `path` (results/<run>/models/<model>/checkpoints/...), planned or named."""
    try:
        name = path.relative_to(results).parts[0]
    except (ValueError, IndexError):
        return None
    run = planned.get(name) or named_run(name)
    return run if run is not None and path in checkpoint_dirs(run, results) else None


def reference_shape(cfg: DictConfig) -> dict:
    """A model's shape as a reference checkpoint's sidecar gives it (layers, heads, context)."""
    return {"n_layers": cfg.model.n_layers, "n_heads": cfg.model.n_heads, "n_ctx": kind_of(cfg).context_length(cfg)}


def referenced_runs(runs: dict[str, Run], results: Path) -> dict[str, Run]:
    """The runs whose checkpoints the planned runs' interventions read and that are not planned already, each
    reference checked against the model it comes from; a reference no run makes is refused unless it exists."""
    extra: dict[str, Run] = {}
    for run in list(runs.values()):
        for model, cfg in run.configs.items():
            for i, spec in enumerate(cfg.train.interventions):
                for path in map(Path, reads([spec])):
                    source = producer(path, results, {**runs, **extra})
                    if source is None and not path.is_file():
                        raise UserError(f"train.interventions[{i}]: {spec.kind} checkpoint {path} does not exist and "
                                        f"no run makes it (results/<run>/... of the default run or a named "
                                        f"experiment); train the reference first or point at an existing checkpoint")
                    if source is not None:
                        reference = source.configs[checkpoint_dirs(source, results)[path][0]]
                        error = check_reference(spec, reference_shape(reference), reference_shape(cfg), path)
                        if error:
                            raise UserError(f"train.interventions[{i}]: {spec.kind} {error}")
                        if source.name not in runs:
                            extra[source.name] = source
    return extra


def plan(study: str | None = None, sweep=None, overrides=None) -> tuple[Study | None, dict[str, Run]]:
    """What the Snakefile runs: a study's members or one run, by name, then the runs they read checkpoints of;
    every config validated and every directory the runs write checked writable; refuses bad input before any
    job starts."""
    if study or sweep:
        study = load_study(study, sweep, overrides)
        return study, checked({run.name: run for run in study.members}, [study.name])
    run = resolve_run(overrides)
    return None, checked({run.name: run}, [])


@dataclass
class Paper:
    """A paper's runs and studies (conf/paper/<name>.yaml): every figure and number its pages show comes from them."""
    name: str
    runs: dict[str, str]  # label -> run name: the runs whose every output the paper asks for
    studies: list[Study]
    figures: dict[str, tuple[str, str]]  # a figure the docs show -> (a run's label or a study's name, its figure)
    bands: dict[str, str]  # a run's label -> the study whose seed bands the figure across kinds draws beside it


def plan_paper(name: str) -> tuple[Paper, dict[str, Run]]:
    """A paper's runs, its studies' members (a member equal to a run is that run) and the runs they read."""
    path = CONF_DIR / "paper" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (CONF_DIR / "paper").glob("*.yaml"))
        raise UserError(f"unknown paper '{name}'; choose one of {known} (conf/paper/<name>.yaml)")
    try:
        spec = PaperSpec.model_validate(OmegaConf.to_container(OmegaConf.load(path)) or {})
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        raise UserError(f"{path}: {'.'.join(map(str, first['loc']))}: {first['msg']}; fix it (a paper has "
                        f"{sorted(PaperSpec.model_fields)})") from None
    singles = {label: resolve_run(overrides) for label, overrides in spec.runs.items()}
    studies = [load_study(study) for study in spec.studies]
    runs: dict[str, Run] = {}
    for run in [*singles.values(), *(member for study in studies for member in study.members)]:
        runs.setdefault(run.name, run)
    figures = {figure: tuple(source.split("/", 1)) for figure, source in spec.figures.items()}
    sources = {*singles, *(study.name for study in studies)}
    unknown = sorted({source for source, _ in figures.values()} - sources)
    if unknown:
        raise UserError(f"{path}: figures come from {unknown}, which are not its runs or studies; use one of "
                        f"{sorted(sources)} (figure: <run label or study>/<figure name>)")
    wrong = {label: study for label, study in spec.bands.items() if label not in singles or study not in spec.studies}
    if wrong:
        raise UserError(f"{path}: bands {wrong} must map one of its runs {sorted(singles)} to one of its studies "
                        f"{spec.studies}; fix the bands key")
    paper = Paper(name, {label: run.name for label, run in singles.items()}, studies, figures, spec.bands)
    return paper, checked(runs, [study.name for study in studies])


def checked(runs: dict[str, Run], studies: list[str]) -> dict[str, Run]:
    """The runs with the runs they read checkpoints of, once every directory they (and the studies) write is
    checked: writable, and not another config's."""
    configs = [c for r in runs.values() for c in r.configs.values()]
    if len({str(c.results_dir) for c in configs}) > 1:
        raise UserError("a study's members must share results_dir; set it outside the sweep")
    results = Path(configs[0].results_dir)
    runs = {**runs, **referenced_runs(runs, results)}
    require_writable(results, "results_dir")
    for name in [*runs, *studies]:  # each run's (and each study's) own directory
        require_writable(results / name, "run_name" if configs[0].run_name == name else "results_dir")
    for name, run in runs.items():
        require_own_directory(results / name, run)
    if any(c.model.source == "hub" or c.data.source in kind_of(c).hub_data_sources for c in configs):
        require_writable(cache_home(configs[0].hub_cache), "hub_cache")
    return runs
