"""Read a book PDF into clean, chapter-aware elements (paragraphs, code listings, captions).
(It stays one module: every pass below reads and rewrites the same per-page line records.)

What a real book PDF throws at us, and what this module does about it:
- running headers/footers and printed page numbers: lines in the top/bottom bands of the page
  whose position recurs across pages are dropped (their page numbers become page labels);
- chapters and sections: from the PDF outline when it has numbered entries, else from heading
  typography ("CHAPTER 4" in a large font, "4.2 Title" in a bold or larger font), else from a
  YAML map the user writes for odd PDFs (:func:`load_chapter_map`);
- hyphenated line breaks are rejoined (a hyphen is kept only where the document spells the
  same compound with a hyphen elsewhere), ligatures and odd spaces are normalised;
- code listings (monospaced lines) keep their indentation; figure/table captions are kept as
  labelled text; small-font stray labels inside figures are dropped.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from pmpprag.errors import PmppragError

logger = logging.getLogger(__name__)

__all__ = [
    "ChapterInfo",
    "Element",
    "IngestError",
    "Line",
    "SectionInfo",
    "load_chapter_map",
    "open_pdf",
    "read_pdf",
]


class IngestError(PmppragError, ValueError):
    """The input cannot be ingested; the message names the file and says what to do."""


@dataclass
class Line:
    page: int  # 1-based PDF page index
    text: str
    size: float
    mono: bool
    bold: bool
    x0: float
    y0: float
    y1: float
    block: int  # pymupdf block number on the page: a new block often starts a paragraph


@dataclass
class SectionInfo:
    number: str  # "4.3"
    title: str
    page: int  # 1-based PDF page where it starts


@dataclass
class ChapterInfo:
    number: int
    title: str
    page_start: int
    page_end: int = 0
    sections: list[SectionInfo] = field(default_factory=list)
    source: Literal["outline", "typography", "map"] = "outline"


@dataclass
class Element:
    """A paragraph, code listing or caption, placed in a chapter and section."""

    kind: Literal["paragraph", "code", "caption"]
    text: str
    page_start: int
    page_end: int
    chapter: int
    section: str
    section_title: str


_LIGATURES = str.maketrans(
    {
        "\ufb00": "ff",
        "\ufb01": "fi",
        "\ufb02": "fl",
        "\ufb03": "ffi",
        "\ufb04": "ffl",
        "\ufb05": "st",
        "\ufb06": "st",
        "\u00ad": "",
        "\u00a0": " ",
        "\u2009": " ",
        "\u202f": " ",
        "\u2002": " ",
        "\u2003": " ",
        "\u200b": "",
    }
)
PAGE_NUMBER_RE = re.compile(r"^(?:\d{1,4}|[ivxlcdm]{1,7})$", re.IGNORECASE)
CHAPTER_LINE_RE = re.compile(r"^chapter\s+(\d{1,2})\b[\s:.\-]*(.*)$", re.IGNORECASE)
SECTION_LINE_RE = re.compile(r"^(\d{1,2})\.(\d{1,2})\s+([A-Z0-9_`\"'(].*)$")
OUTLINE_CHAPTER_RE = re.compile(
    r"^(?:chapter\s+)?(\d{1,2})(?:\s*[:.\-]\s*|\s+)(\D.*)$", re.IGNORECASE
)
OUTLINE_SECTION_RE = re.compile(r"^(\d{1,2})\.(\d{1,2})\.?\s+(.+)$")
CAPTION_RE = re.compile(r"^(figure|fig\.|table|listing)\s+\d+\.\d+", re.IGNORECASE)
BULLET_RE = re.compile(r"^([\u2022\u25cf\u25aa\-*]|\d{1,2}[.)])\s+")
HEADER_BAND = 0.09  # top/bottom fraction of the page where running headers and footers live


def _normalise(text: str) -> str:
    return unicodedata.normalize("NFC", text.translate(_LIGATURES)).rstrip()


def open_pdf(path: Path, allow_repaired: bool = False) -> Any:
    """Open a PDF, turning every way it can be unusable into an :class:`IngestError`. A file
    PyMuPDF had to repair (truncated, overwritten) loses pages and chapters silently, so it is
    an error unless ``allow_repaired``, and then a loud warning."""
    import pymupdf

    path = Path(path)
    if not path.is_file():
        raise IngestError(f"{path} does not exist")
    if path.stat().st_size == 0:
        raise IngestError(f"{path} is an empty file: give the path of the book PDF")
    with path.open("rb") as fh:
        magic = fh.read(1024)
    if b"%PDF-" not in magic:
        raise IngestError(
            f"{path} is not a PDF (it starts with {magic[:8]!r}); for Markdown or text notes "
            "use --markdown FOLDER"
        )
    try:
        doc = pymupdf.open(str(path))
    except Exception as err:  # pymupdf raises its own FileDataError and friends
        raise IngestError(f"{path} is a damaged PDF that cannot be opened: {err}") from err
    if doc.needs_pass:
        raise IngestError(
            f"{path} is encrypted: decrypt it first (e.g. `qpdf --decrypt --password=... "
            f"{path.name} book.pdf`) and ingest the decrypted copy"
        )
    if doc.is_repaired:
        if not allow_repaired:
            doc.close()
            raise IngestError(
                f"{path} is damaged: its cross-reference table had to be rebuilt (a truncated or "
                "overwritten file?), so pages and chapters may be missing; get a good copy, or "
                "pass --allow_repaired true to ingest what can be read"
            )
        logger.warning(
            "%s is DAMAGED and was repaired on opening: chapters may be missing or misplaced; "
            "check the chapter table below against the book",
            path,
        )
    try:
        pages = doc.page_count
    except Exception as err:  # a broken page tree ("code=7: Invalid number of pages")
        raise IngestError(f"{path} is a damaged PDF whose pages cannot be counted: {err}") from err
    if pages == 0:
        raise IngestError(f"{path} has no pages")
    return doc


def _page_lines(doc: Any) -> list[list[Line]]:
    pages: list[list[Line]] = []
    for index in range(doc.page_count):
        page = doc[index]
        lines: list[Line] = []
        for block in page.get_text("dict", sort=True)["blocks"]:
            if block.get("type") != 0:
                continue
            for raw in block["lines"]:
                spans = [s for s in raw["spans"] if s["text"].strip()]
                if not spans:
                    continue
                text = _normalise("".join(s["text"] for s in raw["spans"]))
                mono = all(s["flags"] & 8 or _is_mono_font(s["font"]) for s in spans)
                bold = all(s["flags"] & 16 or "bold" in s["font"].lower() for s in spans)
                x0, y0, _, y1 = raw["bbox"]
                lines.append(
                    Line(
                        index + 1,
                        text,
                        max(s["size"] for s in spans),
                        mono,
                        bold,
                        x0,
                        y0,
                        y1,
                        block["number"],
                    )
                )
        pages.append(lines)
    return pages


def _is_mono_font(font: str) -> bool:
    font = font.lower()
    return any(k in font for k in ("courier", "mono", "consol", "menlo", "cour"))


def _strip_running_heads(
    doc: Any, pages: list[list[Line]]
) -> tuple[list[list[Line]], dict[int, str]]:
    """Drop running headers/footers; return the body lines and printed page numbers found."""
    height = doc[0].rect.height
    top, bottom = height * HEADER_BAND, height * (1 - HEADER_BAND)
    # A header sits at the same height on many pages; body text in the band does not recur.
    positions = Counter(
        round(line.y0) for lines in pages for line in lines if line.y1 < top or line.y0 > bottom
    )
    recurring = {y for y, n in positions.items() if n >= max(2, 0.2 * len(pages))}
    printed: dict[int, str] = {}
    body: list[list[Line]] = []
    for lines in pages:
        kept = []
        for line in lines:
            in_band = line.y1 < top or line.y0 > bottom
            near_recurring = any(abs(round(line.y0) - y) <= 2 for y in recurring)
            if in_band and (near_recurring or PAGE_NUMBER_RE.match(line.text.strip())):
                if PAGE_NUMBER_RE.match(line.text.strip()):
                    printed[line.page] = line.text.strip()
                else:  # "12  CHAPTER 2 Title": the number is part of the header line
                    m = re.match(r"^(\d{1,4})\s|\s(\d{1,4})$", line.text.strip())
                    if m:
                        printed.setdefault(line.page, m.group(1) or m.group(2))
                continue
            kept.append(line)
        body.append(kept)
    return body, printed


def page_labels(doc: Any, printed: dict[int, str]) -> dict[int, str]:
    """Printed page label per 1-based page: PDF page labels, else numbers found in headers."""
    labels = {}
    for index in range(doc.page_count):
        label = doc[index].get_label() if hasattr(doc[index], "get_label") else ""
        labels[index + 1] = label or printed.get(index + 1) or str(index + 1)
    return labels


def _chapters_from_outline(doc: Any) -> list[ChapterInfo]:
    chapters: list[ChapterInfo] = []
    for _level, title, page in doc.get_toc(simple=True):
        title = _normalise(title).strip()
        section = OUTLINE_SECTION_RE.match(title)
        if section and chapters and int(section.group(1)) == chapters[-1].number:
            chapters[-1].sections.append(
                SectionInfo(
                    f"{section.group(1)}.{int(section.group(2))}", section.group(3).strip(), page
                )
            )
            continue
        chapter = OUTLINE_CHAPTER_RE.match(title)
        if chapter and not section and page >= 1:
            chapters.append(ChapterInfo(int(chapter.group(1)), chapter.group(2).strip(), page))
    return chapters


def _large_lines(lines: list[Line], start: int, size: float) -> list[str]:
    """The text of the consecutive lines from ``start`` set at ``size`` or larger (a title
    that may wrap), at most three."""
    out: list[str] = []
    for line in lines[start : start + 3]:
        if line.size < size or not line.text.strip():
            break
        out.append(line.text.strip())
    return out


def _chapter_opening(lines: list[Line], i: int, body_size: float) -> tuple[int, str] | None:
    """(number, title) when line ``i`` opens a chapter. Layouts: "CHAPTER 4 Title" in one large
    line; a "CHAPTER 4" label (large, or small but bold) followed by a large title (1.3x body
    size for a large label, 1.6x under a small one); a lone number at 2x body size followed by a
    1.6x title. A contents line ("CHAPTER 4  Title .... 87" at body size, the next entry below
    it) has no large title after it, so it never counts."""
    line, text = lines[i], lines[i].text.strip()
    m = CHAPTER_LINE_RE.match(text)
    if m:
        number, title = int(m.group(1)), m.group(2).strip()
        if line.size >= 1.3 * body_size:
            return number, title or " ".join(_large_lines(lines, i + 1, 1.3 * body_size))
        if line.bold and not title:
            following = _large_lines(lines, i + 1, 1.6 * body_size)
            return (number, " ".join(following)) if following else None
        return None
    if text.isdigit() and len(text) <= 2 and line.size >= 2 * body_size:
        following = _large_lines(lines, i + 1, 1.6 * body_size)
        return (int(text), " ".join(following)) if following else None
    return None


def _chapters_from_typography(pages: list[list[Line]], body_size: float) -> list[ChapterInfo]:
    chapters: list[ChapterInfo] = []
    for lines in pages:
        for i, line in enumerate(lines):
            text = line.text.strip()
            opening = _chapter_opening(lines, i, body_size)
            if opening:
                number, title = opening
                if title and (not chapters or number > chapters[-1].number):
                    chapters.append(ChapterInfo(number, title, line.page, source="typography"))
                continue
            s = SECTION_LINE_RE.match(text)
            if (
                s
                and chapters
                and int(s.group(1)) == chapters[-1].number
                and not line.mono
                and (line.bold or line.size >= 1.08 * body_size)
            ):
                section = f"{s.group(1)}.{int(s.group(2))}"
                if section not in {x.number for x in chapters[-1].sections}:
                    chapters[-1].sections.append(
                        SectionInfo(section, s.group(3).strip(), line.page)
                    )
    return chapters


def load_chapter_map(path: Path) -> list[ChapterInfo]:
    """Read a user's chapter map for a PDF whose outline and typography both fail.

    Format (pages are 1-based PDF page indices)::

        chapters:
          - {number: 4, title: Compute architecture and scheduling, page: 87,
             sections: [{number: "4.1", title: Architecture of a modern GPU, page: 88}]}
    """
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise IngestError(f"chapter map {path}: cannot read it: {err}") from err
    if not isinstance(data, dict) or not isinstance(data.get("chapters"), list):
        raise IngestError(f"chapter map {path}: expected a top-level 'chapters:' list")
    chapters = []
    for i, item in enumerate(data["chapters"], 1):
        try:
            sections = [
                SectionInfo(str(s["number"]), str(s["title"]), int(s["page"]))
                for s in item.get("sections", [])
            ]
            chapters.append(
                ChapterInfo(
                    int(item["number"]), str(item["title"]), int(item["page"]), 0, sections, "map"
                )
            )
        except (KeyError, TypeError, ValueError) as err:
            raise IngestError(
                f"chapter map {path}: entry {i} needs number, title and page ({err!r})"
            ) from err
    return chapters


def _body_size(pages: list[list[Line]]) -> float:
    sizes: Counter[float] = Counter()
    for lines in pages:
        for line in lines:
            if not line.mono:
                sizes[round(line.size, 1)] += len(line.text)
    if not sizes:
        return 10.0
    return sizes.most_common(1)[0][0]


def _is_heading(line: Line, chapter: ChapterInfo, body_size: float) -> bool:
    """Chapter and section heading lines are structure, not body text."""
    text = line.text.strip()
    if line.mono or (line.size < 1.05 * body_size and not line.bold):
        return False
    if CHAPTER_LINE_RE.match(text) or text.lower() == chapter.title.lower():
        return True
    return bool(SECTION_LINE_RE.match(text)) or (line.size >= 1.3 * body_size and len(text) < 80)


def read_pdf(
    path: Path, chapter_map: Path | None = None, allow_repaired: bool = False
) -> tuple[list[ChapterInfo], list[Element], dict[int, str]]:
    """Parse a book PDF into (chapter table, body elements in reading order, page labels)."""
    doc = open_pdf(path, allow_repaired)
    try:
        try:
            pages = _page_lines(doc)
        except (RuntimeError, ValueError) as err:  # pymupdf's errors on a broken page
            raise IngestError(f"{path} is a damaged PDF: a page cannot be read ({err})") from err
        n_chars = sum(len(line.text) for lines in pages for line in lines)
        if n_chars < 50 * doc.page_count * 0.2:
            raise IngestError(
                f"{path} has almost no text layer ({n_chars} characters on {doc.page_count} pages): "
                f"it looks scanned; run OCR first (e.g. `ocrmypdf {Path(path).name} ocr.pdf`)"
            )
        body, printed = _strip_running_heads(doc, pages)
        labels = page_labels(doc, printed)
        body_size = _body_size(body)
        if chapter_map is not None:
            chapters = load_chapter_map(chapter_map)
        else:
            chapters = _chapters_from_outline(doc) or _chapters_from_typography(body, body_size)
        if not chapters:
            raise IngestError(
                f"{path}: found no chapters (no numbered outline entries, no 'CHAPTER N' "
                "headings); write a chapter map YAML and pass --chapter_map FILE"
            )
        chapters.sort(key=lambda c: c.page_start)
        for this, nxt in zip(chapters, [*chapters[1:], None], strict=True):
            this.page_end = (nxt.page_start - 1 if nxt else doc.page_count) or this.page_start
            this.page_end = max(this.page_end, this.page_start)
        elements = _elements(body, chapters, body_size)
    finally:
        doc.close()
    return chapters, elements, labels


def _locate_sections(
    body: list[list[Line]], chapter: ChapterInfo, body_size: float
) -> dict[int, SectionInfo]:
    """Map id(line) of each section heading line to its section."""
    found: dict[int, SectionInfo] = {}
    for section in chapter.sections:
        candidates = [
            ln
            for p in range(section.page, min(section.page + 1, len(body)) + 1)
            for ln in body[p - 1]
        ]
        for line in candidates:
            text = re.sub(r"\s+", " ", line.text.strip())
            if text.startswith(section.number + " ") and _is_heading(line, chapter, body_size):
                found[id(line)] = section
                break
    return found


def _elements(
    body: list[list[Line]], chapters: list[ChapterInfo], body_size: float
) -> list[Element]:
    words = _vocabulary(body)
    out: list[Element] = []
    for chapter in chapters:
        for kind, lines, section in _runs(body, chapter, body_size):
            text = _code_text(lines) if kind == "code" else _join(lines, words)
            if text.strip():
                out.append(
                    Element(
                        kind,
                        text,
                        lines[0].page,
                        lines[-1].page,
                        chapter.number,
                        section.number,
                        section.title,
                    )
                )
    return out


Run = tuple[Literal["paragraph", "code", "caption"], list[Line], SectionInfo]


def _runs(body: list[list[Line]], chapter: ChapterInfo, body_size: float) -> list[Run]:
    """Group a chapter's body lines into paragraphs, code listings and captions."""
    heading_lines = _locate_sections(body, chapter, body_size)
    section = SectionInfo(f"{chapter.number}.0", chapter.title, chapter.page_start)
    runs: list[Run] = []
    prev: Line | None = None
    for page in range(chapter.page_start, chapter.page_end + 1):
        for line in body[page - 1]:
            text = line.text.strip()
            if id(line) in heading_lines:
                section, prev = heading_lines[id(line)], None
                continue
            if _is_heading(line, chapter, body_size):
                prev = None
                continue
            if not line.mono and line.size < 0.8 * body_size and not CAPTION_RE.match(text):
                continue  # stray label inside a figure
            kind: Literal["paragraph", "code", "caption"] = (
                "code" if line.mono else "caption" if CAPTION_RE.match(text) else "paragraph"
            )
            if prev is None or not runs or _starts_new(runs[-1], prev, line, kind):
                runs.append((kind, [], section))
            runs[-1][1].append(line)
            prev = line
    return runs


def _starts_new(run: Run, prev: Line, line: Line, kind: str) -> bool:
    run_kind, lines, _ = run
    if kind == "caption" or (kind != "code" and BULLET_RE.match(line.text.strip())):
        return True
    if kind != run_kind:
        # A caption's second line is body-sized text in the caption's own block.
        return not (run_kind == "caption" and kind == "paragraph" and _same_block(prev, line))
    if line.page != prev.page:
        return not _continues(lines, line)
    if kind == "code":
        return False
    return line.block != prev.block or line.y0 - prev.y1 > 0.6 * line.size


def _same_block(a: Line, b: Line) -> bool:
    return a.page == b.page and a.block == b.block


def _continues(current: list[Line], line: Line) -> bool:
    """A paragraph broken by a page turn: previous text has no final stop, next starts lowercase."""
    if not current or current[-1].mono or line.mono:
        return bool(current) and current[-1].mono and line.mono
    last = current[-1].text.rstrip()
    return not re.search(r"[.!?:;)\]]$", last) and (
        line.text.strip()[:1].islower() or last.endswith("-")
    )


def _vocabulary(body: list[list[Line]]) -> Counter[str]:
    words: Counter[str] = Counter()
    for lines in body:
        for line in lines:
            words.update(w.lower() for w in re.findall(r"[A-Za-z]+(?:-[A-Za-z]+)*", line.text))
    return words


def _join(lines: list[Line], words: Counter[str]) -> str:
    """Join wrapped lines into one paragraph, rejoining words hyphenated at a line break."""
    text = lines[0].text.strip()
    for line in lines[1:]:
        nxt = line.text.strip()
        m = re.search(r"([A-Za-z]+)-$", text)
        n = re.match(r"([a-z][A-Za-z]*)", nxt)
        if m and n:
            head, tail = m.group(1), n.group(1)
            text = text + nxt if _keep_hyphen(head, tail, words) else text[:-1] + nxt
        else:
            text = f"{text} {nxt}"
    return re.sub(r"[ \t]+", " ", text)


def _keep_hyphen(head: str, tail: str, words: Counter[str]) -> bool:
    """Is "head-" + "tail" at a line break a hyphenated compound rather than a split word?

    The document decides where it can: a form it uses mid-line wins. Otherwise two halves that
    are both words of the document ("per-dimension", "thread-level") keep their hyphen, while
    syllables that are no words ("synchro-nization") are joined.
    """
    compound, joined = f"{head}-{tail}".lower(), (head + tail).lower()
    if words[joined] and not words[compound]:
        return False
    if words[compound] and not words[joined]:
        return True
    # counts include the halves themselves, hence "> 1"
    return words[head.lower()] > 1 and words[tail.lower()] > 1


def _code_text(lines: list[Line]) -> str:
    """Code lines verbatim, indentation rebuilt from x positions (monospace: 0.6 em per char)."""
    left = min(line.x0 for line in lines)
    out = []
    for line in lines:
        # Leading spaces may be glyphs in the text layer or just a shifted x position.
        spaces = len(line.text) - len(line.text.lstrip(" "))
        indent = spaces + round((line.x0 - left) / (0.6 * line.size))
        out.append(" " * indent + line.text.strip())
    return "\n".join(out)
