"""Link each chunk to its twins: the same part of the same section in the other language.

The Chinese companion notes keep the English notes' section numbering and put the same code
listings in the same places, so within one section the two texts run in the same order. The
chunks of a section are aligned in that order by dynamic time warping: a monotone path from
the first pair of chunks to the last that minimises the summed cost (1 - similarity) of the
pairs it visits, where similarity is the overlap of the English words each chunk holds (its own words
for an English chunk; for a Chinese one, the identifiers and numbers it spells plus the
glossary's English for its terms), and a shared code listing counts fully. Every pair on the
path are twins, so every chunk has at least one; so are chunks whose relative positions in
the section overlap, since the two languages cut their chunks at different places. A hit in one language can then bring its
twin: a Chinese answer cites Chinese sentences for a passage found through the English text.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict

import numpy as np

from pmpprag.index.lexical import load_glossary, tokenize
from pmpprag.schema import Chunk
from pmpprag.text import FENCED

__all__ = ["bridge_text", "link_twins"]


def _listings(text: str) -> set[str]:
    return {block.strip() for block in FENCED.findall(text) if block.strip()}


def _words(chunk: Chunk) -> set[str]:
    """The English words a chunk holds, whatever its language."""
    text = chunk.text
    if chunk.lang != "en":
        text += " " + " ".join(load_glossary().english(chunk.text, 1))
    return {t for t in tokenize(text) if t.isascii()}


def _similarity(a: Chunk, b: Chunk, words: dict[str, set[str]]) -> float:
    x, y = words[a.chunk_id], words[b.chunk_id]
    overlap = len(x & y) / math.sqrt(len(x) * len(y)) if x and y else 0.0
    return overlap + (1.0 if _listings(a.text) & _listings(b.text) else 0.0)


def _align(similarity: np.ndarray) -> list[tuple[int, int]]:
    """The monotone path (0, 0) -> (m-1, n-1), steps (1,0), (0,1), (1,1), of least summed
    cost 1 - similarity (dynamic time warping; a cost, so that a detour through a pair must
    earn its place rather than add to a sum)."""
    cost = 1.0 - np.minimum(similarity, 1.0)
    m, n = cost.shape
    best = np.full((m, n), np.inf)
    for i in range(m):
        for j in range(n):
            before = (
                0.0
                if i == j == 0
                else min(
                    best[i - 1, j] if i else np.inf,
                    best[i, j - 1] if j else np.inf,
                    best[i - 1, j - 1] if i and j else np.inf,
                )
            )
            best[i, j] = before + cost[i, j]
    path = [(m - 1, n - 1)]
    i, j = m - 1, n - 1
    while (i, j) != (0, 0):
        steps = [(a, b) for a, b in ((i - 1, j - 1), (i - 1, j), (i, j - 1)) if a >= 0 and b >= 0]
        i, j = min(steps, key=lambda s: best[s])
        path.append((i, j))
    return path[::-1]


def link_twins(chunks: list[Chunk]) -> list[Chunk]:
    """Copies of ``chunks`` with ``twins`` filled in (chunk ids, in the other language's order)."""
    by_section: dict[tuple[int, str], dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for n, chunk in enumerate(chunks):
        by_section[(chunk.chapter, chunk.section)][chunk.lang].append(n)
    twins: dict[int, set[int]] = defaultdict(set)
    for languages in by_section.values():
        if len(languages) < 2:
            continue
        (_, a), (_, b) = sorted(languages.items())[:2]
        words = {chunks[n].chunk_id: _words(chunks[n]) for n in a + b}
        similarity = np.array([[_similarity(chunks[x], chunks[y], words) for y in b] for x in a])
        pairs = set(_align(similarity))
        # chunk boundaries differ between the languages: chunks whose relative spans in the
        # section overlap ([i/m, (i+1)/m) and [j/n, (j+1)/n)) share text at the boundary too
        m, n = len(a), len(b)
        pairs |= {
            (i, j)
            for i in range(m)
            for j in range(n)
            if i * n < (j + 1) * m and j * m < (i + 1) * n
        }
        for i, j in pairs:
            twins[a[i]].add(b[j])
            twins[b[j]].add(a[i])
    return [
        chunk.model_copy(update={"twins": [chunks[m].chunk_id for m in sorted(twins[n])]})
        for n, chunk in enumerate(chunks)
    ]


_ASCII_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*(?:\(\))?")


def bridge_text(text: str) -> str:
    """What an English-only embedding model reads for Chinese text: the glossary's English for
    its terms and the identifiers it already spells in English (MiniLM maps Chinese characters
    to unknown tokens, so the Chinese prose itself carries no signal for it)."""
    prose = FENCED.sub(" ", text)
    identifiers = list(dict.fromkeys(_ASCII_WORD.findall(prose)))
    return " ".join([*load_glossary().english(text, 1), *identifiers])
