"""Synthetic book PDFs with known truth, for ingestion tests and benchmarks.

A generated book has what makes real books hard to ingest: running headers (chapter title on
even pages, section title on odd pages), printed page numbers that differ from PDF page indices,
chapter opening pages, bold numbered section headings, words hyphenated at line ends, hyphenated
compounds that must keep their hyphen, Courier code listings with indentation, figures with
stray small labels, and captions. With ``outline=False`` it has no PDF outline, so chapters
must be found from typography. The returned :class:`BookTruth` says what ingestion must find.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BookTruth", "make_book"]

PAGE_W, PAGE_H = 504.0, 720.0
LEFT, RIGHT = 54.0, 450.0
BODY_TOP, BODY_BOTTOM = 80.0, 640.0
LEADING = 13.0

WORDS = (
    "thread block grid warp kernel memory tile shared global register latency bandwidth "
    "synchronization multiprocessor coalescing occupancy parallelism performance throughput "
    "architecture computation hierarchical configuration scheduling divergence reduction "
    "convolution instruction transaction boundary allocation execution independent "
    "the a of to and in that each every when which data value index array element load store"
).split()
COMPOUNDS = ["thread-level", "on-chip", "read-only", "row-major", "fine-grained"]
CODE = [
    "__global__ void scale(float* x, float a, int n) {",
    "    int i = blockIdx.x * blockDim.x + threadIdx.x;",
    "    if (i < n) {",
    "        x[i] = a * x[i];",
    "    }",
    "}",
]


@dataclass
class SectionTruth:
    number: str
    title: str
    page: int  # 1-based PDF page


@dataclass
class ChapterTruth:
    number: int
    title: str
    page: int
    sections: list[SectionTruth] = field(default_factory=list)


@dataclass
class BookTruth:
    chapters: list[ChapterTruth]
    hyphenated: set[str]  # words that were split at a line end with a hyphen
    headers: set[str]  # running header strings
    pages: int
    label_offset: int = 1  # printed page number = PDF page index - label_offset


class _Writer:
    def __init__(self, doc: Any, rng: random.Random, truth: BookTruth) -> None:
        self.doc, self.rng, self.truth = doc, rng, truth
        self.page: Any = None
        self.y = BODY_TOP
        self.chapter: ChapterTruth | None = None
        self.section: SectionTruth | None = None

    def new_page(self, opening: bool = False) -> None:
        self.page = self.doc.new_page(width=PAGE_W, height=PAGE_H)
        index = self.doc.page_count  # 1-based index of the new page
        printed = index - self.truth.label_offset
        self.page.insert_text((PAGE_W / 2 - 6, 690), str(printed), fontsize=9, fontname="tiro")
        self.y = BODY_TOP
        if opening or self.chapter is None:
            return
        if printed % 2 == 0:
            header = f"CHAPTER {self.chapter.number}  {self.chapter.title}"
            self.page.insert_text((LEFT, 44), header, fontsize=8.5, fontname="tiit")
        elif self.section is not None:
            header = f"{self.section.number}  {self.section.title}"
            self.page.insert_text((RIGHT - 160, 44), header, fontsize=8.5, fontname="tiit")
        else:
            return
        self.truth.headers.add(header)

    def room(self, height: float) -> None:
        if self.y + height > BODY_BOTTOM:
            self.new_page()

    def text_line(self, text: str, size: float = 10, font: str = "tiro") -> None:
        self.room(LEADING)
        self.page.insert_text((LEFT, self.y + size), text, fontsize=size, fontname=font)
        self.y += LEADING if size <= 10 else size * 1.5

    def paragraph(self, sentences: int) -> None:
        import pymupdf

        words: list[str] = []
        for _ in range(sentences):
            sentence = [self.rng.choice(WORDS) for _ in range(self.rng.randint(8, 16))]
            if self.rng.random() < 0.3:
                sentence.insert(self.rng.randrange(len(sentence)), self.rng.choice(COMPOUNDS))
            sentence[0] = sentence[0].capitalize()
            sentence[-1] += "."
            words.extend(sentence)
        line = ""
        for word in words:
            trial = f"{line} {word}".strip()
            if pymupdf.get_text_length(trial, fontname="tiro", fontsize=10) <= RIGHT - LEFT:
                line = trial
                continue
            bare = word.rstrip(".")
            if len(bare) >= 9 and "-" not in word and word[0].islower():
                cut = len(bare) // 2
                head = f"{line} {word[:cut]}-".strip()
                if pymupdf.get_text_length(head, fontname="tiro", fontsize=10) <= RIGHT - LEFT:
                    self.truth.hyphenated.add(bare)
                    self.text_line(head)
                    line = word[cut:]
                    continue
            self.text_line(line)
            line = word
        if line:
            self.text_line(line)
        self.y += 4

    def code(self) -> None:
        self.room(LEADING * len(CODE))
        for text in CODE:
            self.page.insert_text((LEFT, self.y + 8), text, fontsize=8, fontname="cour")
            self.y += 10
        self.y += 6

    def figure(self, label: str) -> None:
        import pymupdf

        self.room(110)
        rect = pymupdf.Rect(LEFT + 60, self.y, RIGHT - 60, self.y + 80)
        self.page.draw_rect(rect, color=(0, 0, 0))
        for i, stray in enumerate(["SM 0", "Tile", "x0"]):
            self.page.insert_text(
                (rect.x0 + 10 + 60 * i, rect.y0 + 40), stray, fontsize=6, fontname="helv"
            )
        self.y += 86
        self.text_line(
            f"Figure {label}: Threads of one block share a tile in on-chip memory.", size=9
        )
        self.y += 6


def _chapter_opening(page: Any, number: int, title: str, layout: str) -> None:
    if layout == "big-label":
        page.insert_text((LEFT, 160), f"CHAPTER {number}", fontsize=20, fontname="hebo")
        page.insert_text((LEFT, 190), title, fontsize=18, fontname="hebo")
    elif layout == "small-label":
        page.insert_text((LEFT, 150), f"CHAPTER {number}", fontsize=10, fontname="hebo")
        words = title.split()
        half = len(words) // 2
        page.insert_text((LEFT, 190), " ".join(words[:half]), fontsize=26, fontname="tibo")
        page.insert_text((LEFT, 222), " ".join(words[half:]), fontsize=26, fontname="tibo")
    elif layout == "one-line":
        page.insert_text((LEFT, 180), f"Chapter {number}: {title}", fontsize=15, fontname="tibo")
    elif layout == "number-only":
        page.insert_text((LEFT, 170), str(number), fontsize=48, fontname="hebo")
        page.insert_text((LEFT, 215), title, fontsize=22, fontname="hebo")
    else:
        raise ValueError(f"unknown chapter layout {layout!r}")


def make_book(
    path: Path,
    chapters: int = 4,
    sections: int = 3,
    paragraphs_per_section: int = 6,
    outline: bool = True,
    seed: int = 0,
    layout: str = "big-label",
    contents: bool = False,
) -> BookTruth:
    """Write a synthetic book to ``path`` and return what ingestion must find in it.

    ``layout`` sets the chapter opening: ``big-label`` ("CHAPTER 3" and the title, both large),
    ``small-label`` (a small bold "CHAPTER 3" line, then the title at 2.6x body size over two
    lines), ``one-line`` ("Chapter 3: Title" in one large line, Times), ``number-only`` (a huge
    "3", then the title). ``contents`` adds a contents page listing "CHAPTER n  Title .... page"
    lines at body size, which must not count as openings."""
    import pymupdf

    rng = random.Random(seed)
    truth = BookTruth([], set(), set(), 0)
    doc = pymupdf.open()
    writer = _Writer(doc, rng, truth)
    title_page = doc.new_page(width=PAGE_W, height=PAGE_H)
    title_page.insert_text(
        (LEFT, 300), "A Synthetic Book on GPU Programming", fontsize=20, fontname="hebo"
    )
    if contents:
        page = doc.new_page(width=PAGE_W, height=PAGE_H)
        page.insert_text((LEFT, 80), "Contents", fontsize=16, fontname="hebo")
        for c in range(1, chapters + 1):
            entry = f"CHAPTER {c}  Topic number {c} of parallel programming ........ {10 * c}"
            page.insert_text((LEFT, 110 + 16 * c), entry, fontsize=10, fontname="tiro")
    for c in range(1, chapters + 1):
        writer.section = None
        chapter = ChapterTruth(c, f"Topic number {c} of parallel programming", 0)
        writer.chapter = chapter
        writer.new_page(opening=True)
        chapter.page = doc.page_count
        _chapter_opening(writer.page, c, chapter.title, layout)
        writer.y = 260
        writer.paragraph(3)
        for s in range(1, sections + 1):
            writer.room(LEADING * 4)
            section = SectionTruth(f"{c}.{s}", f"Aspect {s} of topic {c}", doc.page_count)
            writer.section = section
            writer.y += 6
            writer.text_line(f"{section.number} {section.title}", size=12, font="hebo")
            chapter.sections.append(section)
            for p in range(paragraphs_per_section):
                writer.paragraph(rng.randint(3, 6))
                if p == 1:
                    writer.code()
                if p == 3:
                    writer.figure(f"{c}.{s}")
        truth.chapters.append(chapter)
    if outline:
        toc = []
        for chapter in truth.chapters:
            toc.append([1, f"Chapter {chapter.number} {chapter.title}", chapter.page])
            toc.extend([2, f"{s.number} {s.title}", s.page] for s in chapter.sections)
        doc.set_toc(toc)
    truth.pages = doc.page_count
    doc.save(str(path), garbage=3, deflate=True)
    doc.close()
    return truth
