"""FastEngine's greedy tokens equal transformers' ``generate(do_sample=False)`` for each family.

Tiny random float32 models built from configs (2-4 layers, hidden 64, vocab 256): Llama, Qwen2
(QKV bias), Qwen3 (QK-norm) and Gemma 3 (sliding-window + global layers with a window shorter
than the sequences, sandwich norms, GELU-tanh, logit soft-capping). Five prompts of different
lengths share two cache slots, so requests join the batch as others finish (continuous batching).
The PyTorch fallbacks run everywhere; the Triton kernels run in the interpreter on the CPU and
compiled, with CUDA graphs, in the ``gpu`` variant.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import pytest
import torch

if "TRITON_INTERPRET" not in os.environ:  # read when Triton is first imported: set it before
    os.environ["TRITON_INTERPRET"] = "0" if torch.cuda.is_available() else "1"

from pmpprag.fast import FastEngine, kernels
from pmpprag.fast.model import sharpen_random_weights

FAMILIES = ["llama", "qwen2", "qwen3", "gemma3_text"]
PROMPT_LENGTHS = [5, 11, 3, 8, 14]
NEW_TOKENS = 12


def tiny_model(family: str, seed: int = 0) -> Any:
    """A random tiny decoder of the family, weights scaled so greedy choices are clear-cut."""
    import transformers as tf

    common = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_attention_heads=4,
                  max_position_embeddings=256, bos_token_id=None, eos_token_id=None,
                  pad_token_id=0, tie_word_embeddings=False)  # fmt: skip
    if family == "llama":
        config = tf.LlamaConfig(**common, num_hidden_layers=2, num_key_value_heads=2)
        cls: Any = tf.LlamaForCausalLM
    elif family == "qwen2":
        config = tf.Qwen2Config(**common, num_hidden_layers=2, num_key_value_heads=2)
        cls = tf.Qwen2ForCausalLM
    elif family == "qwen3":
        config = tf.Qwen3Config(**common, num_hidden_layers=2, num_key_value_heads=1, head_dim=32)
        cls = tf.Qwen3ForCausalLM
    else:
        config = tf.Gemma3TextConfig(
            **common, num_hidden_layers=4, num_key_value_heads=1, head_dim=16,
            sliding_window=6, query_pre_attn_scalar=24, final_logit_softcapping=30.0,
            layer_types=["sliding_attention", "sliding_attention", "full_attention", "sliding_attention"],
        )  # fmt: skip
        cls = tf.Gemma3ForCausalLM
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = cls(config).float().eval()
    sharpen_random_weights(model)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    return model


def prompts(lengths: list[int], seed: int = 1) -> list[list[int]]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(1, 256, (n,), generator=gen).tolist() for n in lengths]


def reference(model: Any, prompt: list[int], new: int, eos: int | None, device: str) -> list[int]:
    ids = torch.tensor([prompt], device=device)
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                         max_new_tokens=new, eos_token_id=eos, pad_token_id=0)  # fmt: skip
    return out[0, len(prompt) :].tolist()


def check_family(family: str, backend: kernels.Backend, device: str = "cpu",
                 lengths: list[int] = PROMPT_LENGTHS, new: int = NEW_TOKENS,
                 with_eos: bool = True, pad_lone_prefill: bool = False) -> None:  # fmt: skip
    model = tiny_model(family).to(device)
    batch = prompts(lengths)
    expected = [reference(model, p, new, None, device) for p in batch]
    assert len({tuple(e) for e in expected}) == len(batch)  # the prompts lead different ways
    old = kernels.set_backend(backend)
    try:
        engine = FastEngine.from_model(model, max_slots=2, max_len=32, device=device, sync_every=4)
        if pad_lone_prefill:  # what CUDA graphs do, run eagerly: lone prompts padded to 16
            engine.graph_prefill_max = 32
        if device == "cuda":  # a server's start-up: every graph captured before any request
            engine.capture_all()
            assert set(engine.buckets) == {1, 2} and set(engine.prefill_graphs) == {16, 32}
        got = engine.generate(batch, new)
    finally:
        kernels.set_backend(old)
    assert got.tokens == expected
    if engine.graph_prefill_max and device == "cpu":  # lone prompts took the padded prefill
        assert set(engine.prefill_graphs) == {16}
    assert got.decode_steps > new  # more prompts than slots: several rounds
    assert all(t > 0 for t in got.ttft_s)
    if not with_eos:
        return
    # an EOS that some prompt meets mid-way (and maybe others): its slot frees up early
    row, first = next((i, j) for i, e in enumerate(expected) for j, t in enumerate(e)
                      if j >= 2 and t not in e[:j])  # fmt: skip
    eos = expected[row][first]
    expected_eos = [reference(model, p, new, eos, device) for p in batch]
    assert len(expected_eos[row]) == first + 1 < new
    old = kernels.set_backend(backend)
    try:
        got_eos = engine.generate(batch, new, eos=eos)
    finally:
        kernels.set_backend(old)
    assert got_eos.tokens == expected_eos


@pytest.mark.parametrize("family", FAMILIES)
def test_fast_engine_matches_transformers_greedy_torch_fallback(family: str) -> None:
    check_family(family, "torch")


@pytest.mark.parametrize("family", ["llama", "gemma3_text"])
def test_lone_prompt_prefill_padded_to_a_power_of_two_changes_nothing(family: str) -> None:
    check_family(family, "torch", pad_lone_prefill=True, with_eos=False)


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton")
@pytest.mark.parametrize("family", ["qwen3", "gemma3_text"])
def test_fast_engine_matches_transformers_greedy_triton_interpreter(family: str) -> None:
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("Triton was imported without TRITON_INTERPRET=1")
    # the interpreter runs each Triton program in Python: short prompts, still past the window
    check_family(family, "triton", lengths=[4, 7, 2], new=6, with_eos=False,
                 pad_lone_prefill=True)  # fmt: skip


@pytest.mark.gpu
@pytest.mark.parametrize("family", FAMILIES)
def test_fast_engine_matches_transformers_greedy_on_cuda(family: str) -> None:
    """Compiled Triton kernels + CUDA graphs, float32 (so equality is exact, not bf16 luck)."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("compiled kernels: run with TRITON_INTERPRET=0 on the GPU")
    check_family(family, "triton", "cuda")  # forced: a kernel that fails must fail the test


def test_decoder_spec_reads_family_features() -> None:
    from pmpprag.fast import DecoderSpec

    gemma = DecoderSpec.from_config(tiny_model("gemma3_text").config)
    assert gemma.gemma and gemma.qk_norm and gemma.activation == "gelu_tanh"
    assert gemma.windows == (6, 6, 0, 6) and gemma.attn_scale == 24**-0.5
    assert gemma.final_softcap == 30.0 and gemma.embed_scale == 8.0
    llama = DecoderSpec.from_config(tiny_model("llama").config)
    assert not llama.gemma and not llama.qk_norm and llama.windows == (0, 0)
    with pytest.raises(ValueError, match="model_type"):
        DecoderSpec.from_config(type("C", (), {"model_type": "gpt2"})())
