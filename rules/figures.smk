# One plot rule per figure module of the output registry (pipeline/outputs.py): its figures, the run tables
# it reads and the config sections it depends on are declared there once.
for figure_module, drawn_by in FIGURE_MODULES.items():

    rule:
        name:
            f"plot_{figure_module}"
        input:
            run_config=run_config,
            tables=[RUN / "tables" / f"{t}.csv" for t in drawn_by.tables],
        output:
            report_figures(RUN, FIGURES, figure_module),
        log:
            RUN / "logs" / f"plot_{figure_module}.log",
        benchmark:
            RUN / "benchmarks" / f"plot_{figure_module}.tsv"
        params:
            cfg=params_of(*drawn_by.config),
            module=drawn_by.module,
            interventions=lambda wc: GRAPH.run_interventions(wc.run),
            step_config=lambda wc: shared_config_args(wc.run),
            tables=lambda wc: RESULTS / wc.run / "tables",
            out=lambda wc: RESULTS / wc.run / "figures",
        resources:
            **resources_of(f"plot_{figure_module}"),
        conda:
            ENVIRONMENT
        shell:
            "python -m {params.module} --tables {params.tables} --out {params.out} {params.step_config} 2>&1 | tee {log}"
