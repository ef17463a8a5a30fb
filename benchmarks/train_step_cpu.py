"""CPU training step time by where the output head is applied: answer positions, or everywhere.

    .venv/bin/python benchmarks/train_step_cpu.py [--model gemma3-270m] [--steps 3] [--batch 4]

gemma-3-270m's 262k-token output head is most of its compute at long grounded prompts (about
900 prompt tokens, 100 answer tokens). Three SFT losses: ``answers`` (``--lm_head answers``,
train/head.py: the head only at answer positions, untiled), ``fused`` (``--lm_head trl``: TRL
1.16's tiled head at answer positions, ``add_fused_lm_head``) and ``full`` (the model's ordinary
loss, logits at every position). Each runs LoRA SFT through the project's trainer
(``train/stage.py``) on the same first rows of the RAFT training file (``pmpprag raft``), one
process each: seconds per optimizer step (the median after one warm-up step) and the process's
peak memory. Writes benchmarks/results/train_step_cpu.json and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HEADS = ("fused", "full", "answers")


def one(head: str, model: str, data: Path, steps: int, batch: int, finetune: str) -> dict[str, Any]:
    """One variant in this process: ``steps`` timed optimizer steps after a warm-up step."""
    from transformers import TrainerCallback

    from pmpprag.train.data import load_rows
    from pmpprag.train.stage import TrainConfig, _build_trainer

    rows = load_rows(data, "sft")[: (steps + 1) * batch]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(method="sft", data=data, model=model, out=Path(tmp), finetune=finetune,  # type: ignore[arg-type]
                          max_steps=steps + 1, batch_size=batch, max_length=2048, save_steps=10_000,
                          logging_steps=1, device="cpu", merge=False, attn_implementation="eager",
                          learning_rate=1e-4 if finetune == "lora" else 2e-5,
                          lm_head="answers" if head == "answers" else "trl")  # fmt: skip
        trainer = _build_trainer(cfg, "cpu", rows, None)
        if head == "full":  # the model's own loss: logits at every position
            trainer.compute_loss = (
                lambda model, inputs, return_outputs=False, num_items_in_batch=None: (  # type: ignore[method-assign]
                    model(**{k: v for k, v in inputs.items() if k != "completion_mask"}).loss
                )
            )
        ends: list[float] = []

        class Clock(TrainerCallback):  # type: ignore[misc]
            def on_step_end(self, *args: Any, **kwargs: Any) -> None:
                ends.append(time.perf_counter())

        trainer.add_callback(Clock())
        started = time.perf_counter()
        trainer.train()
    times = [b - a for a, b in zip([started, *ends], ends, strict=False)]
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        "head": head,
        "finetune": finetune,
        "step_s": times,
        "median_step_s": statistics.median(times[1:]),
        "first_loss": losses[0] if losses else None,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--data", type=Path, default=ROOT / "out/raft/pmpp_raft_train.json")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--finetune", choices=["lora", "full"], default="lora")
    parser.add_argument("--heads", nargs="+", choices=HEADS, default=list(HEADS))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--one", choices=HEADS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        result = one(args.one, args.model, args.data, args.steps, args.batch, args.finetune)
        print("RESULT " + json.dumps(result))
        return
    if not args.data.is_file():
        sys.exit(f"{args.data} not found: run `pmpprag raft` first (it writes the RAFT files)")
    rows = []
    for head in args.heads:  # a process each, so each peak memory is its own
        command = [sys.executable, __file__, "--one", head, "--model", args.model, "--data",
                   str(args.data), "--steps", str(args.steps), "--batch", str(args.batch),
                   "--finetune", args.finetune]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
        if done.returncode or not lines:
            sys.exit(f"{head}: failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        rows.append(json.loads(lines[-1][len("RESULT ") :]))
        print(head, round(rows[-1]["median_step_s"], 2), "s/step", flush=True)
    import torch
    import transformers
    import trl

    report = {
        "benchmark": "train_step_cpu",
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
        },
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
        },
        "model": args.model,
        "batch": args.batch,
        "rows": rows,
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "train_step_cpu.json").write_text(json.dumps(report, indent=1))
    print(f"| LM head | s / step (batch {args.batch}) | peak memory GiB | first loss |")
    print("|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['head']} | {r['median_step_s']:.1f} | {r['peak_rss_gib']:.1f} | {r['first_loss']:.3f} |"
        )


if __name__ == "__main__":
    main()
