"""A local Hugging Face cache laid out exactly as huggingface_hub stores downloads, holding what the hub
model source and the pile data source fetch: a tiny randomly initialised NeelNanda-style attn-only
model (config.json + checkpoints/<name>_<label>.pth), a tokenizer repo, and a pile-10k-shaped parquet."""

import json
import os
import sysconfig
from pathlib import Path

import pandas as pd
import torch

from pipeline.kinds.language.data import train_tokenizer
from pipeline.model import hooked_transformer

COMMIT = "0123456789abcdef0123456789abcdef01234567"
MODEL_REPO = "NeelNanda/Attn_Only_2L512W_C4_Code"  # TransformerLens's official name of attn-only-2l
TOKENIZER_REPO = "pipeline-test/tokenizer"
LABELS = [0, 200_000_000, 400_000_000, 800_000_000, 1_600_000_000]  # tokens seen, as NeelNanda labels are
DUPLICATED = LABELS[2]  # this revision serves the final checkpoint's weights (as Pythia's did, issues #205/#206)
N_CTX, VOCAB = 64, 300


def snapshot(hub: Path, repo: str, kind: str = "models") -> Path:
    """The snapshot folder of `repo` at COMMIT, with refs/main pointing at it."""
    root = hub / f"{kind}--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(COMMIT)
    folder = root / "snapshots" / COMMIT
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def stdlib_texts(n: int) -> list[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return [p.read_text(encoding="utf-8", errors="replace") for p in sorted(root.glob("*.py"))[:n]]


def build_cache(home: Path) -> dict:
    """Write the fake cache under `home` (an HF_HOME); returns the checkpoint state dicts by label."""
    hub = home / "hub"
    texts = stdlib_texts(80)
    tokenizer = train_tokenizer(texts, VOCAB)
    tokenizer.save(str(snapshot(hub, TOKENIZER_REPO) / "tokenizer.json"))

    model = snapshot(hub, MODEL_REPO)
    (model / "config.json").write_text(json.dumps({
        "d_model": 32, "n_layers": 2, "d_mlp": -1, "d_head": 8, "n_heads": 4, "n_ctx": N_CTX, "d_vocab": VOCAB,
        "tokenizer_name": TOKENIZER_REPO, "act_fn": None, "attn_only": True, "normalization_type": "LN",
        "shortformer_pos": True}))
    (model / "checkpoints").mkdir(exist_ok=True)
    states = {}
    for i, label in enumerate(LABELS):
        hooked = hooked_transformer(dict(n_layers=2, d_model=32, n_heads=4, d_head=8, n_ctx=N_CTX, d_vocab=VOCAB,
                                         act_fn=None, attn_only=True, normalization_type="LN",
                                         positional_embedding_type="shortformer"),
                                    seed=len(LABELS) - 1 if label == DUPLICATED else i)
        states[label] = hooked.state_dict()
        torch.save(states[label], model / "checkpoints" / f"Attn_Only_2L512W_C4_Code_checkpoint_{label}.pth")

    pile = snapshot(hub, "NeelNanda/pile-10k", kind="datasets") / "data"
    pile.mkdir(exist_ok=True)
    pd.DataFrame({"text": texts, "meta": [{"pile_set_name": "Github"}] * len(texts)}).to_parquet(
        pile / "train-00000-of-00001.parquet")
    return states


def overrides(home: Path, *extra: str) -> list[str]:
    """Hydra overrides running attn_only_2l_hub on data=pile from the fake cache at tiny sizes."""
    return ["+experiment=tiny", "~model.d_model", "model=attn_only_2l_hub", "data=pile", f"hub_cache={home}",
            f"model.tokenizer={TOKENIZER_REPO}", f"model.n_ctx={N_CTX}", "model.icl_late=50",
            "model.hub.checkpoints=[0,2,-1]", "data.min_document_tokens=65",
            "analysis.llc.hub=true", *extra]  # hub models opt in to the LLC (its HookedTransformer path)


OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1"}  # the environment hub tests run their jobs in
PYTHIA_REVISIONS = [0, 512]  # steps; TransformerLens's Pythia labels include both
IOI_NAMES = ["Mary", "John", "Tom", "James"]
TASK_VOCAB = 600  # room for the IOI names and template words to become single tokens


def task_tokenizer():
    """A BPE tokenizer of the stdlib corpus and IOI sentences, in which the IOI names are single tokens."""
    ioi = [f"When {a} and {b} went to the store, {b} gave a drink to {a}." for a in IOI_NAMES for b in IOI_NAMES]
    return train_tokenizer(stdlib_texts(20) + ioi * 40, TASK_VOCAB)


def save_tokenizer(folder: Path):
    task_tokenizer().save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast",
                                                              "eos_token": "<|endoftext|>"}))


def build_pythia(home: Path) -> Path:
    """A tiny GPT-NeoX in the cache as EleutherAI/pythia-70m, its step revisions pointing at one commit;
    returns the snapshot folder (transformers format: config, safetensors weights, tokenizer)."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    folder = snapshot(home / "hub", "EleutherAI/pythia-70m")
    for step in PYTHIA_REVISIONS:
        (folder.parent.parent / "refs" / f"step{step}").write_text(COMMIT)
    config = GPTNeoXConfig(vocab_size=TASK_VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64, max_position_embeddings=N_CTX, rotary_pct=0.25, eos_token_id=0,
                           bos_token_id=0)
    torch.manual_seed(0)
    GPTNeoXForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    save_tokenizer(folder)
    return folder


def build_gpt2(home: Path) -> Path:
    """A tiny random GPT-2 in the cache under the `gpt2` repo name (transformers format: config, safetensors
    weights, tokenizer), whose tokenizer holds the IOI task's names and template words as single tokens;
    returns the snapshot folder."""
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = snapshot(home / "hub", "gpt2")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=TASK_VOCAB, n_positions=N_CTX, n_ctx=N_CTX, n_embd=32, n_layer=2, n_head=4,
                        bos_token_id=0, eos_token_id=0)  # n_ctx: the hub's gpt2 config.json has it too
    GPT2LMHeadModel(config).save_pretrained(folder, safe_serialization=True)
    save_tokenizer(folder)
    return folder


def task_overrides(home: Path, model: str, *extra: str) -> list[str]:
    """Hydra overrides running a hub `model` (gpt2_small, pythia_70m) from the fake cache at tiny sizes, with
    the induction and IOI tasks."""
    return ["+experiment=tiny", "~model.d_model", f"model={model}", "data=pile", f"hub_cache={home}",
            f"model.n_ctx={N_CTX}", "model.icl_late=50", "data.min_document_tokens=65",
            "analysis.tasks.names=[induction,ioi]", f"analysis.tasks.ioi.names=[{','.join(IOI_NAMES)}]",
            "analysis.tasks.ioi.templates=['When {IO} and {S} went to the store, {S} gave a drink to']",
            "analysis.llc.hub=true", *extra]  # hub models opt in to the LLC (its HookedTransformer path)
