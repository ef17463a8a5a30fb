"""Where a batch-1 decode step of the `fast` path spends its time, kernel by kernel (GPU only).

    python3 benchmarks/profile_decode.py --out $OUT [--models smollm2-135m gemma-3-270m]

For each model shape (random bf16 weights, as in gpu_generate.py) and each variant of the step
(``fast``; and gpu_generate.FAST_VARIANTS: ``fast-nopdl`` without programmatic dependent
launch, ``fast-unfused`` without kernels.norm_linear: add_rms_norm + cuBLAS + act_and_mul),
the captured CUDA graph of one decode step is replayed under torch.profiler. Per kernel name: launches per step and GPU microseconds per step; per variant:
the step's wall time from CUDA events and the sum of kernel times, whose difference is the idle
time between kernels (launch gaps). Writes profile_decode.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("TRITON_INTERPRET", "0")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

STEPS = 30  # replays profiled per variant (at most the engine's sync_every: its out buffer)


def profile_variant(model: Any, settings: dict[str, Any]) -> dict[str, Any]:
    import torch
    from gpu_generate import cuda_time, kernel_settings
    from torch.profiler import ProfilerActivity, profile

    from pmpprag.fast import FastEngine

    with kernel_settings(settings):
        engine = FastEngine.from_model(model, max_slots=1, max_len=512)
        engine.capture([1])
        bucket = engine.buckets[1]
        bucket.positions.fill_(64)
        bucket.slots.fill_(0)
        graph = bucket.graph

        def replays(n: int) -> None:
            bucket.positions.fill_(64)  # contexts 64 .. 64 + n, as in the batch-1 workload
            bucket.step.zero_()  # the step writes its token at out[step]
            for _ in range(n):
                graph.replay()

        step_s = cuda_time(lambda: replays(STEPS), 5) / STEPS
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            replays(STEPS)
            torch.cuda.synchronize()
        per_kernel: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for event in prof.events():
            if event.device_type.name != "CUDA":
                continue
            per_kernel[event.name][0] += 1 / STEPS
            per_kernel[event.name][1] += event.device_time / STEPS  # microseconds
        kernels_us = sum(v[1] for v in per_kernel.values())
        rows = sorted(
            ({"kernel": k[:90], "per_step": round(v[0], 2), "us_per_step": round(v[1], 2)}
             for k, v in per_kernel.items()),
            key=lambda r: -r["us_per_step"],
        )  # fmt: skip
        del engine
        return {
            "step_us": round(step_s * 1e6, 1),
            "tokens_per_s": round(1 / step_s),
            "kernel_us": round(kernels_us, 1),
            "launches_per_step": round(sum(v[0] for v in per_kernel.values()), 1),
            "kernels": rows,
        }


def main() -> None:
    import torch
    from gpu_generate import FAST_VARIANTS, MODELS, make_config, random_model

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="*", default=["smollm2-135m", "gemma-3-270m"],
                        choices=list(MODELS))  # fmt: skip
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    report: dict[str, Any] = {"gpu": torch.cuda.get_device_name(), "command": " ".join(sys.argv),
                              "torch": torch.__version__, "models": {}}  # fmt: skip
    lines = []
    for name in args.models:
        model = random_model(make_config(name), torch.bfloat16)
        report["models"][name] = {v: profile_variant(model, settings) for v, settings in
                                  [("fast", {}), *FAST_VARIANTS.items()]}  # fmt: skip
        for variant, r in report["models"][name].items():
            lines.append(f"\n### {name}, {variant}: step {r['step_us']} us ({r['tokens_per_s']} "
                         f"tok/s), kernels {r['kernel_us']} us, {r['launches_per_step']} launches")  # fmt: skip
            lines += ["| kernel | per step | us per step |", "|---|---|---|"]
            lines += [f"| {k['kernel']} | {k['per_step']} | {k['us_per_step']} |"
                      for k in r["kernels"][:15]]  # fmt: skip
        del model
        torch.cuda.empty_cache()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "profile_decode.json").write_text(json.dumps(report, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
