"""Solvers for speedup laws (chapters 1 and 4): Amdahl's law from fractions or from measured
times, and the SIMD efficiency of a divergent loop."""

from __future__ import annotations

import re

from pmpprag.rag.calc._common import FACTOR, PCT, Lowered, Result, asking_part, number

# A measured time and its unit; the lookahead is ASCII, as a Chinese character may follow the
# unit ("80 秒在一个数据并行循环里").
_TIME = r"(\d+(?:\.\d+)?)\s*(s|seconds|秒|ms|毫秒)(?![A-Za-z0-9_/])"


def amdahl(q: Lowered) -> list[Result]:
    """Overall speedup when a fraction p of the time runs s times faster: 1 / ((1 - p) + p / s)."""
    if not re.search(r"amdahl|speedup|speed-up|加速比|阿姆达尔|快多少倍|快几倍|how much faster", q):
        return []
    m = re.search(PCT + r"(.{0,80})", q)
    given = re.search(r"\bp\s*=\s*(0?\.\d+|1(?:\.0+)?)\b.{0,12}?\bs\s*=\s*(\d+(?:\.\d+)?)", q)
    if not m and given:  # "p = 0.9、S = 10": the fraction and the factor by their names
        p, s = float(given.group(1)), float(given.group(2))
        if not 0 < p < 1 or s <= 1:
            return []
        value = 1 / ((1 - p) + p / s)
        return [Result((value,), f"1 / ((1 - {p:g}) + {p:g} / {s:g}) = {value:.3g}")]
    if not m:
        return amdahl_times(q) or speedup_times(q)
    p = float(m.group(1)) / 100
    clause = re.split(r"[,;，；]|\band\b|\. ", m.group(2))[0]  # what the percentage is of
    if re.search(r"sequential|serial|串行|unchanged|不变", clause) and not re.search(
        r"parallel|accelerat|sped|speed|faster|并行|加速", clause
    ):
        p = 1 - p  # "10% stays sequential"
    if not 0 < p < 1:
        return []
    limit = Result((1 / (1 - p),), f"1 / (1 - {p:g}) = {1 / (1 - p):.3g}")
    factors = [number(x) for x in re.findall(FACTOR, q)]
    factors = [s for s in factors if s > 1]
    asks_limit = re.search(
        r"infinit|unlimited|arbitrar|upper bound|maximum|largest|at most|上限|无限|最大",
        asking_part(q),
    )
    if not factors:
        return [limit] if asks_limit or re.search(r"limit|bound|max", q) else []
    s = factors[0]
    value = 1 / ((1 - p) + p / s)
    speedup = Result((value,), f"1 / ((1 - {p:g}) + {p:g} / {s:g}) = {value:.3g}")
    if not asks_limit:
        return [speedup]
    # "... sped up 50x: what is the speedup, and its limit?" asks both; the limit leads when
    # it is the question's only ask (an option list then holds the limit)
    both = re.search(r"(?:speedup|加速比)\S{0,8}(?:是|为)?多少|what is the (?:overall )?speedup", q)
    return [speedup, limit] if both else [limit]


def amdahl_times(q: Lowered) -> list[Result]:
    """The same law from measured times: T / (T - T_par + T_par / s + overheads)."""
    factors = [s for s in (number(x) for x in re.findall(FACTOR, q)) if s > 1]
    if not factors:
        return []
    total = parallel = 0.0
    extra = []
    for m in re.finditer(_TIME, q):
        t, before, after = (
            float(m.group(1)),
            q[max(0, m.start() - 30) : m.start()],
            q[m.end() : m.end() + 40],
        )
        around = before + " " + after
        if re.search(r"(?:runs? for|takes|total(?: of)?|运行|总共?)\s*(?:of\s*)?$", before):
            total = t
        elif re.search(r"^\s*(?:in |is |are )?(?:是)?(?:sequential|serial|顺序|串行)", after):
            continue  # the rest of the run, which the total already holds
        elif re.search(r"transfer|overhead|copy|copies|传输|拷贝|开销", around) and not re.search(
            r"不计|忽略|ignor|without|exclud", around
        ):
            extra.append(t)
        elif re.search(
            r"^\s*(?:is |are )?(?:in |spent in )?(?:an? |the )?(?:data-)?(?:parallel|loop|kernel|并行|可并行|是可并行)"
            r"|^\s*(?:是|在)?(?:一个)?(?:数据)?(?:可)?并行",
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


def speedup_times(q: Lowered) -> list[Result]:
    """Speedup from two measured times, before and after: T_old / T_new ("originally 60 s on
    the CPU, 4 s on the GPU")."""
    times = list(re.finditer(_TIME, q))
    if len(times) != 2 or times[0].group(2) != times[1].group(2):
        return []
    if not re.search(
        r"原来|原先|顺序|originally|sequential|before|previously", q[: times[0].start()]
    ):
        return []
    old, new = float(times[0].group(1)), float(times[1].group(1))
    if new <= 0 or new >= old:
        return []
    unit = times[0].group(2)
    return [Result((old / new,), f"{old:g} {unit} / {new:g} {unit} = {old / new:.3g}")]


def simd_efficiency(q: Lowered) -> list[Result]:
    """A warp runs a loop as long as its longest thread: useful / (32 x max) lane-iterations."""
    pairs = [
        (number(c), number(k))
        for c, k in re.findall(r"(\d+)\s*(?:other\s*)?threads?[^.;?]*?\b(\d+)\s*times", q)
    ]
    if len(pairs) < 2 or sum(c for c, _ in pairs) != 32:
        return []
    useful = sum(c * k for c, k in pairs)
    longest = max(k for _, k in pairs)
    eff = 100 * useful / (32 * longest)
    asks = asking_part(q)
    if re.search(r"efficiency|效率", asks):
        return [Result((eff,), f"{useful:g} / (32 x {longest:g}) = {eff:.3g}%")]
    if re.search(r"iterations", asks):
        return [Result((longest,), f"the warp runs max = {longest:g} iterations")]
    return []
