"""The language-model kind: next-token prediction on a tokenized corpus (the default subject).

Supplies the shared trainer's subject (the training twin at TransformerLens's init with std-`embed_init_std`
embeddings, random windows of the train split, next-token cross-entropy) and the LLC's eval data. Its data
step is pipeline.kinds.language.data, its score step pipeline.kinds.language.scores.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pipeline.checkpoints import initial_twin
from pipeline.interventions import attach
from pipeline.kinds.language.data import eval_windows, load_split, require_tokens, sample_windows
from pipeline.measures import next_token_loss
from pipeline.model import TrainingTwin, hooked_config_kwargs
from pipeline.registry import TrainingSubject


def initial_model(model_cfg, config_kwargs: dict, seed: int) -> TrainingTwin:
    """The training twin at step 0: TransformerLens's init, then std-`embed_init_std` embeddings."""
    model = initial_twin(config_kwargs, seed)
    if model_cfg.embed_init_std:  # TransformerLens's 0.8/sqrt(d_model) leaves positions too weak; see conf
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for weight in (model.embed.W_E, model.pos_embed.W_pos):
                weight.copy_(torch.randn(weight.shape, generator=generator) * model_cfg.embed_init_std)
    return model


def training_subject(cfg, data_dir: Path) -> TrainingSubject:
    """Train on random `n_ctx` windows of the corpus's train split; refuses splits too short for one window
    and causal-task prompts the tokenizer cannot build, before any training."""
    from tokenizers import Tokenizer

    from pipeline.kinds.language.tasks import check_tasks

    tokens = load_split(data_dir, "train")
    require_tokens(tokens, cfg.model.n_ctx, "train")
    require_tokens(load_split(data_dir, "eval"), cfg.model.n_ctx, "eval")
    check_tasks(cfg, Tokenizer.from_file(str(Path(data_dir) / "tokenizer.json")))  # the causal step's prompts
    return corpus_subject(cfg, tokens, json.loads((Path(data_dir) / "manifest.json").read_text())["vocab_size"])


def corpus_subject(cfg, tokens, d_vocab: int) -> TrainingSubject:
    """The subject over a token stream held in memory."""
    config_kwargs = attach(hooked_config_kwargs(cfg.model, d_vocab), cfg.train)
    batch_size, n_ctx = cfg.train.batch_size, cfg.model.n_ctx
    return TrainingSubject(
        name=str(cfg.model.name), config_kwargs=config_kwargs, tokens_per_step=batch_size * n_ctx,
        fingerprint=int(tokens.size), init=lambda seed: initial_model(cfg.model, config_kwargs, seed),
        batch=lambda generator: (sample_windows(tokens, batch_size, n_ctx, generator),), loss=next_token_loss)


def llc_data(cfg, data_dir: Path):
    """The LLC's `input_ids` (the first `llc.n_sequences` eval windows) and loss (None: devinterp's default
    next-token cross-entropy)."""
    sample = eval_windows(load_split(data_dir, "eval"), cfg.analysis.eval.n_sequences, cfg.model.n_ctx)
    return sample[: cfg.analysis.llc.n_sequences], None
