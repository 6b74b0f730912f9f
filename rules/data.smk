# One data step per subject kind (pipeline/kinds/): a corpus tokenized once per tokenizer for language
# models, tasks and fixed eval samples for a sampler; its files are the kind's data_files.
for data_kind in KINDS.values():

    rule:
        name:
            data_kind.data_rule
        input:
            run_config=run_config,
        output:
            [RUN / "data" / "{data_key}" / f for f in data_kind.data_files],
        log:
            RUN / "logs" / f"{data_kind.data_rule}_{{data_key}}.log",
        benchmark:
            RUN / "benchmarks" / f"{data_kind.data_rule}_{{data_key}}.tsv"
        wildcard_constraints:
            data_key=one_of([key for run in RUNS for key in GRAPH.data_keys(run, data_kind.name)]),
        params:
            cfg=params_of(*data_kind.data_config),
            model=lambda wc, kind=data_kind.name: GRAPH.data_keys(wc.run, kind)[wc.data_key],
            module=data_kind.data_module,
            out=lambda wc: RESULTS / wc.run / "data" / wc.data_key,
        threads: 2
        priority: 10  # every job of its run waits for it: before any training or analysis
        resources:
            **resources_of(data_kind.data_rule),
        conda:
            ENVIRONMENT
        shell:
            "python -m {params.module} --out {params.out} --run-config {input.run_config} "
            "--model {params.model} 2>&1 | tee {log}"
