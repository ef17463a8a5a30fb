"""Typed eval results: what ``eval run``, ``eval grade`` and ``eval ablate`` measure.

Code reads fields (``metrics.quality.open.course_rouge_l``); ``metrics.json`` is
:meth:`RunMetrics.to_dict`, with the same keys as the fields.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "AblationRow",
    "ChapterScores",
    "McqMethodRun",
    "McqQuality",
    "OpenQuality",
    "Quality",
    "RunMetrics",
    "Speed",
]


@dataclass
class McqQuality:
    n: int
    accuracy: float | None
    methods: list[str]  # the answering methods that decided (e.g. "calculate->evidence")


@dataclass
class OpenQuality:
    n: int
    course_rouge_l: float | None  # the course metric: jieba + rouge-score (drops CJK characters)
    cjk_rouge_l: float | None  # ROUGE-L F that keeps Chinese words
    rouge_l: float | None
    key_point_coverage: float | None
    repeated_4gram: float | None  # share of repeated 4-character n-grams per answer
    mostly_chinese: float | None  # share of Chinese questions answered in Chinese
    with_key_points: int


@dataclass
class Quality:
    items: int
    mcq: McqQuality
    open: OpenQuality


@dataclass
class ChapterScores:
    n: int
    mcq_accuracy: float | None
    key_point_coverage: float | None
    course_rouge_l: float | None


@dataclass
class Speed:
    wall_s: float
    questions_per_s: float | None
    completion_tokens: int
    tokens_per_s: float | None
    answer_chars: int
    chars_per_s: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    note: str | None = None  # how it was timed, when that differs from the default


@dataclass
class RunMetrics:
    """One scored run: quality, per-chapter scores, speed, and what produced them."""

    quality: Quality
    by_chapter: dict[str, ChapterScores]
    speed: Speed
    testset: str = ""
    model: str | None = None  # eval run: the generator model; eval grade: None
    backend: str | None = None
    adapter: str | None = None  # eval ablate: the LoRA adapter of the variant
    url: str | None = None  # eval grade: the server graded
    rag: bool | None = None
    mode: str | None = None  # answer mode, or the server's /predict mode
    ragas: dict[str, Any] | None = None
    overlap: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """metrics.json: every field, fields that do not apply (None) left out at the top."""
        out = asdict(self)
        if self.speed.note is None:
            del out["speed"]["note"]
        return {k: v for k, v in out.items() if v is not None}


@dataclass
class AblationRow:
    """One ablation variant: its headline numbers, or why it was skipped."""

    variant: str
    skipped: str | None = None
    rag: bool | None = None
    adapter: str | None = None
    mcq_accuracy: float | None = None
    mcq_methods: list[str] = field(default_factory=list)
    key_point_coverage: float | None = None
    course_rouge_l: float | None = None
    cjk_rouge_l: float | None = None
    rouge_l: float | None = None
    repeated_4gram: float | None = None
    questions_per_s: float | None = None
    tokens_per_s: float | None = None
    folder: str | None = None

    @classmethod
    def measured(
        cls, variant: str, adapter: str | None, metrics: RunMetrics, folder: str
    ) -> AblationRow:
        q, s = metrics.quality, metrics.speed
        return cls(
            variant=variant,
            rag=metrics.rag,
            adapter=adapter,
            mcq_accuracy=q.mcq.accuracy,
            mcq_methods=q.mcq.methods,
            key_point_coverage=q.open.key_point_coverage,
            course_rouge_l=q.open.course_rouge_l,
            cjk_rouge_l=q.open.cjk_rouge_l,
            rouge_l=q.open.rouge_l,
            repeated_4gram=q.open.repeated_4gram,
            questions_per_s=s.questions_per_s,
            tokens_per_s=s.tokens_per_s,
            folder=folder,
        )


@dataclass
class McqMethodRun:
    """``eval mcq``: one answering method, with or without retrieval, on the mcq items."""

    method: str
    rag: bool
    accuracy: float
    correct: int
    n: int
    modes: list[str]  # the methods that decided (fallbacks included)
    seconds: float
