"""Small text facts every layer needs: does a text hold Chinese, which language is it in, and
the normalised character n-grams that overlap and duplicate checks compare."""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

__all__ = [
    "CJK",
    "ENGLISH_TERMS",
    "FENCED",
    "INLINE_CODE",
    "char_ngrams",
    "cjk_share",
    "english_terms",
    "has_cjk",
    "normalise",
    "prose",
    "prose_language",
]

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# a fenced code block's code (without the fence and its language tag), and an inline code span's
FENCED = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)
INLINE_CODE = re.compile(r"`([^`]+)`")
_LATIN_WORD = re.compile(r"[A-Za-z]+")


def has_cjk(text: str) -> bool:
    return bool(CJK.search(text))


def cjk_share(text: str) -> float:
    """Chinese characters / (Chinese characters + Latin words): a Chinese sentence that keeps
    `__syncthreads()` and `TILE_WIDTH` in English is still mostly Chinese."""
    cjk = len(CJK.findall(text))
    latin = len(_LATIN_WORD.findall(text))
    return cjk / (cjk + latin) if cjk + latin else 0.0


def prose(text: str) -> str:
    """The text without its fenced code blocks (a listing is neither Chinese nor English prose)."""
    return re.sub(r"```.*?```", " ", text, flags=re.DOTALL)


def prose_language(text: str) -> Literal["en", "zh"]:
    """ "zh" when at least half of the prose's words (fenced code left out) are Chinese
    characters."""
    return "zh" if cjk_share(prose(text)) >= 0.5 else "en"


def normalise(text: str) -> str:
    """Lower case, without spaces or punctuation: the same for Chinese and English."""
    return "".join(
        c for c in text.lower() if not c.isspace() and unicodedata.category(c)[0] not in "PZ"
    )


def char_ngrams(text: str, n: int) -> set[str]:
    """The character n-grams of the normalised text."""
    norm = normalise(text)
    return {norm[i : i + n] for i in range(max(0, len(norm) - n + 1))}


# Terms that Chinese GPU-programming prose leaves in English: course-style answers (the team's
# Chinese dev set: "kernel" 89 times, "warp" 82, 核函数 and 线程束 never) and questions ("kernel" in
# 39 of its 100) write them so, while the Chinese notes render them.
ENGLISH_TERMS = {"核函数": "kernel", "线程束": "warp"}


def english_terms(text: str) -> str:
    """``text`` with each Chinese rendering in :data:`ENGLISH_TERMS` (and an English gloss of it
    that follows, "线程束（warp）") written as the English term, spaced from the Chinese around it."""
    for zh, en in ENGLISH_TERMS.items():
        text = re.sub(rf"{zh}(?:（{re.escape(en)}）|\({re.escape(en)}\))?", f"\0{en}\0", text)
    text = re.sub(rf"(?<={CJK.pattern})\0|\0(?={CJK.pattern})", " ", text)
    return text.replace("\0", "")


def repeats_itself(text: str, span: int) -> bool:
    """Whether ``text`` writes some run of ``span`` characters twice (spaces and ``[n]``
    citation markers aside): the mark of a small model looping ("每个线程块又由线程构成的数组，"
    again and again), which a written answer of a few hundred characters does not do."""
    # every "[n]", also one written against a word ("分支[1]"), which schema.CITATION_MARKER
    # leaves alone as it would an index a[1]: here a marker must not hide a repeat
    plain = re.sub(r"\s+", "", re.sub(r"\[\d{1,2}\]", "", text))
    seen: set[str] = set()
    for i in range(len(plain) - span + 1):
        run = plain[i : i + span]
        if run in seen:
            return True
        seen.add(run)
    return False
