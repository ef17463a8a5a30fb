"""report.md and its PNG charts for ``eval run``, ``eval grade`` and ``eval ablate``."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pmpprag.eval.overlap import overlap_markdown
from pmpprag.eval.results import AblationRow, ChapterScores, RunMetrics

logger = logging.getLogger(__name__)

__all__ = ["ablation_chart", "ablation_table", "render_report"]


def _pyplot() -> Any | None:
    """matplotlib's pyplot, or None where it is not installed (a bare GPU machine): the report
    then keeps its tables and leaves the charts out."""
    try:
        import matplotlib
    except ModuleNotFoundError:
        logger.warning("charts skipped: matplotlib is not installed here")
        return None

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _chapter_chart(out: Path, by_chapter: dict[str, ChapterScores]) -> str | None:
    plt = _pyplot() if by_chapter else None
    if plt is None:
        return None
    chapters = list(by_chapter)
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(chapters)), 3.5))
    width = 0.4
    for offset, key, label in ((-width / 2, "mcq_accuracy", "mcq accuracy"),
                               (width / 2, "key_point_coverage", "key-point coverage")):  # fmt: skip
        values = [getattr(by_chapter[c], key) or 0.0 for c in chapters]
        ax.bar([i + offset for i in range(len(chapters))], values, width, label=label)
    ax.set_xticks(range(len(chapters)), [f"ch{c}" for c in chapters])
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("Accuracy per chapter")
    fig.tight_layout()
    fig.savefig(out / "chapters.png", dpi=110)
    plt.close(fig)
    return "chapters.png"


def _speed_chart(out: Path, rows_latency: list[float]) -> str | None:
    plt = _pyplot() if rows_latency else None
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(rows_latency, bins=30)
    ax.set_xlabel("latency per question (s)")
    ax.set_ylabel("questions")
    ax.set_title("Latency")
    fig.tight_layout()
    fig.savefig(out / "speed.png", dpi=110)
    plt.close(fig)
    return "speed.png"


def render_report(out: Path, rows: list[dict[str, Any]], metrics: RunMetrics, title: str) -> str:
    """The markdown report for scored ``rows``; charts are written beside it in ``out``."""
    q, s = metrics.quality, metrics.speed
    latencies = [r["wall_s"] for r in rows if r.get("wall_s")]
    lines = [f"# {title}", ""]
    where = metrics.url or f"{metrics.model} ({metrics.backend})"
    lines += [f"Answered by: {where}; RAG: {metrics.rag}; mode: {metrics.mode}.", ""]
    lines += ["## Quality", "", "| metric | value | n |", "|---|---|---|"]
    if q.mcq.n:
        lines.append(f"| mcq accuracy ({', '.join(q.mcq.methods)}) | "
                     f"{_fmt(q.mcq.accuracy)} | {q.mcq.n} |")  # fmt: skip
    if q.open.n:
        o = q.open
        lines += [
            f"| course metric (jieba + rouge-score RougeL F) | {_fmt(o.course_rouge_l)} | {o.n} |",
            f"| CJK-aware ROUGE-L F (Chinese words kept) | {_fmt(o.cjk_rouge_l)} | {o.n} |",
            f"| ROUGE-L F1 (English tokenizer, stemmed) | {_fmt(o.rouge_l)} | {o.n} |",
            f"| repeated 4-character n-grams per answer | {_fmt(o.repeated_4gram)} | {o.n} |",
        ]
        if o.with_key_points:
            lines.append(
                f"| key-point coverage | {_fmt(o.key_point_coverage)} | {o.with_key_points} |"
            )
    lines += ["", "The course metric drops every CJK character (rouge-score's default tokenizer "
              "keeps only `[a-z0-9]`), so it scores the Latin identifiers and numbers that "
              "answer and reference share; the CJK-aware row keeps the Chinese words.", ""]  # fmt: skip
    if metrics.ragas is not None:
        r = metrics.ragas
        lines += ["## ragas", "", f"Judge: {r.get('judge') or 'none (offline metrics only)'}", "",
                  "| metric | mean | n | failures |", "|---|---|---|---|"]  # fmt: skip
        for name, v in r.items():
            if isinstance(v, dict):
                lines.append(f"| {name} | {_fmt(v['mean'])} | {v['n']} | {v['failures']} |")
        lines.append("")
    chart = _chapter_chart(out, metrics.by_chapter)
    if metrics.by_chapter:
        lines += ["## Per chapter", ""]
        lines += [f"![accuracy per chapter]({chart})", ""] if chart else []
        lines += ["| chapter | n | mcq accuracy | key-point coverage | course metric |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for c, v in metrics.by_chapter.items():
            lines.append(f"| {c} | {v.n} | {_fmt(v.mcq_accuracy)} | "
                         f"{_fmt(v.key_point_coverage)} | {_fmt(v.course_rouge_l)} |")  # fmt: skip
        lines.append("")
    lines += ["## Speed", "", "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in asdict(s).items() if v is not None]
    lines += ["", "tokens/s: completion tokens counted by the model's tokenizer over the answering "
              "wall time; chars/s: answer characters over the same time (the course's figure).", ""]  # fmt: skip
    chart = _speed_chart(out, latencies)
    if chart:
        lines += [f"![latency]({chart})", ""]
    if metrics.overlap is not None:
        lines += ["## Overlap with corpus and training data", "",
                  overlap_markdown(metrics.overlap), ""]  # fmt: skip
    return "\n".join(lines)


def ablation_chart(out: Path, rows: list[AblationRow]) -> str:
    """Grouped bars: mcq accuracy, key-point coverage and course metric per variant."""
    plt = _pyplot()
    if plt is None:
        raise ModuleNotFoundError("the ablation chart needs matplotlib: pip install matplotlib")
    ran = [r for r in rows if not r.skipped]
    keys = [("mcq_accuracy", "mcq accuracy"), ("key_point_coverage", "key-point coverage"),
            ("course_rouge_l", "course metric")]  # fmt: skip
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(ran)), 3.5))
    width = 0.8 / len(keys)
    for k, (key, label) in enumerate(keys):
        ax.bar([i + (k - 1) * width for i in range(len(ran))], [getattr(r, key) or 0.0 for r in ran],
               width, label=label)  # fmt: skip
    ax.set_xticks(range(len(ran)), [r.variant for r in ran])
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("Ablation")
    fig.tight_layout()
    fig.savefig(out / "ablation.png", dpi=110)
    plt.close(fig)
    return "ablation.png"


def ablation_table(rows: list[AblationRow]) -> str:
    """The ablation variants as a markdown table; skipped variants say why."""
    lines = ["| variant | mcq accuracy | key-point coverage | course metric | CJK ROUGE-L | ROUGE-L "
             "| repeated 4-char n-grams | q/s |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        if r.skipped:
            lines.append(f"| {r.variant} | skipped: {r.skipped} | | | | | | |")
            continue
        lines.append(f"| {r.variant} | {_fmt(r.mcq_accuracy)} | {_fmt(r.key_point_coverage)} | "
                     f"{_fmt(r.course_rouge_l)} | {_fmt(r.cjk_rouge_l)} | {_fmt(r.rouge_l)} | "
                     f"{_fmt(r.repeated_4gram)} | {_fmt(r.questions_per_s)} |")  # fmt: skip
    return "\n".join(lines)
