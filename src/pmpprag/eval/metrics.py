"""Answer metrics: the course's ROUGE-L, a CJK-aware variant, ROUGE-L F1, key-point coverage, speed.

The course metric, reproduced exactly: both texts are cut with ``jieba.lcut``, joined with
spaces, and scored with the ``rouge-score`` package's RougeL F-measure under its *default*
tokenizer; an empty answer scores 0; the run's score is the mean over items.

What that default tokenizer does to Chinese: it lower-cases the text and replaces every character
outside ``[a-z0-9]`` with a space, so **every CJK word is deleted** before the LCS is taken. The
course metric therefore compares only the Latin words and numbers of the two texts (identifiers
such as ``__syncthreads`` -> ``syncthreads``, ``cudamemcpy``, ``warp``, ``32``); a reference with
no Latin token scores 0 for every answer. ``cjk_rouge_l`` is the variant that keeps the Chinese
words: the same jieba words (lower-cased, punctuation and spaces dropped) under the same LCS
F-measure. Reports show both.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pmpprag.index.lexical import STOPWORDS, tokenize

__all__ = [
    "KeyPointResult",
    "cjk_rouge_l",
    "course_rouge_l",
    "keypoint_coverage",
    "percentile",
    "repeated_ngram_share",
    "rouge_l",
]


@functools.cache
def _jieba() -> Any:
    """The global ``jieba`` with its default dictionary, as the course uses it (the retriever's
    glossary-extended tokenizer is a separate instance, ``index.lexical._jieba``)."""
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


@functools.cache
def _scorer(kind: str) -> Any:
    from rouge_score import rouge_scorer

    if kind == "course":  # the package's defaults, as the course uses them
        return rouge_scorer.RougeScorer(["rougeL"])
    if kind == "english":
        return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=_CjkTokenizer())


class _CjkTokenizer:
    """jieba words, lower-cased; spaces and punctuation dropped; CJK words kept."""

    def tokenize(self, text: str) -> list[str]:
        return [
            w.lower()
            for w in _jieba().lcut(text)
            if w.strip() and not all(unicodedata.category(c)[0] in "PSZ" for c in w)
        ]


def course_rouge_l(answer: str, reference: str) -> float:
    """The course metric for one item (see the module docstring)."""
    if not answer.strip() or not reference.strip():
        return 0.0
    joined_answer = " ".join(_jieba().lcut(answer))
    joined_reference = " ".join(_jieba().lcut(reference))
    return float(_scorer("course").score(joined_reference, joined_answer)["rougeL"].fmeasure)


def cjk_rouge_l(answer: str, reference: str) -> float:
    """ROUGE-L F over jieba words with the Chinese words kept."""
    if not answer.strip() or not reference.strip():
        return 0.0
    return float(_scorer("cjk").score(reference, answer)["rougeL"].fmeasure)


def rouge_l(answer: str, reference: str) -> float:
    """ROUGE-L F1 for English text (rouge-score tokenizer with Porter stemming)."""
    if not answer.strip() or not reference.strip():
        return 0.0
    return float(_scorer("english").score(reference, answer)["rougeL"].fmeasure)


@dataclass
class KeyPointResult:
    coverage: float  # matched / key points
    matched: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    how: dict[str, str] = field(default_factory=dict)  # key point -> "lexical" | "embedding"


_SENTENCE = re.compile(r"(?<=[.!?。！？；;])\s*|\n+")


def keypoint_coverage(
    answer: str,
    key_points: list[str],
    embedder: Any = None,
    *,
    lexical_threshold: float = 0.6,
    embedding_threshold: float = 0.5,
) -> KeyPointResult:
    """Which key points an answer contains in substance.

    A key point counts as matched when at least ``lexical_threshold`` of its content words
    (CUDA identifiers kept whole, light plural stripping) occur in the answer, or, with an
    ``embedder``, when its cosine similarity to some answer sentence (or pair of adjacent
    sentences) reaches ``embedding_threshold``. Calibrated with MiniLM on the English sample set:
    at 0.5, 66% of key points match a sentence of their own reference answer by similarity alone,
    1% match the reference answer of an item from another chapter.
    """
    if not key_points:
        return KeyPointResult(coverage=float("nan"))
    answer_tokens = set(tokenize(answer))
    result = KeyPointResult(coverage=0.0)
    unmatched = []
    for point in key_points:
        words = {t for t in tokenize(point) if t not in STOPWORDS}
        if words and len(words & answer_tokens) / len(words) >= lexical_threshold:
            result.matched.append(point)
            result.how[point] = "lexical"
        else:
            unmatched.append(point)
    sentences = [s.strip() for s in _SENTENCE.split(answer) if s and s.strip()]
    if unmatched and embedder is not None and sentences:
        windows = sentences + [f"{a} {b}" for a, b in itertools.pairwise(sentences)]
        vectors = embedder.encode(
            unmatched + windows, normalize_embeddings=True, show_progress_bar=False
        )
        similarity = np.asarray(vectors[: len(unmatched)]) @ np.asarray(vectors[len(unmatched) :]).T
        for point, row in zip(unmatched, similarity, strict=True):
            if float(row.max()) >= embedding_threshold:
                result.matched.append(point)
                result.how[point] = "embedding"
    result.missed = [p for p in key_points if p not in result.how]
    result.coverage = len(result.matched) / len(key_points)
    return result


def repeated_ngram_share(answer: str, n: int = 4) -> float:
    """Share of an answer's character n-grams (spaces dropped) that occur earlier in it: 0 for
    text that never repeats itself, near 1 for a loop ("主机和设备；主机和设备；...")."""
    text = re.sub(r"\s+", "", answer)
    grams = [text[i : i + n] for i in range(len(text) - n + 1)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 4) if values else float("nan")
