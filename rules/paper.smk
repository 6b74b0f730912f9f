# A paper (--config paper=NAME): its runs and studies are built by the rules above; this rule renders its pages
# from their tables (pipeline/paper.py) into results/paper/<name>/: the figure across kinds, the figures the docs
# show, results.md and manifest.json.
import hashlib

PAPER_OUTPUTS = []
if PAPER:
    paper_dir = RESULTS / "paper" / PAPER.name
    paper_runs = {label: {"name": run, "kind": GRAPH.kind_of_run(run), "identity": identity(configs(run))[:16],
                          "tables": GRAPH.paper_tables(run)} for label, run in PAPER.runs.items()}
    paper_studies = [{"name": s.name, "kind": GRAPH.study_kind(s), "members": GRAPH.members(s),
                      "identity": identity({m: c for r in s.members for m, c in
                                            ((f"{r.name}/{model}", cfg) for model, cfg in r.configs.items())})[:16]}
                     for s in STUDIES]
    paper_figures = {figure: {**{label: (run["name"], run["identity"]) for label, run in paper_runs.items()},
                              **{s["name"]: (s["name"], s["identity"]) for s in paper_studies}}[source]
                     + (f"{dict(PAPER.runs).get(source, source)}/figures/{name}.png",)
                     for figure, (source, name) in PAPER.figures.items()}
    paper_text = yaml.safe_dump({"name": PAPER.name, "runs": paper_runs, "studies": paper_studies,
                                 "figures": {f: list(v) for f, v in paper_figures.items()},
                                 "identity": hashlib.sha256(str([paper_runs, paper_studies]).encode()).hexdigest()[:16]},
                                sort_keys=False)
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
