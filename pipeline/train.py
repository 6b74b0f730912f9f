"""Train an attention-only model on the cached tokens and save log-spaced checkpoints."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.config import cli
from pipeline.data import load_split, require_tokens, sample_windows
from pipeline.io import UserError, run_cli, write_table
from pipeline.model import AttnOnlyTransformer, hooked_config_kwargs, hooked_transformer, save_checkpoint
from pipeline.schedule import checkpoint_name, checkpoint_steps


def initial_model(model_cfg, config_kwargs: dict, seed: int) -> AttnOnlyTransformer:
    """The training twin at step 0: TransformerLens's init, then std-`embed_init_std` embeddings."""
    model = AttnOnlyTransformer.from_hooked(hooked_transformer(config_kwargs, seed=seed))
    if model_cfg.embed_init_std:  # TransformerLens's 0.8/sqrt(d_model) leaves positions too weak; see conf
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for weight in (model.embed.W_E, model.pos_embed.W_pos):
                weight.copy_(torch.randn(weight.shape, generator=generator) * model_cfg.embed_init_std)
    return model


def train(model_cfg, train_cfg, tokens: np.ndarray, d_vocab: int, seed: int, out_dir: Path) -> list[dict]:
    """Train with AdamW (linear warm-up, then constant LR), checkpointing at `checkpoint_steps`.

    Returns the training log: one row per step with loss and tokens seen.
    """
    from tqdm import tqdm

    require_tokens(tokens, model_cfg.n_ctx, "train")
    config_kwargs = hooked_config_kwargs(model_cfg, d_vocab)
    model = initial_model(model_cfg, config_kwargs, seed)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": train_cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=train_cfg.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / max(1, train_cfg.warmup_steps)))
    generator = torch.Generator().manual_seed(seed)
    tokens_per_step = train_cfg.batch_size * model_cfg.n_ctx
    save_at = set(checkpoint_steps(train_cfg))
    log = []
    bar = tqdm(range(train_cfg.steps + 1), desc=str(model_cfg.name), file=sys.stderr, mininterval=1.0)
    start = time.perf_counter()
    for step in bar:
        if step in save_at:
            save_checkpoint(out_dir / checkpoint_name(step), model, config_kwargs, step, step * tokens_per_step)
        if step == train_cfg.steps:
            break
        batch = sample_windows(tokens, train_cfg.batch_size, model_cfg.n_ctx, generator)
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
                        tok_s=f"{(step + 1) * tokens_per_step / (time.perf_counter() - start):.0f}",
                        refresh=False)
    return log


def main():
    args, cfg = cli("Train one attention-only model, saving checkpoints.",
                    data="data directory (train.npy, eval.npy, manifest.json)",
                    out="checkpoint directory to write", log="training-loss table to write (.parquet)")
    torch.set_num_threads(cfg.train.threads)
    import pandas as pd

    require_tokens(load_split(args.data, "eval"), cfg.model.n_ctx, "eval")
    d_vocab = json.loads((args.data / "manifest.json").read_text())["vocab_size"]
    log = train(cfg.model, cfg.train, load_split(args.data, "train"), d_vocab, cfg.seed, args.out)
    write_table(pd.DataFrame(log).assign(model=cfg.model.name), args.log)


if __name__ == "__main__":
    run_cli(main)
