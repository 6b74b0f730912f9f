rule prepare_corpus:
    input:
        run_config=run_config,
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
        tokenizer=one_of([t for run in RUNS for t in tokenizers(run)]),
    params:
        cfg=params_of("data", "hub_cache"),
        name=lambda wc: tokenizers(wc.run)[wc.tokenizer],
        model=lambda wc: next(m for m, c in configs(wc.run).items() if tokenizer_key(c.model.tokenizer) == wc.tokenizer),
        out=lambda wc: RESULTS / wc.run / "data" / wc.tokenizer,
    threads: 2
    priority: 10  # every job of its run waits for it: before any training or analysis
    resources:
        **resources_of("prepare_corpus"),
    shell:
        "{PY} -m pipeline.data --out {params.out} --tokenizer {params.name} --run-config {input.run_config} "
        "--model {params.model} 2>&1 | tee {log}"
