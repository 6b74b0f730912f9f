rule fetch_hub_checkpoint:
    """The only rule that downloads model weights: one hub checkpoint into hub_cache, converted."""
    input:
        run_config=run_config,
    output:
        MODEL / "checkpoints" / "hub_{position}.safetensors",
    log:
        RUN / "logs" / "fetch_hub_checkpoint_{model}_{position}.log",
    wildcard_constraints:
        model=one_of(GRAPH.sources("hub")),
        position=r"\d{3}",
    params:
        cfg=params_of("model.hub", "hub_cache"),
        position=lambda wc: int(wc.position),
        module=lambda wc: kind_of(configs(wc.run)[wc.model]).hub_module,
    retries: 2  # beside the in-process retries: a fresh process for a download that keeps failing
    resources:
        **resources_of("fetch_hub_checkpoint"),
    conda:
        ENVIRONMENT
    shell:
        "python -m {params.module} --out {output} --position {params.position} --run-config {input.run_config} --model {wildcards.model} 2>&1 | tee {log}"
