"""Side-by-side performance ratios of the pipeline, each with its goal and PASS/FAIL.

    python scripts/benchmark.py                 # everything (includes a cold default run, ~8 min)
    python scripts/benchmark.py --skip-pipeline # only the in-process ratios (~3 min)

Every ratio compares two things measured in this one run on this machine, so machine speed cancels:
  1. training: our trainer (checkpoints, logging, progress bar included) vs a bare forward+backward+step
     loop of the same SDPA twin (goal >= 0.9x); a HookedTransformer training loop is reported beside.
  2. analysis: our per-checkpoint analysis (load, head scores, per-token losses) vs the bare
     HookedTransformer forward over the same eval tokens (goal <= 1.3x).
  3. seed loops: seed 003's per-analysis loops (reload the checkpoint for every analysis, full
     `run_with_cache`) vs our single pass, on the same checkpoints and data (goal >= 5x), scores equal.
  4. whole pipeline: cold default run wall time and peak RSS (<= 600 s, <= 4 GiB), no-op rerun (<= 5 s);
     the cold run vs its own critical path, the 2-layer model's training jobs (goal <= 1.15), and vs the
     lower bound no schedule can beat, max(critical path, CPU seconds of all jobs / cores); a tiny study's
     wall time vs the CPU seconds of all its processes / cores (goal <= 1.1).
  5. the 2-layer model with MLPs (transformer_2l): the twin that trains it vs the same loop on the
     HookedTransformer (goal >= 1x: the twin must be the faster way to train it).
  7. the regression subject's trainer (checkpoints, logging included) vs a bare loop of the same twin on
     pre-sampled batches (goal >= 0.9x).
  6. the LLC (opt-in): one estimate at the default SGLD settings vs the score step, per checkpoint (goal <= 5x
     for it to fit the default run's +50% budget).
Results go to results/bench/ (benchmark.csv, benchmark.png). Everything runs on the CPU (no CUDA path yet).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from pipeline.checkpoints import load_checkpoint, load_weights
from pipeline.config import compose
from pipeline.data import build_corpus, eval_windows, load_documents, sample_windows
from pipeline.icl import icl_per_sequence
from pipeline.language import corpus_subject, initial_model
from pipeline.model import hooked_config_kwargs, hooked_transformer
from pipeline.scores import HEAD_SCORES, analyse_checkpoints, compiled, head_score_tokens, per_token_losses
from pipeline.train import train

REPO = Path(__file__).resolve().parent.parent
ROWS: list[dict] = []


def record(name: str, ours: float, reference: float, goal: str, unit: str, note: str = ""):
    """Add one measured ratio; `goal` is like '>= 0.9' or '<= 1.3'."""
    ratio = ours / reference
    op, bound = goal.split()
    ok = ratio >= float(bound) if op == ">=" else ratio <= float(bound)
    ROWS.append({"measure": name, "ours": ours, "reference": reference, "unit": unit, "ratio": ratio,
                 "goal": goal, "result": "PASS" if ok else "FAIL", "note": note})
    print(f"{name:<44} {ours:>10.3g} vs {reference:>10.3g} {unit:<8} ratio {ratio:6.2f}  goal {goal:<7} "
          f"{'PASS' if ok else 'FAIL'}  {note}", flush=True)


def corpus(cfg):
    _, splits, manifest = build_corpus(load_documents(cfg.data), "bpe", cfg.data)
    return splits["train"], splits["eval"], manifest


def bare_loop(model, tokens, cfg, steps: int) -> float:
    """Tokens/s of a tight forward+backward+AdamW loop on pre-sampled batches (no logging, no saving)."""
    generator = torch.Generator().manual_seed(0)
    batches = [sample_windows(tokens, cfg.train.batch_size, cfg.model.n_ctx, generator) for _ in range(steps)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr)
    for i, batch in enumerate(batches):
        if i == 3:  # warm-up steps excluded
            start = time.perf_counter()
        logits = model(batch)
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), batch[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (steps - 3) * batches[0].numel() / (time.perf_counter() - start)


def bench_training(cfg, train_tokens, d_vocab, workdir: Path, steps: int):
    kwargs = hooked_config_kwargs(cfg.model, d_vocab)
    # The same model at the same initial weights as our trainer's (init changes speed: TransformerLens's
    # small init produces subnormal floats that slow the CPU ~25%). Best of two for the bare loop.
    twin = max(bare_loop(initial_model(cfg.model, kwargs, cfg.seed), train_tokens, cfg, steps) for _ in range(2))
    hooked = hooked_transformer(kwargs)
    hooked.load_state_dict(initial_model(cfg.model, kwargs, cfg.seed).state_dict(), strict=False)
    hooked = bare_loop(hooked, train_tokens, cfg, steps)
    # Our trainer with the default run's checkpoint density (31 checkpoints per 3000 steps).
    train_cfg = cfg.train.copy()
    train_cfg.steps = steps
    train_cfg.n_checkpoints = max(1, round(cfg.train.n_checkpoints * steps / cfg.train.steps))
    train_cfg.first_checkpoint = max(1, steps // 10)
    start = time.perf_counter()
    train(corpus_subject(cfg, train_tokens, d_vocab), train_cfg, cfg.seed, workdir / "bench_ckpt",
          workdir / "bench_state")
    ours = steps * cfg.train.batch_size * cfg.model.n_ctx / (time.perf_counter() - start)
    record("training tok/s: trainer vs bare SDPA loop", ours, twin, ">= 0.9", "tok/s",
           f"HookedTransformer loop {hooked:.0f} tok/s ({hooked / twin:.2f}x the twin)")


def bench_mlp_training(train_tokens, d_vocab, steps: int):
    """transformer_2l's trainer: the SDPA twin (with MLPs) vs the HookedTransformer, same init and batches."""
    cfg = compose(["model=transformer_2l"])
    kwargs = hooked_config_kwargs(cfg.model, d_vocab)
    twin = bare_loop(initial_model(cfg.model, kwargs, cfg.seed), train_tokens, cfg, steps)
    hooked = hooked_transformer(kwargs)
    hooked.load_state_dict(initial_model(cfg.model, kwargs, cfg.seed).state_dict(), strict=False)
    record("transformer_2l tok/s: twin vs HookedTransformer", twin, bare_loop(hooked, train_tokens, cfg, steps),
           ">= 1", "tok/s", f"d_mlp={cfg.model.d_mlp}; the twin trains it")


def regression_rates(workdir: Path, steps: int) -> tuple[float, float]:
    """Tokens/s of the regression kind through the shared trainer and of a bare Adam loop of the same twin
    (same init, pre-sampled batches)."""
    from pipeline.regression_model import initial_model as regression_model
    from pipeline.regression_model import mse_loss, tasks_subject

    cfg = compose(["+experiment=regression"])
    subject = tasks_subject(cfg, torch.zeros(0, cfg.data.dim))
    generator = torch.Generator().manual_seed(0)
    batches = [subject.batch(generator) for _ in range(steps)]
    model = regression_model(subject.config_kwargs, cfg.seed)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.train.lr,
                                  weight_decay=0.0)
    for i, batch in enumerate(batches):
        if i == 3:
            start = time.perf_counter()
        loss = mse_loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    bare = (steps - 3) * subject.tokens_per_step / (time.perf_counter() - start)
    train_cfg = cfg.train.copy()
    train_cfg.steps, train_cfg.first_checkpoint = steps, max(1, steps // 100)
    start = time.perf_counter()
    train(subject, train_cfg, cfg.seed, workdir / "regression_ckpt", workdir / "regression_state")
    return steps * subject.tokens_per_step / (time.perf_counter() - start), bare


def bench_regression_training(workdir: Path, steps: int, repeats: int = 3):
    """The regression trainer vs its bare loop: the median of `repeats` side-by-side pairs."""
    pairs = []
    for i in range(repeats):
        pairs.append(regression_rates(workdir / f"regression_{i}", steps))
    ours, bare = sorted(pairs, key=lambda pair: pair[0] / pair[1])[repeats // 2]
    record("regression tok/s: trainer vs bare loop", ours, bare, ">= 0.9", "tok/s",
           f"regression_l2h4, batch 128 x 32 tokens, sampling included; median of {repeats} pairs")


def seed_style_scores(paths, eval_tokens, repeated, cfg):
    """Seed 003's loops: every analysis reloads each checkpoint and caches every activation."""
    hs, icl = cfg.analysis.head_scores, cfg.analysis.icl
    prefix, per_analysis = [], []
    for path in paths:  # prefix-matching loop
        model = load_checkpoint(path)
        _, cache = model.run_with_cache(repeated)
        prefix.append(torch.stack([HEAD_SCORES["prefix_matching"](cache["pattern", layer], hs.seq_len)
                                   for layer in range(model.cfg.n_layers)]))
    for _ in ("icl", "loss curve", "pca"):  # each its own loop over checkpoints and data
        losses = []
        for path in paths:
            model = load_checkpoint(path)
            per_token = []
            for batch in eval_tokens.split(cfg.analysis.eval.batch):
                logits, _ = model.run_with_cache(batch)
                per_token.append(-logits.log_softmax(-1)[:, :-1].gather(-1, batch[:, 1:, None])[..., 0])
            losses.append(torch.cat(per_token).numpy())
        per_analysis.append(np.stack(losses))
    icl_values = icl_per_sequence(per_analysis[0], icl.early, icl.late, icl.window).mean(axis=-1)
    return torch.stack(prefix), icl_values, per_analysis[1].mean(axis=(1, 2))


def bench_analysis(cfg, eval_tokens, bos_id, paths: list[Path]):
    """Our analysis step vs the bare (compiled, warmed-up) forward over the same eval tokens."""
    sample = eval_windows(eval_tokens, cfg.analysis.eval.n_sequences, cfg.model.n_ctx)
    model = load_checkpoint(paths[0])
    forward = compiled(model, cfg.analysis.compile)
    with torch.no_grad():
        per_token_losses(forward, sample[: 2 * cfg.analysis.eval.batch], cfg.analysis.eval.batch)  # compile
        load_weights(model, paths[1])
        per_token_losses(forward, sample[: 2 * cfg.analysis.eval.batch], cfg.analysis.eval.batch)  # retrace
        start = time.perf_counter()
        for path in paths:
            load_weights(model, path)
            per_token_losses(forward, sample, cfg.analysis.eval.batch)
        bare = time.perf_counter() - start
    start = time.perf_counter()
    analyse_checkpoints(paths, eval_tokens, bos_id, cfg.analysis, cfg.seed)
    ours = time.perf_counter() - start
    record("analysis s: per-checkpoint step vs bare forward", ours, bare, "<= 1.3", "s",
           f"{len(paths)} checkpoints x {sample.numel()} eval tokens, compile={cfg.analysis.compile}")
    return ours / len(paths)


def bench_seed_loops(cfg, eval_tokens, bos_id, paths: list[Path], n_sequences: int):
    """Seed 003's loops vs our single pass on the same checkpoints and eval sample; scores must agree."""
    cfg = cfg.copy()
    cfg.analysis.eval.n_sequences = n_sequences
    start = time.perf_counter()
    tables, losses = analyse_checkpoints(paths, eval_tokens, bos_id, cfg.analysis, cfg.seed)
    heads = tables["head_scores"]
    ours = time.perf_counter() - start
    sample = eval_windows(eval_tokens, n_sequences, cfg.model.n_ctx)
    repeated = head_score_tokens(eval_tokens, bos_id, cfg.analysis.head_scores, cfg.seed)
    with torch.no_grad():
        start = time.perf_counter()
        prefix, icl_values, loss_values = seed_style_scores(paths, sample, repeated, cfg)
        seed_time = time.perf_counter() - start
    ours_prefix = torch.tensor(heads[heads.score == "prefix_matching"].value.to_numpy()).view(prefix.shape)
    ours_icl = icl_per_sequence(losses, cfg.analysis.icl.early, cfg.analysis.icl.late,
                                cfg.analysis.icl.window).mean(axis=-1)
    torch.testing.assert_close(ours_prefix.float(), prefix.float(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(ours_icl, icl_values, atol=1e-3)
    np.testing.assert_allclose(losses.mean(axis=(1, 2)), loss_values, atol=1e-4)
    record("seed-003 loops s vs our single pass", seed_time, ours, ">= 5", "s",
           f"{len(paths)} checkpoints x {n_sequences} sequences; same scores (asserted)")


def peak_tree_rss(process) -> float:
    """Poll a process tree until it exits; the peak of its summed RSS in MiB."""
    import psutil

    root, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        try:
            rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
        except psutil.Error:
            continue
        peak = max(peak, rss)
        time.sleep(0.2)
    return peak / 2**20


def children_cpu_seconds() -> float:
    """CPU seconds (user + system) of every finished child process of this one and their descendants."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_pipeline(workdir: Path, cores: int = 2):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", str(cores)]
    cpu_before, start = children_cpu_seconds(), time.perf_counter()
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = peak_tree_rss(process)
    cold, cpu = time.perf_counter() - start, children_cpu_seconds() - cpu_before
    if process.returncode != 0:
        raise SystemExit(f"error: the default pipeline failed; rerun `snakemake --cores 2 -d {workdir}` to see why")
    record("cold default run s (2 cores) vs 10-min budget", cold, 600, "<= 1", "s")
    benchmarks = workdir / "results" / "default" / "benchmarks"
    critical = sum(pd.read_csv(f, sep="\t").s.iloc[0] for f in benchmarks.glob("train_attn_only_2l_*.tsv"))
    record("cold default run s vs its critical path", cold, critical, "<= 1.15", "s",
           "critical path = the 2-layer model's training jobs")
    bound = max(critical, cpu / cores)
    record("cold default run s vs its lower bound", cold, bound, "<= 1.15", "s",
           f"bound = max(critical path, {cpu:.0f} CPU-s of all jobs / {cores} cores)")
    record("cold default run peak RSS MiB vs 4 GiB", peak, 4096, "<= 1", "MiB")
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    record("no-op rerun s vs 5 s", time.perf_counter() - start, 5, "<= 1", "s")


def bench_study(workdir: Path, cores: int = 2):
    """A tiny study's wall time vs the CPU seconds of all its processes (Snakemake and every job) spread over
    the cores: how busy the scheduler keeps them."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores",
           str(cores), "--config", "sweep=[seed=0,1]", "overrides=[+experiment=tiny]"]
    cpu_before, start = children_cpu_seconds(), time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    wall, cpu = time.perf_counter() - start, children_cpu_seconds() - cpu_before
    record("tiny study wall s vs its CPU s / cores", wall, cpu / cores, "<= 1.1", "s",
           f"2 seeds x 2 models, {cores} cores")


def bench_llc(cfg, eval_tokens, paths: list[Path], score_seconds_per_checkpoint: float):
    """One LLC estimate at the default SGLD settings vs the score step, per checkpoint. Goal <= 5x: what the
    LLC of every checkpoint could cost inside the default run's +50% budget; above it, it stays opt-in."""
    from pipeline.llc import sgld_llc, token_dataset

    model = load_checkpoint(paths[-1])
    sample = eval_windows(eval_tokens, cfg.analysis.eval.n_sequences, cfg.model.n_ctx)
    start = time.perf_counter()
    sgld_llc(model, token_dataset(sample[: cfg.analysis.llc.n_sequences]), cfg.analysis.llc, cfg.seed)
    llc = time.perf_counter() - start
    record("LLC s per checkpoint vs score step", llc, score_seconds_per_checkpoint, "<= 5", "s",
           f"{cfg.analysis.llc.chains} chains x {cfg.analysis.llc.burn_in + cfg.analysis.llc.draws} SGLD steps "
           f"x batch {cfg.analysis.llc.batch}; opt-in (analysis.llc.enabled)")


def plot(table: pd.DataFrame, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.8 + 0.45 * len(table)))
    colors = ["tab:green" if r == "PASS" else "tab:red" for r in table.result]
    ax.barh(table.measure, table.ratio, color=colors)
    for i, goal in enumerate(table.goal):
        ax.plot([float(goal.split()[1])] * 2, [i - 0.4, i + 0.4], color="black", lw=2)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator([0.1, 0.3, 1, 3, 10]))
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("ratio, ours / reference (black bar: goal; green PASS, red FAIL)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-pipeline", action="store_true",
                        help="skip the cold default run (~7 min); analyse results/default's checkpoints instead")
    parser.add_argument("--train-steps", type=int, default=150)
    parser.add_argument("--seed-sequences", type=int, default=256, help="eval sequences for the seed-loop ratio")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the pipeline's jobs use 1)")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = f"CPU ({args.threads} threads)"  # every ratio runs on the CPU; no CUDA path yet
    print(f"device: {device}")
    cfg = compose(["model=attn_only_2l"])
    train_tokens, eval_tokens, manifest = corpus(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        bench_training(cfg, train_tokens, manifest["vocab_size"], Path(tmp), args.train_steps)
        bench_mlp_training(train_tokens, manifest["vocab_size"], args.train_steps // 3)
        bench_regression_training(Path(tmp), 4 * args.train_steps)
        run = REPO / "results" / "default"
        if not args.skip_pipeline:
            run = Path(tmp) / "pipeline" / "results" / "default"
            bench_pipeline(Path(tmp) / "pipeline")
            bench_study(Path(tmp) / "study")
        paths = sorted((run / "models" / "attn_only_2l" / "checkpoints").glob("*/*.safetensors"))
        if not paths:
            raise SystemExit(f"error: no checkpoints under {run}; run `snakemake --cores 2` first or drop "
                             f"--skip-pipeline")
        per_checkpoint = bench_analysis(cfg, eval_tokens, manifest["eot_id"], paths)
        bench_llc(cfg, eval_tokens, paths, per_checkpoint)
        bench_seed_loops(cfg, eval_tokens, manifest["eot_id"], paths, args.seed_sequences)
    table = pd.DataFrame(ROWS).assign(device=device)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "benchmark.csv", index=False)
    plot(table, args.out / "benchmark.png")
    print(f"\n{(table.result == 'PASS').sum()}/{len(table)} PASS; table and plot in {args.out}")


if __name__ == "__main__":
    main()
