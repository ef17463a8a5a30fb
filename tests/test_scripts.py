"""The GPU staging script (scripts/gpu_stage.sh) on this machine: big folders go out as pieces
that each fit one carry and come back byte for byte, or not at all."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / "scripts" / "gpu_stage.sh"


def _stage(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PART_MB": "1",
        "PARTS": str(tmp_path / "parts"),
        "STAGED": str(tmp_path / "staged"),
        "SITE": str(tmp_path / "site"),
    }
    return subprocess.run(["bash", str(STAGE), *args], env=env, capture_output=True, text=True,
                          cwd=tmp_path)  # fmt: skip


def _folders(tmp_path: Path) -> dict[str, bytes]:
    files = {"a/weights.bin": os.urandom(1_600_000), "a/notes.txt": b"x" * 10, "b/tok.tar.gz":
             os.urandom(300_000)}  # fmt: skip
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(data)
    return {Path(name).name: data for name, data in files.items()}


def test_split_receive_install_round_trip(tmp_path: Path) -> None:
    files = _folders(tmp_path)
    split = _stage(tmp_path, "split", "a", "b")
    assert split.returncode == 0, split.stderr
    parts = sorted((tmp_path / "parts").iterdir())
    assert [p.name for p in parts] == ["00", "01"]  # ~1.9 MB in 1 MiB pieces
    assert all(f.stat().st_size <= 1024 * 1024 for p in parts for f in p.glob("*.part-*"))
    for part in parts:
        assert _stage(tmp_path, "receive", str(part)).returncode == 0
    install = _stage(tmp_path, "install")
    assert install.returncode == 0, install.stderr
    for name, data in files.items():
        assert (tmp_path / "staged" / name).read_bytes() == data


def test_install_refuses_a_damaged_or_missing_piece(tmp_path: Path) -> None:
    _folders(tmp_path)
    assert _stage(tmp_path, "split", "a", "b").returncode == 0
    assert _stage(tmp_path, "receive", str(tmp_path / "parts" / "00")).returncode == 0
    missing = _stage(tmp_path, "install")  # piece 01 never arrived
    assert missing.returncode != 0 and "FAILED" in missing.stdout + missing.stderr
    assert not (tmp_path / "staged" / "weights.bin").exists()
    piece = next((tmp_path / "parts" / "01").glob("*.part-*"))
    piece.write_bytes(b"\0" + piece.read_bytes()[1:])
    assert _stage(tmp_path, "receive", str(tmp_path / "parts" / "01")).returncode == 0
    assert _stage(tmp_path, "install").returncode != 0


def test_auto_mode_proxy_replaces_declines_and_loops_as_auto_mode_does() -> None:
    """scripts/auto_mode_proxy.py keeps a model answer only where auto mode would show it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("proxy", ROOT / "scripts" / "auto_mode_proxy.py")
    assert spec and spec.loader
    proxy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(proxy)
    reference = "warp 是 32 个线程，由 warp scheduler 调度。"
    prompts = [{"id": f"q{n}"} for n in range(5)]
    good = "warp 是 32 个线程。[1] 由 warp scheduler 调度。"  # a marker as the model writes it
    generations = [
        {"row": 0, "text": good, "finish_reason": "stop"},
        {"row": 1, "text": good, "finish_reason": "length"},  # ran on
        {"row": 2, "text": "教材索引中没有这个问题。", "finish_reason": "stop"},  # declined
        {"row": 3, "text": "warp 调度的单位是线程束，" * 4, "finish_reason": "stop"},  # repeats
        {"row": 4, "text": good, "finish_reason": "stop"},
    ]
    evaluated = [{"id": f"q{n}", "type": "open", "mode": "extractive", "reference": reference,
                  "answer": "block 由 thread 组成。"} for n in range(4)]  # fmt: skip
    evaluated.append({**evaluated[0], "id": "q4", "mode": "extractive+calculate"})
    row = proxy.score(prompts, generations, evaluated, loop_span=12)
    assert row["model_answers"] == 1 and row["n"] == 5
    # the one shown answer matches the reference's Latin words once its marker ("[1]", whose
    # digit the course metric would count) is dropped as /predict drops it
    alone = proxy.score(prompts[:1], generations[:1], evaluated[:1], loop_span=12)
    assert alone["course"] == 1.0
