"""``--generator.backend fast``: the project's own decode path (:mod:`pmpprag.fast`) as a back-end.

A transformers model (registry name, folder or hub id; a LoRA adapter is merged first, since the
fast decoder runs plain weights) is copied into :class:`~pmpprag.fast.engine.FastEngine`: a
slotted static KV cache, the decode step captured as a CUDA graph, Triton kernels, continuous
batching. On the GPU it runs bf16 (``--generator.dtype bfloat16``); on the CPU the same code runs
eagerly with PyTorch ops (tests, smoke runs). Greedy decoding only: a request with a temperature
is refused. ``stream`` yields the finished text at once (the engine hands tokens to the host
every ``sync_every`` steps, not one by one).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

from pmpprag import models
from pmpprag.generation.base import (
    CannotScore,
    Generation,
    GeneratorConfig,
    Prompt,
    SamplingConfig,
    truncate_at_stop,
)
from pmpprag.generation.prompt import prompt_token_ids

logger = logging.getLogger(__name__)

__all__ = ["FastGenerator"]


def _fitting_slots(config: Any, wanted: int, length: int, device: str, dtype: Any) -> int:
    """KV-cache slots: ``wanted``, or fewer where the cache would take over half the free
    memory of the device (each slot holds ``length`` positions of every layer's keys and
    values)."""
    import torch

    from pmpprag.fast.model import DecoderSpec

    size = torch.empty(0, dtype=dtype).element_size()
    per_slot = DecoderSpec.from_config(config).kv_slot_bytes(length, size)
    if str(device).startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
    else:
        import psutil

        free = psutil.virtual_memory().available
    fits = max(1, int(free * 0.5 // per_slot))
    if fits < wanted:
        logger.warning("fast: %d KV-cache slots of %d positions fit in half the free memory "
                       "(%.1f GiB); using %d, not --generator.max_num_seqs %d",
                       fits, length, free / 2**30, fits, wanted)  # fmt: skip
    return min(wanted, fits)


class FastGenerator:
    name = "fast"

    def __init__(self, cfg: GeneratorConfig, max_len: int = 4096) -> None:
        import torch

        from pmpprag.fast.engine import FastEngine

        self.cfg = cfg
        model, self.tokenizer = models.load_causal_lm(cfg.model, device="cpu", dtype=cfg.dtype)
        if cfg.adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, cfg.adapter).merge_and_unload()
        self.context_window = int(getattr(model.config, "max_position_embeddings", 2048))
        length = min(max_len, self.context_window)
        dtype = getattr(torch, cfg.dtype)
        slots = _fitting_slots(model.config, cfg.max_num_seqs, length, cfg.device, dtype)
        self.engine = FastEngine.from_model(model, slots, length, device=cfg.device, dtype=dtype)
        self.engine.capture_all()  # CUDA graphs for every batch size now, not mid-request
        self.eos = self.tokenizer.eos_token_id
        self._lock = threading.Lock()  # one engine call at a time: it owns the cache slots

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        """The ids the model reads for ``prompt`` (the one chat template, no extra BOS)."""
        return prompt_token_ids(self.tokenizer, prompt)

    def score(self, prompts: list[Prompt], continuations: list[str]) -> list[float]:
        raise CannotScore(self.name)

    def generate(self, prompts: list[Prompt], sampling: SamplingConfig) -> list[Generation]:
        if sampling.temperature > 0:
            raise ValueError("the fast back-end decodes greedily: use --sampling.temperature 0")
        ids = [self.prompt_ids(p) for p in prompts]
        with self._lock:
            result = self.engine.generate(ids, sampling.max_new_tokens, self.eos)
        out = []
        for prompt_ids, tokens, ttft in zip(ids, result.tokens, result.ttft_s, strict=True):
            ended = bool(tokens) and tokens[-1] == self.eos
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            text, stopped = truncate_at_stop(text, sampling.stop)
            out.append(
                Generation(
                    text=text.strip(),
                    prompt_tokens=len(prompt_ids),
                    completion_tokens=len(tokens),
                    ttft_s=ttft,
                    wall_s=result.total_s,
                    finish_reason="stop" if ended or stopped else "length",
                    extra={"decode_steps": result.decode_steps},
                )
            )
        return out

    def stream(self, prompt: Prompt, sampling: SamplingConfig) -> Iterator[str]:
        yield self.generate([prompt], sampling)[0].text
