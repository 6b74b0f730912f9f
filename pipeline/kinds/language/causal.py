"""Causal evidence across checkpoints: head ablation, activation patching, direct logit attribution,
copying scores and per-token losses on a chosen text (Olsson et al. 2022; seeds 001, 003, 004).

Runs once the head scores and the phase window are known: the ablated heads are the final checkpoint's
induction heads, and the patching heatmaps are taken around the detected window. Each checkpoint's
weights are loaded once into one HookedTransformer. The intact per-token losses are read from
score_checkpoints's cache, never recomputed; the forward passes here are only the interventions.

Patching and attribution run per task (pipeline.kinds.language.tasks: induction, ioi), normalised so the clean run
scores 1 and the corrupted run 0.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline import hooks
from pipeline.checkpoints import checkpoint_meta
from pipeline.cli import cli
from pipeline.config import section
from pipeline.icl import bootstrap_se, icl_per_sequence
from pipeline.io import StepCache, UserError, run_cli, sha256_file
from pipeline.kinds.language.data import eval_windows, load_split
from pipeline.kinds.language.scores import compiled, per_token_losses, seen_tokens
from pipeline.kinds.language.tasks import TaskContext, build_tasks, task_tables
from pipeline.loop import each_checkpoint, write_model_tables
from pipeline.outputs import STEP_CONFIG, tables_of
from pipeline.phase import steps_around_window

Head = tuple[int, int]


def induction_heads(heads: pd.DataFrame, ablation_cfg) -> list[Head]:
    """The final checkpoint's heads by `score`: the top `top_k`, or (top_k null) all above `threshold`."""
    final = heads[(heads.score == ablation_cfg.score) & (heads.step == heads.step.max())]
    final = final.sort_values(["value", "layer", "head"], ascending=[False, True, True])
    chosen = final.head(ablation_cfg.top_k) if ablation_cfg.top_k else final[final.value >= ablation_cfg.threshold]
    return [(int(r.layer), int(r.head)) for r in chosen.itertuples()]


def control_heads(ablated: list[Head], n_layers: int, n_heads: int, seed: int) -> list[Head]:
    """As many random other heads, drawn first from the ablated heads' own layers (a head of an earlier
    layer may be the previous-token half of the circuit, which would not be a control)."""
    rng = np.random.default_rng(seed)
    layers = {layer for layer, _ in ablated}
    others = [(lay, h) for lay in range(n_layers) for h in range(n_heads) if (lay, h) not in ablated]
    same, rest = [o for o in others if o[0] in layers], [o for o in others if o[0] not in layers]
    ordered = [same[i] for i in rng.permutation(len(same))] + [rest[i] for i in rng.permutation(len(rest))]
    return sorted(ordered[: len(ablated)])


def mean_head_outputs(model, tokens: torch.Tensor, layers: set[int]) -> dict[int, torch.Tensor]:
    """Each head's mean `z` over sequences and positions in `layers`: layer -> (n_heads, d_head). The forward
    stops after the last of them (no later layer, no unembedding)."""
    _, cache = model.run_with_cache(tokens, names_filter=hooks.names_filter(model.cfg.n_layers, hooks.MEAN_ABLATION),
                                    stop_at_layer=max(layers) + 1)
    return {layer: cache["z", layer].mean(dim=(0, 1)) for layer in layers}


@contextlib.contextmanager
def ablated(model, heads: list[Head], mean_z: dict[int, torch.Tensor] | None = None):
    """Zero-ablate `heads` (or mean-ablate them, given `mean_z`) by editing W_O and b_O in place.

    Equivalent to replacing each head's `hook_z` by 0 (or its mean) with a hook, but it leaves the
    compiled forward usable. The weights are restored on exit."""
    layers = sorted({layer for layer, _ in heads})
    saved = {layer: (model.blocks[layer].attn.W_O.clone(), model.blocks[layer].attn.b_O.clone()) for layer in layers}
    with torch.no_grad():
        for layer, head in heads:
            attn = model.blocks[layer].attn
            if mean_z is not None:
                attn.b_O += mean_z[layer][head] @ attn.W_O[head]
            attn.W_O[head] = 0.0
    try:
        yield model
    finally:
        with torch.no_grad():
            for layer, (W_O, b_O) in saved.items():
                model.blocks[layer].attn.W_O.copy_(W_O)
                model.blocks[layer].attn.b_O.copy_(b_O)


def copying_scores(model, vocab: torch.Tensor) -> torch.Tensor:
    """Olsson et al.'s copying score per head: sum(eigenvalues) / sum(|eigenvalues|) of the full OV circuit
    W_E W_OV W_U restricted to `vocab` (FactoredMatrix: never materialises vocab x vocab). (layers, heads)"""
    full_ov = model.W_E[vocab] @ model.OV @ model.W_U[:, vocab]
    eigenvalues = full_ov.eigenvalues
    return (eigenvalues.sum(dim=-1) / eigenvalues.abs().sum(dim=-1)).real


def most_repetitive(sample: torch.Tensor) -> int:
    """Index of the sequence with the most repeated token bigrams (repeated names, identifiers)."""
    bigrams = sample[:, :-1] * 65536 + sample[:, 1:]
    return int(torch.tensor([len(b) - len(torch.unique(b)) for b in bigrams]).argmax())


def ablation_row(losses: np.ndarray, condition: str, method: str, heads: list[Head], icl_cfg, seed: int) -> dict:
    """ICL score (with bootstrap SE) and mean loss of per-token `losses` (n_sequences, positions)."""
    per_sequence = icl_per_sequence(losses, icl_cfg.early, icl_cfg.late, icl_cfg.window)
    return {"heads": condition, "method": method, "ablated": " ".join(f"L{lay}H{h}" for lay, h in heads),
            "icl_score": float(per_sequence.mean()), "loss": float(losses.mean()),
            "icl_se": float(bootstrap_se(per_sequence, icl_cfg.n_bootstrap, seed))}


def ablation_rows(model, forward, intact: np.ndarray, sample: torch.Tensor, conditions: dict, analysis_cfg,
                  seed: int) -> list[dict]:
    """The intact ICL row, then each condition's heads zero- and/or mean-ablated, on the same sequences."""
    abl, icl_cfg = analysis_cfg.ablation, analysis_cfg.icl
    rows = [ablation_row(intact, "none", "none", [], icl_cfg, seed)]
    mean_z = mean_head_outputs(model, sample[: abl.mean_sequences],
                               {layer for heads in conditions.values() for layer, _ in heads})
    for condition, chosen in conditions.items():
        for method in abl.methods:
            with ablated(model, chosen, mean_z if method == "mean" else None):
                losses = per_token_losses(forward, sample, analysis_cfg.eval.batch).numpy()
            rows.append(ablation_row(losses, condition, method, chosen, icl_cfg, seed))
    return rows


def analyse_causal(checkpoints: list[Path], cached: dict, heads: pd.DataFrame, windows: pd.DataFrame,
                   eval_tokens: np.ndarray, bos_id: int, analysis_cfg, seed: int, text_tokens=None,
                   cache: StepCache | None = None, encode=None):
    """Every causal table of one model: ablation; per task (analysis.tasks) patching, metrics, logit
    attribution and the final checkpoint's top-head attention; copying; text losses.

    `cached` holds score_checkpoints's per-token losses; `text_tokens` (1, T) is the text whose per-token
    losses are tracked, by default the eval sequence with the most repeated bigrams (losses read from cache).
    `encode` (text -> token ids) is the model's tokenizer, for tasks built from text (ioi).
    Checkpoints found in `cache` (finished by an interrupted run) are not analysed again.
    """
    abl = analysis_cfg.ablation
    config = checkpoint_meta(checkpoints[0])["config"]
    sample = eval_windows(eval_tokens, analysis_cfg.eval.n_sequences, config["n_ctx"])
    subset = np.unique(np.linspace(0, len(sample) - 1, abl.n_sequences).round().astype(int))
    vocab = seen_tokens(eval_tokens, bos_id)
    context = TaskContext(vocab, bos_id, encode or (lambda text: []), config["n_ctx"])
    tasks = build_tasks(analysis_cfg.tasks, context, seed)
    targets = induction_heads(heads, abl)
    conditions = {"induction": targets, "control": control_heads(targets, config["n_layers"], config["n_heads"], seed)}
    resid_steps = set(steps_around_window(heads.step.unique().tolist(), windows,
                                          analysis_cfg.patching.resid_checkpoints))
    final_step = int(heads.step.max())
    text_index = most_repetitive(sample) if text_tokens is None else None
    text_tokens = sample[text_index:text_index + 1] if text_index is not None else text_tokens
    cached_steps = list(cached["steps"])

    def analyse(model, meta, forward):
        intact = cached["losses"][cached_steps.index(meta["step"])]
        rows = {name: [] for name in tables_of("causal_checkpoints")}
        if targets:
            rows["ablation"] = ablation_rows(model, forward, intact[subset], sample[subset], conditions,
                                             analysis_cfg, seed)
        for name, task in tasks.items():
            task_rows = task_tables(model, task, meta["step"] in resid_steps, analysis_cfg.patching.min_gap,
                                    analysis_cfg.tasks.attention_heads if meta["step"] == final_step else 0)
            for table, found in task_rows.items():
                rows[table] += [{"task": name, **row} for row in found]
        rows["copying"] = [{"layer": layer, "head": head, "copying": float(value)}
                           for (layer, head), value in np.ndenumerate(copying_scores(model, vocab).numpy())]
        text_losses = (intact[text_index] if text_index is not None
                       else model(text_tokens, return_type="loss", loss_per_token=True)[0].numpy())
        rows["token_losses"] = [{"position": p, "token_id": int(text_tokens[0, p + 1]), "loss": float(v)}
                                for p, v in enumerate(text_losses)]
        at = {"step": meta["step"], "tokens_seen": meta["tokens_seen"]}
        return {name: pd.DataFrame([{**at, **row} for row in table]) for name, table in rows.items()}

    results = each_checkpoint(checkpoints, analyse, cache, lambda model: compiled(model, analysis_cfg.compile))
    return {name: pd.concat([r[name] for r in results], ignore_index=True) for name in tables_of("causal_checkpoints")}


def text_to_tokens(tokenizer, text: str, bos_id: int, n_ctx: int) -> torch.Tensor:
    """[BOS, tokens of `text`] truncated to the context: (1, T)."""
    ids = [bos_id] + tokenizer.encode(text).ids
    if len(ids) < 3:
        raise UserError("analysis.token_loss.text is too short to score; give it at least two tokens of text")
    return torch.tensor([ids[:n_ctx]])


def main():
    args, cfg = cli("Ablation, activation patching, logit attribution, copying scores and text losses of one model.",
                    data="data directory (eval.npy, manifest.json, tokenizer.json)",
                    checkpoints={"nargs": "+", "help": "the model's checkpoints (.safetensors)"},
                    losses="per-token losses (.npz) from score_checkpoints", heads="head-score table (.parquet)",
                    window="phase-window table (.parquet)", out="directory for the per-model tables (.parquet)",
                    cache="directory for finished checkpoints' results (resumes a killed job)",
                    part={"type": str, "required": False, "help": "which share of the checkpoints this job has"})
    torch.set_num_threads(cfg.analysis.threads)
    from tokenizers import Tokenizer

    bos_id = json.loads((args.data / "manifest.json").read_text())["eot_id"]
    text = cfg.analysis.token_loss.text
    tokenizer = Tokenizer.from_file(str(args.data / "tokenizer.json"))
    text_tokens = text_to_tokens(tokenizer, text, bos_id, cfg.model.n_ctx) if text else None
    cached = dict(np.load(args.losses))
    inputs = "".join(sha256_file(p) for p in (args.losses, args.heads, args.window))
    cache = StepCache(args.cache, section(cfg, *STEP_CONFIG["causal_checkpoints"]) + inputs)
    tables = analyse_causal(sorted(args.checkpoints), cached, pd.read_parquet(args.heads),
                            pd.read_parquet(args.window), load_split(args.data, "eval"), bos_id, cfg.analysis,
                            cfg.seed, text_tokens, cache, lambda text: tokenizer.encode(text).ids)
    tables["token_losses"]["token"] = [tokenizer.decode([i]) for i in tables["token_losses"].token_id]
    if len(tables["task_attention"]):
        tables["task_attention"]["key_token"] = [tokenizer.decode([i]) for i in tables["task_attention"].key_token_id]
    write_model_tables("causal_checkpoints", cfg.model.name, tables, args.out, cache, args.part)


if __name__ == "__main__":
    run_cli(main)
