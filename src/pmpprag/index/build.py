"""Build (or extend) an index folder from chunks: embeddings -> FAISS, tokens -> BM25.

    pmpprag index build                                  # shipped corpus -> index/companion/
    pmpprag index build --chunks out/ingest/pmpp/chunks.jsonl --out index/pmpp
    pmpprag index build --chunks en/chunks.jsonl --zh_chunks zh/chunks.jsonl   # two languages
    pmpprag index add --chunks new.jsonl --out index/pmpp   # embeds only chunks not yet indexed

The FAISS type is exact inner product (``flat``) by default; ``auto`` switches to HNSW above
``hnsw_threshold`` vectors, where exact search stops being cheap (100k x 384 floats is 150 MB
scanned per query); ``ivf`` is there for very large collections.

The chain is explicit. Given ``--chunks``, the build checks the ingest manifest beside each
chunks file and fails, naming the ``pmpprag ingest`` command to re-run, when the chunks were
edited or their PDF or notes changed since (:func:`~pmpprag.ingest.stage.check_chunks`). With no
``--chunks`` it runs the chain from the shipped notes, logging each step as the command it
stands for: the English notes (``data/corpus``, typeset as a PDF and ingested as a book) and
the Chinese notes (``data/corpus_zh``, ingested as Markdown and cited by section), each
ingested again only when it changed. The manifest records every input's hash, so a retriever
refuses an index older than its notes or PDF (:func:`stale_inputs`).
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
from pmpprag.errors import StaleError
from pmpprag.index.lexical import BM25Index
from pmpprag.index.store import (
    FORMAT_VERSION,
    IndexError_,
    file_hashes,
    load_index,
    read_manifest,
)
from pmpprag.index.twins import bridge_text, link_twins
from pmpprag.ingest.stage import check_chunks, input_changed
from pmpprag.schema import Chunk, atomic_folder, read_jsonl, write_jsonl

logger = logging.getLogger(__name__)

__all__ = [
    "CORPORA",
    "IndexConfig",
    "IndexResult",
    "add",
    "build",
    "embed_chunks",
    "passage_text",
    "stale_inputs",
]

# The shipped notes, by language: (notes folder, ingest output folder).
CORPORA = {
    "en": (Path("data/corpus"), Path("out/ingest/companion")),
    "zh": (Path("data/corpus_zh"), Path("out/ingest/companion-zh")),
}


@dataclass
class IndexConfig:
    chunks: Path | None = option(
        None, "chunks.jsonl to index (default: ingest the shipped English and Chinese notes)"
    )
    zh_chunks: Path | None = option(
        None, "a second chunks.jsonl in the other language, linked section by section (twins)"
    )
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
    """What BM25 reads, and what gets embedded: the section path gives short chunks their topic."""
    return f"{prefix}{chunk.chapter_title} > {chunk.section} {chunk.section_title}\n{chunk.text}"


def dense_text(chunk: Chunk, by_id: dict[str, Chunk], prefix: str = "") -> str:
    """The embedded text. A Chinese chunk is embedded through its English bridge: its twin's
    section path, the glossary's English for its terms and the identifiers it spells."""
    if chunk.lang == "en":
        return passage_text(chunk, prefix)
    twin = next((by_id[t] for t in chunk.twins if t in by_id), None)
    path = twin or chunk
    return f"{prefix}{path.chapter_title} > {chunk.section} {path.section_title}\n{bridge_text(chunk.text)}"


def embed_chunks(
    embedder: Any,
    chunks: list[Chunk],
    prefix: str,
    batch_size: int,
    by_id: dict[str, Chunk] | None = None,
) -> np.ndarray:
    """Normalised vectors of ``chunks``; ``by_id`` finds twins outside ``chunks`` (index add)."""
    by_id = by_id or {c.chunk_id: c for c in chunks}
    vectors = embedder.encode(
        [dense_text(c, by_id, prefix) for c in chunks],
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


def stale_inputs(manifest: dict[str, Any]) -> list[str]:
    """The inputs recorded in an index manifest (notes folders, PDFs) that changed since it was
    built (only those present here: an index copied to another machine without them is not
    stale)."""
    return [r["path"] for r in _recorded_inputs(manifest) if input_changed(r)]


def _recorded_inputs(manifest: dict[str, Any]) -> list[dict[str, str]]:
    """The inputs an index manifest records (indexes written before "inputs" list their notes
    folders under "corpora")."""
    records = list(manifest.get("inputs", []))
    return records + [{**r, "kind": "notes"} for r in manifest.get("corpora", {}).values()]


def build_command(manifest: dict[str, Any], folder: Path | str) -> str:
    """The ``index build`` command that rebuilds ``folder`` from the same chunks files."""
    settings = manifest.get("settings", {})
    args = [f"--{name} {settings[name]}" for name in ("chunks", "zh_chunks") if settings.get(name)]
    return " ".join(["pmpprag index build", *args, f"--out {folder}"])


def _merged_inputs(manifest: dict[str, Any], record: dict[str, Any] | None) -> list[dict[str, str]]:
    old = _recorded_inputs(manifest)
    new = record["inputs"] if record else []
    paths = {r["path"] for r in new}
    return [r for r in old if r["path"] not in paths] + new


def _ingested(lang: str) -> Path:
    """The chain behind a plain ``pmpprag index build``: the shipped notes of one language,
    ingested into their fixed folder again when they changed since the last ingest. Each step
    is logged with the command it stands for."""
    from pmpprag.ingest import IngestConfig
    from pmpprag.ingest import run as ingest

    notes, out = CORPORA[lang]
    chunks = out / "chunks.jsonl"
    command = (
        f"pmpprag ingest --corpus {notes} --out {out}"
        if lang == "en"
        else f"pmpprag ingest --markdown {notes} --out {out}"
    )
    try:
        fresh = chunks.is_file() and check_chunks(chunks) is not None
    except StaleError:
        fresh = False
    if fresh:
        logger.info("chain: %s unchanged since `%s`; indexing %s", notes, command, chunks)
        return chunks
    logger.info("chain: %s is new or changed: running `%s`", notes, command)
    if lang == "en":
        ingest(IngestConfig(corpus=notes, out=out))
    else:
        ingest(IngestConfig(markdown=notes, out=out))
    return chunks


def _read_chunks(cfg: IndexConfig) -> tuple[list[Chunk], list[dict[str, str]]]:
    """All chunks to index, with twins linked, and the inputs they were ingested from."""
    if cfg.chunks is None:
        sources = [_ingested(lang) for lang in CORPORA if CORPORA[lang][0].is_dir()]
    else:
        sources = [p for p in (cfg.chunks, cfg.zh_chunks) if p is not None]
    chunks: list[Chunk] = []
    inputs: list[dict[str, str]] = []
    for source in sources:
        record = check_chunks(source)  # a StaleError says which ingest to re-run
        if record is None:
            logger.warning(
                "%s has no ingest manifest beside it: the index cannot tell when its source "
                "changes",
                source,
            )
        else:
            inputs += record["inputs"]
        these = read_jsonl(source, Chunk)
        if not these:
            raise IndexError_(f"{source} holds no chunks")
        chunks += these
    ids = [c.chunk_id for c in chunks]
    if len(set(ids)) != len(ids):
        raise IndexError_(f"{', '.join(map(str, sources))}: duplicate chunk ids; re-run ingest")
    return link_twins(chunks), inputs


def _write(
    folder: Path,
    cfg: IndexConfig,
    chunks: list[Chunk],
    index: Any,
    kind: str,
    bm25: BM25Index,
    dim: int,
    inputs: list[dict[str, str]],
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
        "languages": {lang: sum(c.lang == lang for c in chunks) for lang in ("en", "zh")},
        "inputs": inputs,  # what the chunks were ingested from; see stale_inputs
        "settings": to_dict(cfg),
        "files": file_hashes(folder),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")


def build(cfg: IndexConfig) -> IndexResult:
    """Embed every chunk and write a fresh index folder (atomically replacing an old one)."""
    started = time.perf_counter()
    chunks, inputs = _read_chunks(cfg)
    embedder = models.load_embedder(cfg.embedding_model)
    vectors = embed_chunks(embedder, chunks, cfg.passage_prefix, cfg.batch_size)
    index, kind = _new_faiss(cfg, vectors.shape[1], len(chunks))
    if kind == "ivf":
        index.train(vectors)
    index.add(vectors)
    bm25 = BM25Index.build([passage_text(c) for c in chunks])
    with atomic_folder(cfg.out) as tmp:
        _write(tmp, cfg, chunks, index, kind, bm25, vectors.shape[1], inputs)
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
    record = check_chunks(cfg.chunks)  # a StaleError says which ingest to re-run
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
    chunks = link_twins(stored.chunks + [c for c in new_chunks if c.chunk_id not in known])
    new = chunks[len(stored.chunks) :]
    if not new:
        logger.info("nothing to add: every chunk of %s is already in %s", cfg.chunks, cfg.out)
        return IndexResult(cfg.out, len(stored.chunks), 0, time.perf_counter() - started)
    embedder = models.load_embedder(cfg.embedding_model)
    by_id = {c.chunk_id: c for c in chunks}
    vectors = embed_chunks(embedder, new, manifest["passage_prefix"], cfg.batch_size, by_id)
    if vectors.shape[1] != manifest["dimension"]:
        raise IndexError_(
            f"{cfg.embedding_model} gives dimension {vectors.shape[1]}, index has {manifest['dimension']}"
        )
    stored.faiss_index.add(vectors)
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
            _merged_inputs(manifest, record),
        )
    logger.info("added %d chunks to %s (now %d)", len(new), cfg.out, len(chunks))
    return IndexResult(cfg.out, len(chunks), len(new), time.perf_counter() - started)
