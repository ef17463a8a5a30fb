"""What each part adds: base / +RAG / +LoRA / +LoRA+RAG / +DPO+RAG / +full+RAG / extractive on
one test set, one command.

    pmpprag eval ablate --testset eval/sample_en.jsonl [--lora out/train/sft] [--dpo out/train/dpo]
        [--full out/train/sft-full/merged]

Every variant answers the same items with the same settings except retrieval, the adapter, the
model (``--full``: a fully fine-tuned model replaces the base) and, for ``extractive``, the
answering mode (the passages' sentences, no model); each model and adapter is loaded once, the
index once. A variant whose adapter or model is not given is listed as skipped, with the reason.
Writes ``ablation.json``, ``ablation.md``, ``ablation.png`` and one ``eval run``-style folder
per variant under ``--out``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from pmpprag.config import option, to_dict
from pmpprag.eval.report import ablation_chart, ablation_table
from pmpprag.eval.results import AblationRow
from pmpprag.eval.run import (
    EvalRunConfig,
    answer_items,
    score_answers,
    summarise,
    write_run,
)
from pmpprag.rag.pipeline import Assistant
from pmpprag.schema import atomic_write
from pmpprag.testsets import read_testset

logger = logging.getLogger(__name__)

__all__ = ["VARIANTS", "AblateConfig", "run"]

# variant -> (retrieval on, what it swaps in: None | "lora" | "dpo" (an adapter) | "full" (a
# fully tuned model instead of the base) | "extractive" (the extractive mode, no model))
VARIANTS: dict[str, tuple[bool, str | None]] = {
    "base": (False, None),
    "+RAG": (True, None),
    "+LoRA": (False, "lora"),
    "+LoRA+RAG": (True, "lora"),
    "+DPO+RAG": (True, "dpo"),
    "+full+RAG": (True, "full"),
    "extractive": (True, "extractive"),
}
DEFAULT_VARIANTS = ["base", "+RAG", "+LoRA", "+LoRA+RAG", "+DPO+RAG"]


@dataclass
class AblateConfig(EvalRunConfig):
    out: Path = option(Path("out/eval/ablate"), "where the table, chart and variant runs go")
    lora: str | None = option(None, "LoRA (SFT) adapter folder for the +LoRA variants")
    dpo: str | None = option(None, "DPO adapter folder for the +DPO+RAG variant")
    full: str | None = option(None, "fully fine-tuned model (folder or id) for +full+RAG")
    variants: list[str] = option(
        list(DEFAULT_VARIANTS),
        f"variants to run, in order, from: {', '.join(VARIANTS)} (the last two: "
        "--variants ... +full+RAG extractive)",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise ValueError(f"--variants {unknown}: choose from {', '.join(VARIANTS)}")


def run(cfg: AblateConfig) -> dict[str, Any]:
    items = read_testset(cfg.testset)[: cfg.limit]
    base = Assistant.load(replace(cfg, rag=True))  # the retriever also embeds for scoring
    assert base.retriever is not None
    embedder = base.retriever.embedder
    loaded: dict[tuple[str, str | None], Assistant] = {}  # one per (model, adapter)
    rows: list[AblationRow] = []
    for variant in cfg.variants:
        use_rag, kind = VARIANTS[variant]
        if kind in ("lora", "dpo", "full") and not getattr(cfg, kind):
            what = "model" if kind == "full" else "adapter"
            rows.append(AblationRow(variant, skipped=f"no --{kind} {what} given"))
            logger.warning("%s skipped: no --%s %s given", variant, kind, what)
            continue
        adapter = getattr(cfg, kind) if kind in ("lora", "dpo") else None
        generator = replace(cfg.generator, adapter=adapter)
        if kind == "full" and cfg.full:
            generator = replace(generator, model=cfg.full)
        mode = "extractive" if kind == "extractive" else cfg.mode
        run_cfg = replace(cfg, rag=use_rag, mode=mode, generator=generator)
        key = (generator.model, adapter)
        assistant = loaded.get(key, base).with_config(run_cfg)
        loaded[key] = assistant
        logger.info("%s: answering %d items", variant, len(items))
        answers, wall = answer_items(assistant, items, cfg.batch_size)
        scored = score_answers(items, answers, embedder)
        metrics = summarise(scored, wall)
        metrics.model, metrics.backend = generator.model, generator.backend
        metrics.rag, metrics.mode, metrics.adapter = use_rag, mode, adapter
        metrics.testset, metrics.settings = str(cfg.testset), to_dict(run_cfg)
        folder = Path(cfg.out) / variant.replace("+", "plus-").strip("-").lower()
        write_run(folder, scored, metrics, f"ablation variant {variant}: {cfg.testset}", run_cfg)
        rows.append(AblationRow.measured(variant, adapter, metrics, str(folder)))
    report = {"testset": str(cfg.testset), "items": len(items), "model": cfg.generator.model,
              "rows": [asdict(r) for r in rows], "settings": to_dict(cfg)}  # fmt: skip
    found = findings(rows)
    report["findings"] = found
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    with atomic_write(Path(cfg.out) / "ablation.json") as fh:
        json.dump(report, fh, indent=1, ensure_ascii=False, default=str)
    chart = ablation_chart(Path(cfg.out), rows)
    table = ablation_table(rows)
    with atomic_write(Path(cfg.out) / "ablation.md") as fh:
        fh.write(f"# Ablation on {cfg.testset} ({len(items)} items, {cfg.generator.model})\n\n"
                 f"{table}\n\n![ablation]({chart})\n\n" + "\n".join(f"- {f}" for f in found) + "\n")  # fmt: skip
    print(table)
    print("\n".join(found))
    return report


def findings(rows: list[AblationRow]) -> list[str]:
    """Plain statements of what RAG changed, so a regression is said, not hidden in a table."""
    by = {r.variant: r for r in rows if not r.skipped}
    out = []
    for without, with_ in (("base", "+RAG"), ("+LoRA", "+LoRA+RAG")):
        if without in by and with_ in by:
            for key, label in (("mcq_accuracy", "mcq accuracy"),
                               ("key_point_coverage", "key-point coverage")):  # fmt: skip
                a, b = getattr(by[without], key), getattr(by[with_], key)
                if a is None or b is None:
                    continue
                verb = "improves" if b > a else "does not improve"
                out.append(f"RAG {verb} {label}: {without} {a:.3f} -> {with_} {b:.3f}")
    return out
