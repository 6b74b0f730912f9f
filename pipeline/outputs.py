"""The one registry of a run's and a study's tables and figures (torch-free: the Snakefile reads it).

A table is collected from per-model parquet files written by a step; a figure is drawn by a module's
function of the same name and goes into `snakemake --report` with `report/<name>.rst` as its caption.
The Snakefile derives its targets from here, the figure modules draw exactly these, the tests check them.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.kinds import KINDS

REPORT_DIR = Path(__file__).resolve().parent.parent / "report"

# table -> the rule writing its per-model parquet (models/<model>/<table>.parquet)
TABLES = {
    "integrity": "check_checkpoints", "head_scores": "score_checkpoints", "composition": "score_checkpoints",
    "icl": "score_icl", "loss_by_position": "score_icl", "pca": "loss_pca",
    "phase_window": "detect_phase_window", "train_log": "train_model",
    "ablation": "causal_checkpoints", "patching": "causal_checkpoints", "logit_attribution": "causal_checkpoints",
    "copying": "causal_checkpoints", "token_losses": "causal_checkpoints", "task_metrics": "causal_checkpoints",
    "task_attention": "causal_checkpoints",
    "llc": "estimate_llc", "llc_trace": "estimate_llc", "llc_heads": "estimate_llc",
    "llc_smoothed": "detect_llc_stages", "llc_stages": "detect_llc_stages",
    **{name: "score_checkpoints" for kind in KINDS.values() for name in kind.extra_tables},
}
# figure -> the module drawing it (pipeline/<module>.py, rule plot_<module>) and its report category
FIGURES = {
    **{name: ("figures", "1. Phase change") for name in
       ["prefix_matching", "head_scores", "head_heatmaps", "icl_score", "loss", "pca", "loss_by_position",
        "k_composition"]},
    **{name: ("causal_figures", "2. Causal evidence") for name in
       ["ablation", "patching_heads", "patching_resid", "patching_over_training", "logit_attribution", "task_metrics",
        "task_attention", "copying", "token_loss_change", "token_loss_over_training"]},
    **{name: ("llc_figures", "3. Developmental measures") for name in
       ["llc", "llc_slope", "llc_heads", "llc_traces"]},
    **{name: ("regression_figures", "5. In-context regression") for name in
       ["regression_mse", "regression_deltas", "regression_probe", "regression_attention"]},
    "markov_strategies": ("markov_figures", "6. In-context Markov chains"),
}
# figure module -> the run tables it reads (its rule's inputs) and the config sections it depends on
FIGURE_INPUTS = {
    "figures": (["head_scores", "icl", "loss_by_position", "pca", "phase_window", "train_log", "integrity",
                 "composition"], ["figures", "analysis.window.score", "analysis.head_scores.names"]),
    "causal_figures": (["ablation", "patching", "logit_attribution", "copying", "token_losses", "task_metrics",
                        "task_attention", "head_scores", "phase_window", "integrity"],
                       ["figures", "analysis.ablation.score", "analysis.token_loss.track"]),
    "llc_figures": (["llc", "llc_trace", "llc_heads", "llc_smoothed", "llc_stages", "head_scores", "phase_window",
                     "integrity"],
                    ["figures", "analysis.window.score", "analysis.llc.burn_in"]),
    "regression_figures": (["regression_eval", "probe_attention", "chance_levels", "head_scores", "phase_window",
                            "integrity"],
                           ["figures", "analysis.window.score", "analysis.probe"]),
    "markov_figures": (["markov_strategies", "chance_levels", "head_scores", "phase_window", "integrity"],
                       ["figures", "analysis.window.score"]),
}
HTML_FIGURES = {"token_loss_change": "causal_figures", "task_attention": "causal_figures"}  # also as interactive .html
# step -> the config sections it reads, declared once: its rule's params (a change reruns it) and its cache key
# (the score step's are each kind's score_config, pipeline/kinds.py)
STEP_CONFIG = {
    "estimate_llc": ("analysis.llc", "analysis.eval", "seed"),
    "causal_checkpoints": ("analysis.ablation", "analysis.patching", "analysis.tasks", "analysis.token_loss.text",
                           "analysis.icl", "analysis.eval", "analysis.compile", "seed"),
}


def llc_on(cfg) -> bool:
    """The LLC runs on every model trained here (analysis.llc.enabled, on by default) and on hub models only
    when asked (analysis.llc.hub): a 70M-parameter model is another matter on CPU (README)."""
    return bool(cfg.analysis.llc.enabled) and (cfg.model.source == "trained" or bool(cfg.analysis.llc.hub))


# producer (rule or figure module) -> whether a model's config switches it, its tables and figures on
OPT_IN = {"estimate_llc": llc_on, "detect_llc_stages": llc_on, "llc_figures": llc_on}
# producers (rules, figure modules) and tables that only some subject kinds have; the rest every kind has
KIND_ONLY = {"causal_checkpoints": {"language"}, "figures": {"language"}, "causal_figures": {"language"},
             "regression_figures": {"regression"}, "transition": {"regression"}, "study_transition": {"regression"},
             "markov_figures": {"markov"}, "strategy_bands": {"markov"}, "phase_onsets": {"markov"},
             "study_strategies": {"markov"},
             **{name: {kind.name for kind in KINDS.values() if name in kind.extra_tables}
                for name in {name for kind in KINDS.values() for name in kind.extra_tables}}}

# A study's tables (results/<study>/tables/<name>.csv): member tables stacked with the swept keys as
# columns, plus what only the whole study can give (bands over seeds, the joint PCA).
STUDY_MEMBER_TABLES = ["icl", "phase_window", "head_scores", "train_log", "regression_eval", "markov_strategies",
                       "llc", "llc_stages"]
STUDY_TABLES = [*STUDY_MEMBER_TABLES, "best_score_bands", "icl_bands", "onsets", "joint_pca", "transition",
                "strategy_bands", "phase_onsets", "llc_bands", "stage_recurrence"]
STUDY_FIGURES = {name: ("study_figures", "4. Study") for name in
                 ["study_best_score", "study_icl", "study_windows", "study_pca", "study_loss_derivative",
                  "study_transition", "study_strategies", "study_llc"]}
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


def tables_of(step: str, kind: str = "language") -> list[str]:
    """The tables whose per-model parquet `step` writes for models of `kind`."""
    return [name for name, producer in TABLES.items() if producer == step and for_kind(name, kind)]


def figures_of(module: str, registry: dict = FIGURES) -> list[str]:
    """The figures `module` draws."""
    return [name for name, (producer, _) in registry.items() if producer == module]


def caption(name: str) -> Path:
    return REPORT_DIR / f"{name}.rst"
