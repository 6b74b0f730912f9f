"""Data sources, tokenizer and token cache."""

import json

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from pipeline.io import UserError
from pipeline.kinds.language.data import DATA_SOURCES, EOT, build_corpus, eval_windows, load_documents


def test_stdlib_source_is_sorted_and_skips_test_folders():
    docs = DATA_SOURCES["stdlib"](OmegaConf.create({"exclude_dirs": ["test", "tests", "idlelib"]}))
    names = [name for name, _ in docs]
    assert names == sorted(names) and len(names) > 300
    assert not any(part in ("test", "tests", "idlelib") for n in names for part in n.split("/")[:-1])
    assert "argparse.py" in names


@pytest.fixture
def mixed_corpus(tmp_path):
    (tmp_path / "a.txt").write_text("alpha beta gamma " * 50)
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps({"body": f"row {i} delta epsilon"}) for i in range(5)))
    pd.DataFrame({"body": ["zeta eta theta", "iota kappa"]}).to_parquet(tmp_path / "c.parquet")
    return tmp_path


def files_cfg(tmp_path, column="body", paths=("*.txt", "*.jsonl", "*.parquet")):
    return OmegaConf.create({"source": "files", "paths": [str(tmp_path / p) for p in paths],
                             "text_column": column, "max_documents": None})


def test_files_source_reads_txt_jsonl_parquet_in_sorted_order(mixed_corpus):
    docs = load_documents(files_cfg(mixed_corpus))
    assert len(docs) == 1 + 5 + 2
    assert [n.split("#")[0].rsplit("/", 1)[-1] for n, _ in docs] == ["a.txt"] + ["b.jsonl"] * 5 + ["c.parquet"] * 2
    assert docs[-1][1] == "iota kappa"


def test_corpus_build_is_deterministic_with_a_tail_eval_split(mixed_corpus):
    docs = load_documents(files_cfg(mixed_corpus))
    data_cfg = OmegaConf.create({"vocab_size": 300, "eval_fraction": 0.25})
    tok1, splits1, manifest1 = build_corpus(docs, "bpe", data_cfg)
    tok2, splits2, manifest2 = build_corpus(docs, "bpe", data_cfg)
    assert manifest1 == manifest2 and tok1.to_str() == tok2.to_str()
    assert all(np.array_equal(splits1[k], splits2[k]) for k in splits1)
    train, eval_ = splits1["train"], splits1["eval"]
    assert train.dtype == np.uint16
    assert eval_.size == round(0.25 * (train.size + eval_.size))
    assert manifest1["n_tokens"] == {"train": train.size, "eval": eval_.size}
    assert (np.concatenate([train, eval_]) == manifest1["eot_id"]).sum() == len(docs)  # one EOT per document
    assert tok1.token_to_id(EOT) == manifest1["eot_id"]
    assert tok1.decode(train[:5].tolist()).startswith("alpha")


def test_eval_windows_are_disjoint_and_refuse_too_many():
    tokens = np.arange(1000, dtype=np.uint16)
    windows = eval_windows(tokens, n=4, n_ctx=100)
    assert windows.shape == (4, 100) and windows[0, 0] == 0 and windows[-1, -1] == 999
    assert len(set(windows.flatten().tolist())) == 400
    with pytest.raises(UserError, match="analysis.eval.n_sequences"):
        eval_windows(tokens, n=11, n_ctx=100)


def test_short_documents_are_dropped(mixed_corpus):
    docs = load_documents(files_cfg(mixed_corpus))
    data_cfg = OmegaConf.create({"vocab_size": 300, "eval_fraction": 0.25, "min_document_tokens": 8})
    _, splits, manifest = build_corpus(docs, "bpe", data_cfg)
    assert 0 < manifest["n_documents"] < len(docs)
    with pytest.raises(UserError, match="min_document_tokens"):
        build_corpus(docs, "bpe", OmegaConf.merge(data_cfg, {"min_document_tokens": 10**6}))


MALFORMED = {  # file name, bytes, what the one-line error must say
    "invalid JSON line": ("bad.jsonl", b'{"text": "ok"}\n{"text": "cut\n', ["bad.jsonl:2: invalid JSON"]),
    "record not an object": ("list.jsonl", b'{"text": "ok"}\n["text"]\n', ["list.jsonl:2", "JSON object"]),
    "missing text field": ("rows.jsonl", b'{"text": "ok"}\n{"body": "x"}\n', ["rows.jsonl:2 has no 'text' field",
                                                                             "data.text_column", "body"]),
    "non-string text": ("num.jsonl", b'{"text": "ok"}\n\n{"text": 7}\n', ["num.jsonl:3: field 'text' is int"]),
    "null text": ("null.jsonl", b'{"text": null}\n', ["null.jsonl:1: field 'text' is NoneType"]),
    "undecodable txt": ("latin.txt", "caf\u00e9\n".encode("latin-1"), ["latin.txt:1: byte 0xe9 is not UTF-8"]),
    "undecodable jsonl": ("latin.jsonl", b'{"text": "a"}\n{"text": "caf\xe9"}\n', ["latin.jsonl:2: byte 0xe9"]),
    "not parquet": ("fake.parquet", b"PAR1 this is not parquet", ["fake.parquet is not a readable parquet"]),
    "blank corpus": ("blank.txt", b"  \n\t\n", ["corpus is empty", "1 document(s)"]),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_corpus_files_are_refused_in_one_line_naming_file_and_line(tmp_path, case):
    name, content, phrases = MALFORMED[case]
    (tmp_path / name).write_bytes(content)
    with pytest.raises(UserError) as err:
        load_documents(files_cfg(tmp_path, column="text", paths=(name,)))
    message = str(err.value)
    assert "\n" not in message and all(p in message for p in phrases), message


def test_parquet_without_the_column_or_with_a_null_row_is_refused(tmp_path):
    pd.DataFrame({"body": ["a"]}).to_parquet(tmp_path / "a.parquet")
    with pytest.raises(UserError, match=r"a.parquet has no 'text' column; set data.text_column to one of \['body'\]"):
        load_documents(files_cfg(tmp_path, column="text", paths=("a.parquet",)))
    pd.DataFrame({"text": ["a", None, "c"]}).to_parquet(tmp_path / "b.parquet")
    with pytest.raises(UserError, match=r"b.parquet row 1: field 'text' is NoneType"):
        load_documents(files_cfg(tmp_path, column="text", paths=("b.parquet",)))


def test_a_directory_in_data_paths_is_refused_with_a_glob_to_use(tmp_path):
    (tmp_path / "corpus").mkdir()
    with pytest.raises(UserError, match=r"matched the directory .*corpus; match its files instead"):
        load_documents(files_cfg(tmp_path, column="text", paths=("corpus",)))
