"""The QA-generation prompt as data: instruction, one worked example, and the output model.

The teacher model reads one chunk of the textbook (or notes) and returns JSON:
``{"pairs": [{"kind": ..., "question": ..., "answer": ..., "rejected": ...}, ...]}``.
:func:`parse_pairs` finds that object in the reply and validates it; a reply that is not valid
raises :class:`ParseError`, which the stage counts and reports (never drops silently).
"""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from pmpprag.generation import Messages
from pmpprag.schema import Chunk, QAKind

__all__ = ["GeneratedPair", "ParseError", "build_messages", "parse_pairs"]

LANGUAGE_RULES = {
    "en": "Write questions and answers in English.",
    "zh": (
        "Write questions and answers in Chinese (简体中文). Keep code identifiers and standard "
        "English terms where a Chinese textbook would, e.g. `__syncthreads()`, warp（线程束）."
    ),
}

INSTRUCTION = """You write exam-quality study questions about GPU programming with CUDA.
From the passage below, write {n} question-answer pairs. Rules:
- Each question must make sense on its own, to a reader who has not seen the passage: name the
  concept, kernel or quantity; never write "the passage", "the text", "above" or "this section".
- Each answer is correct according to the passage, precise and 1-4 sentences long, and keeps the
  exact technical terms and identifiers.
- Mix kinds: "concept" (what/why/how), "numeric" (a small calculation with new numbers, answer
  shows the arithmetic), "code" (reading a short CUDA snippet), "judge" (true or false, answer
  starts with True./False. and gives the reason).
- For each pair also write "rejected": a plausible but wrong answer, a real misconception.
- {language}
Reply with JSON only: {{"pairs": [{{"kind": "...", "question": "...", "answer": "...",
"rejected": "..."}}]}}"""

EXAMPLE_PASSAGE = (
    "A warp is a unit of 32 threads that an SM schedules together; the threads of a warp "
    "execute the same instruction at the same time (SIMD). A block of 256 threads therefore "
    "forms 256 / 32 = 8 warps."
)
EXAMPLE_REPLY = {
    "en": {
        "pairs": [
            {
                "kind": "numeric",
                "question": "How many warps does a CUDA thread block of 192 threads form?",
                "answer": "A warp has 32 threads, so 192 / 32 = 6 warps.",
                "rejected": "192 / 16 = 12 warps, because a warp has 16 threads.",
            }
        ]
    },
    "zh": {
        "pairs": [
            {
                "kind": "concept",
                "question": "CUDA中的warp（线程束）是什么？",
                "answer": "warp是SM一起调度的32个线程，同一warp的线程在同一时刻执行同一条指令（SIMD）。",
                "rejected": "warp是一个线程块中的所有线程，它们可以在不同时刻执行不同的指令。",
            }
        ]
    },
}


class GeneratedPair(BaseModel):
    """One pair as the teacher model writes it."""

    kind: QAKind = "concept"
    question: str = Field(min_length=8)
    answer: str = Field(min_length=2)
    rejected: str | None = None


class _Reply(BaseModel):
    pairs: list[GeneratedPair] = Field(min_length=1)


class ParseError(ValueError):
    """The teacher's reply holds no valid ``{"pairs": [...]}`` object."""


def _passage(chunk: Chunk) -> str:
    return f"Chapter {chunk.chapter}, {chunk.section} {chunk.section_title}\n\n{chunk.text}"


def build_messages(chunk: Chunk, n: int, language: Literal["en", "zh"]) -> Messages:
    """The chat messages that ask for ``n`` pairs about ``chunk`` (one worked example first)."""
    rules = LANGUAGE_RULES[language]
    example = INSTRUCTION.format(n=1, language=rules)
    instruction = INSTRUCTION.format(n=n, language=rules)
    return [
        {"role": "user", "content": f"{example}\n\nPassage:\n{EXAMPLE_PASSAGE}"},
        {"role": "assistant", "content": json.dumps(EXAMPLE_REPLY[language], ensure_ascii=False)},
        {"role": "user", "content": f"{instruction}\n\nPassage:\n{_passage(chunk)}"},
    ]


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def parse_pairs(reply: str) -> list[GeneratedPair]:
    """The pairs in a teacher reply: a JSON object, optionally fenced or with text around it."""
    fenced = _FENCE.search(reply)
    text = fenced.group(1) if fenced else reply
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise ParseError("no JSON object in the reply")
    try:
        return _Reply.model_validate(json.loads(text[start : end + 1])).pairs
    except json.JSONDecodeError as err:
        raise ParseError(f"invalid JSON: {err.msg} at character {err.pos}") from err
    except ValidationError as err:
        raise ParseError(f"not a pairs object: {str(err).splitlines()[0]}") from err
