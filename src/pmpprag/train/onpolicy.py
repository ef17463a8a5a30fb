"""On-policy DPO pairs: the tuned model's own answers become the rejected side (as in SPIN).

    pmpprag onpolicy --generator.adapter adapters/gemma3-270m-grounded --generator.device cuda

`pmpprag raft`'s rejected answers are written by rule (a clause repeated six times, another
question's answer, the other language). The shipped adapter's real failure looks different: a
fluent start, then one sentence again and again until the token limit (26 of sample_zh's 85
model answers). This stage asks the current model for its greedy answer to every prompt of a
DPO file and makes that answer the rejected side, so DPO learns from the mistakes the model
actually makes. The original rejected answer stays where the model's answer is no mistake:

- it says the same as the chosen answer (character-bigram overlap of ``same_overlap`` or more,
  citations aside);
- the chosen answer is the not-covered sentence and the model also declines.

Generation is the long part (~3,000 prompts): answers are appended to ``generations.jsonl`` as
each batch ends, and a run started again skips the prompts already answered, so the stage also
turns finished generations (copied back from a GPU machine) into pairs without loading a model.
Writes ``<name>_dpo.json`` (LLaMA-Factory ranking rows, the input's columns), ``dataset_info.json``
and ``stats.json`` (rejection kinds; with the eval extras installed, the generations' course
metric, CJK ROUGE-L and repeated 4-grams against the chosen answers).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pmpprag.config import option, to_dict
from pmpprag.generation import GeneratorConfig, SamplingConfig, load_generator
from pmpprag.rag.prompts import declines
from pmpprag.schema import CITATION_MARKER, atomic_write
from pmpprag.text import char_ngrams, has_cjk
from pmpprag.train.data import load_rows, prompt_messages

logger = logging.getLogger(__name__)

__all__ = ["KINDS", "OnPolicyConfig", "OnPolicyResult", "choose_rejected", "run"]


# what choose_rejected calls the model's mistakes (its other kind, "kept", is none)
KINDS = ("on-policy", "on-policy-length", "on-policy-unsupported", "on-policy-empty")


@dataclass
class OnPolicyConfig:
    data: Path = option(Path("out/raft/pmpp_raft_dpo.json"), "DPO rows (pmpprag raft's)")
    out: Path = option(Path("out/onpolicy"), "run folder")
    name: str = option("pmpp_onpolicy", "dataset name in dataset_info.json")
    generator: GeneratorConfig = option(
        default_factory=lambda: GeneratorConfig(
            backend="transformers", model="gemma3-270m", adapter="adapters/gemma3-270m-grounded"
        ),
        help="the model whose answers are rejected (transformers; device cuda on a GPU)",
    )
    sampling: SamplingConfig = option(
        default_factory=lambda: SamplingConfig(max_new_tokens=320),
        help="decoding as served (greedy, the served token limit)",
    )
    batch_size: int = option(64, "prompts per generate call")
    same_overlap: float = option(0.9, "a model answer this close to the chosen one is no mistake")
    limit: int = option(0, "answer only the first N rows (0: all)")
    kinds: str = option(
        ",".join(KINDS),
        "the model's mistakes that become rejected answers, comma-separated (the others keep "
        "the row's own rejected answer)",
    )
    keep_rules: bool = option(
        False,
        "keep every row with its rule-made rejected answer too, and add the on-policy pairs "
        "beside them (the refusal balance of `pmpprag raft`'s pairs then holds)",
    )

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("--batch_size must be at least 1")
        if not 0 < self.same_overlap <= 1:
            raise ValueError("--same_overlap must be in (0, 1]")
        unknown = set(self.selected_kinds()) - set(KINDS)
        if unknown:
            raise ValueError(f"--kinds: unknown {sorted(unknown)}; use some of {', '.join(KINDS)}")

    def selected_kinds(self) -> list[str]:
        return [k.strip() for k in self.kinds.split(",") if k.strip()]


@dataclass
class OnPolicyResult:
    out: Path
    pairs: int
    stats: dict[str, Any]


def _plain(text: str) -> str:
    return re.sub(r"\s+", " ", CITATION_MARKER.sub("", text)).strip()


def _overlap(answer: str, reference: str) -> float:
    """Symmetric share of character bigrams the two texts have in common (Dice)."""
    a, b = char_ngrams(_plain(answer), 2), char_ngrams(_plain(reference), 2)
    return 2 * len(a & b) / (len(a) + len(b)) if a and b else 0.0


def choose_rejected(
    row: dict[str, Any], generated: dict[str, Any], same_overlap: float
) -> tuple[str, str]:
    """The rejected answer for ``row`` and its kind: the model's answer, unless it is no mistake
    (then the row's own rejected answer, kind ``kept``)."""
    answer = generated["text"].strip()
    if not answer:
        return answer, "on-policy-empty"
    if declines(_plain(row["chosen"])):
        return (
            (row["rejected"], "kept")
            if declines(_plain(answer))
            else (answer, "on-policy-unsupported")
        )
    if _overlap(answer, row["chosen"]) >= same_overlap:
        return row["rejected"], "kept"
    if generated.get("finish_reason") == "length":
        return answer, "on-policy-length"
    return answer, "on-policy"


def _prompt_key(row: dict[str, Any]) -> str:
    text = f"{row.get('system', '')}\n{row['instruction']}\n{row.get('input', '')}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _read_generations(path: Path, rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The answers already written for ``rows`` (an answer to another prompt, left by a run
    over other data in the same folder, is not reused)."""
    done: dict[int, dict[str, Any]] = {}
    if not path.exists():
        return done
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # the last line of a run killed mid-write
            logger.warning("%s:%d: not JSON, answered again", path, n)
            continue
        i = record.get("row")
        if isinstance(i, int) and i < len(rows) and record.get("prompt") == _prompt_key(rows[i]):
            done[i] = record
    return done


def _generate(
    cfg: OnPolicyConfig, rows: list[dict[str, Any]], path: Path
) -> dict[int, dict[str, Any]]:
    done = _read_generations(path, rows)
    todo = [i for i in range(len(rows)) if i not in done]
    if not todo:
        return done
    logger.info("%d of %d prompts answered; generating %d", len(done), len(rows), len(todo))
    generator = load_generator(cfg.generator)
    # similar prompt lengths together: less padding per batch
    todo.sort(key=lambda i: len(rows[i]["instruction"]))
    with path.open("a", encoding="utf-8") as fh, tqdm(total=len(todo), desc="answers") as bar:
        for start in range(0, len(todo), cfg.batch_size):
            batch = todo[start : start + cfg.batch_size]
            # the turns training renders for the row (optional system, then the user turn)
            outputs = generator.generate([prompt_messages(rows[i]) for i in batch], cfg.sampling)
            for i, out in zip(batch, outputs, strict=True):
                record = {"row": i, "prompt": _prompt_key(rows[i]), "text": out.text,
                          "finish_reason": out.finish_reason,
                          "completion_tokens": out.completion_tokens}  # fmt: skip
                done[i] = record
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            fh.flush()  # a batch answered is a batch kept, should the machine go away
            bar.update(len(batch))
    return done


def _scores(rows: list[dict[str, Any]], done: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Mean course metric, CJK ROUGE-L and repeated 4-grams of the model's answers against the
    chosen ones, by language (needs jieba and rouge-score, which a bare GPU machine lacks:
    then none; run the stage again here on the copied-back generations)."""
    try:
        return _score_answers(rows, done)
    except ImportError as exc:
        logger.info("no scores: %s", exc)
        return {}


def _score_answers(rows: list[dict[str, Any]], done: dict[int, dict[str, Any]]) -> dict[str, Any]:
    from pmpprag.eval.metrics import cjk_rouge_l, course_rouge_l, repeated_ngram_share

    by_lang: dict[str, list[tuple[float, float, float, bool]]] = {}
    for i, row in enumerate(rows):
        if i not in done or declines(_plain(row["chosen"])):
            continue
        answer, reference = _plain(done[i]["text"]), _plain(row["chosen"])
        lang = row.get("lang") or ("zh" if has_cjk(row["instruction"][-200:]) else "en")
        by_lang.setdefault(lang, []).append((
            course_rouge_l(answer, reference), cjk_rouge_l(answer, reference),
            repeated_ngram_share(answer), done[i]["finish_reason"] == "length",
        ))  # fmt: skip

    def mean(v: list[tuple[float, float, float, bool]], k: int) -> float:
        return round(sum(float(x[k]) for x in v) / len(v), 4)

    names = ("course", "cjk_rouge_l", "repeated_4gram", "hit_token_limit")
    return {
        lang: {"n": len(v), **{name: mean(v, k) for k, name in enumerate(names)}}
        for lang, v in sorted(by_lang.items())
    }


def run(cfg: OnPolicyConfig) -> OnPolicyResult:
    rows = load_rows(cfg.data, "dpo")
    if cfg.limit:
        rows = rows[: cfg.limit]
    cfg.out.mkdir(parents=True, exist_ok=True)
    done = _generate(cfg, rows, cfg.out / "generations.jsonl")
    pairs: list[dict[str, Any]] = []
    kinds: Counter[str] = Counter()
    selected = set(cfg.selected_kinds())
    for i, row in enumerate(rows):
        rejected, kind = choose_rejected(row, done[i], cfg.same_overlap)
        if kind not in selected:
            kinds["kept" if kind == "kept" else f"kept ({kind} not selected)"] += 1
            pairs.append(row)
            continue
        kinds[kind] += 1
        if cfg.keep_rules:
            pairs.append(row)
        pairs.append({**row, "rejected": rejected, "rejection": kind})
    name = f"{cfg.name}_dpo.json"
    with atomic_write(cfg.out / name) as fh:
        json.dump(pairs, fh, ensure_ascii=False, indent=1)
    info = {cfg.name + "_dpo": {"file_name": name, "ranking": True,
            "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen",
                        "rejected": "rejected", "system": "system"}}}  # fmt: skip
    with atomic_write(cfg.out / "dataset_info.json") as fh:
        json.dump(info, fh, ensure_ascii=False, indent=1)
    stats = {"rows": len(rows), "pairs": len(pairs), "rejected": dict(kinds.most_common()),
             "scores": _scores(rows, done), "config": to_dict(cfg)}  # fmt: skip
    with atomic_write(cfg.out / "stats.json") as fh:
        json.dump(stats, fh, ensure_ascii=False, indent=1, default=str)
    logger.info("%d pairs -> %s; rejected: %s", len(pairs), cfg.out / name, dict(kinds))
    return OnPolicyResult(out=cfg.out, pairs=len(pairs), stats=stats)
