"""ragas metrics for open answers: offline string/embedding metrics always, LLM metrics with a judge.

Offline (no model call): ROUGE-L, chrF, Levenshtein string similarity, and semantic similarity
with the local MiniLM embedder. With a judge (any OpenAI-compatible endpoint: ``vllm serve``,
llama.cpp's server, a hosted API): faithfulness, answer relevancy, context precision and
context recall. A judge call that fails (unparsable JSON, timeout, server error) is counted per
metric and left out of that metric's mean; the report shows ``n`` and ``failures`` beside every
mean, and which judge produced it. ragas is an optional extra: ``pip install 'pmpprag[eval]'``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from dataclasses import dataclass
from typing import Any

from pmpprag import models
from pmpprag.config import option
from pmpprag.errors import MissingExtra

logger = logging.getLogger(__name__)

__all__ = ["RagasConfig", "score_open_answers"]

OFFLINE = ("rouge_l", "chrf", "string_similarity", "semantic_similarity")
JUDGED = ("faithfulness", "answer_relevancy", "context_precision", "context_recall")


@dataclass
class RagasConfig:
    enabled: bool = option(True, "run ragas' offline metrics on open answers")
    judge_base_url: str | None = option(
        None, "OpenAI-compatible judge URL for the LLM metrics (or env PMPPRAG_JUDGE_BASE_URL)"
    )
    judge_model: str = option("judge", "model name the judge server expects")
    judge_api_key: str | None = option(None, "judge key (better: env PMPPRAG_JUDGE_API_KEY)")
    judge_timeout_s: float = option(120.0, "per-call timeout of the judge")

    @property
    def base_url(self) -> str | None:
        return self.judge_base_url or os.environ.get("PMPPRAG_JUDGE_BASE_URL")


def _metrics(cfg: RagasConfig) -> dict[str, tuple[Any, tuple[str, ...]]]:
    """metric name -> (ragas metric, the row fields its ``ascore`` takes)."""
    try:
        from ragas.embeddings import HuggingFaceEmbeddings
        from ragas.metrics import collections as rm
    except ImportError as err:
        raise MissingExtra(
            "ragas metrics need the eval extra: pip install 'pmpprag[eval]' "
            "(or pass --ragas.enabled false)"
        ) from err
    embeddings = HuggingFaceEmbeddings(model=models.resolve("minilm-l6").path_or_id)
    table: dict[str, tuple[Any, tuple[str, ...]]] = {
        "rouge_l": (rm.RougeScore(rouge_type="rougeL"), ("reference", "response")),
        "chrf": (rm.CHRFScore(), ("reference", "response")),
        "string_similarity": (rm.NonLLMStringSimilarity(), ("reference", "response")),
        "semantic_similarity": (
            rm.SemanticSimilarity(embeddings=embeddings),
            ("reference", "response"),
        ),
    }
    if cfg.base_url:
        from openai import AsyncOpenAI
        from ragas.llms import llm_factory

        client = AsyncOpenAI(
            base_url=cfg.base_url,
            api_key=cfg.judge_api_key or os.environ.get("PMPPRAG_JUDGE_API_KEY") or "none",
            timeout=cfg.judge_timeout_s,
            max_retries=1,
        )
        llm = llm_factory(cfg.judge_model, client=client)
        table.update(
            faithfulness=(
                rm.Faithfulness(llm=llm),
                ("user_input", "response", "retrieved_contexts"),
            ),
            answer_relevancy=(
                rm.AnswerRelevancy(llm=llm, embeddings=embeddings),
                ("user_input", "response"),
            ),
            context_precision=(
                rm.ContextPrecision(llm=llm),
                ("user_input", "reference", "retrieved_contexts"),
            ),
            context_recall=(
                rm.ContextRecall(llm=llm),
                ("user_input", "retrieved_contexts", "reference"),
            ),
        )
    return table


def score_open_answers(
    rows: list[dict[str, Any]], cfg: RagasConfig
) -> tuple[list[dict[str, float | None]], dict[str, Any]]:
    """Per-row ragas scores and a summary ``{metric: {mean, n, failures}, judge: ...}``.

    ``rows`` hold ``user_input``, ``response``, ``reference`` and ``retrieved_contexts``.
    A failed or non-numeric score is ``None`` in its row and counted in ``failures``.
    """
    table = _metrics(cfg)
    per_row: list[dict[str, float | None]] = [{} for _ in rows]
    summary: dict[str, Any] = {"judge": cfg.base_url and f"{cfg.judge_model} @ {cfg.base_url}"}

    async def one(metric: Any, fields: tuple[str, ...], row: dict[str, Any]) -> float | None:
        try:
            result = await metric.ascore(**{f: row[f] for f in fields})
            value = float(result.value)
        except Exception as err:  # counted below, never averaged as a zero
            logger.debug("ragas %s failed: %s", metric.name, err)
            return None
        return None if math.isnan(value) else value

    async def all_scores() -> None:
        for name, (metric, fields) in table.items():
            values = await asyncio.gather(*(one(metric, fields, row) for row in rows))
            for scores, value in zip(per_row, values, strict=True):
                scores[name] = value
            ok = [v for v in values if v is not None]
            summary[name] = {
                "mean": round(sum(ok) / len(ok), 4) if ok else None,
                "n": len(ok),
                "failures": len(values) - len(ok),
            }
            if len(ok) < len(values):
                logger.warning(
                    "ragas %s: %d of %d scores failed", name, len(values) - len(ok), len(values)
                )

    asyncio.run(all_scores())
    return per_row, summary
