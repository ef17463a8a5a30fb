"""Grade a running server through the course's grading contract, like a course grader.

    pmpprag eval grade --url http://127.0.0.1:8000 --testset eval/sample_zh.txt [--out DIR]

``GET /`` is polled until the server answers ``{"status": "ok"}`` or ``{"status": "batch"}``;
then the questions go to ``POST /predict``: all in one request (``{"prompt": [...]}``, in chunks
of ``--batch_size`` if set) when the server says ``batch``, else one request per question with
``--concurrency`` in flight. Only the predict calls are timed. Multiple-choice items are sent with
their options as "A. ..." lines and scored by the first option letter of the reply. Outputs are
those of ``eval run``: results.jsonl, metrics.json, report.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pmpprag.config import option, to_dict
from pmpprag.errors import PmppragError
from pmpprag.eval.overlap import CORPUS, overlap_report
from pmpprag.eval.results import RunMetrics
from pmpprag.eval.run import headline, score_items, summarise, write_run
from pmpprag.rag.prompts import format_choices
from pmpprag.testsets import TestItem, read_testset

logger = logging.getLogger(__name__)

__all__ = ["GradeConfig", "GradeError", "run"]


class GradeError(PmppragError, RuntimeError):
    """The server under test is unreachable or broke the grading contract."""


@dataclass
class GradeConfig:
    url: str = option("http://127.0.0.1:8000", "server to grade")
    testset: Path = option(Path("eval/sample_zh.txt"), "test set (.jsonl, .txt, .csv)")
    out: Path = option(Path("out/eval/grade"), "where results.jsonl, metrics.json, report.md go")
    ready_timeout_s: float = option(600.0, "how long to wait for GET / to answer")
    request_timeout_s: float = option(3600.0, "timeout of one /predict call")
    batch_size: int = option(0, "batch mode: questions per request (0: all in one)")
    concurrency: int = option(1, "single mode: requests in flight at once")
    key_point_embedder: bool = option(True, "match key points by MiniLM similarity too")
    limit: int | None = option(None, "only the first N items")


def _prompt(item: TestItem) -> str:
    return f"{item.question}\n{format_choices(item.choices)}" if item.choices else item.question


def wait_ready(
    client: Any, url: str, timeout_s: float, alive: Callable[[], bool] | None = None
) -> str:
    """Poll ``GET /`` until it reports a status; returns "ok" or "batch". ``alive`` (where the
    caller started the server: is its process still running?) fails the wait at once when the
    server exits during start-up, instead of polling a dead port until the timeout."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise GradeError(f"the server for {url} exited before it was ready")
        try:
            reply = client.get(url.rstrip("/") + "/", timeout=5)
            status = reply.json().get("status") if reply.status_code == 200 else None
            if status in ("ok", "batch"):
                return str(status)
            last = f"HTTP {reply.status_code}: {reply.text[:200]}"
        except Exception as err:  # not up yet: keep polling
            last = str(err)
        time.sleep(1.0)
    raise GradeError(
        f"{url} did not become ready in {timeout_s:.0f} s (GET / -> {last}); "
        "is `pmpprag serve` running there?"
    )


def _responses(reply: Any, expected: int) -> list[str]:
    if reply.status_code != 200:
        raise GradeError(f"POST /predict -> HTTP {reply.status_code}: {reply.text[:300]}")
    response = reply.json().get("response")
    responses = response if isinstance(response, list) else [response]
    if len(responses) != expected or not all(isinstance(r, str) for r in responses):
        raise GradeError(
            f"POST /predict returned {len(responses)} answers for {expected} questions"
        )
    return responses


def run(cfg: GradeConfig) -> RunMetrics:
    import httpx

    items = read_testset(cfg.testset)[: cfg.limit]
    prompts = [_prompt(i) for i in items]
    predict = cfg.url.rstrip("/") + "/predict"
    with httpx.Client(timeout=cfg.request_timeout_s) as client:
        status = wait_ready(client, cfg.url, cfg.ready_timeout_s)
        logger.info("%s is ready (%s mode); sending %d questions", cfg.url, status, len(items))
        latencies: list[float] = []
        started = time.perf_counter()
        if status == "batch":
            size = cfg.batch_size or len(prompts)
            answers: list[str] = []
            for start in range(0, len(prompts), size):
                chunk = prompts[start : start + size]
                t = time.perf_counter()
                answers += _responses(client.post(predict, json={"prompt": chunk}), len(chunk))
                latencies += [time.perf_counter() - t] * len(chunk)
        else:

            def one(prompt: str) -> tuple[str, float]:
                t = time.perf_counter()
                reply = client.post(predict, json={"prompt": prompt})
                return _responses(reply, 1)[0], time.perf_counter() - t

            with ThreadPoolExecutor(max(1, cfg.concurrency)) as pool:
                pairs = list(pool.map(one, prompts))
            answers = [a for a, _ in pairs]
            latencies = [s for _, s in pairs]
        wall = time.perf_counter() - started
    embedder = None
    if cfg.key_point_embedder and any(i.key_points for i in items):
        from pmpprag import models

        embedder = models.load_embedder("minilm-l6")
    rows = score_items(items, answers, embedder=embedder)
    for row, latency in zip(rows, latencies, strict=True):
        row["wall_s"] = round(latency, 4)
    metrics = summarise(rows, wall)
    metrics.speed.note = (
        "timed over the /predict calls only; tokens are not reported by the grading contract"
    )
    metrics.overlap = overlap_report(items, CORPUS, [])
    metrics.testset, metrics.url, metrics.mode = str(cfg.testset), cfg.url, status
    metrics.settings = to_dict(cfg)
    write_run(Path(cfg.out), rows, metrics, f"eval grade: {cfg.url} on {cfg.testset}", cfg)
    print(headline(metrics))
    print(f"report: {Path(cfg.out) / 'report.md'}")
    return metrics
