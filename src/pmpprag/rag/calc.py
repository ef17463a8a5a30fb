"""A worked-formula calculator for the textbook's quantitative questions.

A 135M-parameter model cannot do arithmetic, and passage support cannot compute a block count.
But most numeric questions on chapters 1-6 apply one of a few textbook formulas to numbers
stated in the question: Amdahl's law, ceil(n / blockDim) blocks, idle threads, warp and lane of
a thread, occupancy from the SM's limits, SIMD efficiency of a divergent loop, the roofline
bound and tiled arithmetic intensity, row-major linear indices, scan work, peak bandwidth.

Each solver recognises its formula by the question's words, reads the quantities it needs
with regular expressions, and returns a :class:`Result` (the numbers and the worked
arithmetic). A solver that cannot read every quantity it needs returns nothing, and
:func:`pick_option` answers only when exactly one option agrees with a result; otherwise the
caller falls back to another method. English and Chinese wording are both read.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Result", "option_numbers", "pick_option", "solve", "worked_text"]

logger = logging.getLogger(__name__)

_NUM = r"(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
# A number not glued to a name (dim3, float4, x2) and not part of a larger number.
_FREE_NUM = re.compile(r"(?<![\w.])" + _NUM + r"(?:\s*\^\s*(\d+))?(?=x\b|[^\w]|$)")


@dataclass(frozen=True)
class Result:
    values: tuple[float, ...]  # one number, or a tuple such as (grid x, grid y) or (warp, lane)
    work: str  # the formula with the numbers put in, for the answer's reason


def _f(text: str) -> float:
    return float(text.replace(",", ""))


def _find(pattern: str, q: str) -> float | None:
    """The first number captured by ``pattern`` (its first non-empty group) in ``q``."""
    m = re.search(pattern, q)
    if not m:
        return None
    group = next(g for g in m.groups() if g is not None)
    return _f(group)


def _asks(q: str) -> str:
    """The asking part: the sentences that end with a question mark (or the whole text)."""
    parts = [p for p in re.split(r"(?<=[.?!。？])\s*", q) if p.strip()]
    asked = [p for p in parts if p.rstrip().endswith(("?", "？"))]
    return " ".join(asked) if asked else q


def option_numbers(option: str) -> list[float]:
    """Numbers written in an option: '1,800 GFLOPS' -> [1800], 'dimGrid(13, 10, 1)' -> [13, 10, 1]."""
    out = []
    for m in _FREE_NUM.finditer(option):
        value = _f(m.group(1))
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


# --- the solvers -------------------------------------------------------------------------------

# What a question asks for (its question sentences, see _asks), shared by several solvers.
_ASK_BLOCKS = r"how many blocks|number of blocks|grid size|blocks are launched|多少个\s*block"
_ASK_IDLE = r"idle|fail|no (?:useful )?work|do nothing|inactive|wasted|空闲|不满足"

_PCT = r"(\d+(?:\.\d+)?)\s*%"
_FACTOR = r"(\d[\d,]*(?:\.\d+)?)\s*(?:x|×|times|-fold|倍)(?![\w])"


def amdahl(q: str) -> list[Result]:
    """Overall speedup when a fraction p of the time runs s times faster: 1 / ((1 - p) + p / s)."""
    if not re.search(r"amdahl|speedup|speed-up|加速比", q):
        return []
    m = re.search(_PCT + r"(.{0,80})", q)
    if not m:
        return amdahl_times(q)
    p = float(m.group(1)) / 100
    clause = re.split(r"[,;，；]|\band\b|\. ", m.group(2))[0]  # what the percentage is of
    if re.search(r"sequential|serial|串行|unchanged|不变", clause) and not re.search(
        r"parallel|accelerat|sped|speed|faster|并行|加速", clause
    ):
        p = 1 - p  # "10% stays sequential"
    if not 0 < p < 1:
        return []
    limit = Result((1 / (1 - p),), f"1 / (1 - {p:g}) = {1 / (1 - p):.3g}")
    factors = [_f(x) for x in re.findall(_FACTOR, q)]
    factors = [s for s in factors if s > 1]
    if re.search(
        r"infinit|unlimited|arbitrar|upper bound|maximum|largest|at most|上限|无限", _asks(q)
    ):
        return [limit]
    if not factors:
        return [limit] if re.search(r"limit|bound|max", q) else []
    s = factors[0]
    value = 1 / ((1 - p) + p / s)
    return [Result((value,), f"1 / ((1 - {p:g}) + {p:g} / {s:g}) = {value:.3g}")]


def amdahl_times(q: str) -> list[Result]:
    """The same law from measured times: T / (T - T_par + T_par / s + overheads)."""
    factors = [s for s in (_f(x) for x in re.findall(_FACTOR, q)) if s > 1]
    if not factors:
        return []
    total = parallel = 0.0
    extra = []
    for m in re.finditer(r"(\d+(?:\.\d+)?)\s*(?:s|seconds|秒)(?![\w/])", q):
        t, before, after = (
            float(m.group(1)),
            q[max(0, m.start() - 30) : m.start()],
            q[m.end() : m.end() + 40],
        )
        if re.search(r"(?:runs? for|takes|total(?: of)?|运行|总共?)\s*(?:of\s*)?$", before):
            total = t
        elif re.search(r"transfer|overhead|copy|copies|传输|拷贝|开销", before + " " + after):
            extra.append(t)
        elif re.search(
            r"^\s*(?:is |are )?(?:in |spent in )?(?:an? |the )?(?:data-)?(?:parallel|loop|kernel|并行|可并行|是可并行)",
            after,
        ):
            parallel = t
    if not total or not parallel or parallel >= total:
        return []
    s = factors[0]
    new = total - parallel + parallel / s + sum(extra)
    parts = " + ".join(f"{x:g}" for x in extra)
    work = f"{total:g} / ({total - parallel:g} + {parallel:g} / {s:g}{' + ' + parts if extra else ''}) = {total / new:.3g}"
    return [Result((total / new,), work)]


_BLOCK = (
    r"(\d+)\s*threads?\s*(?:per|in each|in a|each)\s*block"
    r"|(\d+)-thread\s*blocks?"
    r"|blocks?\s*of\s*(\d+)\s*threads"
    r"|block\s*size\s*(?:of|=|is)?\s*(\d+)"
    r"|blockdim\.x\s*(?:=|is|of)\s*(\d+)"
    r"|每个\s*block\s*(\d+)\s*个?线程"
    r"|(\d+)\s*个?线程的\s*block"
)


def blocks_1d(q: str) -> list[Result]:
    """A 1D launch over n elements: ceil(n / b) blocks, idle threads, the last block's workers."""
    b = _find(_BLOCK, q)
    n = _find(r"\bn\s*=\s*" + _NUM + r"|" + _NUM + r"\s*(?:elements|个元素)", q)
    if not b or not n or re.search(r"pixels?|像素|\bwidth\b", q):
        return []
    # Blocks that cover more than one element per thread (a reduction block reduces
    # 2 x BLOCK_DIM elements; a coarsened thread produces ELEMS outputs).
    per_block = _find(r"(\d+)\s*[*x×]\s*block_?dim\w*\s*elements", q)
    per_thread = _find(
        r"each thread (?:produces|processes|handles|computes|reduces|loads) (?:\w+\s*=\s*)?(\d+)"
        r"|每个线程(?:产生|处理|负责|计算)\D{0,12}?(\d+)",
        q,
    )
    b *= (per_block or 1) * (per_thread or 1)
    blocks = math.ceil(n / b)
    launched = blocks * b
    asks = _asks(q)
    out = []
    if re.search(_ASK_IDLE, asks):
        out.append(
            Result((launched - n,), f"ceil({n:g} / {b:g}) x {b:g} - {n:g} = {launched - n:g}")
        )
    if re.search(r"last block|最后一个\s*block", asks) and re.search(
        r"work|active|useful|valid|有效|工作", asks
    ):
        last = n - (blocks - 1) * b
        out.append(Result((last,), f"{n:g} - ({blocks} - 1) x {b:g} = {last:g}"))
    if re.search(r"diverge", asks) and re.search(r"warps?", asks):
        out.append(Result((1 if n % 32 else 0,), "only the warp that straddles n diverges"))
    if re.search(r"how many warps", asks):
        out.append(Result((launched / 32,), f"{blocks} x {b:g} / 32 = {launched / 32:g}"))
    if re.search(_ASK_BLOCKS, asks):
        out.append(Result((blocks,), f"ceil({n:g} / {b:g}) = {blocks}"))
    if re.search(r"(how many|total)\s*threads", asks) and not out:
        out.append(Result((launched,), f"ceil({n:g} / {b:g}) x {b:g} = {launched}"))
    return out


def _block_2d(q: str) -> tuple[float, float] | None:
    m = re.search(
        r"dim3\s*\w*\s*\(\s*(\d+)\s*,\s*(\d+)|(\d+)\s*[x×]\s*(\d+)\s*(?:thread\s*)?blocks?"
        r"|blocks?\s*of\s*(\d+)\s*[x×]\s*(\d+)|(\d+)\s*[x×]\s*(\d+)\s*的\s*block"
        r"|blockdim\.x\s*=\s*(\d+)\W{1,4}blockdim\.y\s*=\s*(\d+)",
        q,
    )
    if not m:
        return None
    g = [x for x in m.groups() if x is not None]
    return float(g[0]), float(g[1])


def grid_2d(q: str) -> list[Result]:
    """One thread per pixel of a W x H image with bx x by blocks: the grid and the idle threads."""
    wh = re.search(
        r"(\d+)\s*pixels?\s*wide\s*and\s*(\d+)\s*(?:pixels?\s*)?(?:tall|high)", q
    ) or re.search(
        r"width\s*(?:of\s*|=\s*)?(\d+)\D{1,20}height\s*(?:of\s*|=\s*)?(\d+)|宽\s*(\d+)\D{0,6}高\s*(\d+)",
        q,
    )
    block = _block_2d(q)
    if not wh or not block:
        return []
    w, h = (float(x) for x in wh.groups() if x is not None)
    bx, by = block
    gx, gy = math.ceil(w / bx), math.ceil(h / by)
    threads = gx * gy * bx * by
    asks = _asks(q)
    out = [Result((gx, gy), f"({w:g} / {bx:g}, {h:g} / {by:g}) rounded up = ({gx}, {gy})")]
    if re.search(_ASK_IDLE, asks):
        out.insert(
            0,
            Result(
                (threads - w * h,),
                f"{gx} x {gy} x {bx * by:g} - {w:g} x {h:g} = {threads - w * h:g}",
            ),
        )
    elif re.search(_ASK_BLOCKS, asks):
        out.insert(0, Result((gx * gy,), f"{gx} x {gy} = {gx * gy}"))
    elif re.search(r"how many threads|total threads", asks):
        out.insert(0, Result((threads,), f"{gx * gy} blocks x {bx * by:g} = {threads:g}"))
    return out


def warp_lane(q: str) -> list[Result]:
    """Warp and lane of a thread: linear = (z * By + y) * Bx + x; warp = linear / 32."""
    if not re.search(r"warp|线程束", q):
        return []
    # threadIdx.x = 7, or (x = 3, y = 6) -- never blockDim.x = 16
    x = _find(r"threadidx\.x\s*=\s*(\d+)|(?<![\w.])x\s*=\s*(\d+)", q)
    y = _find(r"threadidx\.y\s*=\s*(\d+)|(?<![\w.])y\s*=\s*(\d+)", q)
    z = _find(r"threadidx\.z\s*=\s*(\d+)|(?<![\w.])z\s*=\s*(\d+)", q) or 0.0
    dims = re.search(r"(\d+)\s*[x×]\s*(\d+)(?:\s*[x×]\s*(\d+))?", q)
    bx = _find(r"blockdim\.x\s*=\s*(\d+)", q) or (float(dims.group(1)) if dims else None)
    by = _find(r"blockdim\.y\s*=\s*(\d+)", q) or (float(dims.group(2)) if dims else None)
    if x is None or y is None or not bx or not by:
        return []
    linear = (z * by + y) * bx + x
    work = f"({z:g} x {by:g} + {y:g}) x {bx:g} + {x:g} = {linear:g}; warp {linear // 32:g}, lane {linear % 32:g}"
    return [Result((linear // 32, linear % 32), work)]


def warps_per_block(q: str) -> list[Result]:
    """A block of n threads takes ceil(n / 32) warps."""
    asks = _asks(q)
    if not re.search(r"how many warps|多少个\s*warp", asks) or re.search(r"grid|\bsm\b", asks):
        return []
    dims = re.search(r"(\d+)\s*[x×]\s*(\d+)(?:\s*[x×]\s*(\d+))?\s*(?:thread)?\s*block", q)
    if dims:
        n = math.prod(float(d) for d in dims.groups() if d)
    else:
        found = _find(r"block\s*(?:has|of|with)\s*(\d+)\s*threads|(\d+)\s*个线程", q)
        if not found:
            return []
        n = found
    return [Result((math.ceil(n / 32),), f"ceil({n:g} / 32) = {math.ceil(n / 32)}")]


def _shared_memory_kb(q: str) -> tuple[float | None, float | None]:
    """(shared memory per SM, per block) in KB, told apart by the words around each value."""
    if not re.search(r"shared", q):
        return None, None
    sm = block = None
    for m in re.finditer(r"(\d+(?:\.\d+)?)\s*kb", q):
        before, after = q[max(0, m.start() - 40) : m.start()], q[m.end() : m.end() + 30]
        per_block = re.match(
            r"\s*(?:of\s*)?(?:shared\s*memory\s*)?(?:per|each|/|for each)\s*block", after
        ) or re.search(
            r"(?:(?:per|each|every)\s*block|每个\s*block)[^.;，。]{0,25}?(?:uses|needs|allocates|requires|使用|需要|占用)?\s*(?:of\s*)?$",
            before,
        )
        if per_block and block is None:
            block = float(m.group(1))
        elif not per_block and sm is None:
            sm = float(m.group(1))
    return sm, block


def occupancy(q: str) -> list[Result]:
    """Blocks per SM = min(thread slots / b, block slots, registers / (r x b), shared / s)."""
    if not re.search(r"occupancy|resident|占用率|驻留|fit", q):
        return []
    b = _find(_BLOCK, q)
    slots = _find(
        r"(\d[\d,]*)\s*thread\s*slots|(\d[\d,]*)\s*个?线程槽|最多(?:支持)?\s*(\d[\d,]*)\s*个线程|(?:at most|maximum of|supports(?: at most)?|up to)\s*(\d[\d,]*)\s*threads|(\d[\d,]{3,})\s*threads",
        q,
    )
    if not b or not slots:
        return []
    limits = {"threads": slots // b}
    block_slots = _find(
        r"(\d+)\s*block\s*slots|(\d+)\s*个?\s*block\s*槽|(?:at most|up to)\s*(?:\d[\d,]*\s*threads\s*and\s*)?(\d+)\s*blocks",
        q,
    )
    if block_slots:
        limits["block slots"] = block_slots
    regs = _find(r"(\d{1,3}(?:,\d{3})+|\d{4,})\s*(?:32-bit\s*)?(?:registers|个寄存器)", q)
    per_thread = _find(r"(\d+)\s*registers\s*per\s*thread|每个线程(?:使用)?\s*(\d+)\s*个寄存器", q)
    if regs and per_thread:
        limits["registers"] = regs // (per_thread * b)
    sm_kb, block_kb = _shared_memory_kb(q)
    if sm_kb and block_kb:
        limits["shared memory"] = sm_kb // block_kb
    blocks = min(limits.values())
    if blocks < 1:
        return []  # a block that does not fit at all: not a question these formulas answer
    threads = blocks * b
    why = ", ".join(f"{k} {v:g}" for k, v in limits.items())
    pct = 100 * threads / slots
    asks = _asks(q)
    occ = Result(
        (pct,), f"min({why}) = {blocks:g} blocks; {threads:g} / {slots:g} threads = {pct:.3g}%"
    )
    by_blocks = Result((blocks,), f"min({why}) = {blocks:g} blocks")
    if re.search(_ASK_BLOCKS, asks):
        return [by_blocks, occ]
    if re.search(r"how many (?:resident )?threads", asks):
        return [Result((threads,), f"{blocks:g} blocks x {b:g} = {threads:g}")]
    if re.search(r"how many (?:resident )?warps", asks):
        return [Result((threads / 32,), f"{threads:g} / 32 = {threads / 32:g}")]
    return [occ, by_blocks]


def simd_efficiency(q: str) -> list[Result]:
    """A warp runs a loop as long as its longest thread: useful / (32 x max) lane-iterations."""
    pairs = [
        (_f(c), _f(k))
        for c, k in re.findall(r"(\d+)\s*(?:other\s*)?threads?[^.;?]*?\b(\d+)\s*times", q)
    ]
    if len(pairs) < 2 or sum(c for c, _ in pairs) != 32:
        return []
    useful = sum(c * k for c, k in pairs)
    longest = max(k for _, k in pairs)
    eff = 100 * useful / (32 * longest)
    asks = _asks(q)
    if re.search(r"efficiency|效率", asks):
        return [Result((eff,), f"{useful:g} / (32 x {longest:g}) = {eff:.3g}%")]
    if re.search(r"iterations", asks):
        return [Result((longest,), f"the warp runs max = {longest:g} iterations")]
    return []


_BW = r"(\d[\d,]*(?:\.\d+)?)\s*(GB/s|TB/s)"
_PEAK = r"(\d[\d,]*(?:\.\d+)?)\s*(GFLOPS|TFLOPS|GFLOP/s|TFLOP/s)"


def roofline(q: str) -> list[Result]:
    """Attainable = min(peak, intensity x bandwidth); naive matmul 0.25 FLOP/B, tiled T / 4."""
    tile = _find(r"tile_width\s*(?:=|of)\s*(\d+)", q)
    given = _find(r"(\d+(?:\.\d+)?)\s*(?:flop|op)s?\s*(?:/|per)\s*(?:b\b|byte)", q)
    matmul = re.search(r"matri|matmul|矩阵", q)
    if tile and matmul:
        ai, why = tile / 4, f"TILE_WIDTH / 4 = {tile / 4:g} FLOP/B"
    elif given is not None:
        ai, why = given, f"{given:g} FLOP/B"
    elif matmul and re.search(r"naive|simple|basic|朴素", q):
        ai, why = 0.25, "0.25 FLOP/B"
    else:
        return []
    asks = _asks(q)
    bw_m, peak_m = re.search(_BW, q, re.IGNORECASE), re.search(_PEAK, q, re.IGNORECASE)
    if not bw_m or (
        re.search(r"intensity|强度", asks)
        and not re.search(r"attain|throughput|bound|perf|上界", asks)
    ):
        wanted = re.search(r"intensity|强度|flop/b", asks)
        return [Result((ai,), why)] if wanted and given is None else []
    bw = _f(bw_m.group(1)) * (1000 if bw_m.group(2).upper().startswith("T") else 1)  # GB/s
    bound = ai * bw  # GFLOPS
    if not peak_m:
        return [Result((bound,), f"{why} x {bw:g} GB/s = {bound:g} GFLOPS")]
    tera = peak_m.group(2).upper().startswith("T")
    peak = _f(peak_m.group(1)) * (1000 if tera else 1)
    if re.search(r"ridge", asks):
        return [Result((peak / bw,), f"{peak:g} / {bw:g} = {peak / bw:.3g} FLOP/B")]
    attained = min(peak, bound)
    scale = 1000 if tera else 1
    return [Result((attained / scale,), f"min({peak:g}, {why} x {bw:g}) = {attained:g} GFLOPS")]


def linear_index(q: str) -> list[Result]:
    """Row-major: (plane x height + row) x width + col; column-major: col x height + row."""
    if not re.search(r"linear|row-major|column-major|下标|index", q):
        return []
    row = _find(r"row\s*(\d+)|第\s*(\d+)\s*行", q)
    col = _find(r"col(?:umn)?\s*(\d+)|第\s*(\d+)\s*列", q)
    if row is None or col is None:
        return []
    plane = _find(r"plane\s*(\d+)|depth index\s*(\d+)", q)
    width = _find(r"width\s*(?:of\s*|=\s*)?(\d+)|(\d+)\s*columns|宽\s*(\d+)", q)
    height = _find(r"height\s*(?:of\s*|=\s*)?(\d+)|(\d+)\s*rows|高\s*(\d+)", q)
    if not width:
        return []
    if re.search(r"column-major", _asks(q)) and height:
        return [
            Result(
                (col * height + row,), f"{col:g} x {height:g} + {row:g} = {col * height + row:g}"
            )
        ]
    if plane is not None:
        if not height:
            return []
        value = (plane * height + row) * width + col
        return [
            Result(
                (value,), f"({plane:g} x {height:g} + {row:g}) x {width:g} + {col:g} = {value:g}"
            )
        ]
    return [Result((row * width + col,), f"{row:g} x {width:g} + {col:g} = {row * width + col:g}")]


def global_index(q: str) -> list[Result]:
    """i = blockIdx.x x blockDim.x + threadIdx.x (and back: element e -> block e / d, thread e % d)."""
    d = _find(r"blockdim\.x\s*(?:=|is|of)\s*(\d+)", q) or _find(_BLOCK, q)
    if not d:
        return []
    m = re.search(r"thread\s*(\d+)\s*(?:of|in)\s*block\s*(\d+)", q)
    b = _find(r"blockidx\.x\s*=\s*(\d+)", q)
    t = _find(r"threadidx\.x\s*=\s*(\d+)", q)
    if m:
        t, b = float(m.group(1)), float(m.group(2))
    asks = _asks(q)
    if b is not None and t is not None and not re.search(r"warp|lane|row|col|y\s*=", q):
        return [Result((b * d + t,), f"{b:g} x {d:g} + {t:g} = {b * d + t:g}")]
    e = _find(r"element\s*(\d+)", asks)
    if e is not None and re.search(r"which block", asks):
        return [Result((e // d, e % d), f"{e:g} / {d:g} = block {e // d:g}, thread {e % d:g}")]
    return []


def scan_work(q: str) -> list[Result]:
    """Additions of parallel scans on N elements: Kogge-Stone N log N - (N - 1), Brent-Kung 2N - 2 - log N."""
    n = _find(r"\bn\s*=\s*" + _NUM + r"|" + _NUM + r"\s*(?:elements|inputs)", q)
    if not n or n < 2 or not re.search(r"addition|add operations|operations|steps|加法", _asks(q)):
        return []
    log = math.log2(n)
    if log != int(log):
        return []
    if "kogge" in q:
        if re.search(r"steps", _asks(q)):
            return [Result((log,), f"log2({n:g}) = {log:g} steps")]
        value = n * log - (n - 1)
        return [Result((value,), f"{n:g} x log2({n:g}) - ({n:g} - 1) = {value:g}")]
    if "brent" in q:
        value = 2 * n - 2 - log
        return [Result((value,), f"2 x {n:g} - 2 - log2({n:g}) = {value:g}")]
    if re.search(r"sequential|reduction", q):
        return [Result((n - 1,), f"{n:g} - 1 = {n - 1:g}")]
    return []


def bandwidth(q: str) -> list[Result]:
    """Peak DRAM bandwidth = bus width (bits) x per-pin data rate / 8."""
    bits = _find(r"(\d+)-bit\s*(?:memory\s*)?(?:interface|bus)", q)
    rate = re.search(r"(\d+(?:\.\d+)?)\s*(gb/s|gbps|gt/s|mt/s)", q)
    if not bits or not rate:
        return []
    per_pin = float(rate.group(1)) / (1000 if rate.group(2) == "mt/s" else 1)
    value = bits * per_pin / 8
    return [Result((value,), f"{bits:g} x {per_pin:g} / 8 = {value:g} GB/s")]


def launch_shape(q: str) -> list[Result]:
    """dim3 dimGrid(gx, gy, gz) and dim3 dimBlock(bx, by, bz): blocks x threads per block."""
    grid = re.search(r"dimgrid\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?(?:,\s*(\d+)\s*)?\)", q)
    block = re.search(r"dimblock\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?(?:,\s*(\d+)\s*)?\)", q)
    asks = _asks(q)
    if not grid or not block or not re.search(r"how many|total|多少", asks):
        return []
    blocks = math.prod(float(g) for g in grid.groups() if g)
    per_block = math.prod(float(b) for b in block.groups() if b)
    total = Result(
        (blocks * per_block,), f"{blocks:g} blocks x {per_block:g} threads = {blocks * per_block:g}"
    )
    out = []
    if re.search(_ASK_BLOCKS, asks):
        out.append(
            Result((blocks,), f"{' x '.join(g for g in grid.groups() if g)} = {blocks:g} blocks")
        )
    if re.search(r"threads per block|每个\s*block", asks):
        out.append(
            Result(
                (per_block,),
                f"{' x '.join(b for b in block.groups() if b)} = {per_block:g} threads per block",
            )
        )
    if re.search(r"total|how many threads|in all|多少个?线程", asks) or not out:
        out.insert(0, total)
    return out


def conv_layer(q: str) -> list[Result]:
    """A conv layer, C input maps of H x W, M output maps, K x K filters, stride 1, no padding:
    output (H - K + 1) x (W - K + 1); M x C x K x K weights; M x Hout x Wout x C x K x K MACs."""
    c = _find(r"\bc\s*=\s*(\d+)", q)
    m = _find(r"\bm\s*=\s*(\d+)", q)
    k = _find(r"(\d+)\s*[x×]\s*\d+\s*(?:filters|kernels|卷积核|滤波器)|\bk\s*=\s*(\d+)", q)
    size = re.search(
        r"(\d+)\s*[x×]\s*(\d+)(?=[^.]*?(?:input|map|image|输入))|(?:maps?|images?)\s*of\s*(\d+)\s*[x×]\s*(\d+)",
        q,
    )
    if not c or not m or not k or not re.search(r"conv|卷积", q):
        return []
    asks = _asks(q)
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


def ell_index(q: str) -> list[Result]:
    """ELL stores slot t of row r column-major, at t x numRows + r."""
    rows = _find(r"numrows\s*=\s*" + _NUM, q)
    slot = _find(r"slot\s*(?:t\s*=\s*)?(\d+)", q)
    row = _find(r"of row\s*(\d+)|row\s*(\d+)", q)
    if "ell" not in q or not rows or slot is None or row is None:
        return []
    return [Result((slot * rows + row,), f"{slot:g} x {rows:g} + {row:g} = {slot * rows + row:g}")]


def block_waves(q: str) -> list[Result]:
    """Blocks run in waves of (SMs x blocks per SM): ceil(grid / (SMs x blocks per SM))."""
    sms = _find(r"(\d+)\s*sms|(\d+)\s*个\s*sm", q)
    per_sm = _find(
        r"(\d+)\s*blocks?\s*(?:per sm|at a time|at once)|each sm (?:can )?holds?\s*(\d+)", q
    )
    grid = _find(r"grid of\s*" + _NUM + r"\s*blocks|" + _NUM + r"\s*blocks? in (?:the|a) grid", q)
    if not sms or not per_sm or not grid or not re.search(r"wave|rounds?|轮", q):
        return []
    waves = math.ceil(grid / (sms * per_sm))
    return [Result((waves,), f"ceil({grid:g} / ({sms:g} x {per_sm:g})) = {waves}")]


def child_launches(q: str) -> list[Result]:
    """Dynamic parallelism: each parent thread that runs an unguarded child<<<...>>> launches a grid."""
    parent = re.search(r"parent\w*\s*<<<\s*(\d+)\s*,\s*(\d+)\s*>>>", q)
    if not parent or "child" not in q or not re.search(r"how many", _asks(q)):
        return []
    blocks, threads = float(parent.group(1)), float(parent.group(2))
    if re.search(r"if\s*\(\s*threadidx\.x\s*==\s*0\s*\)", q):
        return [Result((blocks,), f"one thread per block launches: {blocks:g}")]
    return [
        Result(
            (blocks * threads,),
            f"every thread launches: {blocks:g} x {threads:g} = {blocks * threads:g}",
        )
    ]


def halo_bytes(q: str) -> list[Result]:
    """A z-partitioned stencil's halo is R planes of X x Y values; an interior process sends two."""
    r = _find(r"radius\s*(?:r\s*)?(?:=\s*)?(\d+)|\br\s*=\s*(\d+)", q)
    plane = re.search(r"(\d+)\s*[x×]\s*(\d+)(?:\s*[x×]\s*\d+)?\s*(floats|doubles)", q)
    if "halo" not in q or not r or not plane or not re.search(r"bytes|字节", _asks(q)):
        return []
    size = 8 if plane.group(3) == "doubles" else 4
    one = r * float(plane.group(1)) * float(plane.group(2)) * size
    work = f"{r:g} x {plane.group(1)} x {plane.group(2)} x {size}"
    if re.search(r"interior|both|neighbou?rs|two halos|两个", _asks(q)):
        return [Result((2 * one,), f"2 x {work} = {2 * one:g}")]
    return [Result((one,), f"{work} = {one:g}")]


def struct_field_fraction(q: str) -> list[Result]:
    """Reading one field of an array of structures uses sizeof(field) / sizeof(struct) of the bytes."""
    m = re.search(r"struct\s*\w*\s*\{\s*(float|double|int)\s+([\w\s,]+);\s*\}", q)
    if not m or not re.search(r"fraction|percent|efficien|used|比例", _asks(q)):
        return []
    fields = len([f for f in m.group(2).split(",") if f.strip()])
    if fields < 2:
        return []
    return [Result((100 / fields,), f"1 of {fields} fields = {100 / fields:g}%")]


SOLVERS: tuple[Callable[[str], list[Result]], ...] = (
    amdahl,
    simd_efficiency,
    occupancy,
    roofline,
    grid_2d,
    warp_lane,
    warps_per_block,
    blocks_1d,
    linear_index,
    global_index,
    scan_work,
    bandwidth,
    launch_shape,
    conv_layer,
    ell_index,
    block_waves,
    child_launches,
    halo_bytes,
    struct_field_fraction,
)


def worked_text(results: list[Result], limit: int = 3) -> str:
    """The first few results' arithmetic, one clause each, without repeats."""
    works: list[str] = []
    for result in results[:limit]:
        if not any(result.work in w for w in works):  # a longer clause may already say it
            works = [w for w in works if w not in result.work] + [result.work]
    return "; ".join(works)


def solve(question: str) -> list[Result]:
    """Every result the solvers read from ``question``, most specific solver first."""
    q = re.sub(r"\s+", " ", question.replace("`", "")).lower()
    # Powers written out: "N = 2^20" -> "N = 1048576" (small exponents only).
    q = re.sub(
        r"\b(\d{1,2})\s*\^\s*(\d{1,2})\b", lambda m: str(int(m.group(1)) ** int(m.group(2))), q
    )
    out: list[Result] = []
    for solver in SOLVERS:
        try:
            out.extend(solver(q))
        except (ValueError, ZeroDivisionError, OverflowError) as exc:  # a misread quantity
            logger.debug("%s could not read %r: %s", solver.__name__, question[:60], exc)
    return out
