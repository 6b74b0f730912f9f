"""The one registry of a run's and a study's tables and figures (torch-free: the Snakefile reads it).

A table is collected from per-model parquet files written by a step; a figure is drawn by a module's
function of the same name and goes into `snakemake --report` with `report/<name>.rst` as its caption.
The Snakefile derives its targets from here, the figure modules draw exactly these, the tests check them.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.registry import KINDS, FigureModule, kind_folders, resolved

REPORT_DIR = Path(__file__).resolve().parent.parent / "report"

# table -> the step writing its per-model parquet (models/<model>/<table>.parquet): the shared steps', then
# each kind's own steps' and the extra tables of its score step
TABLES = {
    "integrity": "check_checkpoints", "head_scores": "score_checkpoints", "composition": "score_checkpoints",
    "icl": "score_icl", "loss_by_position": "score_icl", "pca": "loss_pca",
    "phase_window": "detect_phase_window", "train_log": "train_model",
    **{name: step_name for kind in KINDS.values() for step_name, step in kind.steps.items() for name in step.tables},
    "llc": "estimate_llc", "llc_trace": "estimate_llc", "llc_heads": "estimate_llc",
    "llc_smoothed": "detect_llc_stages", "llc_stages": "detect_llc_stages",
    **{name: "score_checkpoints" for kind in KINDS.values() for name in kind.extra_tables},
}
# producer -> the module drawing its figures (rule plot_<producer>): the shared LLC figures, then each kind's
FIGURE_MODULES = {
    "llc_figures": FigureModule("pipeline.llc_figures", "3. Developmental measures",
                                ("llc", "llc_slope", "llc_heads", "llc_traces"),
                                ("llc", "llc_trace", "llc_heads", "llc_smoothed", "llc_stages", "head_scores",
                                 "phase_window", "integrity"),
                                ("figures", "analysis.window.score", "analysis.llc.burn_in")),
    **{producer: module for kind in KINDS.values() for producer, module in kind.figure_modules.items()},
}
# figure -> the producer drawing it and its report category
FIGURES = {name: (producer, module.category) for producer, module in sorted(FIGURE_MODULES.items(),
                                                                            key=lambda item: item[1].category)
           for name in module.figures}
# producer -> the run tables it reads (its rule's inputs) and the config sections it depends on
FIGURE_INPUTS = {producer: (list(module.tables), list(module.config)) for producer, module in FIGURE_MODULES.items()}
HTML_FIGURES = {name: producer for producer, module in FIGURE_MODULES.items() for name in module.html}  # also .html
# step -> the config sections it reads, declared once: its rule's params (a change reruns it) and its cache key
# (the score step's are each kind's score_config)
STEP_CONFIG = {"estimate_llc": ("analysis.llc", "analysis.eval", "seed"),
               **{name: step.config for kind in KINDS.values() for name, step in kind.steps.items()}}


def llc_on(cfg) -> bool:
    """The LLC runs on every model trained here (analysis.llc.enabled, on by default) and on hub models only
    when asked (analysis.llc.hub): a 70M-parameter model is another matter on CPU (README)."""
    return bool(cfg.analysis.llc.enabled) and (cfg.model.source == "trained" or bool(cfg.analysis.llc.hub))


# producer (rule or figure module) -> whether a model's config switches it, its tables and figures on
OPT_IN = {"estimate_llc": llc_on, "detect_llc_stages": llc_on, "llc_figures": llc_on}


def kind_owners() -> dict[str, set[str]]:
    """Producers (steps, figure modules) and tables that only some subject kinds have -> those kinds; whatever is
    not here every kind has."""
    owners: dict[str, set[str]] = {}
    for kind in KINDS.values():
        steps = [name for step in kind.steps.values() for name in step.tables]
        for name in [*kind.steps, *steps, *kind.figure_modules, *kind.extra_tables, *kind.study_tables,
                     *kind.study_figures]:
            owners.setdefault(name, set()).add(kind.name)
    return owners


KIND_ONLY = kind_owners()

# A study's tables (results/<study>/tables/<name>.csv): member tables stacked with the swept keys as
# columns, plus what only the whole study can give (bands over seeds, the joint PCA), then each kind's.
STUDY_MEMBER_TABLES = ["icl", "phase_window", "head_scores", "train_log",
                       *dict.fromkeys(t for kind in KINDS.values() for t in kind.study_member_tables), "llc", "llc_stages"]
STUDY_TABLES = [*STUDY_MEMBER_TABLES, "best_score_bands", "icl_bands", "onsets", "joint_pca",
                *(t for kind in KINDS.values() for t in kind.study_tables), "llc_bands", "stage_recurrence"]
STUDY_FIGURES = {name: ("study_figures", "4. Study") for name in
                 ["study_best_score", "study_icl", "study_windows", "study_pca", "study_loss_derivative",
                  *(f for kind in KINDS.values() for f in kind.study_figures), "study_llc"]}
STUDY_LLC_ONLY = {"llc", "llc_stages", "llc_bands", "stage_recurrence", "study_llc"}  # when every member has the LLC


def for_kind(name: str, kind: str) -> bool:
    """Whether a producer or table belongs to models of this kind."""
    return kind in KIND_ONLY.get(name, {kind})


def enabled(producer: str, cfg) -> bool:
    """Whether a model with config `cfg` has this producer's outputs (switched analyses only when switched
    on, and a kind's own analyses for its models only)."""
    on = producer not in OPT_IN or OPT_IN[producer](cfg)
    return on and for_kind(producer, str(cfg.model.kind))


def has_table(name: str, cfg) -> bool:
    """Whether a model with config `cfg` writes this table."""
    return enabled(TABLES[name], cfg) and for_kind(name, str(cfg.model.kind))


def run_tables(cfgs: list) -> list[str]:
    """The tables of a run of models with these configs: each one any of its models writes."""
    return [name for name in TABLES if any(has_table(name, cfg) for cfg in cfgs)]


def run_figures(cfgs: list) -> list[str]:
    return [name for name, (producer, _) in FIGURES.items() if any(enabled(producer, cfg) for cfg in cfgs)]


def for_study(name: str, kind: str, llc: bool) -> bool:
    """Whether a study of this kind has this table or figure (the LLC's only when all its members have the LLC)."""
    return for_kind(name, kind) and (llc or name not in STUDY_LLC_ONLY)


def study_member_tables(kind: str, llc: bool = False) -> list[str]:
    return [name for name in STUDY_MEMBER_TABLES if for_study(name, kind, llc)]


def study_tables(kind: str, llc: bool = False) -> list[str]:
    return [name for name in STUDY_TABLES if for_study(name, kind, llc)]


def study_figure_names(kind: str, llc: bool = False) -> list[str]:
    return [name for name in STUDY_FIGURES if for_study(name, kind, llc)]


def tables_of(step: str, kind: str | None = None) -> list[str]:
    """The tables whose per-model parquet `step` writes (for models of `kind`, when its tables depend on it)."""
    return [name for name, producer in TABLES.items() if producer == step and (kind is None or for_kind(name, kind))]


def figures_of(module: str, registry: dict = FIGURES) -> list[str]:
    """The figures `module` draws."""
    return [name for name, (producer, _) in registry.items() if producer == module]


def caption(name: str) -> Path:
    """A figure's report caption: report/<name>.rst, or the one a kind outside this package ships."""
    shipped = [folder / f"{name}.rst" for folder in kind_folders("report")]
    return next((path for path in shipped if path.is_file()), REPORT_DIR / f"{name}.rst")


def kind_study_tables(member_tables: dict, variant: list[str]) -> dict:
    """The study tables of the kinds whose member tables are here, each `build(member table, variant)`."""
    return {name: resolved(build)(member_tables[source], variant) for kind in KINDS.values()
            for name, (source, build) in kind.study_tables.items() if source in member_tables}


def kind_study_figures(names: list[str]) -> dict:
    """name -> StudyFigure, for the kinds' study figures among `names`."""
    return {name: figure for kind in KINDS.values() for name, figure in kind.study_figures.items() if name in names}
