"""Matching a result to multiple-choice options: the numbers an option states, and the one
option (if exactly one) that agrees with a result."""

from __future__ import annotations

from pmpprag.rag.calc._common import FREE_NUM, Result, number


def option_numbers(option: str) -> list[float]:
    """Numbers written in an option: '1,800 GFLOPS' -> [1800], 'dimGrid(13, 10, 1)' -> [13, 10, 1]."""
    out = []
    for m in FREE_NUM.finditer(option):
        value = number(m.group(1))
        out.append(value ** int(m.group(2)) if m.group(2) else value)
    return out


def _close(option: float, result: float) -> bool:
    """Integers must be equal; other values may be rounded ("About 5.3x" for 5.263)."""
    if option == int(option) and result == int(result):
        return option == result
    return abs(option - result) <= max(0.015 * abs(result), 0.051)


def pick_option(results: list[Result], choices: list[str]) -> tuple[int, Result] | None:
    """The one option whose numbers agree with a result, or None when none or several do."""
    parsed = [option_numbers(c) for c in choices]
    for result in results:
        n = len(result.values)
        hits = [
            i
            for i, nums in enumerate(parsed)
            if len(nums) >= n
            and all(_close(a, b) for a, b in zip(nums[:n], result.values, strict=True))
        ]
        if len(hits) == 1:
            return hits[0], result
    return None
