rule plot_figures:
    input:
        tables=[RUN / "tables" / f"{t}.csv" for t in TABLES],
    output:
        [f for name in FIGURES for f in figure_files(name)],
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
        "{PY} -m pipeline.figures --tables {params.tables} --out {params.out} {CLI_OVERRIDES} 2>&1 | tee {log}"
