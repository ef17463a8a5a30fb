"""scripts/check_grounded.py: the team's grounded QA files pass it, and it names what is wrong."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "scripts" / "check_grounded.py"


def _check(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CHECK), *map(str, files)], capture_output=True,
                          text=True, cwd=ROOT)  # fmt: skip


@pytest.mark.slow  # every pair against every other team question: ~40 s on 2 cores
def test_committed_grounded_pairs_pass() -> None:
    result = _check(*sorted((ROOT / "data" / "qa" / "grounded").glob("ch*.jsonl")))
    assert result.returncode == 0, result.stdout[-2000:]
    assert result.stdout.splitlines()[-1].startswith("0 errors, ")


def test_an_index_is_code_and_a_marker_is_refused(tmp_path: Path) -> None:
    source = ROOT / "data" / "qa" / "grounded" / "ch07.jsonl"
    pair = next(json.loads(line) for line in source.open() if '"lang": "zh"' in line)
    indexed = dict(pair, answer=pair["answer"] + "例如 `P[2]` 的窗口是 N[0..4]。")
    marked = dict(pair, id=pair["id"][:-3] + "998", answer=pair["answer"] + "见 [2]。",
                  question=pair["question"] + "（二）")  # fmt: skip
    too_long = dict(pair, id=pair["id"][:-3] + "999", answer="线程" * 200,
                    question="完全不同的另一个问题：共享内存的 bank 冲突是什么？")  # fmt: skip
    out = tmp_path / "ch07.jsonl"
    out.write_text(
        "\n".join(json.dumps(p, ensure_ascii=False) for p in (indexed, marked, too_long)) + "\n",
        encoding="utf-8",
    )
    result = _check(out)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert not any(":1: refers to the notes" in line for line in lines), result.stdout
    assert any(":2: refers to the notes or carries a citation marker" in line for line in lines)
    assert any(":3: Chinese answer has 400 hanzi (want 25-380)" in line for line in lines)
