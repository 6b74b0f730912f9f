"""Measures every token-sequence transformer shares, whatever its kind: head scores on synthetic repeated
sequences, next-token losses per position, and the compiled forward that computes them.

Head scores are a registry: a score is one function `(pattern, seq_len) -> (n_heads,)` over attention
patterns (batch, head, query, key) of sequences laid out as [BOS, r_1..r_L, r_1..r_L].
"""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

from pipeline import hooks
from pipeline.sections import SEQUENCE_SCORES


def _stripe_mean(pattern: torch.Tensor, offset: int, first_query: int) -> torch.Tensor:
    """Mean attention from query q (q >= first_query) to key q - offset, per head."""
    stripe = pattern.diagonal(offset=-offset, dim1=-2, dim2=-1)  # (B, H, Q - offset); entry j is q = offset + j
    return einops.reduce(stripe[..., max(0, first_query - offset):], "b h q -> h", "mean")


def prefix_matching(pattern, seq_len):
    """Olsson et al.: each second-copy token's attention to the token after its first occurrence."""
    return _stripe_mean(pattern, seq_len - 1, first_query=seq_len + 1)


def induction(pattern, seq_len):
    """Seed 003's induction stripe: the whole (seq_len - 1)-back diagonal, first-copy rows included."""
    return _stripe_mean(pattern, seq_len - 1, first_query=0)


def previous_token(pattern, seq_len):
    """Attention to the immediately preceding token."""
    return _stripe_mean(pattern, 1, first_query=1)


def duplicate_token(pattern, seq_len):
    """Each second-copy token's attention to its own earlier occurrence."""
    return _stripe_mean(pattern, seq_len, first_query=seq_len + 1)


def current_token(pattern, seq_len):
    """Attention to the query's own position (BOS row excluded: it can attend nowhere else)."""
    return _stripe_mean(pattern, 0, first_query=1)


def first_token(pattern, seq_len):
    """Attention parked on the first (BOS) position."""
    return einops.reduce(pattern[..., 1:, 0], "b h q -> h", "mean")


HEAD_SCORES = {name: globals()[name] for name in SEQUENCE_SCORES}  # the names declared once (pipeline.sections)


def uniform_attention(n_ctx: int) -> torch.Tensor:
    """(n_ctx, n_ctx) uniform causal attention: query q weighs every key 0..q by 1/(q + 1). A score's value on it
    is the score's chance level."""
    return torch.ones(n_ctx, n_ctx).tril() / torch.arange(1, n_ctx + 1)[:, None]


def repeated_random_tokens(batch: int, seq_len: int, vocab: torch.Tensor, bos_id: int, seed: int) -> torch.Tensor:
    """[BOS, r_1..r_L, r_1..r_L] with r uniform over the token ids in `vocab`: (batch, 1 + 2L).

    Like seed 003's range of common ids, `vocab` should hold only tokens the model has seen: a byte-level
    BPE keeps ~160 byte tokens that never occur in the corpus and whose embeddings are never trained.
    """
    generator = torch.Generator().manual_seed(seed)
    random = vocab[torch.randint(0, len(vocab), (batch, seq_len), generator=generator)]
    bos = torch.full((batch, 1), bos_id)
    return torch.cat([bos, einops.repeat(random, "b l -> b (2 l)")], dim=1)


def head_scores(model, tokens: torch.Tensor, seq_len: int, names) -> torch.Tensor:
    """(n_scores, n_layers, n_heads) scores from one forward pass caching only attention patterns."""
    _, cache = model.run_with_cache(tokens, names_filter=hooks.names_filter(model.cfg.n_layers, hooks.HEAD_SCORES),
                                    return_type=None)
    return torch.stack([
        torch.stack([HEAD_SCORES[n](cache["pattern", layer], seq_len) for layer in range(model.cfg.n_layers)])
        for n in names])


def per_token_losses(forward, tokens: torch.Tensor, batch: int) -> torch.Tensor:
    """(n_sequences, n_ctx - 1) next-token losses: entry [s, i] is the loss of predicting token i + 1.

    `forward` is a HookedTransformer or its `torch.compile`d form.
    """
    return torch.cat([forward(chunk, return_type="loss", loss_per_token=True) for chunk in tokens.split(batch)])


def compiled(model, enabled: bool):
    """`torch.compile(model)` (2.5x faster HookedTransformer forward on CPU), or the model itself.

    Weights loaded in place later are picked up without recompiling (after one retrace)."""
    return torch.compile(model, dynamic=False) if enabled else model


def next_token_loss(model, batch) -> torch.Tensor:
    """A batch's mean next-token cross-entropy: the training loss of every token-sequence kind."""
    (tokens,) = batch
    logits = model(tokens)
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())
