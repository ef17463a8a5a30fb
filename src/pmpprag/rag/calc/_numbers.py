"""Solvers for number formats (chapter 6): the IEEE 754 single-precision encoding of a value, and
the spacing of adjacent floats (1 ULP)."""

from __future__ import annotations

import math
import re
import struct

from pmpprag.rag.calc._common import Lowered, Result

# The gap between adjacent floats: "1 ULP", "spacing", "相邻两个可表示数之间的间距".
_SPACING = (
    r"\bulp\b|spacing|gap between (?:adjacent|consecutive)|间距|相邻.{0,12}可表示数.{0,6}(?:差|距)"
)


def float_spacing(q: Lowered) -> list[Result]:
    """Single precision: in [2^e, 2^(e+1)) adjacent floats are 2^(e - 23) apart, 2^23 of them."""
    if not re.search(_SPACING, q) or not re.search(r"单精度|single[- ]precision|\bfloat\b", q):
        return []
    given = re.sub(r"\b1\s*ulp\b", "ulp", q)  # "(1 ULP)" names the unit, not a value
    m = re.search(r"(?<![\w.])(\d+(?:\.\d+)?)(?:\s*\^\s*(-?\d+))?(?![\w.])", given)
    if not m:
        return []
    value = float(m.group(1)) ** (int(m.group(2)) if m.group(2) else 1)
    if not 0 < value < 2.0**127:
        return []
    e = math.frexp(value)[1] - 1  # value = 1.f x 2^e
    ulp = 2.0 ** (e - 23)
    work = (
        f"ULP = 2^({e} - 23) = 2^{e - 23} = {ulp:.6g}; "
        f"2^23 = 8388608 single floats in [2^{e}, 2^{e + 1})"
    )
    return [Result((ulp,), work)]


def float_bits(q: Lowered) -> list[Result]:
    """sign | 8-bit exponent field (biased by 127) | 23-bit mantissa field, and the hex word."""
    if not re.search(r"ieee|单精度|single[- ]precision|float32", q) or not re.search(
        r"encod|represent|bits?|编码|表示|位模式|十六进制|hex", q
    ):
        return []
    if re.search(_SPACING, q):
        return []  # the gap between floats (float_spacing), not one value's encoding
    m = re.search(
        r"(?<![\w.])(-?\d+\.\d+|-?\d+)(?!\w|\.\d)(?!\s*(?:位|bits?|-bit))",
        q.replace("ieee 754", ""),
    )
    if not m:
        return []
    value = float(m.group(1))
    (word,) = struct.unpack(">I", struct.pack(">f", value))
    sign, exponent, mantissa = word >> 31, (word >> 23) & 0xFF, word & 0x7FFFFF
    if exponent in (0, 0xFF):  # zero, denormals, inf, nan: not the worked normal case
        return []
    work = (
        f"{value:g} = {'-' if sign else ''}1.{mantissa:023b}".rstrip("0")
        + f" x 2^{exponent - 127}: sign {sign}, exponent field {exponent - 127} + 127 = {exponent}"
        f" = {exponent:08b}, mantissa field {mantissa:023b}, 0x{word:08X}"
    )
    return [Result((float(sign), float(exponent), float(mantissa)), work)]
