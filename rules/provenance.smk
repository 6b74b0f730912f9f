rule provenance:
    input:
        run_config=run_config,
        integrity=RUN / "tables" / "integrity.csv",
        outputs=lambda wc: [f for f in GRAPH.run_outputs(wc.run, FORMATS) if not f.endswith("provenance.json")],
        checkpoints=lambda wc: [f for m in configs(wc.run) for f in GRAPH.checkpoint_sources(wc.run, m)],
        manifests=lambda wc: sorted({str(GRAPH.data_dir(wc.run, m) / "manifest.json") for m in configs(wc.run)}),
    output:
        RUN / "provenance.json",
    log:
        RUN / "logs" / "provenance.log",
    params:
        checkpoints=lambda wc: [f for m in configs(wc.run) for f in GRAPH.checkpoint_files(wc.run, m)],
    resources:
        **resources_of("provenance"),
    conda:
        ENVIRONMENT
    shell:
        "python -m pipeline.provenance --out {output} --run-config {input.run_config} --manifests {input.manifests} "
        "--integrity {input.integrity} "
        "--checkpoints {params.checkpoints} --outputs {input.outputs} 2>&1 | tee {log}"
