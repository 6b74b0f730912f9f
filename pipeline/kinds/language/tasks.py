"""Tasks for the causal step: prompts, answer tokens and a metric, one builder function per task.

A task is clean prompts, corrupted versions of them (one per named corruption), the answer token each
prompt should predict at given positions, and optionally a competing token. Its metric is the logit
difference: logit(answer) - logit(competitor), or minus the mean logit when there is no competitor,
averaged over prompts and answer positions. `Task.single()` keeps one answer per prompt (the last), the
single-answer metric that position-resolved patching needs (seed 004): patching one position then moves
the whole metric, not one of twenty averaged predictions.

Registry: TASKS[name](task_cfg, context, seed) -> Task, one entry in conf/analysis (analysis.tasks).
- induction (seed 004): random A, B, C; clean [BOS, A, A], corrupted [BOS, X, Y]; the answers are the
  second copy's next tokens against the mean logit.
- ioi (Wang et al. 2022; seed 001): name templates; answer = the indirect object, competitor = the
  subject; corrupted = the two names swapped, which flips the answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import einops
import numpy as np
import torch

from pipeline import hooks
from pipeline.io import UserError


@dataclass
class Task:
    clean: torch.Tensor                                  # (batch, pos)
    corrupted: dict[str, torch.Tensor]                   # corruption -> (batch, pos)
    answers: torch.Tensor                                # (batch, k) correct next tokens
    positions: torch.Tensor                              # (batch, k) positions whose logits predict them
    wrong: torch.Tensor | None = None                    # (batch, k) competing tokens; None: the mean logit
    lengths: torch.Tensor | None = None                  # (batch,) prompt lengths before right-padding

    def single(self) -> Task:
        """The same prompts with only each prompt's last answer (the query position)."""
        wrong = None if self.wrong is None else self.wrong[:, -1:]
        return Task(self.clean, self.corrupted, self.answers[:, -1:], self.positions[:, -1:], wrong, self.lengths)


@dataclass
class TaskContext:
    """What a task builder may use besides its config: the tokens the model has seen, BOS, the tokenizer."""
    vocab: torch.Tensor
    bos_id: int
    encode: Callable[[str], list[int]]
    n_ctx: int


def _at_positions(values: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """values (batch, pos, ...) at positions (batch, k) -> (batch, k, ...)."""
    return values[torch.arange(len(positions))[:, None], positions]


def logit_diffs(logits: torch.Tensor, task: Task) -> torch.Tensor:
    """logit(answer) - logit(competitor or mean) at each answer position: (batch, k)."""
    at = _at_positions(logits, task.positions)
    correct = at.gather(-1, task.answers[..., None])[..., 0]
    other = at.mean(-1) if task.wrong is None else at.gather(-1, task.wrong[..., None])[..., 0]
    return correct - other


def logit_difference(logits: torch.Tensor, task: Task) -> torch.Tensor:
    """The task metric: the mean logit difference over prompts and answer positions."""
    return logit_diffs(logits, task).mean()


def answer_directions(model, task: Task) -> torch.Tensor:
    """The residual direction each answer's logit difference reads: W_U[answer] - W_U[competitor or mean],
    (batch, k, d_model)."""
    other = model.W_U.mean(-1)[:, None, None] if task.wrong is None else model.W_U[:, task.wrong]
    return einops.rearrange(model.W_U[:, task.answers] - other, "d b k -> b k d")


def attribution(model, task: Task, cache) -> list[dict]:
    """Direct logit attribution of each head and the logit lens (accumulated residual) per layer along the
    answer direction, both through the final LayerNorm's cached scale, averaged like the metric."""
    directions = answer_directions(model, task)
    stacks = {"head": cache.stack_head_results(layer=-1, apply_ln=True, return_labels=True),
              "logit_lens": cache.accumulated_resid(apply_ln=True, return_labels=True)}
    rows = []
    for kind, (stack, labels) in stacks.items():
        at = einops.rearrange(_at_positions(einops.rearrange(stack, "c b p d -> b p c d"), task.positions),
                              "b k c d -> c b k d")
        values = einops.einsum(at, directions, "c b k d, b k d -> c") / task.answers.numel()
        rows += [{"kind": kind, "component": label, "value": float(v)} for label, v in zip(labels, values)]
    return rows


def patching(model, task: Task, clean_logits, cache, resid: bool, min_gap: float) -> tuple[list[dict], list[dict]]:
    """Per corruption: head-output patching (layer, head) on the all-answers metric, and, when `resid`,
    residual-stream patching (layer, position) on the single-answer metric, each normalised (clean 1,
    corrupted 0; NaN, not patched, when clean and corrupted differ by less than `min_gap`). Also the
    clean and corrupted metrics, both ways."""
    import transformer_lens.patching as tl_patching

    kinds = {"head_out": (tl_patching.get_act_patch_attn_head_out_all_pos, model.cfg.n_heads, task)}
    if resid:
        kinds["resid_pre"] = (tl_patching.get_act_patch_resid_pre, task.clean.shape[1], task.single())
    rows, metrics = [], []
    for corruption, tokens in task.corrupted.items():
        corrupted_logits = model(tokens)
        for answers, metric_task in (("all", task), ("last", task.single())):
            metrics.append({"corruption": corruption, "answers": answers,
                            "clean": logit_difference(clean_logits, metric_task).item(),
                            "corrupted": logit_difference(corrupted_logits, metric_task).item()})
        for kind, (patch, width, metric_task) in kinds.items():
            clean = logit_difference(clean_logits, metric_task).item()
            corrupted = logit_difference(corrupted_logits, metric_task).item()

            def metric(logits, metric_task=metric_task, clean=clean, corrupted=corrupted):
                return (logit_difference(logits, metric_task) - corrupted) / (clean - corrupted)

            values = (patch(model, tokens, cache, metric).numpy() if abs(clean - corrupted) >= min_gap
                      else np.full((model.cfg.n_layers, width), np.nan))  # the ratio is undefined: not patched
            rows += [{"corruption": corruption, "activation": kind, "layer": layer, "index": index,
                      "value": float(value), "clean_logit_diff": clean, "corrupted_logit_diff": corrupted}
                     for (layer, index), value in np.ndenumerate(values)]
    return rows, metrics


def top_heads(attribution_rows: list[dict], n: int) -> list[tuple[int, int]]:
    """The n heads with the largest |direct logit attribution|, as (layer, head)."""
    heads = sorted((r for r in attribution_rows if r["kind"] == "head"), key=lambda r: -abs(r["value"]))[:n]
    return [(int(r["component"][1:].split("H")[0]), int(r["component"].split("H")[1])) for r in heads]


def attention_rows(cache, heads: list[tuple[int, int]], task: Task) -> list[dict]:
    """The attention pattern of each head on the first clean prompt (its unpadded length)."""
    length = int(task.lengths[0])
    return [{"layer": layer, "head": head, "query": q, "key": k, "key_token_id": int(task.clean[0, k]),
             "value": float(cache["pattern", layer][0, head, q, k])}
            for layer, head in heads for q in range(length) for k in range(q + 1)]


def task_tables(model, task: Task, resid: bool, min_gap: float, attention_heads: int = 0) -> dict[str, list[dict]]:
    """One task at one checkpoint: patching, the task metrics, logit attribution and, when attention_heads > 0,
    the attention patterns of that many top heads. One clean forward, caching only the hooks these read."""
    wanted = hooks.names_filter(model.cfg.n_layers, hooks.TASKS + (hooks.HEAD_SCORES if attention_heads else ()),
                                hooks.FINAL_SCALE)
    clean_logits, cache = model.run_with_cache(task.clean, names_filter=wanted)
    patch_rows, metrics = patching(model, task, clean_logits, cache, resid, min_gap)
    dla = attribution(model, task, cache)
    attention = attention_rows(cache, top_heads(dla, attention_heads), task) if attention_heads else []
    return {"patching": patch_rows, "task_metrics": metrics, "logit_attribution": dla, "task_attention": attention}


# --- the registry ---------------------------------------------------------------------------------------

def random_parts(vocab: torch.Tensor, bos_id: int, batch: int, seq_len: int, seed: int) -> dict[str, torch.Tensor]:
    """Random sequences A, B, C (batch, seq_len) over `vocab`, with a BOS column under key 'BOS'."""
    generator = torch.Generator().manual_seed(seed)
    parts = vocab[torch.randint(0, len(vocab), (3, batch, seq_len), generator=generator)]
    return {"A": parts[0], "B": parts[1], "C": parts[2], "BOS": torch.full((batch, 1), bos_id)}


def induction(task_cfg, context: TaskContext, seed: int) -> Task:
    """Seed 004's repeated-token task: clean [BOS, A, A]; corruption 'XY' is [BOS, X, Y]; the answers are
    A's next tokens at the second copy (logit minus the mean logit, which every corruption shares)."""
    parts = random_parts(context.vocab, context.bos_id, task_cfg.batch, task_cfg.seq_len, seed)
    seq_len = task_cfg.seq_len

    def tokens(pair):
        return torch.cat([parts["BOS"], parts[pair[0]], parts[pair[1]]], dim=1)

    positions = torch.arange(seq_len + 1, 2 * seq_len).expand(task_cfg.batch, -1)
    return Task(tokens("AA"), {pair: tokens(pair) for pair in task_cfg.corruptions}, parts["A"][:, 1:], positions,
                lengths=torch.full((task_cfg.batch,), 2 * seq_len + 1))


def ioi(task_cfg, context: TaskContext, seed: int) -> Task:
    """Indirect-object identification: '{IO}' and '{S}' in each template are filled with two different
    names; the answer is IO, the competitor S; the 'swap' corruption exchanges them. Prompts of different
    token lengths are right-padded (a causal model never reads the padding)."""
    ids = {name: context.encode(" " + name) for name in task_cfg.names}
    for name, tokens in ids.items():
        if len(tokens) != 1:
            raise UserError(f"analysis.tasks.ioi.names: {name!r} is {len(tokens)} tokens (' {name}') for this model's "
                            f"tokenizer, not one; use names that are single tokens with a leading space")
    names = list(task_cfg.names)
    rng = np.random.default_rng(seed)
    clean, swapped, answers, wrong = [], [], [], []
    for i in range(task_cfg.n_prompts):
        template = task_cfg.templates[i % len(task_cfg.templates)]
        io, s = (names[j] for j in rng.choice(len(names), 2, replace=False))

        def fill(first, second, template=template):
            return [context.bos_id] + context.encode(template.replace("{IO}", first).replace("{S}", second))

        clean.append(fill(io, s))
        swapped.append(fill(s, io))
        answers.append(ids[io])
        wrong.append(ids[s])
    lengths = torch.tensor([len(p) for p in clean])
    width = max(max(map(len, clean)), max(map(len, swapped)))
    if width > context.n_ctx:
        raise UserError(f"analysis.tasks.ioi.templates: a filled template is {width} tokens, longer than the model's "
                        f"context ({context.n_ctx}); shorten the templates")

    def padded(prompts):
        return torch.tensor([p + [context.bos_id] * (width - len(p)) for p in prompts])

    return Task(padded(clean), {"swap": padded(swapped)}, torch.tensor(answers), (lengths - 1)[:, None],
                torch.tensor(wrong), lengths)


TASKS = {"induction": induction, "ioi": ioi}


def build_tasks(tasks_cfg, context: TaskContext, seed: int) -> dict[str, Task]:
    """Every configured task (analysis.tasks.names), built; a malformed prompt is a one-line UserError."""
    return {name: TASKS[name](tasks_cfg[name], context, seed) for name in tasks_cfg.names}


def check_tasks(cfg, tokenizer):
    """Build the configured tasks with the model's tokenizer (a `tokenizers.Tokenizer`), so a malformed prompt
    (a name that is not one token, a template too long for the context) is refused in one line when training
    or fetching starts, not after it."""
    context = TaskContext(torch.arange(tokenizer.get_vocab_size()), 0, lambda text: tokenizer.encode(text).ids,
                          cfg.model.n_ctx)
    build_tasks(cfg.analysis.tasks, context, cfg.seed)
