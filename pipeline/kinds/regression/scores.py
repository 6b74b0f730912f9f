"""Per-checkpoint measures of an in-context-regression model: MSE per position on the pretraining and the true
task distributions, its distance to each Bayes baseline, seed 002's probe of every head, and composition.

Each checkpoint runs three forward passes on the HookedTransformer: the two fixed eval samples (predictions
-> MSE per position, Delta_ridge and Delta_dMMSE: the mean squared difference between the model's and the
baseline's predictions on the same inputs, per dimension) and the probe batch, caching only `hook_pattern`.
The squared errors on true tasks are the step's per-position losses, so the shared ICL score (late - early
position; negative: later predictions are better), loss-by-position, PCA and phase window read them.

Head scores are a registry, as for the language models: a score is one function `(pattern, probe) ->
(n_heads,)` over attention patterns (batch, head, query, key) of a probe batch, sequences whose x at pair
`probe.later` repeats the x at pair `probe.earlier`, with the distribution its tasks come from: fresh Gaussian
tasks, or the model's own pretraining tasks (`xy_probe_pretrain`; for finite M a model may answer its own
tasks by recall). Each score's chance level, its value under uniform causal attention, is in chance_levels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline import hooks
from pipeline.composition import composition_table, random_baseline
from pipeline.hooks import get_act_name
from pipeline.io import StepCache, run_cli
from pipeline.kinds.regression.data import DISTRIBUTIONS, load_eval, load_tasks, sample_sequences, to_tokens
from pipeline.kinds.regression.subject import hooked_outputs, predictions
from pipeline.loop import each_checkpoint, score_step, stack_results
from pipeline.measures import uniform_attention


def xy_probe(pattern: torch.Tensor, probe) -> torch.Tensor:
    """Seed 002's regression analogue of prefix matching: attention from the repeated x-token (pair `later`)
    to the y-token that followed the earlier copy of that x (pair `earlier`)."""
    return pattern[:, :, 2 * probe.later, 2 * probe.earlier + 1].mean(0)


def previous_token(pattern: torch.Tensor, probe) -> torch.Tensor:
    """Attention to the immediately preceding token (an x-token to the last y, a y-token to its x)."""
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean((0, 2))


REGRESSION_SCORES = {"xy_probe": (xy_probe, "true"), "previous_token": (previous_token, "true"),
                     "xy_probe_pretrain": (xy_probe, "pretrain")}  # name -> (score, the probe's task distribution)


def probe_tokens(data_cfg, probe, seed: int, tasks: torch.Tensor | None = None) -> torch.Tensor:
    """A probe batch: sequences of `tasks` (None: true, fresh Gaussian tasks) whose pair `later` has the x of
    pair `earlier` (its y drawn anew from the same task), as tokens (batch, 2K, D + 1)."""
    generator = torch.Generator().manual_seed(seed + (100 if tasks is None else 101))
    x, _, w = sample_sequences(probe.batch, data_cfg, tasks, generator)
    x[:, probe.later] = x[:, probe.earlier]
    noise = torch.randn(probe.batch, data_cfg.n_pairs, generator=generator) * data_cfg.noise_variance ** 0.5
    return to_tokens(x, torch.einsum("nkd,nd->nk", x, w) + noise)


def attention_patterns(model, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's attention pattern (batch, head, query, key) from one forward pass caching only them."""
    cache, forward_hooks, _ = model.get_caching_hooks(hooks.names_filter(model.cfg.n_layers, hooks.HEAD_SCORES))
    with model.hooks(fwd_hooks=forward_hooks):
        hooked_outputs(model, tokens, return_type=None)
    return [cache[get_act_name("pattern", layer)] for layer in range(model.cfg.n_layers)]


def baseline_rows(sample: dict, preds: dict, dim: int) -> pd.DataFrame:
    """Per distribution and position: the model's MSE, Delta to each baseline, and the baselines' own MSE (all
    per dimension)."""
    frames = []
    for distribution in DISTRIBUTIONS:
        y, pred = sample[f"{distribution}_y"], preds[distribution]
        ridge, dmmse = sample[f"{distribution}_ridge"], sample[f"{distribution}_dmmse"]
        frames.append(pd.DataFrame({
            "distribution": distribution, "position": np.arange(y.shape[1]),
            "mse": ((pred - y) ** 2).mean(0) / dim, "delta_ridge": ((pred - ridge) ** 2).mean(0) / dim,
            "delta_dmmse": ((pred - dmmse) ** 2).mean(0) / dim, "ridge_mse": ((ridge - y) ** 2).mean(0) / dim,
            "dmmse_mse": ((dmmse - y) ** 2).mean(0) / dim}))
    return pd.concat(frames, ignore_index=True)


def chance_levels(probe, n_ctx: int) -> pd.DataFrame:
    """Each score under uniform causal attention (every key 0..q weighted 1/(q + 1)): its chance level."""
    uniform = uniform_attention(n_ctx)[None, None]
    return pd.DataFrame([{"score": name, "chance": float(score(uniform, probe)[0])}
                         for name, (score, _) in REGRESSION_SCORES.items()])


def analyse_checkpoints(checkpoints: list[Path], sample: dict, tasks: torch.Tensor, cfg,
                        cache: StepCache | None = None):
    """The step's tables (head scores, composition, regression_eval, probe_attention, chance_levels) and the
    stacked squared errors on true tasks (n_checkpoints, n_sequences, K) of one model; `tasks` its pretraining
    tasks (empty for M = inf)."""
    probe, batch = cfg.analysis.probe, cfg.analysis.eval.batch
    tokens = {d: to_tokens(torch.from_numpy(sample[f"{d}_x"]), torch.from_numpy(sample[f"{d}_y"]))
              for d in DISTRIBUTIONS}

    tasks = {"true": None, "pretrain": tasks}
    chance = chance_levels(probe, 2 * cfg.data.n_pairs)

    def prepare(model):
        return {"probes": {d: probe_tokens(cfg.data, probe, cfg.seed, t) for d, t in tasks.items()},
                "baseline": random_baseline(model.cfg.d_model, model.cfg.d_head, seed=cfg.seed)}

    def analyse(model, meta, shared):
        at = {"step": meta["step"], "tokens_seen": meta["tokens_seen"]}
        preds = {d: torch.cat([predictions(hooked_outputs(model, chunk)) for chunk in t.split(batch * 16)]).numpy()
                 for d, t in tokens.items()}
        patterns = {d: attention_patterns(model, t) for d, t in shared["probes"].items()}
        scores = [{**at, "layer": layer, "head": head, "score": name, "value": float(value)}
                  for name, (score, d) in REGRESSION_SCORES.items() for layer, pattern in enumerate(patterns[d])
                  for head, value in enumerate(score(pattern, probe))]
        query = [{**at, "layer": layer, "head": head, "key": key, "attention": float(value)}
                 for layer, pattern in enumerate(patterns["true"])
                 for (head, key), value in np.ndenumerate(pattern[:, :, 2 * probe.later].mean(0).numpy())]
        composition = composition_table(model, shared["baseline"])
        return {"losses": ((preds["true"] - sample["true_y"]) ** 2 / cfg.data.dim).astype(np.float32),
                "head_scores": pd.DataFrame(scores), "composition": composition.assign(**at)[
                    ["step", "tokens_seen", *composition.columns]],
                "regression_eval": baseline_rows(sample, preds, cfg.data.dim).assign(**at)[
                    ["step", "tokens_seen", "distribution", "position", "mse", "delta_ridge", "delta_dmmse",
                     "ridge_mse", "dmmse_mse"]],
                "probe_attention": pd.DataFrame(query), "chance_levels": chance.assign(**at)[
                    ["step", "tokens_seen", "score", "chance"]]}

    return stack_results(each_checkpoint(checkpoints, analyse, cache, prepare), "regression")


def main():
    score_step("Measure every checkpoint of one in-context-regression model.", "regression",
               lambda checkpoints, data_dir, cfg, cache: analyse_checkpoints(
                   checkpoints, load_eval(data_dir), load_tasks(data_dir), cfg, cache))


if __name__ == "__main__":
    run_cli(main)
