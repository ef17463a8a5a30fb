"""Generation back-ends and the HTTP server (OpenAI API + the course grading contract)."""

from pmpprag.serve.generation import (
    GENERATORS,
    Generation,
    Generator,
    GeneratorConfig,
    SamplingConfig,
    load_generator,
)

__all__ = [
    "GENERATORS",
    "Generation",
    "Generator",
    "GeneratorConfig",
    "SamplingConfig",
    "load_generator",
]
