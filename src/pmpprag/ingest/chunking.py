"""Structure-aware chunking: section boundaries first, then paragraphs packed to a token budget.

Rules: a chunk never crosses a section; paragraphs, captions and code listings are packed whole
while they fit; an oversized prose paragraph is split at sentence boundaries by llama-index's
``SentenceSplitter`` (it handles abbreviations and the budget/overlap bookkeeping, and takes our
tokenizer, so no tokenizer is downloaded); an oversized code listing is split between lines,
never inside one. Consecutive chunks of a section share ``overlap_tokens`` of trailing prose.
Token counts come from the embedding model's own tokenizer, so the budget is the model's.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pmpprag.config import option

__all__ = ["ChunkingConfig", "Piece", "pack_section"]


@dataclass
class ChunkingConfig:
    max_tokens: int = option(200, "token budget per chunk (MiniLM reads at most 256 word pieces)")
    overlap_tokens: int = option(32, "trailing prose carried into the next chunk of a section")
    tokenizer: str = option(
        "minilm-l6", "model whose tokenizer counts tokens (registry name/folder)"
    )

    def __post_init__(self) -> None:
        if self.max_tokens < 32:
            raise ValueError("--chunking.max_tokens must be at least 32")
        if not 0 <= self.overlap_tokens < self.max_tokens // 2:
            raise ValueError("--chunking.overlap_tokens must be >= 0 and under half of max_tokens")


@dataclass
class Piece:
    """One element of a section (paragraph, caption or code) with its provenance span."""

    kind: str  # "paragraph" | "caption" | "code"
    text: str
    start: int  # page or line where it starts
    end: int
    continued: bool = (
        False  # a later part of a split paragraph: it already overlaps the part before
    )


@dataclass
class PackedChunk:
    text: str
    kind: str  # "text" | "code" | "mixed"
    n_tokens: int
    start: int
    end: int


CountTokens = Callable[[str], int]


def _render(piece: Piece) -> str:
    return f"```\n{piece.text}\n```" if piece.kind == "code" else piece.text


def _split_code(piece: Piece, budget: int, count: CountTokens) -> list[Piece]:
    parts: list[Piece] = []
    current: list[str] = []
    for line in piece.text.split("\n"):
        if current and count("\n".join([*current, line])) > budget:
            parts.append(Piece("code", "\n".join(current), piece.start, piece.end))
            current = []
        current.append(line)
    if current:
        parts.append(Piece("code", "\n".join(current), piece.start, piece.end))
    return parts


def _split_prose(piece: Piece, budget: int, overlap: int, count: CountTokens) -> list[Piece]:
    from llama_index.core.node_parser import SentenceSplitter

    splitter = SentenceSplitter(
        chunk_size=budget, chunk_overlap=overlap, tokenizer=lambda s: [0] * count(s)
    )
    parts = splitter.split_text(piece.text)
    return [
        Piece(piece.kind, t, piece.start, piece.end, continued=i > 0) for i, t in enumerate(parts)
    ]


def _tail(text: str, overlap: int, count: CountTokens) -> str:
    """The last whole sentences of ``text`` that fit in ``overlap`` tokens."""
    sentences = re.split(r"(?<=[.!?])\s+", text)
    tail: list[str] = []
    for sentence in reversed(sentences):
        if count(" ".join([sentence, *tail])) > overlap:
            break
        tail.insert(0, sentence)
    return " ".join(tail)


def pack_section(
    pieces: Sequence[Piece], cfg: ChunkingConfig, count: CountTokens
) -> list[PackedChunk]:
    """Pack one section's pieces into chunks of at most ``cfg.max_tokens`` tokens."""
    units: list[Piece] = []
    for piece in pieces:
        # The fences of a code piece cost a few tokens: leave room for them.
        if count(_render(piece)) <= cfg.max_tokens:
            units.append(piece)
        elif piece.kind == "code":
            units.extend(_split_code(piece, cfg.max_tokens - 8, count))
        else:
            units.extend(_split_prose(piece, cfg.max_tokens, cfg.overlap_tokens, count))

    chunks: list[PackedChunk] = []
    current: list[Piece] = []

    def close() -> None:
        text = "\n\n".join(_render(p) for p in current)
        kinds = {"code" if p.kind == "code" else "text" for p in current}
        kind = kinds.pop() if len(kinds) == 1 else "mixed"
        chunks.append(PackedChunk(text, kind, count(text), current[0].start, current[-1].end))

    for unit in units:
        candidate = "\n\n".join(_render(p) for p in [*current, unit])
        if current and count(candidate) > cfg.max_tokens:
            close()
            last = current[-1]
            current = []
            if cfg.overlap_tokens and "code" not in (last.kind, unit.kind) and not unit.continued:
                tail = _tail(last.text, cfg.overlap_tokens, count)
                if tail and tail != last.text and count(f"{tail}\n\n{unit.text}") <= cfg.max_tokens:
                    current.append(Piece(last.kind, tail, last.start, last.end))
        current.append(unit)
    if current:
        close()
    return chunks


def chunk_id(chapter: int, section: str, index: int, text: str, lang: str = "en") -> str:
    """Stable id: same input and settings -> same id; any change in the text -> a new id.
    Chinese chunks carry "zh" ("c04.3-zh002-1a2b3c4d") so the two languages never collide."""
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]
    marker = "" if lang == "en" else lang
    return f"c{chapter:02d}.{section.split('.', 1)[-1]}-{marker}{index:03d}-{digest}"
