"""Quality checks for QA pairs: each check returns the reason a pair is rejected, or None.

Checks run on team-written and generated pairs alike; the stage counts rejections by reason.
- ``not-self-contained``: the question points at a passage the reader does not have.
- ``language``: a Chinese question without Chinese, a Chinese pair answered in English prose,
  or an English pair written in Chinese.
- ``length``: a question or answer too short to be useful, or an answer too long to train on.
- ``choice-format``: a multiple-choice question without options A-D, or an answer that does
  not start with one of its letters.
- ``judge-format``: a true/false answer that does not start with the verdict.
- ``ungrounded``: a generated English answer that shares few content words with its chunk.
- ``duplicate``: the same question (after normalising), or a near-duplicate: MiniLM cosine for
  English, character-bigram Jaccard for Chinese (MiniLM reads no Chinese).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from pmpprag.schema import QAPair
from pmpprag.text import char_ngrams, has_cjk, normalise

__all__ = ["CHECKS", "bigram_jaccard", "check_pair", "grounding", "near_duplicates"]

# Phrases that only make sense next to the source text.
_DEICTIC = re.compile(
    r"\b(?:according to|based on|in|from|as (?:described|shown|stated) in) "
    r"(?:the|this) (?:passage|text|excerpt|section|paragraph|notes|chapter)\b"
    r"|\bthe (?:above|following) (?:passage|text|section)\b"
    r"|根据(?:上文|本文|该段|这段|原文|文中|以上)|(?:上文|本文|该段落|这段文字|原文)中",
    re.IGNORECASE,
)
_OPTION = re.compile(r"^\s*([A-D])[.、．)]\s*\S", re.MULTILINE)
_VERDICT = re.compile(r"^\s*(?:True|False|正确|错误|对|错)", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?")
_STOP = frozenset(
    "the a an of to in and or is are be by for on with that this it as at from which what "
    "why how when does do each its their there than into can not no so if".split()
)


def _self_contained(pair: QAPair) -> str | None:
    return "not-self-contained" if _DEICTIC.search(pair.question) else None


def _language(pair: QAPair) -> str | None:
    if pair.lang == "zh":
        # a Chinese answer may be a bare calculation ("SNR = 10 log10(10^5) = 50 dB。"),
        # but not English prose
        prose = len(re.findall(r"[A-Za-z]{3,}", pair.answer)) >= 8
        if not has_cjk(pair.question) or (prose and not has_cjk(pair.answer)):
            return "language"
    cjk = sum(1 for ch in pair.question + pair.answer if "\u4e00" <= ch <= "\u9fff")
    if pair.lang == "en" and cjk > 0:
        return "language"
    return None


def _length(pair: QAPair) -> str | None:
    if len(pair.question.strip()) < 8 or len(pair.answer.strip()) < 2:
        return "length"
    return "length" if len(pair.answer) > 1500 else None


def _choice_format(pair: QAPair) -> str | None:
    if pair.kind != "choice":
        return None
    letters = _OPTION.findall(pair.question)
    if letters[:4] != ["A", "B", "C", "D"]:
        return "choice-format"
    return None if re.match(r"^\s*[A-D]\b", pair.answer) else "choice-format"


def _judge_format(pair: QAPair) -> str | None:
    if pair.kind != "judge":
        return None
    return None if _VERDICT.match(pair.answer) else "judge-format"


CHECKS: list[Callable[[QAPair], str | None]] = [
    _self_contained,
    _language,
    _length,
    _choice_format,
    _judge_format,
]


def check_pair(pair: QAPair) -> str | None:
    """The first reason to reject ``pair``, or None when it passes every check."""
    for check in CHECKS:
        reason = check(pair)
        if reason:
            return reason
    return None


def _content_words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text) if w.lower() not in _STOP and len(w) > 1}


def grounding(answer: str, source: str) -> float:
    """Share of the answer's content words (identifiers, numbers, terms) found in the source."""
    words = _content_words(answer)
    if not words:
        return 0.0
    return len(words & _content_words(source)) / len(words)


def bigram_jaccard(texts: list[str]) -> np.ndarray:
    """Pairwise Jaccard similarity of character bigrams (for Chinese, which MiniLM cannot read)."""
    grams = [char_ngrams(text, 2) for text in texts]
    sim = np.zeros((len(texts), len(texts)))
    for i, a in enumerate(grams):
        for j in range(i + 1, len(grams)):
            union = len(a | grams[j])
            sim[i, j] = sim[j, i] = len(a & grams[j]) / union if union else 1.0
    return sim


def near_duplicates(questions: list[str], similarity: np.ndarray, threshold: float) -> list[int]:
    """Indices of questions that repeat an earlier kept one (same text, or similarity >= threshold).

    ``similarity`` is the pairwise matrix of the questions, in the same order.
    """
    seen: set[str] = set()
    dropped: list[int] = []
    kept: list[int] = []
    for i, question in enumerate(questions):
        key = normalise(question)
        if key in seen or (kept and float(np.max(similarity[i, kept])) >= threshold):
            dropped.append(i)
            continue
        seen.add(key)
        kept.append(i)
    return dropped
