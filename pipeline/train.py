"""Train an attention-only model on the cached tokens and save log-spaced checkpoints."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from pipeline.config import cli
from pipeline.data import load_split, require_tokens, sample_windows
from pipeline.io import UserError, atomic_path, run_cli, write_table
from pipeline.model import TrainingTwin, hooked_config_kwargs, hooked_transformer, save_checkpoint
from pipeline.schedule import checkpoint_name, checkpoint_steps


def initial_model(model_cfg, config_kwargs: dict, seed: int) -> TrainingTwin:
    """The training twin at step 0: TransformerLens's init, then std-`embed_init_std` embeddings."""
    model = TrainingTwin.from_hooked(hooked_transformer(config_kwargs, seed=seed))
    if model_cfg.embed_init_std:  # TransformerLens's 0.8/sqrt(d_model) leaves positions too weak; see conf
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for weight in (model.embed.W_E, model.pos_embed.W_pos):
                weight.copy_(torch.randn(weight.shape, generator=generator) * model_cfg.embed_init_std)
    return model


def _publish(state_dir: Path, out_dir: Path, step: int):
    """Hard-link a finished checkpoint (weights + sidecar) from the state directory into the output
    directory (copy where links are unsupported)."""
    weights = Path(checkpoint_name(step))
    for name in (weights, weights.with_suffix(".json")):
        target = Path(out_dir) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        try:
            os.link(Path(state_dir) / name, target)
        except OSError:
            shutil.copyfile(Path(state_dir) / name, target)


def train(model_cfg, train_cfg, tokens: np.ndarray, d_vocab: int, seed: int, out_dir: Path,
          state_dir: Path, after: int = 0, until: int | None = None) -> list[dict]:
    """Train with AdamW (linear warm-up, then constant LR) up to step `until` (default: train.steps),
    checkpointing at `checkpoint_steps`; `out_dir` gets the checkpoints after step `after` (step 0 too when
    `after` is 0): one training job of a chain (pipeline.schedule.segments).

    Resumable: every checkpoint (and every `resume_every` steps) the weights, optimizer, LR schedule,
    sampler RNG and log so far are saved in `state_dir`, where the checkpoints themselves also live
    (hard-linked into `out_dir`, which Snakemake empties when a job fails). A rerun with the same
    config, or the next job of the chain, continues from there and ends with the same bytes as one
    uninterrupted run; a state beyond `until` (an earlier job rerun) is ignored and training restarts.
    Returns the training log so far: one row per step with loss and tokens seen.
    """
    from tqdm import tqdm

    require_tokens(tokens, model_cfg.n_ctx, "train")
    device = torch.device(train_cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device=cuda but no GPU is visible to this job; use train.device=cpu "
                        "or request one (+resources.train_model.gpu=1 with profiles/slurm)")
    config_kwargs = hooked_config_kwargs(model_cfg, d_vocab)
    model = initial_model(model_cfg, config_kwargs, seed).to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": train_cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=train_cfg.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / max(1, train_cfg.warmup_steps)))
    generator = torch.Generator().manual_seed(seed)
    tokens_per_step = train_cfg.batch_size * model_cfg.n_ctx
    save_at = set(checkpoint_steps(train_cfg))
    until = train_cfg.steps if until is None else until
    ours = [s for s in save_at if (after < s or s == after == 0) and s <= until]  # this job's checkpoints
    fingerprint = json.dumps([config_kwargs, OmegaConf.to_container(train_cfg), seed, int(tokens.size)])
    state_path, start, log = Path(state_dir) / "resume.pt", 0, []
    if state_path.exists():
        state = torch.load(state_path, weights_only=True)
        if state["fingerprint"] == fingerprint and state["step"] <= until:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            generator.set_state(state["generator"])
            start, log = state["step"], state["log"]
            for step in sorted(s for s in ours if s <= start):
                _publish(state_dir, out_dir, step)
            if start > after:
                print(f"{model_cfg.name}: resuming from step {start} of an interrupted run", file=sys.stderr)

    def save_state(step: int):
        with atomic_path(state_path) as tmp:
            torch.save({"fingerprint": fingerprint, "step": step, "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                        "generator": generator.get_state(), "log": log}, tmp)

    bar = tqdm(range(start, until + 1), desc=str(model_cfg.name), file=sys.stderr, mininterval=1.0)
    began = time.perf_counter()
    for step in bar:
        if step in save_at and (step > start or step == 0):
            save_checkpoint(Path(state_dir) / checkpoint_name(step), model.state_dict(), config_kwargs, step,
                            step * tokens_per_step)
            if step in ours:
                _publish(state_dir, out_dir, step)
        if step == until:
            if step < train_cfg.steps and step > start:
                save_state(step)  # where the next job of the chain starts
            break
        if step > start and (step in save_at or step % train_cfg.resume_every == 0):
            save_state(step)
        batch = sample_windows(tokens, train_cfg.batch_size, model_cfg.n_ctx, generator).to(device)
        logits = model(batch)
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), batch[:, 1:].flatten())
        if not torch.isfinite(loss):
            raise UserError(f"training loss became {loss.item()} at step {step} of {model_cfg.name}; "
                            f"lower train.lr (now {train_cfg.lr}) or raise train.warmup_steps")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
        optimizer.step()
        schedule.step()
        log.append({"step": step + 1, "tokens_seen": (step + 1) * tokens_per_step, "train_loss": loss.item()})
        bar.set_postfix(loss=f"{loss.item():.3f}",
                        tok_s=f"{(step + 1 - start) * tokens_per_step / (time.perf_counter() - began):.0f}",
                        refresh=False)
    return log


def main():
    args, cfg = cli("Train one attention-only model, saving checkpoints.",
                    data="data directory (train.npy, eval.npy, manifest.json)",
                    out="checkpoint directory to write", log="training-loss table to write (.parquet)",
                    state="directory for the resume state (kept only while training is unfinished)",
                    after={"type": int, "default": 0, "required": False,
                           "help": "the checkpoints after this step are this job's (a chain of training jobs)"},
                    until={"type": int, "default": None, "required": False,
                           "help": "the last step of this job (default: train.steps)"})
    torch.set_num_threads(cfg.train.threads)
    import pandas as pd
    from tokenizers import Tokenizer

    from pipeline.tasks import check_tasks

    require_tokens(load_split(args.data, "eval"), cfg.model.n_ctx, "eval")
    check_tasks(cfg, Tokenizer.from_file(str(args.data / "tokenizer.json")))  # the causal step's prompts, first
    d_vocab = json.loads((args.data / "manifest.json").read_text())["vocab_size"]
    until = cfg.train.steps if args.until is None else args.until
    log = train(cfg.model, cfg.train, load_split(args.data, "train"), d_vocab, cfg.seed, args.out, args.state,
                args.after, until)
    rows = pd.DataFrame(log, columns=["step", "tokens_seen", "train_loss"])
    write_table(rows[(rows.step > args.after) & (rows.step <= until)].assign(model=cfg.model.name), args.log)
    if until == cfg.train.steps:
        shutil.rmtree(args.state)  # finished: the checkpoints live on in --out


if __name__ == "__main__":
    run_cli(main)
