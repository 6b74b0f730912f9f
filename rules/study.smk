# Studies (--config study=NAME or sweep=..., or a paper's): their members are ordinary runs of the rules above;
# these rules stack their tables and draw the figures that span them, under results/<study>/. One study's rules
# are aggregate_study and plot_study_figures; a paper's several are suffixed with each study's name.
for study in STUDIES:
    study_dir = RESULTS / study.name
    study_spec = study_dir / "study.yaml"  # what the aggregation reads: members, swept values, band
    study_cfg = GRAPH.study_config(study)
    spec_text = yaml.safe_dump({**study.spec(study_cfg.analysis.window.score, study_cfg.analysis.pca.n_components),
                                "llc": GRAPH.study_llc(study)}, sort_keys=False)
    write_if_changed(study_spec, spec_text)
    suffix = f"_{study.name}" if len(STUDIES) > 1 else ""
    study_kind, study_llc = GRAPH.study_kind(study), GRAPH.study_llc(study)

    rule:
        name:
            f"aggregate_study{suffix}"
        localrule: True
        input:
            spec=ancient(study_spec),
            tables=[RESULTS / run / "tables" / f"{t}.csv" for run in GRAPH.members(study)
                    for t in study_member_tables(study_kind, study_llc)],
            losses=[RESULTS / run / "models" / m / "token_losses.npz" for run in GRAPH.members(study)
                    for m in configs(run)],
        params:
            spec=spec_text,
            results=RESULTS,
            out=study_dir / "tables",
        output:
            [study_dir / "tables" / f"{t}.csv" for t in study_tables(study_kind, study_llc)],
        log:
            study_dir / "logs" / "aggregate_study.log",
        resources:
            **resources_of("aggregate_study"),
        conda:
            ENVIRONMENT
        shell:
            "python -m pipeline.study --spec {input.spec} --results {params.results} --out {params.out} 2>&1 | tee {log}"

    rule:
        name:
            f"plot_study_figures{suffix}"
        input:
            spec=ancient(study_spec),
            tables=[study_dir / "tables" / f"{t}.csv" for t in study_tables(study_kind, study_llc)],
        output:
            report_figures(study_dir, {n: STUDY_FIGURES[n] for n in study_figure_names(study_kind, study_llc)},
                           "study_figures"),
        log:
            study_dir / "logs" / "plot_study_figures.log",
        params:
            cfg=section(study_cfg, "figures"),
            step_config=shared_config_args(GRAPH.members(study)[0]),
            interventions=GRAPH.study_interventions(study),
            tables=study_dir / "tables",
            out=study_dir / "figures",
        resources:
            **resources_of("plot_study_figures"),
        conda:
            ENVIRONMENT
        shell:
            "python -m pipeline.study_figures --tables {params.tables} --spec {input.spec} --out {params.out} "
            "{params.step_config} 2>&1 | tee {log}"
