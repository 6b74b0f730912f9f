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
        checkpoints=lambda wc: checkpoint_files(wc.run, wc.model),
    priority: critical_first
    resources:
        **resources_of("check_checkpoints"),
    shell:
        "{PY} -m pipeline.integrity --checkpoints {params.checkpoints} --out {output} "
        "--run-config {input.run_config} --model {wildcards.model} " + TEE


wildcard_constraints:
    part=r"[A-Za-z0-9_]+",


def parts_root(wc, step):
    return model_dir(wc) / "parts" / step


def part_dir(wc, step):
    return parts_root(wc, step) / wc.part


def part_outputs(step, kind="language"):
    """Where one job of a step split into parts writes its tables; the step's rule merges them."""
    return [MODEL / "parts" / step / "{part}" / f"{t}.parquet" for t in tables_of(step, kind)]


def merged_parts(step, parts_of, kind="language"):
    """Input function: every part of a model's step, to merge."""
    return lambda wc: [str(model_dir(wc) / "parts" / step / part / f"{t}.parquet")
                       for part in parts_of(wc.run, wc.model) for t in tables_of(step, kind)]


MODEL_LOSSES = MODEL / "token_losses.npz"  # per-position losses: every kind's score step
MODEL_HEADS = MODEL / "head_scores.parquet"


def integrity_first(wc):
    """Hub checkpoints are checked for duplicates before they are scored (refused there when set to error);
    a trained model's are scored as its training jobs end, and checked before the merge."""
    source = configs(wc.run)[wc.model].model.source
    return [str(model_dir(wc) / "integrity.parquet")] if source == "hub" else []


# The score step, one pair of rules per subject kind (its own module and tables): a job per training job's
# checkpoints (score_part), then their merge (score_checkpoints), which the rest of the DAG reads.
for score_kind in KINDS.values():

    rule:
        name:
            f"score_part{score_kind.rule_suffix}"
        input:
            run_config=run_config,
            checkpoints=lambda wc: score_parts(wc.run, wc.model)[wc.part][0],
            integrity=integrity_first,
            data=data_files,
        output:
            tables=part_outputs("score_checkpoints", score_kind.name),
            losses=MODEL / "parts" / "score_checkpoints" / "{part}" / "token_losses.npz",
        log:
            RUN / "logs" / "score_checkpoints_{model}_{part}.log",
        benchmark:
            RUN / "benchmarks" / "score_checkpoints_{model}_{part}.tsv"
        wildcard_constraints:
            model=one_of(models_of_kind(score_kind.name)),
        params:
            cfg=params_of(*score_kind.score_config),
            module=score_kind.score_module,
            checkpoints=lambda wc: score_parts(wc.run, wc.model)[wc.part][1],
            data=lambda wc: data_dir(wc.run, wc.model),
            out=lambda wc: part_dir(wc, "score_checkpoints"),
            cache=lambda wc: model_dir(wc) / "cache" / f"score_checkpoints_{wc.part}",
        threads: CFG.analysis.threads
        priority: critical_first
        resources:
            **resources_of("score_checkpoints"),
        shell:
            "{PY} -m pipeline.{params.module} --data {params.data} --checkpoints {params.checkpoints} "
            "--out {params.out} --losses-out {output.losses} --cache {params.cache} --run-config {input.run_config} "
            "--model {wildcards.model} --part {wildcards.part} " + TEE

    rule:
        name:
            f"score_checkpoints{score_kind.rule_suffix}"
        input:
            tables=merged_parts("score_checkpoints", score_parts, score_kind.name),
            integrity=MODEL / "integrity.parquet",  # refuses duplicated checkpoints when set to error
        output:
            [MODEL / f"{t}.parquet" for t in tables_of("score_checkpoints", score_kind.name)],
            losses=MODEL_LOSSES,
        log:
            RUN / "logs" / "score_checkpoints_{model}.log",
        wildcard_constraints:
            model=one_of(models_of_kind(score_kind.name)),
        params:
            parts=lambda wc: [parts_root(wc, "score_checkpoints") / p for p in score_parts(wc.run, wc.model)],
            out=model_dir,
        priority: critical_first
        resources:
            **resources_of("default"),
        shell:
            "{PY} -m pipeline.parts --parts {params.parts} --out {params.out} "
            "--losses-out {output.losses} " + TEE


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
    shell:
        "{PY} -m pipeline.icl --losses {input.losses} --icl-out {output.icl} "
        "--positions-out {output.positions} --run-config {input.run_config} --model {wildcards.model} " + TEE


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
    shell:
        "{PY} -m pipeline.pca --losses {input.losses} --out {output} --run-config {input.run_config} --model {wildcards.model} " + TEE


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
    shell:
        "{PY} -m pipeline.phase --heads {input.heads} --icl {input.icl} --out {output} --run-config {input.run_config} --model {wildcards.model} " + TEE


rule collect_table:
    input:
        lambda wc: [RESULTS / wc.run / "models" / m / "train_log" / f"{s}.parquet" for m, c in configs(wc.run).items()
                    if c.model.source == "trained" for s in model_segments(wc.run, m)] if wc.table == "train_log"
                   else [RESULTS / wc.run / "models" / m / f"{wc.table}.parquet" for m, c in configs(wc.run).items()
                         if has_table(wc.table, c)],
    output:
        RUN / "tables" / "{table}.csv",
    log:
        RUN / "logs" / "collect_table_{table}.log",
    wildcard_constraints:
        table=one_of(TABLES),
    resources:
        **resources_of("collect_table"),
    shell:
        "{PY} -m pipeline.tables --out {output} {input} " + TEE


rule llc_part:
    input:
        run_config=run_config,
        checkpoints=lambda wc: llc_parts(wc.run, wc.model)[wc.part][0],
        data=data_files,
    output:
        part_outputs("estimate_llc"),
    log:
        RUN / "logs" / "estimate_llc_{model}_{part}.log",
    benchmark:
        RUN / "benchmarks" / "estimate_llc_{model}_{part}.tsv"
    params:
        cfg=params_of(*STEP_CONFIG["estimate_llc"]),
        checkpoints=lambda wc: llc_parts(wc.run, wc.model)[wc.part][1],
        schedule=lambda wc: checkpoint_files(wc.run, wc.model),
        data=lambda wc: data_dir(wc.run, wc.model),
        out=lambda wc: part_dir(wc, "estimate_llc"),
        cache=lambda wc: model_dir(wc) / "cache" / f"estimate_llc_{wc.part}",  # resumes a killed job
    threads: CFG.analysis.threads
    priority: critical_first
    resources:
        **resources_of("estimate_llc"),
    shell:
        "TQDM_DISABLE=1 {PY} -m pipeline.llc --data {params.data} --checkpoints {params.checkpoints} "
        "--schedule {params.schedule} --out {params.out} --cache {params.cache} --run-config {input.run_config} "
        "--model {wildcards.model} --part {wildcards.part} " + TEE


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
    shell:
        "{PY} -m pipeline.stages --llc {input.llc} --curve-out {output.curve} --out {output.stages} "
        "--run-config {input.run_config} --model {wildcards.model} " + TEE


rule causal_part:
    input:
        run_config=run_config,
        checkpoints=checkpoint_inputs,
        losses=MODEL_LOSSES,
        heads=MODEL_HEADS,
        window=rules.detect_phase_window.output,
        eval=data_file("eval.npy"),
        tokenizer=data_file("tokenizer.json"),
    output:
        part_outputs("causal_checkpoints"),
    log:
        RUN / "logs" / "causal_checkpoints_{model}_{part}.log",
    benchmark:
        RUN / "benchmarks" / "causal_checkpoints_{model}_{part}.tsv"
    params:
        cfg=params_of(*STEP_CONFIG["causal_checkpoints"]),
        checkpoints=lambda wc: causal_parts(wc.run, wc.model)[wc.part],
        data=lambda wc: data_dir(wc.run, wc.model),
        out=lambda wc: part_dir(wc, "causal_checkpoints"),
        cache=lambda wc: model_dir(wc) / "cache" / f"causal_checkpoints_{wc.part}",
    threads: CFG.analysis.threads
    priority: critical_first
    resources:
        **resources_of("causal_checkpoints"),
    shell:
        "TQDM_DISABLE=1 {PY} -m pipeline.causal --data {params.data} --checkpoints {params.checkpoints} "
        "--losses {input.losses} --heads {input.heads} --window {input.window} --out {params.out} "
        "--cache {params.cache} --run-config {input.run_config} --model {wildcards.model} --part {wildcards.part} "
        + TEE


# A step run as several jobs over shares of a model's checkpoints is merged into the model's tables by one
# rule named after the step (the score step's merge, which also stacks the losses, is per kind above).
for merged_step, parts_of in {"causal_checkpoints": causal_parts, "estimate_llc": llc_parts}.items():

    rule:
        name:
            merged_step
        input:
            merged_parts(merged_step, parts_of),
        output:
            [MODEL / f"{t}.parquet" for t in tables_of(merged_step)],
        log:
            RUN / "logs" / f"{merged_step}_{{model}}.log",
        params:
            parts=lambda wc, step=merged_step, parts_of=parts_of: [parts_root(wc, step) / p
                                                                  for p in parts_of(wc.run, wc.model)],
            out=model_dir,
        priority: critical_first
        resources:
            **resources_of("default"),
        shell:
            "{PY} -m pipeline.parts --parts {params.parts} --out {params.out} " + TEE
