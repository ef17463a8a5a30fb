"""Solvers for number formats (chapter 6): the IEEE 754 single-precision encoding of a value."""

from __future__ import annotations

import re
import struct

from pmpprag.rag.calc._common import Lowered, Result


def float_bits(q: Lowered) -> list[Result]:
    """sign | 8-bit exponent field (biased by 127) | 23-bit mantissa field, and the hex word."""
    if not re.search(r"ieee|单精度|single[- ]precision|float32", q) or not re.search(
        r"encod|represent|bits?|编码|表示|位模式|十六进制|hex", q
    ):
        return []
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
