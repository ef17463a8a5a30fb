"""The vLLM back-ends (GPU), merged models or LoRA adapters (``LoRARequest``).

- ``vllm``: the offline ``vllm.LLM`` engine, for batch work (QA generation, evaluation).
- ``vllm-async``: the async engine (``AsyncLLM``) for serving: concurrent requests share the
  engine's continuous batching, answers stream token by token, and each request gets its own
  time to first token.

Install with ``pip install 'pmpprag[gpu]'``; vLLM is imported only here. For a separate
endpoint, run ``vllm serve MODEL`` and use the ``openai`` back-end against it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from pmpprag import models
from pmpprag.errors import MissingExtra
from pmpprag.generation.base import (
    CannotScore,
    Generation,
    GeneratorConfig,
    Prompt,
    SamplingConfig,
)
from pmpprag.generation.prompt import prompt_token_ids

__all__ = ["VLLMAsyncGenerator", "VLLMGenerator"]


def _params(sampling: SamplingConfig) -> Any:
    from vllm import SamplingParams

    return SamplingParams(
        max_tokens=sampling.max_new_tokens,
        temperature=sampling.temperature,
        top_p=sampling.top_p if sampling.temperature > 0 else 1.0,
        stop=sampling.stop or None,
        seed=sampling.seed,
        min_tokens=sampling.min_new_tokens,
        repetition_penalty=sampling.repetition_penalty,
    )


def _lora_request(cfg: GeneratorConfig) -> Any:
    """The configured LoRA adapter as a vLLM request argument (None: the bare model)."""
    if not cfg.adapter:
        return None
    from vllm.lora.request import LoRARequest

    return LoRARequest("adapter", 1, cfg.adapter)


def _model_path(cfg: GeneratorConfig, backend: str) -> str:
    """Check that vLLM is installed; the model folder or hub id to give it."""
    # A process that already touched CUDA (pytest, an app) cannot fork vLLM's engine core.
    os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
    if importlib.util.find_spec("vllm") is None:
        raise MissingExtra(
            f"the {backend} back-end needs vLLM on a GPU machine: pip install 'pmpprag[gpu]'"
        )
    if cfg.load_format == "dummy":  # random weights: only the config and tokenizer are read
        return cfg.model
    return models.resolve(cfg.model, kind="causal-lm").path_or_id


class _VLLMTokens:
    """What both vLLM back-ends do with their tokenizer; neither can score given text."""

    name: str
    tokenizer: Any

    def score(self, prompts: list[Prompt], continuations: list[str]) -> list[float]:
        raise CannotScore(self.name)

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        """The ids the model reads for ``prompt`` (the one chat template, no extra BOS)."""
        return prompt_token_ids(self.tokenizer, prompt)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))


class VLLMGenerator(_VLLMTokens):
    name = "vllm"

    def __init__(self, cfg: GeneratorConfig) -> None:
        path = _model_path(cfg, self.name)
        from vllm import LLM

        self.cfg = cfg
        kwargs: dict[str, Any] = {
            "gpu_memory_utilization": cfg.gpu_memory_utilization,
            "load_format": cfg.load_format,
            "max_num_seqs": cfg.max_num_seqs,
        }
        if cfg.max_model_len:
            kwargs["max_model_len"] = cfg.max_model_len
        if cfg.adapter:
            kwargs.update(enable_lora=True, max_lora_rank=64)
        self.llm = LLM(model=path, dtype="auto" if cfg.dtype == "float32" else cfg.dtype, **kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.context_window = int(self.llm.llm_engine.model_config.max_model_len)
        self._lock = threading.Lock()

    def generate(self, prompts: list[Prompt], sampling: SamplingConfig) -> list[Generation]:
        lora = _lora_request(self.cfg)
        # token ids, not text: vLLM would add a second BOS to a template that writes one
        ids = [{"prompt_token_ids": self.prompt_ids(p)} for p in prompts]
        with self._lock:
            start = time.perf_counter()
            outputs = self.llm.generate(ids, _params(sampling), lora_request=lora, use_tqdm=False)
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


class VLLMAsyncGenerator(_VLLMTokens):
    """vLLM's async engine (``AsyncLLM``) for serving: continuous batching across requests.

    The engine lives on its own event loop in a background thread, so the synchronous
    ``Generator`` calls (``generate``, ``stream``) can come from any thread, and several batches
    from concurrent server requests run through the engine at once instead of queueing behind
    each other. Each request is timed on its own: time to first token is the moment its first
    output token arrived, not the batch's wall time.
    """

    name = "vllm-async"

    def __init__(self, cfg: GeneratorConfig) -> None:
        path = _model_path(cfg, self.name)
        from transformers import AutoTokenizer
        from vllm.engine.arg_utils import AsyncEngineArgs

        self.cfg = cfg
        args = AsyncEngineArgs(
            model=path,
            dtype="auto" if cfg.dtype == "float32" else cfg.dtype,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            load_format=cfg.load_format,
            max_model_len=cfg.max_model_len,
            max_num_seqs=cfg.max_num_seqs,
            enable_lora=bool(cfg.adapter),
            max_lora_rank=64,
        )
        from vllm.v1.engine.async_llm import AsyncLLM

        self.tokenizer = AutoTokenizer.from_pretrained(path)
        # Built in the calling thread (vLLM installs signal handlers, which only the main thread
        # may do); its output handler starts on the background loop with the first request.
        self.engine = AsyncLLM.from_engine_args(args)
        self.context_window = int(self.engine.model_config.max_model_len)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="vllm-async", daemon=True
        )
        self._thread.start()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _deltas(self, prompt: Prompt, sampling: SamplingConfig) -> AsyncIterator[Any]:
        """The request's cumulative outputs as the engine produces them."""
        ids = {"prompt_token_ids": self.prompt_ids(prompt)}  # no second BOS (see generate)
        async for output in self.engine.generate(
            ids, _params(sampling), uuid.uuid4().hex, lora_request=_lora_request(self.cfg)
        ):
            yield output

    async def _one(self, prompt: Prompt, sampling: SamplingConfig) -> Generation:
        start = time.perf_counter()
        first: float | None = None
        final = None
        async for output in self._deltas(prompt, sampling):
            if first is None and output.outputs and output.outputs[0].token_ids:
                first = time.perf_counter() - start
            final = output
        wall = time.perf_counter() - start
        assert final is not None, "vLLM finished a request without output"
        completion = final.outputs[0]
        return Generation(
            completion.text.strip(),
            len(final.prompt_token_ids or []),
            len(completion.token_ids),
            first if first is not None else wall,
            wall,
            "stop" if completion.finish_reason == "stop" else "length",
        )

    async def _many(self, prompts: list[Prompt], sampling: SamplingConfig) -> list[Generation]:
        return list(await asyncio.gather(*(self._one(p, sampling) for p in prompts)))

    def generate(self, prompts: list[Prompt], sampling: SamplingConfig) -> list[Generation]:
        return list(self._call(self._many(prompts, sampling)))

    def stream(self, prompt: Prompt, sampling: SamplingConfig) -> Iterator[str]:
        pieces: queue.Queue[str | BaseException | None] = queue.Queue()

        async def pump() -> None:
            emitted = ""
            try:
                async for output in self._deltas(prompt, sampling):
                    text = output.outputs[0].text
                    if len(text) > len(emitted):
                        pieces.put(text[len(emitted) :])
                        emitted = text
            except BaseException as err:  # surfaced to the reader below
                pieces.put(err)
            pieces.put(None)

        task = asyncio.run_coroutine_threadsafe(pump(), self._loop)
        try:
            while (piece := pieces.get()) is not None:
                if isinstance(piece, BaseException):
                    raise piece
                yield piece
        finally:
            # A reader that leaves early (a closed connection, the next question) cancels the
            # pump; vLLM's generate() aborts a cancelled request, so the engine stops decoding it.
            task.cancel()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self.engine.shutdown)
        self._loop.call_soon_threadsafe(self._loop.stop)
