"""The back-end registry: ``--generator.backend NAME`` -> a loaded :class:`Generator`.

Each back-end lives in its own module and is imported only when chosen, so that
``import pmpprag.generation`` stays light (no torch, vLLM or CTranslate2 at import time).
"""

from __future__ import annotations

import logging
import time

from pmpprag.generation.base import Generator, GeneratorConfig

logger = logging.getLogger(__name__)

__all__ = ["GENERATORS", "load_generator"]


def _transformers(cfg: GeneratorConfig) -> Generator:
    from pmpprag.generation.hf import TransformersGenerator

    return TransformersGenerator(cfg)


def _ctranslate2(cfg: GeneratorConfig) -> Generator:
    from pmpprag.generation.ct2 import CT2Generator

    return CT2Generator(cfg)


def _openai(cfg: GeneratorConfig) -> Generator:
    from pmpprag.generation.openai_client import OpenAIGenerator

    return OpenAIGenerator(cfg)


def _vllm(cfg: GeneratorConfig) -> Generator:
    from pmpprag.generation.vllm_engine import VLLMGenerator

    return VLLMGenerator(cfg)


def _vllm_async(cfg: GeneratorConfig) -> Generator:
    from pmpprag.generation.vllm_engine import VLLMAsyncGenerator

    return VLLMAsyncGenerator(cfg)


def _fast(cfg: GeneratorConfig) -> Generator:
    from pmpprag.generation.fast_backend import FastGenerator

    return FastGenerator(cfg)


GENERATORS = {
    "ctranslate2": _ctranslate2,
    "transformers": _transformers,
    "openai": _openai,
    "vllm": _vllm,
    "vllm-async": _vllm_async,
    "fast": _fast,
}


def load_generator(cfg: GeneratorConfig) -> Generator:
    """Instantiate the configured back-end (heavy imports happen here, not at import time)."""
    if cfg.backend not in GENERATORS:
        raise ValueError(
            f"--generator.backend {cfg.backend!r}: choose one of {', '.join(GENERATORS)}"
        )
    started = time.perf_counter()
    generator = GENERATORS[cfg.backend](cfg)
    logger.info(
        "loaded %s generator for %s in %.1f s",
        cfg.backend,
        cfg.model,
        time.perf_counter() - started,
    )
    return generator
