"""``pmpprag ask``: answer questions from the command line, with citations and speed.

pmpprag ask "What does __syncthreads() do?"
pmpprag ask --file questions.txt --out answers.jsonl     # .txt: one per line; .jsonl: {"question", "choices"?}
pmpprag ask --config configs/rag/gpu.yaml "CUDA中共享内存有什么作用？"
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from pmpprag.config import option
from pmpprag.rag.pipeline import Assistant, Question, RagConfig
from pmpprag.rag.prompts import provenance
from pmpprag.schema import Answer, atomic_write

logger = logging.getLogger(__name__)

__all__ = ["AskConfig", "read_questions", "run"]


@dataclass
class AskConfig(RagConfig):
    question: str | None = option(None, "the question (or give --file)")
    file: Path | None = option(
        None, "questions: .txt (one per line) or .jsonl with question/choices"
    )
    out: Path | None = option(None, "write answers as JSONL here")
    batch_size: int = option(8, "questions per generation batch")


def read_questions(path: Path) -> list[Question]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    questions = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            try:
                item = json.loads(line)
                questions.append(Question(item["question"], item.get("choices") or None))
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ValueError(
                    f"{path}:{lineno}: expected a JSON object with a 'question' ({err})"
                ) from err
        else:
            questions.append(Question(line.strip()))
    if not questions:
        raise ValueError(f"{path} holds no questions")
    return questions


def show(answer: Answer) -> str:
    lines = [answer.text, ""]
    for c in answer.citations:
        hit = next(h for h in answer.passages if h.chunk.chunk_id == c.chunk_id)
        lines.append(f"  [{c.n}] {provenance(hit)}  ({c.chunk_id})")
    speed = (
        f"{answer.completion_tokens / answer.wall_s:.1f} tokens/s, "
        if answer.completion_tokens
        else ""
    )
    lines.append(
        f"  mode: {answer.mode}; {speed}{answer.wall_s:.2f} s (retrieval {answer.retrieval_s * 1000:.0f} ms)"
    )
    return "\n".join(lines)


def run(cfg: AskConfig) -> list[Answer]:
    if (cfg.question is None) == (cfg.file is None):
        raise ValueError('give a question (pmpprag ask "...") or --file FILE, not both')
    questions = read_questions(cfg.file) if cfg.file else [Question(cfg.question or "")]
    assistant = Assistant.load(cfg)
    started = time.perf_counter()
    answers = assistant.ask_many(questions, batch_size=cfg.batch_size)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    if cfg.out:
        with atomic_write(cfg.out) as fh:
            for answer in answers:
                fh.write(answer.model_dump_json() + "\n")
    if len(answers) == 1 and not cfg.out:
        print(show(answers[0]))
    else:
        tokens = sum(a.completion_tokens for a in answers)
        print(f"{len(answers)} answers in {seconds:.1f} s: {len(answers) / seconds:.2f} questions/s, "
              f"{tokens / seconds:.1f} generated tokens/s" + (f"; wrote {cfg.out}" if cfg.out else ""))  # fmt: skip
    return answers
