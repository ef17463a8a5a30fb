"""Lexical side of retrieval: CUDA-aware tokenisation, the zh->en glossary, and BM25.

Tokenisation keeps CUDA identifiers whole (``__syncthreads``, ``blockIdx.x``, ``TILE_WIDTH``,
``cudaMemcpyHostToDevice``) and also emits their parts (``blockidx``, ``tile``, ``width``), so
both "blockIdx.x" and "block index" find a passage. Chinese runs are segmented with jieba,
which is taught every glossary term so that 共享内存 stays one token.

Chinese questions meet an English book through :class:`Glossary`: terms found in the question
(longest match first) add their English equivalents to the query before lexical and dense search.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from pmpprag.text import has_cjk

logger = logging.getLogger(__name__)

__all__ = [
    "BM25Index",
    "Glossary",
    "has_cjk",
    "load_glossary",
    "query_tokens",
    "tokenize",
]

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
# identifiers with dots (blockIdx.x), C++ scopes, underscores; numbers with decimals (0.25)
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:(?:\.|::)[A-Za-z_][A-Za-z0-9_]*)*|\d+(?:\.\d+)?")
_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
STOPWORDS = frozenset(
    "a an and are as at be by can do does for from how in into is it its of on or that the "
    "their them then there these this to was what when where which while who why will with "
    "you your we our not no if than so such each also may use used using".split()
)


# Chinese question words: rare in declarative notes, so BM25 would weigh them heavily.
ZH_QUESTION_WORDS = frozenset(
    "什么 如何 怎样 怎么 为什么 为何 哪些 哪个 哪种 哪 吗 呢 请 简述 简要 有何 是否 多少".split()
)


def query_tokens(text: str) -> list[str]:
    """Tokens of a question for BM25: :func:`tokenize` less the Chinese question words."""
    return [t for t in tokenize(text) if t not in ZH_QUESTION_WORDS]


def _normalise_word(word: str) -> str:
    word = word.lower()
    # a light plural strip: "warps" -> "warp", "threads" -> "thread"; "access" stays
    if len(word) > 4 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Lexical tokens of English/code/Chinese text for BM25."""
    tokens: list[str] = []
    for match in _TOKEN.finditer(text):
        raw = match.group(0)
        whole = raw.lower()
        if whole in STOPWORDS:
            continue
        tokens.append(_normalise_word(whole) if raw.isalpha() else whole)
        compound = not raw.isalpha() or any(c.isupper() for c in raw[1:])
        if compound and not raw[0].isdigit():
            parts = [p for piece in re.split(r"[._:]+", raw) for p in _CAMEL.findall(piece)]
            if len(parts) > 1:
                tokens.extend(_normalise_word(p) for p in parts if p.lower() not in STOPWORDS)
    for run in _CJK.findall(text):
        tokens.extend(w for w in _jieba().lcut(run) if w.strip())
    return tokens


@functools.cache
def _jieba() -> Any:
    """A jieba tokenizer of our own, with the glossary's terms added to its dictionary.

    Not the global ``jieba`` dictionary: the course metric (``eval.metrics``) must cut text with
    plain ``jieba.lcut`` even in a process that also searches the index.
    """
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    for term in load_glossary().terms:
        tokenizer.add_word(term, freq=2000)
    return tokenizer


@dataclass(frozen=True)
class Glossary:
    """Chinese -> English GPU/CUDA terms (``glossary_zh_en.tsv``, reviewed by the team)."""

    entries: dict[str, tuple[str, ...]]

    @property
    def terms(self) -> list[str]:
        return sorted(self.entries, key=len, reverse=True)

    def find(self, text: str) -> list[str]:
        """Glossary terms in ``text``, longest first, without overlapping matches."""
        taken = [False] * len(text)
        found = []
        for term in self.terms:
            start = text.find(term)
            while start >= 0:
                if not any(taken[start : start + len(term)]):
                    taken[start : start + len(term)] = [True] * len(term)
                    found.append(term)
                    break
                start = text.find(term, start + 1)
        return found

    def english(self, text: str, variants: int = 2) -> list[str]:
        """English equivalents of the glossary terms in ``text`` (first ``variants`` of each)."""
        out: list[str] = []
        for term in self.find(text):
            for english in self.entries[term][:variants]:
                if english not in out:
                    out.append(english)
        return out


@functools.cache
def load_glossary(path: str | None = None) -> Glossary:
    """Read the TSV (``zh<TAB>en|en2<TAB>note``); a malformed row names its line."""
    if path is None:
        text = resources.files("pmpprag.index").joinpath("glossary_zh_en.tsv").read_text("utf-8")
        source = "glossary_zh_en.tsv"
    else:
        text, source = Path(path).read_text(encoding="utf-8"), str(path)
    entries: dict[str, tuple[str, ...]] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if lineno == 1 or not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) < 2 or not fields[0].strip() or not fields[1].strip():
            raise ValueError(f"{source}:{lineno}: expected 'zh<TAB>en|en2<TAB>note', got {line!r}")
        entries[fields[0].strip()] = tuple(e.strip() for e in fields[1].split("|") if e.strip())
    return Glossary(entries)


class BM25Index:
    """bm25s over our tokens; scores for all chunks at once, so filters are a mask."""

    def __init__(self, model: Any) -> None:
        self.model = model

    @classmethod
    def build(cls, texts: list[str]) -> BM25Index:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)
        model = bm25s.BM25()
        model.index([tokenize(t) or ["_empty_"] for t in texts], show_progress=False)
        return cls(model)

    def save(self, folder: Path) -> None:
        self.model.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path) -> BM25Index:
        import bm25s

        return cls(bm25s.BM25.load(str(folder), show_progress=False, verbosity=0))

    def idf(self, token: str) -> float:
        """BM25's inverse document frequency of a token over the indexed chunks (a token the
        index never saw gets the largest)."""
        n = int(self.model.scores["num_docs"])
        at = self.model.vocab_dict.get(token)
        indptr = self.model.scores["indptr"]
        df = 0 if at is None else int(indptr[at + 1] - indptr[at])  # chunks holding it
        return math.log((n - df + 0.5) / (df + 0.5) + 1.0)

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        vocab = self.model.vocab_dict
        known = [t for t in query_tokens if t in vocab]
        n = int(self.model.scores["num_docs"])
        if not known:
            return np.zeros(n, dtype=np.float32)
        return np.asarray(self.model.get_scores(known), dtype=np.float32)
