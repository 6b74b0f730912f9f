rule plot_figures:
    input:
        tables=[RUN / "tables" / f"{t}.csv" for t in BASE_TABLES],
    output:
        report_figures(FIGURES, "1. Phase change"),
    log:
        RUN / "logs" / "plot_figures.log",
    benchmark:
        RUN / "benchmarks" / "plot_figures.tsv"
    params:
        cfg=params_of(None, "figures", "analysis.window.score", "analysis.head_scores.names"),
        tables=RUN / "tables",
        out=RUN / "figures",
    resources:
        **resources_of("plot_figures"),
    shell:
        "{PY} -m pipeline.figures --tables {params.tables} --out {params.out} {CLI_OVERRIDES} model={MODELS[0]} "
        "2>&1 | tee {log}"


rule plot_causal_figures:
    input:
        tables=[RUN / "tables" / f"{t}.csv" for t in CAUSAL_TABLES + ["head_scores", "phase_window"]],
    output:
        report_figures(CAUSAL_FIGURES, "2. Causal evidence"),
        html=report(RUN / "figures" / "token_loss_change.html", caption="../report/token_loss_change_html.rst",
                    category="2. Causal evidence"),
    log:
        RUN / "logs" / "plot_causal_figures.log",
    benchmark:
        RUN / "benchmarks" / "plot_causal_figures.tsv"
    params:
        cfg=params_of(None, "figures", "analysis.ablation.score", "analysis.token_loss.track"),
        tables=RUN / "tables",
        out=RUN / "figures",
    resources:
        **resources_of("plot_causal_figures"),
    shell:
        "{PY} -m pipeline.causal_figures --tables {params.tables} --out {params.out} {CLI_OVERRIDES} "
        "model={MODELS[0]} 2>&1 | tee {log}"
