"""Per-checkpoint analysis: head scores from attention patterns, and per-token losses on the eval sample.

Each checkpoint is loaded once and runs exactly two forward passes: one over repeated random tokens
caching only `hook_pattern` (all head scores read it), one over the eval sample returning per-token
losses (ICL score, loss, loss-vs-position and PCA are all derived from those losses downstream).
The head scores themselves are the shared registry (pipeline.measures.HEAD_SCORES).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.composition import composition_table, random_baseline
from pipeline.io import StepCache, UserError, run_cli
from pipeline.kinds.language.data import eval_windows, load_split, require_tokens
from pipeline.loop import each_checkpoint, score_step, stack_results
from pipeline.measures import compiled, head_scores, per_token_losses, repeated_random_tokens


def seen_tokens(eval_tokens: np.ndarray, bos_id: int) -> torch.Tensor:
    """The token ids the eval split contains, BOS excluded: the vocabulary of every random-token probe."""
    seen = torch.from_numpy(np.unique(eval_tokens).astype(np.int64))
    return seen[seen != bos_id]


def head_score_tokens(eval_tokens: np.ndarray, bos_id: int, head_scores_cfg, seed: int) -> torch.Tensor:
    """The fixed repeated-random-token batch of a run, drawn from the token ids the eval split contains."""
    return repeated_random_tokens(head_scores_cfg.batch, head_scores_cfg.seq_len, seen_tokens(eval_tokens, bos_id),
                                  bos_id, seed)


def smear_gates(model) -> np.ndarray:
    """(n_layers, n_heads) sigmoid(alpha) of a smeared-key model: 1 = own key only, 0 = the previous token's."""
    return torch.stack([torch.sigmoid(block.attn.smear_alpha) for block in model.blocks]).numpy()


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
