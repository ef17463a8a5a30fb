"""What every solver shares: the :class:`Result` record, the :data:`Lowered` question text,
readers for numbers, and the asking part of a question."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NewType

NUM = r"(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"


# A number not glued to a name (dim3, float4, x2) and not part of a larger number.
FREE_NUM = re.compile(r"(?<![\w.])" + NUM + r"(?:\s*\^\s*(\d+))?(?=x\b|[^\w]|$)")


# A question as :func:`lowered` normalised it, once, for every solver. Solvers read only this.
Lowered = NewType("Lowered", str)


# Chinese wording rewritten into the English words the solvers' patterns read, so that one
# pattern serves both languages ("每个线程块 128 个线程" -> "每个 block 128 个线程", which
# BLOCK_SIZE reads). Applied in this order, after lower-casing.
_ZH_FORMS: tuple[tuple[str, str], ...] = (
    (r"线程块", " block "),
    (r"块槽", " block 槽"),
    (r"每块|每一个\s*block|每个块", "每个 block "),
    (r"每线程|每一个线程", "每个线程"),
    (r"线程束", " warp "),
    (r"线程网格|网格", " grid "),
    (r"共享内存", " shared memory "),
    (r"(?:第\s*)?元素\s*(\d+)|(\d+)\s*号元素", r" element \1\2 "),
    (r"(?:由|是)?哪(?:一)?个\s*(?:线程|block|块)", " which block "),
    (r"[−–]", "-"),  # a typeset minus sign
)


def lowered(question: str) -> Lowered:
    """Lower case, runs of white space as one space, no backticks, small powers written out
    ("N = 2^20" -> "n = 1048576", "5 x 10^8" -> "500000000") and Chinese wording in the
    solvers' English (:data:`_ZH_FORMS`): the one form every solver's patterns are written for."""
    q = re.sub(r"\s+", " ", question.replace("`", "")).lower()
    q = re.sub(
        r"(?<![\w.,])(\d+(?:\.\d+)?)\s*[x×*]\s*10\s*\^\s*(\d{1,2})\b",
        lambda m: f"{float(m.group(1)) * 10 ** int(m.group(2)):.15g}",
        q,
    )
    q = re.sub(
        r"\b(\d{1,2})\s*\^\s*(\d{1,2})\b", lambda m: str(int(m.group(1)) ** int(m.group(2))), q
    )
    for pattern, replacement in _ZH_FORMS:
        q = re.sub(pattern, replacement, q)
    return Lowered(re.sub(r" {2,}", " ", q))


@dataclass(frozen=True)
class Result:
    values: tuple[float, ...]  # one number, or a tuple such as (grid x, grid y) or (warp, lane)
    work: str  # the formula with the numbers put in, for the answer's reason


def number(text: str) -> float:
    return float(text.replace(",", ""))


def find_number(pattern: str, q: str) -> float | None:
    """The first number captured by ``pattern`` (its first non-empty group) in ``q``."""
    m = re.search(pattern, q)
    if not m:
        return None
    group = next(g for g in m.groups() if g is not None)
    return number(group)


def asking_part(q: str) -> str:
    """The asking part: the sentences that end with a question mark (or the whole text)."""
    parts = [p for p in re.split(r"(?<=[.?!。？])\s*", q) if p.strip()]
    asked = [p for p in parts if p.rstrip().endswith(("?", "？"))]
    return " ".join(asked) if asked else q


# What a question asks for (its question sentences, see asking_part), shared by several solvers.
ASK_BLOCKS = r"how many blocks|number of blocks|grid size|blocks are launched|(?:多少|几)个\s*block|block\s*数|块数"


ASK_IDLE = r"idle|fail|no (?:useful )?work|do nothing|inactive|wasted|空闲|不满足"


PCT = r"(\d+(?:\.\d+)?)\s*%"


FACTOR = r"(\d[\d,]*(?:\.\d+)?)\s*(?:x|×|times|-fold|倍)(?![\w])"

BLOCK_SIZE = (
    r"(\d+)\s*threads?\s*(?:per|in each|in a|each)\s*block"
    r"|(\d+)-thread\s*blocks?"
    r"|blocks?\s*of\s*(\d+)\s*threads"
    r"|block\s*size\s*(?:of|=|is)?\s*(\d+)"
    r"|blockdim\.x\s*(?:=|is|of)\s*(\d+)"
    r"|每个\s*block\s*(\d+)\s*个?线程"
    r"|(\d+)\s*个?线程的\s*(?:block|块)"
    r"|(?:block|块)\s*大小\s*(?:为|是|=)?\s*(\d+)"
)
