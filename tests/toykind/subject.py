"""What the shared trainer and the LLC need of a toy model: a 1-layer HookedTransformer (with an MLP) over the
states with learned positions, fresh sequences every step, next-state cross-entropy."""

from pathlib import Path

import numpy as np
import torch

from pipeline.checkpoints import initial_twin
from pipeline.measures import next_token_loss
from pipeline.registry import TrainingSubject
from pipeline.train import generator_rng
from toykind.data import sequences


def config_kwargs(cfg) -> dict:
    m = cfg.model
    return dict(n_layers=int(m.n_layers), d_model=int(m.d_model), n_heads=int(m.n_heads),
                d_head=int(m.d_model) // int(m.n_heads), n_ctx=int(cfg.data.seq_len), d_vocab=int(cfg.data.modulus),
                act_fn="gelu" if m.d_mlp else None, attn_only=not m.d_mlp, normalization_type="LN",
                positional_embedding_type="standard", model_name=str(m.name), **({"d_mlp": int(m.d_mlp)} if m.d_mlp else {}))


def training_subject(cfg, data_dir: Path) -> TrainingSubject:
    kwargs, batch_size = config_kwargs(cfg), cfg.train.batch_size

    def batch(generator):
        return (torch.from_numpy(sequences(batch_size, cfg.data.modulus, cfg.data.seq_len, generator_rng(generator))),)

    return TrainingSubject(name=str(cfg.model.name), config_kwargs=kwargs,
                           tokens_per_step=batch_size * cfg.data.seq_len,
                           fingerprint=[cfg.data.modulus, cfg.data.seq_len],
                           init=lambda seed: initial_twin(kwargs, seed), batch=batch, loss=next_token_loss)


def llc_data(cfg, data_dir: Path):
    """The LLC's input_ids (the first llc.n_sequences eval sequences) and loss (None: next-token cross-entropy)."""
    return torch.from_numpy(np.load(Path(data_dir) / "eval.npy")[: cfg.analysis.llc.n_sequences]), None
