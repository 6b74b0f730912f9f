"""Corpus + tokenizer: gather documents from a data source, train a byte-level BPE, tokenize once.

Data sources are a registry: a source is one function `(data_cfg) -> [(name, text), ...]` plus a
conf/data/<name>.yaml whose `source:` names it.
"""

from __future__ import annotations

import glob
import hashlib
import json
import sys
import sysconfig
from pathlib import Path

import numpy as np

from pipeline.cli import cli
from pipeline.io import UserError, atomic_path, run_cli, write_json
from pipeline.kinds.language.hub import hub_tokenizer, not_cached, retried, use_cache
from pipeline.kinds.language.schema import HUB_DATA_SOURCES

EOT = "<|endoftext|>"  # separates documents; also the BOS token of the head-score batches


def stdlib_documents(data_cfg) -> list[tuple[str, str]]:
    """The running interpreter's standard-library .py files (test folders skipped), sorted by path."""
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = set(data_cfg.exclude_dirs)
    paths = sorted(p for p in root.rglob("*.py") if not skip.intersection(p.relative_to(root).parts[:-1]))
    return [(str(p.relative_to(root)), p.read_text(encoding="utf-8", errors="replace")) for p in paths]


def _utf8(path: Path) -> str:
    """A corpus file's text; undecodable bytes are refused with their line, not silently replaced."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: byte {data[err.start]:#04x} is not UTF-8; re-encode the file as UTF-8 "
                        f"(e.g. iconv -t UTF-8) or drop it from data.paths") from None


def _text_field(row, where: str, text_column: str) -> str:
    """The text of one record (a JSON line or a parquet row), refusing a missing or non-string field."""
    if not isinstance(row, dict):
        raise UserError(f"{where}: a record must be a JSON object with a '{text_column}' field, got "
                        f"{type(row).__name__}; fix that line")
    if text_column not in row:
        raise UserError(f"{where} has no '{text_column}' field; set data.text_column to one of {sorted(row)[:10]}")
    if not isinstance(row[text_column], str):
        raise UserError(f"{where}: field '{text_column}' is {type(row[text_column]).__name__}, not text; fix the "
                        f"record or set data.text_column to a text field")
    return row[text_column]


def _jsonl_texts(path: Path, text_column: str) -> list[str]:
    texts = []
    for number, line in enumerate(_utf8(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}:{number}: invalid JSON ({err.msg} at column {err.colno}); fix or remove that "
                            f"line") from None
        texts.append(_text_field(row, f"{path}:{number}", text_column))
    return texts


def _parquet_texts(path: Path, text_column: str) -> list[str]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow's errors for a file that is not parquet, or truncated
        raise UserError(f"{path} is not a readable parquet file ({err.__class__.__name__}); rewrite it or drop "
                        f"it from data.paths") from None
    if text_column not in table.column_names:
        raise UserError(f"{path} has no '{text_column}' column; set data.text_column to one of "
                        f"{table.column_names[:10]}")
    column = table.column(text_column).to_pylist()
    return [_text_field({text_column: value}, f"{path} row {i}", text_column) for i, value in enumerate(column)]


CORPUS_READERS = {".txt": lambda path, _: [_utf8(path)], ".jsonl": _jsonl_texts, ".parquet": _parquet_texts}


def _read_text_file(path: Path, text_column: str) -> list[str]:
    if path.is_dir():
        raise UserError(f"data.paths matched the directory {path}; match its files instead (e.g. {path}/*.jsonl)")
    if path.suffix not in CORPUS_READERS:
        raise UserError(f"corpus file {path} is not .txt, .jsonl or .parquet; convert it or drop it from data.paths")
    try:
        return CORPUS_READERS[path.suffix](path, text_column)
    except OSError as err:
        raise UserError(f"corpus file {path} cannot be read ({err.strerror}); fix its permissions or drop it from "
                        f"data.paths") from None


def file_documents(data_cfg) -> list[tuple[str, str]]:
    """Documents from the user's .txt / .jsonl / .parquet files (paths or globs), in sorted order."""
    paths = sorted({Path(p) for pattern in data_cfg.paths for p in glob.glob(str(pattern), recursive=True)})
    if not paths:
        raise UserError(f"data.paths {list(data_cfg.paths)} matched no files; "
                        "point data.paths at existing .txt/.jsonl/.parquet files")
    return [(f"{p}#{i}", text) for p in paths for i, text in enumerate(_read_text_file(p, data_cfg.text_column))]


def pile_documents(data_cfg) -> list[tuple[str, str]]:
    """Rows of a hub dataset (default NeelNanda/pile-10k): its parquet files fetched into the HF cache,
    read with `datasets`, in dataset order (load_documents keeps the first `max_documents`)."""
    from huggingface_hub import snapshot_download

    try:
        root = Path(retried(lambda: snapshot_download(data_cfg.dataset, repo_type="dataset",
                                                      allow_patterns=["*.parquet"])))
    except Exception:  # not cached and offline, or unreachable
        raise not_cached(f"dataset {data_cfg.dataset}") from None
    files = sorted(str(p) for p in root.rglob("*.parquet") if p.name.startswith(f"{data_cfg.split}-"))
    if not files:
        raise UserError(f"dataset {data_cfg.dataset} has no '{data_cfg.split}-*.parquet' files; fix data.split")
    import datasets

    rows = datasets.load_dataset("parquet", data_files=files, split="train")
    if data_cfg.text_column not in rows.column_names:
        raise UserError(f"dataset {data_cfg.dataset} has no '{data_cfg.text_column}' column; set data.text_column "
                        f"to one of {rows.column_names}")
    return [(f"{data_cfg.dataset}#{i}", text) for i, text in enumerate(rows[data_cfg.text_column])]


DATA_SOURCES = {"stdlib": stdlib_documents, "files": file_documents, "pile": pile_documents}


def load_documents(data_cfg) -> list[tuple[str, str]]:
    """Documents of the configured source, truncated to `max_documents`; refuses an empty corpus."""
    read = DATA_SOURCES[data_cfg.source](data_cfg)
    docs = [(name, text) for name, text in read[: data_cfg.max_documents or None] if text.strip()]
    if not docs:
        kept = f" of the first data.max_documents={data_cfg.max_documents}" if data_cfg.max_documents else ""
        raise UserError(f"the '{data_cfg.source}' corpus is empty: none{kept} of its {len(read)} document(s) has "
                        f"text; give it files with text (data.paths)")
    return docs


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer with `vocab_size` entries, the end-of-text token included."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def tokenize(tokenizer, texts: list[str]) -> list[np.ndarray]:
    """Each text as uint16 ids followed by the end-of-text token."""
    eot = tokenizer.token_to_id(EOT)
    if eot is None:
        raise UserError(f"the tokenizer has no {EOT} token to separate documents; use a GPT-2/NeoX-style tokenizer")
    return [np.array(e.ids + [eot], dtype=np.uint16) for e in tokenizer.encode_batch(texts)]


def build_corpus(docs: list[tuple[str, str]], tokenizer_name: str, data_cfg):
    """Tokenizer, train and eval token streams, and a manifest, from the documents.

    `tokenizer_name` is 'bpe' (train a byte-level BPE of data.vocab_size on the documents) or a hub
    tokenizer (a hub model's own). Documents shorter than data.min_document_tokens are dropped. The eval
    split is the last `eval_fraction` of the token stream: deterministic, and it works for a corpus of
    any number of documents (one long .txt file included).
    """
    texts = [text for _, text in docs]
    if tokenizer_name == "bpe":
        tokenizer = train_tokenizer(texts, data_cfg.vocab_size)
    else:
        tokenizer = hub_tokenizer(tokenizer_name)
        if tokenizer.get_vocab_size() > 2**16:
            raise UserError(f"tokenizer {tokenizer_name} has {tokenizer.get_vocab_size()} tokens, more than uint16 "
                            f"token ids hold")
    ids = tokenize(tokenizer, texts)
    keep = [i for i, doc in enumerate(ids) if doc.size >= (data_cfg.get("min_document_tokens") or 0)]
    if not keep:
        raise UserError(f"no document has data.min_document_tokens={data_cfg.min_document_tokens} tokens; "
                        f"lower it or raise data.max_documents")
    docs, tokens = [docs[i] for i in keep], np.concatenate([ids[i] for i in keep])
    n_eval = int(round(tokens.size * data_cfg.eval_fraction))
    splits = {"train": tokens[: tokens.size - n_eval], "eval": tokens[tokens.size - n_eval:]}
    assembled = hashlib.sha256("\0".join(f"{n}\0{t}" for n, t in docs).encode()).hexdigest()
    manifest = {
        "n_documents": len(docs),
        "documents": [name for name, _ in docs],
        "text_sha256": assembled,
        "tokenizer": tokenizer_name,
        "n_tokens": {k: int(v.size) for k, v in splits.items()},
        "vocab_size": tokenizer.get_vocab_size(),
        "eot_id": tokenizer.token_to_id(EOT),
        "python": sys.version.split()[0],
    }
    return tokenizer, splits, manifest


def load_split(data_dir: Path, split: str) -> np.ndarray:
    """A cached token split (memory-mapped uint16)."""
    return np.load(Path(data_dir) / f"{split}.npy", mmap_mode="r")


def sample_windows(tokens: np.ndarray, n: int, n_ctx: int, generator):
    """`n` windows of `n_ctx` tokens at random offsets drawn from `generator`: (n, n_ctx) int64 tensor."""
    import torch

    starts = torch.randint(0, tokens.size - n_ctx, (n,), generator=generator).numpy()
    return torch.from_numpy(np.stack([tokens[s:s + n_ctx] for s in starts]).astype(np.int64))


def eval_windows(tokens: np.ndarray, n: int, n_ctx: int):
    """`n` disjoint, evenly spaced windows of `n_ctx` tokens: the fixed eval sample, (n, n_ctx) int64."""
    import torch

    if tokens.size < n * n_ctx:
        raise UserError(f"the eval split has {tokens.size} tokens, fewer than analysis.eval.n_sequences={n} "
                        f"disjoint {n_ctx}-token sequences; lower analysis.eval.n_sequences or raise "
                        f"data.eval_fraction")
    starts = np.linspace(0, tokens.size - n_ctx, n).astype(np.int64)
    return torch.from_numpy(np.stack([tokens[s:s + n_ctx] for s in starts]).astype(np.int64))


def require_tokens(tokens: np.ndarray, n_ctx: int, split: str):
    """Refuse a split that cannot fill one full-context sequence."""
    if tokens.size < n_ctx + 1:
        raise UserError(f"the {split} split has {tokens.size} tokens, fewer than one {n_ctx}-token sequence; "
                        f"add text to the corpus (data.max_documents/data.paths) or lower model.n_ctx")


def main():
    args, cfg = cli("Build the corpus, tokenizer and token cache.", out="data directory to write",
                    tokenizer={"type": str, "default": None, "required": False,
                               "help": "'bpe' (trained on the corpus) or a hub model's tokenizer name "
                                       "(default: the model's model.tokenizer)"})
    data_cfg, tokenizer_name = cfg.data, args.tokenizer or str(cfg.model.tokenizer)
    if data_cfg.source in HUB_DATA_SOURCES or tokenizer_name != "bpe":
        use_cache(cfg.hub_cache)
    tokenizer, splits, manifest = build_corpus(load_documents(data_cfg), tokenizer_name, data_cfg)
    for name, tokens in splits.items():  # refuse before writing anything
        require_tokens(tokens, cfg.model.n_ctx, name)
    with atomic_path(args.out / "tokenizer.json") as tmp:
        tokenizer.save(str(tmp))
    for name, tokens in splits.items():
        with atomic_path(args.out / f"{name}.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, tokens)
    manifest["tokenizer_sha256"] = hashlib.sha256((args.out / "tokenizer.json").read_bytes()).hexdigest()
    write_json(args.out / "manifest.json", manifest)
    print(f"corpus: {manifest['n_documents']} documents, {manifest['n_tokens']} tokens, "
          f"vocab {manifest['vocab_size']} ({tokenizer_name})", file=sys.stderr)


if __name__ == "__main__":
    run_cli(main)
