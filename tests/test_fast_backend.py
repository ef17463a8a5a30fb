"""``--generator.backend fast`` behind the Generator protocol, checked on the CPU against transformers."""

from __future__ import annotations

from pathlib import Path

import pytest

from pmpprag.generation import CannotScore, GeneratorConfig, SamplingConfig, load_generator


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer Llama with SmolLM2's tokenizer (and its chat template), saved as a folder."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from pmpprag import models

    tokenizer = AutoTokenizer.from_pretrained(models.resolve("smollm2-135m-instruct").path_or_id)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, tie_word_embeddings=True,
                         eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_fast_backend_matches_transformers_greedy_on_cpu(tiny_llama: Path) -> None:
    prompts = [
        [{"role": "user", "content": "What is a warp?"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "什么是线程束？"}],
        "raw text prompt about shared memory",
    ]
    sampling = SamplingConfig(max_new_tokens=12)
    fast = load_generator(GeneratorConfig(backend="fast", model=str(tiny_llama), device="cpu"))
    reference = load_generator(GeneratorConfig(backend="transformers", model=str(tiny_llama)))
    got = fast.generate(prompts, sampling)  # type: ignore[arg-type]
    want = reference.generate(prompts, sampling)  # type: ignore[arg-type]
    assert [g.text for g in got] == [w.text for w in want]
    assert [g.completion_tokens for g in got] == [w.completion_tokens for w in want]
    assert all(
        g.prompt_tokens == len(fast.prompt_ids(p)) for g, p in zip(got, prompts, strict=True)
    )  # type: ignore[attr-defined]
    assert "".join(fast.stream(prompts[0], sampling)) == got[0].text
    with pytest.raises(ValueError, match="greedily"):
        fast.generate(prompts[:1], SamplingConfig(temperature=0.7))
    with pytest.raises(CannotScore):
        fast.score(prompts[:1], ["x"])  # type: ignore[arg-type]
