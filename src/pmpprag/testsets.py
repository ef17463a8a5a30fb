"""Test-set readers: one schema (``TestItem``) from JSONL, the course's plain-text format, or CSV.

JSONL fields: ``id, chapter, type (mcq|open), question, choices, answer, key_points, difficulty``.
The course's text format::

    一、基础题（12道，概念）
    （1. 问题：什么是线程束？
    答案：线程束是……
    (answers may span lines, hold code and blank lines)

CSV: a header with ``question`` and ``answer`` columns (others optional). A malformed file fails
with its line number and what is wrong.

Layer 1: eval reads test sets to score them, and qagen reads them to hold them out of training
data (:class:`HeldOut`), so neither imports the other.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from pmpprag.errors import PmppragError
from pmpprag.text import char_ngrams

__all__ = ["HELD_OUT_SETS", "HeldOut", "TestItem", "TestSetError", "read_testset"]

# The sets no training pair may repeat (qagen and RAFT both check them): the team's held-out
# samples and its development sets.
HELD_OUT_SETS = (
    Path("eval/sample_en.jsonl"),
    Path("eval/sample_zh.txt"),
    Path("data/dev/mcq_dev.jsonl"),
    Path("data/dev/open_zh_dev.jsonl"),
    Path("data/dev/open_en_dev.jsonl"),
    Path("data/dev/code_zh_dev.jsonl"),
    Path("data/dev/code_en_dev.jsonl"),
)


class TestSetError(PmppragError, ValueError):
    """A test-set file is malformed; the message names the file and line."""

    __test__ = False  # not a pytest test class


class TestItem(BaseModel):
    __test__ = False  # not a pytest test class

    id: str
    question: str
    answer: str
    type: Literal["mcq", "open"] = "open"
    choices: list[str] = Field(default_factory=list)
    key_points: list[str] = Field(default_factory=list)
    chapter: int | None = None
    difficulty: str | None = None
    section: str | None = None  # the course format's section header, e.g. "二、适中题"


def _text(path: Path) -> str:
    """The file as UTF-8; another encoding is an error naming the line of the first bad byte."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        lineno = data[: err.start].count(b"\n") + 1
        raise TestSetError(
            f"{path}:{lineno}: not UTF-8 (byte {data[err.start]:#04x}); save the file as UTF-8"
        ) from err


def _jsonl(path: Path) -> list[TestItem]:
    items = []
    for lineno, line in enumerate(_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = TestItem.model_validate(json.loads(line))
        except json.JSONDecodeError as err:
            raise TestSetError(f"{path}:{lineno}: not JSON ({err.msg})") from err
        except ValidationError as err:
            raise TestSetError(
                f"{path}:{lineno}: {err.errors()[0]['loc']}: {err.errors()[0]['msg']}"
            ) from err
        if item.type == "mcq":
            if len(item.choices) < 2:
                raise TestSetError(f"{path}:{lineno}: mcq item {item.id} needs at least 2 choices")
            if not re.fullmatch(r"[A-H]", item.answer) or ord(item.answer) - 65 >= len(
                item.choices
            ):
                raise TestSetError(
                    f"{path}:{lineno}: mcq answer must be a choice letter, got {item.answer!r}"
                )
        items.append(item)
    return items


_ITEM = re.compile(r"^[（(]\s*(\d+)\s*[.．、]\s*问题[：:]\s*(.*)$")
_ANSWER = re.compile(r"^答案[：:]\s*(.*)$")
_SECTION = re.compile(r"^[一二三四五六七八九十]+、.+$")


def _course_text(path: Path) -> list[TestItem]:
    items: list[TestItem] = []
    section: str | None = None
    current: dict | None = None
    lines = _text(path).splitlines()

    def close(lineno: int) -> None:
        if current is None:
            return
        if current["answer"] is None:
            raise TestSetError(
                f"{path}:{current['line']}: item {current['id']} has 问题 but no 答案 line"
            )
        answer = "\n".join(current["answer"]).strip()
        items.append(
            TestItem(
                id=current["id"],
                question=current["question"].strip(),
                answer=answer,
                section=section,
            )
        )

    for lineno, line in enumerate(lines, 1):
        stripped = line.strip()
        item = _ITEM.match(stripped)
        if item:
            close(lineno)
            current = {
                "id": f"zh-{int(item.group(1)):03d}",
                "question": item.group(2),
                "answer": None,
                "line": lineno,
            }
            continue
        if _SECTION.match(stripped) and (current is None or current["answer"] is not None):
            close(lineno)
            current = None
            section = stripped
            continue
        if current is None:
            if stripped:
                raise TestSetError(
                    f"{path}:{lineno}: expected an item like '（1. 问题：...' or a section header"
                )
            continue
        answer = _ANSWER.match(stripped)
        if answer and current["answer"] is None:
            current["answer"] = [answer.group(1)]
        elif current["answer"] is None:
            current["question"] += "\n" + line  # a question spanning lines
        else:
            current["answer"].append(line)
    close(len(lines))
    if not items:
        raise TestSetError(f"{path}: no items found (expected '（1. 问题：...' lines)")
    return items


def _csv(path: Path) -> list[TestItem]:
    text = _text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    if not reader.fieldnames or not {"question", "answer"} <= set(reader.fieldnames):
        raise TestSetError(f"{path}:1: the header needs 'question' and 'answer' columns")
    items = []
    try:
        for row in reader:
            lineno = reader.line_num
            if None in row or None in row.values():
                raise TestSetError(
                    f"{path}:{lineno}: {len(reader.fieldnames)} columns expected; "
                    "is a quote left open or a comma unquoted?"
                )
            if not (row.get("question") or "").strip():
                raise TestSetError(f"{path}:{lineno}: empty question")
            items.append(
                TestItem(
                    id=row.get("id") or f"csv-{lineno}",
                    question=row["question"],
                    answer=row["answer"] or "",
                )
            )
    except csv.Error as err:
        raise TestSetError(f"{path}:{reader.line_num}: {err}") from err
    if text.count('"') % 2:  # a quote never closed swallows the rest of the file into one field
        raise TestSetError(
            f"{path}: an odd number of '\"' characters: a quoted field is not closed"
        )
    return items


def read_testset(path: str | Path) -> list[TestItem]:
    """Read a test set by extension: .jsonl, .txt (course format), .csv."""
    path = Path(path)
    if not path.is_file():
        raise TestSetError(f"{path} does not exist")
    readers = {".jsonl": _jsonl, ".txt": _course_text, ".csv": _csv}
    suffix = path.suffix.lower()  # QUESTIONS.TXT is a .txt file too
    if suffix not in readers:
        raise TestSetError(
            f"{path}: unknown test-set format {path.suffix!r}; use .jsonl, .txt or .csv"
        )
    items = readers[suffix](path)
    if not items:
        raise TestSetError(f"{path}: the test set holds no items")
    ids = [i.id for i in items]
    if len(set(ids)) != len(ids):
        raise TestSetError(f"{path}: duplicate item ids")
    return items


@dataclass
class HeldOut:
    """Held-out test items' question n-grams, computed once, to check training pairs against."""

    grams: list[tuple[str, set[str]]]  # (item id, its question's n-grams)
    n: int = 20
    threshold: float = 0.5

    @classmethod
    def of(cls, items: list[TestItem], n: int = 20, threshold: float = 0.5) -> HeldOut:
        grams = [(item.id, g) for item in items if (g := char_ngrams(item.question, n))]
        return cls(grams, n, threshold)

    def match(self, question: str, answer: str) -> str | None:
        """The id of a held-out item that a QA pair repeats, or None.

        A pair repeats an item when the pair's question and answer hold ``threshold`` of the
        item's question n-grams, or when the pair's question is ``threshold`` made of the item's.
        """
        own = char_ngrams(question, self.n)
        if not own:
            return None
        pair = own | char_ngrams(answer, self.n)
        for item_id, theirs in self.grams:
            if (
                len(theirs & pair) / len(theirs) >= self.threshold
                or len(own & theirs) / len(own) >= self.threshold
            ):
                return item_id
        return None
