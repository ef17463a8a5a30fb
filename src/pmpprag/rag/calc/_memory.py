"""Solvers for memory and resources (chapters 4-6, 17, 20): occupancy from an SM's limits,
warps that hide a latency, the roofline bound, peak bandwidth, halo bytes and a stencil's MPI
slabs, constant-memory chunks, and the useful fraction of a strided struct access."""

from __future__ import annotations

import math
import re

from pmpprag.rag.calc._common import (
    ASK_BLOCKS,
    BLOCK_SIZE,
    NUM,
    Lowered,
    Result,
    asking_part,
    find_number,
    number,
)


def _shared_memory_kb(q: Lowered) -> tuple[float | None, float | None]:
    """(shared memory per SM, per block) in KB, told apart by the words around each value."""
    if not re.search(r"shared", q):
        return None, None
    sm = block = None
    for m in re.finditer(r"(\d+(?:\.\d+)?)\s*kb", q):
        before, after = q[max(0, m.start() - 40) : m.start()], q[m.end() : m.end() + 30]
        per_block = re.match(
            r"\s*(?:of\s*)?(?:shared\s*memory\s*)?(?:per|each|/|for each)\s*block", after
        ) or re.search(
            r"(?:(?:per|each|every)\s*(?:\d+-thread\s*)?block|blocks?\s*each|每个\s*block)"
            r"[^.;，。]{0,25}?(?:uses|needs|allocates|requires|declares|使用|需要|占用)?\s*(?:of\s*)?$",
            before,
        )
        if per_block and block is None:
            block = float(m.group(1))
        elif not per_block and sm is None:
            sm = float(m.group(1))
    return sm, block


def occupancy(q: Lowered) -> list[Result]:
    """Blocks per SM = min(thread slots / b, block slots, registers / (r x b), shared / s)."""
    if not re.search(r"occupancy|resident|占用率|驻留|fit", q):
        return []
    b = find_number(BLOCK_SIZE, q)
    slots = find_number(
        r"(\d[\d,]*)\s*thread\s*slots|(\d[\d,]*)\s*个?线程槽|最多(?:支持)?\s*(\d[\d,]*)\s*个线程|(?:at most|maximum of|supports(?: at most)?|up to)\s*(\d[\d,]*)\s*(?:resident\s*)?threads|(\d[\d,]{3,})\s*threads",
        q,
    )
    if not b or not slots:
        return []
    limits = {"threads": slots // b}
    block_slots = find_number(
        r"(\d+)\s*block\s*slots|(\d+)\s*个?\s*block\s*槽|(?:at most|up to)\s*(?:\d[\d,]*\s*threads\s*and\s*)?(\d+)\s*blocks",
        q,
    )
    if block_slots:
        limits["block slots"] = block_slots
    regs = find_number(r"(\d{1,3}(?:,\d{3})+|\d{4,})\s*(?:32-bit\s*)?(?:registers|个寄存器)", q)
    per_thread = find_number(
        r"(\d+)\s*registers\s*(?:per\s*thread|each)"
        r"|each thread (?:needs|uses|requires|has) (\d+) registers"
        r"|每个线程(?:使用|用|需要|占用)?\s*(\d+)\s*个寄存器",
        q,
    )
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
    asks = asking_part(q)
    occ = Result(
        (pct,), f"min({why}) = {blocks:g} blocks; {threads:g} / {slots:g} threads = {pct:.3g}%"
    )
    by_blocks = Result((blocks,), f"min({why}) = {blocks:g} blocks")
    if re.search(ASK_BLOCKS, asks):
        return [by_blocks, occ]
    if re.search(r"how many (?:resident )?threads", asks):
        return [Result((threads,), f"{blocks:g} blocks x {b:g} = {threads:g}")]
    if re.search(r"how many (?:resident )?warps", asks):
        return [Result((threads / 32,), f"{threads:g} / 32 = {threads / 32:g}")]
    return [occ, by_blocks]


_BW = r"(\d[\d,]*(?:\.\d+)?)\s*(GB/s|TB/s)"


_PEAK = r"(\d[\d,]*(?:\.\d+)?)\s*(GFLOPS|TFLOPS|GFLOP/s|TFLOP/s)"


def roofline(q: Lowered) -> list[Result]:
    """Attainable = min(peak, intensity x bandwidth); naive matmul 0.25 FLOP/B, tiled T / 4."""
    tile = find_number(r"tile_width\s*(?:=|of)\s*(\d+)", q)
    given = find_number(r"(\d+(?:\.\d+)?)\s*(?:flop|op)s?\s*(?:/|per)\s*(?:b\b|byte)", q)
    matmul = re.search(r"matri|matmul|矩阵", q)
    if tile and matmul:
        ai, why = tile / 4, f"TILE_WIDTH / 4 = {tile / 4:g} FLOP/B"
    elif given is not None:
        ai, why = given, f"{given:g} FLOP/B"
    elif matmul and re.search(r"naive|simple|basic|朴素", q):
        ai, why = 0.25, "0.25 FLOP/B"
    else:
        return []
    asks = asking_part(q)
    bw_m, peak_m = re.search(_BW, q, re.IGNORECASE), re.search(_PEAK, q, re.IGNORECASE)
    if not bw_m or (
        re.search(r"intensity|强度", asks)
        and not re.search(r"attain|throughput|bound|perf|上界|上限|达到|gflop", asks)
    ):
        wanted = re.search(r"intensity|强度|flop/b", asks)
        return [Result((ai,), why)] if wanted and given is None else []
    bw = number(bw_m.group(1)) * (1000 if bw_m.group(2).upper().startswith("T") else 1)  # GB/s
    bound = ai * bw  # GFLOPS
    if not peak_m:
        return [Result((bound,), f"{why} x {bw:g} GB/s = {bound:g} GFLOPS")]
    tera = peak_m.group(2).upper().startswith("T")
    peak = number(peak_m.group(1)) * (1000 if tera else 1)
    if re.search(r"ridge", asks):
        return [Result((peak / bw,), f"{peak:g} / {bw:g} = {peak / bw:.3g} FLOP/B")]
    attained = min(peak, bound)
    scale = 1000 if tera else 1
    return [Result((attained / scale,), f"min({peak:g}, {why} x {bw:g}) = {attained:g} GFLOPS")]


def vector_add_bytes(q: Lowered) -> list[Result]:
    """A stand-alone vector addition of n floats moves A and B in and C out over the
    interconnect: 3 x 4 x n bytes."""
    if not re.search(r"vector add|向量加法|vecadd", q) or not re.search(
        r"interconnect|互连|pcie|host[- ]device|主机与设备", q
    ):
        return []
    n = find_number(r"\bn\s*=\s*" + NUM, q)
    if not n or not re.search(r"bytes|字节", asking_part(q)):
        return []
    return [Result((12 * n,), f"3 x 4 x {n:.15g} = {12 * n:.15g} bytes")]


def bandwidth(q: Lowered) -> list[Result]:
    """Peak DRAM bandwidth = bus width (bits) x per-pin data rate / 8."""
    bits = find_number(  # NUM: "5,120-bit" is the whole number, not its last 120
        NUM + r"-bit\s*(?:memory\s*)?(?:interface|bus)"
        r"|(?:接口|总线)(?:位?宽|宽度)?(?:为|是)?\s*" + NUM + r"\s*(?:位|bit)"
        r"|" + NUM + r"\s*(?:位|bit)\s*(?:宽)?的?\s*(?:内存|显存)?(?:接口|总线)",
        q,
    )
    rate = re.search(r"(\d+(?:\.\d+)?)\s*(gb/s|gbps|gt/s|mt/s)", q)
    if not bits or not rate:
        return []
    per_pin = float(rate.group(1)) / (1000 if rate.group(2) == "mt/s" else 1)
    value = bits * per_pin / 8
    return [Result((value,), f"{bits:g} x {per_pin:g} / 8 = {value:g} GB/s")]


def halo_bytes(q: Lowered) -> list[Result]:
    """A z-partitioned stencil's halo is R planes of X x Y values; an interior process sends two."""
    r = find_number(r"radius\s*(?:r\s*)?(?:=\s*)?(\d+)|\br\s*=\s*(\d+)", q)
    plane = re.search(r"(\d+)\s*[x×]\s*(\d+)(?:\s*[x×]\s*\d+)?\s*(floats|doubles)", q)
    if "halo" not in q or not r or not plane or not re.search(r"bytes|字节", asking_part(q)):
        return []
    size = 8 if plane.group(3) == "doubles" else 4
    one = r * float(plane.group(1)) * float(plane.group(2)) * size
    work = f"{r:g} x {plane.group(1)} x {plane.group(2)} x {size}"
    if re.search(r"interior|both|neighbou?rs|two halos|两个", asking_part(q)):
        return [Result((2 * one,), f"2 x {work} = {2 * one:g}")]
    return [Result((one,), f"{work} = {one:g}")]


def struct_field_fraction(q: Lowered) -> list[Result]:
    """Reading one field of an array of structures uses sizeof(field) / sizeof(struct) of the bytes."""
    m = re.search(r"struct\s*\w*\s*\{\s*(float|double|int)\s+([\w\s,]+);\s*\}", q)
    if not m or not re.search(r"fraction|percent|efficien|used|比例", asking_part(q)):
        return []
    fields = len([f for f in m.group(2).split(",") if f.strip()])
    if fields < 2:
        return []
    return [Result((100 / fields,), f"1 of {fields} fields = {100 / fields:g}%")]


def latency_warps(q: Lowered) -> list[Result]:
    """Latency hiding (chapter 4): while one warp waits L cycles the others must issue L
    instructions; a warp issues I between its long-latency loads, so a scheduler needs
    ceil(L / I) + 1 warps; an SM needs that per scheduler, within its resident-warp limit."""
    i = find_number(r"(\d+)\s*(?:条|个)?\s*(?:相互)?(?:独立的?)?\s*(?:指令|independent instructions)"
                    r"|(\d+)\s*instructions", q)  # fmt: skip
    wait = find_number(r"(\d+)\s*(?:个)?\s*(?:周期|cycles?)", q)
    asks = asking_part(q)
    if not i or not wait or not re.search(r"how many warps|多少个?\s*warp|warps? (?:are )?needed"
                                          r"|需要.{0,8}warp|enough warps", asks):  # fmt: skip
        return []
    per = math.ceil(wait / i) + 1
    ratio = f"{wait:g} / {i:g}" if wait % i == 0 else f"ceil({wait:g} / {i:g})"
    out = [Result((float(per),), f"{ratio} + 1 = {per} warps per scheduler")]
    schedulers = find_number(r"(\d+)\s*(?:个)?\s*(?:warp\s*)?(?:调度器|schedulers)", q)
    cap = find_number(r"(?:最多|at most|up to|maximum of)\s*(?:驻留\s*)?(\d+)\s*(?:个)?\s*(?:resident\s*)?"
                      r"warps?|(\d+)\s*(?:个)?\s*(?:resident\s*)?warps?\s*per\s*sm", q)  # fmt: skip
    if schedulers:
        total = per * schedulers
        work = f"{schedulers:g} x {per} = {total:g} warps per SM"
        if cap:
            work += f" <= {cap:g}: enough" if total <= cap else f" > {cap:g}: not enough"
        out.append(Result((total,), work))
    return out


def constant_chunks(q: Lowered) -> list[Result]:
    """An array too large for constant memory goes in chunks (chapter 17): CHUNK_SIZE x record
    bytes a chunk, ceil(M / CHUNK_SIZE) launches, the last chunk's remainder, and at most
    64 KB / record bytes records a chunk."""
    if not re.search(r"constant memory|常量内存", q):
        return []
    size = find_number(r"(\d+)\s*(?:字节|bytes?|-byte)\s*(?:的)?\s*(?:结构体|struct|records?)", q)
    chunk = find_number(r"chunk_size\s*(?:=|is|of)\s*" + NUM, q)
    if not size or not chunk:
        return []
    out = [Result((chunk * size,), f"{chunk:g} x {size:g} = {chunk * size:g} bytes per chunk")]
    m = find_number(r"\bm\s*=\s*" + NUM + r"|" + NUM + r"\s*(?:个)?\s*(?:samples|样本)", q)
    if m:
        launches = math.ceil(m / chunk)
        last = m - (launches - 1) * chunk
        out.append(Result((float(launches), last),
                          f"ceil({m:g} / {chunk:g}) = {launches} launches; the last chunk "
                          f"{m:g} - {launches - 1} x {chunk:g} = {last:g}"))  # fmt: skip
    limit = 65536 // size
    out.append(
        Result(
            (float(limit),),
            f"65536 / {size:g} = {65536 / size:.6g}: at most {limit:g} records a chunk",
        )
    )
    return out


def stencil_partition(q: Lowered) -> list[Result]:
    """A 3D grid split into slabs along z over P MPI processes (chapter 20): z / P planes each,
    X x Y values a plane, R planes a halo, a local buffer of z / P + 2R planes, two halos sent
    a step by an interior process, one more process for a data server."""
    grid = re.search(r"(\d+)\s*[x×]\s*(\d+)\s*[x×]\s*(\d+)", q)
    procs = find_number(
        r"(\d+)\s*(?:个)?\s*(?:计算)?\s*(?:进程|(?:compute |mpi )?processes|ranks)", q
    )
    r = find_number(
        r"\br\s*=\s*(\d+)|radius\s*(?:r\s*)?(?:=\s*|of\s*)?(\d+)|半径\s*(?:r\s*)?=?\s*(\d+)", q
    )
    if not grid or not procs or not r or not re.search(r"halo|光环|plane|平面", q):
        return []
    x, y, z = (int(g) for g in grid.groups())
    if z % procs:
        return []
    size = 8 if "double" in q else 4
    planes, plane = z / procs, x * y * size
    halo = r * plane
    out = [
        Result((planes, planes + 2 * r),
               f"{z} / {procs:g} = {planes:g} planes per process; the local buffer "
               f"{planes:g} + 2 x {r:g} = {planes + 2 * r:g} planes"),
        Result((plane, halo, 2 * halo),
               f"a plane {x} x {y} x {size} = {plane:.0f} bytes; a halo {r:g} x {plane:.0f} = "
               f"{halo:.0f} bytes; an interior process sends 2 x {halo:.0f} = {2 * halo:.0f} bytes each step"),
    ]  # fmt: skip
    if re.search(r"data server|数据服务器", q):
        out.append(
            Result((procs + 1,), f"{procs:g} + 1 = {procs + 1:g} processes with the data server")
        )
    return out
