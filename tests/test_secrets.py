"""No secret given by flag reaches a file the project writes (issue: settings dumps)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pmpprag.cli import COMMANDS
from pmpprag.config import REDACTED, is_secret, load_config, to_dict

SECRET = "sk-test-DO-NOT-WRITE-0123456789"


def _secret_flags(cls: type, prefix: str = "") -> dict[str, str]:
    """Every secret-named field of a config dataclass, nested ones included, as dotted flags."""
    flags: dict[str, str] = {}
    for field in dataclasses.fields(cls):
        default = (
            field.default_factory()  # type: ignore[misc]
            if field.default_factory is not dataclasses.MISSING
            else field.default
        )
        if dataclasses.is_dataclass(default):
            flags |= _secret_flags(type(default), f"{prefix}{field.name}.")
        elif is_secret(field.name):
            flags[f"{prefix}{field.name}"] = SECRET
    return flags


def test_secret_names_are_recognised() -> None:
    assert all(map(is_secret, ["api_key", "judge_api_key", "hf_token", "client_secret"]))
    assert not any(map(is_secret, ["max_new_tokens", "tokenizer", "context_tokens", "n_tokens"]))


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_stage_writes_its_settings_without_secrets(name: str) -> None:
    cls = COMMANDS[name].config_cls
    flags = _secret_flags(cls)
    overrides: dict[str, Any] = dict(flags)
    if name == "ingest":  # a config that validates without files
        overrides["markdown"] = "data/corpus"
    cfg = load_config(cls, None, overrides)
    dumped = yaml.safe_dump(to_dict(cfg)) + json.dumps(to_dict(cfg))
    assert SECRET not in dumped
    assert dumped.count(REDACTED) >= len(flags) // 2  # yaml + json each hold every one


def test_a_real_eval_run_writes_no_secret(corpus_index: Path, tmp_path: Path) -> None:
    from pmpprag.eval.run import EvalRunConfig, run

    cfg = load_config(
        EvalRunConfig,
        None,
        {
            "index": str(corpus_index),
            "testset": "data/dev/open_zh_dev.jsonl",
            "limit": 2,
            "out": str(tmp_path / "run"),
            "generator.api_key": SECRET,
            "ragas.judge_api_key": SECRET,
        },
    )
    run(cfg)
    written = list((tmp_path / "run").rglob("*"))
    assert any(p.name == "metrics.json" for p in written)
    for path in written:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
