"""Retrieval speed: embedding throughput, query latency p50/p95 per mode, index size on disk.

    .venv/bin/python benchmarks/retrieval.py [--sizes 1000 100000]

Measured on the shipped corpus index (real MiniLM vectors) and on synthetic indexes of 1k and
100k chunks, whose texts are shuffled corpus sentences and whose vectors are random unit
vectors (vector values do not change FAISS search time; embedding 100k chunks on 2 cores would
take ~15 minutes). Queries: the 90 questions of eval/retrieval_gold.jsonl (English + Chinese),
each query fully timed (glossary expansion, query embedding, search, fusion).
Writes benchmarks/results/retrieval.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

from pmpprag.index import IndexConfig, Retriever, RetrieverConfig, build
from pmpprag.index.build import _new_faiss, embed_chunks, passage_text
from pmpprag.index.lexical import BM25Index
from pmpprag.index.store import StoredIndex
from pmpprag.schema import Chunk, read_jsonl

ROOT = Path(__file__).resolve().parents[1]


def folder_mib(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20, 2)


def latency(retriever: Retriever, queries: list[str]) -> dict:
    out = {}
    for mode in ("dense", "bm25", "hybrid"):
        retriever.retrieve(queries[0], mode=mode)  # warm-up
        times = []
        for q in queries:
            start = time.perf_counter()
            retriever.retrieve(q, k=5, mode=mode)
            times.append((time.perf_counter() - start) * 1000)
        out[mode] = {
            "p50_ms": round(float(np.percentile(times, 50)), 2),
            "p95_ms": round(float(np.percentile(times, 95)), 2),
        }
    return out


def synthetic(real: Retriever, n: int, tmp: Path) -> tuple[Retriever, float]:
    import faiss

    rng = random.Random(n)
    sentences = [s for c in real.chunks for s in c.text.split(". ") if len(s) > 30]
    chunks = []
    for i in range(n):
        base = real.chunks[i % len(real.chunks)]
        text = ". ".join(rng.sample(sentences, 4))
        chunks.append(base.model_copy(update={"chunk_id": f"syn-{i:06d}", "text": text}))
    vectors = np.random.default_rng(n).standard_normal((n, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    cfg = IndexConfig()
    index, kind = _new_faiss(cfg, 384, n)
    index.add(vectors)
    bm25 = BM25Index.build([passage_text(c) for c in chunks])
    folder = tmp / f"syn{n}"
    folder.mkdir()
    faiss.write_index(index, str(folder / "dense.faiss"))
    bm25.save(folder / "bm25")
    stored = StoredIndex(
        folder,
        {"embedding_model": "minilm-l6", "dimension": 384, "faiss_type": kind},
        chunks,
        index,
        bm25,
    )
    return Retriever(stored, RetrieverConfig(), real.embedder), folder_mib(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 100_000])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    queries = [
        json.loads(line)["question"] for line in (ROOT / "eval" / "retrieval_gold.jsonl").open()
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        index_dir = ROOT / "index" / "companion"
        if not (index_dir / "manifest.json").is_file():
            build(IndexConfig(out=index_dir))
        real = Retriever.load(index_dir)
        chunks: list[Chunk] = read_jsonl(index_dir / "chunks.jsonl", Chunk)
        start = time.perf_counter()
        embed_chunks(real.embedder, chunks, "", 64)
        embed_s = time.perf_counter() - start
        rows.append(
            {
                "index": f"companion corpus ({len(chunks)} chunks, flat)",
                "chunks": len(chunks),
                "size_mib": folder_mib(index_dir),
                **latency(real, queries),
            }
        )
        for n in args.sizes:
            retriever, size = synthetic(real, n, tmp)
            kind = retriever.stored.manifest["faiss_type"]
            rows.append(
                {
                    "index": f"synthetic {n} chunks ({kind})",
                    "chunks": n,
                    "size_mib": size,
                    **latency(retriever, queries),
                }
            )
    report = {
        "benchmark": "retrieval",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"platform": platform.platform(), "cpus": len(os.sched_getaffinity(0))},
        "versions": {
            p: version(p) for p in ("faiss-cpu", "bm25s", "sentence-transformers", "torch")
        },
        "embedding": {
            "model": "minilm-l6",
            "chunks": len(chunks),
            "seconds": round(embed_s, 2),
            "chunks_per_s": round(len(chunks) / embed_s, 1),
        },
        "queries": len(queries),
        "results": rows,
    }
    out = ROOT / "benchmarks" / "results" / "retrieval.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(
        f"embedding throughput: {report['embedding']['chunks_per_s']} chunks/s (MiniLM, batch 64, {len(chunks)} chunks)\n"
    )
    print("| index | size MiB | dense p50/p95 ms | bm25 p50/p95 ms | hybrid p50/p95 ms |")
    print("|---|---|---|---|---|")
    for r in rows:
        cells = " | ".join(
            f"{r[m]['p50_ms']} / {r[m]['p95_ms']}" for m in ("dense", "bm25", "hybrid")
        )
        print(f"| {r['index']} | {r['size_mib']} | {cells} |")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
