rule prepare_corpus:
    output:
        tokenizer=RUN / "data" / "{tokenizer}" / "tokenizer.json",
        train=RUN / "data" / "{tokenizer}" / "train.npy",
        eval=RUN / "data" / "{tokenizer}" / "eval.npy",
        manifest=RUN / "data" / "{tokenizer}" / "manifest.json",
    log:
        RUN / "logs" / "prepare_corpus_{tokenizer}.log",
    benchmark:
        RUN / "benchmarks" / "prepare_corpus_{tokenizer}.tsv"
    wildcard_constraints:
        tokenizer=one_of(TOKENIZERS),
    params:
        cfg=params_of(None, "data", "hub_cache"),
        name=lambda wc: TOKENIZERS[wc.tokenizer],
        model=lambda wc: next(m for m in MODELS if tokenizer_key(MODEL_CFGS[m].model.tokenizer) == wc.tokenizer),
        out=lambda wc: RUN / "data" / wc.tokenizer,
    threads: 2
    resources:
        **resources_of("prepare_corpus"),
    shell:
        "{PY} -m pipeline.data --out {params.out} --tokenizer {params.name} {CLI_OVERRIDES} model={params.model} "
        "2>&1 | tee {log}"
