"""Grounded training data (RAFT): team-written pairs + the retriever's passages -> SFT and DPO.
(It stays one module: one build read top to bottom, pairs -> passages -> examples -> files.)

    pmpprag raft [--pairs data/qa/grounded data/qa/authored] [--index index/companion] [--out DIR]

Each example is what the tuned generator sees when it is served: the system instructions and
the numbered passages our retriever returns for the question (:meth:`Assistant.prompt`, the
same call ``ask`` makes), and the answer it should write:

- with the gold passage (the section the team wrote the answer from) among the passages: the
  team's answer in the question's language, citing that passage as ``[n]`` after its first
  and last sentences. When retrieval missed the section, its chunk that best holds the answer
  replaces the last distractor at a random position (RAFT's "golden plus distractors").
- for ``no_gold_share`` of the examples, passages with nothing of the gold section (the next
  ones the retriever ranks): the answer says the notes do not cover it.

DPO pairs share the prompt; the chosen side is the grounded answer and the rejected side, in
turn: the team's plausible wrong answer, a looping answer, an answer in the other language, an
answer to another question (ignoring the passages), or the not-covered sentence (a needless
refusal); for a no-gold example, the grounded answer itself (an answer the passages do not
support), so the refusal is chosen exactly when the passages lack the answer.

Every pair passes qagen's checks and the held-out check against the test and dev sets before it
is used. Writes LLaMA-Factory files (Alpaca rows with a ``system`` column) and
``dataset_info.json``, ``stats.json``/``stats.png`` and ``manifest.json`` (the hashes of the
inputs and outputs).
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from pmpprag.config import option, to_dict
from pmpprag.qagen.filters import check_pair
from pmpprag.qagen.stage import dataset_info, is_val, read_pairs, stats_chart
from pmpprag.rag.pipeline import Assistant, RagConfig
from pmpprag.rag.prompts import NOT_COVERED
from pmpprag.schema import (
    Chunk,
    Hit,
    QAPair,
    atomic_write,
    file_sha256,
    write_stage_manifest,
)
from pmpprag.testsets import HELD_OUT_SETS, HeldOut, read_testset
from pmpprag.text import char_ngrams

logger = logging.getLogger(__name__)

__all__ = ["RaftConfig", "RaftResult", "cite", "loop_answer", "run"]

SECTION = re.compile(r"^(\d+\.\d+)")
# "needless-refusal": the not-covered sentence although the gold passage is given. Without it
# the refusal is only ever a chosen answer, and DPO taught the model to decline 71 of the Chinese
# dev set's 100 questions (README, "Ablation").
REJECTION_KINDS = (
    "plausible-wrong", "looping", "other-language", "ignores-passages", "needless-refusal"
)  # fmt: skip
# A no-gold example keeps no passage that holds this share of the answer's character bigrams
# (another section may state the same fact; measured: the gold chunk holds 0.5-0.9 of them).
NO_GOLD_OVERLAP = 0.3


@dataclass
class RaftConfig:
    pairs: list[Path] = option(
        [Path("data/qa/grounded"), Path("data/qa/authored")],
        "folders of team-written pair files (*.jsonl)",
    )
    index: Path = option(Path("index/companion"), "the index the product retrieves from")
    out: Path = option(Path("out/raft"), "run folder")
    name: str = option("pmpp_raft", "dataset name in dataset_info.json")
    k: int = option(5, "passages per prompt (the retriever's k at serving time)")
    no_gold_share: float = option(0.2, "share of examples whose passages lack the answer")
    val_fraction: float = option(0.05, "share of questions held out for validation (by id)")
    seed: int = option(0, "seed for gold positions, no-gold picks and rejection kinds")
    held_out: list[Path] = option(list(HELD_OUT_SETS), "test sets no pair may repeat (as in qagen)")

    def __post_init__(self) -> None:
        if not 0 <= self.no_gold_share < 1:
            raise ValueError("--no_gold_share must be in [0, 1)")
        if not 0 <= self.val_fraction < 1:
            raise ValueError("--val_fraction must be in [0, 1)")
        if self.k < 1:
            raise ValueError("--k must be at least 1")


@dataclass
class RaftResult:
    out: Path
    examples: int
    n_train: int
    n_val: int
    n_dpo: int
    stats: dict[str, Any]


def _sentences(text: str) -> list[str]:
    """Sentences with their end punctuation (Chinese and English), code spans kept whole."""
    parts = re.split(r"(?<=[。！？])|(?<=[.!?])\s+(?=[A-Z`(\"'])", text.strip())
    return [p.strip() for p in parts if p and p.strip()]


def cite(answer: str, n: int) -> str:
    """``answer`` citing passage ``n``: after its first real sentence (not a bare verdict such as
    "正确。" or "True."), and after its last when there are more ("... barrier. [2] ... block. [2]").
    Chinese text takes the marker without a space ("……。[2]")."""
    sentences = _sentences(answer)
    if not sentences:
        return answer
    first = next((i for i, s in enumerate(sentences) if len(s) >= 10), 0)
    marks = {first, len(sentences) - 1}
    chinese = bool(re.search(r"[\u4e00-\u9fff]", answer))
    mark = "[{n}]" if chinese else " [{n}]"
    glue = "" if chinese else " "
    return glue.join(s + (mark.format(n=n) if i in marks else "") for i, s in enumerate(sentences))


def loop_answer(answer: str) -> str:
    """A degenerate reply that repeats its first clause, as small models do when they loop."""
    clause = re.split(r"[，,；;。]|\.(?!\d)", answer.strip(), maxsplit=1)[0].strip() or answer[:40]
    sep = "，" if re.search(r"[\u4e00-\u9fff]", clause) else ", "
    return sep.join([clause] * 6)


def _section(pair: QAPair) -> str | None:
    m = SECTION.match(pair.section.strip())
    return m.group(1) if m else None


def _overlap(answer: str, text: str) -> float:
    """Share of the answer's character bigrams found in ``text`` (how much of it ``text`` holds)."""
    mine = char_ngrams(answer, 2)
    return len(mine & char_ngrams(text, 2)) / len(mine) if mine else 0.0


@dataclass
class _Example:
    pair: QAPair
    gold: bool
    system: str
    user: str
    answer: str
    rejected: str
    rejection: str
    passages: list[str]  # chunk ids in [n] order


class _Builder:
    def __init__(self, cfg: RaftConfig, assistant: Assistant, pairs: list[QAPair]) -> None:
        self.cfg, self.assistant = cfg, assistant
        assert assistant.retriever is not None
        self.retriever = assistant.retriever
        self.rng = random.Random(cfg.seed)
        chunks: list[Chunk] = self.retriever.stored.chunks
        self.by_section: dict[tuple[int, str, str], list[Chunk]] = {}
        for chunk in chunks:
            self.by_section.setdefault((chunk.chapter, chunk.section, chunk.lang), []).append(chunk)
        self.pairs = pairs
        self.by_chapter_lang: dict[tuple[int, str], list[QAPair]] = {}
        for pair in pairs:
            self.by_chapter_lang.setdefault((pair.chapter, pair.lang), []).append(pair)

    def _hits(self, pair: QAPair) -> list[Hit]:
        # deep enough that a no-gold example still finds k passages outside the gold section
        found = self.retriever.retrieve(pair.question, k=8 * self.cfg.k, language=pair.lang)
        return list(found.hits)

    def _gold_hits(self, pair: QAPair, hits: list[Hit]) -> tuple[list[Hit], int] | None:
        """The first k hits with a gold chunk among them, and its position (0-based)."""
        section = _section(pair)
        top = hits[: self.cfg.k]
        for i, hit in enumerate(top):
            if (hit.chunk.chapter, hit.chunk.section) == (pair.chapter, section):
                return top, i
        candidates = self.by_section.get((pair.chapter, section or "", pair.lang), [])
        if not candidates:
            return None
        best = max(candidates, key=lambda c: _overlap(pair.answer, c.text))
        at = self.rng.randrange(len(top)) if top else 0
        gold = Hit(chunk=best, score=top[at].score if top else 1.0, rank=at + 1)
        kept = top[: self.cfg.k - 1]
        kept.insert(min(at, len(kept)), gold)
        return kept, min(at, len(kept) - 1)

    def _no_gold_hits(self, pair: QAPair, hits: list[Hit]) -> list[Hit]:
        section = _section(pair)
        others = [
            h
            for h in hits
            if (h.chunk.chapter, h.chunk.section) != (pair.chapter, section)
            and _overlap(pair.answer, h.chunk.text) < NO_GOLD_OVERLAP  # nor one holding it
        ]
        return others[: self.cfg.k]

    def _rejected(self, pair: QAPair, n: int, turn: int) -> tuple[str, str]:
        kind = REJECTION_KINDS[turn % len(REJECTION_KINDS)]
        if kind == "looping":
            return loop_answer(pair.answer), kind
        if kind == "needless-refusal":
            return NOT_COVERED[pair.lang], kind
        if kind == "other-language":
            other = "en" if pair.lang == "zh" else "zh"
            same = [
                p
                for p in self.by_chapter_lang.get((pair.chapter, other), [])
                if _section(p) == _section(pair)
            ]
            pool = same or self.by_chapter_lang.get((pair.chapter, other), [])
            if pool:
                return cite(self.rng.choice(pool).answer, n), kind
        if kind == "ignores-passages":
            pool = [p for p in self.pairs if p.lang == pair.lang and p.chapter != pair.chapter]
            if pool:
                return cite(self.rng.choice(pool).answer, n), kind
        if pair.rejected:
            return cite(pair.rejected, n), "plausible-wrong"
        return loop_answer(pair.answer), "looping"

    def _prompt(self, pair: QAPair, hits: list[Hit]) -> tuple[str, str, list[str]]:
        """System text, user text and the given passages' ids, as the assistant sends them."""
        messages, given = self.assistant.prompt(pair.question, hits)
        return messages[0]["content"], messages[1]["content"], [h.chunk.chunk_id for h in given]

    def examples(self, pair: QAPair, no_gold: bool, turn: int) -> list[_Example]:
        hits = self._hits(pair)
        out = []
        gold = self._gold_hits(pair, hits)
        if gold is not None:
            top, at = gold
            chunk_id = top[at].chunk.chunk_id
            system, user, ids = self._prompt(pair, top)
            if chunk_id not in ids:  # trimmed by the context budget: lead with it instead
                top = [top[at]] + [h for i, h in enumerate(top) if i != at]
                system, user, ids = self._prompt(pair, top)
            n = ids.index(chunk_id) + 1
            rejected, kind = self._rejected(pair, n, turn)
            answer = cite(pair.answer, n)
            out.append(_Example(pair, True, system, user, answer, rejected, kind, ids))
        distractors = self._no_gold_hits(pair, hits) if no_gold else []
        if distractors:
            system, user, ids = self._prompt(pair, distractors)
            unsupported = cite(pair.answer, 1)
            out.append(_Example(pair, False, system, user, NOT_COVERED[pair.lang], unsupported,
                                "unsupported", ids))  # fmt: skip
        return out


def _checked(pairs: list[QAPair], held_out: HeldOut) -> tuple[list[QAPair], Counter[str]]:
    kept, rejected = [], Counter[str]()
    for pair in pairs:
        reason = check_pair(pair) or (
            "held-out" if held_out.match(pair.question, pair.answer) else None
        )
        if reason:
            rejected[reason] += 1
            logger.warning("%s (%s) rejected: %s", pair.id, pair.source, reason)
        else:
            kept.append(pair)
    return kept, rejected


def _stats(examples: list[_Example], rejected: Counter[str]) -> dict[str, Any]:
    by_chapter: dict[str, Counter[str]] = {}
    for e in examples:
        by_chapter.setdefault(str(e.pair.chapter), Counter())[e.pair.lang] += 1
    return {
        "examples": len(examples),
        "questions": len({e.pair.id for e in examples}),
        "with_gold": sum(e.gold for e in examples),
        "without_gold": sum(not e.gold for e in examples),
        "by_language": dict(Counter(e.pair.lang for e in examples)),
        "by_kind": dict(Counter(e.pair.kind for e in examples)),
        "by_rejection": dict(Counter(e.rejection for e in examples)),
        "by_chapter": {
            c: dict(v) for c, v in sorted(by_chapter.items(), key=lambda kv: int(kv[0]))
        },
        "pairs_rejected": dict(rejected),
    }


def run(cfg: RaftConfig) -> RaftResult:
    """Build, check, split and export the grounded SFT and DPO sets."""
    started = time.perf_counter()
    items = [item for path in cfg.held_out for item in read_testset(path)]
    pairs, rejected = _checked(
        [p for f in cfg.pairs for p in read_pairs(f, "--pairs")], HeldOut.of(items)
    )
    assistant = Assistant.load(RagConfig(index=cfg.index, mode="abstractive"))
    builder = _Builder(cfg, assistant, pairs)
    # no-gold examples are extra: one per (1 - share) / share gold examples
    every = max(1, round((1 - cfg.no_gold_share) / cfg.no_gold_share)) if cfg.no_gold_share else 0
    order = list(range(len(pairs)))
    random.Random(cfg.seed).shuffle(order)
    no_gold = {i for rank, i in enumerate(order) if every and rank % every == 0}
    examples: list[_Example] = []
    for i, pair in enumerate(tqdm(pairs, desc="retrieving", unit="pair")):
        examples += builder.examples(pair, i in no_gold, turn=i)
    stats = _stats(examples, rejected)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    train: list[dict[str, Any]] = []
    val: list[dict[str, Any]] = []
    dpo: list[dict[str, Any]] = []
    for e in examples:
        row = {"system": e.system, "instruction": e.user, "input": "", "output": e.answer,
               "id": e.pair.id, "lang": e.pair.lang, "gold": e.gold, "passages": e.passages}  # fmt: skip
        (val if is_val(e.pair.id, cfg.val_fraction) else train).append(row)
        if not is_val(e.pair.id, cfg.val_fraction):
            dpo.append({"system": e.system, "instruction": e.user, "input": "",
                        "chosen": e.answer, "rejected": e.rejected, "id": e.pair.id,
                        "rejection": e.rejection})  # fmt: skip
    files = {
        f"{cfg.name}_train.json": train,
        f"{cfg.name}_val.json": val,
        f"{cfg.name}_dpo.json": dpo,
        "dataset_info.json": dataset_info(cfg.name, system=True),
        "stats.json": stats,
    }
    for name, data in files.items():
        with atomic_write(out / name) as fh:
            json.dump(data, fh, ensure_ascii=False, indent=1)
    with atomic_write(out / "config.yaml") as fh:
        yaml.safe_dump(to_dict(cfg), fh, sort_keys=False, allow_unicode=True)
    side = {"gold passage": stats["with_gold"], "no gold": stats["without_gold"]}
    stats_chart(out, stats["by_chapter"], f"{stats['examples']} grounded examples by chapter",
                side, "passages")  # fmt: skip
    write_stage_manifest(
        out, list(files), f"pmpprag raft --config {out / 'config.yaml'}",
        inputs={str(p): file_sha256(p) for f in cfg.pairs for p in sorted(Path(f).glob("*.jsonl"))},
        index=json.loads((Path(cfg.index) / "manifest.json").read_text())["corpus_sha256"],
        seconds=round(time.perf_counter() - started, 1),
    )  # fmt: skip
    logger.info(
        "%d examples (%d with the gold passage, %d without) from %d pairs -> %s",
        stats["examples"], stats["with_gold"], stats["without_gold"], len(pairs), out,
    )  # fmt: skip
    return RaftResult(out, len(examples), len(train), len(val), len(dpo), stats)
