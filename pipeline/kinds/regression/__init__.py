"""The regression kind: in-context linear regression (Raventos et al. 2023; timaeus `icl`), a transformer over
(x, y) pairs whose distance to the ridge and dMMSE predictors marks the task-diversity transition."""

from pipeline.kinds.regression import schema
from pipeline.registry import Comparison, FigureModule, Kind, StudyFigure

KIND = Kind(
    name="regression", data_module="pipeline.kinds.regression.data",
    score_module="pipeline.kinds.regression.scores", subject_module="pipeline.kinds.regression.subject",
    data_schemas=(schema.RegressionData,), model_schemas={"trained": schema.RegressionModel},
    context_length=schema.context_length, loss_positions=schema.loss_positions, check=schema.check,
    data_files=("tasks.npy", "eval.npz", "manifest.json"),
    head_scores=("xy_probe", "previous_token", "xy_probe_pretrain"),
    extra_tables=("regression_eval", "probe_attention", "chance_levels"),
    score_config=("analysis.probe", "analysis.eval", "data", "seed"),
    data_config=("data", "seed", "analysis.eval.n_sequences"), data_rule="prepare_regression",
    rule_suffix="_regression", frozen=("*attn.b_Q", "*attn.b_K", "*attn.b_V", "*attn.b_O"),  # timaeus: no biases
    figure_modules={"regression_figures": FigureModule(
        "pipeline.kinds.regression.figures", "5. In-context regression",
        ("regression_mse", "regression_deltas", "regression_probe", "regression_attention"),
        ("regression_eval", "probe_attention", "chance_levels", "head_scores", "phase_window", "integrity"),
        ("figures", "analysis.window.score", "analysis.probe"))},
    run_summaries={"final_eval": ("regression_eval", "pipeline.kinds.regression.study:final_eval")},
    comparison=Comparison("xy_probe", "pipeline.kinds.regression.study:distance", ("regression_eval",),
                          "Δ ridge on pretraining tasks (per dim.)"),
    study_member_tables=("regression_eval",),
    study_tables={"transition": ("regression_eval", "pipeline.kinds.regression.study:transition")},
    study_figures={"study_transition": StudyFigure("pipeline.kinds.regression.study:transition_plot",
                                                   ("transition",))},
)
