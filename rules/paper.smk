# A paper (--config paper=NAME): its runs and studies are built by the rules above; these rules render its pages
# from their tables (pipeline/paper.py) into results/paper/<name>/. Each section is a target of its own
# (`paper_<section>`: a run's label, a study's name, `paper_kinds`); rule `paper` gathers them into results.md and
# manifest.json. `python -m pipeline.paper publish results/paper/<name> docs/paper` copies the sections made into
# the docs.
PAPER_OUTPUTS = []
if PAPER:
    paper_dir = RESULTS / "paper" / PAPER.name
    paper_plan = PaperPlan(GRAPH, PAPER)  # what each section reads and writes (pipeline/paper_plan.py)
    paper_spec = paper_plan.spec
    paper_text = yaml.safe_dump(paper_spec, sort_keys=False)
    write_if_changed(paper_dir / "paper.yaml", paper_text)

    for key in paper_spec["sections"]:

        rule:
            name:
                f"paper_{key}"
            input:
                spec=ancient(paper_dir / "paper.yaml"),
                reads=paper_plan.section_inputs(key, FORMATS),
            output:
                [report(f, caption=str(caption("kinds")), category="0. Across kinds") if f.endswith("kinds.png") else f
                 for f in paper_plan.section_outputs(paper_dir, key)],
            log:
                paper_dir / "logs" / f"paper_{key}.log",
            params:
                key=key,
                results=RESULTS,
                out=paper_dir,
            localrule: True
            conda:
                ENVIRONMENT
            shell:
                "python -m pipeline.paper section {params.key} --spec {input.spec} --results {params.results} "
                "--out {params.out} 2>&1 | tee {log}"

    PAPER_OUTPUTS = [str(paper_dir / "results.md"), str(paper_dir / "manifest.json")]

    rule paper:
        input:
            spec=ancient(paper_dir / "paper.yaml"),
            sections=[f for key in paper_spec["sections"] for f in paper_plan.section_outputs(paper_dir, key)],
        output:
            PAPER_OUTPUTS,
        log:
            paper_dir / "logs" / "paper.log",
        params:
            out=paper_dir,
        localrule: True
        conda:
            ENVIRONMENT
        shell:
            "python -m pipeline.paper index --spec {input.spec} --out {params.out} 2>&1 | tee {log}"
