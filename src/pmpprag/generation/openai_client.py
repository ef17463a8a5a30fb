"""The OpenAI-compatible back-end: any server that speaks /v1/chat/completions.

vLLM (``vllm serve``), SGLang, llama.cpp's server, this project's own ``pmpprag serve``, or a
hosted API (DeepSeek, Qwen, OpenAI). URL and key come from the config or from
``PMPPRAG_OPENAI_BASE_URL`` / ``PMPPRAG_OPENAI_API_KEY``. The client retries with exponential
backoff (``max_retries``), each request has a timeout, and at most ``concurrency`` requests are
in flight. Each request streams, so time to first token is measured; token counts come from the
server's usage report.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pmpprag.generation.base import CannotScore, Generation, GeneratorConfig, Prompt, SamplingConfig

__all__ = ["OpenAIGenerator"]


class OpenAIGenerator:
    name = "openai"

    def __init__(self, cfg: GeneratorConfig) -> None:
        from openai import OpenAI

        base_url = cfg.base_url or os.environ.get("PMPPRAG_OPENAI_BASE_URL")
        if not base_url:
            raise ValueError(
                "the openai back-end needs --generator.base_url URL or PMPPRAG_OPENAI_BASE_URL"
            )
        api_key = cfg.api_key or os.environ.get("PMPPRAG_OPENAI_API_KEY") or "not-needed"
        self.cfg = cfg
        self.client = OpenAI(
            base_url=base_url, api_key=api_key, timeout=cfg.timeout_s, max_retries=cfg.max_retries
        )
        self.context_window = 0  # unknown: the server checks it
        self.model = cfg.model

    def score(self, prompts: list[Prompt], continuations: list[str]) -> list[float]:
        raise CannotScore(self.name)

    def count_tokens(self, text: str) -> int:
        # No tokenizer on the client side; ~4 characters per token is the usual estimate.
        return max(1, len(text) // 4)

    def _request(self, prompt: Prompt, sampling: SamplingConfig, stream: bool) -> Any:
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        create: Any = self.client.chat.completions.create  # typed overloads reject plain dicts
        return create(
            model=self.model,
            messages=messages,
            max_tokens=sampling.max_new_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            stop=sampling.stop or None,
            seed=sampling.seed,
            stream=stream,
            **({"stream_options": {"include_usage": True}} if stream else {}),
            # Not in the OpenAI API; vLLM's and llama.cpp's servers read it from the body.
            **(
                {"extra_body": {"repetition_penalty": sampling.repetition_penalty}}
                if sampling.repetition_penalty != 1.0
                else {}
            ),
        )

    def _one(self, prompt: Prompt, sampling: SamplingConfig) -> Generation:
        start = time.perf_counter()
        first: float | None = None
        parts: list[str] = []
        usage = None
        finish = "length"
        for event in self._request(prompt, sampling, stream=True):
            if event.usage is not None:
                usage = event.usage
            for choice in event.choices:
                if choice.delta and choice.delta.content:
                    if first is None:
                        first = time.perf_counter() - start
                    parts.append(choice.delta.content)
                if choice.finish_reason:
                    finish = choice.finish_reason
        wall = time.perf_counter() - start
        text = "".join(parts)
        prompt_tokens = usage.prompt_tokens if usage else 0
        completion_tokens = usage.completion_tokens if usage else self.count_tokens(text)
        return Generation(
            text.strip(),
            prompt_tokens,
            completion_tokens,
            first or wall,
            wall,
            finish,
            extra={"usage_reported": usage is not None},
        )

    def generate(self, prompts: list[Prompt], sampling: SamplingConfig) -> list[Generation]:
        with ThreadPoolExecutor(max_workers=max(1, self.cfg.concurrency)) as pool:
            return list(pool.map(lambda p: self._one(p, sampling), prompts))

    def stream(self, prompt: Prompt, sampling: SamplingConfig) -> Iterator[str]:
        for event in self._request(prompt, sampling, stream=True):
            for choice in event.choices:
                if choice.delta and choice.delta.content:
                    yield choice.delta.content
