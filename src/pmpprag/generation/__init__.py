"""Generation: one protocol over every back-end (transformers, CTranslate2, vLLM, OpenAI API).

Layer 2: used by rag, qagen, eval and serve; imports only schema/config/models/text. A back-end
module is imported when it is chosen (:func:`load_generator`), never at package import.
"""

from pmpprag.generation.base import (
    CannotScore,
    Generation,
    Generator,
    GeneratorConfig,
    Messages,
    Prompt,
    SamplingConfig,
    truncate_at_stop,
)
from pmpprag.generation.registry import GENERATORS, load_generator

__all__ = [
    "GENERATORS",
    "CannotScore",
    "Generation",
    "Generator",
    "GeneratorConfig",
    "Messages",
    "Prompt",
    "SamplingConfig",
    "load_generator",
    "truncate_at_stop",
]
