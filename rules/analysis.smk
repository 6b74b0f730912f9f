rule check_checkpoints:
    input:
        run_config=run_config,
        checkpoints=checkpoint_inputs,
    output:
        MODEL / "integrity.parquet",
    log:
        RUN / "logs" / "check_checkpoints_{model}.log",
    params:
        cfg=params_of("analysis.duplicate_checkpoints"),
        checkpoints=lambda wc: GRAPH.checkpoint_files(wc.run, wc.model),
    priority: critical_first
    resources:
        **resources_of("check_checkpoints"),
    conda:
        ENVIRONMENT
    shell:
        "python -m pipeline.integrity --checkpoints {params.checkpoints} --out {output} "
        "--run-config {input.run_config} --model {wildcards.model} 2>&1 | tee {log}"


wildcard_constraints:
    part=r"[A-Za-z0-9_]+",


MODEL_LOSSES = MODEL / "token_losses.npz"  # per-position losses: every kind's score step
MODEL_HEADS = MODEL / "head_scores.parquet"


rule score_icl:
    input:
        run_config=run_config,
        losses=MODEL_LOSSES,
    output:
        icl=MODEL / "icl.parquet",
        positions=MODEL / "loss_by_position.parquet",
    log:
        RUN / "logs" / "score_icl_{model}.log",
    params:
        cfg=params_of("analysis.icl", "seed"),
    priority: critical_first
    resources:
        **resources_of("score_icl"),
    conda:
        ENVIRONMENT
    shell:
        "python -m pipeline.icl --losses {input.losses} --icl-out {output.icl} "
        "--positions-out {output.positions} --run-config {input.run_config} --model {wildcards.model} 2>&1 | tee {log}"


rule loss_pca:
    input:
        run_config=run_config,
        losses=MODEL_LOSSES,
    output:
        MODEL / "pca.parquet",
    log:
        RUN / "logs" / "loss_pca_{model}.log",
    params:
        cfg=params_of("analysis.pca", "seed"),
    priority: critical_first
    resources:
        **resources_of("loss_pca"),
    conda:
        ENVIRONMENT
    shell:
        "python -m pipeline.pca --losses {input.losses} --out {output} --run-config {input.run_config} --model {wildcards.model} 2>&1 | tee {log}"


rule detect_phase_window:
    input:
        run_config=run_config,
        heads=MODEL_HEADS,
        icl=rules.score_icl.output.icl,
    output:
        MODEL / "phase_window.parquet",
    log:
        RUN / "logs" / "detect_phase_window_{model}.log",
    params:
        cfg=params_of("analysis.window"),
    priority: critical_first
    resources:
        **resources_of("detect_phase_window"),
    conda:
        ENVIRONMENT
    shell:
        "python -m pipeline.phase --heads {input.heads} --icl {input.icl} --out {output} --run-config {input.run_config} --model {wildcards.model} 2>&1 | tee {log}"


rule collect_table:
    input:
        lambda wc: GRAPH.collected(wc.run, wc.table),
    output:
        RUN / "tables" / "{table}.csv",
    log:
        RUN / "logs" / "collect_table_{table}.log",
    wildcard_constraints:
        table=one_of(TABLES),
    resources:
        **resources_of("collect_table"),
    conda:
        ENVIRONMENT
    shell:
        "python -m pipeline.tables --out {output} {input} 2>&1 | tee {log}"


rule detect_llc_stages:
    input:
        run_config=run_config,
        llc=MODEL / "llc.parquet",
    output:
        curve=MODEL / "llc_smoothed.parquet",
        stages=MODEL / "llc_stages.parquet",
    log:
        RUN / "logs" / "detect_llc_stages_{model}.log",
    params:
        cfg=params_of("analysis.llc.chains"),
    priority: critical_first
    resources:
        **resources_of("default"),
    conda:
        ENVIRONMENT
    shell:
        "python -m pipeline.stages --llc {input.llc} --curve-out {output.curve} --out {output.stages} "
        "--run-config {input.run_config} --model {wildcards.model} 2>&1 | tee {log}"


# The steps split into parts (pipeline.dag.part_steps: each kind's score step, the LLC, each kind's own steps),
# each by two generated rules: one job per share of a model's checkpoints (`part_rule`: score_part, llc_part,
# causal_part, ...), then their merge into the model's tables (`merge_rule`, the step's name), which the rest of
# the DAG reads. A training job's share is scored as soon as that job ends.
PART_READS = {"integrity": integrity_first, "losses": MODEL_LOSSES, "heads": MODEL_HEADS,
              "window": MODEL / "phase_window.parquet"}

for step in part_steps():
    step_tables = tables_of(step.name, step.kinds[0])

    rule:
        name:
            step.part_rule
        input:
            run_config=run_config,
            checkpoints=lambda wc, step=step: GRAPH.parts(step, wc.run, wc.model)[wc.part][0],
            data=data_files,
            **{read: PART_READS[read] for read in step.reads},
        output:
            tables=[MODEL / "parts" / step.name / "{part}" / f"{t}.parquet" for t in step_tables],
            **({"losses": MODEL / "parts" / step.name / "{part}" / "token_losses.npz"} if step.writes_losses else {}),
        log:
            RUN / "logs" / f"{step.name}_{{model}}_{{part}}.log",
        benchmark:
            RUN / "benchmarks" / f"{step.name}_{{model}}_{{part}}.tsv"
        wildcard_constraints:
            model=one_of(GRAPH.models_of(step.kinds)),
        params:
            cfg=params_of(*step.config),
            checkpoints=lambda wc, step=step: GRAPH.parts(step, wc.run, wc.model)[wc.part][1],
            data=data_dir,
            out=lambda wc, step=step: part_dir(wc, step.name),
            cache=lambda wc, step=step: model_dir(wc) / "cache" / f"{step.name}_{wc.part}",  # resumes a killed job
            module=step.module,
            env=step.env,
            options=lambda wc, input, output, step=step: step.options(input, output,
                                                                    GRAPH.checkpoint_files(wc.run, wc.model)),
        threads: CFG.analysis.threads
        priority: critical_first
        resources:
            **resources_of(step.name),
        conda:
            ENVIRONMENT
        shell:
            "{params.env} python -m {params.module} --data {params.data} --checkpoints {params.checkpoints} "
            "--out {params.out} --cache {params.cache} --run-config {input.run_config} --model {wildcards.model} "
            "--part {wildcards.part} {params.options} 2>&1 | tee {log}"

    rule:
        name:
            step.merge_rule
        input:
            tables=lambda wc, step=step: [str(model_dir(wc) / "parts" / step.name / part / f"{t}.parquet")
                                          for part in GRAPH.parts(step, wc.run, wc.model)
                                          for t in tables_of(step.name, step.kinds[0])],
            **({"integrity": MODEL / "integrity.parquet"} if "integrity" in step.reads else {}),
        output:
            tables=[MODEL / f"{t}.parquet" for t in step_tables],
            **({"losses": MODEL_LOSSES} if step.writes_losses else {}),
        log:
            RUN / "logs" / f"{step.name}_{{model}}.log",
        wildcard_constraints:
            model=one_of(GRAPH.models_of(step.kinds)),
        params:
            parts=lambda wc, step=step: [model_dir(wc) / "parts" / step.name / p for p in GRAPH.parts(step, wc.run, wc.model)],
            out=model_dir,
            losses=lambda wc, output, step=step: f"--losses-out {output.losses}" if step.writes_losses else "",
        priority: critical_first
        resources:
            **resources_of("default"),
        conda:
            ENVIRONMENT
        shell:
            "python -m pipeline.parts --parts {params.parts} --out {params.out} {params.losses} 2>&1 | tee {log}"
