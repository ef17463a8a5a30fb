"""Solvers for parallel patterns (chapters 7-16): scan work, a tiled convolution's output tile,
a convolution layer's sizes, sparse-matrix storage and an ELL index."""

from __future__ import annotations

import math
import re

from pmpprag.rag.calc._common import NUM, Lowered, Result, asking_part, find_number, number


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
    steps = re.search(r"steps|步数", asking_part(q))
    out = []
    # every algorithm the question names, in the order of the book (sequential, Kogge-Stone,
    # Brent-Kung); a question that names one gets that one
    named = ("kogge" in q) + ("brent" in q)
    if re.search(r"sequential|顺序|串行", q) or (not named and "reduction" in q):
        out.append(Result((n - 1,), f"sequential: {n:g} - 1 = {n - 1:g} additions"))
    if "kogge" in q:
        if steps and "brent" not in q:
            return [Result((log,), f"log2({n:g}) = {log:g} steps")]
        value = n * log - (n - 1)
        out.append(
            Result(
                (value,), f"Kogge-Stone: {n:g} x log2({n:g}) - ({n:g} - 1) = {value:g} additions"
            )
        )
    if "brent" in q:
        value = 2 * n - 2 - log
        out.append(
            Result((value,), f"Brent-Kung: 2 x {n:g} - 2 - log2({n:g}) = {value:g} additions")
        )
    if steps and len(out) > 1:
        out.append(
            Result(
                (log,),
                f"steps: Kogge-Stone log2({n:g}) = {log:g}, Brent-Kung 2 x {log:g} - 1 = {2 * log - 1:g}",
            )
        )
    if named == 1 and len(out) > 1:
        out = out[1:] + out[:1]  # "Kogge-Stone's additions, against sequential": it leads
    return out


def conv_tile(q: Lowered) -> list[Result]:
    """A tiled convolution whose block is the input tile: OUT_TILE_DIM = IN_TILE_DIM - 2r, and
    the share of threads idle while computing, 1 - OUT^2 / IN^2."""
    tile = find_number(r"in_tile_dim\s*(?:=|of|为)\s*(\d+)", q)
    r = find_number(
        r"\br\s*=\s*(\d+)|filter_radius\s*(?:=|of|为)\s*(\d+)|半径\s*(?:为\s*)?(\d+)", q
    )
    if not tile or r is None or tile <= 2 * r:
        return []
    out_dim = tile - 2 * r
    idle = 100 * (1 - out_dim**2 / tile**2)
    out = [Result((out_dim,), f"OUT_TILE_DIM = {tile:g} - 2 x {r:g} = {out_dim:g}")]
    if re.search(r"idle|inactive|闲置|空闲|比例|fraction", asking_part(q)):
        out.append(
            Result((idle,), f"1 - {out_dim:g}^2 / {tile:g}^2 = {idle:.3g}% of the threads idle")
        )
    return out


def conv_layer(q: Lowered) -> list[Result]:
    """A conv layer, C input maps of H x W, M output maps, K x K filters, stride 1, no padding:
    output (H - K + 1) x (W - K + 1); M x C x K x K weights; M x Hout x Wout x C x K x K MACs."""
    c = find_number(r"\bc\s*=\s*(\d+)", q)
    m = find_number(r"\bm\s*=\s*(\d+)", q)
    k = find_number(r"(\d+)\s*[x×]\s*\d+\s*(?:filters|kernels|卷积核|滤波器)|\bk\s*=\s*(\d+)", q)
    size = re.search(
        r"(\d+)\s*[x×]\s*(\d+)(?=[^.]*?(?:input|map|image|输入|特征图|图像))|(?:maps?|images?)\s*of\s*(\d+)\s*[x×]\s*(\d+)",
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


def sparse_storage(q: Lowered) -> list[Result]:
    """Words (values + indices) each sparse format stores for m rows with nnz non-zeros:
    COO 3 nnz; CSR 2 nnz + m + 1; ELL 2 m K (K the longest row); hybrid ELL-COO of width w
    2 m w + 3 x (the non-zeros beyond w)."""
    if not re.search(r"\b(?:coo|csr|ell)\b", q):
        return []
    groups: list[tuple[float, float]] = []
    for m in re.finditer(
        NUM
        + r"\s*(?:行各有|行每行有|rows?\s*(?:each\s*)?(?:have|has|with))\s*"
        + NUM
        + r"\s*(?:个非零|non-?zeros?|nonzeros?)",
        q,
    ):
        groups.append((number(m.group(1)), number(m.group(2))))
    if not groups:
        return []
    rows = sum(r for r, _ in groups)
    nnz = sum(r * k for r, k in groups)
    longest = max(k for _, k in groups)
    out = [
        Result((3 * nnz,), f"COO: 3 x {nnz:.15g} = {3 * nnz:.15g} words"),
        Result(
            (2 * nnz + rows + 1,),
            f"CSR: 2 x {nnz:.15g} + {rows:.15g} + 1 = {2 * nnz + rows + 1:.15g} words",
        ),
        Result(
            (2 * rows * longest,),
            f"ELL: 2 x {rows:.15g} x {longest:.15g} = {2 * rows * longest:.15g} words",
        ),
    ]
    width = find_number(r"(?:宽度|width)\s*(?:取|为|of|=)?\s*(\d+)", q)
    if width and re.search(r"hyb|混合", q):
        extra = sum(r * max(0.0, k - width) for r, k in groups)
        total = 2 * rows * width + 3 * extra
        out.append(
            Result(
                (total,),
                f"ELL-COO: 2 x {rows:.15g} x {width:.15g} + 3 x {extra:.15g} = {total:.15g} words",
            )
        )
    return out
