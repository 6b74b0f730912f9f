rule train_model:
    input:
        train=data_file("train.npy"),
        eval=data_file("eval.npy"),
        manifest=data_file("manifest.json"),
    output:
        checkpoints=CHECKPOINTS,
        log_table=RUN / "models" / "{model}" / "train_log.parquet",
    log:
        RUN / "logs" / "train_{model}.log",
    wildcard_constraints:
        model=one_of(TRAINED),
    benchmark:
        RUN / "benchmarks" / "train_{model}.tsv"
    params:
        cfg=lambda wc: params_of(wc.model, "data", "model", "train", "seed"),
        data=lambda wc: data_dir(wc.model),
        out=lambda wc: RUN / "models" / wc.model / "checkpoints",
        state=lambda wc: RUN / "models" / wc.model / "train_state",  # resume state; not an output
    threads: CFG.train.threads
    resources:
        **resources_of("train_model"),
    shell:
        "{PY} -m pipeline.train --data {params.data} --out {params.out} --state {params.state} "
        "--log {output.log_table} "
        "{CLI_OVERRIDES} model={wildcards.model} 2>&1 | tee {log}"
