"""The ingest stage: a book PDF (or a folder of Markdown/text notes) -> chunks.jsonl + manifest.

    pmpprag ingest --pdf BOOK.pdf --chapters 2-6 --out out/ingest/pmpp
    pmpprag ingest --markdown data/corpus --chapters 1-7,13,16,17,20
    pmpprag ingest --markdown data/corpus_zh --out out/ingest/companion-zh   # the Chinese notes
    pmpprag ingest                      # the embedded default: the companion corpus PDF

Writes into ``--out``: ``chunks.jsonl`` (schema.Chunk), ``chapters.json`` (the detected table of
chapters and sections, also printed), ``config.yaml`` and ``manifest.json`` (input hash,
settings, counts per chapter). Every file is written atomically; the manifest goes last, so a
folder with a manifest is complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from pmpprag import models
from pmpprag.config import option, to_dict
from pmpprag.errors import StaleError
from pmpprag.ingest import corpus_pdf
from pmpprag.ingest.chunking import ChunkingConfig, Piece, chunk_id, pack_section
from pmpprag.ingest.markdown import parse_markdown, plain_inline
from pmpprag.ingest.pdf import ChapterInfo, Element, IngestError, SectionInfo, read_pdf
from pmpprag.schema import Chunk, atomic_write, write_jsonl
from pmpprag.text import prose_language

logger = logging.getLogger(__name__)

__all__ = [
    "IngestConfig",
    "IngestResult",
    "StaleError",
    "check_chunks",
    "corpus_sha256",
    "input_changed",
    "parse_chapters",
    "run",
]

DEFAULT_CORPUS_PDF = Path("out/corpus/pmpp-companion.pdf")


@dataclass
class IngestConfig:
    pdf: Path | None = option(None, "book PDF to ingest (default: the companion corpus PDF)")
    markdown: Path | None = option(None, "folder of chNN-*.md / *.txt notes instead of a PDF")
    chapters: str = option("all", "chapters to keep: 'all', '2-6', '1-7,13,16,17,20'")
    chapter_map: Path | None = option(
        None, "YAML chapter map for PDFs whose structure is not found"
    )
    allow_repaired: bool = option(
        False, "ingest a damaged PDF that PyMuPDF repaired (pages and chapters may be missing)"
    )
    out: Path = option(Path("out/ingest/companion"), "output folder")
    corpus: Path = option(Path("data/corpus"), "companion corpus, typeset when no input is given")
    chunking: ChunkingConfig = option(default_factory=ChunkingConfig, help="chunking settings")

    def __post_init__(self) -> None:
        if self.pdf is not None and self.markdown is not None:
            raise ValueError("give either --pdf or --markdown, not both")
        parse_chapters(self.chapters)


@dataclass
class IngestResult:
    out: Path
    chunks: list[Chunk]
    chapters: list[ChapterInfo]


def parse_chapters(spec: str) -> set[int] | None:
    """'2-6' -> {2,...,6}; '1-7,13' -> {1,...,7,13}; 'all' -> None (every chapter)."""
    spec = str(spec).strip().lower()
    if spec in ("", "all"):
        return None
    chosen: set[int] = set()
    for part in spec.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise ValueError(f"--chapters {spec!r}: use 'all', '2-6' or '1-7,13,16'")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ValueError(f"--chapters {spec!r}: range {lo}-{hi} runs backwards")
        chosen.update(range(lo, hi + 1))
    return chosen


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def corpus_sha256(folder: Path) -> str:
    """One hash over a notes folder's chapter files (names and bytes): what an index records."""
    h = hashlib.sha256()
    for path in sorted(Path(folder).glob("*.md")):
        if path.name.lower() == "readme.md":  # not ingested
            continue
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _ingest_command(settings: dict[str, Any]) -> str:
    out = settings.get("out")
    if settings.get("pdf"):
        return f"pmpprag ingest --pdf {settings['pdf']} --out {out}"
    if settings.get("markdown"):
        return f"pmpprag ingest --markdown {settings['markdown']} --out {out}"
    return f"pmpprag ingest --corpus {settings.get('corpus')} --out {out}"


def _inputs(manifest: dict[str, Any]) -> list[dict[str, str]]:
    """What an ingest read, as {path, kind, sha256}: the PDF file, or the notes folder (also
    behind the typeset companion PDF, which is rebuilt from the notes)."""
    settings = manifest.get("settings", {})
    if settings.get("pdf"):
        return [
            {"path": str(manifest["input"]), "kind": "file", "sha256": manifest["input_sha256"]}
        ]
    notes = settings.get("markdown") or settings.get("corpus")
    if not notes or not manifest.get("notes_sha256"):
        return []
    return [{"path": str(notes), "kind": "notes", "sha256": manifest["notes_sha256"]}]


def input_changed(record: dict[str, str]) -> bool:
    """Whether an input recorded by :func:`check_chunks` changed since (one that is not here,
    as on another machine, cannot be told and counts as unchanged)."""
    path = Path(record["path"])
    if not path.exists():
        return False
    now = corpus_sha256(path) if record["kind"] == "notes" else _sha256(path)
    return now != record["sha256"]


def check_chunks(chunks: Path) -> dict[str, Any] | None:
    """The provenance of an ingest's ``chunks.jsonl`` (the chunks' hash and the inputs they came
    from), checked: a :class:`StaleError` says which ingest command to re-run when the chunks
    were edited or their input changed since. None for chunks without an ingest manifest
    beside them (made elsewhere), whose freshness nobody can tell."""
    chunks = Path(chunks)
    path = chunks.parent / "manifest.json"
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text(encoding="utf-8"))
    rerun = _ingest_command(manifest.get("settings", {}))
    digest = _sha256(chunks)
    if manifest.get("chunks_sha256") not in (None, digest):
        raise StaleError(f"{chunks} changed after `pmpprag ingest` wrote it: run `{rerun}`")
    inputs = _inputs(manifest)
    for record in inputs:
        if input_changed(record):
            raise StaleError(
                f"{chunks} is older than {record['path']}, which changed since it was "
                f"ingested: run `{rerun}`"
            )
    return {"chunks": str(chunks), "chunks_sha256": digest, "inputs": inputs}


def _default_pdf(cfg: IngestConfig) -> Path:
    """The companion corpus PDF, typeset again whenever a chapter file, or the typesetter
    itself, is newer than it."""
    sources = list(Path(cfg.corpus).glob("ch*.md"))
    if not sources:
        raise IngestError(f"no --pdf or --markdown given and no corpus in {cfg.corpus}")
    sources.append(Path(corpus_pdf.__file__))
    stale = not DEFAULT_CORPUS_PDF.is_file() or max(p.stat().st_mtime for p in sources) > (
        DEFAULT_CORPUS_PDF.stat().st_mtime
    )
    if stale:
        corpus_pdf.build_pdf(corpus_pdf.CorpusPdfConfig(corpus=cfg.corpus, out=DEFAULT_CORPUS_PDF))
    return DEFAULT_CORPUS_PDF


def _read_markdown(folder: Path) -> tuple[list[ChapterInfo], list[Element], dict[str, str]]:
    """Markdown/text notes: one chapter per file; element start/end are source line numbers."""
    files = sorted(
        p
        for p in Path(folder).glob("*")
        if p.suffix in (".md", ".txt") and p.name.lower() != "readme.md"
    )
    if not files:
        raise IngestError(f"{folder} holds no .md or .txt chapter files")
    chapters: list[ChapterInfo] = []
    elements: list[Element] = []
    sources: dict[str, str] = {}
    for path in files:
        blocks = parse_markdown(path)
        number = int(blocks[0].number)
        chapter = ChapterInfo(number, blocks[0].text, blocks[0].line_start, source="map")
        section, title = f"{number}.0", chapter.title
        for block in blocks[1:]:
            if block.kind == "section":
                section, title = block.number, block.text
                chapter.sections.append(SectionInfo(section, title, block.line_start))
            elif block.kind == "code":
                elements.append(
                    Element(
                        "code", block.text, block.line_start, block.line_end, number, section, title
                    )
                )
            elif block.kind in ("paragraph", "list_item", "subsection"):
                text = plain_inline(block.text)
                if block.kind == "list_item":
                    text = (
                        f"- {text}" if not block.marker[0].isdigit() else f"{block.marker} {text}"
                    )
                elements.append(
                    Element(
                        "paragraph", text, block.line_start, block.line_end, number, section, title
                    )
                )
        chapter.page_end = blocks[-1].line_end
        chapters.append(chapter)
        sources[str(number)] = path.name
    chapters.sort(key=lambda c: c.number)
    return chapters, elements, sources


def _token_counter(name: str) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(models.resolve(name).path_or_id)
    tokenizer.model_max_length = 1_000_000  # we only count tokens; long inputs are split later
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False))


def print_chapter_table(chapters: list[ChapterInfo], unit: str = "pages") -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"Detected chapters ({unit} are 1-based {'PDF pages' if unit == 'pages' else 'lines'})"
    )
    for column in ("ch", "title", unit, "sections", "found by"):
        table.add_column(column)
    for c in chapters:
        table.add_row(
            str(c.number), c.title, f"{c.page_start}-{c.page_end}", str(len(c.sections)), c.source
        )
    Console(stderr=True).print(table)


def run(cfg: IngestConfig) -> IngestResult:
    """Ingest, chunk and write; see the module docstring for the outputs."""
    started = time.perf_counter()
    wanted = parse_chapters(cfg.chapters)
    labels: dict[int, str] = {}
    if cfg.markdown is not None:
        source = Path(cfg.markdown)
        chapters, elements, sources = _read_markdown(source)
        unit = "lines"
    else:
        source = Path(cfg.pdf) if cfg.pdf is not None else _default_pdf(cfg)
        chapters, elements, labels = read_pdf(source, cfg.chapter_map, cfg.allow_repaired)
        sources = {}
        unit = "pages"
    found = {c.number for c in chapters}
    if wanted is not None:
        missing = sorted(wanted - found)
        if missing:
            raise IngestError(
                f"{source}: chapter(s) {', '.join(map(str, missing))} not found; the document has "
                f"chapters {', '.join(map(str, sorted(found)))} (see the table above, or pass "
                "--chapter_map FILE if detection missed some)"
            )
        chapters = [c for c in chapters if c.number in wanted]
    print_chapter_table(chapters, unit)

    count = _token_counter(cfg.chunking.tokenizer)
    titles = {c.number: c.title for c in chapters}
    chunks: list[Chunk] = []
    keep = {c.number for c in chapters}
    from tqdm import tqdm

    sections: dict[tuple[int, str], list[Element]] = {}
    for element in elements:
        if element.chapter in keep:
            sections.setdefault((element.chapter, element.section), []).append(element)
    for (chapter, section), items in tqdm(
        sections.items(), desc="chunking sections", unit="section"
    ):
        pieces = [Piece(e.kind, e.text, e.page_start, e.page_end) for e in items]
        section_lang = prose_language(" ".join(p.text for p in pieces if p.kind != "code"))
        for i, packed in enumerate(pack_section(pieces, cfg.chunking, count)):
            common: dict[str, Any] = dict(
                chunk_id=chunk_id(chapter, section, i, packed.text, section_lang),
                lang=section_lang,
                text=packed.text,
                chapter=chapter,
                chapter_title=titles[chapter],
                section=section,
                section_title=items[0].section_title,
                kind=packed.kind,
                n_tokens=packed.n_tokens,
            )
            if unit == "pages":
                first, last = (
                    labels.get(packed.start, str(packed.start)),
                    labels.get(packed.end, str(packed.end)),
                )
                chunks.append(
                    Chunk(
                        **common,
                        source=source.name,
                        page_start=packed.start,
                        page_end=packed.end,
                        page_label=first if first == last else f"{first}-{last}",
                    )
                )
            else:
                chunks.append(
                    Chunk(
                        **common,
                        source=sources[str(chapter)],
                        line_start=packed.start,
                        line_end=packed.end,
                    )
                )

    out = Path(cfg.out)
    write_jsonl(out / "chunks.jsonl", chunks)
    chunks_sha256 = _sha256(out / "chunks.jsonl")
    with atomic_write(out / "chapters.json") as fh:
        json.dump([asdict(c) for c in chapters], fh, indent=1)
    with atomic_write(out / "config.yaml") as fh:
        yaml.safe_dump(to_dict(cfg), fh, sort_keys=False)
    per_chapter = {str(c.number): sum(ch.chapter == c.number for ch in chunks) for c in chapters}
    manifest = {
        "input": str(source),
        "languages": sorted({c.lang for c in chunks}),
        "input_sha256": _sha256(source),
        # the notes folder behind the input, so the index stage can tell a stale ingest
        "notes_sha256": corpus_sha256(Path(cfg.markdown or cfg.corpus))
        if cfg.pdf is None
        else None,
        "settings": to_dict(cfg),
        "chunks": len(chunks),
        "chunks_sha256": chunks_sha256,  # what downstream stages check before they read them
        "chunks_per_chapter": per_chapter,
        "tokens": sum(c.n_tokens for c in chunks),
        "seconds": round(time.perf_counter() - started, 2),
    }
    with atomic_write(out / "manifest.json") as fh:
        json.dump(manifest, fh, indent=1)
    logger.info("wrote %d chunks from %d chapters to %s", len(chunks), len(chapters), out)
    return IngestResult(out, chunks, chapters)
