"""How long a question waits behind a batch whose client gave up.

    .venv/bin/python benchmarks/abandoned.py [--batch 40] [--give_up_s 1] [--repeats 3]

Starts ``pmpprag serve --batch`` on the embedded default (a free port on 127.0.0.1), then, each
repeat: a client posts a ``--batch``-question list and closes its connection after
``--give_up_s`` seconds; a second client then asks one question and is timed. The server drops
the abandoned client's queued questions, so the wait is at most the model batch in progress
(``max_batch_size`` 32). For scale, the same single question is timed on an idle server, and
the full batch answered to completion. Writes benchmarks/results/abandoned.json and prints a
markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed(url: str, prompt: list[str], timeout: float = 300) -> float:
    started = time.perf_counter()
    httpx.post(url + "/predict", json={"prompt": prompt}, timeout=timeout).raise_for_status()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=40)
    parser.add_argument("--give_up_s", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(ROOT / "out" / "abandoned-server.log", "w")  # noqa: SIM115 (kept open for the child)
    server = subprocess.Popen(
        [sys.executable, "-m", "pmpprag.cli", "serve", "--batch", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        questions = [f"What does shared memory do for tiling, case {i}?" for i in range(args.batch)]
        single = ["What is a warp?"]
        idle = [timed(url, single) for _ in range(args.repeats)]
        full = timed(url, questions)
        after = []
        for _ in range(args.repeats):
            # the client gives up and closes its connection
            with contextlib.suppress(httpx.TimeoutException):
                httpx.post(url + "/predict", json={"prompt": questions}, timeout=args.give_up_s)
            after.append(timed(url, single))
    finally:
        server.terminate()
        server.wait(timeout=30)

    row = {
        "batch": args.batch,
        "give_up_s": args.give_up_s,
        "single_idle_s": round(statistics.median(idle), 3),
        "full_batch_s": round(full, 3),
        "single_after_abandoned_s": [round(x, 3) for x in after],
    }
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
        "cores": len(__import__("os").sched_getaffinity(0)),
        "command": "python benchmarks/abandoned.py " + " ".join(sys.argv[1:]),
        "result": row,
    }
    out = ROOT / "benchmarks" / "results" / "abandoned.json"
    out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print("| batch | client gave up after | one question, idle server | whole batch | "
          "one question after the abandoned batch (each repeat) |")  # fmt: skip
    print("|---|---|---|---|---|")
    print(f"| {args.batch} | {args.give_up_s} s | {row['single_idle_s']} s | {full:.2f} s | "
          f"{', '.join(f'{x:.2f} s' for x in after)} |")  # fmt: skip


if __name__ == "__main__":
    main()
