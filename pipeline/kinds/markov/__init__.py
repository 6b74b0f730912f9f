"""The Markov kind: in-context Markov chains (Edelman et al. 2024), a transformer over chain states whose KL
from each exact strategy (uniform, unigram, bigram, Bayes) marks its phases."""

from pipeline.kinds.markov import schema
from pipeline.registry import Comparison, FigureModule, Kind, StudyFigure
from pipeline.sections import SEQUENCE_SCORES

KIND = Kind(
    name="markov", data_module="pipeline.kinds.markov.data", score_module="pipeline.kinds.markov.scores",
    subject_module="pipeline.kinds.markov.subject",
    data_schemas=(schema.MarkovData,), model_schemas={"trained": schema.MarkovModel},
    context_length=schema.context_length, loss_positions=schema.loss_positions, check=schema.check,
    data_files=("eval.npz", "manifest.json"),
    head_scores=(*SEQUENCE_SCORES, "statistical_induction"),  # the last on its eval chains (its score step)
    extra_tables=("markov_strategies", "chance_levels"),
    score_config=("analysis.head_scores", "analysis.eval", "data", "seed"),
    data_config=("data", "seed", "analysis.eval.n_sequences"), data_rule="prepare_markov",
    rule_suffix="_markov",
    figure_modules={"markov_figures": FigureModule(
        "pipeline.kinds.markov.figures", "6. In-context Markov chains", ("markov_strategies",),
        ("markov_strategies", "chance_levels", "head_scores", "phase_window", "integrity"),
        ("figures", "analysis.window.score"))},
    run_summaries={"phases": ("markov_strategies", "pipeline.kinds.markov.study:phases")},
    comparison=Comparison("statistical_induction", "pipeline.kinds.markov.study:distance", ("markov_strategies",),
                          "KL(bigram || model), nats per state"),
    study_member_tables=("markov_strategies",),
    study_tables={"strategy_bands": ("markov_strategies", "pipeline.kinds.markov.study:strategy_bands"),
                  "phase_onsets": ("markov_strategies", "pipeline.kinds.markov.study:phase_onsets")},
    study_figures={"study_strategies": StudyFigure("pipeline.kinds.markov.study:strategy_plot",
                                                   ("strategy_bands", "phase_onsets"))},
)
