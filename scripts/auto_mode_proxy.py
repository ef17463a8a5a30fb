"""What auto mode would score with an adapter's answers, without a CPU run: a quick comparison.

    .venv/bin/python scripts/auto_mode_proxy.py --prompts build/gpu/dev_prompts.json \
        --extractive out/eval/extractive_dev_zh out/eval/extractive_dev_en \
        --answers third=out/dev-third ul=out/dev-gemma-dpo-ul --out results.json

``--answers`` names folders of ``pmpprag onpolicy`` runs over ``scripts/testset_prompts.py``'s
rows (each has ``generations.jsonl``: an adapter's greedy answers, usually from a GPU machine).
``--extractive`` names ``pmpprag eval run`` folders of the extractive default over the same test
sets. For each open question, as `configs/rag/gemma.yaml` decides: a question the calculator
reads keeps the evaluated answer; a model answer that declines, runs to the token limit or
repeats a ``--loop_span``-character run of itself gives way to the extractive answer; any
other is the answer, its ``[n]`` markers dropped as ``/predict`` drops them. On the shipped
adapter's H100 answers this gives 0.334 on the Chinese dev set where the CPU run of the tuned
configuration measured 0.337. Only for the team's own sets.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from pmpprag.eval.metrics import cjk_rouge_l, course_rouge_l, repeated_ngram_share
from pmpprag.rag.pipeline import loop_verdict
from pmpprag.rag.prompts import declines
from pmpprag.schema import CITATION_MARKER, atomic_write


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def score(
    prompts: list[dict], generations: list[dict], evaluated: list[dict], loop_span: int
) -> dict:
    by_id = {prompts[int(g["row"])]["id"]: g for g in generations}
    course, cjk, repeated, written = [], [], [], 0
    for item in evaluated:
        if item["type"] != "open":
            continue
        answer = item["answer"]
        generated = by_id.get(item["id"])
        if item["mode"] == "extractive" and generated is not None:  # not the calculator's
            text = CITATION_MARKER.sub("", generated["text"]).strip()  # as /predict drops them
            loops = loop_verdict(generated["text"], generated["finish_reason"], loop_span)
            if not declines(text) and not loops:
                answer, written = text, written + 1
        course.append(course_rouge_l(answer, item["reference"]))
        cjk.append(cjk_rouge_l(answer, item["reference"]))
        repeated.append(repeated_ngram_share(answer))
    return {"n": len(course), "model_answers": written,
            "course": round(statistics.mean(course), 4), "cjk_rouge_l": round(statistics.mean(cjk), 4),
            "repeated_4gram": round(statistics.mean(repeated), 4)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=Path, required=True)
    parser.add_argument("--extractive", type=Path, nargs="+", required=True)
    parser.add_argument("--answers", nargs="+", required=True, help="NAME=FOLDER ...")
    parser.add_argument("--loop_span", type=int, default=32)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    prompts = json.loads(args.prompts.read_text(encoding="utf-8"))
    results: dict = {"command": "scripts/auto_mode_proxy.py " + " ".join(
        [f"--prompts {args.prompts}", "--extractive", *map(str, args.extractive), "--answers",
         *args.answers, f"--loop_span {args.loop_span}"]), "runs": {}}  # fmt: skip
    for spec in args.answers:
        name, folder = spec.split("=", 1)
        generations = _read_jsonl(Path(folder) / "generations.jsonl")
        for run in args.extractive:
            row = score(prompts, generations, _read_jsonl(run / "results.jsonl"), args.loop_span)
            results["runs"][f"{name} / {run.name}"] = row
            print(f"| {name} | {run.name} | {row['course']} | {row['cjk_rouge_l']} | "
                  f"{row['repeated_4gram']} | {row['model_answers']} of {row['n']} |")  # fmt: skip
    if args.out:
        with atomic_write(args.out) as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
