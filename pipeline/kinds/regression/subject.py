"""The in-context-regression transformer (the timaeus `icl` layout): its HookedTransformer config, its
predictions, and what the shared trainer and the LLC need of it.

A bias-free linear embedding of the (D + 1)-wide tokens (`embed.W_E`, applied as a matrix, not looked up)
plus learned positions, pre-LN blocks (ReLU MLPs, or attention-only with model.d_mlp null), a final LN and a
linear map back to D + 1 channels; the prediction of y_k is channel 0 at the token of x_k. Analysis runs on a
HookedTransformer of that config with the embedding computed outside and fed in with `start_at_layer=0`
(through `hook_embed` and `hook_pos_embed`), so hooks, caches and patching work unchanged; the training
twin (pipeline.model.TrainingTwin) has the same weights and is tested equal.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from pipeline.checkpoints import initial_twin
from pipeline.interventions import attach, freeze
from pipeline.kinds.regression import KIND
from pipeline.kinds.regression.data import load_eval, load_tasks, sample_sequences, to_tokens
from pipeline.model import TrainingTwin
from pipeline.registry import TrainingSubject


def initial_model(kwargs: dict, seed: int) -> TrainingTwin:
    """The twin at TransformerLens's init, its attention biases held at 0 (not trained): the timaeus layout's
    52,741 trainable parameters at D=4, K=16 (the HookedTransformer still carries the zero biases)."""
    twin = initial_twin(kwargs, seed)
    freeze(twin, KIND.frozen)
    return twin


def config_kwargs(model_cfg, data_cfg) -> dict:
    """HookedTransformerConfig kwargs of the regression transformer (JSON-safe)."""
    d_mlp = model_cfg.d_mlp
    kwargs = dict(n_layers=int(model_cfg.n_layers), d_model=int(model_cfg.d_model), n_heads=int(model_cfg.n_heads),
                  d_head=int(model_cfg.d_model) // int(model_cfg.n_heads), n_ctx=2 * int(data_cfg.n_pairs),
                  d_vocab=int(data_cfg.dim) + 1, d_vocab_out=int(data_cfg.dim) + 1, act_fn="relu" if d_mlp else None,
                  attn_only=not d_mlp, normalization_type="LN", positional_embedding_type="standard",
                  model_name=str(model_cfg.name))
    if d_mlp:
        kwargs["d_mlp"] = int(d_mlp)
    return kwargs


def hooked_outputs(model, tokens: torch.Tensor, **kwargs):
    """A HookedTransformer's outputs (n, 2K, D + 1) for vector tokens: the linear embedding and positions
    through `hook_embed`/`hook_pos_embed`, then the blocks from layer 0 (`kwargs`: e.g. return_type)."""
    embedded = model.hook_embed(tokens @ model.embed.W_E)
    residual = embedded + model.hook_pos_embed(model.pos_embed.W_pos[: tokens.shape[1]])
    return model(residual, start_at_layer=0, **kwargs)


def predictions(outputs: torch.Tensor) -> torch.Tensor:
    """The prediction of each y_k: channel 0 at the x-token positions, (n, K)."""
    return outputs[:, 0::2, 0]


def mse_loss(model, batch) -> torch.Tensor:
    tokens, y = batch
    return F.mse_loss(predictions(model(tokens)), y)


def training_subject(cfg, data_dir: Path) -> TrainingSubject:
    """Train on the run's pretraining tasks (data step: tasks.npy)."""
    return tasks_subject(cfg, load_tasks(data_dir))


def tasks_subject(cfg, tasks: torch.Tensor) -> TrainingSubject:
    """Fresh sequences every step from the seeded generator (so resume is exact), w from `tasks` (fresh
    Gaussian ones when empty); the twin starts at TransformerLens's init; the loss is the MSE of the
    predictions."""
    kwargs = attach(config_kwargs(cfg.model, cfg.data), cfg.train)

    def batch(generator):
        x, y, _ = sample_sequences(cfg.train.batch_size, cfg.data, tasks, generator)
        return to_tokens(x, y), y

    return TrainingSubject(
        name=str(cfg.model.name), config_kwargs=kwargs, tokens_per_step=cfg.train.batch_size * 2 * cfg.data.n_pairs,
        fingerprint=[len(tasks), float(tasks.sum())], init=lambda seed: initial_model(kwargs, seed), batch=batch,
        loss=mse_loss)


def llc_data(cfg, data_dir: Path):
    """The LLC's `input_ids` (each row a sequence's index into the pretraining eval sample, repeated K + 1
    times: devinterp batches ids and expects K + 1 "tokens" for K per-token losses) and its loss, the squared
    error of each prediction (batch, K), on the training twin (the LLC's module). Not divided by D (unlike the
    training loss): timaeus `icl` samples this loss, so n_beta means what its published settings mean."""
    sample = load_eval(data_dir)
    tokens = to_tokens(torch.from_numpy(sample["pretrain_x"]), torch.from_numpy(sample["pretrain_y"]))
    targets = torch.from_numpy(sample["pretrain_y"])
    ids = torch.arange(cfg.analysis.llc.n_sequences)[:, None].repeat(1, cfg.data.n_pairs + 1)

    def loss_fn(model, input_ids):
        index = input_ids[:, 0].cpu()
        device = model.embed.W_E.device
        preds = predictions(model(tokens[index].to(device)))
        return (preds - targets[index].to(device)) ** 2

    return ids, loss_fn
