"""A test set's open questions as DPO-style rows, prompts exactly as the assistant serves them.

    .venv/bin/python scripts/testset_prompts.py data/dev/open_zh_dev.jsonl data/dev/open_en_dev.jsonl \
        --config configs/rag/gemma.yaml --out build/gpu/dev_prompts.json

Each row holds the system and user turns `Assistant.prompt` renders over the retriever's
passages for the question, and the reference answer as ``chosen``. `pmpprag onpolicy --data`
then answers them with any adapter on a GPU machine (which lacks the index and retriever) and
scores the answers against the references: a quick comparison of adapters on the team's dev
set before the full CPU evaluation. Only for the team's own sets: the held-out samples are not
for choosing between models.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pmpprag.config import load_config
from pmpprag.rag.pipeline import Assistant, RagConfig
from pmpprag.rag.prompts import NOT_COVERED
from pmpprag.schema import atomic_write
from pmpprag.testsets import read_testset
from pmpprag.text import has_cjk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("testsets", nargs="+", type=Path)
    parser.add_argument("--config", default="configs/rag/gemma.yaml")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    cfg = load_config(RagConfig, args.config, {})
    assistant = Assistant.load(cfg)
    assert assistant.retriever is not None, "the config names no index"
    rows = []
    for path in args.testsets:
        for item in read_testset(path):
            if item.type != "open":
                continue
            language = "zh" if has_cjk(item.question) else "en"
            found = assistant.retriever.retrieve(item.question, language=language)
            messages, _ = assistant.prompt(item.question, found.hits)
            system = next((m["content"] for m in messages if m["role"] == "system"), "")
            user = messages[-1]["content"]
            # rejected: a needless refusal, so that each row is a valid DPO ranking row
            rows.append({"id": item.id, "system": system, "instruction": user, "input": "",
                         "chosen": item.answer, "rejected": NOT_COVERED[language],
                         "lang": language})  # fmt: skip
    with atomic_write(args.out) as fh:
        json.dump(rows, fh, ensure_ascii=False, indent=1)
    print(f"{len(rows)} prompts -> {args.out}")


if __name__ == "__main__":
    main()
