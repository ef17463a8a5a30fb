"""An index folder on disk: chunks, FAISS vectors, BM25, and a manifest that vouches for them.

    index/companion/
      manifest.json   embedding model, dimension, chunk count, corpus hash, settings, file hashes
      chunks.jsonl    schema.Chunk, in vector order (row i of the FAISS index is line i)
      dense.faiss     normalised embeddings (inner product = cosine)
      bm25/           bm25s arrays over pmpprag.index.lexical tokens

Loading verifies every file against the manifest's sha256, so a truncated or swapped file is an
error naming that file. Writes go to a sibling temporary folder that replaces the old one only
when complete (``schema.atomic_folder``): an interrupted build leaves the previous index as it was.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, StrictInt, ValidationError

from pmpprag.errors import PmppragError
from pmpprag.schema import Chunk, RecordError, read_jsonl

logger = logging.getLogger(__name__)

__all__ = ["IndexError_", "StoredIndex", "load_index", "sha256_file"]

FORMAT_VERSION = 1


class IndexError_(PmppragError, RuntimeError):
    """An index folder is missing, corrupt, or does not match what the caller expects."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json")


def file_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256_file(p) for p in _files(folder)}


@dataclass
class StoredIndex:
    folder: Path
    manifest: dict[str, Any]
    chunks: list[Chunk]
    faiss_index: Any
    bm25: Any


class Manifest(BaseModel):
    """The fields a loader relies on, with their types (``manifest.json`` holds more)."""

    format: int
    embedding_model: str
    dimension: StrictInt
    chunks: StrictInt
    faiss_type: str
    files: dict[str, str]
    passage_prefix: str = ""


def read_manifest(folder: Path) -> dict[str, Any]:
    path = Path(folder) / "manifest.json"
    if not Path(folder).is_dir():
        raise IndexError_(
            f"no index at {folder}: build one with `pmpprag index build --out {folder}`"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise IndexError_(
            f"{path} is missing: {folder} is not a complete index; rebuild it"
        ) from err
    except json.JSONDecodeError as err:
        raise IndexError_(f"{path} is corrupt ({err}); rebuild the index") from err
    try:
        Manifest.model_validate(manifest)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "the top level"
        raise IndexError_(
            f"{path}: {where}: {first['msg']}; this is not an index manifest pmpprag wrote "
            "(rebuild the index)"
        ) from err
    if manifest.get("format") != FORMAT_VERSION:
        raise IndexError_(
            f"{path}: index format {manifest.get('format')} is not {FORMAT_VERSION}; rebuild it"
        )
    return manifest


def load_index(folder: Path, verify: bool = True) -> StoredIndex:
    """Load and check an index folder; every inconsistency is an :class:`IndexError_`."""
    import faiss

    from pmpprag.index.lexical import BM25Index

    folder = Path(folder)
    manifest = read_manifest(folder)
    if verify:
        expected: dict[str, str] = manifest["files"]
        for name, digest in expected.items():
            path = folder / name
            if not path.is_file():
                raise IndexError_(f"{path} is missing from the index; rebuild it")
            if sha256_file(path) != digest:
                raise IndexError_(
                    f"{path} does not match the manifest (corrupt or replaced); rebuild the index"
                )
    try:
        chunks = read_jsonl(folder / "chunks.jsonl", Chunk)
    except RecordError as err:
        raise IndexError_(str(err)) from err
    try:
        vectors = faiss.read_index(str(folder / "dense.faiss"))
    except RuntimeError as err:
        raise IndexError_(f"{folder / 'dense.faiss'} cannot be read by FAISS: {err}") from err
    if vectors.d != manifest["dimension"]:
        raise IndexError_(
            f"{folder / 'dense.faiss'} has dimension {vectors.d}, manifest says {manifest['dimension']}"
        )
    if vectors.ntotal != len(chunks) or len(chunks) != manifest["chunks"]:
        raise IndexError_(
            f"{folder}: {vectors.ntotal} vectors, {len(chunks)} chunks, manifest says "
            f"{manifest['chunks']}; rebuild the index"
        )
    return StoredIndex(folder, manifest, chunks, vectors, BM25Index.load(folder / "bm25"))
