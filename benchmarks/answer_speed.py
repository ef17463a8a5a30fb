"""Answer speed of a RAG config as a student and a grader feel it: first token, and a whole set.

    .venv/bin/python benchmarks/answer_speed.py --config configs/rag/gemma.yaml [--first 20]
    .venv/bin/python benchmarks/answer_speed.py --config configs/rag/gemma.yaml \
        --generator.model ~/.cache/pmpprag/models/gemma3-270m-trimmed --name gemma-trimmed

- first token: ``--first`` questions of the Chinese sample set, one at a time through
  ``Assistant.stream_answer`` (what the app and ``/v1/chat/completions`` stream): seconds from
  the call to the first piece of text, p50 and p95. Retrieval is included; an answer that is not
  generated (calculator, not covered) counts its whole time.
- one batch: every question of the set through one ``ask_many`` call (what a grading run
  does), wall seconds, answers/s, generated tokens/s.
Writes ``benchmarks/results/answer_speed-<name>.json`` and prints a markdown table with the
machine, versions and command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

from pmpprag.api import Assistant, Question
from pmpprag.config import parse_overrides
from pmpprag.testsets import read_testset

ROOT = Path(__file__).resolve().parents[1]


def first_token_seconds(assistant: Assistant, questions: list[str]) -> list[float]:
    out = []
    for question in questions:
        started = time.perf_counter()
        for _piece in assistant.stream_answer(question):
            break
        out.append(time.perf_counter() - started)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/rag/default.yaml")
    parser.add_argument("--testset", default="eval/sample_zh.txt")
    parser.add_argument("--first", type=int, default=20, help="questions timed one at a time")
    parser.add_argument("--batch-size", type=int, default=16, help="ask_many generation batch")
    parser.add_argument("--name", default=None, help="results file suffix (default: config name)")
    args, extra = parser.parse_known_args()  # the rest: config options, --generator.model X
    overrides = parse_overrides(extra)
    assistant = Assistant.load(ROOT / args.config, **overrides)
    items = read_testset(ROOT / args.testset)
    questions = [i.question for i in items]
    assistant.ask(questions[0])  # load the models and warm the caches, not timed
    ttft = first_token_seconds(assistant, questions[: args.first])
    started = time.perf_counter()
    answers = assistant.ask_many(
        [Question(i.question, i.choices or None) for i in items], args.batch_size
    )
    wall = time.perf_counter() - started
    tokens = sum(a.completion_tokens for a in answers)
    modes: dict[str, int] = {}
    for a in answers:
        modes[a.mode] = modes.get(a.mode, 0) + 1
    cfg = assistant.cfg
    result = {
        "config": args.config,
        "mode": cfg.mode,
        "generator": {"backend": cfg.generator.backend, "model": cfg.generator.model,
                      "adapter": cfg.generator.adapter, "compute_type": cfg.generator.compute_type},
        "testset": args.testset,
        "first_token_s": {"n": len(ttft), "p50": round(float(np.percentile(ttft, 50)), 3),
                          "p95": round(float(np.percentile(ttft, 95)), 3)},
        "batch": {"questions": len(items), "wall_s": round(wall, 1),
                  "answers_per_s": round(len(items) / wall, 3), "generated_tokens": tokens,
                  "tokens_per_s": round(tokens / wall, 1), "modes": modes},
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
                    "torch": version("torch"), "ctranslate2": version("ctranslate2"),
                    "transformers": version("transformers")},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }  # fmt: skip
    name = args.name or Path(args.config).stem
    out = ROOT / "benchmarks" / "results" / f"answer_speed-{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    f, b = result["first_token_s"], result["batch"]
    print(f"`{result['command']}` on {result['machine']['cores']} cores\n")
    print("| config | first token p50 / p95 (s) | one batch of "
          f"{b['questions']} (s) | answers/s | tokens/s | modes |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    print(f"| {args.config} | {f['p50']} / {f['p95']} | {b['wall_s']} | {b['answers_per_s']} | "
          f"{b['tokens_per_s']} | {modes} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
