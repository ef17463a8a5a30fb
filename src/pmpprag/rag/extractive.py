"""Extractive answers and evidence scoring: no model reasoning, only the textbook's sentences.

A 135M-parameter generator writes fluent, wrong prose; the retrieved passages are right. So the
extractive mode answers with the passages' most relevant sentences (scored by embedding
similarity to the question plus overlap with its terms, de-duplicated, put back in reading
order, each cited). The same sentence scorer ranks multiple-choice options by how strongly the
passages support each one (:func:`support_scores`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from pmpprag.index.lexical import tokenize
from pmpprag.schema import Hit

__all__ = ["Sentence", "select_sentences", "split_sentences", "support_scores"]

_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(`_])")


@dataclass
class Sentence:
    text: str
    passage: int  # 1-based [n] of the passage it comes from
    position: int  # order inside the passage
    score: float = 0.0


def split_sentences(hits: list[Hit]) -> list[Sentence]:
    """Prose sentences of the passages (code listings and very short fragments are skipped)."""
    out: list[Sentence] = []
    for n, hit in enumerate(hits, 1):
        prose = re.sub(r"```.*?```", " ", hit.chunk.text, flags=re.DOTALL)
        position = 0
        for paragraph in prose.split("\n"):
            for sentence in _SPLIT.split(paragraph.strip()):
                sentence = sentence.strip().lstrip("-\u2022 ").strip()
                if len(sentence.split()) >= 5:
                    out.append(Sentence(sentence, n, position))
                    position += 1
    return out


def _overlap(query_tokens: set[str], text: str) -> float:
    if not query_tokens:
        return 0.0
    return len(query_tokens & set(tokenize(text))) / len(query_tokens)


def score_sentences(
    embedder: Any, query: str, sentences: list[Sentence], lexical_weight: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, sentence vectors): cosine(query, sentence) + lexical_weight * share of the
    query's terms found in the sentence."""
    vectors = embedder.encode(
        [query] + [s.text for s in sentences],
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    cosine = vectors[1:] @ vectors[0]
    terms = set(tokenize(query))
    lexical = np.array([_overlap(terms, s.text) for s in sentences])
    return np.asarray(cosine + lexical_weight * lexical), vectors[1:]


def select_sentences(
    embedder: Any, query: str, hits: list[Hit], max_sentences: int = 3, redundancy: float = 0.85
) -> list[Sentence]:
    """The best ``max_sentences`` sentences, near-duplicates dropped, in passage reading order."""
    sentences = split_sentences(hits)
    if not sentences:
        return []
    scores, vectors = score_sentences(embedder, query, sentences)
    chosen: list[int] = []
    for i in np.argsort(-scores):
        if len(chosen) == max_sentences:
            break
        if any(float(vectors[i] @ vectors[j]) > redundancy for j in chosen):
            continue
        chosen.append(int(i))
    picked = [sentences[i] for i in chosen]
    for i, s in zip(chosen, picked, strict=True):
        s.score = float(scores[i])
    return sorted(picked, key=lambda s: (s.passage, s.position))


def support_scores(
    embedder: Any, question: str, choices: list[str], hits: list[Hit], lexical_weight: float = 0.25
) -> list[float]:
    """How strongly the passages support each option: the best match of question + option
    against the passages' sentences and pairs of adjacent sentences (an option's evidence often
    spans two), plus ``lexical_weight`` x the share of the option's distinctive terms (those not
    in every option nor in the question) found in the passages. Needs no reasoning from the
    generator. Window and weight were chosen on the development set data/dev/mcq_dev.jsonl."""
    sentences = split_sentences(hits)
    if not sentences:
        return [0.0] * len(choices)
    texts = [s.text for s in sentences]
    texts += [f"{a.text} {b.text}" for a, b in pairwise(sentences) if a.passage == b.passage]
    sentence_vecs = embedder.encode(
        texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    option_vecs = embedder.encode(
        [f"{question} {choice}" for choice in choices],
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    dense = (option_vecs @ sentence_vecs.T).max(axis=1)
    passage_terms = set(tokenize(" ".join(h.chunk.text for h in hits)))
    option_terms = [set(tokenize(c)) for c in choices]
    shared = set.intersection(*option_terms) if option_terms else set()
    lexical = []
    for terms in option_terms:
        distinctive = terms - shared - set(tokenize(question))
        lexical.append(len(distinctive & passage_terms) / len(distinctive) if distinctive else 0.0)
    return [float(d + lexical_weight * x) for d, x in zip(dense, lexical, strict=True)]
