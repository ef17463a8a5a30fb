"""How far sentence choice can take an extractive answer: the default's scores against an oracle's.

    .venv/bin/python benchmarks/extractive_ceiling.py --testset data/dev/open_zh_dev.jsonl

For every open question with a reference answer, the retriever returns the passages the default
config answers from; their answer sentences (``split_sentences``, with kernel / warp written in
English in Chinese answers as the default does) are the candidates. An *oracle* that reads the
reference answer picks up to ``--sentences`` of them greedily, each time the one that most
raises course metric + CJK ROUGE-L of the joined answer, and stops when none does. No system
without the reference can choose better than the true optimum, and greedy choice is a lower
bound of that optimum, so the oracle's scores show how much of the gap to a goal sentence choice
could close at all: what remains needs other text (more notes, or a model that writes).

The default's own answers (``ask_many``, calculator lead and key code line included, without `[n]` markers as graded) are scored
the same way beside it. Writes ``benchmarks/results/extractive_ceiling-<testset stem>.json`` and
prints a markdown table with the machine and command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pmpprag.api import Assistant
from pmpprag.config import parse_overrides
from pmpprag.eval.metrics import cjk_rouge_l, course_rouge_l
from pmpprag.rag.extractive import split_sentences
from pmpprag.testsets import read_testset
from pmpprag.text import english_terms, has_cjk

ROOT = Path(__file__).resolve().parents[1]


def oracle_answer(candidates: list[str], reference: str, most: int, gap: str) -> list[str]:
    """Up to ``most`` candidates, chosen greedily to raise course + CJK ROUGE-L against the
    reference; stops when no candidate raises it."""
    chosen: list[str] = []
    best = 0.0
    for _ in range(most):
        pick = None
        for sentence in candidates:
            if sentence in chosen:
                continue
            text = gap.join([*chosen, sentence])
            value = course_rouge_l(text, reference) + cjk_rouge_l(text, reference)
            if value > best:
                best, pick = value, sentence
        if pick is None:
            break
        chosen.append(pick)
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/rag/default.yaml")
    parser.add_argument("--testset", default="data/dev/open_zh_dev.jsonl")
    parser.add_argument("--sentences", type=int, default=None,
                        help="oracle sentences at most (default: the config's, by language)")  # fmt: skip
    args, extra = parser.parse_known_args()  # the rest: config options
    assistant = Assistant.load(ROOT / args.config, **parse_overrides(extra))
    if assistant.retriever is None:
        parser.error("the config retrieves no passages")
    items = [i for i in read_testset(ROOT / args.testset) if not i.choices and i.answer]
    answers = assistant.ask_many([i.question for i in items], batch_size=16)
    rows = []
    for item, answer in tqdm(list(zip(items, answers, strict=True)), desc="oracle", mininterval=5):
        language = "zh" if has_cjk(item.question) else "en"
        hits = assistant.retriever.retrieve(item.question, language=language).hits
        zh_terms = language == "zh" and assistant.cfg.english_terms
        candidates = [english_terms(s.text) if zh_terms else s.text for s in split_sentences(hits)]
        most = args.sentences or assistant.cfg.max_sentences.get(language, 3)
        gap = "" if language == "zh" else " "
        oracle = gap.join(oracle_answer(candidates, item.answer, most, gap))
        rows.append({
            "id": item.id, "candidates": len(candidates),
            "default": [course_rouge_l(answer.plain_text, item.answer),
                        cjk_rouge_l(answer.plain_text, item.answer)],
            "oracle": [course_rouge_l(oracle, item.answer), cjk_rouge_l(oracle, item.answer)],
        })  # fmt: skip

    def mean(key: str, k: int) -> float:
        return round(float(np.mean([r[key][k] for r in rows])), 4)

    result = {
        "testset": args.testset, "config": args.config, "questions": len(rows),
        "candidates_per_question": round(float(np.mean([r["candidates"] for r in rows])), 2),
        "default": {"course": mean("default", 0), "cjk_rouge_l": mean("default", 1)},
        "oracle": {"course": mean("oracle", 0), "cjk_rouge_l": mean("oracle", 1),
                   "sentences_at_most": args.sentences or dict(assistant.cfg.max_sentences)},
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "cores": len(os.sched_getaffinity(0)), "python": platform.python_version()},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "items": rows,
    }  # fmt: skip
    out = ROOT / "benchmarks" / "results" / f"extractive_ceiling-{Path(args.testset).stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1), encoding="utf-8")
    tmp.replace(out)
    print(markdown(result))
    return 0


def markdown(result: dict) -> str:
    """The run as the README's table: the command and machine, then one row for the set."""
    cells = [
        result["testset"],
        result["questions"],
        result["candidates_per_question"],
        *(f"{result[k]['course']} / {result[k]['cjk_rouge_l']}" for k in ("default", "oracle")),
    ]
    return "\n".join([
        f"`{result['command']}` on {result['machine']['cores']} cores\n",
        "| set | questions | candidate sentences | default course / CJK | oracle course / CJK |",
        "|---|---|---|---|---|",
        "| " + " | ".join(str(c) for c in cells) + " |",
    ])  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
