"""Typeset the companion corpus (data/corpus/*.md) as a book-like PDF.

The default path of the pipeline ingests this PDF exactly as it would ingest a real copy of the
book, so it carries what real books carry: front matter with roman page labels, chapter opening
pages, running headers (chapter title on even pages, current section on odd pages), printed page
numbers in the footer, monospaced code listings, and a PDF outline (chapters and sections).

    pmpprag corpus build-pdf [--corpus data/corpus] [--out out/corpus/pmpp-companion.pdf]
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pmpprag.config import option
from pmpprag.ingest.markdown import Block, inline_markup, parse_markdown
from pmpprag.schema import atomic_write

logger = logging.getLogger(__name__)

__all__ = ["CorpusPdfConfig", "CorpusPdfResult", "Heading", "build_pdf", "corpus_files"]

# A 7 x 10 inch page (504 x 720 pt). The body is 396 pt wide: an 88-character code line in
# 7.5 pt Courier is 88 x 0.6 x 7.5 = 396 pt, so listings never wrap.
PAGE_W, PAGE_H = 504.0, 720.0
MARGIN_X, BODY_TOP, BODY_BOTTOM = 54.0, 72.0, 660.0
HEADER_Y, FOOTER_Y = 44.0, 690.0
FRONT_MATTER_PAGES = 2  # title page and contents: printed as i, ii

CSS = """
body { font-family: serif; font-size: 10pt; line-height: 1.3; }
h1 { font-family: sans-serif; font-size: 22pt; margin-top: 90pt; margin-bottom: 24pt; }
h2 { font-family: sans-serif; font-size: 13pt; margin-top: 14pt; margin-bottom: 6pt; }
h3 { font-family: sans-serif; font-size: 11pt; margin-top: 10pt; margin-bottom: 4pt; }
p { margin-top: 0; margin-bottom: 6pt; text-align: justify; }
li { margin-bottom: 3pt; }
pre { font-family: monospace; font-size: 7.5pt; line-height: 1.2; margin-bottom: 8pt; }
code { font-family: monospace; font-size: 9pt; }
"""


@dataclass
class CorpusPdfConfig:
    corpus: Path = option(Path("data/corpus"), "folder of chapter Markdown files (chNN-*.md)")
    out: Path = option(Path("out/corpus/pmpp-companion.pdf"), "PDF to write")
    title: str = option("Companion Notes to Programming Massively Parallel Processors", "title")


@dataclass(frozen=True)
class Heading:
    """Where a chapter or section heading landed: 1-based PDF page index."""

    level: int  # 1 chapter, 2 section
    number: str
    title: str
    page: int


@dataclass
class CorpusPdfResult:
    path: Path
    pages: int
    headings: list[Heading]


def corpus_files(corpus: Path) -> list[Path]:
    """Chapter files in chapter order (by the number in ``# Chapter N``, not the file name)."""
    files = sorted(Path(corpus).glob("ch*.md"))
    if not files:
        raise FileNotFoundError(f"no chapter files (ch*.md) in {corpus}")
    return sorted(files, key=lambda f: int(parse_markdown(f)[0].number))


def _inline(text: str) -> str:
    """HTML for a line's inline markup; a code span's ``**`` stays C (`void **`), never bold."""
    return inline_markup(html.escape(text, quote=False), "<code>{}</code>", "<b>{}</b>")


def _chapter_html(blocks: list[Block]) -> str:
    parts: list[str] = []
    open_list: str | None = None
    for block in blocks:
        if block.kind != "list_item" and open_list:
            parts.append(f"</{open_list}>")
            open_list = None
        if block.kind == "chapter":
            parts.append(
                f'<h1 id="ch{block.number}">Chapter {block.number}<br/>{_inline(block.text)}</h1>'
            )
        elif block.kind == "section":
            parts.append(f'<h2 id="s{block.number}">{block.number} {_inline(block.text)}</h2>')
        elif block.kind == "subsection":
            parts.append(f"<h3>{_inline(block.text)}</h3>")
        elif block.kind == "paragraph":
            parts.append(f"<p>{_inline(block.text)}</p>")
        elif block.kind == "code":
            parts.append(f"<pre>{html.escape(block.text, quote=False)}</pre>")
        else:
            tag = "ol" if block.marker[0].isdigit() else "ul"
            if open_list != tag:
                if open_list:
                    parts.append(f"</{open_list}>")
                parts.append(f"<{tag}>")
                open_list = tag
            parts.append(f"<li>{_inline(block.text)}</li>")
    if open_list:
        parts.append(f"</{open_list}>")
    return "\n".join(parts)


def _heading_recorder(headings: list[Heading], titles: dict[str, str], page: int) -> Any:
    """A Story.element_positions callback (exactly one argument) that records our headings."""

    def record(pos: Any) -> None:
        if pos.open_close & 1 and pos.heading and (pos.id or "").startswith(("ch", "s")):
            level = 1 if pos.id.startswith("ch") else 2
            number = pos.id[2:] if level == 1 else pos.id[1:]
            headings.append(Heading(level, number, titles[number], page))

    return record


def _typeset(chapters: list[list[Block]], path: Path) -> list[Heading]:
    """Lay out every chapter from a new page; return where each heading landed."""
    import pymupdf

    headings: list[Heading] = []
    writer = pymupdf.DocumentWriter(str(path))
    page_rect = pymupdf.Rect(0, 0, PAGE_W, PAGE_H)
    body = pymupdf.Rect(MARGIN_X, BODY_TOP, PAGE_W - MARGIN_X, BODY_BOTTOM)
    page_no = 0

    for _ in range(FRONT_MATTER_PAGES):  # blank now, filled in by _decorate
        writer.begin_page(page_rect)
        writer.end_page()
        page_no += 1

    for blocks in chapters:
        titles = {b.number: b.text for b in blocks if b.kind in ("chapter", "section")}
        story = pymupdf.Story(html=_chapter_html(blocks), user_css=CSS)

        more = True
        while more:
            device = writer.begin_page(page_rect)
            more, _ = story.place(body)
            story.element_positions(_heading_recorder(headings, titles, page_no + 1))
            story.draw(device)
            writer.end_page()
            page_no += 1
    writer.close()
    return headings


def _decorate(path: Path, out: Path, headings: list[Heading], title: str) -> int:
    """Add title page, contents, running headers, page numbers, page labels and the outline."""
    import pymupdf

    doc = pymupdf.open(str(path))
    chapter_pages = {h.page for h in headings if h.level == 1}
    doc[0].insert_textbox(
        pymupdf.Rect(MARGIN_X, 220, PAGE_W - MARGIN_X, 420),
        title,
        fontsize=24,
        fontname="hebo",
        align=1,
    )
    doc[0].insert_textbox(
        pymupdf.Rect(MARGIN_X, 440, PAGE_W - MARGIN_X, 520),
        "Original study notes by the pmpprag team, following the book's chapter topics.",
        fontsize=11,
        fontname="tiro",
        align=1,
    )
    y = BODY_TOP
    doc[1].insert_text((MARGIN_X, y), "Contents", fontsize=16, fontname="hebo")
    for h in (h for h in headings if h.level == 1):
        y += 18
        label = h.page - FRONT_MATTER_PAGES
        doc[1].insert_text((MARGIN_X, y), f"{h.number}  {h.title}", fontsize=10, fontname="tiro")
        doc[1].insert_text((PAGE_W - MARGIN_X - 20, y), str(label), fontsize=10, fontname="tiro")

    chapter: Heading | None = None
    section: Heading | None = None
    for index in range(FRONT_MATTER_PAGES, doc.page_count):
        pdf_page = index + 1
        printed = pdf_page - FRONT_MATTER_PAGES
        on_page = [h for h in headings if h.page == pdf_page]
        for h in on_page:
            if h.level == 1:
                chapter, section = h, None
        page = doc[index]
        page.insert_text((PAGE_W / 2 - 6, FOOTER_Y), str(printed), fontsize=9, fontname="tiro")
        if pdf_page in chapter_pages or chapter is None:
            continue  # chapter opening pages carry no running header
        # The odd-page header names the section in force at the top of the page.
        if printed % 2 == 0:
            text = f"CHAPTER {chapter.number}  {chapter.title}"
            page.insert_text((MARGIN_X, HEADER_Y), text, fontsize=8.5, fontname="tiit")
        elif section is not None:
            text = f"{section.number}  {section.title}"
            width = pymupdf.get_text_length(text, fontname="tiit", fontsize=8.5)
            page.insert_text(
                (PAGE_W - MARGIN_X - width, HEADER_Y), text, fontsize=8.5, fontname="tiit"
            )
        for h in on_page:
            if h.level == 2:
                section = h
    doc.set_page_labels(
        [
            {"startpage": 0, "prefix": "", "style": "r", "firstpagenum": 1},
            {"startpage": FRONT_MATTER_PAGES, "prefix": "", "style": "D", "firstpagenum": 1},
        ]
    )
    doc.set_toc(
        [
            [
                h.level,
                f"Chapter {h.number}: {h.title}" if h.level == 1 else f"{h.number} {h.title}",
                h.page,
            ]
            for h in headings
        ]
    )
    doc.set_metadata({"title": title, "author": "pmpprag team", "subject": "PMPP companion notes"})
    with atomic_write(out, "wb") as fh:
        fh.write(doc.tobytes(garbage=3, deflate=True))
    pages = int(doc.page_count)
    doc.close()
    return pages


def build_pdf(cfg: CorpusPdfConfig) -> CorpusPdfResult:
    """Typeset every chapter of ``cfg.corpus`` into ``cfg.out``; atomic, so a failure leaves no PDF."""
    files = corpus_files(cfg.corpus)
    chapters = [parse_markdown(f) for f in files]
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    draft = cfg.out.with_name(f".{cfg.out.name}.draft")
    try:
        headings = _typeset(chapters, draft)
        pages = _decorate(draft, cfg.out, headings, cfg.title)
    finally:
        draft.unlink(missing_ok=True)
    logger.info("wrote %s: %d chapters, %d pages", cfg.out, len(files), pages)
    return CorpusPdfResult(cfg.out, pages, headings)
