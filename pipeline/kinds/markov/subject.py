"""What the shared trainer and the LLC need of an in-context Markov-chain model: an attention-only
HookedTransformer over the states with learned positions, trained on fresh chains every step with next-state
cross-entropy (the language models' loss)."""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.checkpoints import initial_twin
from pipeline.interventions import attach
from pipeline.kinds.markov.data import load_eval, sample
from pipeline.measures import next_token_loss
from pipeline.registry import TrainingSubject
from pipeline.train import generator_rng


def config_kwargs(model_cfg, data_cfg) -> dict:
    """HookedTransformerConfig kwargs: attention-only (or with GELU MLPs), pre-LN, learned positions (JSON-safe)."""
    d_mlp = model_cfg.d_mlp
    kwargs = dict(n_layers=int(model_cfg.n_layers), d_model=int(model_cfg.d_model), n_heads=int(model_cfg.n_heads),
                  d_head=int(model_cfg.d_model) // int(model_cfg.n_heads), n_ctx=int(data_cfg.seq_len),
                  d_vocab=int(data_cfg.n_states), act_fn="gelu" if d_mlp else None, attn_only=not d_mlp,
                  normalization_type="LN", positional_embedding_type="standard", model_name=str(model_cfg.name))
    if d_mlp:
        kwargs["d_mlp"] = int(d_mlp)
    return kwargs


def training_subject(cfg, data_dir: Path) -> TrainingSubject:
    """Fresh chains every step from the seeded generator; next-state cross-entropy (the language models' loss)."""
    kwargs = attach(config_kwargs(cfg.model, cfg.data), cfg.train)
    batch_size = cfg.train.batch_size

    def batch(generator):
        tokens, _ = sample(batch_size, cfg.data, generator_rng(generator))
        return (torch.from_numpy(tokens),)

    return TrainingSubject(
        name=str(cfg.model.name), config_kwargs=kwargs, tokens_per_step=batch_size * cfg.data.seq_len,
        fingerprint=[cfg.data.n_states, cfg.data.seq_len, float(cfg.data.alpha), str(cfg.data.prior)],
        init=lambda seed: initial_twin(kwargs, seed), batch=batch,
        loss=next_token_loss)


def llc_data(cfg, data_dir: Path):
    """The LLC's `input_ids` (the first `llc.n_sequences` eval chains) and loss (None: next-token cross-entropy)."""
    return torch.from_numpy(load_eval(data_dir)["tokens"][: cfg.analysis.llc.n_sequences]), None
