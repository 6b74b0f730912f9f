rule plot_figures:
    input:
        run_config=run_config,
        tables=[RUN / "tables" / f"{t}.csv" for t in ["head_scores", "icl", "loss_by_position", "pca",
                                                      "phase_window", "train_log", "integrity", "composition"]],
    output:
        report_figures(RUN, FIGURES, "figures"),
    log:
        RUN / "logs" / "plot_figures.log",
    benchmark:
        RUN / "benchmarks" / "plot_figures.tsv"
    params:
        cfg=params_of("figures", "analysis.window.score", "analysis.head_scores.names"),
        step_config=lambda wc: shared_config_args(wc.run),
        tables=lambda wc: RESULTS / wc.run / "tables",
        out=lambda wc: RESULTS / wc.run / "figures",
    resources:
        **resources_of("plot_figures"),
    shell:
        "{PY} -m pipeline.figures --tables {params.tables} --out {params.out} {params.step_config} 2>&1 | tee {log}"


rule plot_causal_figures:
    input:
        run_config=run_config,
        tables=[RUN / "tables" / f"{t}.csv" for t in [*tables_of("causal_checkpoints"), "head_scores", "phase_window",
                                                      "integrity"]],
    output:
        report_figures(RUN, FIGURES, "causal_figures"),
    log:
        RUN / "logs" / "plot_causal_figures.log",
    benchmark:
        RUN / "benchmarks" / "plot_causal_figures.tsv"
    params:
        cfg=params_of("figures", "analysis.ablation.score", "analysis.token_loss.track"),
        step_config=lambda wc: shared_config_args(wc.run),
        tables=lambda wc: RESULTS / wc.run / "tables",
        out=lambda wc: RESULTS / wc.run / "figures",
    resources:
        **resources_of("plot_causal_figures"),
    shell:
        "{PY} -m pipeline.causal_figures --tables {params.tables} --out {params.out} {params.step_config} "
        "2>&1 | tee {log}"


rule plot_llc_figures:
    input:
        run_config=run_config,
        tables=[RUN / "tables" / f"{t}.csv" for t in [*tables_of("estimate_llc"), "head_scores", "phase_window",
                                                      "integrity"]],
    output:
        report_figures(RUN, FIGURES, "llc_figures"),
    log:
        RUN / "logs" / "plot_llc_figures.log",
    params:
        cfg=params_of("figures", "analysis.window.score", "analysis.llc.burn_in"),
        step_config=lambda wc: shared_config_args(wc.run),
        tables=lambda wc: RESULTS / wc.run / "tables",
        out=lambda wc: RESULTS / wc.run / "figures",
    resources:
        **resources_of("plot_llc_figures"),
    shell:
        "{PY} -m pipeline.llc_figures --tables {params.tables} --out {params.out} {params.step_config} 2>&1 | tee {log}"
