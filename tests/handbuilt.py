"""A 2-layer attn-only shortformer HookedTransformer whose weights are set by hand so that each head is
exactly one known kind of head.

Residual dims: [token one-hot (V) | previous-token one-hot (V) | position block (N_CTX) | output (V)].
Embeddings write only the token block; shortformer positions (one-hot in the position block) enter only
queries and keys; the unembedding reads only the output block, which only the induction head writes.

    L0H0 previous-token (and copies that token into the previous-token block)
    L0H1 first-token    L0H2 duplicate-token    L0H3 uniform (no query/key weights)
    L1H0 induction: query = current token, key = previous token written by L0H0; copies the attended
         token into the output block, so the second copy of a repeated sequence is predicted
    L1H1 current-token  L1H2, L1H3 uniform
"""

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

VOCAB, N_CTX = 24, 48
TOK = torch.arange(VOCAB)
PREV = VOCAB + TOK
POS = 2 * VOCAB + torch.arange(N_CTX)
OUT = 2 * VOCAB + N_CTX + TOK
D_MODEL = 3 * VOCAB + N_CTX
SCALE = 30.0

EXPECTED_HEAD = {"previous_token": (0, 0), "first_token": (0, 1), "duplicate_token": (0, 2),
                 "prefix_matching": (1, 0), "induction": (1, 0), "current_token": (1, 1)}


def _positional(attn, head, query_dims, key_dims, sign=1.0):
    """Query at position i matches key position key_dims^-1(query_dims(i)) via the position block."""
    attn.W_Q[head, POS, query_dims] = SCALE
    attn.W_K[head, POS, key_dims] = sign * SCALE


def handbuilt_model() -> HookedTransformer:
    cfg = HookedTransformerConfig(n_layers=2, d_model=D_MODEL, n_heads=4, d_head=D_MODEL, n_ctx=N_CTX,
                                  d_vocab=VOCAB, act_fn=None, attn_only=True, normalization_type="LN",
                                  positional_embedding_type="shortformer", seed=0, device="cpu")
    model = HookedTransformer(cfg, move_to_device=False)
    pos = torch.arange(N_CTX)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if not name.endswith(".w"):  # LayerNorm scales stay 1, everything else starts at 0
                param.zero_()
        model.embed.W_E[TOK, TOK] = 1.0
        for block in model.blocks:  # the residual's (empty) position block must not leak LN offsets
            block.ln1.w[POS] = 0.0
        model.pos_embed.W_pos[pos, POS] = 1.0
        a0, a1 = model.blocks[0].attn, model.blocks[1].attn
        _positional(a0, 0, query_dims=pos, key_dims=(pos + 1) % N_CTX)  # key j scores with query j + 1
        a0.W_V[0, TOK, TOK] = 1.0  # ...and writes that previous token into the previous-token block
        a0.W_O[0, TOK, PREV] = 1.0
        _positional(a0, 1, query_dims=torch.zeros_like(pos), key_dims=torch.where(pos == 0, 0, N_CTX - 1))
        a0.W_Q[2, TOK, TOK] = SCALE  # same token, minus a penalty for the query's own position
        a0.W_K[2, TOK, TOK] = SCALE
        _positional(a0, 2, query_dims=VOCAB + pos % (D_MODEL - VOCAB), key_dims=VOCAB + pos % (D_MODEL - VOCAB),
                    sign=-1.0)
        a1.W_Q[0, TOK, TOK] = SCALE
        a1.W_K[0, PREV, TOK] = SCALE
        a1.W_V[0, TOK, TOK] = 1.0
        a1.W_O[0, TOK, OUT] = 3.0
        model.unembed.W_U[OUT, TOK] = 10.0
        _positional(a1, 1, query_dims=pos, key_dims=pos)
    return model


def repeated_distinct_tokens(batch: int, seq_len: int, seed: int = 0) -> torch.Tensor:
    """[BOS=0, r, r] with r a random ordering of distinct non-BOS tokens (no accidental repeats)."""
    generator = torch.Generator().manual_seed(seed)
    first = torch.stack([torch.randperm(VOCAB - 1, generator=generator)[:seq_len] + 1 for _ in range(batch)])
    return torch.cat([torch.zeros(batch, 1, dtype=torch.long), first, first], dim=1)
