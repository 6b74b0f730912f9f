rule provenance:
    input:
        outputs=final_outputs(),
        checkpoints=expand(CHECKPOINTS, model=MODELS),
        manifest=rules.prepare_corpus.output.manifest,
    output:
        RUN / "provenance.json",
    log:
        RUN / "logs" / "provenance.log",
    params:
        overrides=shlex.quote("[" + ",".join(OVERRIDES) + "]"),
    resources:
        **resources_of("provenance"),
    shell:
        "{PY} -m pipeline.provenance --out {output} --manifest {input.manifest} --checkpoints {input.checkpoints} "
        "--outputs {input.outputs} --overrides {params.overrides} 2>&1 | tee {log}"
