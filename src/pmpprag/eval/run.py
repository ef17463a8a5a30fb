"""Grade a run the way a grader would: answer a test set, score every item, write a report.

    pmpprag eval run --testset eval/sample_zh.txt [--config configs/rag/default.yaml] [--out DIR]

Writes into ``--out``: ``results.jsonl`` (every item: question, reference, answer, retrieved
passages, scores, tokens, timings), ``metrics.json`` (the summary, the resolved settings, the
overlap check), ``report.md`` with ``chapters.png`` / ``speed.png``, and ``config.yaml``.
Metrics: mcq accuracy (with the answering method), the course metric and its CJK-aware variant,
ROUGE-L F1, key-point coverage, ragas (``--ragas.*``), and speed: tokens/s (completion tokens
from the model's tokenizer over answering wall time), the course's characters/s, latency p50/p95,
time to first token and questions/s.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from pmpprag.config import option, to_dict
from pmpprag.eval.metrics import (
    cjk_rouge_l,
    course_rouge_l,
    keypoint_coverage,
    percentile,
    repeated_ngram_share,
    rouge_l,
)
from pmpprag.eval.overlap import CORPUS, overlap_report
from pmpprag.eval.ragas_eval import RagasConfig, score_open_answers
from pmpprag.eval.results import (
    ChapterScores,
    McqQuality,
    OpenQuality,
    Quality,
    RunMetrics,
    Speed,
)
from pmpprag.rag.pipeline import Assistant, Question, RagConfig
from pmpprag.rag.prompts import parse_letter
from pmpprag.schema import Answer, atomic_write, write_jsonl
from pmpprag.testsets import TestItem, read_testset
from pmpprag.text import has_cjk, prose_language

logger = logging.getLogger(__name__)

__all__ = [
    "EvalRunConfig",
    "answer_fields",
    "answer_items",
    "headline",
    "run",
    "score_answers",
    "score_items",
    "summarise",
    "write_run",
]


@dataclass
class EvalRunConfig(RagConfig):
    testset: Path = option(
        Path("eval/sample_en.jsonl"), "test set (.jsonl, .txt course format, .csv)"
    )
    out: Path = option(Path("out/eval/run"), "where results.jsonl, metrics.json, report.md go")
    batch_size: int = option(16, "questions per ask_many batch")
    limit: int | None = option(None, "only the first N items (quick checks)")
    ragas: RagasConfig = field(default_factory=RagasConfig, metadata={"help": "ragas metrics"})
    train: list[Path] = field(
        default_factory=list, metadata={"help": "QA training files to check for overlap"}
    )


def answer_items(
    assistant: Assistant, items: list[TestItem], batch_size: int
) -> tuple[list[Answer], float]:
    """Answers in item order, and the wall time spent answering (progress on stderr)."""
    questions: list[str | Question] = [Question(i.question, i.choices or None) for i in items]
    answers: list[Answer] = []
    started = time.perf_counter()
    with tqdm(total=len(questions), desc="answering", unit="q", leave=False) as bar:
        for start in range(0, len(questions), batch_size):
            answers += assistant.ask_many(questions[start : start + batch_size], batch_size)
            bar.update(min(batch_size, len(questions) - start))
    return answers, time.perf_counter() - started


def score_items(
    items: list[TestItem], answers: list[str], *, embedder: Any = None
) -> list[dict[str, Any]]:
    """Per-item scores: mcq correctness, the course metric, its CJK variant, ROUGE-L, key points."""
    rows = []
    for item, answer in zip(items, answers, strict=True):
        row: dict[str, Any] = {"id": item.id, "type": item.type, "chapter": item.chapter,
                               "section": item.section, "question": item.question,
                               "reference": item.answer, "answer": answer}  # fmt: skip
        if item.type == "mcq":
            row["correct"] = float(parse_letter(answer, len(item.choices)) == item.answer)
        else:
            row["course_rouge_l"] = course_rouge_l(answer, item.answer)
            row["cjk_rouge_l"] = cjk_rouge_l(answer, item.answer)
            row["rouge_l"] = rouge_l(answer, item.answer)
            row["repeated_4gram"] = repeated_ngram_share(answer)
            if has_cjk(item.question):  # is the answer to a Chinese question written in Chinese?
                row["mostly_chinese"] = float(prose_language(answer) == "zh")
            if item.key_points:
                kp = keypoint_coverage(answer, item.key_points, embedder)
                row.update(key_point_coverage=kp.coverage, key_points_matched=kp.matched,
                           key_points_missed=kp.missed)  # fmt: skip
        rows.append(row)
    return rows


def score_answers(
    items: list[TestItem], answers: list[Answer], embedder: Any
) -> list[dict[str, Any]]:
    """``score_items`` on the assistant's answers (an mcq by its letter), with their evidence and
    timings. An open answer is scored as ``/predict`` returns it to a grader: without its
    citation markers, which point into a sources list the reply does not carry; results keep
    the cited text too."""
    rows = score_items(items, [a.choice or a.plain_text for a in answers], embedder=embedder)
    for row, answer in zip(rows, answers, strict=True):
        row.update(answer_fields(answer))
        row["answer"], row["answer_cited"] = answer.plain_text, answer.text
    return rows


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None and not math.isnan(r[key])]
    return round(sum(values) / len(values), 4) if values else None


def summarise(rows: list[dict[str, Any]], wall_s: float) -> RunMetrics:
    """Quality per type and chapter, and speed over the whole run."""
    mcq = [r for r in rows if r["type"] == "mcq"]
    open_ = [r for r in rows if r["type"] == "open"]
    quality = Quality(
        items=len(rows),
        mcq=McqQuality(n=len(mcq), accuracy=_mean(mcq, "correct"),
                       methods=sorted({str(r.get("mode")) for r in mcq})),
        open=OpenQuality(n=len(open_), course_rouge_l=_mean(open_, "course_rouge_l"),
                         cjk_rouge_l=_mean(open_, "cjk_rouge_l"), rouge_l=_mean(open_, "rouge_l"),
                         key_point_coverage=_mean(open_, "key_point_coverage"),
                         repeated_4gram=_mean(open_, "repeated_4gram"),
                         mostly_chinese=_mean(open_, "mostly_chinese"),
                         with_key_points=sum(1 for r in open_ if "key_point_coverage" in r)),
    )  # fmt: skip
    by_chapter: dict[str, ChapterScores] = {}
    for chapter in sorted({r["chapter"] for r in rows if r["chapter"] is not None}):
        these = [r for r in rows if r["chapter"] == chapter]
        by_chapter[str(chapter)] = ChapterScores(
            n=len(these),
            mcq_accuracy=_mean(these, "correct"),
            key_point_coverage=_mean(these, "key_point_coverage"),
            course_rouge_l=_mean(these, "course_rouge_l"),
        )
    latencies = [r["wall_s"] for r in rows if r.get("wall_s")]
    ttfts = [r["ttft_s"] for r in rows if r.get("ttft_s")]
    tokens = sum(r.get("completion_tokens", 0) for r in rows)
    chars = sum(len(r["answer"]) for r in rows)
    speed = Speed(
        wall_s=round(wall_s, 3),
        questions_per_s=round(len(rows) / wall_s, 3) if wall_s else None,
        completion_tokens=tokens,
        tokens_per_s=round(tokens / wall_s, 2) if wall_s and tokens else None,
        answer_chars=chars,
        chars_per_s=round(chars / wall_s, 2) if wall_s else None,
        latency_p50_s=percentile(latencies, 50),
        latency_p95_s=percentile(latencies, 95),
        ttft_p50_s=percentile(ttfts, 50),
        ttft_p95_s=percentile(ttfts, 95),
    )
    return RunMetrics(quality=quality, by_chapter=by_chapter, speed=speed)


def answer_fields(answer: Answer) -> dict[str, Any]:
    return {"mode": answer.mode, "choice": answer.choice,
            "citations": [c.model_dump() for c in answer.citations],
            "passages": [{"chunk_id": h.chunk.chunk_id, "chapter": h.chunk.chapter,
                          "page_label": h.chunk.page_label, "score": round(h.score, 4)}
                         for h in answer.passages],
            "prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
            "retrieval_s": round(answer.retrieval_s, 4), "ttft_s": round(answer.ttft_s, 4),
            "wall_s": round(answer.wall_s, 4)}  # fmt: skip


def write_run(
    out: Path, rows: list[dict[str, Any]], metrics: RunMetrics, title: str, cfg: Any = None
) -> None:
    """results.jsonl, metrics.json, config.yaml (the resolved settings, to re-run with
    ``--config``), charts and report.md, each written atomically."""
    from pmpprag.eval.report import render_report

    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "results.jsonl", rows)
    with atomic_write(out / "metrics.json") as fh:
        json.dump(metrics.to_dict(), fh, indent=1, ensure_ascii=False, default=str)
    if cfg is not None:
        with atomic_write(out / "config.yaml") as fh:
            yaml.safe_dump(to_dict(cfg), fh, sort_keys=False, allow_unicode=True)
    report = render_report(out, rows, metrics, title)
    with atomic_write(out / "report.md") as fh:
        fh.write(report)


def run(cfg: EvalRunConfig) -> RunMetrics:
    items = read_testset(cfg.testset)[: cfg.limit]
    assistant = Assistant.load(cfg)
    logger.info("answering %d items from %s", len(items), cfg.testset)
    answers, wall = answer_items(assistant, items, cfg.batch_size)
    embedder = assistant.retriever.embedder if assistant.retriever else None
    rows = score_answers(items, answers, embedder)
    metrics = summarise(rows, wall)
    open_rows = [r for r in rows if r["type"] == "open"]
    if cfg.ragas.enabled and open_rows:
        ragas_rows = [{"user_input": r["question"], "response": r["answer"],
                       "reference": r["reference"],
                       "retrieved_contexts": [h.chunk.text for h in a.passages] or [""]}
                      for r, a in zip(rows, answers, strict=True) if r["type"] == "open"]  # fmt: skip
        per_row, metrics.ragas = score_open_answers(ragas_rows, cfg.ragas)
        for row, scores in zip(open_rows, per_row, strict=True):
            row["ragas"] = scores
    metrics.overlap = overlap_report(items, CORPUS, cfg.train)
    metrics.testset, metrics.model, metrics.backend = (
        str(cfg.testset),
        cfg.generator.model,
        cfg.generator.backend,
    )
    metrics.rag, metrics.mode, metrics.settings = cfg.rag, cfg.mode, to_dict(cfg)
    write_run(Path(cfg.out), rows, metrics, f"eval run: {cfg.testset}", cfg)
    print(headline(metrics))
    print(f"report: {Path(cfg.out) / 'report.md'}")
    return metrics


def headline(metrics: RunMetrics) -> str:
    q, s = metrics.quality, metrics.speed
    parts = [f"{q.items} items"]
    if q.mcq.n:
        parts.append(f"mcq accuracy {q.mcq.accuracy}")
    if q.open.n:
        parts.append(f"course ROUGE-L {q.open.course_rouge_l}")
        parts.append(f"CJK ROUGE-L {q.open.cjk_rouge_l}")
        if q.open.mostly_chinese is not None:
            parts.append(f"Chinese answers {q.open.mostly_chinese}")
        if q.open.with_key_points:
            parts.append(f"key points {q.open.key_point_coverage}")
    parts.append(f"{s.questions_per_s} q/s")
    if s.tokens_per_s:  # extractive answers generate no tokens
        parts.append(f"{s.tokens_per_s} tok/s")
    parts.append(f"{s.chars_per_s} chars/s")
    return ", ".join(parts)
