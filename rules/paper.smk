# A paper (--config paper=NAME): its runs and studies are built by the rules above; these rules render its pages
# from their tables (pipeline/paper.py) into results/paper/<name>/. Each section is a target of its own
# (`paper_<section>`: a run's label, a study's name, `paper_kinds`); rule `paper` gathers them into results.md and
# manifest.json. `python -m pipeline.paper publish results/paper/<name> docs/paper` copies the sections made into
# the docs.
PAPER_OUTPUTS = []
if PAPER:
    paper_dir = RESULTS / "paper" / PAPER.name
    paper_spec = GRAPH.paper_spec(PAPER)  # what the sections read (pipeline/dag.py)
    paper_text = yaml.safe_dump(paper_spec, sort_keys=False)
    write_if_changed(paper_dir / "paper.yaml", paper_text)

    def section_inputs(key):
        """What a section reads: its runs' tables and benchmarks, its study's outputs, its figures; the figure across
        kinds reads its columns' tables and its bands' studies."""
        section = paper_spec["sections"][key]
        if section["type"] == "kinds":
            columns = [paper_spec["sections"][label] for label in section["columns"]]
            bands = [study for study in STUDIES if study.name in {b["study"] for b in section["bands"].values()}]
            return [*(RESULTS / c["name"] / "tables" / f"{t}.csv" for c in columns for t in c["tables"]),
                    *(f for study in bands for f in GRAPH.study_outputs(study, FORMATS))]
        if section["type"] == "run":  # the whole run (its provenance is written last)
            runs = [RESULTS / section["name"] / "provenance.json"]
        else:  # a study's members as far as the study needs them, not their own causal steps and figures
            runs = [RESULTS / run / "tables" / "train_log.csv" for run in section["members"]]
        tables = [RESULTS / section["name"] / "tables" / f"{t}.csv" for t in section.get("tables", [])]
        studies = [f for study in STUDIES if study.name == section["name"] for f in GRAPH.study_outputs(study, FORMATS)]
        return [*runs, *tables, *studies, *(RESULTS / path for path in section["figures"].values())]

    def section_outputs(key):
        section, files = paper_spec["sections"][key], [f"sections/{key}.md", f"sections/{key}.json"]
        files += ["figures/kinds.png"] if section["type"] == "kinds" else [f"tables/cost_{key}.csv"]
        files += [f"tables/{key}_{name}.csv" for name in section.get("summaries", {})]
        return [str(paper_dir / f) for f in [*files, *(f"figures/{figure}.png" for figure in section["figures"])]]

    for key in paper_spec["sections"]:

        rule:
            name:
                f"paper_{key}"
            input:
                spec=ancient(paper_dir / "paper.yaml"),
                reads=section_inputs(key),
            output:
                [report(f, caption=str(caption("kinds")), category="0. Across kinds") if f.endswith("kinds.png") else f
                 for f in section_outputs(key)],
            log:
                paper_dir / "logs" / f"paper_{key}.log",
            params:
                key=key,
                out=paper_dir,
            localrule: True
            conda:
                ENVIRONMENT
            shell:
                "python -m pipeline.paper section {params.key} --spec {input.spec} --results {RESULTS} "
                "--out {params.out} 2>&1 | tee {log}"

    PAPER_OUTPUTS = [str(paper_dir / "results.md"), str(paper_dir / "manifest.json")]

    rule paper:
        input:
            spec=ancient(paper_dir / "paper.yaml"),
            sections=[f for key in paper_spec["sections"] for f in section_outputs(key)],
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
