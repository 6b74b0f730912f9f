"""The language kind: next-token prediction on a tokenized corpus (the default subject), trained here or
fetched from the hub, with the causal analyses (ablation, patching, tasks) only token models have."""

from pipeline.kinds.language import schema
from pipeline.registry import Comparison, FigureModule, Kind, Step
from pipeline.sections import SEQUENCE_SCORES

CAUSAL_TABLES = ("ablation", "patching", "logit_attribution", "copying", "token_losses", "task_metrics",
                 "task_attention")

KIND = Kind(
    name="language", data_module="pipeline.kinds.language.data", score_module="pipeline.kinds.language.scores",
    subject_module="pipeline.kinds.language.subject", hub_module="pipeline.kinds.language.hub",
    data_schemas=(schema.StdlibData, schema.FileData, schema.PileData), hub_data_sources=schema.HUB_DATA_SOURCES,
    model_schemas={"trained": schema.TrainedModel, "hub": schema.HubModel},
    context_length=schema.context_length, loss_positions=schema.loss_positions, check=schema.check,
    data_key_from="model.tokenizer", score_keys=("ablation.score",),
    score_config=("analysis.head_scores", "analysis.eval", "analysis.compile", "seed"),
    data_files=("tokenizer.json", "train.npy", "eval.npy", "manifest.json"),
    head_scores=SEQUENCE_SCORES,
    run_summaries={"final_ablation": ("ablation", "pipeline.kinds.language.study:final_ablation")},
    comparison=Comparison("prefix_matching", "pipeline.kinds.language.study:distance", ("icl",),
                          "ICL score (nats; 0: no in-context gain)"),
    steps={"causal_checkpoints": Step(
        "pipeline.kinds.language.causal", "causal_part", "causal_parts", CAUSAL_TABLES,
        ("analysis.ablation", "analysis.patching", "analysis.tasks", "analysis.token_loss.text", "analysis.icl",
         "analysis.eval", "analysis.compile", "seed"), reads=("losses", "heads", "window"))},
    figure_modules={
        "figures": FigureModule(
            "pipeline.kinds.language.figures", "1. Phase change",
            ("prefix_matching", "head_scores", "head_heatmaps", "icl_score", "loss", "pca", "loss_by_position",
             "k_composition"),
            ("head_scores", "icl", "loss_by_position", "pca", "phase_window", "train_log", "integrity", "composition"),
            ("figures", "analysis.window.score", "analysis.head_scores.names")),
        "causal_figures": FigureModule(
            "pipeline.kinds.language.causal_figures", "2. Causal evidence",
            ("ablation", "patching_heads", "patching_resid", "patching_over_training", "logit_attribution",
             "task_metrics", "task_attention", "copying", "token_loss_change", "token_loss_over_training"),
            (*CAUSAL_TABLES, "head_scores", "phase_window", "integrity"),
            ("figures", "analysis.ablation.score", "analysis.token_loss.track"),
            html=("token_loss_change", "task_attention")),
    },
)
