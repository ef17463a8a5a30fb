"""A course grading run through `pmpprag serve`, one server per generation back-end, side by side.

    # on the GPU machine (vllm-async only where the vLLM kit is installed: ../shared/H200.md)
    python3 benchmarks/serve_grading.py --backends fast vllm-async --out $OUT
    # plumbing on a CPU: the transformers back-end, four questions
    .venv/bin/python benchmarks/serve_grading.py --backends transformers --device cpu \\
        --dtype float32 --limit 4 --out /tmp/serve_grading

For each back-end this starts ``python -m pmpprag.cli serve --config CONFIG
--generator.backend B`` (default config: configs/serve/gpu-grading.yaml: batch mode, abstractive
answers from the companion index, SmolLM2-135M-Instruct in bf16) on a free port, grades it
with ``pmpprag eval grade`` (GET / until ready, then the whole test set in one batch /predict
request, as the course does) and stops it. Only the /predict call is timed. Reported per
back-end: the course's characters/s, answer tokens/s (the replies re-tokenised with the
model's tokenizer: the grading contract returns text only), questions/s, the server's start
time, and the quality of the same replies (course metric, CJK ROUGE-L). Every back-end gets
the same questions, passages and prompts; the model is real (the packaged GGUF, converted once).

Writes serve_grading[-TAG].json (with the GPU, versions and this command) and prints a markdown
table; each back-end's eval grade outputs and server log go to OUT/serve_grading-B/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from gpu_generate import versions  # noqa: E402  (python, torch, transformers, triton, vllm)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answer_tokens(model: str, answers: list[str]) -> int:
    from transformers import AutoTokenizer

    from pmpprag.models import resolve

    tokenizer = AutoTokenizer.from_pretrained(resolve(model).path_or_id)
    return sum(len(tokenizer.encode(a, add_special_tokens=False)) for a in answers)


def stop(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group, SIGKILL after 60 s; returns once it is gone."""
    for sig, wait in ((signal.SIGTERM, 60), (signal.SIGKILL, 30)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, sig)
        try:
            server.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def grade_backend(backend: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Serve with one back-end, grade it, stop it; the row of the table."""
    import httpx

    from pmpprag.eval.grade import GradeConfig, run, wait_ready

    folder = out / f"serve_grading-{backend}"
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [sys.executable, "-m", "pmpprag.cli", "serve", "--config", args.config,
           "--port", str(port), "--generator.backend", backend, "--generator.model", args.model,
           "--generator.device", args.device, "--generator.dtype", args.dtype, *args.serve_args]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}  # fmt: skip
    row: dict[str, Any] = {"backend": backend, "serve_command": " ".join(cmd[1:])}
    started = time.perf_counter()
    url = f"http://127.0.0.1:{port}"
    with (folder / "server.log").open("w") as log:
        # its own session: vLLM's engine processes go down with the server
        server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                                  start_new_session=True)  # fmt: skip
        try:
            with httpx.Client() as client:
                wait_ready(client, url, args.ready_timeout, alive=lambda: server.poll() is None)
            row["ready_s"] = round(time.perf_counter() - started, 1)
            metrics = run(GradeConfig(url=url, testset=Path(args.testset), out=folder,
                                      ready_timeout_s=30, limit=args.limit))  # fmt: skip
        except Exception as err:
            tail = (folder / "server.log").read_text(errors="replace")[-3000:]
            return {**row, "error": f"{type(err).__name__}: {err}", "server_log_tail": tail}
        finally:
            stop(server)
    speed, quality = metrics.speed, metrics.quality
    answers = [json.loads(line)["answer"] for line in (folder / "results.jsonl").open()]
    tokens = answer_tokens(args.model, answers)
    return {
        **row,
        "questions": quality.items,
        "start_to_graded_s": round(time.perf_counter() - started, 1),
        "predict_wall_s": round(speed.wall_s, 3),
        "chars_per_s": speed.chars_per_s,
        "answer_chars": speed.answer_chars,
        "answer_tokens": tokens,
        "tokens_per_s": round(tokens / speed.wall_s, 1) if speed.wall_s else None,
        "questions_per_s": speed.questions_per_s,
        "course_rouge_l": quality.open.course_rouge_l,
        "cjk_rouge_l": quality.open.cjk_rouge_l,
    }


def table(report: dict[str, Any]) -> str:
    lines = [
        f"GPU: {report['gpu']}; {report['versions']}; test set {report['testset']}; "
        f"model {report['model']} ({report['dtype']})",
        f"command: `{report['command']}`",
        "",
        "| back-end | questions | /predict wall s | chars/s | answer tokens/s | course metric "
        "| CJK ROUGE-L |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        if "error" in r:
            lines.append(f"| {r['backend']} | error: {r['error'][:120]} | | | | | |")
            continue
        lines.append(
            f"| {r['backend']} | {r['questions']} | {r['predict_wall_s']:.2f} | "
            f"{r['chars_per_s']:,.0f} | {r['tokens_per_s']:,.0f} | {r['course_rouge_l']} | "
            f"{r['cjk_rouge_l']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", nargs="+", default=["fast", "vllm-async"])
    parser.add_argument("--config", default="configs/serve/gpu-grading.yaml")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--testset", default="eval/sample_zh.txt")
    parser.add_argument("--limit", type=int, default=None, help="only the first N questions")
    parser.add_argument("--ready-timeout", type=float, default=420.0)
    parser.add_argument("--serve-args", nargs=argparse.REMAINDER, default=[],
                        help="further `pmpprag serve` options, for every back-end (last)")  # fmt: skip
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    gpu = "none"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    report: dict[str, Any] = {
        "benchmark": "serve_grading",
        "command": " ".join(["python3", *sys.argv]),
        # the fast path's kernel switches, as the servers inherit them (unset: the defaults)
        "fast_env": {k: os.environ.get(k, "") for k in ("PMPPRAG_FAST_GQA", "PMPPRAG_FAST_PDL")},
        "gpu": gpu,
        "machine": platform.platform(),
        "versions": versions(),
        "testset": args.testset,
        "model": args.model,
        "dtype": args.dtype,
        "note": "chars/s and answer tokens/s over the one batch /predict call (the course's "
                "timing); tokens re-counted from the replies with the model's tokenizer",
        "rows": [],
    }  # fmt: skip
    path = out / f"serve_grading{'-' + args.tag if args.tag else ''}.json"
    for backend in args.backends:
        row = grade_backend(backend, args, out)
        print(json.dumps({k: v for k, v in row.items() if k != "server_log_tail"}), flush=True)
        report["rows"].append(row)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(report, indent=1) + "\n")
        tmp.replace(path)
    print(table(report))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
