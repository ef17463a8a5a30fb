"""A worked-formula calculator for the textbook's quantitative questions.

A 135M-parameter model cannot do arithmetic, and passage support cannot compute a block count.
But most numeric questions on chapters 1-6 apply one of a few textbook formulas to numbers
stated in the question: Amdahl's law, ceil(n / blockDim) blocks, idle threads, warp and lane of
a thread, legal block shapes, occupancy from the SM's limits, SIMD efficiency of a divergent loop, the roofline
bound and tiled arithmetic intensity, row-major linear indices, scan work, peak bandwidth.

How it works: :func:`solve` normalises the question once (:func:`~._common.lowered`), then asks
every solver in :data:`SOLVERS` order. Each solver recognises its formula by the question's
words, reads the quantities it needs with regular expressions, and returns :class:`Result`
records (the numbers and the worked arithmetic); one that cannot read every quantity it needs
returns nothing. :func:`pick_option` answers only when exactly one option agrees with a result;
otherwise the caller falls back to another method. English and Chinese wording are both read.

The solvers are private, grouped by topic: ``_speedup`` (Amdahl, SIMD efficiency),
``_threads`` (launch geometry, indices, warps), ``_memory`` (occupancy, roofline, bandwidth),
``_patterns`` (scan, convolution tiles and layers, sparse storage, ELL), ``_numbers`` (IEEE 754 encoding).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from pmpprag.rag.calc._common import Lowered, Result, lowered
from pmpprag.rag.calc._memory import (
    bandwidth,
    constant_chunks,
    halo_bytes,
    latency_warps,
    occupancy,
    roofline,
    stencil_partition,
    struct_field_fraction,
    vector_add_bytes,
)
from pmpprag.rag.calc._numbers import float_bits, float_spacing
from pmpprag.rag.calc._options import option_numbers, pick_option
from pmpprag.rag.calc._patterns import (
    conv_layer,
    conv_tile,
    ell_index,
    radix_pass,
    scan_example,
    scan_work,
    sparse_storage,
    three_phase_scan,
)
from pmpprag.rag.calc._speedup import amdahl, simd_efficiency
from pmpprag.rag.calc._threads import (
    block_shape,
    block_waves,
    blocks_1d,
    child_launches,
    global_index,
    grid_2d,
    grid_limits,
    grid_stride,
    launch_shape,
    linear_index,
    truncated_blocks,
    warp_lane,
    warps_per_block,
)

__all__ = ["SOLVERS", "Result", "option_numbers", "pick_option", "solve", "worked_text"]

logger = logging.getLogger(__name__)

# The order matters: solve() returns results in this order, pick_option() takes the first
# result that exactly one option agrees with, and the extractive answer leads with the first.
# So a solver whose words are more specific comes before one that would also read the question.
SOLVERS: tuple[Callable[[Lowered], list[Result]], ...] = (
    # Laws named by their words ("speedup", "Amdahl", "SIMD efficiency", "occupancy",
    # "roofline"): their questions also state block sizes and element counts, which the
    # geometry solvers below would read as a launch.
    amdahl,
    simd_efficiency,
    occupancy,
    latency_warps,
    roofline,
    # Worked examples named by their words: a radix-sort pass and the three-phase scan before
    # any scan reader, a given list's scans before scan_work; MPI slabs and constant-memory
    # chunks state sizes that the launch readers below would take for a grid.
    radix_pass,
    three_phase_scan,
    scan_example,
    stencil_partition,
    constant_chunks,
    # 2D before 1D: an image question names a block size too, and blocks_1d would count
    # blocks over the wrong quantity. Warp/lane before warps-per-block before block counts.
    grid_2d,
    warp_lane,
    warps_per_block,
    grid_stride,  # before blocks_1d and global_index, which read its numbers otherwise
    truncated_blocks,  # before blocks_1d, which would round the block count up
    grid_limits,  # before blocks_1d: "which grid dimension" questions state n and a block size
    blocks_1d,
    # Indices and counts that need their own words ("row-major", "global index", "scan").
    linear_index,
    global_index,
    scan_work,
    bandwidth,
    vector_add_bytes,
    # Broad readers last: they match wording that the solvers above also use.
    launch_shape,
    block_shape,
    conv_tile,
    conv_layer,
    ell_index,
    sparse_storage,
    block_waves,
    child_launches,
    halo_bytes,
    struct_field_fraction,
    float_spacing,  # before float_bits, which declines a spacing question
    float_bits,
)


# The English words of the solvers' worked clauses, for an answer in Chinese (formulas,
# identifiers and units stay as they are). worked_text replaces the longest phrases first, so
# "elements never computed" is one phrase, not "elements" and two English words.
_ZH_WORDS: tuple[tuple[str, str], ...] = (
    ("processes with the data server", "个进程（含数据服务器）"),
    ("an interior process sends", "内部进程每步发送"),
    ("onesBefore (exclusive scan)", "onesBefore（排除扫描）"),
    ("gridDim.y, gridDim.z limit", "gridDim.y、gridDim.z 上限"),
    ("Kogge-Stone on all", "Kogge-Stone 直接扫描全部"),
    ("records a chunk", "条记录/块"),
    ("bytes each step", "字节/步"),
    ("warps per scheduler", "个 warp/调度器"),
    ("planes per process", "个平面/进程"),
    ("the local buffer", "本地缓冲区"),
    ("the last chunk", "最后一块"),
    ("bytes per chunk", "字节/块"),
    ("inclusive scan", "包含扫描"),
    ("exclusive scan", "排除扫描"),
    ("gridDim.x limit", "gridDim.x 上限"),
    ("warps per SM", "个 warp/SM"),
    ("0-bit keys go to", "位为 0 的键去"),
    ("1-bit keys to", "位为 1 的键去"),
    ("destinations", "目标下标"),
    ("not enough", "不够"),
    ("per chunk", "每块"),
    ("launches", "次启动"),
    ("a plane", "一个平面"),
    ("a halo", "一个光环"),
    ("exceeds", "超限"),
    ("enough", "足够"),
    ("output", "输出"),
    ("phase", "阶段"),
    ("total", "合计"),
    ("at most", "最多"),
    ("elements", "个元素"),
    ("keys", "键"),
    ("key", "键"),
    ("planes", "个平面"),
    ("bytes", "字节"),
    ("bits", "位"),
    ("bit", "位"),
    ("fits", "未超限"),
    ("min(threads", "min(线程槽"),
    ("block slots", "block 槽"),
    ("shared memory", "共享内存"),
    ("registers", "寄存器"),
    ("steps:", "步数:"),
    ("only the warp that straddles n diverges", "只有跨越 n 的那个 warp 发散"),
    ("one thread per block launches", "每个 block 只有一个线程启动子网格"),
    ("every thread launches", "每个线程都启动子网格"),
    ("all in the last block", "全部位于最后一个 block"),
    ("of the threads idle", "的线程闲置"),
    ("elements never computed", "个元素没有被计算"),
    ("of the threads compute", "的线程参与计算"),
    ("threads compute", "个线程参与计算"),
    ("threads idle", "个线程闲置"),
    ("single floats in", "个单精度数位于"),
    ("idle lanes", "个空闲通道"),
    ("handles", "处理元素"),
    ("stride", "跨步"),
    ("the warp runs max", "warp 的迭代次数取最大值 max"),
    ("threads per block", "个线程/block"),
    ("exponent field", "指数字段"),
    ("mantissa field", "尾数字段"),
    ("rounded up", "向上取整"),
    ("sequential", "顺序算法"),
    ("iterations", "次迭代"),
    ("additions", "次加法"),
    ("illegal", "不合法"),
    ("threads", "个线程"),
    ("blocks", "个 block"),
    ("biases", "个偏置"),
    ("fields", "个字段"),
    ("words", "个字"),
    ("legal", "合法"),
    ("steps", "步"),
    ("thread", "线程"),
    ("sign", "符号位"),
    ("of", "/"),
)


def worked_text(results: list[Result], limit: int = 4, language: str = "en") -> str:
    """The first few results' arithmetic, one clause each, without repeats; in Chinese the
    clauses' words (not their formulas) are Chinese."""
    works: list[str] = []
    for result in results[:limit]:
        if not any(result.work in w for w in works):  # a longer clause may already say it
            works = [w for w in works if w not in result.work] + [result.work]
    text = "; ".join(works)
    if language == "zh":
        for english, chinese in sorted(_ZH_WORDS, key=lambda pair: -len(pair[0])):
            text = re.sub(rf"(?<![\w.]){re.escape(english)}(?![\w(])", chinese, text)
        text = text.replace("; ", "；")
    return text


def solve(question: str) -> list[Result]:
    """Every result the solvers read from ``question``, in :data:`SOLVERS` order."""
    q = lowered(question)
    out: list[Result] = []
    for solver in SOLVERS:
        try:
            out.extend(solver(q))
        except (ValueError, ZeroDivisionError, OverflowError) as exc:  # a misread quantity
            logger.debug("%s could not read %r: %s", solver.__name__, question[:60], exc)
    return out
