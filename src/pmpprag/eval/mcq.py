"""Measure the multiple-choice methods on a labelled set, with and without retrieval.

    pmpprag eval mcq --testset eval/sample_en.jsonl [--methods evidence,loglik] [--out DIR]

Prints accuracy per method (with RAG; ``generate`` and ``loglik`` also without) and writes
``mcq_methods.json``. Chance is 1 / number of choices.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from pmpprag.config import option, to_dict
from pmpprag.eval.results import McqMethodRun
from pmpprag.rag.mcq import METHODS
from pmpprag.rag.pipeline import Assistant, Question, RagConfig
from pmpprag.schema import atomic_write
from pmpprag.testsets import read_testset

logger = logging.getLogger(__name__)

__all__ = ["McqEvalConfig", "run"]


@dataclass
class McqEvalConfig(RagConfig):
    testset: Path = option(Path("eval/sample_en.jsonl"), "labelled JSONL with mcq items")
    methods: list[str] = option(list(METHODS), "methods to measure")
    out: Path = option(Path("out/eval/mcq"), "where mcq_methods.json goes")
    no_rag: bool = option(True, "also measure model-based methods without retrieval")


def run(cfg: McqEvalConfig) -> dict[str, Any]:
    items = [i for i in read_testset(cfg.testset) if i.type == "mcq"]
    if not items:
        raise ValueError(f"{cfg.testset} holds no mcq items")
    questions = [Question(i.question, i.choices) for i in items]
    base = Assistant.load(cfg)
    rows: list[McqMethodRun] = []
    for method in cfg.methods:
        for rag in [True, False] if cfg.no_rag and method in ("generate", "loglik") else [True]:
            # shares the retriever and the (lazily loaded) model with every other run
            assistant = base.with_config(replace(cfg, mcq_method=method, rag=rag))  # type: ignore[arg-type]
            started = time.perf_counter()
            answers = assistant.ask_many(questions)  # type: ignore[arg-type]
            correct = sum(a.choice == i.answer for a, i in zip(answers, items, strict=True))
            used = sorted({a.mode for a in answers})
            rows.append(McqMethodRun(method, rag, round(correct / len(items), 3), correct,
                                     len(items), used, round(time.perf_counter() - started, 1)))  # fmt: skip
            logger.info("%s rag=%s: %d/%d", method, rag, correct, len(items))
    chance = round(sum(1 / len(i.choices) for i in items) / len(items), 3)
    report = {
        "testset": str(cfg.testset),
        "model": cfg.generator.model,
        "chance": chance,
        "results": [asdict(r) for r in rows],
        "settings": to_dict(cfg),
    }
    with atomic_write(Path(cfg.out) / "mcq_methods.json") as fh:
        json.dump(report, fh, indent=1, ensure_ascii=False)
    print(
        f"| method | RAG | accuracy | correct / n | s |  (chance {chance})\n|---|---|---|---|---|"
    )
    for r in rows:
        print(
            f"| {r.method} | {'yes' if r.rag else 'no'} | {r.accuracy:.3f} | {r.correct} / {r.n} | {r.seconds} |"
        )
    return report
