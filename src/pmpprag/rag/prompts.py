"""Prompts of the RAG stage, as data: system instructions, context formatting, MCQ parsing.

Passages are numbered ``[n]`` with their provenance (chapter, section, printed page), the model
is told to answer only from them and to cite ``[n]``; the answer language follows the question
unless configured. The context budget trims passages (last first, at sentence boundaries), never
the question.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from pmpprag.schema import CITATION_MARKER, Hit

__all__ = [
    "ANSWER_INSTRUCTIONS",
    "MCQ_INSTRUCTIONS",
    "NOT_COVERED",
    "build_context",
    "cited_numbers",
    "format_choices",
    "parse_letter",
    "provenance",
    "split_choices",
]

LETTERS = "ABCDEFGH"

ANSWER_INSTRUCTIONS = {
    "en": (
        "You are a teaching assistant for the textbook Programming Massively Parallel Processors "
        "(CUDA). Answer the question using only the numbered passages, and cite the passages you "
        "use like [1]. If the passages do not contain the answer, say that the textbook passages "
        "do not cover it."
    ),
    "zh": (
        "你是《大规模并行处理器编程实战》(Programming Massively Parallel Processors, CUDA) 的助教。"
        "只根据给出的编号段落回答问题，并用 [1] 这样的编号注明引用的段落。"
        "如果段落中没有答案，就说明教材段落没有涉及。请用中文回答，保留英文术语和代码标识符。"
    ),
}
CONCISE = {
    "en": " Answer in at most three sentences; keep CUDA terms and identifiers exactly as written.",
    "zh": " 回答不超过三句话，准确保留CUDA术语和标识符。",
}
MCQ_INSTRUCTIONS = (
    "Choose the correct option. Reply with the option letter first, then one short line of reason."
)
NOT_COVERED = {
    "en": "The textbook index does not seem to cover this question, so I will not guess.",
    "zh": "教材索引中没有找到与这个问题相关的内容，因此不作猜测。",
}
# After the quoted sentences when the question is about code: the listing line that matches it.
KEY_CODE = {"en": "Key code: `{code}`", "zh": "关键代码：`{code}`。"}
# Before the quoted sentences when the worked-formula calculator read the question.
WORKED_LEAD = {"en": "Worked: {work}. ", "zh": "计算：{work}。"}
# After the question in abstractive prompts when the calculator read it.
CALCULATOR_HINT = {
    "en": "Calculator (applies the textbook formula to the question's numbers): {work}",
    "zh": "计算器（按教材公式代入题中数字）：{work}",
}


def provenance(hit: Hit) -> str:
    c = hit.chunk
    page = f", p. {c.page_label}" if c.page_label else ""
    if c.lang == "zh":  # the Chinese notes are cited by section
        return f"第 {c.chapter} 章 {c.section} {c.section_title}（中文笔记）{page}"
    return f"Chapter {c.chapter}, {c.section} {c.section_title}{page}"


def _trim(text: str, budget: int, count: Callable[[str], int]) -> str:
    sentences = re.split(r"(?<=[.!?])\s+", text)
    kept: list[str] = []
    for sentence in sentences:
        if count(" ".join([*kept, sentence])) > budget:
            break
        kept.append(sentence)
    return " ".join(kept)


@dataclass
class Context:
    text: str
    hits: list[Hit]  # the passages actually given, in [n] order


def build_context(hits: list[Hit], budget_tokens: int, count: Callable[[str], int]) -> Context:
    """Numbered passages with provenance, within ``budget_tokens``; later passages trimmed first."""
    blocks: list[str] = []
    used: list[Hit] = []
    spent = 0
    for hit in hits:
        header = f"[{len(used) + 1}] ({provenance(hit)})\n"
        cost = count(header + hit.chunk.text)
        if spent + cost > budget_tokens:
            room = budget_tokens - spent - count(header)
            trimmed = _trim(hit.chunk.text, room, count) if room > 20 else ""
            if trimmed:
                blocks.append(header + trimmed)
                used.append(hit)
            break
        blocks.append(header + hit.chunk.text)
        used.append(hit)
        spent += cost
    return Context("\n\n".join(blocks), used)


def format_choices(choices: list[str]) -> str:
    return "\n".join(f"{LETTERS[i]}. {choice}" for i, choice in enumerate(choices))


_CHOICE_LINE = re.compile(r"^\s*[(（]?([A-H])\s*[.．、:：)）]\s*(.+?)\s*$")


def split_choices(text: str) -> tuple[str, list[str]]:
    """A question with its options written inline (lines "A. ...", "B、...", "(C) ...").

    Returns the question without the option lines and the options, or ``(text, [])`` when the
    text holds no run of at least two option lines lettered A, B, ... in order.
    """
    lines = text.strip().splitlines()
    choices: list[str] = []
    first = None
    for i, line in enumerate(lines):
        m = _CHOICE_LINE.match(line)
        if m and m.group(1) == LETTERS[len(choices)]:
            first = i if first is None else first
            choices.append(m.group(2))
        elif choices:
            break
    if len(choices) < 2 or first is None or first == 0:
        return text, []
    return "\n".join(lines[:first]).strip(), choices


def parse_letter(text: str, n_choices: int) -> str | None:
    """The first option letter a model's reply commits to ("B", "B.", "(B)", "Answer: B")."""
    valid = LETTERS[:n_choices]
    # Upper case only: a lower-case "a" is an article, not an answer.
    m = re.search(rf"(?<![A-Za-z])([{valid}])(?![A-Za-z])", text)
    return m.group(1) if m else None


def cited_numbers(text: str) -> list[int]:
    """The numbers of the text's citation markers (not of indices in code such as ``a[1]``)."""
    return [int(m.group(1)) for m in CITATION_MARKER.finditer(text)]
