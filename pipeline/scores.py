"""Per-checkpoint analysis: head scores from attention patterns, and per-token losses on the eval sample.

Each checkpoint is loaded once and runs exactly two forward passes: one over repeated random tokens
caching only `hook_pattern` (all head scores read it), one over the eval sample returning per-token
losses (ICL score, loss, loss-vs-position and PCA are all derived from those losses downstream).

Head scores are a registry: a score is one function `(pattern, seq_len) -> (n_heads,)` over attention
patterns (batch, head, query, key) of sequences laid out as [BOS, r_1..r_L, r_1..r_L].
"""

from __future__ import annotations

import json
from pathlib import Path

import einops
import numpy as np
import pandas as pd
import torch

from pipeline import hooks
from pipeline.composition import composition_table, random_baseline
from pipeline.data import eval_windows, load_split, require_tokens
from pipeline.io import StepCache, UserError, run_cli
from pipeline.loop import each_checkpoint, score_step, stack_results


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


HEAD_SCORES = {f.__name__: f for f in
               (prefix_matching, induction, previous_token, duplicate_token, current_token, first_token)}


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


def seen_tokens(eval_tokens: np.ndarray, bos_id: int) -> torch.Tensor:
    """The token ids the eval split contains, BOS excluded: the vocabulary of every random-token probe."""
    seen = torch.from_numpy(np.unique(eval_tokens).astype(np.int64))
    return seen[seen != bos_id]


def head_score_tokens(eval_tokens: np.ndarray, bos_id: int, head_scores_cfg, seed: int) -> torch.Tensor:
    """The fixed repeated-random-token batch of a run, drawn from the token ids the eval split contains."""
    return repeated_random_tokens(head_scores_cfg.batch, head_scores_cfg.seq_len, seen_tokens(eval_tokens, bos_id),
                                  bos_id, seed)


def head_scores(model, tokens: torch.Tensor, seq_len: int, names) -> torch.Tensor:
    """(n_scores, n_layers, n_heads) scores from one forward pass caching only attention patterns."""
    _, cache = model.run_with_cache(tokens, names_filter=hooks.names_filter(model.cfg.n_layers, hooks.HEAD_SCORES),
                                    return_type=None)
    return torch.stack([
        torch.stack([HEAD_SCORES[n](cache["pattern", layer], seq_len) for layer in range(model.cfg.n_layers)])
        for n in names])


def smear_gates(model) -> np.ndarray:
    """(n_layers, n_heads) sigmoid(alpha) of a smeared-key model: 1 = own key only, 0 = the previous token's."""
    return torch.stack([torch.sigmoid(block.attn.smear_alpha) for block in model.blocks]).numpy()


def per_token_losses(forward, tokens: torch.Tensor, batch: int) -> torch.Tensor:
    """(n_sequences, n_ctx - 1) next-token losses: entry [s, i] is the loss of predicting token i + 1.

    `forward` is a HookedTransformer or its `torch.compile`d form.
    """
    return torch.cat([forward(chunk, return_type="loss", loss_per_token=True) for chunk in tokens.split(batch)])


def compiled(model, enabled: bool):
    """`torch.compile(model)` (2.5x faster HookedTransformer forward on CPU), or the model itself.

    Weights loaded in place later are picked up without recompiling (after one retrace)."""
    return torch.compile(model, dynamic=False) if enabled else model


def analyse_checkpoints(checkpoints: list[Path], eval_tokens: np.ndarray, bos_id: int, analysis_cfg, seed: int,
                        cache: StepCache | None = None):
    """The step's tables (head scores, composition scores) and the stacked per-token losses (n_checkpoints,
    n_sequences, n_ctx - 1) of one model.

    Through the shared per-checkpoint loop: head scores run the HookedTransformer eagerly with hooks,
    per-token losses its compiled forward, composition scores read the weights."""
    hs = analysis_cfg.head_scores

    def prepare(model):
        n_ctx = model.cfg.n_ctx
        require_tokens(eval_tokens, n_ctx, "eval")
        if 2 * hs.seq_len + 1 > n_ctx:
            raise UserError(f"analysis.head_scores.seq_len={hs.seq_len} needs n_ctx >= {2 * hs.seq_len + 1}; "
                            f"lower it to at most {(n_ctx - 1) // 2}")
        return {"repeated": head_score_tokens(eval_tokens, bos_id, hs, seed),
                "baseline": random_baseline(model.cfg.d_model, model.cfg.d_head, seed=seed),
                "sample": eval_windows(eval_tokens, analysis_cfg.eval.n_sequences, n_ctx),
                "forward": compiled(model, analysis_cfg.compile)}

    def analyse(model, meta, shared):
        names = list(hs.names)
        scores = head_scores(model, shared["repeated"], hs.seq_len, names).numpy()
        if hasattr(model.blocks[0].attn, "smear_alpha"):  # the learned key smearing beside the scores
            scores = np.concatenate([scores, smear_gates(model)[None]])
            names.append("smear_gate")
        composition = composition_table(model, shared["baseline"])
        composition.insert(0, "tokens_seen", meta["tokens_seen"])
        composition.insert(0, "step", meta["step"])
        return {"losses": per_token_losses(shared["forward"], shared["sample"], analysis_cfg.eval.batch).numpy(),
                "composition": composition,
                "head_scores": pd.DataFrame(
                    [{"step": meta["step"], "tokens_seen": meta["tokens_seen"], "layer": layer, "head": head,
                      "score": names[s], "value": float(value)} for (s, layer, head), value in np.ndenumerate(scores)])}

    return stack_results(each_checkpoint(checkpoints, analyse, cache, prepare), "language")


def main():
    def analyse(checkpoints, data_dir, cfg, cache):
        manifest = json.loads((data_dir / "manifest.json").read_text())
        return analyse_checkpoints(checkpoints, load_split(data_dir, "eval"), manifest["eot_id"], cfg.analysis,
                                   cfg.seed, cache)

    score_step("Score every checkpoint of one language model (head scores + per-token losses).", "language",
               analyse)


if __name__ == "__main__":
    run_cli(main)
