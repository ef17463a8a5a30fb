"""Every shipped YAML loads into its stage's config; the CLI's commands and errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pmpprag.cli import COMMANDS, main
from pmpprag.config import load_config

ROOT = Path(__file__).parents[1]
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))


@pytest.mark.parametrize(
    "path", CONFIGS, ids=[str(p.relative_to(ROOT / "configs")) for p in CONFIGS]
)
def test_shipped_config_loads(path: Path) -> None:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# run: pmpprag "), "first line must say how to run it"
    words = first.removeprefix("# run: ").split()
    # "PMPPRAG_...=... pmpprag ask ..." -> the command after "pmpprag"
    words = words[words.index("pmpprag") + 1 :]
    name = words[0] if words[0] in COMMANDS else " ".join(words[:2])
    load_config(COMMANDS[name].config_cls, path)


def test_help_lists_stage_options() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pmpprag.cli", "ingest", "--help"], capture_output=True, text=True
    )
    assert (
        out.returncode == 0 and "--chunking.max_tokens" in out.stdout and "--chapters" in out.stdout
    )


def test_bad_option_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ingest", "--chunking.max_tokns", "3"]) == 2
    assert "unknown option chunking.max_tokns" in capsys.readouterr().err
    assert main(["models", "fetch", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


def test_positional_question_anywhere_among_options(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # the question may come before or after "--option value" pairs; here the missing index is named
    for argv in (["ask", "What is a warp?", "--index", str(tmp_path / "none")],
                 ["ask", "--index", str(tmp_path / "none"), "What is a warp?"]):  # fmt: skip
        assert main(argv) == 2
        assert f"no index at {tmp_path / 'none'}" in capsys.readouterr().err
    assert main(["ask", "q1", "q2"]) == 2
    assert "one question at a time" in capsys.readouterr().err
