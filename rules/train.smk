rule train_model:
    input:
        run_config=run_config,
        train=data_file("train.npy"),
        eval=data_file("eval.npy"),
        manifest=data_file("manifest.json"),
    output:
        # a directory: members of a study may checkpoint different steps (train.steps is sweepable)
        checkpoints=directory(RUN / "models" / "{model}" / "checkpoints"),
        log_table=RUN / "models" / "{model}" / "train_log.parquet",
    log:
        RUN / "logs" / "train_{model}.log",
    wildcard_constraints:
        model=one_of(sources("trained")),
    benchmark:
        RUN / "benchmarks" / "train_{model}.tsv"
    params:
        cfg=params_of("data", "model", "train", "seed"),
        data=lambda wc: data_dir(wc.run, wc.model),
        state=lambda wc: RESULTS / wc.run / "models" / wc.model / "train_state",  # resume state; not an output
    threads: CFG.train.threads
    resources:
        **resources_of("train_model"),
    shell:
        "{PY} -m pipeline.train --data {params.data} --out {output.checkpoints} --state {params.state} "
        "--log {output.log_table} --run-config {input.run_config} --model {wildcards.model} 2>&1 | tee {log}"
