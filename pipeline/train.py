"""Train one model of any subject kind and save log-spaced checkpoints: the shared trainer.

The kind supplies the model at step 0, the batches and the loss (pipeline.kinds.TrainingSubject); this
module owns the optimizer, the LR schedule, checkpointing, the resume state and the chain of jobs.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from pipeline.checkpoints import save_checkpoint
from pipeline.cli import cli
from pipeline.interventions import apply
from pipeline.io import UserError, atomic_path, run_cli, write_table
from pipeline.registry import TrainingSubject, kind_of, subject_module
from pipeline.schedule import checkpoint_name, checkpoint_steps


def generator_rng(generator: torch.Generator) -> np.random.Generator:
    """A numpy generator seeded from the trainer's torch generator, so its saved torch state resumes a subject that
    samples its batches with numpy."""
    return np.random.default_rng(int(torch.randint(0, 2 ** 62, (1,), generator=generator)))


def lr_factor(train_cfg):
    """The LR multiplier per step: linear warm-up then constant, or a triangle peaking at half the run."""
    if train_cfg.schedule == "triangle":
        peak, steps = max(1, train_cfg.steps // 2), train_cfg.steps
        return lambda step: (step + 1) / peak if step < peak else max(0.0, (steps - step) / (steps - peak))
    return lambda step: min(1.0, (step + 1) / max(1, train_cfg.warmup_steps))


def make_optimizer(model, train_cfg):
    """AdamW, weight decay on matrices only (weight_decay 0: Adam), and its LR schedule."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": train_cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=train_cfg.lr)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(train_cfg))


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


class TrainingJob:
    """One job of a model's chain of training jobs: the checkpoints it writes (those after step `after`, up to
    `until`, step 0 in the first), published from `state_dir` into `out_dir`, and the resume state — weights,
    optimizer, LR schedule, sampler RNG and log — saved atomically in `state_dir` at every checkpoint and
    every `resume_every` steps. A state written with another fingerprint (config, data) is ignored, as is
    one beyond `until` (an earlier job rerun)."""

    def __init__(self, subject: TrainingSubject, train_cfg, state_dir: Path, out_dir: Path, after: int, until: int,
                 fingerprint: str, parts: dict):
        self.subject, self.train_cfg, self.state_dir, self.out_dir = subject, train_cfg, Path(state_dir), out_dir
        self.until, self.fingerprint, self.parts = until, fingerprint, parts
        self.save_at = set(checkpoint_steps(train_cfg))
        self.ours = {s for s in self.save_at if (after < s or s == after == 0) and s <= until}
        self.path, self.start = self.state_dir / "resume.pt", 0

    def resume(self) -> list:
        """Restore a matching state (and publish this job's checkpoints written before it); the log so far."""
        if not self.path.exists():
            return []
        state = torch.load(self.path, weights_only=True)
        if state["fingerprint"] != self.fingerprint or state["step"] > self.until:
            return []
        for name, part in self.parts.items():
            part.load_state_dict(state[name]) if hasattr(part, "load_state_dict") else part.set_state(state[name])
        self.start = state["step"]
        for step in sorted(s for s in self.ours if s <= self.start):
            _publish(self.state_dir, self.out_dir, step)
        return state["log"]

    def save_state(self, step: int, log: list):
        with atomic_path(self.path) as tmp:
            torch.save({"fingerprint": self.fingerprint, "step": step, "log": log,
                        **{name: part.state_dict() if hasattr(part, "state_dict") else part.get_state()
                           for name, part in self.parts.items()}}, tmp)

    def at(self, step: int, log: list) -> bool:
        """Write what is due before training step `step`: its checkpoint, the resume state. True when this
        job ends here (having saved the state the next job of the chain starts from)."""
        if step in self.save_at and (step > self.start or step == 0):
            save_checkpoint(self.state_dir / checkpoint_name(step), self.parts["model"].state_dict(),
                            self.subject.config_kwargs, step, step * self.subject.tokens_per_step)
            if step in self.ours:
                _publish(self.state_dir, self.out_dir, step)
        if step == self.until:
            if self.start < step < self.train_cfg.steps:
                self.save_state(step, log)
            return True
        if step > self.start and (step in self.save_at or step % self.train_cfg.resume_every == 0):
            self.save_state(step, log)
        return False


def train(subject: TrainingSubject, train_cfg, seed: int, out_dir: Path, state_dir: Path, after: int = 0,
          until: int | None = None) -> list[dict]:
    """Train `subject` with AdamW up to step `until` (default: train.steps), checkpointing at
    `checkpoint_steps`: one job of a chain (pipeline.schedule.segments; see TrainingJob). A rerun with the
    same config, or the next job of the chain, continues from the resume state and ends with the same bytes
    as one uninterrupted run. Returns the training log so far: one row per step with loss and tokens seen."""
    from tqdm import tqdm

    device = torch.device(train_cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device=cuda but no GPU is visible to this job; use train.device=cpu "
                        "or request one (+resources.train_model.gpu=1 with profiles/slurm)")
    model = subject.init(seed).to(device)
    apply(model, subject.config_kwargs.get("interventions"), "train")  # e.g. freeze: parameters that stop training
    optimizer, schedule = make_optimizer(model, train_cfg)
    generator = torch.Generator().manual_seed(seed)
    fingerprint = json.dumps([subject.config_kwargs, OmegaConf.to_container(train_cfg), seed, subject.fingerprint])
    job = TrainingJob(subject, train_cfg, state_dir, out_dir, after, train_cfg.steps if until is None else until,
                      fingerprint, {"model": model, "optimizer": optimizer, "schedule": schedule,
                                    "generator": generator})
    log = job.resume()
    if job.start > after:
        print(f"{subject.name}: resuming from step {job.start} of an interrupted run", file=sys.stderr)
    bar = tqdm(range(job.start, job.until + 1), desc=subject.name, file=sys.stderr, mininterval=1.0)
    began = time.perf_counter()
    for step in bar:
        if job.at(step, log):
            break
        batch = [part.to(device) for part in subject.batch(generator)]
        loss = subject.loss(model, batch)
        if not torch.isfinite(loss):
            raise UserError(f"training loss became {loss.item()} at step {step} of {subject.name}; "
                            f"lower train.lr (now {train_cfg.lr}) or raise train.warmup_steps")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if train_cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
        optimizer.step()
        schedule.step()
        log.append({"step": step + 1, "tokens_seen": (step + 1) * subject.tokens_per_step, "train_loss": loss.item()})
        tokens_s = (step + 1 - job.start) * subject.tokens_per_step / (time.perf_counter() - began)
        bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{tokens_s:.0f}", refresh=False)
    return log


def main():
    args, cfg = cli("Train one model, saving checkpoints.",
                    data="data directory (the kind's data files)",
                    out="checkpoint directory to write", log="training-loss table to write (.parquet)",
                    state="directory for the resume state (kept only while training is unfinished)",
                    after={"type": int, "default": 0, "required": False,
                           "help": "the checkpoints after this step are this job's (a chain of training jobs)"},
                    until={"type": int, "default": None, "required": False,
                           "help": "the last step of this job (default: train.steps)"})
    torch.set_num_threads(cfg.train.threads)
    import pandas as pd

    subject = subject_module(kind_of(cfg).name).training_subject(cfg, args.data)
    until = cfg.train.steps if args.until is None else args.until
    log = train(subject, cfg.train, cfg.seed, args.out, args.state, args.after, until)
    rows = pd.DataFrame(log, columns=["step", "tokens_seen", "train_loss"])
    write_table(rows[(rows.step > args.after) & (rows.step <= until)].assign(model=cfg.model.name), args.log)
    if until == cfg.train.steps:
        shutil.rmtree(args.state)  # finished: the checkpoints live on in --out


if __name__ == "__main__":
    run_cli(main)
