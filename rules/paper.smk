# A paper (--config paper=NAME): its runs and studies are built by the rules above; this rule renders its pages
# from their tables (pipeline/paper.py) into results/paper/<name>/: the figure across kinds, the figures the docs
# show, results.md and manifest.json.
PAPER_OUTPUTS = []
if PAPER:
    paper_dir = RESULTS / "paper" / PAPER.name
    paper_spec = GRAPH.paper_spec(PAPER)  # what write_paper reads (pipeline/dag.py)
    paper_runs, paper_figures = paper_spec["runs"], paper_spec["figures"]
    paper_text = yaml.safe_dump(paper_spec, sort_keys=False)
    write_if_changed(paper_dir / "paper.yaml", paper_text)
    PAPER_OUTPUTS = [str(paper_dir / f) for f in ["results.md", "manifest.json", "tables/cost.csv", "figures/kinds.png",
                                                  *(f"figures/{figure}.png" for figure in paper_figures)]]

    rule write_paper:
        input:
            spec=ancient(paper_dir / "paper.yaml"),
            tables=[RESULTS / run["name"] / "tables" / f"{t}.csv" for run in paper_runs.values()
                    for t in [*run["tables"], "phase_window", "train_log"]],
            studies=[f for study in STUDIES for f in GRAPH.study_outputs(study, FORMATS)],
            figures=[RESULTS / path for _, _, path in paper_figures.values()],
        output:
            [report(f, caption=str(caption("kinds")), category="0. Across kinds") if f.endswith("kinds.png") else f
             for f in PAPER_OUTPUTS],
        log:
            paper_dir / "logs" / "write_paper.log",
        params:
            spec=paper_text,
            out=paper_dir,
        resources:
            **resources_of("default"),
        conda:
            ENVIRONMENT
        shell:
            "python -m pipeline.paper --spec {input.spec} --results {RESULTS} --out {params.out} 2>&1 | tee {log}"
