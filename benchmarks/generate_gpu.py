"""Generation speed on a GPU: vLLM and transformers through pmpprag's own back-ends.

    # on the H200 (vLLM from ../shared/gpu/vllm-kit, see ../shared/H200.md):
    source /root/vk/env.sh && PYTHONPATH=src python3 benchmarks/generate_gpu.py --out $OUT

SmolLM2-135M architecture with RANDOM weights (weight values do not change speed; the real
weights do not fit the 64 MiB a GPU command can ship): vLLM loads it with load_format="dummy",
transformers from a random-initialised checkpoint. Every sequence generates exactly
--new-tokens tokens (min_new_tokens = max_new_tokens), prompts are ~64 tokens. Tokens/s is
generated tokens over generation wall time. Writes generate-gpu.json into --out.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from pmpprag.generation import GeneratorConfig, SamplingConfig, load_generator


def measure(generator, batch: int, new_tokens: int, repeats: int) -> dict:  # type: ignore[no-untyped-def]
    question = (
        "Explain how tiling with shared memory reduces global memory traffic in matrix multiplication. "
        * 3
    )
    prompts = [[{"role": "user", "content": f"{i}: {question}"}] for i in range(batch)]
    sampling = SamplingConfig(max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    generator.generate(prompts, sampling)  # warm-up (compilation, CUDA graphs)
    tokens, ttft, start = 0, [], time.perf_counter()
    for _ in range(repeats):
        out = generator.generate(prompts, sampling)
        tokens += sum(g.completion_tokens for g in out)
        ttft += [g.ttft_s for g in out]  # per request (vllm-async) or the batch's (others)
    wall = time.perf_counter() - start
    ttft.sort()
    return {"batch": batch, "tokens": tokens, "seconds": round(wall, 3), "tokens_per_s": round(tokens / wall, 1),
            "ttft_p50_s": round(ttft[len(ttft) // 2], 4), "ttft_p95_s": round(ttft[int(0.95 * (len(ttft) - 1))], 4),
            "prompt_tokens": out[0].prompt_tokens}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", default="/root/vk/tiny-llama")
    parser.add_argument("--out", default=".")
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--batches", type=int, nargs="*", default=[1, 32, 256])
    parser.add_argument("--backends", nargs="*", default=["vllm", "transformers"])
    parser.add_argument("--tag", default="", help="result file generate-gpu[-TAG].json")
    args = parser.parse_args()
    model_dir = Path(args.model_dir)
    if not (model_dir / "config.json").is_file():
        subprocess.run(
            [sys.executable, "/root/vk/smoke.py", "--make-only", "--model-dir", str(model_dir)],
            check=True,
        )
    import torch

    rows = []
    for backend in args.backends:
        if backend == "transformers" and not list(model_dir.glob("*.safetensors")):
            from transformers import AutoConfig, AutoModelForCausalLM

            model = AutoModelForCausalLM.from_config(
                AutoConfig.from_pretrained(model_dir), dtype=torch.bfloat16
            )
            model.save_pretrained(model_dir)
            del model
        cfg = GeneratorConfig(backend=backend, model=str(model_dir), device="cuda", dtype="bfloat16",  # type: ignore[arg-type]
                              load_format="dummy", gpu_memory_utilization=0.5)  # fmt: skip
        generator = load_generator(cfg)
        for batch in args.batches:
            if backend == "transformers" and batch > 32:
                continue  # eager HF generate at batch 256 x 256 tokens takes minutes; vLLM's regime
            row = {
                "backend": backend,
                **measure(generator, batch, args.new_tokens, 3 if batch == 1 else 2),
            }
            rows.append(row)
            print(row, flush=True)
        if hasattr(generator, "close"):
            generator.close()
        del generator
        torch.cuda.empty_cache()
    import importlib.metadata as md

    report = {
        "benchmark": "generate-gpu",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "device": torch.cuda.get_device_name(0),
        "machine": platform.platform(),
        "weights": "random (SmolLM2-135M architecture); fixed new tokens per sequence",
        "new_tokens": args.new_tokens,
        "versions": {p: md.version(p) for p in ("torch", "transformers", "vllm") if _installed(p)},
        "results": rows,
    }
    Path(args.out, f"generate-gpu{'-' + args.tag if args.tag else ''}.json").write_text(
        json.dumps(report, indent=1) + "\n"
    )
    print(json.dumps(report, indent=1))


def _installed(name: str) -> bool:
    import importlib.metadata as md

    try:
        md.version(name)
        return True
    except md.PackageNotFoundError:
        return False


if __name__ == "__main__":
    main()
