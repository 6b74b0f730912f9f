rule train_model:
    input:
        train=rules.prepare_corpus.output.train,
        eval=rules.prepare_corpus.output.eval,
        manifest=rules.prepare_corpus.output.manifest,
    output:
        checkpoints=CHECKPOINTS,
        log_table=RUN / "models" / "{model}" / "train_log.parquet",
    log:
        RUN / "logs" / "train_{model}.log",
    benchmark:
        RUN / "benchmarks" / "train_{model}.tsv"
    params:
        cfg=lambda wc: params_of(wc.model, "data", "model", "train", "seed"),
        data=RUN / "data",
        out=lambda wc: RUN / "models" / wc.model / "checkpoints",
        state=lambda wc: RUN / "models" / wc.model / "train_state",  # resume state; not an output
    threads: CFG.train.threads
    resources:
        **resources_of("train_model"),
    shell:
        "{PY} -m pipeline.train --data {params.data} --out {params.out} --state {params.state} "
        "--log {output.log_table} "
        "{CLI_OVERRIDES} model={wildcards.model} 2>&1 | tee {log}"
