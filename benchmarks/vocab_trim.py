"""CPU decoding with a trimmed vocabulary (generation/vocab.py) against the full one.

    .venv/bin/pmpprag models trim gemma3-270m        # once: writes the trimmed copy
    .venv/bin/python benchmarks/vocab_trim.py [--model gemma3-270m] [--prompts 12] [--new 48]
    .venv/bin/python benchmarks/vocab_trim.py --adapter adapters/gemma3-270m-grounded \
        --rag configs/rag/gemma.yaml     # the tuned generator on the prompts it is served

Both models through the transformers back-end (float32, greedy, this machine's CPU), one prompt
at a time, the same chat prompts (the team's dev questions, half Chinese, half English): greedy
tokens/s (new tokens over generation wall time), time to the first token, and whether the two
wrote the same text (they must, unless the full model's best token is one the trimmed vocabulary
dropped). Writes benchmarks/results/vocab_trim.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

from real_weights_equality import dev_questions  # benchmarks/ is on sys.path as the script's folder

from pmpprag import models
from pmpprag.generation import GeneratorConfig, Prompt, SamplingConfig, load_generator

ROOT = Path(__file__).resolve().parents[1]


def measure(model: str, prompts: list[Prompt], new: int, adapter: str | None) -> dict[str, Any]:
    generator = load_generator(
        GeneratorConfig(backend="transformers", model=model, adapter=adapter)
    )
    sampling = SamplingConfig(max_new_tokens=new, min_new_tokens=new)
    generator.generate([[{"role": "user", "content": "warm up"}]], sampling)
    runs = [generator.generate([p], sampling)[0] for p in prompts]
    return {
        "model": model,
        "vocab": int(generator.model.config.vocab_size),  # type: ignore[attr-defined]
        "tokens_per_s": sum(g.completion_tokens for g in runs) / sum(g.wall_s for g in runs),
        "ttft_p50_s": statistics.median(g.ttft_s for g in runs),
        "texts": [g.text for g in runs],
        "generator": generator,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--trimmed", help="default: the model cache's NAME-trimmed folder")
    parser.add_argument("--adapter", help="a LoRA adapter for both (e.g. the tuned generator's)")
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--rag", help="a RAG config: prompt with its served prompts (passages "
                        "retrieved from its index) instead of the bare questions")  # fmt: skip
    parser.add_argument("--new", type=int, default=48)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    trimmed = args.trimmed or str(models.cache_dir() / f"{args.model}-trimmed")
    if not Path(trimmed, "vocab_map.json").is_file():
        sys.exit(f"{trimmed} holds no trimmed model: run `pmpprag models trim {args.model}` first")
    questions = dev_questions(args.prompts)
    prompts: list[Prompt] = [[{"role": "user", "content": q}] for q in questions]
    if args.rag:  # what the tuned generator is served, and was tuned on
        from pmpprag.rag.pipeline import Assistant

        assistant = Assistant.load(args.rag)
        assert assistant.retriever is not None, f"{args.rag}: rag is off"
        prompts = [assistant.prompt(q, assistant.retriever.retrieve(q).hits)[0] for q in questions]
    full = measure(args.model, prompts, args.new, args.adapter)
    small = measure(trimmed, prompts, args.new, args.adapter)
    same = sum(a == b for a, b in zip(full["texts"], small["texts"], strict=True))
    # where they differ, does the full model's text use a token the trimmed one lacks?
    vocab, tokenizer = small["generator"].vocab, small["generator"].tokenizer
    unkept = [
        any(vocab.new_id(i) is None for i in tokenizer(a, add_special_tokens=False)["input_ids"])
        for a, b in zip(full["texts"], small["texts"], strict=True)
        if a != b
    ]
    report = {
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
        f"{len(__import__('os').sched_getaffinity(0))} cores",
        "command": " ".join(sys.argv),
        "new_tokens": args.new,
        "prompts": len(questions),
        "adapter": args.adapter,
        "rag": args.rag,
        "same_text": same,
        "differing_where_full_text_uses_a_dropped_token": sum(unkept),
        "full": {k: v for k, v in full.items() if k not in ("texts", "generator")},
        "trimmed": {k: v for k, v in small.items() if k not in ("texts", "generator")},
        "speedup": small["tokens_per_s"] / full["tokens_per_s"],
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "vocab_trim" + ("-adapter" if args.adapter else "") + ("-rag" if args.rag else "")
    (out / f"{name}.json").write_text(json.dumps(report, indent=1))
    print(f"{report['machine']}; `{report['command']}`; {args.new} greedy tokens, float32\n")
    print("| model | vocabulary | tokens/s | first token p50 s |\n|---|---|---|---|")
    for row in (report["full"], report["trimmed"]):
        print(f"| {Path(row['model']).name} | {row['vocab']:,} | {row['tokens_per_s']:.1f} | "
              f"{row['ttft_p50_s']:.2f} |")  # fmt: skip
    print(f"\nspeed-up {report['speedup']:.2f}x; same text on {same}/{len(questions)} prompts; "
          f"of the others, {sum(unkept)} where the full model wrote a dropped token")  # fmt: skip


if __name__ == "__main__":
    main()
