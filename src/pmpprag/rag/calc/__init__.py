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
    halo_bytes,
    occupancy,
    roofline,
    struct_field_fraction,
)
from pmpprag.rag.calc._numbers import float_bits
from pmpprag.rag.calc._options import option_numbers, pick_option
from pmpprag.rag.calc._patterns import (
    conv_layer,
    conv_tile,
    ell_index,
    scan_work,
    sparse_storage,
)
from pmpprag.rag.calc._speedup import amdahl, simd_efficiency
from pmpprag.rag.calc._threads import (
    block_shape,
    block_waves,
    blocks_1d,
    child_launches,
    global_index,
    grid_2d,
    launch_shape,
    linear_index,
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
    roofline,
    # 2D before 1D: an image question names a block size too, and blocks_1d would count
    # blocks over the wrong quantity. Warp/lane before warps-per-block before block counts.
    grid_2d,
    warp_lane,
    warps_per_block,
    blocks_1d,
    # Indices and counts that need their own words ("row-major", "global index", "scan").
    linear_index,
    global_index,
    scan_work,
    bandwidth,
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
    float_bits,
)


# The English words of the solvers' worked clauses, for an answer in Chinese (longest first;
# formulas, identifiers and units stay as they are).
_ZH_WORDS: tuple[tuple[str, str], ...] = (
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
        for english, chinese in _ZH_WORDS:
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
