"""The toy kind's score step, all shared measures: head scores on repeated random states, composition, and the
per-token losses of the eval sequences (for the shared ICL score, PCA and phase window)."""

import numpy as np
import pandas as pd
import torch

from pipeline.composition import composition_table, random_baseline
from pipeline.io import run_cli
from pipeline.loop import each_checkpoint, score_step, stack_results
from pipeline.measures import head_scores, per_token_losses, repeated_random_tokens


def analyse_checkpoints(checkpoints, data_dir, cfg, cache=None):
    hs = cfg.analysis.head_scores
    tokens = torch.from_numpy(np.load(data_dir / "eval.npy"))

    def prepare(model):
        return {"repeated": repeated_random_tokens(hs.batch, hs.seq_len, torch.arange(cfg.data.modulus), 0, cfg.seed),
                "baseline": random_baseline(model.cfg.d_model, model.cfg.d_head, seed=cfg.seed)}

    def analyse(model, meta, shared):
        at = {"step": meta["step"], "tokens_seen": meta["tokens_seen"]}
        scores = head_scores(model, shared["repeated"], hs.seq_len, list(hs.names)).numpy()
        composition = composition_table(model, shared["baseline"])
        return {"losses": per_token_losses(model, tokens, cfg.analysis.eval.batch).numpy(),
                "head_scores": pd.DataFrame([{**at, "layer": layer, "head": head, "score": hs.names[s],
                                              "value": float(v)} for (s, layer, head), v in np.ndenumerate(scores)]),
                "composition": composition.assign(**at)[["step", "tokens_seen", *composition.columns]]}

    return stack_results(each_checkpoint(checkpoints, analyse, cache, prepare), "toy")


def main():
    score_step("Score every checkpoint of one toy model.", "toy", analyse_checkpoints)


if __name__ == "__main__":
    run_cli(main)
