"""Generation speed: tokens/s at batch 1 and 32 per back-end, and RAG answer latency.

    .venv/bin/python benchmarks/generate.py [--backends ctranslate2 transformers] [--device cpu]

SmolLM2-135M-Instruct from the offline registry, greedy, up to 64 new tokens per question
(real answers may stop earlier: tokens/s counts the tokens actually generated, by the model's
tokenizer, over generation wall time). Questions are the 30 Chinese and 80 English sample-set
questions. RAG latency: the full pipeline (retrieve, prompt with --context-tokens of passages,
generate up to 64 tokens) per question, one at a time, p50/p95, on the companion index.
Writes benchmarks/results/generate-<device>.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

from pmpprag.api import Assistant, RagConfig
from pmpprag.generation import GeneratorConfig, SamplingConfig, load_generator
from pmpprag.testsets import read_testset

ROOT = Path(__file__).resolve().parents[1]


def questions() -> list[str]:
    items = read_testset(ROOT / "eval" / "sample_en.jsonl") + read_testset(
        ROOT / "eval" / "sample_zh.txt"
    )
    return [i.question for i in items]


def throughput(generator, prompts: list, batch: int, sampling: SamplingConfig) -> dict:  # type: ignore[no-untyped-def]
    generator.generate(prompts[:batch], sampling)  # warm-up
    tokens, start = 0, time.perf_counter()
    ttfts = []
    n = batch * (4 if batch == 1 else 2)
    for i in range(0, n, batch):
        out = generator.generate(prompts[i : i + batch], sampling)
        tokens += sum(g.completion_tokens for g in out)
        ttfts.append(out[0].ttft_s)
    wall = time.perf_counter() - start
    return {"batch": batch, "sequences": n, "tokens": tokens, "seconds": round(wall, 2),
            "tokens_per_s": round(tokens / wall, 1), "ttft_p50_s": round(float(np.median(ttfts)), 3)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backends", nargs="*", default=["ctranslate2", "transformers"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", type=int, nargs="*", default=[1, 32])
    parser.add_argument("--rag-questions", type=int, default=20)
    parser.add_argument(
        "--context-tokens", type=int, nargs="*", default=[700, 350],
        help="passage budgets in abstractive RAG prompts (extractive uses the first)",
    )  # fmt: skip
    parser.add_argument("--modes", nargs="*", default=["extractive", "abstractive"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    qs = questions()
    prompts = [[{"role": "user", "content": q}] for q in qs]
    sampling = SamplingConfig(max_new_tokens=64)
    rows = []
    for backend in args.backends:
        generator = load_generator(GeneratorConfig(backend=backend, device=args.device))  # type: ignore[arg-type]
        for batch in args.batches:
            rows.append({"backend": backend, **throughput(generator, prompts, batch, sampling)})
            print(rows[-1], flush=True)
        del generator
    rag = []
    runs = [(m, c) for m in args.modes for c in (args.context_tokens if m == "abstractive" else args.context_tokens[:1])]  # fmt: skip
    for mode, context_tokens in runs:
        cfg = RagConfig(
            mode=mode,
            sampling=SamplingConfig(max_new_tokens=64),
            context_tokens=context_tokens,
            generator=GeneratorConfig(device=args.device),
        )  # type: ignore[arg-type]
        assistant = Assistant.load(cfg)
        assistant.ask(qs[0])  # warm-up (loads the generator in abstractive mode)
        times = []
        for q in qs[1 : 1 + args.rag_questions]:
            start = time.perf_counter()
            assistant.ask(q)
            times.append(time.perf_counter() - start)
        rag.append({"mode": mode, "context_tokens": context_tokens, "questions": len(times), "p50_s": round(float(np.percentile(times, 50)), 2),
                    "p95_s": round(float(np.percentile(times, 95)), 2)})  # fmt: skip
        print(rag[-1], flush=True)
    report = {
        "benchmark": "generate",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "platform": platform.platform(),
            "cpus": len(os.sched_getaffinity(0)),
            "device": args.device,
        },
        "model": "smollm2-135m-instruct (offline registry)",
        "versions": {p: version(p) for p in ("torch", "transformers", "ctranslate2")},
        "throughput": rows,
        "rag_latency": rag,
    }
    out = ROOT / "benchmarks" / "results" / f"generate-{args.device}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print("| back-end | batch | tokens/s | first token p50 s |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['batch']} | {r['tokens_per_s']} | {r['ttft_p50_s']} |")
    print(
        "\n| RAG mode (CPU, 64 new tokens max) | passage tokens | p50 s | p95 s |\n|---|---|---|---|"
    )
    for r in rag:
        print(f"| {r['mode']} | {r['context_tokens']} | {r['p50_s']} | {r['p95_s']} |")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
