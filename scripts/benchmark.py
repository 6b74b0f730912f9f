"""Side-by-side performance ratios of the pipeline, each with its goal and PASS/FAIL (INFO: no goal).

    python scripts/benchmark.py                 # everything (two cold default runs and three tiny studies)
    python scripts/benchmark.py --skip-pipeline # only the in-process ratios, on results/default's checkpoints
    python scripts/benchmark.py --only-pipeline --workdir /tmp/bench  # row 4 alone (the LLC's budget), runs kept
    python scripts/benchmark.py --page docs/performance.md   # and write this page (docs/performance.md) from the run

Every ratio compares two things measured in this one run on this machine, so machine speed cancels; a ratio
that machine noise can flip is the median of 3 repetitions:
  1. training: our trainer (checkpoints, logging, progress bar included) vs a bare forward+backward+step
     loop of the same SDPA twin (goal >= 0.9x); a HookedTransformer loop beside it; and the physical limit:
     the trainer's FLOP/s (counted from the model's shapes) vs the thread's dense-matmul FLOP/s (INFO).
  2. analysis: our per-checkpoint analysis (load, head scores, per-token losses) vs the bare
     HookedTransformer forward over the same eval tokens (goal <= 1.3x).
  3. seed loops: our outputs computed seed 003's way — a loop per analysis (each head score, the composition,
     the ICL score, the loss curve, the PCA), each reloading every checkpoint with a full `run_with_cache` — vs
     our single pass, on the same checkpoints and data (goal >= 5x), every output asserted equal.
  4. whole pipeline: the cold default run with the LLC on every checkpoint (the default) vs without it
     (goal <= 1.5: the LLC's budget); with the LLC, vs the lower bound no schedule can beat, max(critical path,
     CPU seconds of all jobs / cores) (goal <= 1.1), and vs the critical path alone (INFO: 2 cores cannot
     reach it); peak RSS (<= 4 GiB); no-op rerun (<= 5 s); a tiny study's wall time vs the CPU seconds of all
     its processes / cores (goal <= 1.1).
  5. the 2-layer model with MLPs (transformer_2l): the twin that trains it vs the same loop on the
     HookedTransformer (goal >= 1x: the twin must be the faster way to train it).
  6. the LLC: one estimate at the default settings on the training twin vs a bare devinterp `llc()` call on
     the same module, data and settings (goal <= 1.1) and vs the score step per checkpoint (goal <= 5); the
     same estimate on the HookedTransformer, and a pythia-70m-shaped model's estimate (INFO).
  7. the regression subject's trainer (checkpoints, logging included) vs a bare loop of the same twin on
     pre-sampled batches (goal >= 0.9x).
Results go to results/bench/ (benchmark.csv, benchmark.png). Everything runs on the CPU (no CUDA path yet).
"""

from __future__ import annotations

import argparse
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from pipeline.checkpoints import load_checkpoint, load_twin, load_weights
from pipeline.composition import composition_table, random_baseline
from pipeline.config import compose
from pipeline.icl import icl_per_sequence
from pipeline.kinds.language.data import build_corpus, eval_windows, load_documents, sample_windows
from pipeline.kinds.language.scores import analyse_checkpoints, head_score_tokens
from pipeline.kinds.language.subject import corpus_subject, initial_model
from pipeline.measures import HEAD_SCORES, compiled, per_token_losses
from pipeline.model import hooked_config_kwargs, hooked_transformer
from pipeline.paper_tables import job_timings, markdown
from pipeline.provenance import git_state
from pipeline.train import train

REPO = Path(__file__).resolve().parent.parent
ROWS: list[dict] = []


def record(name: str, ours: float, reference: float, goal: str | None, unit: str, note: str = ""):
    """Add one measured ratio; `goal` is like '>= 0.9' or '<= 1.3', or None for an information row."""
    ratio = ours / reference
    if goal is None:
        result = "INFO"
    else:
        op, bound = goal.split()
        result = "PASS" if (ratio >= float(bound) if op == ">=" else ratio <= float(bound)) else "FAIL"
    ROWS.append({"measure": name, "ours": ours, "reference": reference, "unit": unit, "ratio": ratio,
                 "goal": goal or "—", "result": result, "note": note})
    print(f"{name:<44} {ours:>10.3g} vs {reference:>10.3g} {unit:<8} ratio {ratio:6.2f}  goal {goal or '—':<7} "
          f"{result}  {note}", flush=True)


def median_of(repeats: int, measure) -> tuple[float, float, list[float]]:
    """`measure()` -> (ours, reference), `repeats` times: the pair whose ratio is the median, and every ratio
    (so one noisy repetition cannot flip a row)."""
    pairs = sorted((measure() for _ in range(repeats)), key=lambda pair: pair[0] / pair[1])
    ours, reference = pairs[len(pairs) // 2]
    return ours, reference, [round(o / r, 2) for o, r in pairs]


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
    record("trainer FLOP/s vs the thread's dense-matmul FLOP/s", ours * training_flops_per_token(kwargs),
           matmul_flops(), None, "FLOP/s", "the share of one core the training uses (physical limit: 1)")


def training_flops_per_token(kwargs: dict) -> float:
    """Forward + backward FLOPs per token of the attention-only model, counted from its shapes: the Q, K, V
    and O projections, the causal attention scores and mixing (half the context on average), the unembedding;
    backward = 2x forward."""
    d, t, layers = kwargs["d_model"], kwargs["n_ctx"], kwargs["n_layers"]
    per_layer = 2 * 4 * d * d + 2 * 2 * (t / 2) * d
    return 3 * (layers * per_layer + 2 * d * kwargs["d_vocab"])


def matmul_flops(n: int = 2048, repeats: int = 5) -> float:
    """This thread's dense float32 matmul FLOP/s at a large square size (the best of `repeats`)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = min(timed_once(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best


def timed_once(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


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
    from pipeline.kinds.regression.subject import initial_model as regression_model
    from pipeline.kinds.regression.subject import mse_loss, tasks_subject

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
    """Our outputs computed seed 003's way: every analysis its own loop that reloads each checkpoint and caches
    every activation — one loop per head score, one for the composition scores, one each for the ICL score, the
    loss curve and the PCA. Returns the head scores (score, checkpoint, layer, head), the composition tables, the
    ICL scores and the mean losses."""
    hs, icl = cfg.analysis.head_scores, cfg.analysis.icl
    scores = []
    for name in hs.names:
        per_checkpoint = []
        for path in paths:
            model = load_checkpoint(path)
            _, cache = model.run_with_cache(repeated)
            per_checkpoint.append(torch.stack([HEAD_SCORES[name](cache["pattern", layer], hs.seq_len)
                                               for layer in range(model.cfg.n_layers)]))
        scores.append(torch.stack(per_checkpoint))
    first = load_checkpoint(paths[0]).cfg
    baseline = random_baseline(first.d_model, first.d_head, seed=cfg.seed)
    composition = [composition_table(load_checkpoint(path), baseline) for path in paths]
    per_analysis = []
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
    return torch.stack(scores), composition, icl_values, per_analysis[1].mean(axis=(1, 2))


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


def bench_seed_loops(cfg, eval_tokens, bos_id, paths: list[Path], n_sequences: int, repeats: int = 3):
    """Seed 003's loops vs our single pass on the same checkpoints and eval sample; scores must agree. Median
    of `repeats` pairs."""
    cfg = cfg.copy()
    cfg.analysis.eval.n_sequences = n_sequences
    sample = eval_windows(eval_tokens, n_sequences, cfg.model.n_ctx)
    repeated = head_score_tokens(eval_tokens, bos_id, cfg.analysis.head_scores, cfg.seed)

    def pair():
        start = time.perf_counter()
        tables, losses = analyse_checkpoints(paths, eval_tokens, bos_id, cfg.analysis, cfg.seed)
        ours = time.perf_counter() - start
        with torch.no_grad():
            start = time.perf_counter()
            scores, composition, icl_values, loss_values = seed_style_scores(paths, sample, repeated, cfg)
            seed_time = time.perf_counter() - start
        ours_scores = torch.tensor(tables["head_scores"].value.to_numpy()).view(scores.transpose(0, 1).shape)
        torch.testing.assert_close(ours_scores.transpose(0, 1).float(), scores.float(), atol=1e-5, rtol=0)
        ours_composition = tables["composition"].drop(columns=["step", "tokens_seen"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(ours_composition, pd.concat(composition, ignore_index=True), atol=1e-5)
        ours_icl = icl_per_sequence(losses, cfg.analysis.icl.early, cfg.analysis.icl.late,
                                    cfg.analysis.icl.window).mean(axis=-1)
        np.testing.assert_allclose(ours_icl, icl_values, atol=1e-3)
        np.testing.assert_allclose(losses.mean(axis=(1, 2)), loss_values, atol=1e-4)
        return seed_time, ours

    seed_time, ours, ratios = median_of(repeats, pair)
    record("seed-003 loops s vs our single pass", seed_time, ours, ">= 5", "s",
           f"{len(paths)} checkpoints x {n_sequences} sequences; the same outputs on both sides (all "
           f"{len(cfg.analysis.head_scores.names)} head scores, composition, ICL, loss; asserted equal); median of {repeats} "
           f"(ratios {ratios})")


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


def cold_run(workdir: Path, cores: int, *config: str) -> dict:
    """One cold `snakemake` run of the default pipeline (with `--config` items): wall s, CPU-s of every
    process, peak RSS of the process tree, and its run directory."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", str(cores),
           *(["--config", *config] if config else [])]
    cpu_before, start = children_cpu_seconds(), time.perf_counter()
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = peak_tree_rss(process)
    wall, cpu = time.perf_counter() - start, children_cpu_seconds() - cpu_before
    if process.returncode != 0:
        raise SystemExit(f"error: the default pipeline failed; rerun `snakemake --cores {cores} -d {workdir}` to see why")
    (run,) = [p for p in (workdir / "results").iterdir() if (p / "benchmarks").is_dir()]
    return {"wall": wall, "cpu": cpu, "peak": peak, "run": run, "cmd": cmd}


def bench_pipeline(workdir: Path, cores: int = 2):
    """The default run cold with the LLC (the default) and without it, one after the other on the same machine:
    the LLC's budget is +50% wall time; then the run with the LLC against its lower bound."""
    on = cold_run(workdir / "llc", cores)
    off = cold_run(workdir / "no_llc", cores, "overrides=[analysis.llc.enabled=false]")
    jobs = job_timings(on["run"])
    train = jobs[jobs.job.str.startswith("train_attn_only_2l_")].s.sum()
    cfg = compose([])
    rate = cfg.train.steps * cfg.train.batch_size * cfg.model.n_ctx / train
    record("cold default run s: LLC on every checkpoint vs off", on["wall"], off["wall"], "<= 1.5", "s",
           f"2L trained at {rate / 1000:.1f}k tok/s beside 1L; {on['cpu']:.0f} vs {off['cpu']:.0f} CPU-s of all jobs")
    bound = max(train, on["cpu"] / cores)
    record("cold default run s (LLC on) vs its lower bound", on["wall"], bound, "<= 1.1", "s",
           f"bound = max(critical path {train:.0f} s, {on['cpu']:.0f} CPU-s of all jobs / {cores} cores)")
    record("cold default run s (LLC on) vs its critical path", on["wall"], train, None, "s",
           "critical path = the 2-layer model's training jobs; 2 cores cannot reach it when CPU-s / 2 exceed it")
    record("cold default run peak RSS MiB vs 4 GiB", on["peak"], 4096, "<= 1", "MiB")
    start = time.perf_counter()
    subprocess.run(on["cmd"], check=True, capture_output=True)
    record("no-op rerun s vs 5 s", time.perf_counter() - start, 5, "<= 1", "s")


def bench_study(workdir: Path, cores: int = 2, repeats: int = 3):
    """A tiny study's wall time vs the CPU seconds of all its processes (Snakemake and every job) spread over
    the cores: how busy the scheduler keeps them. Median of `repeats` cold studies."""
    def once(i):
        cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir / str(i)),
               "--cores", str(cores), "--config", "sweep=[seed=0,1]", "overrides=[+experiment=tiny]"]
        cpu_before, start = children_cpu_seconds(), time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        return time.perf_counter() - start, (children_cpu_seconds() - cpu_before) / cores

    runs = iter(range(repeats))
    wall, spread, ratios = median_of(repeats, lambda: once(next(runs)))
    record("tiny study wall s vs its CPU s / cores", wall, spread, "<= 1.1", "s",
           f"2 seeds x 2 models, {cores} cores; median of {repeats} (ratios {ratios})")


def bench_llc(cfg, eval_tokens, paths: list[Path], score_seconds_per_checkpoint: float, repeats: int = 3):
    """One LLC estimate at the default settings on the training twin (what the pipeline runs): vs a bare
    devinterp `llc()` call on the same module, data and settings (goal <= 1.1), vs the score step per checkpoint
    (goal <= 5); beside it the same estimate on the HookedTransformer."""
    import warnings

    from devinterp.slt.llc import llc

    from pipeline.llc import sgld_llc, token_dataset

    llc_cfg = cfg.analysis.llc
    twin, hooked = load_twin(paths[-1]), load_checkpoint(paths[-1])
    dataset = token_dataset(eval_windows(eval_tokens, cfg.analysis.eval.n_sequences, cfg.model.n_ctx)[: llc_cfg.n_sequences])

    def bare(**init_loss):
        with tempfile.TemporaryDirectory() as scratch, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            llc(twin, dataset, {}, lr=llc_cfg.lr, n_beta=llc_cfg.n_beta, localization=llc_cfg.localization,
                num_chains=llc_cfg.chains, num_draws=llc_cfg.draws, num_burnin_steps=llc_cfg.burn_in,
                batch_size=llc_cfg.batch, init_seed=cfg.seed, output_path=Path(scratch) / "s.zarr", device="cpu",
                match_sampling_input_ids_across_chains=False, **init_loss)

    whole = {"num_init_loss_batches": max(1, len(dataset) // llc_cfg.batch)}  # the loss at the checkpoint, whole sample
    ours, reference, ratios = median_of(repeats, lambda: (timed_once(lambda: sgld_llc(twin, dataset, llc_cfg, cfg.seed)),
                                                          timed_once(lambda: bare(**whole))))
    settings = f"{llc_cfg.chains} chains x ({llc_cfg.burn_in} + {llc_cfg.draws}) SGLD steps x batch {llc_cfg.batch}"
    record("LLC s per estimate: ours vs bare devinterp llc()", ours, reference, "<= 1.1", "s",
           f"{settings}, the same twin and init-loss batches; median of {repeats} (ratios {ratios})")
    record("(the same bare call: the whole sample's init loss vs devinterp's default 32 batches)",
           reference, timed_once(bare), None, "s", "the cost of the unbiased loss at the checkpoint")
    record("LLC s per estimate vs score step per checkpoint", ours, score_seconds_per_checkpoint, "<= 5", "s",
           f"{settings}; on by default")
    record("LLC s per estimate: HookedTransformer vs twin", timed_once(lambda: sgld_llc(hooked, dataset, llc_cfg, cfg.seed)), ours,
           None, "s", "the module the chains ran on before")


def bench_hub_llc(cfg, steps: int = 2):
    """What one LLC estimate at the default settings would cost on a pythia-70m-shaped model on one CPU thread:
    the seconds of `steps` forward+backward passes at the LLC's batch and the model's 2048 context (random
    weights), times the SGLD steps of an estimate (plus devinterp's 32 forward-only init batches per chain)."""
    from devinterp.slt.lm_loss import compute_per_token_loss
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    llc_cfg = cfg.analysis.llc
    model = HookedTransformer(HookedTransformerConfig(
        n_layers=6, d_model=512, n_heads=8, d_head=64, d_mlp=2048, d_vocab=50304, n_ctx=2048, act_fn="gelu",
        normalization_type="LN", positional_embedding_type="rotary", rotary_dim=16, parallel_attn_mlp=True,
        device="cpu", seed=0), move_to_device=False)
    batch = torch.randint(0, 50304, (llc_cfg.batch, 2048), generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    for _ in range(steps):
        model.zero_grad(set_to_none=True)
        compute_per_token_loss(model, batch).mean().backward()
    per_step = (time.perf_counter() - start) / steps
    estimate = llc_cfg.chains * (llc_cfg.burn_in + llc_cfg.draws + 32 / 3) * per_step  # a forward ~ 1/3 of a step
    record("LLC s per estimate, pythia-70m shape (extrapolated) vs 1 h", estimate, 3600, None, "s",
           f"{per_step:.1f} s per SGLD step of {llc_cfg.batch} x 2048 tokens; why hub models opt in (analysis.llc.hub)")


def plot(table: pd.DataFrame, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.8 + 0.45 * len(table)))
    colors = [{"PASS": "tab:green", "FAIL": "tab:red"}.get(r, "tab:gray") for r in table.result]
    ax.barh(table.measure, table.ratio, color=colors)
    for i, goal in enumerate(table.goal):
        if goal != "—":
            ax.plot([float(goal.split()[1])] * 2, [i - 0.4, i + 0.4], color="black", lw=2)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator([0.1, 0.3, 1, 3, 10]))
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("ratio, ours / reference (black bar: goal; green PASS, red FAIL, grey INFO)")
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")  # the long measure names widen the figure


def page(table: pd.DataFrame, command: str, figure: str) -> str:
    """docs/performance.md: what each ratio means (this module's docstring), then the table and figure of the run
    that measured them, with its commit, note and the 2L training speed it was measured at."""
    first = table.iloc[0]
    speed = table[table.measure.str.startswith("training tok/s")].ours
    rows = table[["measure", "ours", "reference", "unit", "ratio", "goal", "result", "note"]]
    return ("# Performance\n\nGenerated by `" + command + "` (`scripts/benchmark.py`; do not edit by hand): measured "
            f"at commit `{first.commit}`{' with local changes' if first.dirty else ''}, on {first.device}"
            + (f"; the 2-layer model trained at {speed.iloc[0]:,.0f} tokens/s there" if len(speed) else "")
            + (f"; {first.conditions}" if isinstance(first.conditions, str) and first.conditions else "")
            + ". Scale the seconds by your own tokens/s: `results/<run>/logs/train_*.log` shows it as `tok_s`.\n\n"
            "```\n" + __doc__.strip() + "\n```\n\n" + markdown(rows) + f"\n![benchmark ratios]({figure})\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-pipeline", action="store_true",
                        help="skip the cold default runs and tiny studies; analyse results/default's checkpoints instead")
    parser.add_argument("--only-pipeline", action="store_true",
                        help="only row 4's cold default runs (the LLC's budget), kept under --workdir")
    parser.add_argument("--workdir", type=Path, help="where the cold runs go and stay (default: a temporary one)")
    parser.add_argument("--train-steps", type=int, default=150)
    parser.add_argument("--seed-sequences", type=int, default=256, help="eval sequences for the seed-loop ratio")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the pipeline's jobs use 1)")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench")
    parser.add_argument("--page", type=Path, help="also write the performance page here (docs/performance.md), its "
                                                  "figure beside it")
    parser.add_argument("--conditions", default="", help="what else ran beside it, for the page (e.g. 'beside a "
                                                             "study on the same 2 cores')")
    args = parser.parse_args()
    state = git_state(REPO)  # the code that measures, before anything is written
    torch.set_num_threads(args.threads)
    device = f"CPU ({args.threads} threads)"  # every ratio runs on the CPU; no CUDA path yet
    print(f"device: {device}")
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.workdir or Path(scratch)
        if args.only_pipeline:
            bench_pipeline(tmp / "pipeline")
        else:
            bench_everything(args, tmp)
    table = pd.DataFrame(ROWS).assign(device=device, commit=state.get("commit"), dirty=state.get("dirty"),
                                      conditions=args.conditions)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "benchmark.csv", index=False)
    plot(table, args.out / "benchmark.png")
    if args.page:
        plot(table, args.page.with_name("benchmark.png"))
        args.page.write_text(page(table, shlex.join(["python", "scripts/benchmark.py", *sys.argv[1:]]), "benchmark.png"))
    print(f"\n{(table.result == 'PASS').sum()}/{len(table)} PASS; table and plot in {args.out}")


def bench_everything(args, tmp: Path):
    """Every row: the in-process ratios, and (unless --skip-pipeline) the cold runs and tiny studies."""
    cfg = compose(["model=attn_only_2l"])
    train_tokens, eval_tokens, manifest = corpus(cfg)
    bench_training(cfg, train_tokens, manifest["vocab_size"], Path(tmp), args.train_steps)
    bench_mlp_training(train_tokens, manifest["vocab_size"], args.train_steps // 3)
    bench_regression_training(Path(tmp), 4 * args.train_steps)
    run = REPO / "results" / "default"
    if not args.skip_pipeline:
        run = Path(tmp) / "pipeline" / "llc" / "results" / "default"
        bench_pipeline(Path(tmp) / "pipeline")
        bench_study(Path(tmp) / "study")
    paths = sorted((run / "models" / "attn_only_2l" / "checkpoints").glob("*/*.safetensors"))
    if not paths:
        raise SystemExit(f"error: no checkpoints under {run}; run `snakemake --cores 2` first or drop "
                         f"--skip-pipeline")
    per_checkpoint = bench_analysis(cfg, eval_tokens, manifest["eot_id"], paths)
    bench_llc(cfg, eval_tokens, paths, per_checkpoint)
    bench_hub_llc(cfg)
    bench_seed_loops(cfg, eval_tokens, manifest["eot_id"], paths, args.seed_sequences)


if __name__ == "__main__":
    main()
