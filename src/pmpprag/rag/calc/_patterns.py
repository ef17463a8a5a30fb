"""Solvers for parallel patterns (chapters 7-16): scan work, a convolution layer's sizes and
an ELL index."""

from __future__ import annotations

import math
import re

from pmpprag.rag.calc._common import NUM, Lowered, Result, asking_part, find_number


def scan_work(q: Lowered) -> list[Result]:
    """Additions of parallel scans on N elements: Kogge-Stone N log N - (N - 1), Brent-Kung 2N - 2 - log N."""
    n = find_number(r"\bn\s*=\s*" + NUM + r"|" + NUM + r"\s*(?:elements|inputs)", q)
    if (
        not n
        or n < 2
        or not re.search(r"addition|add operations|operations|steps|加法", asking_part(q))
    ):
        return []
    log = math.log2(n)
    if log != int(log):
        return []
    if "kogge" in q:
        if re.search(r"steps", asking_part(q)):
            return [Result((log,), f"log2({n:g}) = {log:g} steps")]
        value = n * log - (n - 1)
        return [Result((value,), f"{n:g} x log2({n:g}) - ({n:g} - 1) = {value:g}")]
    if "brent" in q:
        value = 2 * n - 2 - log
        return [Result((value,), f"2 x {n:g} - 2 - log2({n:g}) = {value:g}")]
    if re.search(r"sequential|reduction", q):
        return [Result((n - 1,), f"{n:g} - 1 = {n - 1:g}")]
    return []


def conv_layer(q: Lowered) -> list[Result]:
    """A conv layer, C input maps of H x W, M output maps, K x K filters, stride 1, no padding:
    output (H - K + 1) x (W - K + 1); M x C x K x K weights; M x Hout x Wout x C x K x K MACs."""
    c = find_number(r"\bc\s*=\s*(\d+)", q)
    m = find_number(r"\bm\s*=\s*(\d+)", q)
    k = find_number(r"(\d+)\s*[x×]\s*\d+\s*(?:filters|kernels|卷积核|滤波器)|\bk\s*=\s*(\d+)", q)
    size = re.search(
        r"(\d+)\s*[x×]\s*(\d+)(?=[^.]*?(?:input|map|image|输入))|(?:maps?|images?)\s*of\s*(\d+)\s*[x×]\s*(\d+)",
        q,
    )
    if not c or not m or not k or not re.search(r"conv|卷积", q):
        return []
    asks = asking_part(q)
    weights = m * c * k * k
    out = []
    if re.search(r"weights|parameters|参数|权重", asks):
        if re.search(r"bias", asks) and not re.search(r"exclud|without|不含", asks):
            out.append(
                Result(
                    (weights + m,),
                    f"{m:g} x {c:g} x {k:g} x {k:g} + {m:g} biases = {weights + m:g}",
                )
            )
        out.append(Result((weights,), f"{m:g} x {c:g} x {k:g} x {k:g} = {weights:g}"))
    if size:
        h, w = (float(x) for x in size.groups() if x is not None)
        ho, wo = h - k + 1, w - k + 1
        if re.search(r"mac|multiply|乘加", asks):
            macs = m * ho * wo * c * k * k
            out.append(
                Result((macs,), f"{m:g} x {ho:g} x {wo:g} x {c:g} x {k:g} x {k:g} = {macs:g}")
            )
        if re.search(r"output (?:size|map)|输出.*尺寸", asks):
            out.append(
                Result((ho, wo), f"({h:g} - {k:g} + 1) x ({w:g} - {k:g} + 1) = {ho:g} x {wo:g}")
            )
    return out


def ell_index(q: Lowered) -> list[Result]:
    """ELL stores slot t of row r column-major, at t x numRows + r."""
    rows = find_number(r"numrows\s*=\s*" + NUM, q)
    slot = find_number(r"slot\s*(?:t\s*=\s*)?(\d+)", q)
    row = find_number(r"of row\s*(\d+)|row\s*(\d+)", q)
    if "ell" not in q or not rows or slot is None or row is None:
        return []
    return [Result((slot * rows + row,), f"{slot:g} x {rows:g} + {row:g} = {slot * rows + row:g}")]
