# A study (--config study=NAME or sweep=...): its members are ordinary runs of the rules above; these
# rules stack their tables and draw the figures that span them, under results/<study>/.
if STUDY:

    STUDY_DIR = RESULTS / STUDY.name

    STUDY_SPEC = STUDY_DIR / "study.yaml"  # what the aggregation reads: members, swept values, band
    SPEC_TEXT = yaml.safe_dump({**STUDY.spec(CFG.analysis.window.score, CFG.analysis.pca.n_components),
                                "llc": GRAPH.study_llc()}, sort_keys=False)
    write_if_changed(STUDY_SPEC, SPEC_TEXT)

    localrules:
        aggregate_study,

    rule aggregate_study:
        input:
            spec=ancient(STUDY_SPEC),
            tables=[RESULTS / run / "tables" / f"{t}.csv" for run in GRAPH.members
                    for t in study_member_tables(GRAPH.study_kind(), GRAPH.study_llc())],
            losses=[RESULTS / run / "models" / m / "token_losses.npz" for run in GRAPH.members for m in configs(run)],
        params:
            spec=SPEC_TEXT,
        output:
            [STUDY_DIR / "tables" / f"{t}.csv" for t in study_tables(GRAPH.study_kind(), GRAPH.study_llc())],
        log:
            STUDY_DIR / "logs" / "aggregate_study.log",
        resources:
            **resources_of("aggregate_study"),
        conda:
            ENVIRONMENT
        shell:
            "python -m pipeline.study --spec {input.spec} --results {RESULTS} --out {STUDY_DIR}/tables 2>&1 | tee {log}"

    rule plot_study_figures:
        input:
            spec=ancient(STUDY_SPEC),
            tables=rules.aggregate_study.output,
        output:
            report_figures(STUDY_DIR, {n: STUDY_FIGURES[n] for n in study_figure_names(GRAPH.study_kind(), GRAPH.study_llc())}, "study_figures"),
        log:
            STUDY_DIR / "logs" / "plot_study_figures.log",
        params:
            cfg=section(CFG, "figures"),
            step_config=shared_config_args(GRAPH.members[0]),
            interventions=GRAPH.study_interventions(),
        resources:
            **resources_of("plot_study_figures"),
        conda:
            ENVIRONMENT
        shell:
            "python -m pipeline.study_figures --tables {STUDY_DIR}/tables --spec {input.spec} --out {STUDY_DIR}/figures "
            "{params.step_config} 2>&1 | tee {log}"
