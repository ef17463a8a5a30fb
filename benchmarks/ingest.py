"""Ingestion speed: pages/s and chunks/s for the corpus PDF and a synthetic 600-page book.

    .venv/bin/python benchmarks/ingest.py [--pages 600]

Prints a markdown table and writes benchmarks/results/ingest.json (machine, versions, command).
Peak memory is the process's max RSS after each run (ru_maxrss), so it is cumulative.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import resource
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from pmpprag.ingest import CorpusPdfConfig, IngestConfig, build_pdf, run
from pmpprag.ingest.synthetic import make_book

ROOT = Path(__file__).resolve().parents[1]


def measure(name: str, pdf: Path, pages: int, out: Path) -> dict:
    start = time.perf_counter()
    result = run(IngestConfig(pdf=pdf, out=out))
    seconds = time.perf_counter() - start
    return {
        "input": name,
        "pages": pages,
        "chunks": len(result.chunks),
        "seconds": round(seconds, 2),
        "pages_per_s": round(pages / seconds, 1),
        "chunks_per_s": round(len(result.chunks) / seconds, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--pages", type=int, default=600, help="minimum pages of the synthetic book"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        corpus = build_pdf(
            CorpusPdfConfig(corpus=ROOT / "data" / "corpus", out=tmp_path / "corpus.pdf")
        )
        rows.append(measure("companion corpus PDF", corpus.path, corpus.pages, tmp_path / "a"))
        # 20 chapters x 6 sections; paragraphs per section sized so the book reaches --pages.
        paragraphs = max(6, round(args.pages / 120 / 0.14))  # ~0.15 pages per paragraph
        truth = make_book(
            tmp_path / "big.pdf",
            chapters=20,
            sections=6,
            paragraphs_per_section=paragraphs,
            outline=False,
        )
        rows.append(
            measure(
                f"synthetic book, no outline ({truth.pages} pages)",
                tmp_path / "big.pdf",
                truth.pages,
                tmp_path / "b",
            )
        )
    report = {
        "benchmark": "ingest",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": len(__import__("os").sched_getaffinity(0)),
        },
        "versions": {p: version(p) for p in ("pymupdf", "transformers", "llama-index-core")},
        "results": rows,
    }
    out = ROOT / "benchmarks" / "results" / "ingest.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print("| input | pages | chunks | s | pages/s | chunks/s | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['input']} | {r['pages']} | {r['chunks']} | {r['seconds']} | {r['pages_per_s']} | {r['chunks_per_s']} | {r['peak_rss_mib']} |"
        )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
