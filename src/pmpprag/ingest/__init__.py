"""Ingest: book PDF or Markdown notes -> clean, chapter-aware chunks with provenance."""

from pmpprag.ingest.chunking import ChunkingConfig
from pmpprag.ingest.corpus_pdf import CorpusPdfConfig, build_pdf
from pmpprag.ingest.pdf import IngestError, read_pdf
from pmpprag.ingest.stage import IngestConfig, IngestResult, parse_chapters, run

__all__ = [
    "ChunkingConfig",
    "CorpusPdfConfig",
    "IngestConfig",
    "IngestError",
    "IngestResult",
    "build_pdf",
    "parse_chapters",
    "read_pdf",
    "run",
]
