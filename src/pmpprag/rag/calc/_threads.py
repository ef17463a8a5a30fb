"""Solvers for launch geometry (chapters 2-4 and 21): blocks and grids over 1D and 2D data,
idle threads, warps and lanes, linear and global indices, launch shapes, block waves and
child launches."""

from __future__ import annotations

import math
import re

from pmpprag.rag.calc._common import (
    ASK_BLOCKS,
    ASK_IDLE,
    BLOCK_SIZE,
    NUM,
    Lowered,
    Result,
    asking_part,
    find_number,
)


def blocks_1d(q: Lowered) -> list[Result]:
    """A 1D launch over n elements: ceil(n / b) blocks, idle threads, the last block's workers."""
    b = find_number(BLOCK_SIZE, q)
    n = find_number(r"\bn\s*=\s*" + NUM + r"|" + NUM + r"\s*(?:elements|个元素)", q)
    if not b or not n or re.search(r"pixels?|像素|\bwidth\b", q):
        return []
    # Blocks that cover more than one element per thread (a reduction block reduces
    # 2 x BLOCK_DIM elements; a coarsened thread produces ELEMS outputs).
    per_block = find_number(r"(\d+)\s*[*x×]\s*block_?dim\w*\s*elements", q)
    per_thread = find_number(
        r"each thread (?:produces|processes|handles|computes|reduces|loads) (?:\w+\s*=\s*)?(\d+)"
        r"|每个线程(?:产生|处理|负责|计算)\D{0,12}?(\d+)",
        q,
    )
    b *= (per_block or 1) * (per_thread or 1)
    # or the elements a block covers, stated outright ("each block reduces a 2048-element
    # segment"): then only the block count and the last block's elements follow
    segment = find_number(
        r"each block (?:reduces|processes|handles|covers|loads|sums) an? (\d+)[- ]elements?"
        r"|每个\s*(?:block|线程块)\s*(?:归约|处理|负责|覆盖)\D{0,6}?(\d+)\s*个元素",
        q,
    )
    b = segment or b
    blocks = math.ceil(n / b)
    launched = blocks * b
    asks = asking_part(q)
    out = []
    threads = not segment  # with a segment, launched counts elements: no idle threads or warps
    if threads and re.search(ASK_IDLE, asks):
        out.append(
            Result((launched - n,), f"ceil({n:g} / {b:g}) x {b:g} - {n:g} = {launched - n:g}")
        )
        if launched > n and re.search(r"which block|位于", asks):
            out.append(Result((blocks - 1,), f"all in the last block, blockIdx.x = {blocks - 1}"))
    if re.search(r"last block|最后一个\s*block", asks) and re.search(
        r"work|active|useful|valid|real|有效|工作|活跃", asks
    ):
        last = n - (blocks - 1) * b
        out.append(Result((last,), f"{n:g} - ({blocks} - 1) x {b:g} = {last:g}"))
    if threads and re.search(r"diverge", asks) and re.search(r"warps?", asks):
        out.append(Result((1 if n % 32 else 0,), "only the warp that straddles n diverges"))
    if threads and re.search(r"how many warps", asks):
        out.append(Result((launched / 32,), f"{blocks} x {b:g} / 32 = {launched / 32:g}"))
    if re.search(ASK_BLOCKS, asks):
        out.append(Result((blocks,), f"ceil({n:g} / {b:g}) = {blocks}"))
    if threads and re.search(r"(how many|total)\s*threads", asks) and not out:
        out.append(Result((launched,), f"ceil({n:g} / {b:g}) x {b:g} = {launched}"))
    return out


def _block_2d(q: Lowered) -> tuple[float, float] | None:
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


def grid_2d(q: Lowered) -> list[Result]:
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
    asks = asking_part(q)
    out = [Result((gx, gy), f"({w:g} / {bx:g}, {h:g} / {by:g}) rounded up = ({gx}, {gy})")]
    if re.search(ASK_IDLE, asks):
        out.insert(
            0,
            Result(
                (threads - w * h,),
                f"{gx} x {gy} x {bx * by:g} - {w:g} x {h:g} = {threads - w * h:g}",
            ),
        )
    elif re.search(ASK_BLOCKS, asks):
        out.insert(0, Result((gx * gy,), f"{gx} x {gy} = {gx * gy}"))
    if re.search(r"how many threads|total threads|线程总数|总线程数|总共\S{0,4}线程", asks):
        total = Result((threads,), f"{gx * gy} blocks x {bx * by:g} = {threads:g} threads")
        out.insert(1 if len(out) > 1 else 0, total)
    return out


def warp_lane(q: Lowered) -> list[Result]:
    """Warp and lane of a thread: linear = (z * By + y) * Bx + x; warp = linear / 32."""
    if not re.search(r"warp|线程束", q):
        return []
    # threadIdx.x = 7, or (x = 3, y = 6) -- never blockDim.x = 16
    x = find_number(r"threadidx\.x\s*=\s*(\d+)|(?<![\w.])x\s*=\s*(\d+)", q)
    y = find_number(r"threadidx\.y\s*=\s*(\d+)|(?<![\w.])y\s*=\s*(\d+)", q)
    z = find_number(r"threadidx\.z\s*=\s*(\d+)|(?<![\w.])z\s*=\s*(\d+)", q) or 0.0
    dims = re.search(r"(\d+)\s*[x×]\s*(\d+)(?:\s*[x×]\s*(\d+))?", q) or re.search(
        r"blockdim\D{0,6}\(\s*(\d+)\s*,\s*(\d+)(?:\s*,\s*(\d+))?\s*\)", q
    )
    bx = find_number(r"blockdim\.x\s*=\s*(\d+)", q) or (float(dims.group(1)) if dims else None)
    by = find_number(r"blockdim\.y\s*=\s*(\d+)", q) or (float(dims.group(2)) if dims else None)
    if x is None or y is None or not bx or not by:
        return []
    linear = (z * by + y) * bx + x
    work = f"({z:g} x {by:g} + {y:g}) x {bx:g} + {x:g} = {linear:g}; warp {linear // 32:g}, lane {linear % 32:g}"
    return [Result((linear // 32, linear % 32), work)]


def warps_per_block(q: Lowered) -> list[Result]:
    """A block of n threads takes ceil(n / 32) warps."""
    asks = asking_part(q)
    if not re.search(r"how many warps|多少个\s*warp", asks) or re.search(r"grid|\bsm\b", asks):
        return []
    dims = re.search(r"(\d+)\s*[x×]\s*(\d+)(?:\s*[x×]\s*(\d+))?\s*(?:thread)?\s*block", q)
    if dims:
        n = math.prod(float(d) for d in dims.groups() if d)
    else:
        found = find_number(
            r"block\s*(?:has|of|with|is launched with)\s*(\d+)\s*threads|(\d+)\s*个线程", q
        )
        if not found:
            return []
        n = found
    warps = math.ceil(n / 32)
    out = [Result((warps,), f"ceil({n:g} / 32) = {warps}")]
    if re.search(r"wasted|idle|unused|浪费|空闲|闲置", asks) and warps * 32 > n:
        out.append(
            Result((warps * 32 - n,), f"{warps} x 32 - {n:g} = {warps * 32 - n:g} idle lanes")
        )
    return out


def truncated_blocks(q: Lowered) -> list[Result]:
    """Blocks counted as n / threadsPerBlock (integer division, no rounding up) leave the last
    n mod threadsPerBlock elements with no thread."""
    # "n / 256" itself, not "(n + 255) / 256", which rounds up and leaves nothing over
    if not re.search(r"\bn\s*/\s*(?:threadsperblock|blockdim\.x|\d+)(?!\s*[+.\d])", q):
        return []
    asks = asking_part(q)
    if not re.search(
        r"left|unprocessed|not (?:be )?(?:computed|processed)|skipped|没有被|未被|漏", asks
    ):
        return []
    n = find_number(r"\bn\s*=\s*" + NUM, q)
    b = find_number(r"threadsperblock\s*=\s*(\d+)", q) or find_number(BLOCK_SIZE, q)
    if not n or not b:
        return []
    covered = (n // b) * b
    return [
        Result(
            (n - covered,),
            f"{n:g} - floor({n:g} / {b:g}) x {b:g} = {n - covered:g} elements never computed",
        )
    ]


def grid_stride(q: Lowered) -> list[Result]:
    """A grid-stride loop: thread i handles i, i + stride, ... below n, stride = blocks x threads."""
    if not re.search(r"grid\s*[- ]?(?:跨步|stride)|gridstride", q):
        return []
    blocks = find_number(r"(\d+)\s*个?\s*blocks?(?!\s*(?:槽|slots?))", q)
    b = find_number(BLOCK_SIZE, q)
    n = find_number(r"\bn\s*=\s*" + NUM, q)
    i = find_number(r"global index\s*(\d+)|全局索引为\s*(\d+)|(\d+)\s*号线程|thread\s*(\d+)\b", q)
    if not blocks or not b or not n or i is None:
        return []
    stride = blocks * b
    handled = [float(x) for x in range(int(i), int(n), int(stride))]
    if not handled or len(handled) > 8:
        return []
    listed = ", ".join(f"{x:g}" for x in handled)
    return [Result(tuple(handled), f"stride {blocks:g} x {b:g} = {stride:g}: handles {listed}")]


def linear_index(q: Lowered) -> list[Result]:
    """Row-major: (plane x height + row) x width + col; column-major: col x height + row."""
    if not re.search(r"linear|row-major|column-major|下标|index", q):
        return []
    row = find_number(r"row\s*(\d+)|第\s*(\d+)\s*行", q)
    col = find_number(r"col(?:umn)?\s*(\d+)|第\s*(\d+)\s*列", q)
    if row is None or col is None:
        return []
    plane = find_number(r"plane\s*(\d+)|depth index\s*(\d+)|第\s*(\d+)\s*(?:层|个平面)", q)
    width = find_number(r"width\s*(?:of\s*|=\s*)?(\d+)|(\d+)\s*columns|宽\s*(\d+)", q)
    height = find_number(r"height\s*(?:of\s*|=\s*)?(\d+)|(\d+)\s*rows|高\s*(\d+)", q)
    if not width:
        return []
    if re.search(r"column-major", asking_part(q)) and height:
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


def global_index(q: Lowered) -> list[Result]:
    """i = blockIdx.x x blockDim.x + threadIdx.x (and back: element e -> block e / d, thread e % d)."""
    d = find_number(r"blockdim\.x\s*(?:=|is|of)\s*(\d+)", q) or find_number(BLOCK_SIZE, q)
    if not d:
        return []
    m = re.search(r"thread\s*(\d+)\s*(?:of|in)\s*block\s*(\d+)", q)
    b = find_number(r"blockidx\.x\s*=\s*(\d+)", q)
    t = find_number(r"threadidx\.x\s*=\s*(\d+)", q)
    if m:
        t, b = float(m.group(1)), float(m.group(2))
    asks = asking_part(q)
    if b is not None and t is not None and not re.search(r"warp|lane|row|col|y\s*=", q):
        return [Result((b * d + t,), f"{b:g} x {d:g} + {t:g} = {b * d + t:g}")]
    e = find_number(r"element\s*(\d+)", asks)
    if e is not None and re.search(r"which block", asks):
        return [Result((e // d, e % d), f"{e:g} / {d:g} = block {e // d:g}, thread {e % d:g}")]
    return []


def launch_shape(q: Lowered) -> list[Result]:
    """dim3 dimGrid(gx, gy, gz) and dim3 dimBlock(bx, by, bz): blocks x threads per block."""
    grid = re.search(r"dimgrid\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?(?:,\s*(\d+)\s*)?\)", q)
    block = re.search(r"dimblock\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?(?:,\s*(\d+)\s*)?\)", q)
    asks = asking_part(q)
    if not grid or not block or not re.search(r"how many|total|多少", asks):
        return []
    blocks = math.prod(float(g) for g in grid.groups() if g)
    per_block = math.prod(float(b) for b in block.groups() if b)
    total = Result(
        (blocks * per_block,), f"{blocks:g} blocks x {per_block:g} threads = {blocks * per_block:g}"
    )
    out = []
    if re.search(ASK_BLOCKS, asks):
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


def block_waves(q: Lowered) -> list[Result]:
    """Blocks run in waves of (SMs x blocks per SM): ceil(grid / (SMs x blocks per SM))."""
    sms = find_number(r"(\d+)\s*sms|(\d+)\s*个\s*sm", q)
    per_sm = find_number(
        r"(\d+)\s*blocks?\s*(?:per sm|at a time|at once)|each sm (?:can )?holds?\s*(\d+)", q
    )
    grid = find_number(
        r"grid of\s*" + NUM + r"\s*blocks|" + NUM + r"\s*blocks? in (?:the|a) grid", q
    )
    if not sms or not per_sm or not grid or not re.search(r"wave|rounds?|轮", q):
        return []
    waves = math.ceil(grid / (sms * per_sm))
    return [Result((waves,), f"ceil({grid:g} / ({sms:g} x {per_sm:g})) = {waves}")]


def child_launches(q: Lowered) -> list[Result]:
    """Dynamic parallelism: each parent thread that runs an unguarded child<<<...>>> launches a grid."""
    parent = re.search(r"parent\w*\s*<<<\s*(\d+)\s*,\s*(\d+)\s*>>>", q)
    if not parent or "child" not in q or not re.search(r"how many", asking_part(q)):
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


def block_shape(q: Lowered) -> list[Result]:
    """Is dim3(x, y, z) a legal block: x, y <= 1024, z <= 64, x * y * z <= 1024 threads."""
    if not re.search(r"legal|valid|allowed|合法|有效|允许", q):
        return []
    shapes = re.findall(r"dim3\s*\w*\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?(?:,\s*(\d+)\s*)?\)", q)
    if not shapes and re.search(r"block\s*(?:shape|dimension|size)s?|block\s*形状", q):
        # bare triples: "which thread-block shapes are legal: (32, 32, 1), (4, 4, 64), ..."
        shapes = re.findall(r"\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)", q)
    if not shapes:
        return []
    out = []
    for shape in shapes:
        x, y, z = (float(d) if d else 1.0 for d in shape)
        threads = x * y * z
        broken = [
            why
            for why, bad in (
                (f"{threads:g} > 1024 threads", threads > 1024),
                (f"z = {z:g} > 64", z > 64),
                (f"x = {x:g} > 1024", x > 1024),
                (f"y = {y:g} > 1024", y > 1024),
            )
            if bad
        ]
        dims = ", ".join(d for d in shape if d)
        verdict = "illegal: " + ", ".join(broken) if broken else "legal"
        out.append(Result((float(not broken),), f"dim3({dims}) = {threads:g} threads, {verdict}"))
    return out


def grid_limits(q: Lowered) -> list[Result]:
    """Which grid dimension holds a long 1D launch (chapter 3): ceil(n / b) blocks against
    gridDim.x's 2^31 - 1 and gridDim.y's and gridDim.z's 65,535."""
    if not re.search(r"\b[xyz]\s*(?:维|dimension)|griddim\.[yz]|65,?535", q):
        return []
    b = find_number(BLOCK_SIZE, q)
    n = find_number(r"\bn\s*=\s*" + NUM + r"|" + NUM + r"\s*(?:elements|个元素)", q)
    if not b or not n:
        return []
    blocks = math.ceil(n / b)
    yz = "<= 65535: fits" if blocks <= 65535 else "> 65535: exceeds"
    x = "<= 2^31 - 1 = 2147483647: fits" if blocks <= 2**31 - 1 else "> 2^31 - 1: exceeds"
    return [Result((float(blocks),), f"ceil({n:.0f} / {b:g}) = {blocks} blocks; gridDim.x limit "
                                     f"{x}; gridDim.y, gridDim.z limit {yz}")]  # fmt: skip
