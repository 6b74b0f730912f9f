"""Per-checkpoint measures of an in-context Markov-chain model: its distance to each exact strategy, its head
scores (the language models' registry: the statistical induction head is found by the same code), composition.

Each checkpoint runs two forward passes on the HookedTransformer: the fixed eval chains (log-probabilities ->
per-token losses and the KL divergence from each strategy) and the repeated random states caching only
`hook_pattern`. The per-token losses feed the shared ICL score, PCA and phase window.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from pipeline.composition import composition_table, random_baseline
from pipeline.io import StepCache, run_cli
from pipeline.loop import each_checkpoint, score_step, stack_results
from pipeline.markov import cross_entropy, kl_from, load_eval, strategies
from pipeline.scores import head_scores, repeated_random_tokens


def strategy_rows(log_probs: np.ndarray, model_losses: np.ndarray, predictive: dict,
                  strategy_losses: dict) -> pd.DataFrame:
    """Per strategy: the model's KL divergence from it, its own loss, the model's loss, and whether it is the
    strategy nearest the model (smallest KL) at this checkpoint."""
    rows = pd.DataFrame([{"strategy": name, "kl": kl_from(p, log_probs), "strategy_loss": strategy_losses[name],
                          "model_loss": float(model_losses.mean())} for name, p in predictive.items()])
    return rows.assign(nearest=rows.kl == rows.kl.min())


def analyse_checkpoints(checkpoints, data_dir, cfg, cache: StepCache | None = None):
    """The step's tables (head scores, composition, markov_strategies) and the stacked per-token losses
    (n_checkpoints, n_sequences, seq_len - 1) of one model, on the eval chains of its data step."""
    hs, batch = cfg.analysis.head_scores, cfg.analysis.eval.batch
    tokens = load_eval(data_dir)["tokens"]
    predictive = strategies(tokens, cfg.data.n_states, cfg.data.alpha)
    strategy_losses = {name: float(cross_entropy(np.log(p), tokens).mean()) for name, p in predictive.items()}

    def prepare(model):
        return {"repeated": repeated_random_tokens(hs.batch, hs.seq_len, torch.arange(cfg.data.n_states), 0, cfg.seed),
                "baseline": random_baseline(model.cfg.d_model, model.cfg.d_head, seed=cfg.seed)}

    def analyse(model, meta, shared):
        at = {"step": meta["step"], "tokens_seen": meta["tokens_seen"]}
        log_probs = torch.cat([model(chunk).log_softmax(-1)[:, :-1] for chunk in torch.from_numpy(tokens).split(batch)])
        log_probs = log_probs.double().numpy()
        scores = head_scores(model, shared["repeated"], hs.seq_len, list(hs.names)).numpy()
        composition = composition_table(model, shared["baseline"])
        losses = cross_entropy(log_probs, tokens)
        return {"losses": losses.astype(np.float32),
                "head_scores": pd.DataFrame([{**at, "layer": layer, "head": head, "score": hs.names[s],
                                              "value": float(v)} for (s, layer, head), v in np.ndenumerate(scores)]),
                "composition": composition.assign(**at)[["step", "tokens_seen", *composition.columns]],
                "markov_strategies": strategy_rows(log_probs, losses, predictive, strategy_losses).assign(**at)[
                    ["step", "tokens_seen", "strategy", "kl", "strategy_loss", "model_loss", "nearest"]]}

    return stack_results(each_checkpoint(checkpoints, analyse, cache, prepare), "markov")


def main():
    score_step("Measure every checkpoint of one in-context Markov-chain model.", "markov", analyse_checkpoints)


if __name__ == "__main__":
    run_cli(main)
