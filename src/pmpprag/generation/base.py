"""One generation layer for RAG answers, QA generation, DPO mining and evaluation.

A back-end is a :class:`Generator`: it takes chat messages (or raw text) in batches and returns
:class:`Generation` records that carry the text and the measurements every caller reports the
same way: prompt and completion tokens (counted by the model's own tokenizer, or by the server's
usage report), time to first token, and wall time.

Back-ends (``GENERATORS``), chosen with ``--generator.backend``:

- ``ctranslate2``: the CPU-fast default. The model is converted once to int8 into the model
  cache; one thread per worker, one worker per core, a batch split across the workers.
  ``benchmarks/generate.py`` on a 2-core CPU with SmolLM2-135M: 29.5 tokens/s at batch 1 and
  154.8 at batch 32, against 10.7 and 76.4 for transformers fp32.
- ``transformers``: CPU or GPU, batched with left padding, any registry name, folder or hub id,
  optionally with a LoRA adapter; streaming for the app.
- ``openai``: any OpenAI-compatible server (vLLM, SGLang, llama.cpp, hosted APIs).
- ``vllm``: the offline vLLM engine on a GPU (``pip install 'pmpprag[gpu]'``), for batch work.
- ``vllm-async``: vLLM's async engine for serving (continuous batching across requests,
  per-request time to first token).
- ``fast``: the project's own decode path (:mod:`pmpprag.fast`: static KV cache, CUDA graphs,
  Triton kernels, continuous batching), greedy, for Llama/Qwen2/Qwen3/Gemma 3 models.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pmpprag.config import option
from pmpprag.errors import PmppragError

logger = logging.getLogger(__name__)

__all__ = [
    "CannotScore",
    "Generation",
    "Generator",
    "GeneratorConfig",
    "Messages",
    "Prompt",
    "SamplingConfig",
    "Timer",
    "truncate_at_stop",
]

Messages = list[dict[str, str]]  # [{"role": "user", "content": "..."}]
Prompt = Messages | str  # chat messages, or raw text sent without a chat template


@dataclass
class SamplingConfig:
    max_new_tokens: int = option(128, "tokens to generate at most")
    temperature: float = option(0.0, "0 means greedy decoding")
    top_p: float = option(1.0, "nucleus sampling mass (with temperature > 0)")
    stop: list[str] = option([], "strings that end the generation (not included in the text)")
    seed: int = option(0, "sampling seed")
    repetition_penalty: float = option(
        1.0,
        "> 1 discourages tokens already in the prompt or reply (1 = off; README: it ends SmolLM2's loops but costs accuracy)",
    )
    min_new_tokens: int = option(
        0, "generate at least this many tokens (benchmarks: fixed lengths)"
    )
    no_repeat_ngram: int = option(
        0,
        "forbid the reply to repeat any of its own N-token runs (0 = off; transformers only; "
        "the prompt's passages may still be copied)",
    )
    stop_on_repeat: int = option(
        0,
        "end a reply once it repeats a run of this many characters of itself (0 = off; the "
        "transformers back-end stops there, the others finish the reply; auto mode sets it "
        "to its loop_span, since such a reply is replaced anyway)",
    )

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError("--sampling.max_new_tokens must be at least 1")
        if self.temperature < 0:
            raise ValueError("--sampling.temperature must be >= 0")
        if self.repetition_penalty <= 0:
            raise ValueError("--sampling.repetition_penalty must be > 0 (1 = off)")
        if self.no_repeat_ngram < 0 or self.no_repeat_ngram == 1:
            raise ValueError("--sampling.no_repeat_ngram must be 0 (off) or at least 2")
        if self.stop_on_repeat < 0:
            raise ValueError("--sampling.stop_on_repeat must be >= 0 (0 = off)")


@dataclass
class GeneratorConfig:
    backend: Literal["ctranslate2", "transformers", "openai", "vllm", "vllm-async", "fast"] = (
        option("ctranslate2", "generation back-end")
    )
    model: str = option(
        "smollm2-135m-instruct", "registry name, local folder, hub id, or served model name"
    )
    adapter: str | None = option(
        None, "LoRA adapter folder (transformers/vllm; merged for ctranslate2)"
    )
    device: str = option("cpu", "cpu or cuda (transformers, ctranslate2)")
    dtype: str = option("float32", "transformers weights dtype: float32, bfloat16, float16")
    compute_type: str = option("int8", "ctranslate2 compute type: int8, int8_float32, float32")
    threads: int = option(1, "ctranslate2 threads per worker (1 measured fastest on 2 cores)")
    workers: int = option(0, "ctranslate2 workers that decode sub-batches in parallel (0: cores)")
    base_url: str | None = option(None, "openai: server URL (or env PMPPRAG_OPENAI_BASE_URL)")
    api_key: str | None = option(None, "openai: key (better: env PMPPRAG_OPENAI_API_KEY)")
    timeout_s: float = option(120.0, "openai: per-request timeout")
    max_retries: int = option(3, "openai: retries with exponential backoff")
    concurrency: int = option(8, "openai: requests in flight at once")
    gpu_memory_utilization: float = option(0.85, "vllm: fraction of GPU memory to use")
    max_model_len: int | None = option(None, "vllm: context length (default: the model's)")
    max_num_seqs: int = option(
        256, "vllm, fast: sequences decoded at once (fast: KV-cache slots of max length each)"
    )
    load_format: str = option("auto", "vllm: 'dummy' = random weights, for speed benchmarks only")


@dataclass
class Generation:
    """One completion and how it was made."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float  # time to first token
    wall_s: float  # whole request (the batch it ran in)
    finish_reason: str = "length"  # "stop" (end of sequence or stop string) or "length"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.wall_s if self.wall_s > 0 else 0.0


class Generator(Protocol):
    """What every back-end offers."""

    name: str
    context_window: int

    def generate(self, prompts: list[Prompt], sampling: SamplingConfig) -> list[Generation]:
        """Complete a batch of prompts (one forward pass per step for the whole batch)."""
        ...

    def stream(self, prompt: Prompt, sampling: SamplingConfig) -> Iterator[str]:
        """Yield text pieces of one completion as they are decoded."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` under this model's tokenizer."""
        ...

    def score(self, prompts: list[Prompt], continuations: list[str]) -> list[float]:
        """Mean log-probability per token of each continuation as the reply to its prompt (the
        MCQ ``loglik`` method). A back-end that cannot score raises :class:`CannotScore`."""
        ...


class CannotScore(PmppragError):
    """The back-end generates text but cannot score given text (a remote server, vLLM)."""

    def __init__(self, backend: str) -> None:
        super().__init__(
            f"the {backend} back-end cannot score text, which the MCQ loglik/combined methods "
            "need: use --generator.backend ctranslate2 or transformers, or --mcq_method evidence"
        )


def truncate_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """Cut ``text`` at the first stop string; report whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class Timer:
    """Records the first-token moment of a batch relative to its start."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first: float | None = None

    def mark_first(self) -> None:
        if self.first is None:
            self.first = time.perf_counter() - self.start

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start
