"""The retriever: dense (FAISS), lexical (BM25) or hybrid (reciprocal rank fusion), English and
Chinese questions, an optional chapter filter and an optional cross-encoder re-ranker.

    from pmpprag.index import Retriever
    hits = Retriever.load("index/companion").retrieve("什么是线程束分歧？", k=5)

A Chinese question against an English index is expanded through the glossary: its English
terms go to the dense encoder (an English model reads Chinese characters as unknown tokens) and
are added to the BM25 query. With a multilingual embedding model (``multilingual: true``) the
question itself is embedded as well.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pmpprag import models
from pmpprag.config import option
from pmpprag.index.lexical import has_cjk, load_glossary, tokenize
from pmpprag.index.store import IndexError_, StoredIndex, load_index
from pmpprag.schema import Hit

logger = logging.getLogger(__name__)

__all__ = ["Mode", "Retriever", "RetrieverConfig"]

Mode = Literal["dense", "bm25", "hybrid"]


@dataclass
class RetrieverConfig:
    mode: Mode = option("hybrid", "dense, bm25, or hybrid (reciprocal rank fusion)")
    k: int = option(5, "passages returned")
    candidates: int = option(50, "candidates taken from each retriever before fusion")
    rrf_k: int = option(60, "reciprocal rank fusion constant: score = w / (rrf_k + rank)")
    dense_weight: float = option(1.0, "weight of the dense ranking in fusion")
    bm25_weight: float = option(1.0, "weight of the BM25 ranking in fusion")
    query_prefix: str = option("", "text put before each query (e5 models want 'query: ')")
    multilingual: bool = option(False, "the embedding model reads Chinese: embed the question too")
    glossary_variants: int = option(2, "English variants added per glossary term")
    reranker: str | None = option(None, "cross-encoder folder/hub id to re-rank fused candidates")
    rerank_top: int = option(20, "candidates the cross-encoder re-scores")
    verify: bool = option(True, "check file hashes against the manifest when loading")


class Retriever:
    """Search one index folder. :meth:`retrieve` normalises the query and times the call."""

    def __init__(self, stored: StoredIndex, cfg: RetrieverConfig, embedder: Any) -> None:
        self.stored = stored
        self.cfg = cfg
        self.embedder = embedder
        self.glossary = load_glossary()
        self.chapters = np.array([c.chapter for c in stored.chunks])
        self._reranker: Any = None
        self.last_seconds = 0.0
        self.last_top: dict[str, float] = {}  # best raw score per retriever in the last query
        tokenize("预热")  # loads jieba's dictionary now (~1 s) rather than in the first query

    @classmethod
    def load(cls, folder: str | Path, cfg: RetrieverConfig | None = None) -> Retriever:
        """Open an index folder; its manifest says which embedding model to load."""
        cfg = cfg or RetrieverConfig()
        stored = load_index(Path(folder), verify=cfg.verify)
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

    def expand(self, query: str) -> tuple[str, list[str]]:
        """(text for the dense encoder, English glossary terms) for a question."""
        if not has_cjk(query):
            return query, []
        english = self.glossary.english(query, self.cfg.glossary_variants)
        ascii_words = " ".join(re.findall(r"[A-Za-z_][\w.]*|\d+(?:\.\d+)?", query))
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
    ) -> list[Hit]:
        """The ``k`` best passages for ``query``; ``chapters`` keeps only those chapters."""
        query = query.strip()
        if not query:
            raise ValueError("empty query")
        started = time.perf_counter()
        hits = self._retrieve(query, k or self.cfg.k, mode or self.cfg.mode, chapters)
        self.last_seconds = time.perf_counter() - started
        return hits

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

    def _retrieve(self, query: str, k: int, mode: Mode, chapters: set[int] | None) -> list[Hit]:
        mask = self._mask(chapters)
        dense_text, english = self.expand(query)
        depth = max(k, self.cfg.candidates)
        ranked: dict[str, list[tuple[int, float]]] = {}
        if mode in ("dense", "hybrid"):
            ranked["dense"] = self._dense(dense_text, depth, mask)
        if mode in ("bm25", "hybrid"):
            ranked["bm25"] = self._bm25(tokenize(query) + tokenize(" ".join(english)), depth, mask)
        if mode == "hybrid":
            weights = {"dense": self.cfg.dense_weight, "bm25": self.cfg.bm25_weight}
            fused: dict[int, float] = {}
            for name, results in ranked.items():
                for rank, (i, _) in enumerate(results, 1):
                    fused[i] = fused.get(i, 0.0) + weights[name] / (self.cfg.rrf_k + rank)
            order = sorted(fused.items(), key=lambda x: -x[1])
        else:
            order = ranked[mode]
        if self.cfg.reranker:
            order = self._rerank(query if not english else f"{query} {' '.join(english)}", order)
        self.last_top = {name: res[0][1] if res else 0.0 for name, res in ranked.items()}
        ranks = {name: {i: r for r, (i, _) in enumerate(res, 1)} for name, res in ranked.items()}
        raw = {name: dict(res) for name, res in ranked.items()}
        return [
            Hit(
                chunk=self.stored.chunks[i],
                score=score,
                rank=rank,
                ranks={name: r[i] for name, r in ranks.items() if i in r},
                scores={name: s[i] for name, s in raw.items() if i in s},
            )
            for rank, (i, score) in enumerate(order[:k], 1)
        ]

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
