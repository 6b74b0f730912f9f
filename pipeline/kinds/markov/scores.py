"""Per-checkpoint measures of an in-context Markov-chain model: its distance to each exact strategy, its head
scores, composition.

Head scores come from two registries: the shared one (pipeline.measures.HEAD_SCORES) on repeated random
states, and the kind's own, CHAIN_SCORES, on its eval chains: Edelman et al.'s statistical induction head
attends from state t to the states that followed earlier occurrences of x_t, whose counts are the bigram
(Bayes) predictor's. Each checkpoint runs two forward passes on the HookedTransformer: the fixed eval chains
caching only `hook_pattern` (log-probabilities -> per-token losses and the KL divergence from each strategy;
patterns -> the chain scores) and the repeated random states (patterns -> the registry's scores). The
per-token losses feed the shared ICL score, PCA and phase window.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from pipeline import hooks
from pipeline.composition import composition_table, random_baseline
from pipeline.io import StepCache, run_cli
from pipeline.kinds.markov.data import cross_entropy, kl_from, load_eval, prior_strategies
from pipeline.loop import each_checkpoint, score_step, stack_results
from pipeline.measures import HEAD_SCORES, head_scores, repeated_random_tokens, uniform_attention


def statistical_induction(pattern: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Edelman et al. 2024's statistical induction head, per sequence and head (batch, head): the attention mass
    from each state t >= 1 to the positions j <= t whose previous state x_{j-1} equals x_t (the states that
    followed earlier occurrences of x_t: the transitions the bigram predictor counts, the one ending at t
    included), averaged over t. `pattern` (batch, head, query, key) over the sequences `tokens` (batch, T)."""
    followers = torch.zeros(pattern.shape[0], *pattern.shape[-2:], dtype=pattern.dtype)
    followers[:, :, 1:] = (tokens[:, None, :-1] == tokens[:, :, None]).to(pattern.dtype)  # key j: x_{j-1} == x_t
    followers = followers.tril()  # keys at or before the query
    return (pattern * followers[:, None]).sum(-1)[..., 1:].mean(-1)


def chance_level(score, tokens: torch.Tensor) -> float:
    """A chain score's value under uniform causal attention (every key 0..t weighted 1/(t+1)) on these sequences."""
    t = tokens.shape[1]
    return float(score(uniform_attention(t).expand(len(tokens), 1, t, t), tokens).mean())


CHAIN_SCORES = {"statistical_induction": statistical_induction}  # (pattern, tokens) -> (batch, head)


def chain_pass(model, tokens: torch.Tensor, names: list[str], batch: int) -> tuple[np.ndarray, np.ndarray]:
    """One forward pass over the eval chains caching only attention patterns: the log-probabilities of each next
    state (n, T - 1, k) and the chain scores `names` (n_names, n_layers, n_heads), means over the chains."""
    layers, heads = model.cfg.n_layers, model.cfg.n_heads
    log_probs, scores = [], []
    for chunk in tokens.split(batch):
        logits, cache = model.run_with_cache(chunk, names_filter=hooks.names_filter(layers, hooks.HEAD_SCORES))
        log_probs.append(logits.log_softmax(-1)[:, :-1])
        per_name = [torch.stack([CHAIN_SCORES[n](cache["pattern", layer], chunk) for layer in range(layers)])
                    for n in names]
        scores.append(torch.stack(per_name) if names else torch.zeros(0, layers, len(chunk), heads))
    return torch.cat(log_probs).double().numpy(), torch.cat(scores, dim=-2).mean(-2).numpy()


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
    predictive = prior_strategies(tokens, cfg.data, cfg.seed)
    strategy_losses = {name: float(cross_entropy(np.log(p), tokens).mean()) for name, p in predictive.items()}

    def prepare(model):
        return {"repeated": repeated_random_tokens(hs.batch, hs.seq_len, torch.arange(cfg.data.n_states), 0, cfg.seed),
                "baseline": random_baseline(model.cfg.d_model, model.cfg.d_head, seed=cfg.seed)}

    repeated_names = [n for n in hs.names if n in HEAD_SCORES]
    chain_names = [n for n in hs.names if n in CHAIN_SCORES]
    names = repeated_names + chain_names
    chance = {n: chance_level(CHAIN_SCORES[n], torch.from_numpy(tokens)) for n in chain_names}

    def analyse(model, meta, shared):
        at = {"step": meta["step"], "tokens_seen": meta["tokens_seen"]}
        log_probs, chain_scores = chain_pass(model, torch.from_numpy(tokens), chain_names, batch)
        scores = np.concatenate([head_scores(model, shared["repeated"], hs.seq_len, repeated_names).numpy(),
                                 chain_scores])
        composition = composition_table(model, shared["baseline"])
        losses = cross_entropy(log_probs, tokens)
        return {"losses": losses.astype(np.float32),
                "head_scores": pd.DataFrame([{**at, "layer": layer, "head": head, "score": names[s],
                                              "value": float(v)} for (s, layer, head), v in np.ndenumerate(scores)]),
                "composition": composition.assign(**at)[["step", "tokens_seen", *composition.columns]],
                "chance_levels": pd.DataFrame([{**at, "score": n, "chance": chance[n]} for n in chain_names],
                                              columns=["step", "tokens_seen", "score", "chance"]),
                "markov_strategies": strategy_rows(log_probs, losses, predictive, strategy_losses).assign(**at)[
                    ["step", "tokens_seen", "strategy", "kl", "strategy_loss", "model_loss", "nearest"]]}

    return stack_results(each_checkpoint(checkpoints, analyse, cache, prepare), "markov")


def main():
    score_step("Measure every checkpoint of one in-context Markov-chain model.", "markov", analyse_checkpoints)


if __name__ == "__main__":
    run_cli(main)
