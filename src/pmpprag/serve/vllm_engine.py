"""The vLLM back-end (GPU): the offline ``vllm.LLM`` engine, merged models or LoRA adapters.

Install with ``pip install 'pmpprag[gpu]'``; vLLM is imported only here. For a served endpoint,
run ``vllm serve MODEL`` and use the ``openai`` back-end against it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from pmpprag import models
from pmpprag.serve.generation import Generation, GeneratorConfig, Prompt, SamplingConfig

__all__ = ["VLLMGenerator"]


class VLLMGenerator:
    name = "vllm"

    def __init__(self, cfg: GeneratorConfig) -> None:
        # A process that already touched CUDA (pytest, an app) cannot fork vLLM's engine core.
        os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        try:
            from vllm import LLM
        except ImportError as err:
            raise ImportError(
                "the vllm back-end needs vLLM on a GPU machine: pip install 'pmpprag[gpu]'"
            ) from err
        self.cfg = cfg
        path = (
            cfg.model
            if cfg.load_format == "dummy"
            else models.resolve(cfg.model, kind="causal-lm").path_or_id
        )
        kwargs: dict[str, Any] = {
            "gpu_memory_utilization": cfg.gpu_memory_utilization,
            "load_format": cfg.load_format,
        }
        if cfg.max_model_len:
            kwargs["max_model_len"] = cfg.max_model_len
        if cfg.adapter:
            kwargs.update(enable_lora=True, max_lora_rank=64)
        self.llm = LLM(model=path, dtype="auto" if cfg.dtype == "float32" else cfg.dtype, **kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.context_window = int(self.llm.llm_engine.model_config.max_model_len)
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def _params(self, sampling: SamplingConfig) -> Any:
        from vllm import SamplingParams

        return SamplingParams(
            max_tokens=sampling.max_new_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p if sampling.temperature > 0 else 1.0,
            stop=sampling.stop or None,
            seed=sampling.seed,
            min_tokens=sampling.min_new_tokens,
        )

    def generate(self, prompts: list[Prompt], sampling: SamplingConfig) -> list[Generation]:
        lora = None
        if self.cfg.adapter:
            from vllm.lora.request import LoRARequest

            lora = LoRARequest("adapter", 1, self.cfg.adapter)
        chats = [[{"role": "user", "content": p}] if isinstance(p, str) else p for p in prompts]
        with self._lock:
            start = time.perf_counter()
            outputs = self.llm.chat(
                chats, self._params(sampling), lora_request=lora, use_tqdm=False
            )
            wall = time.perf_counter() - start
        results = []
        for out in outputs:
            completion = out.outputs[0]
            metrics = getattr(out, "metrics", None)
            ttft = wall
            if metrics is not None and getattr(metrics, "first_token_time", None):
                ttft = float(metrics.first_token_time - metrics.arrival_time)
            results.append(
                Generation(
                    completion.text.strip(),
                    len(out.prompt_token_ids or []),
                    len(completion.token_ids),
                    ttft,
                    wall,
                    "stop" if completion.finish_reason == "stop" else "length",
                )
            )
        return results

    def stream(self, prompt: Prompt, sampling: SamplingConfig) -> Iterator[str]:
        # The offline engine has no token stream; the whole completion arrives as one piece.
        yield self.generate([prompt], sampling)[0].text
