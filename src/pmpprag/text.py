"""Small text facts every layer needs: does a text hold Chinese, which language is it in, and
the normalised character n-grams that overlap and duplicate checks compare."""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

__all__ = ["CJK", "char_ngrams", "cjk_share", "has_cjk", "normalise", "prose_language"]

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]+")


def has_cjk(text: str) -> bool:
    return bool(CJK.search(text))


def cjk_share(text: str) -> float:
    """Chinese characters / (Chinese characters + Latin words): a Chinese sentence that keeps
    `__syncthreads()` and `TILE_WIDTH` in English is still mostly Chinese."""
    cjk = len(CJK.findall(text))
    latin = len(_LATIN_WORD.findall(text))
    return cjk / (cjk + latin) if cjk + latin else 0.0


def prose_language(text: str) -> Literal["en", "zh"]:
    """ "zh" when at least half of the prose's words are Chinese characters."""
    return "zh" if cjk_share(text) >= 0.5 else "en"


def normalise(text: str) -> str:
    """Lower case, without spaces or punctuation: the same for Chinese and English."""
    return "".join(
        c for c in text.lower() if not c.isspace() and unicodedata.category(c)[0] not in "PZ"
    )


def char_ngrams(text: str, n: int) -> set[str]:
    """The character n-grams of the normalised text."""
    norm = normalise(text)
    return {norm[i : i + n] for i in range(max(0, len(norm) - n + 1))}
