rule prepare_corpus:
    output:
        tokenizer=RUN / "data" / "tokenizer.json",
        train=RUN / "data" / "train.npy",
        eval=RUN / "data" / "eval.npy",
        manifest=RUN / "data" / "manifest.json",
    log:
        RUN / "logs" / "prepare_corpus.log",
    benchmark:
        RUN / "benchmarks" / "prepare_corpus.tsv"
    params:
        cfg=params_of(None, "data"),
        out=RUN / "data",
    threads: 2
    resources:
        **resources_of("prepare_corpus"),
    shell:
        "{PY} -m pipeline.data --out {params.out} {CLI_OVERRIDES} 2>&1 | tee {log}"
