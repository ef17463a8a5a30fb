"""Prompts of the RAG stage, as data: system instructions, context formatting, MCQ parsing.

Passages are numbered ``[n]`` with their provenance (chapter, section, printed page), the model
is told to answer only from them and to cite ``[n]``; the answer language follows the question
unless configured. The context budget trims passages (last first, at sentence boundaries), never
the question.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
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
    "trim_texts",
    "user_turn",
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
# How the not-covered sentences (NOT_COVERED) open: a reply that opens so declines (auto mode
# stops listening there). Long enough that no answer starts so by chance ("The textbook ...").
DECLINES = ("教材索引中没有", "The textbook index does not")


def declines(text: str) -> bool:
    """Whether a reply opens with the not-covered sentence: how the assistant, `pmpprag
    onpolicy` and the dev-set proxy read a refusal."""
    return text.lstrip().startswith(DECLINES)


# After the quoted sentences when the question is about code: the listing line that matches it.
KEY_CODE = {"en": "Key code: `{code}`", "zh": "关键代码：`{code}`。"}
# After them, for a question that asks for code to be written (extractive.asks_to_write_code):
# the notes' listing that holds the key line.
KEY_LISTING = {"en": "Code:\n```\n{code}\n```\n", "zh": "代码：\n```\n{code}\n```\n"}
# Before the quoted sentences when the worked-formula calculator read the question.
WORKED_LEAD = {"en": "Worked: {work}. ", "zh": "计算：{work}。"}
# The user turn: passages, question, and for MCQ the options (its instruction follows them).
USER_TURN = {
    "passages": "Passages:\n{passages}\n\n",
    "question": "Question: {question}",
    "options": "\n\nOptions:\n{options}\n\n",
}
# A passage's header in the numbered context: "[n] (provenance)".
PROVENANCE = {
    "zh": "第 {chapter} 章 {section} {title}（中文笔记）{page}",
    "en": "Chapter {chapter}, {section} {title}{page}",
    "page": ", p. {label}",
}
# After the question in abstractive prompts when the calculator read it.
CALCULATOR_HINT = {
    "en": "Calculator (applies the textbook formula to the question's numbers): {work}",
    "zh": "计算器（按教材公式代入题中数字）：{work}",
}


def provenance(hit: Hit) -> str:
    c = hit.chunk
    page = PROVENANCE["page"].format(label=c.page_label) if c.page_label else ""
    # the Chinese notes are cited by section
    form = PROVENANCE["zh"] if c.lang == "zh" else PROVENANCE["en"]
    return form.format(chapter=c.chapter, section=c.section, title=c.section_title, page=page)


def user_turn(question: str, passages: str = "", options: str = "") -> str:
    """The user message: the numbered passages (if any), the question, and for MCQ the lettered
    options followed by the MCQ instruction."""
    text = USER_TURN["passages"].format(passages=passages) if passages else ""
    text += USER_TURN["question"].format(question=question)
    if options:
        text += USER_TURN["options"].format(options=options) + MCQ_INSTRUCTIONS
    return text


def trim_texts(questions: Iterable[str] = ()) -> list[str]:
    """The prompts' own words as the model reads them, for a trimmed vocabulary
    (generation/vocab.py) to keep: every table of this module, user turns rendered around
    sample passages and questions in both languages, and the calculator's hint in both
    languages for each of ``questions`` that it reads. A frame token the trimmed vocabulary
    lacks is spelled in pieces, so the served prompt would differ from the one the model was
    tuned on (measured: "Passages", "Question" and "。[" were dropped, and the tuned gemma
    answered differently)."""
    from pmpprag.rag.calc import solve, worked_text

    texts = [str(v) for table in (ANSWER_INSTRUCTIONS, CONCISE, NOT_COVERED, KEY_CODE, KEY_LISTING, WORKED_LEAD,
                                  CALCULATOR_HINT, USER_TURN, PROVENANCE) for v in table.values()]  # fmt: skip
    texts.append(MCQ_INSTRUCTIONS)
    samples = {
        "zh": ("共享内存是每个块私有的片上存储。", "什么是共享内存？", "线程块", "2.4 主机与设备"),
        "en": ("Shared memory is on-chip storage private to a block.", "What is shared memory?",
               "Thread blocks", "2.4 Host and device"),
    }  # fmt: skip
    for lang, (sentence, question, title, section) in samples.items():
        for n in range(1, 10):
            header = PROVENANCE[lang].format(
                chapter=n, section=section.split()[0], title=title,
                page=PROVENANCE["page"].format(label=100 + n) if n % 2 else "",
            )  # fmt: skip
            passages = f"[{n}] ({header})\n{sentence}\n\n[{n + 1}] ({header})\n{sentence}"
            texts.append(user_turn(question, passages))
            texts.append(user_turn(question, passages, format_choices([sentence, title])))
            hint = CALCULATOR_HINT[lang].format(work=f"{n} x 32 = {n * 32}")
            texts.append(user_turn(question, passages) + "\n\n" + hint)
            # a tuned answer's citations: "。[1]" is one token, the one it ends most Chinese
            # answers with (dropped, the trimmed gemma could never cite and ran on instead)
            texts.append(
                f"{sentence}[{n}] {sentence[:-1]} [{n}].{sentence}（[{n}]）{sentence}[{n}][{n + 1}]"
            )
    for question in questions:
        if worked := solve(question):
            texts += [CALCULATOR_HINT[lang].format(work=worked_text(worked, language=lang))
                      for lang in ("en", "zh")]  # fmt: skip
    return texts


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
