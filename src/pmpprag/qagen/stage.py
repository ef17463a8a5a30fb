"""QA generation: chunks (via a teacher LLM) and team-written pairs -> a checked training set.

    pmpprag qagen                                   # the team-written pairs in data/qa/authored
    pmpprag qagen --chunks out/ingest/pmpp/chunks.jsonl --chapters 2-6 \\
        --generator.backend openai --generator.model Qwen2.5-7B-Instruct   # plus generated pairs

Every pair passes the same checks (``filters.py``: self-contained, language, format, length,
grounded in its chunk, no near-duplicates) and may not repeat a held-out test item (``--held_out``:
the sample and development sets); rejections are counted by reason. Generation runs in
batches, each saved atomically under ``raw/`` as it completes, so an interrupted run resumes
where it stopped. Writes into ``--out``: ``pairs.jsonl`` (kept, :class:`QAPair`),
``rejected.jsonl`` (with the reason), LLaMA-Factory files ``<name>_train.json``,
``<name>_val.json`` (Alpaca) and ``<name>_dpo.json`` (ranking) with ``dataset_info.json``,
``stats.json``, ``stats.png`` and ``config.yaml``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from pmpprag.config import option, to_dict
from pmpprag.generation import GeneratorConfig, SamplingConfig, load_generator
from pmpprag.ingest.stage import check_chunks, parse_chapters
from pmpprag.qagen.filters import bigram_jaccard, check_pair, grounding, near_duplicates
from pmpprag.qagen.prompts import ParseError, build_messages, parse_pairs
from pmpprag.schema import (
    Chunk,
    QAPair,
    atomic_write,
    read_jsonl,
    write_jsonl,
    write_stage_manifest,
)
from pmpprag.testsets import HELD_OUT_SETS, HeldOut, read_testset

logger = logging.getLogger(__name__)

__all__ = [
    "QagenConfig",
    "QagenResult",
    "alpaca_record",
    "dataset_info",
    "is_val",
    "read_pairs",
    "run",
    "stats_chart",
]


@dataclass
class QagenConfig:
    authored: Path | None = option(
        Path("data/qa/authored"), "folder of team-written pair files (*.jsonl); '' to skip"
    )
    chunks: Path | None = option(None, "chunks.jsonl to generate pairs from with --generator")
    out: Path = option(Path("out/qagen/pmpp"), "run folder")
    name: str = option("pmpp_qa", "dataset name in dataset_info.json")
    chapters: str = option("all", "chapters to keep: 'all', '2-6', '1-7,13,16,17,20'")
    languages: list[str] = option(["en", "zh"], "generated pairs: one request per chunk each")
    pairs_per_chunk: int = option(3, "generated pairs asked for per chunk and language")
    max_chunks: int | None = option(None, "generate from the first N chunks only")
    batch_size: int = option(16, "generation requests per batch (one saved file per batch)")
    generator: GeneratorConfig = field(
        default_factory=GeneratorConfig, metadata={"help": "the teacher model"}
    )
    sampling: SamplingConfig = field(
        default_factory=lambda: SamplingConfig(max_new_tokens=768, temperature=0.7),
        metadata={"help": "teacher decoding"},
    )
    min_grounding: float = option(
        0.5, "generated English answers: least share of content words found in the chunk"
    )
    dedupe_threshold: float = option(0.92, "English: MiniLM cosine at which a question repeats")
    dedupe_jaccard: float = option(0.7, "Chinese: character-bigram Jaccard at which it repeats")
    embedder: str = option("minilm-l6", "embedding model for near-duplicate questions")
    held_out: list[Path] = option(
        list(HELD_OUT_SETS),
        "test sets no pair may repeat (20-character n-gram overlap, as in `eval overlap`)",
    )
    held_out_threshold: float = option(0.5, "share of n-grams at which a pair repeats a test item")
    val_fraction: float = option(0.1, "share of pairs held out for validation (by id hash)")

    def __post_init__(self) -> None:
        if self.authored is not None and str(self.authored) in ("", "none"):
            self.authored = None
        if self.authored is None and self.chunks is None:
            raise ValueError("nothing to do: give --authored DIR and/or --chunks FILE")
        bad = [lang for lang in self.languages if lang not in ("en", "zh")]
        if bad:
            raise ValueError(f"--languages {bad}: use en and/or zh")
        if not 0 <= self.val_fraction < 1:
            raise ValueError("--val_fraction must be in [0, 1)")
        if self.pairs_per_chunk < 1 or self.batch_size < 1:
            raise ValueError("--pairs_per_chunk and --batch_size must be at least 1")


@dataclass
class QagenResult:
    out: Path
    pairs: list[QAPair]
    n_train: int
    n_val: int
    n_dpo: int
    rejected: dict[str, int]
    parse_failures: int


def read_pairs(folder: Path, flag: str = "--authored") -> list[QAPair]:
    """The team-written pairs of every ``*.jsonl`` in ``folder`` (``flag`` names it in errors)."""
    files = sorted(Path(folder).glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"{flag} {folder}: no *.jsonl pair files there")
    pairs: list[QAPair] = []
    for path in files:
        for pair in read_jsonl(path, QAPair):
            pairs.append(
                pair.model_copy(update={"source": pair.source or f"{path.name}#{pair.id}"})
            )
    return pairs


def _generate(cfg: QagenConfig, chunks: list[Chunk]) -> tuple[list[QAPair], int]:
    """Generated pairs and the number of unparseable replies; resumes from saved batches."""
    jobs = [(chunk, lang) for chunk in chunks for lang in cfg.languages]
    raw = Path(cfg.out) / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    generator = None
    pairs: list[QAPair] = []
    failures = 0
    batches = range(0, len(jobs), cfg.batch_size)
    for b, start in enumerate(tqdm(batches, desc="generating", unit="batch")):
        path = raw / f"batch-{b:05d}.json"
        batch = jobs[start : start + cfg.batch_size]
        keys = [f"{chunk.chunk_id}/{lang}" for chunk, lang in batch]
        if path.is_file():
            saved = json.loads(path.read_text(encoding="utf-8"))
            if saved["keys"] == keys:  # same chunks and languages: reuse it
                pairs += [QAPair.model_validate(p) for p in saved["pairs"]]
                failures += len(saved["failures"])
                continue
        if generator is None:
            generator = load_generator(cfg.generator)
        prompts: list[Any] = [
            build_messages(chunk, cfg.pairs_per_chunk, lang)  # type: ignore[arg-type]
            for chunk, lang in batch
        ]
        replies = generator.generate(prompts, cfg.sampling)
        batch_pairs, batch_failures = [], []
        for (chunk, lang), reply in zip(batch, replies, strict=True):
            try:
                generated = parse_pairs(reply.text)
            except ParseError as err:
                batch_failures.append(
                    {
                        "chunk_id": chunk.chunk_id,
                        "lang": lang,
                        "error": str(err),
                        "reply": reply.text,
                    }
                )
                continue
            for n, g in enumerate(generated):
                batch_pairs.append(
                    QAPair(
                        id=f"gen-{chunk.chunk_id}-{lang}-{n}",
                        chapter=chunk.chapter,
                        section=f"{chunk.section} {chunk.section_title}",
                        lang=lang,  # type: ignore[arg-type]
                        kind=g.kind,
                        question=g.question,
                        answer=g.answer,
                        rejected=g.rejected,
                        origin=f"generated:{cfg.generator.model}",
                        source=chunk.chunk_id,
                    )
                )
        with atomic_write(path) as fh:
            json.dump(
                {
                    "keys": keys,
                    "pairs": [p.model_dump() for p in batch_pairs],
                    "failures": batch_failures,
                },
                fh,
                ensure_ascii=False,
            )
        pairs += batch_pairs
        failures += len(batch_failures)
    if failures:
        logger.warning("%d of %d teacher replies were not valid JSON pairs", failures, len(jobs))
    return pairs, failures


def _filter(
    cfg: QagenConfig, pairs: list[QAPair], chunk_text: dict[str, str]
) -> tuple[list[QAPair], list[dict[str, Any]]]:

    items = [item for path in cfg.held_out for item in read_testset(path)]
    held_out = HeldOut.of(items, n=20, threshold=cfg.held_out_threshold)
    kept: list[QAPair] = []
    rejected: list[dict[str, Any]] = []
    for pair in pairs:
        reason = check_pair(pair)
        if reason is None and (item := held_out.match(pair.question, pair.answer)):
            reason = "held-out-overlap"
            logger.info("%s repeats held-out item %s: dropped", pair.id, item)
        source = chunk_text.get(pair.source)  # generated pairs only
        if reason is None and source is not None and pair.lang == "en":
            reason = "ungrounded" if grounding(pair.answer, source) < cfg.min_grounding else None
        if reason:
            rejected.append({"reason": reason, **pair.model_dump()})
        else:
            kept.append(pair)
    drop: set[int] = set()
    for lang in ("en", "zh"):
        index = [i for i, p in enumerate(kept) if p.lang == lang]
        questions = [kept[i].question for i in index]
        if len(questions) < 2:
            continue
        if lang == "en":
            from pmpprag.models import load_embedder

            vectors = load_embedder(cfg.embedder).encode(questions, normalize_embeddings=True)
            similarity, threshold = vectors @ vectors.T, cfg.dedupe_threshold
        else:
            similarity, threshold = bigram_jaccard(questions), cfg.dedupe_jaccard
        drop |= {index[j] for j in near_duplicates(questions, similarity, threshold)}
    rejected += [{"reason": "duplicate", **kept[i].model_dump()} for i in sorted(drop)]
    kept = [p for i, p in enumerate(kept) if i not in drop]
    return kept, rejected


def is_val(pair_id: str, fraction: float) -> bool:
    """A stable split: the same id lands on the same side in every run."""
    return int(hashlib.sha1(pair_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < fraction


def alpaca_record(pair: QAPair) -> dict[str, str]:
    """One Alpaca row (LLaMA-Factory's default format): instruction, input, output."""
    return {"instruction": pair.question, "input": "", "output": pair.answer}


def dataset_info(name: str, system: bool = False) -> dict[str, Any]:
    """LLaMA-Factory's ``dataset_info.json`` for the train, val and DPO files of ``name``
    (``system``: the rows carry a system prompt column, as ``pmpprag raft``'s do)."""
    alpaca = {"prompt": "instruction", "query": "input", "response": "output"}
    ranking = {
        "prompt": "instruction",
        "query": "input",
        "chosen": "chosen",
        "rejected": "rejected",
    }
    if system:
        alpaca, ranking = {**alpaca, "system": "system"}, {**ranking, "system": "system"}
    return {
        name: {"file_name": f"{name}_train.json", "columns": alpaca},
        f"{name}_val": {"file_name": f"{name}_val.json", "columns": alpaca},
        f"{name}_dpo": {"file_name": f"{name}_dpo.json", "ranking": True, "columns": ranking},
    }


def _stats(pairs: list[QAPair], rejected: list[dict[str, Any]], failures: int) -> dict[str, Any]:
    by_chapter: dict[str, Counter[str]] = {}
    for p in pairs:
        by_chapter.setdefault(str(p.chapter), Counter())[p.lang] += 1
    return {
        "pairs": len(pairs),
        "by_language": dict(Counter(p.lang for p in pairs)),
        "by_kind": dict(Counter(p.kind for p in pairs)),
        "by_origin": dict(Counter(p.origin for p in pairs)),
        "by_chapter": {
            c: dict(v) for c, v in sorted(by_chapter.items(), key=lambda kv: int(kv[0]))
        },
        "with_rejected_answer": sum(p.rejected is not None for p in pairs),
        "rejected": dict(Counter(r["reason"] for r in rejected)),
        "parse_failures": failures,
    }


def stats_chart(
    out: Path,
    by_chapter: dict[str, dict[str, int]],
    title: str,
    side: dict[str, int],
    side_title: str,
) -> None:
    """``stats.png``: English and Chinese counts stacked per chapter, and one breakdown beside
    them (qagen: pairs by kind; raft: examples with and without the gold passage)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    chapters = list(by_chapter)
    en = [by_chapter[c].get("en", 0) for c in chapters]
    zh = [by_chapter[c].get("zh", 0) for c in chapters]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6), width_ratios=[3, 1])
    left.bar(chapters, en, label="English")
    left.bar(chapters, zh, bottom=en, label="Chinese")
    left.set(xlabel="chapter", ylabel="count", title=title)
    left.legend()
    right.barh(list(side), list(side.values()))
    right.set(title=side_title)
    fig.tight_layout()
    fig.savefig(out / "stats.png", dpi=110)
    plt.close(fig)


def run(cfg: QagenConfig) -> QagenResult:
    """Collect, generate, check, de-duplicate, split and export QA pairs."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    chosen = parse_chapters(cfg.chapters)
    pairs: list[QAPair] = read_pairs(cfg.authored) if cfg.authored else []
    chunk_text: dict[str, str] = {}
    failures = 0
    if cfg.chunks:
        check_chunks(cfg.chunks)  # a StaleError says which ingest to re-run
        chunks = [c for c in read_jsonl(cfg.chunks, Chunk) if chosen is None or c.chapter in chosen]
        chunks = chunks[: cfg.max_chunks] if cfg.max_chunks else chunks
        if not chunks:
            raise ValueError(f"--chunks {cfg.chunks}: no chunks in chapters {cfg.chapters!r}")
        chunk_text = {c.chunk_id: c.text for c in chunks}
        generated, failures = _generate(cfg, chunks)
        pairs += generated
    pairs = [p for p in pairs if chosen is None or p.chapter in chosen]
    kept, rejected = _filter(cfg, pairs, chunk_text)

    train = [p for p in kept if not is_val(p.id, cfg.val_fraction)]
    val = [p for p in kept if is_val(p.id, cfg.val_fraction)]
    dpo = [
        {"instruction": p.question, "input": "", "chosen": p.answer, "rejected": p.rejected}
        for p in train
        if p.rejected
    ]
    write_jsonl(out / "pairs.jsonl", kept)
    write_jsonl(out / "rejected.jsonl", rejected)
    files = {
        f"{cfg.name}_train.json": [alpaca_record(p) for p in train],
        f"{cfg.name}_val.json": [alpaca_record(p) for p in val],
        f"{cfg.name}_dpo.json": dpo,
        "dataset_info.json": dataset_info(cfg.name),
    }
    stats = _stats(kept, rejected, failures)
    stats.update(train=len(train), val=len(val), dpo=len(dpo))
    files["stats.json"] = stats
    for name, data in files.items():
        with atomic_write(out / name) as fh:
            json.dump(data, fh, ensure_ascii=False, indent=1)
    with atomic_write(out / "config.yaml") as fh:
        yaml.safe_dump(to_dict(cfg), fh, sort_keys=False, allow_unicode=True)
    stats_chart(out, stats["by_chapter"], f"{stats['pairs']} QA pairs by chapter",
                stats["by_kind"], "by kind")  # fmt: skip
    write_stage_manifest(out, list(files), f"pmpprag qagen --config {out / 'config.yaml'}")
    logger.info(
        "kept %d of %d pairs (%d train, %d val, %d DPO); rejected %s; %d unparseable replies -> %s",
        len(kept),
        len(pairs),
        len(train),
        len(val),
        len(dpo),
        stats["rejected"] or "none",
        failures,
        out,
    )
    return QagenResult(out, kept, len(train), len(val), len(dpo), stats["rejected"], failures)
