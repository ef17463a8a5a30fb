"""Build (or extend) an index folder from chunks: embeddings -> FAISS, tokens -> BM25.

    pmpprag index build                                  # shipped corpus -> index/companion/
    pmpprag index build --chunks out/ingest/pmpp/chunks.jsonl --out index/pmpp
    pmpprag index add --chunks new.jsonl --out index/pmpp   # embeds only chunks not yet indexed

The FAISS type is exact inner product (``flat``) by default; ``auto`` switches to HNSW above
``hnsw_threshold`` vectors, where exact search stops being cheap (100k x 384 floats is 150 MB
scanned per query); ``ivf`` is there for very large collections.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pmpprag import models
from pmpprag.config import option, to_dict
from pmpprag.index.lexical import BM25Index
from pmpprag.index.store import (
    FORMAT_VERSION,
    IndexError_,
    file_hashes,
    load_index,
    read_manifest,
)
from pmpprag.schema import Chunk, atomic_folder, read_jsonl, write_jsonl

logger = logging.getLogger(__name__)

__all__ = ["IndexConfig", "IndexResult", "add", "build", "embed_chunks", "passage_text"]


@dataclass
class IndexConfig:
    chunks: Path | None = option(None, "chunks.jsonl to index (default: ingest the shipped corpus)")
    out: Path = option(Path("index/companion"), "index folder to write")
    embedding_model: str = option(
        "minilm-l6", "registry name, sentence-transformers folder or hub id"
    )
    passage_prefix: str = option("", "text put before each passage (e5 models want 'passage: ')")
    batch_size: int = option(64, "embedding batch size")
    faiss_type: Literal["flat", "hnsw", "ivf", "auto"] = option("auto", "FAISS index type")
    hnsw_threshold: int = option(50_000, "with faiss_type auto: HNSW from this many vectors")
    hnsw_m: int = option(32, "HNSW graph degree")


@dataclass
class IndexResult:
    out: Path
    chunks: int
    added: int
    seconds: float


def passage_text(chunk: Chunk, prefix: str = "") -> str:
    """What gets embedded: the section path gives short chunks their topic."""
    return f"{prefix}{chunk.chapter_title} > {chunk.section} {chunk.section_title}\n{chunk.text}"


def embed_chunks(embedder: Any, chunks: list[Chunk], prefix: str, batch_size: int) -> np.ndarray:
    vectors = embedder.encode(
        [passage_text(c, prefix) for c in chunks],
        batch_size=batch_size,
        normalize_embeddings=True,
        show_progress_bar=len(chunks) > batch_size,
        convert_to_numpy=True,
    )
    return np.asarray(vectors, dtype=np.float32)


def _new_faiss(cfg: IndexConfig, dim: int, n: int) -> tuple[Any, str]:
    import faiss

    kind = cfg.faiss_type
    if kind == "auto":
        kind = "hnsw" if n >= cfg.hnsw_threshold else "flat"
    if kind == "flat":
        return faiss.IndexFlatIP(dim), kind
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = 128
        return index, kind
    # the usual 4 * sqrt(n) lists, but k-means wants at least ~39 training points per list
    nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.nprobe = min(nlist, 16)
    return ivf, kind


def _corpus_hash(chunks: list[Chunk]) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(c.chunk_id.encode())
        h.update(c.text.encode())
    return h.hexdigest()


def _default_chunks(cfg: IndexConfig) -> Path:
    from pmpprag.ingest import IngestConfig
    from pmpprag.ingest import run as ingest

    out = Path("out/ingest/companion")
    if not (out / "manifest.json").is_file():
        ingest(IngestConfig(out=out))
    return out / "chunks.jsonl"


def _write(
    folder: Path,
    cfg: IndexConfig,
    chunks: list[Chunk],
    index: Any,
    kind: str,
    bm25: BM25Index,
    dim: int,
) -> None:
    import faiss

    write_jsonl(folder / "chunks.jsonl", chunks)
    faiss.write_index(index, str(folder / "dense.faiss"))
    bm25.save(folder / "bm25")
    manifest = {
        "format": FORMAT_VERSION,
        "embedding_model": cfg.embedding_model,
        "passage_prefix": cfg.passage_prefix,
        "dimension": dim,
        "faiss_type": kind,
        "chunks": len(chunks),
        "corpus_sha256": _corpus_hash(chunks),
        "chapters": sorted({c.chapter for c in chunks}),
        "settings": to_dict(cfg),
        "files": file_hashes(folder),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")


def build(cfg: IndexConfig) -> IndexResult:
    """Embed every chunk and write a fresh index folder (atomically replacing an old one)."""
    started = time.perf_counter()
    source = cfg.chunks or _default_chunks(cfg)
    chunks = read_jsonl(source, Chunk)
    if not chunks:
        raise IndexError_(f"{source} holds no chunks")
    ids = [c.chunk_id for c in chunks]
    if len(set(ids)) != len(ids):
        raise IndexError_(f"{source}: duplicate chunk ids; re-run ingest")
    embedder = models.load_embedder(cfg.embedding_model)
    vectors = embed_chunks(embedder, chunks, cfg.passage_prefix, cfg.batch_size)
    index, kind = _new_faiss(cfg, vectors.shape[1], len(chunks))
    if kind == "ivf":
        index.train(vectors)
    index.add(vectors)
    bm25 = BM25Index.build([passage_text(c) for c in chunks])
    with atomic_folder(cfg.out) as tmp:
        _write(tmp, cfg, chunks, index, kind, bm25, vectors.shape[1])
    seconds = time.perf_counter() - started
    logger.info(
        "indexed %d chunks (%s, dim %d) into %s in %.1f s",
        len(chunks),
        kind,
        vectors.shape[1],
        cfg.out,
        seconds,
    )
    return IndexResult(cfg.out, len(chunks), len(chunks), seconds)


def add(cfg: IndexConfig) -> IndexResult:
    """Add chunks whose ids the index lacks; old vectors are kept, not re-embedded."""
    started = time.perf_counter()
    if cfg.chunks is None:
        raise IndexError_("index add needs --chunks FILE")
    new_chunks = read_jsonl(cfg.chunks, Chunk)
    manifest = read_manifest(cfg.out)
    if manifest["embedding_model"] != cfg.embedding_model:
        raise IndexError_(
            f"{cfg.out} was built with {manifest['embedding_model']!r}, not {cfg.embedding_model!r}: "
            "pass --embedding_model to match, or rebuild"
        )
    cfg = dataclasses.replace(cfg, passage_prefix=manifest["passage_prefix"])
    stored = load_index(cfg.out)
    known = {c.chunk_id for c in stored.chunks}
    new = [c for c in new_chunks if c.chunk_id not in known]
    if not new:
        logger.info("nothing to add: every chunk of %s is already in %s", cfg.chunks, cfg.out)
        return IndexResult(cfg.out, len(stored.chunks), 0, time.perf_counter() - started)
    embedder = models.load_embedder(cfg.embedding_model)
    vectors = embed_chunks(embedder, new, manifest["passage_prefix"], cfg.batch_size)
    if vectors.shape[1] != manifest["dimension"]:
        raise IndexError_(
            f"{cfg.embedding_model} gives dimension {vectors.shape[1]}, index has {manifest['dimension']}"
        )
    stored.faiss_index.add(vectors)
    chunks = stored.chunks + new
    bm25 = BM25Index.build([passage_text(c) for c in chunks])
    with atomic_folder(cfg.out) as tmp:
        _write(
            tmp,
            cfg,
            chunks,
            stored.faiss_index,
            manifest["faiss_type"],
            bm25,
            manifest["dimension"],
        )
    logger.info("added %d chunks to %s (now %d)", len(new), cfg.out, len(chunks))
    return IndexResult(cfg.out, len(chunks), len(new), time.perf_counter() - started)
