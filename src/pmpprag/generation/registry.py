"""The back-end registry: ``--generator.backend NAME`` -> a loaded :class:`Generator`.

Each back-end lives in its own module and is imported only when chosen, so that
``import pmpprag.generation`` stays light (no torch, vLLM or CTranslate2 at import time).
"""

from __future__ import annotations

import importlib
import logging
import time

from pmpprag.generation.base import Generator, GeneratorConfig

logger = logging.getLogger(__name__)

__all__ = ["GENERATORS", "load_generator"]


# backend name -> (module under pmpprag.generation, class), imported only when chosen
GENERATORS: dict[str, tuple[str, str]] = {
    "ctranslate2": ("ct2", "CT2Generator"),
    "transformers": ("hf", "TransformersGenerator"),
    "openai": ("openai_client", "OpenAIGenerator"),
    "vllm": ("vllm_engine", "VLLMGenerator"),
    "vllm-async": ("vllm_engine", "VLLMAsyncGenerator"),
    "fast": ("fast_backend", "FastGenerator"),
}


def load_generator(cfg: GeneratorConfig) -> Generator:
    """Instantiate the configured back-end (heavy imports happen here, not at import time)."""
    if cfg.backend not in GENERATORS:
        raise ValueError(
            f"--generator.backend {cfg.backend!r}: choose one of {', '.join(GENERATORS)}"
        )
    if cfg.backend not in ("transformers", "openai"):
        _refuse_trimmed(cfg)
    started = time.perf_counter()
    module, name = GENERATORS[cfg.backend]
    generator: Generator = getattr(importlib.import_module(f"pmpprag.generation.{module}"), name)(
        cfg
    )
    logger.info(
        "loaded %s generator for %s in %.1f s",
        cfg.backend,
        cfg.model,
        time.perf_counter() - started,
    )
    return generator


def _refuse_trimmed(cfg: GeneratorConfig) -> None:
    """A trimmed-vocabulary model reads remapped ids, which only the transformers back-end
    writes: any other back-end would feed it the tokenizer's ids and print garbage."""
    from pathlib import Path

    from pmpprag.generation.vocab import MAP_FILE

    if (Path(cfg.model).expanduser() / MAP_FILE).is_file():
        raise ValueError(
            f"{cfg.model} has a trimmed vocabulary ({MAP_FILE}): only "
            "--generator.backend transformers maps its ids; choose it, or use the full model"
        )
