"""Overlap between a test set and what a model may have seen: the corpus and QA training data.

    pmpprag eval overlap --testset eval/sample_zh.txt [--train data/qa/train.jsonl ...]

Texts are normalised (lower case, no spaces or punctuation) and cut into character n-grams, which
works the same for Chinese and English. For each test question (and its reference answer) the
report gives the share of its n-grams found in the corpus and in each training file; an item at or
above ``threshold`` is listed as an overlap. Reference answers are expected to share facts with
the corpus, so only their verbatim copying (long n-grams) is flagged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pmpprag.config import option
from pmpprag.schema import atomic_write
from pmpprag.testsets import TestItem, read_testset
from pmpprag.text import char_ngrams

__all__ = [
    "CORPUS",
    "OverlapConfig",
    "overlap_markdown",
    "overlap_report",
    "run",
]

CORPUS = Path("data/corpus")  # the shipped companion notes, relative to the project root


@dataclass
class OverlapConfig:
    testset: Path = option(Path("eval/sample_en.jsonl"), "test set (.jsonl, .txt, .csv)")
    corpus: Path = option(CORPUS, "companion corpus folder (*.md)")
    train: list[Path] = field(
        default_factory=list,
        metadata={"help": "QA training files (JSONL with instruction/output or question/answer)"},
    )
    n: int = option(20, "characters per n-gram (20: a clause, not a shared term)")
    threshold: float = option(0.5, "share of an item's n-grams that counts as overlap")
    out: Path = option(Path("out/eval/overlap"), "where overlap.json goes")


def _share(text: str, index: set[str], n: int) -> float:
    grams = char_ngrams(text, n)
    return len(grams & index) / len(grams) if grams else 0.0


def _training_texts(path: Path) -> Iterable[str]:
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{lineno}: not JSON ({err.msg})") from err
        for key in ("instruction", "input", "question", "output", "answer", "prompt"):
            value = record.get(key)
            if isinstance(value, str) and value:
                yield value


def overlap_report(
    items: list[TestItem], corpus: Path | None, train: list[Path], n: int = 20,
    threshold: float = 0.5,
) -> dict[str, Any]:  # fmt: skip
    """Per-source overlap of test questions and answers; ``overlaps`` lists flagged items."""
    sources: dict[str, set[str]] = {}
    if corpus is not None and Path(corpus).is_dir():
        grams: set[str] = set()
        for md in sorted(Path(corpus).glob("*.md")):
            grams |= char_ngrams(
                re.sub(r"```.*?```", " ", md.read_text(encoding="utf-8"), flags=re.S), n
            )
        sources["corpus"] = grams
    for path in train:
        sources[f"train:{path}"] = set().union(*(char_ngrams(t, n) for t in _training_texts(path)))
    report: dict[str, Any] = {"n": n, "threshold": threshold, "items": len(items), "sources": {}}
    flagged = []
    for name, index in sources.items():
        questions = [_share(i.question, index, n) for i in items]
        answers = [_share(i.answer, index, n) for i in items]
        report["sources"][name] = {
            "max_question_share": round(max(questions, default=0.0), 3),
            "mean_question_share": round(sum(questions) / max(1, len(questions)), 3),
            "max_answer_share": round(max(answers, default=0.0), 3),
        }
        for item, q, a in zip(items, questions, answers, strict=True):
            if q >= threshold or a >= threshold:
                flagged.append({"id": item.id, "source": name, "question_share": round(q, 3),
                                "answer_share": round(a, 3)})  # fmt: skip
    report["overlaps"] = flagged
    return report


def run(cfg: OverlapConfig) -> dict[str, Any]:
    report = overlap_report(read_testset(cfg.testset), cfg.corpus, cfg.train, cfg.n, cfg.threshold)
    report["testset"] = str(cfg.testset)
    with atomic_write(Path(cfg.out) / "overlap.json") as fh:
        json.dump(report, fh, indent=1, ensure_ascii=False)
    print(overlap_markdown(report))
    return report


def overlap_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"| source | max question share | mean question share | max answer share |  "
        f"({report['n']}-character n-grams)",
        "|---|---|---|---|",
    ]
    for name, s in report["sources"].items():
        lines.append(f"| {name} | {s['max_question_share']} | {s['mean_question_share']} | "
                     f"{s['max_answer_share']} |")  # fmt: skip
    flagged = report["overlaps"]
    lines.append(
        f"\n{len(flagged)} item(s) at or above {report['threshold']:.0%} overlap"
        + (": " + ", ".join(f"{f['id']} ({f['source']})" for f in flagged) if flagged else ".")
    )
    return "\n".join(lines)
