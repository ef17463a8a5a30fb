"""The retriever: dense (FAISS), lexical (BM25) or hybrid (reciprocal rank fusion), English and
Chinese questions, an optional chapter filter and an optional cross-encoder re-ranker.

    from pmpprag.index import Retriever
    found = Retriever.load("index/companion").retrieve("什么是线程束分歧？", k=5)
    found.hits, found.seconds, found.confidence      # a Retrieval; iterating it gives the hits

A Chinese question is expanded through the glossary: its English terms go to the dense encoder
(an English model reads Chinese characters as unknown tokens) and are added to the BM25 query,
so it finds English text; its own words find the Chinese notes through BM25 (jieba). With a
multilingual embedding model (``multilingual: true``) the question itself is embedded as well.

An index that holds both languages answers in the question's language: every ranked list is
projected onto that language before fusion (a hit in the other language counts for its twins,
see ``index.twins``), so a Chinese question gets Chinese passages found through either text.

Nothing about one request is kept on the retriever: threads may share it.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pmpprag import models
from pmpprag.config import option
from pmpprag.index.lexical import load_glossary, query_tokens, tokenize
from pmpprag.index.store import IndexError_, StoredIndex, load_index
from pmpprag.schema import Hit
from pmpprag.text import has_cjk

logger = logging.getLogger(__name__)

__all__ = ["Mode", "Retrieval", "Retriever", "RetrieverConfig"]

Mode = Literal["dense", "bm25", "hybrid"]
Language = Literal["en", "zh"]


@dataclass
class Retrieval:
    """One search: the hits and what was measured on the way. A sequence of its hits."""

    hits: list[Hit]
    seconds: float = 0.0
    top: dict[str, float] = field(default_factory=dict)  # best raw score per retriever
    confidence: float = 1.0  # best dense cosine of the question against any passage
    language: Language = "en"  # the language the hits were projected onto

    def __iter__(self) -> Iterator[Hit]:
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)

    def __getitem__(self, i: int) -> Hit:
        return self.hits[i]


@dataclass
class RetrieverConfig:
    mode: Mode = option("hybrid", "dense, bm25, or hybrid (reciprocal rank fusion)")
    k: int = option(5, "passages returned")
    candidates: int = option(50, "candidates taken from each retriever before fusion")
    rrf_k: int = option(
        30,
        "reciprocal rank fusion constant: score = w / (rrf_k + rank); 30 rather than the usual 60 "
        "lets a passage that BM25 ranks first in both languages beat one the weak Chinese dense "
        "ranking keeps middling everywhere (README, retrieval)",
    )
    dense_weight: float = option(1.0, "weight of the dense ranking in fusion")
    bm25_weight: float = option(1.0, "weight of the BM25 ranking in fusion")
    query_prefix: str = option("", "text put before each query (e5 models want 'query: ')")
    multilingual: bool = option(False, "the embedding model reads Chinese: embed the question too")
    glossary_variants: int = option(2, "English variants added per glossary term")
    reranker: str | None = option(None, "cross-encoder folder/hub id to re-rank fused candidates")
    rerank_top: int = option(20, "candidates the cross-encoder re-scores")
    bridge_weight: float = option(
        0.5,
        "fusion weight factor of the dense ranking of Chinese chunks, which an English-only "
        "embedder reads through their English bridge (ignored with multilingual: true)",
    )
    cross_weight: dict[str, float] = option(
        default_factory=lambda: {"en": 0.0, "zh": 0.5},
        help="index of both languages: fusion weight, by question language, of the rankings "
        "found in the other language's text and projected through twins",
    )
    verify: bool = option(True, "check file hashes against the manifest when loading")


class Retriever:
    """Search one index folder. :meth:`retrieve` normalises the query and times the call."""

    def __init__(self, stored: StoredIndex, cfg: RetrieverConfig, embedder: Any) -> None:
        self.stored = stored
        self.cfg = cfg
        self.embedder = embedder
        self.glossary = load_glossary()
        self.chapters = np.array([c.chapter for c in stored.chunks])
        self.languages = {c.lang for c in stored.chunks}
        position = {c.chunk_id: i for i, c in enumerate(stored.chunks)}
        # row -> the rows of its twins (the same part of its section in the other language)
        self.twins = [[position[t] for t in c.twins if t in position] for c in stored.chunks]
        self._reranker: Any = None
        tokenize("预热")  # loads jieba's dictionary now (~1 s) rather than in the first query

    @classmethod
    def load(cls, folder: str | Path, cfg: RetrieverConfig | None = None) -> Retriever:
        """Open an index folder; its manifest says which embedding model to load."""
        cfg = cfg or RetrieverConfig()
        stored = load_index(Path(folder), verify=cfg.verify)
        from pmpprag.index.build import build_command, stale_inputs

        stale = stale_inputs(stored.manifest)
        if stale:
            raise IndexError_(
                f"{folder} is older than {' and '.join(stale)} (changed since the index was "
                f"built): run `{build_command(stored.manifest, folder)}`"
            )
        embedder = models.load_embedder(stored.manifest["embedding_model"])
        # sentence-transformers 6 renamed get_sentence_embedding_dimension
        get_dim = (
            getattr(embedder, "get_embedding_dimension", None)
            or embedder.get_sentence_embedding_dimension
        )
        dim = get_dim()
        if dim != stored.manifest["dimension"]:
            raise IndexError_(
                f"{folder}: the index has dimension {stored.manifest['dimension']} but "
                f"{stored.manifest['embedding_model']} gives {dim}; rebuild the index"
            )
        return cls(stored, cfg, embedder)

    @property
    def chunks(self) -> list[Any]:
        return self.stored.chunks

    @functools.cached_property
    def idf(self) -> Callable[[str], float]:
        """A token's BM25 inverse document frequency over this index's chunks (memoised)."""
        return functools.lru_cache(maxsize=65536)(self.stored.bm25.idf)

    def expand(self, query: str) -> tuple[str, list[str]]:
        """(text for the dense encoder, English glossary terms) for a question."""
        if not has_cjk(query):
            return query, []
        english = self.glossary.english(query, self.cfg.glossary_variants)
        ascii_words = " ".join(re.findall(r"[A-Za-z_][A-Za-z0-9_.]*|\d+(?:\.\d+)?", query))
        dense = " ".join([ascii_words, *english]).strip()
        if self.cfg.multilingual or not dense:
            dense = f"{query} {dense}".strip()
        return dense, english

    def retrieve(
        self,
        query: str,
        k: int | None = None,
        mode: Mode | None = None,
        chapters: set[int] | None = None,
        language: Language | None = None,
    ) -> Retrieval:
        """The ``k`` best passages for ``query``; ``chapters`` keeps only those chapters;
        ``language`` (default: the question's) is the language of the passages returned when
        the index holds both."""
        query = query.strip()
        if not query:
            raise ValueError("empty query")
        started = time.perf_counter()
        language = language or ("zh" if has_cjk(query) else "en")
        found = self._retrieve(query, k or self.cfg.k, mode or self.cfg.mode, chapters, language)
        found.seconds = time.perf_counter() - started
        return found

    def _mask(self, chapters: set[int] | None) -> np.ndarray | None:
        if not chapters:
            return None
        mask = np.isin(self.chapters, sorted(chapters))
        if not mask.any():
            raise ValueError(f"no indexed chunk is in chapters {sorted(chapters)}")
        return mask

    def _dense(self, text: str, depth: int, mask: np.ndarray | None) -> list[tuple[int, float]]:
        import faiss

        vector = self.embedder.encode(
            [self.cfg.query_prefix + text],
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32)
        params = None
        if mask is not None:
            params = faiss.SearchParameters(  # type: ignore[call-arg]
                sel=faiss.IDSelectorBatch(np.flatnonzero(mask).astype(np.int64))
            )
        scores, ids = self.stored.faiss_index.search(vector, depth, params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def _bm25(
        self, tokens: list[str], depth: int, mask: np.ndarray | None
    ) -> list[tuple[int, float]]:
        scores = self.stored.bm25.scores(tokens)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        top = np.argsort(-scores, kind="stable")[:depth]
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]

    def _project(self, results: list[tuple[int, float]], language: str) -> list[tuple[int, float]]:
        """The other language's hits, each standing for its twins at its rank (a chunk keeps
        its best rank)."""
        out: dict[int, float] = {}
        for i, score in results:
            for t in self.twins[i]:
                out.setdefault(t, score)
        return list(out.items())

    def _split(
        self, ranked: dict[str, list[tuple[int, float]]], language: str
    ) -> tuple[dict[str, list[tuple[int, float]]], dict[str, float]]:
        """Rankings in the question's language, plus the other language's projected onto it
        ("dense~", "bm25~"), with their fusion weights."""
        weights = {"dense": self.cfg.dense_weight, "bm25": self.cfg.bm25_weight}
        cross = self.cfg.cross_weight.get(language, 1.0)
        chunks = self.stored.chunks
        out: dict[str, list[tuple[int, float]]] = {}
        out_weights: dict[str, float] = {}
        for name, results in ranked.items():
            out[name] = [(i, s) for i, s in results if chunks[i].lang == language]
            out_weights[name] = weights[name]
            if name == "dense" and language != "en" and not self.cfg.multilingual:
                out_weights[name] *= self.cfg.bridge_weight
            if cross > 0:
                other = [(i, s) for i, s in results if chunks[i].lang != language]
                out[f"{name}~"] = self._project(other, language)
                out_weights[f"{name}~"] = weights[name] * cross
        return out, out_weights

    def _retrieve(
        self, query: str, k: int, mode: Mode, chapters: set[int] | None, language: Language
    ) -> Retrieval:
        mask = self._mask(chapters)
        dense_text, english = self.expand(query)
        depth = max(k, self.cfg.candidates) * len(self.languages)
        ranked: dict[str, list[tuple[int, float]]] = {}
        # the dense search runs in every mode: its best cosine is the not-covered gate's signal
        dense = self._dense(dense_text, depth, mask)
        confidence = dense[0][1] if dense else 0.0
        if mode in ("dense", "hybrid"):
            ranked["dense"] = dense
        if mode in ("bm25", "hybrid"):
            ranked["bm25"] = self._bm25(
                query_tokens(query) + tokenize(" ".join(english)), depth, mask
            )
        top = {name: res[0][1] if res else 0.0 for name, res in ranked.items()}
        weights = {"dense": self.cfg.dense_weight, "bm25": self.cfg.bm25_weight}
        if len(self.languages) > 1 and language in self.languages:
            ranked, weights = self._split(ranked, language)
        if mode == "hybrid" or len(ranked) > 1:
            fused: dict[int, float] = {}
            for name, results in ranked.items():
                for rank, (i, _) in enumerate(results, 1):
                    fused[i] = fused.get(i, 0.0) + weights[name] / (self.cfg.rrf_k + rank)
            order = sorted(fused.items(), key=lambda x: -x[1])
        else:
            order = ranked[mode]
        if self.cfg.reranker:
            order = self._rerank(query if not english else f"{query} {' '.join(english)}", order)
        ranks = {name: {i: r for r, (i, _) in enumerate(res, 1)} for name, res in ranked.items()}
        raw = {name: dict(res) for name, res in ranked.items()}
        hits = [
            Hit(
                chunk=self.stored.chunks[i],
                score=score,
                rank=rank,
                ranks={name: r[i] for name, r in ranks.items() if i in r},
                scores={name: s[i] for name, s in raw.items() if i in s},
            )
            for rank, (i, score) in enumerate(order[:k], 1)
        ]
        return Retrieval(hits, top=top, confidence=confidence, language=language)

    def _rerank(self, query: str, order: list[tuple[int, float]]) -> list[tuple[int, float]]:
        if self._reranker is None:
            from sentence_transformers import CrossEncoder

            self._reranker = CrossEncoder(
                models.resolve(self.cfg.reranker or "").path_or_id, device="cpu"
            )
        head, tail = order[: self.cfg.rerank_top], order[self.cfg.rerank_top :]
        pairs = [(query, self.stored.chunks[i].text) for i, _ in head]
        scores = self._reranker.predict(pairs, show_progress_bar=False) if pairs else []
        rescored = sorted(
            ((i, float(s)) for (i, _), s in zip(head, scores, strict=True)), key=lambda x: -x[1]
        )
        return rescored + tail
