"""Read the corpus Markdown subset into blocks: chapter and section headings, paragraphs,
list items and code listings, each with its source line range.

The subset (see data/corpus/README.md): ``# Chapter N: Title`` (``# 第 N 章：标题`` in the Chinese
notes), ``## N.M Title``, ``### Title``,
blank-line separated paragraphs, ``- `` and ``1. `` list items, fenced code blocks, inline
code and bold. Both the PDF builder and Markdown ingestion read through this one parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pmpprag.errors import PmppragError
from pmpprag.text import INLINE_CODE

__all__ = ["Block", "MarkdownError", "parse_markdown", "plain_inline"]

# "# Chapter 4: Title" in the English notes, "# 第 4 章：标题" in the Chinese ones
CHAPTER_RE = re.compile(
    r"^#\s+(?:Chapter\s+(\d+)\s*[:.]|第\s*(\d+)\s*章\s*[:：]?)\s*(.+?)\s*$", re.IGNORECASE
)
SECTION_RE = re.compile(r"^##\s+(\d+)\.(\d+)\s+(.+?)\s*$")
SUBSECTION_RE = re.compile(r"^###\s+(.+?)\s*$")
LIST_RE = re.compile(r"^(\s*)([-*]|\d+\.)\s+(.*)$")

BlockKind = Literal["chapter", "section", "subsection", "paragraph", "list_item", "code"]


class MarkdownError(PmppragError, ValueError):
    """The file does not follow the corpus Markdown subset; the message names file and line."""


@dataclass
class Block:
    kind: BlockKind
    text: str  # heading title, paragraph text (inline markup kept), or the code verbatim
    line_start: int
    line_end: int
    number: str = ""  # "4" for a chapter, "4.3" for a section
    marker: str = ""  # "-" or "1." for list items; the language for code
    indent: int = 0  # list nesting, in leading spaces


def parse_markdown(path: Path) -> list[Block]:
    """Parse one chapter file. The first block is always its ``chapter`` heading."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    para: list[str] = []
    para_start = 0
    i = 0

    def flush(end: int) -> None:
        nonlocal para
        if not para:
            return
        item = LIST_RE.match(para[0])
        if item:
            text = " ".join([item.group(3), *(p.strip() for p in para[1:])])
            blocks.append(
                Block(
                    "list_item",
                    text,
                    para_start,
                    end,
                    marker=item.group(2),
                    indent=len(item.group(1)),
                )
            )
        else:
            blocks.append(Block("paragraph", " ".join(p.strip() for p in para), para_start, end))
        para = []

    while i < len(lines):
        line, lineno = lines[i], i + 1
        if line.startswith("```"):
            flush(lineno - 1)
            lang = line[3:].strip()
            end = i + 1
            while end < len(lines) and not lines[end].startswith("```"):
                end += 1
            if end == len(lines):
                raise MarkdownError(f"{path}:{lineno}: code block is never closed with ```")
            blocks.append(
                Block("code", "\n".join(lines[i + 1 : end]), lineno, end + 1, marker=lang)
            )
            i = end + 1
            continue
        heading = CHAPTER_RE.match(line) or SECTION_RE.match(line) or SUBSECTION_RE.match(line)
        if line.startswith("#") and heading:
            flush(lineno - 1)
            if heading.re is CHAPTER_RE:
                number = heading.group(1) or heading.group(2)
                blocks.append(Block("chapter", heading.group(3), lineno, lineno, number=number))
            elif heading.re is SECTION_RE:
                number = f"{heading.group(1)}.{heading.group(2)}"
                blocks.append(Block("section", heading.group(3), lineno, lineno, number=number))
            else:
                blocks.append(Block("subsection", heading.group(1), lineno, lineno))
        elif line.startswith("#") and not line.startswith("#include"):
            raise MarkdownError(
                f"{path}:{lineno}: heading {line!r} is not '# Chapter N: Title' (or "
                "'# 第 N 章：标题'), '## N.M Title' or '### Title'"
            )
        elif not line.strip():
            flush(lineno - 1)
        elif LIST_RE.match(line) and para:
            flush(lineno - 1)
            para, para_start = [line], lineno
        else:
            if not para:
                para_start = lineno
            para.append(line)
        i += 1
    flush(len(lines))

    if not blocks or blocks[0].kind != "chapter":
        raise MarkdownError(f"{path}:1: the file must start with '# Chapter N: Title'")
    chapter = blocks[0].number
    for block in blocks[1:]:
        if block.kind == "chapter":
            raise MarkdownError(f"{path}:{block.line_start}: a second chapter heading in one file")
        if block.kind == "section" and block.number.split(".")[0] != chapter:
            raise MarkdownError(
                f"{path}:{block.line_start}: section {block.number} in chapter {chapter}"
            )
    return blocks


_BOLD = re.compile(r"\*\*(.+?)\*\*")


def inline_markup(text: str, code: str = "{}", bold: str = "{}") -> str:
    """Render a line's inline markup: each code span's content through ``code``, each bold run
    through ``bold`` (format strings). A code span is opaque to bold: the ``**`` of `void **`
    is C, while **a `kernel` call** is bold around a code span."""
    spans: list[str] = []

    def hide(match: re.Match[str]) -> str:
        spans.append(match.group(1))
        return f"\x00{len(spans) - 1}\x00"

    hidden = _BOLD.sub(lambda m: bold.format(m.group(1)), INLINE_CODE.sub(hide, text))
    return re.sub("\x00(\\d+)\x00", lambda m: code.format(spans[int(m.group(1))]), hidden)


def plain_inline(text: str) -> str:
    """Drop inline markup: ``code`` and **bold** become their text (:func:`inline_markup`)."""
    return inline_markup(text)
