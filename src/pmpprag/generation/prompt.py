"""The one prompt renderer: chat messages through the model's own chat template.

Every back-end that tokenizes locally (transformers, CTranslate2, vLLM) and the training data
writer render prompts here, so a prompt becomes the same tokens in training and in serving.
"""

from __future__ import annotations

from typing import Any

from pmpprag.generation.base import Prompt

__all__ = ["prompt_token_ids", "render_prompt"]


def render_prompt(tokenizer: Any, prompt: Prompt) -> str:
    """Chat messages through the tokenizer's chat template; raw strings pass through."""
    if isinstance(prompt, str):
        return prompt
    if getattr(tokenizer, "chat_template", None):
        return str(
            tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        )
    # base models without a template: a plain transcript
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in prompt]
    return "\n".join([*lines, "Assistant:"])


def prompt_token_ids(tokenizer: Any, prompt: Prompt) -> list[int]:
    """The ids a local back-end feeds the model: the rendered prompt without added special
    tokens (a template that writes ``<bos>`` must not get a second one)."""
    return list(tokenizer(render_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"])
