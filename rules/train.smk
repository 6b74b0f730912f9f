rule train_model:
    input:
        run_config=run_config,
        data=data_files,
        previous=previous_segment,
        references=intervention_reads,
    output:
        # one directory per training job of the chain (jobs.train_split_at); its name holds its last step
        checkpoints=directory(MODEL / "checkpoints" / "{segment}"),
        log_table=MODEL / "train_log" / "{segment}.parquet",
    log:
        RUN / "logs" / "train_{model}_{segment}.log",
    wildcard_constraints:
        model=one_of(GRAPH.sources("trained")),
        segment=r"to_\d{6}",
    benchmark:
        RUN / "benchmarks" / "train_{model}_{segment}.tsv"
    params:
        cfg=training_params,
        data=data_dir,
        state=lambda wc: model_dir(wc) / "train_state",  # resume state; not an output
        after=lambda wc: int(Path(previous_segment(wc)[0]).name[3:]) if previous_segment(wc) else 0,
        until=lambda wc: int(wc.segment[3:]),
    threads: CFG.train.threads
    priority: 10  # training is the critical path: a free core trains on before it analyses
    resources:
        **resources_of("train_model"),
    conda:
        ENVIRONMENT
    shell:
        "python -m pipeline.train --data {params.data} --out {output.checkpoints} --state {params.state} "
        "--after {params.after} --until {params.until} --log {output.log_table} "
        "--run-config {input.run_config} --model {wildcards.model} 2>&1 | tee {log}"
