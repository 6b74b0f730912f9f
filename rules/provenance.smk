rule provenance:
    input:
        outputs=final_outputs(),
        checkpoints=[f for m in MODELS for f in checkpoint_files(m)],
        manifests=sorted({str(data_dir(m) / "manifest.json") for m in MODELS}),
    output:
        RUN / "provenance.json",
    log:
        RUN / "logs" / "provenance.log",
    params:
        overrides=shlex.quote("[" + ",".join(OVERRIDES) + "]"),
    resources:
        **resources_of("provenance"),
    shell:
        "{PY} -m pipeline.provenance --out {output} --manifests {input.manifests} --checkpoints {input.checkpoints} "
        "--outputs {input.outputs} --overrides {params.overrides} 2>&1 | tee {log}"
