"""Retrieval evaluation: recall@1/5/10 and MRR for dense, BM25 and hybrid, split by language.

    pmpprag eval retrieval                         # the shipped gold set eval/retrieval_gold.jsonl
    pmpprag eval retrieval --qa out/qagen/run/qa.jsonl --index index/pmpp

Gold passages are named either by ``chunk_id`` / ``source_chunk_id`` (generated QA pairs carry
them) or by ``evidence``: a phrase copied from the notes; every chunk containing it is gold, so
the gold set survives re-chunking. A gold item whose evidence no chunk contains is an error.

In an index of both languages the retriever answers in the question's language, so a gold
chunk's twins (the same part of its section in the other language, ``index.twins``) are gold
too: a Chinese question is right when it finds the Chinese text of the gold English passage.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pmpprag.config import option, to_dict
from pmpprag.index import Retriever, RetrieverConfig
from pmpprag.schema import atomic_write
from pmpprag.text import has_cjk

logger = logging.getLogger(__name__)

__all__ = ["RetrievalEvalConfig", "evaluate", "gold_chunks", "load_gold", "run"]

MODES = ("dense", "bm25", "hybrid")
KS = (1, 5, 10)


@dataclass
class RetrievalEvalConfig:
    qa: Path = option(Path("eval/retrieval_gold.jsonl"), "JSONL of questions with gold chunks")
    index: Path = option(Path("index/companion"), "index folder")
    out: Path = option(Path("out/eval/retrieval"), "where metrics.json and results.jsonl go")
    retriever: RetrieverConfig = option(default_factory=RetrieverConfig, help="retriever settings")


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).replace("`", "").replace("**", "")
    return re.sub(r"\s+", " ", text).strip().lower()


def load_gold(path: Path) -> list[dict[str, Any]]:
    items = []
    with Path(path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: not JSON: {err}") from err
            question = item.get("question") or item.get("instruction")
            if not question:
                raise ValueError(f"{path}:{lineno}: needs a 'question' (or 'instruction') field")
            if not any(item.get(f) for f in ("evidence", "chunk_id", "source_chunk_id")):
                raise ValueError(
                    f"{path}:{lineno}: needs 'evidence', 'chunk_id' or 'source_chunk_id'"
                )
            item["question"] = question
            item.setdefault("id", f"line-{lineno}")
            item.setdefault("lang", "zh" if has_cjk(question) else "en")
            items.append(item)
    return items


def gold_chunks(item: dict[str, Any], chunks: list[Any], normed: list[str]) -> set[str]:
    ids = {item[f] for f in ("chunk_id", "source_chunk_id") if item.get(f)}
    if item.get("evidence"):
        evidence = _norm(item["evidence"])
        ids |= {c.chunk_id for c, text in zip(chunks, normed, strict=True) if evidence in text}
    return ids | {t for c in chunks if c.chunk_id in ids for t in c.twins}


def evaluate(
    retriever: Retriever, items: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    normed = [_norm(c.text) for c in retriever.chunks]
    known = {c.chunk_id for c in retriever.chunks}
    rows = []
    for item in items:
        gold = gold_chunks(item, retriever.chunks, normed) & known
        if not gold:
            raise ValueError(
                f"gold item {item['id']}: no indexed chunk contains its evidence/chunk id; "
                "is the index built from the same corpus?"
            )
        row: dict[str, Any] = {
            "id": item["id"],
            "lang": item["lang"],
            "question": item["question"],
            "gold": sorted(gold),
        }
        for mode in MODES:
            hits = retriever.retrieve(item["question"], k=max(KS), mode=mode).hits  # type: ignore[arg-type]
            ranks = [h.rank for h in hits if h.chunk.chunk_id in gold]
            row[mode] = {
                "rank": ranks[0] if ranks else None,
                "top": [h.chunk.chunk_id for h in hits[:5]],
            }
        rows.append(row)
    metrics: dict[str, Any] = {}
    for lang in ("en", "zh", "all"):
        subset = [r for r in rows if lang == "all" or r["lang"] == lang]
        if not subset:
            continue
        metrics[lang] = {"n": len(subset)}
        for mode in MODES:
            ranks = [r[mode]["rank"] for r in subset]
            m = {f"recall@{k}": sum(1 for x in ranks if x and x <= k) / len(ranks) for k in KS}
            m["mrr@10"] = sum(1 / x for x in ranks if x) / len(ranks)
            metrics[lang][mode] = {key: round(v, 3) for key, v in m.items()}
    return metrics, rows


def table(metrics: dict[str, Any]) -> str:
    lines = ["| lang | n | mode | R@1 | R@5 | R@10 | MRR@10 |", "|---|---|---|---|---|---|---|"]
    for lang, block in metrics.items():
        for mode in MODES:
            m = block[mode]
            lines.append(
                f"| {lang} | {block['n']} | {mode} | {m['recall@1']:.3f} | {m['recall@5']:.3f} | "
                f"{m['recall@10']:.3f} | {m['mrr@10']:.3f} |"
            )
    return "\n".join(lines)


def run(cfg: RetrievalEvalConfig) -> dict[str, Any]:
    retriever = Retriever.load(cfg.index, cfg.retriever)
    items = load_gold(cfg.qa)
    metrics, rows = evaluate(retriever, items)
    report = {
        "qa": str(cfg.qa),
        "index": str(cfg.index),
        "settings": to_dict(cfg),
        "metrics": metrics,
    }
    with atomic_write(Path(cfg.out) / "metrics.json") as fh:
        json.dump(report, fh, indent=1, ensure_ascii=False)
    with atomic_write(Path(cfg.out) / "results.jsonl") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(table(metrics))
    logger.info("wrote %s", Path(cfg.out) / "metrics.json")
    return metrics
