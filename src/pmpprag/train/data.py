"""Training data: LLaMA-Factory Alpaca files (what ``pmpprag qagen`` writes) -> chat datasets.

SFT rows ``{"instruction", "input", "output"}`` (and an optional ``system``, as in
``pmpprag raft``'s grounded rows) become prompt/completion conversations, so the loss falls on
the answer only. DPO rows ``{"instruction", "input", "chosen", "rejected"}`` become
prompt/chosen/rejected conversations. A malformed file or row is an error that names the file,
the row and the missing field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pmpprag.errors import PmppragError

__all__ = ["DataError", "load_rows", "to_conversations"]


class DataError(PmppragError, ValueError):
    """A training file is missing, not a JSON list, or has a row without a required field."""


REQUIRED = {"sft": ("instruction", "output"), "dpo": ("instruction", "chosen", "rejected")}


def load_rows(path: Path, method: Literal["sft", "dpo"]) -> list[dict[str, Any]]:
    """The rows of an Alpaca JSON list (or JSON Lines) file, each checked for its fields."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist: run `pmpprag qagen` first or pass --data FILE")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            rows = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from err
    if not isinstance(rows, list) or not rows:
        raise DataError(f"{path}: expected a non-empty JSON list of rows")
    for i, row in enumerate(rows):
        missing = [k for k in REQUIRED[method] if not isinstance(row, dict) or not row.get(k)]
        if missing:
            raise DataError(
                f"{path}: row {i} has no {', '.join(missing)} "
                f"({method} rows need {', '.join(REQUIRED[method])})"
            )
    return rows


def prompt_messages(row: dict[str, Any]) -> list[dict[str, str]]:
    """The prompt side: an optional ``system`` message (grounded RAFT rows carry the answer
    instructions there, as the assistant sends them), then the user turn."""
    query = row.get("input") or ""
    content = f"{row['instruction']}\n\n{query}" if query else row["instruction"]
    system = [{"role": "system", "content": row["system"]}] if row.get("system") else []
    return [*system, {"role": "user", "content": content}]


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def to_conversations(rows: list[dict[str, Any]], method: Literal["sft", "dpo"]) -> Any:
    """A ``datasets.Dataset`` in TRL's conversational prompt/completion or preference format."""
    from datasets import Dataset

    if method == "sft":
        records = [
            {"prompt": prompt_messages(r), "completion": _assistant(r["output"])} for r in rows
        ]
    else:
        records = [
            {
                "prompt": prompt_messages(r),
                "chosen": _assistant(r["chosen"]),
                "rejected": _assistant(r["rejected"]),
            }
            for r in rows
        ]
    return Dataset.from_list(records)
