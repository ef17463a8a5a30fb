"""The CTranslate2 back-end: int8 decoding on CPU, ~3x transformers fp32 on 2 cores.

The Hugging Face model (with a LoRA adapter merged in, if one is given) is converted once into
``<model cache>/ct2/<name>-<compute type>-<hash>/`` through ``schema.atomic_folder``, so an
interrupted conversion is redone rather than half-used.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pmpprag import models
from pmpprag.generation.base import (
    Generation,
    GeneratorConfig,
    Prompt,
    SamplingConfig,
    Timer,
    truncate_at_stop,
)
from pmpprag.generation.merge import merge_adapter
from pmpprag.generation.prompt import prompt_token_ids
from pmpprag.schema import atomic_folder

logger = logging.getLogger(__name__)

__all__ = ["CT2Generator", "convert"]


def _fingerprint(*folders: str | None) -> str:
    h = hashlib.sha256()
    for folder in folders:
        if not folder:
            continue
        path = Path(folder)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
        for f in files:
            h.update(f.name.encode())
            h.update(str(f.stat().st_size).encode())
            h.update(str(int(f.stat().st_mtime)).encode())
        if not files:
            h.update(str(folder).encode())
    return h.hexdigest()[:12]


def convert(cfg: GeneratorConfig) -> tuple[Path, str]:
    """The converted model folder for ``cfg`` and the HF folder its tokenizer comes from."""
    import ctranslate2

    source = models.resolve(cfg.model, kind="causal-lm").path_or_id
    name = Path(cfg.model).name if Path(cfg.model).exists() else cfg.model.replace("/", "--")
    target = (
        models.cache_dir()
        / "ct2"
        / f"{name}-{cfg.compute_type}-{_fingerprint(source, cfg.adapter)}"
    )
    if (target / "model.bin").is_file():
        return target, source
    with atomic_folder(target, replace=False) as out, tempfile.TemporaryDirectory() as work:
        model_dir = source
        if cfg.adapter:
            model_dir = str(merge_adapter(source, cfg.adapter, Path(work) / "merged"))
        logger.info(
            "converting %s to CTranslate2 %s in %s (once)", cfg.model, cfg.compute_type, target
        )
        ctranslate2.converters.TransformersConverter(model_dir).convert(
            str(out), quantization=cfg.compute_type, force=True
        )
    return target, source


class CT2Generator:
    name = "ctranslate2"

    def __init__(self, cfg: GeneratorConfig) -> None:
        import ctranslate2
        from transformers import AutoConfig, AutoTokenizer

        self.cfg = cfg
        folder, source = convert(cfg)
        self.tokenizer = AutoTokenizer.from_pretrained(source)
        # One thread per worker and one worker per core measured fastest on 2 cores: batch 1
        # 32 tok/s vs 18 with both cores on one batch, batch 32 176 vs 122 (a quick isolated
        # check; benchmarks/generate.py gives the README's numbers).
        self.workers = cfg.workers or len(os.sched_getaffinity(0))
        self.model = ctranslate2.Generator(
            str(folder),
            device=cfg.device,
            compute_type=cfg.compute_type,
            intra_threads=max(1, cfg.threads),
            inter_threads=self.workers,
        )
        self.context_window = int(
            getattr(AutoConfig.from_pretrained(source), "max_position_embeddings", 2048)
        )
        self.end_token = self.tokenizer.eos_token
        self._lock = threading.Lock()

    def _sub_batch(self, n: int) -> int:
        """Sequences per sub-batch so that the workers share ``n`` evenly (ceil(n / workers))."""
        return -(-n // self.workers)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        """The ids the model reads for ``prompt`` (the one chat template, no extra BOS)."""
        return prompt_token_ids(self.tokenizer, prompt)

    def _tokens(self, prompt: Prompt) -> list[str]:
        return list(self.tokenizer.convert_ids_to_tokens(self.prompt_ids(prompt)))

    def _options(self, sampling: SamplingConfig) -> dict[str, Any]:
        options: dict[str, Any] = {
            "max_length": sampling.max_new_tokens,
            "include_prompt_in_result": False,
            "end_token": self.end_token,
            "min_length": sampling.min_new_tokens,
            "repetition_penalty": sampling.repetition_penalty,
        }
        if sampling.temperature > 0:
            options.update(
                sampling_topk=0,
                sampling_topp=sampling.top_p,
                sampling_temperature=sampling.temperature,
            )
        else:
            options.update(sampling_topk=1)
        return options

    def generate(self, prompts: list[Prompt], sampling: SamplingConfig) -> list[Generation]:
        import ctranslate2

        batch = [self._tokens(p) for p in prompts]
        with self._lock:
            ctranslate2.set_random_seed(sampling.seed)
            timer = Timer()

            def on_step(step: Any) -> bool:
                timer.mark_first()
                return False  # keep going

            # the sub-batches run on the workers in parallel
            results = self.model.generate_batch(
                batch,
                callback=on_step,
                max_batch_size=self._sub_batch(len(batch)),
                **self._options(sampling),
            )
            wall = timer.elapsed
        out = []
        for tokens, result in zip(batch, results, strict=True):
            ids = result.sequences_ids[0]
            decoded = str(self.tokenizer.decode(ids, skip_special_tokens=True))
            text, stopped = truncate_at_stop(decoded, sampling.stop)
            ended = len(ids) < sampling.max_new_tokens or stopped
            out.append(
                Generation(
                    text.strip(),
                    len(tokens),
                    len(ids),
                    timer.first or wall,
                    wall,
                    "stop" if ended else "length",
                )
            )
        return out

    def score(self, prompts: list[Prompt], continuations: list[str]) -> list[float]:
        """Mean log-probability per token of each continuation after its prompt."""
        batch, lengths = [], []
        for prompt, continuation in zip(prompts, continuations, strict=True):
            cont = self.tokenizer.convert_ids_to_tokens(
                self.tokenizer(continuation, add_special_tokens=False)["input_ids"]
            )
            batch.append(self._tokens(prompt) + list(cont))
            lengths.append(max(1, len(cont)))
        with self._lock:
            results = self.model.score_batch(batch, max_batch_size=self._sub_batch(len(batch)))
        return [float(sum(r.log_probs[-n:]) / n) for r, n in zip(results, lengths, strict=True)]

    def stream(self, prompt: Prompt, sampling: SamplingConfig) -> Iterator[str]:
        options = self._options(sampling)
        options.pop("include_prompt_in_result")
        ids: list[int] = []
        emitted = ""
        with self._lock:
            for step in self.model.generate_tokens(self._tokens(prompt), **options):
                ids.append(step.token_id)
                text = str(self.tokenizer.decode(ids, skip_special_tokens=True))
                cut, stopped = truncate_at_stop(text, sampling.stop)
                if len(cut) > len(emitted):
                    yield cut[len(emitted) :]
                    emitted = cut
                if stopped:
                    break
