"""Bad input through the real CLI (``python -m pmpprag.cli``): each probe exits 2 with one line
on stderr that names the file (and line) and says what to do, and writes nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pmpprag.cli", *args],
        capture_output=True, text=True, cwd=cwd, timeout=600,
    )  # fmt: skip


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [x for x in result.stderr.splitlines() if x.startswith("pmpprag: error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return lines[0]


MANIFESTS = {
    "no-files": lambda m: m.pop("files"),
    "no-dimension": lambda m: m.pop("dimension"),
    "string-dimension": lambda m: m.update(dimension="384"),
    "a-list": None,
}


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_a_broken_index_manifest_is_one_line_naming_it(
    name: str, corpus_index: Path, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    shutil.copytree(corpus_index, index)
    manifest = json.loads((index / "manifest.json").read_text())
    edit = MANIFESTS[name]
    if edit is None:
        manifest = [manifest]
    else:
        edit(manifest)
    (index / "manifest.json").write_text(json.dumps(manifest))
    line = _error_line(cli("ask", "--index", str(index), "What is a warp?", cwd=tmp_path))
    assert "manifest.json" in line and "rebuild" in line


TESTSETS = {
    "empty.jsonl": (b"", r"holds no items"),
    "latin1.jsonl": ('{"id": "1", "question": "caf\u00e9?", "answer": "x"}\n'.encode("latin-1"), r"latin1.jsonl:1: not UTF-8"),
    "open-quote.csv": (b'question,answer\n"what is a warp,32 threads\nnext,row\n', r"open-quote.csv"),
    "bad.jsonl": (b'{"id": "1", "question": "q", "answer": "a"}\n{oops\n', r"bad.jsonl:2: not JSON"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(TESTSETS))
def test_a_broken_test_set_is_one_line_naming_file_and_line(
    name: str, corpus_index: Path, tmp_path: Path
) -> None:
    data, message = TESTSETS[name]
    (tmp_path / name).write_bytes(data)
    out = tmp_path / "out"
    result = cli("eval", "run", "--index", str(corpus_index), "--testset", name,
                 "--out", str(out), cwd=tmp_path)  # fmt: skip
    assert __import__("re").search(message, _error_line(result))
    assert not (out / "metrics.json").exists()  # no NaN report


def test_an_upper_case_txt_test_set_is_read(corpus_index: Path, tmp_path: Path) -> None:
    (tmp_path / "QUESTIONS.TXT").write_text(
        "（1. 问题：什么是线程束？\n答案：32 个线程。\n", "utf-8"
    )
    result = cli("eval", "run", "--index", str(corpus_index), "--testset", "QUESTIONS.TXT",
                 "--out", str(tmp_path / "out"), cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["quality"]["items"] == 1


def test_a_truncated_pdf_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    from pmpprag.ingest.synthetic import make_book

    book = tmp_path / "book.pdf"
    make_book(book, chapters=3, sections=2)
    data = book.read_bytes()
    (tmp_path / "cut.pdf").write_bytes(data[: len(data) // 2])
    line = _error_line(cli("ingest", "--pdf", "cut.pdf", "--out", "out", cwd=tmp_path))
    assert "cut.pdf" in line and "--allow_repaired" in line
    assert not (tmp_path / "out").exists()


def test_a_missing_optional_extra_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    line = _error_line(cli("generate", "--generator.backend", "vllm", "hi", cwd=tmp_path))
    assert "pip install 'pmpprag[gpu]'" in line


def test_every_project_error_is_a_pmpprag_error() -> None:
    from pmpprag.config import ConfigError
    from pmpprag.errors import MissingExtra, PmppragError, missing_extra
    from pmpprag.eval.grade import GradeError
    from pmpprag.index.store import IndexError_
    from pmpprag.ingest.markdown import MarkdownError
    from pmpprag.ingest.pdf import IngestError
    from pmpprag.models import ModelError
    from pmpprag.schema import RecordError
    from pmpprag.testsets import TestSetError
    from pmpprag.train.data import DataError

    for cls in (ConfigError, GradeError, TestSetError, IndexError_, MarkdownError, IngestError,
                ModelError, RecordError, DataError, MissingExtra):  # fmt: skip
        assert issubclass(cls, PmppragError), cls
    message = missing_extra(ModuleNotFoundError("No module named 'ragas'", name="ragas"))
    assert message is not None and "pmpprag[eval]" in message
    assert missing_extra(ModuleNotFoundError("x", name="numpyy")) is None
