"""The one seam to the model library (TransformerLens): every model is built or loaded here — the HookedTransformer
of a config, a fast training twin, released models and their checkpoints from the hub (checkpoint files:
pipeline.checkpoints). Analyses use hook names and caches only; docs/transformer_lens_4.md is the plan to move.

The twin is a plain-PyTorch model with exactly the parameter names and shapes of
`HookedTransformer(normalization_type="LN")` with shortformer or standard positions (as the kind's config asks),
attention-only or with MLPs (`model.d_mlp`), so its state dict loads into a HookedTransformer unchanged. With
`model.smeared_keys` (Olsson et al.'s Argument 2) every head also has a trainable `smear_alpha`, saved in
the checkpoint; the HookedTransformer applies it with a permanent hook on `hook_k`. It exists because training dominates the
default run's wall time and `scaled_dot_product_attention` trains ~1.3x faster on CPU than the hooked
model; every analysis runs on the HookedTransformer built from the saved weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.interventions import apply

# Buffers HookedTransformer creates itself; a checkpoint never needs to carry them.
HOOKED_BUFFERS = ("attn.mask", "attn.IGNORE")


def hooked_config_kwargs(model_cfg, d_vocab: int) -> dict:
    """HookedTransformerConfig kwargs for a pre-LN, shortformer model (JSON-safe), plus `smeared_keys`
    (ours, not TransformerLens's) when the model smears its keys."""
    d_mlp = getattr(model_cfg, "d_mlp", None)
    kwargs = dict(
        n_layers=int(model_cfg.n_layers),
        d_model=int(model_cfg.d_model),
        n_heads=int(model_cfg.n_heads),
        d_head=int(model_cfg.d_model) // int(model_cfg.n_heads),
        n_ctx=int(model_cfg.n_ctx),
        d_vocab=int(d_vocab),
        act_fn="gelu" if d_mlp else None,
        attn_only=not d_mlp,
        normalization_type="LN",
        positional_embedding_type="shortformer",
        model_name=str(model_cfg.name),
    )
    if d_mlp:
        kwargs["d_mlp"] = int(d_mlp)
    if getattr(model_cfg, "smeared_keys", False):
        kwargs["smeared_keys"] = True
    return kwargs


def smear(keys: torch.Tensor, gate: torch.Tensor, pos_dim: int) -> torch.Tensor:
    """Olsson's smeared keys: key_j <- gate * key_j + (1 - gate) * key_{j-1} along `pos_dim` (key_0 kept),
    with gate = sigmoid(alpha) per head, broadcastable against `keys`."""
    previous = torch.cat([keys.narrow(pos_dim, 0, 1), keys.narrow(pos_dim, 0, keys.shape[pos_dim] - 1)], pos_dim)
    return gate * keys + (1 - gate) * previous


def _smear_hook(keys, hook, attn):
    return smear(keys, torch.sigmoid(attn.smear_alpha)[:, None], pos_dim=1)  # keys: (batch, pos, head, d_head)


def hooked_transformer(config_kwargs: dict, seed: int | None = None, references: dict | None = None):
    """A freshly initialised HookedTransformer (TransformerLens's own init) for `config_kwargs`; with
    `smeared_keys`, a zero `smear_alpha` buffer per attention layer (loaded with the weights) and a
    permanent hook on its `hook_k` applying it; with `interventions`, their hooks (pipeline.interventions),
    reading the reference models they name from `references` (path -> twin; pipeline.checkpoints)."""
    from functools import partial

    from transformer_lens import HookedTransformer, HookedTransformerConfig

    kwargs = dict(config_kwargs)
    smeared, interventions = kwargs.pop("smeared_keys", False), kwargs.pop("interventions", [])
    model = HookedTransformer(HookedTransformerConfig(**kwargs, seed=seed, device="cpu"), move_to_device=False)
    if smeared:
        for block in model.blocks:
            block.attn.register_buffer("smear_alpha", torch.zeros(model.cfg.n_heads))
            block.attn.hook_k.add_hook(partial(_smear_hook, attn=block.attn), is_permanent=True)
    model.interventions, model.references = interventions, references
    apply(model, interventions, "hooked", references)
    return model


def _param(*shape) -> nn.Parameter:
    return nn.Parameter(torch.empty(*shape))


class TrainingTwin(nn.Module):
    """Training twin of the hooked shortformer model (same state-dict keys and shapes)."""

    def __init__(self, n_layers, d_model, n_heads, d_head, n_ctx, d_vocab, attn_only=True, d_mlp=None,
                 smeared_keys=False, act_fn="gelu", positional_embedding_type="shortformer", d_vocab_out=-1,
                 interventions=(), references=None, **_ignored):
        super().__init__()
        self.n_heads, self.d_head, self.smeared_keys = n_heads, d_head, smeared_keys
        self.clamps = {}  # layer -> [(heads, source)]: clamped attention patterns (pipeline.interventions)
        self.act = {"gelu": F.gelu, "relu": F.relu, None: None}[act_fn]
        self.shortformer = positional_embedding_type == "shortformer"
        d_vocab_out = d_vocab if d_vocab_out == -1 else d_vocab_out
        self.embed = nn.Module()
        self.embed.W_E = _param(d_vocab, d_model)
        self.pos_embed = nn.Module()
        self.pos_embed.W_pos = _param(n_ctx, d_model)
        self.blocks = nn.ModuleList()
        for _ in range(n_layers):
            block = nn.Module()
            block.ln1 = nn.Module()
            block.ln1.w, block.ln1.b = _param(d_model), _param(d_model)
            block.attn = nn.Module()
            for name in "QKV":
                setattr(block.attn, f"W_{name}", _param(n_heads, d_model, d_head))
                setattr(block.attn, f"b_{name}", _param(n_heads, d_head))
            block.attn.W_O, block.attn.b_O = _param(n_heads, d_head, d_model), _param(d_model)
            if smeared_keys:
                block.attn.smear_alpha = _param(n_heads)
            if not attn_only:
                block.ln2 = nn.Module()
                block.ln2.w, block.ln2.b = _param(d_model), _param(d_model)
                block.mlp = nn.Module()
                block.mlp.W_in, block.mlp.b_in = _param(d_model, d_mlp), _param(d_mlp)
                block.mlp.W_out, block.mlp.b_out = _param(d_mlp, d_model), _param(d_model)
            self.blocks.append(block)
        self.ln_final = nn.Module()
        self.ln_final.w, self.ln_final.b = _param(d_model), _param(d_model)
        self.unembed = nn.Module()
        self.unembed.W_U, self.unembed.b_U = _param(d_model, d_vocab_out), _param(d_vocab_out)
        apply(self, interventions, "twin", references)

    @classmethod
    def from_hooked(cls, hooked) -> "TrainingTwin":
        """A twin carrying `hooked`'s weights (used to start training from TransformerLens's init)."""
        twin = cls(**hooked.cfg.to_dict(), smeared_keys=hasattr(hooked.blocks[0].attn, "smear_alpha"),
                   interventions=getattr(hooked, "interventions", ()), references=getattr(hooked, "references", None))
        twin.load_state_dict(trainable_state_dict(hooked.state_dict()))
        return twin

    def _heads(self, x, W, b):
        # x (B, T, D) @ W (H, D, E) -> (B, H, T, E)
        B, T, D = x.shape
        W = W.permute(1, 0, 2).reshape(D, -1)  # (D, H*E)
        return (x @ W + b.reshape(-1)).view(B, T, self.n_heads, self.d_head).transpose(1, 2)

    def _clamp(self, layer: int, z: torch.Tensor, v: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """The heads' outputs (B, H, T, E) with each clamped head's computed from its clamped pattern instead."""
        for heads, source in self.clamps.get(layer, ()):
            z = z.clone()  # out of place: SDPA's backward reads its output
            z[:, heads] = source(tokens, v.shape[2], heads).to(v) @ v[:, heads]  # (T, T) or (B, h, T, T)
        return z

    def _embed(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The residual stream at layer 0 and what is added to the query/key inputs (shortformer positions)."""
        T = tokens.shape[1]
        x = tokens @ self.embed.W_E if tokens.is_floating_point() else self.embed.W_E[tokens]  # (B, T, D)
        pos = self.pos_embed.W_pos[:T]  # (T, D): shortformer adds them to query/key inputs only
        if not self.shortformer:  # standard: positions enter the residual stream
            x, pos = x + pos, 0
        return x, pos

    def _qkv(self, block, x, pos):
        h = F.layer_norm(x, x.shape[-1:], block.ln1.w, block.ln1.b, eps=1e-5)
        a, qk_in = block.attn, h + pos
        q = self._heads(qk_in, a.W_Q, a.b_Q)
        k = self._heads(qk_in, a.W_K, a.b_K)
        if self.smeared_keys:
            k = smear(k, torch.sigmoid(a.smear_alpha)[:, None, None], pos_dim=2)  # k: (B, H, T, E)
        return q, k, self._heads(h, a.W_V, a.b_V)

    def _block(self, layer: int, x, pos, tokens):
        block = self.blocks[layer]
        q, k, v = self._qkv(block, x, pos)
        z = self._clamp(layer, F.scaled_dot_product_attention(q, k, v, is_causal=True), v, tokens)  # (B, H, T, E)
        z = z.transpose(1, 2).reshape(*x.shape[:2], -1)  # (B, T, H*E)
        x = x + z @ block.attn.W_O.reshape(-1, block.attn.W_O.shape[-1]) + block.attn.b_O
        if hasattr(block, "mlp"):
            h = F.layer_norm(x, x.shape[-1:], block.ln2.w, block.ln2.b, eps=1e-5)
            x = x + self.act(h @ block.mlp.W_in + block.mlp.b_in) @ block.mlp.W_out + block.mlp.b_out
        return x

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, V) for token ids (B, T), or outputs for vector tokens (B, T, d_vocab) embedded
        linearly (a kind whose tokens are vectors)."""
        x, pos = self._embed(tokens)
        for layer in range(len(self.blocks)):
            x = self._block(layer, x, pos, tokens)
        x = F.layer_norm(x, x.shape[-1:], self.ln_final.w, self.ln_final.b, eps=1e-5)
        return x @ self.unembed.W_U + self.unembed.b_U

    def pattern(self, tokens: torch.Tensor, layer: int) -> torch.Tensor:
        """Layer `layer`'s attention patterns (B, H, T, T) on `tokens`, clamps included (what clamp_from reads)."""
        x, pos = self._embed(tokens)
        for earlier in range(layer):
            x = self._block(earlier, x, pos, tokens)
        q, k, _ = self._qkv(self.blocks[layer], x, pos)
        T = q.shape[2]
        scores = (q @ k.transpose(-1, -2)) / self.d_head ** 0.5
        pattern = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
        for heads, source in self.clamps.get(layer, ()):
            pattern[:, heads] = source(tokens, T, heads).to(pattern)
        return pattern


def trainable_state_dict(state_dict: dict) -> dict:
    """Drop the buffers HookedTransformer rebuilds itself (causal mask, IGNORE)."""
    return {k: v for k, v in state_dict.items() if not k.endswith(HOOKED_BUFFERS)}


def official_name(name: str) -> str:
    """The hub repo of a model TransformerLens knows by name."""
    from transformer_lens.loading_from_pretrained import get_official_model_name

    return get_official_model_name(name)


def pretrained_config(name: str):
    """TransformerLens's config of a model it knows (HookedTransformerConfig)."""
    from transformer_lens.loading_from_pretrained import get_pretrained_model_config

    return get_pretrained_model_config(name, device="cpu")


def checkpoint_labels(name: str):
    """TransformerLens's checkpoint labels of a model released with training checkpoints, and their type."""
    from transformer_lens.loading_from_pretrained import get_checkpoint_labels

    return get_checkpoint_labels(name)


def pretrained(name: str, checkpoint: int | None = None):
    """(config, state dict) of a released model, or of one of its training checkpoints, converted by
    TransformerLens from the transformers checkpoint without weight processing."""
    from transformer_lens import HookedTransformer

    kwargs = {} if checkpoint is None else {"checkpoint_value": checkpoint}
    model = HookedTransformer.from_pretrained_no_processing(name, device="cpu", **kwargs)
    return model.cfg, model.state_dict()
