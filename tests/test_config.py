from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from pmpprag.config import ConfigError, describe, load_config, option, parse_overrides


@dataclass
class Inner:
    max_tokens: int = option(256, "token budget")
    overlap: float = option(0.1, "overlap fraction")


@dataclass
class Outer:
    out: Path = option(Path("out"), "output folder")
    chapters: str = option("2-6", "chapters")
    mode: Literal["a", "b"] = option("a", "mode")
    tags: list[str] = option(["x"], "tags")
    files: list[Path] = option([], "files")
    rag: bool = option(True, "use RAG")
    inner: Inner = option(default_factory=Inner, help="chunking")
    tight: Inner = option(default_factory=lambda: Inner(max_tokens=64), help="a tighter group")


def test_parse_overrides_types_and_flags() -> None:
    got = parse_overrides(
        ["--inner.max_tokens", "128", "--chapters", "1-7,13", "--no-rag", "--batch", "--x=2.5"]
    )
    assert got == {
        "inner.max_tokens": 128,
        "chapters": "1-7,13",
        "rag": False,
        "batch": True,
        "x": 2.5,
    }


def test_layers_defaults_file_flags(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("out: runs/a\ninner:\n  max_tokens: 100\n  overlap: 0\n")
    cfg = load_config(Outer, f, {"inner.max_tokens": 64, "tags": "p,q", "files": "a.json,b.json"})
    assert cfg.out == Path("runs/a") and cfg.files == [Path("a.json"), Path("b.json")]
    assert cfg.inner.max_tokens == 64 and cfg.inner.overlap == 0.0
    assert cfg.tags == ["p", "q"] and cfg.mode == "a"
    # YAML 1.1 reads 5e-5 (no dot) as a string; a float option takes it as the number it is
    f.write_text("inner:\n  overlap: 5e-5\n")
    assert load_config(Outer, f, parse_overrides(["--tight.overlap", "1e-3"])).inner.overlap == 5e-5
    assert (
        load_config(Outer, None, parse_overrides(["--tight.overlap", "1e-3"])).tight.overlap == 1e-3
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"inner.max_token": 3}, "unknown option inner.max_token"),
        ({"mode": "c"}, "must be one of"),
        ({"inner.max_tokens": "many"}, "must be int"),
        ({"inner.overlap": "tenth"}, "must be float"),
        ({"inner": 5}, "is a group"),
    ],
)
def test_bad_values_name_the_option(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(Outer, None, overrides)


def test_missing_and_invalid_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Outer, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: expected a mapping"):
        load_config(Outer, bad)


def test_describe_flattens_nested() -> None:
    rows = {flag: default for flag, default, _ in describe(Outer)}
    assert "--inner.max_tokens" in rows and "--rag" in rows
    # a group's own default factory decides what --help shows
    assert rows["--inner.max_tokens"] == "256" and rows["--tight.max_tokens"] == "64"


def test_no_repeat_ngram_on_a_backend_without_it_is_a_clear_error() -> None:
    from pmpprag.eval.ablate import AblateConfig
    from pmpprag.generation import GeneratorConfig, SamplingConfig
    from pmpprag.rag.pipeline import RagConfig

    with pytest.raises(ValueError, match="transformers only, not vllm"):
        RagConfig(
            generator=GeneratorConfig(backend="vllm"), sampling=SamplingConfig(no_repeat_ngram=4)
        )
    with pytest.raises(ValueError, match="transformers only"):
        AblateConfig(sampling=SamplingConfig(no_repeat_ngram=4))  # subclasses check it too
    with pytest.raises(ValueError, match="0 \\(off\\) or at least 2"):
        SamplingConfig(no_repeat_ngram=1)
    RagConfig(
        generator=GeneratorConfig(backend="transformers"),
        sampling=SamplingConfig(no_repeat_ngram=4),
    )
