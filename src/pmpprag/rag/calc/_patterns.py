"""Solvers for parallel patterns (chapters 7-16): scan work, scans of a given list, the
three-phase scan, a radix-sort pass, a tiled convolution's output tile, a convolution layer's
sizes, sparse-matrix storage and an ELL index."""

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
    tile = find_number(r"in_tile_dim\s*(?:x\s*in_tile_dim\s*)?(?:=|of|为)\s*(\d+)", q)
    r = find_number(
        r"\br\s*=\s*(\d+)|filter_radius\s*(?:=|of|为)\s*(\d+)|半径\s*(?:为\s*)?(\d+)", q
    )
    side = re.search(
        r"(\d+)\s*[x×]\s*(\d+)\s*(?:的\s*)?(?:filter|滤波器|卷积核)"
        r"|(?:filter|滤波器|卷积核)\s*(?:is|为|是)?\s*(\d+)\s*[x×]\s*(\d+)",
        q,
    )
    k = [int(g) for g in side.groups() if g] if side else []
    if r is None and k and k[0] == k[1] and k[0] % 2:
        r = (k[0] - 1) / 2  # a 5 x 5 filter has radius 2
    if not tile or r is None or tile <= 2 * r:
        return []
    out_dim = tile - 2 * r
    idle = 100 * (1 - out_dim**2 / tile**2)
    out = [Result((out_dim,), f"OUT_TILE_DIM = {tile:g} - 2 x {r:g} = {out_dim:g}")]
    asks = asking_part(q)
    computing = re.search(
        r"threads? (?:that )?(?:compute|are active|produce)|compute outputs?|active threads"
        r"|计算输出|参与计算",
        asks,
    )
    if computing and re.search(r"how many|多少个", asks):  # how many threads compute
        count = out_dim**2
        out.append(Result((count,), f"{out_dim:g}^2 = {count:g} threads compute"))
    elif computing and not re.search(r"idle|inactive|闲置|空闲", asks):  # the share that works
        share = 100 - idle
        out.append(
            Result((share,), f"{out_dim:g}^2 / {tile:g}^2 = {share:.3g}% of the threads compute")
        )
    elif re.search(r"idle|inactive|闲置|空闲", asks) and re.search(r"how many|多少个", asks):
        count = tile**2 - out_dim**2
        out.append(Result((count,), f"{tile:g}^2 - {out_dim:g}^2 = {count:g} threads idle"))
    elif re.search(r"idle|inactive|闲置|空闲|比例|fraction", asks):
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
    for m in re.finditer(  # "999 rows with 5 nonzeros", "one row with 200", "另有一行有 200 个"
        r"(?:"
        + NUM
        + r"|\b(one|a single|an?)\b|(一))"
        + r"\s*(?:行各有|行每行有|行有|rows?\s*(?:each\s*)?(?:have|has|with))\s*"
        + NUM
        + r"\s*(?:个非零|non-?zeros?|nonzeros?)",
        q,
    ):
        groups.append((number(m.group(1)) if m.group(1) else 1.0, number(m.group(4))))
    if not groups:
        return []
    # an elliptical last group: "... 999 rows with 5 nonzeros and one row with 200."
    tail = re.search(
        r"\band (?:" + NUM + r"|(one|a single|an?)) rows? with " + NUM + r"(?=\s*[.,;)]|$)", q
    )
    if tail:
        groups.append((number(tail.group(1)) if tail.group(1) else 1.0, number(tail.group(3))))
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


def _int_list(q: Lowered) -> list[int] | None:
    """The first bracketed list of integers in the question ("x = [2 5 1 4 3]"), or None."""
    m = re.search(r"\[\s*(-?\d+(?:\s*[,，]?\s+-?\d+|\s*[,，]\s*-?\d+)+)\s*\]", q)
    if not m:
        return None
    values = [int(v) for v in re.findall(r"-?\d+", m.group(1))]
    return values if 2 <= len(values) <= 32 else None


def _show(values: list[int]) -> str:
    return "[" + " ".join(str(v) for v in values) + "]"


def _exclusive(values: list[int]) -> list[int]:
    return [sum(values[:i]) for i in range(len(values))]


def scan_example(q: Lowered) -> list[Result]:
    """Inclusive and exclusive (prefix-sum) scans of a list the question gives."""
    values = _int_list(q)
    if (
        not values
        or not re.search(r"\bscan|扫描|前缀和|prefix sum", q)
        or re.search(r"radix|基数", q)
    ):
        return []
    inclusive = [sum(values[: i + 1]) for i in range(len(values))]
    exclusive = _exclusive(values)
    out = [
        Result(
            tuple(float(v) for v in inclusive),
            f"inclusive scan {_show(values)} -> {_show(inclusive)}",
        ),
        Result(tuple(float(v) for v in exclusive), f"exclusive scan -> {_show(exclusive)}"),
    ]
    if re.search(r"exclusive|排除|不包含", asking_part(q)) and not re.search(
        r"\binclusive|包含扫描", asking_part(q).replace("不包含", "")
    ):
        out = [
            Result(out[1].values, f"exclusive scan {_show(values)} -> {_show(exclusive)}"),
            Result(out[0].values, f"inclusive scan -> {_show(inclusive)}"),
        ]
    return out


def radix_pass(q: Lowered) -> list[Result]:
    """One pass of a scan-based 1-bit radix sort (chapter 13) over the keys the question gives:
    bit i, onesBefore = exclusive scan of the bits, 0-bit keys to i - onesBefore[i], 1-bit keys
    to (N - totalOnes) + onesBefore[i]."""
    keys = _int_list(q)
    bit = find_number(r"第\s*(\d+)\s*位|bit\s*(\d+)|(\d+)(?:st|nd|rd|th)\s*bit", q)
    if not keys or bit is None or not re.search(r"radix|基数", q) or min(keys) < 0:
        return []
    b = int(bit)
    bits = [(k >> b) & 1 for k in keys]
    ones_before = _exclusive(bits)
    total = ones_before[-1] + bits[-1]
    n = len(keys)
    dest = [(n - total) + ones_before[i] if bits[i] else i - ones_before[i] for i in range(n)]
    output = [0] * n
    for key, d in zip(keys, dest, strict=True):
        output[d] = key
    asked = re.search(
        r"(?:destination|目标下标|目标位置).{0,60}?(?:key|键)\s*(\d+)", asking_part(q)
    )
    first: list[Result] = []
    if asked and int(asked.group(1)) in keys:  # "the destination index of key 1": that one
        i = keys.index(int(asked.group(1)))
        rule = f"({n} - {total}) + {ones_before[i]}" if bits[i] else f"{i} - {ones_before[i]}"
        first = [
            Result((float(dest[i]),), f"key {keys[i]} (i = {i}, bit {bits[i]}): {rule} = {dest[i]}")
        ]
    return [
        *first,
        Result(tuple(float(v) for v in output),
               f"keys {_show(keys)}, bit {b}: bits {_show(bits)}; onesBefore (exclusive scan) "
               f"{_show(ones_before)}; totalOnes = {total}; 0-bit keys go to i - onesBefore[i], "
               f"1-bit keys to ({n} - {total}) + onesBefore[i]: destinations {_show(dest)}; "
               f"output {_show(output)}"),
    ]  # fmt: skip


def three_phase_scan(q: Lowered) -> list[Result]:
    """Additions of the coarsened three-phase scan (chapter 11): T threads, C elements each:
    phase 1 T(C - 1), phase 2 a parallel scan of the T section sums, phase 3 (T - 1)(C - 1);
    against a Kogge-Stone scan of all T x C elements."""
    if not re.search(r"three[- ]phase|3[- ]phase|三阶段", q):
        return []
    t = find_number(r"(\d+)\s*(?:个)?\s*(?:threads|线程)", q)
    c = find_number(r"coarse_factor\s*=\s*(\d+)|(\d+)\s*(?:elements|个元素)\s*(?:per|each|每个)\s*thread"
                    r"|每个线程\D{0,8}?(\d+)\s*个?元素", q)  # fmt: skip
    if not t or not c or t < 2 or math.log2(t) != int(math.log2(t)):
        return []
    t, c = int(t), int(c)
    n = t * c
    log_t, log_n = int(math.log2(t)), math.log2(n)
    p1, p3 = t * (c - 1), (t - 1) * (c - 1)
    if "brent" in q and "kogge" not in q:
        p2 = 2 * t - 2 - log_t
        p2_work = f"Brent-Kung 2 x {t} - 2 - {log_t} = {p2}"
    else:
        p2 = t * log_t - (t - 1)
        p2_work = f"Kogge-Stone {t} x {log_t} - ({t} - 1) = {p2}"
    total = p1 + p2 + p3
    out = [Result((float(p1), float(p2), float(p3), float(total)),
                  f"phase 1: {t} x ({c} - 1) = {p1}; phase 2: {p2_work}; "
                  f"phase 3: ({t} - 1) x ({c} - 1) = {p3}; total {p1} + {p2} + {p3} = {total} additions")]  # fmt: skip
    if log_n == int(log_n):
        direct = int(n * log_n - (n - 1))
        out.append(Result((float(direct),), f"Kogge-Stone on all {n} elements: {n} x "
                                            f"{int(log_n)} - ({n} - 1) = {direct} additions"))  # fmt: skip
    return out
