"""A worked-formula calculator for the textbook's quantitative questions.

A 135M-parameter model cannot do arithmetic, and passage support cannot compute a block count.
But most numeric questions on chapters 1-6 apply one of a few textbook formulas to numbers
stated in the question: Amdahl's law, ceil(n / blockDim) blocks, idle threads, warp and lane of
a thread, occupancy from the SM's limits, SIMD efficiency of a divergent loop, the roofline
bound and tiled arithmetic intensity, row-major linear indices, scan work, peak bandwidth.

How it works: :func:`solve` normalises the question once (:func:`~._common.lowered`), then asks
every solver in :data:`SOLVERS` order. Each solver recognises its formula by the question's
words, reads the quantities it needs with regular expressions, and returns :class:`Result`
records (the numbers and the worked arithmetic); one that cannot read every quantity it needs
returns nothing. :func:`pick_option` answers only when exactly one option agrees with a result;
otherwise the caller falls back to another method. English and Chinese wording are both read.

The solvers are private, grouped by topic: ``_speedup`` (Amdahl, SIMD efficiency),
``_threads`` (launch geometry, indices, warps), ``_memory`` (occupancy, roofline, bandwidth),
``_patterns`` (scan, convolution layers, ELL).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pmpprag.rag.calc._common import Lowered, Result, lowered
from pmpprag.rag.calc._memory import (
    bandwidth,
    halo_bytes,
    occupancy,
    roofline,
    struct_field_fraction,
)
from pmpprag.rag.calc._options import option_numbers, pick_option
from pmpprag.rag.calc._patterns import conv_layer, ell_index, scan_work
from pmpprag.rag.calc._speedup import amdahl, simd_efficiency
from pmpprag.rag.calc._threads import (
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
    """Every result the solvers read from ``question``, in :data:`SOLVERS` order."""
    q = lowered(question)
    out: list[Result] = []
    for solver in SOLVERS:
        try:
            out.extend(solver(q))
        except (ValueError, ZeroDivisionError, OverflowError) as exc:  # a misread quantity
            logger.debug("%s could not read %r: %s", solver.__name__, question[:60], exc)
    return out
