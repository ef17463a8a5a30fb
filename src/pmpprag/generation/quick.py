"""``pmpprag generate "prompt"``: one completion from any back-end, with its speed.

pmpprag generate "What is a warp?" [--generator.backend transformers] [--sampling.max_new_tokens 64]
"""

from __future__ import annotations

from dataclasses import dataclass

from pmpprag.config import option
from pmpprag.generation import Generation, GeneratorConfig, SamplingConfig, load_generator

__all__ = ["GenerateConfig", "run"]


@dataclass
class GenerateConfig:
    prompt: str = option("", "the user message")
    raw: bool = option(False, "send the prompt as raw text, without the chat template")
    generator: GeneratorConfig = option(default_factory=GeneratorConfig, help="back-end")
    sampling: SamplingConfig = option(default_factory=SamplingConfig, help="decoding")


def run(cfg: GenerateConfig) -> Generation:
    if not cfg.prompt.strip():
        raise ValueError('give a prompt: pmpprag generate "What is a warp?"')
    generator = load_generator(cfg.generator)
    prompt = cfg.prompt if cfg.raw else [{"role": "user", "content": cfg.prompt}]
    result = generator.generate([prompt], cfg.sampling)[0]
    print(result.text)
    print(
        f"\n[{generator.name} {cfg.generator.model}] {result.prompt_tokens} prompt + "
        f"{result.completion_tokens} new tokens in {result.wall_s:.2f} s = {result.tokens_per_s:.1f} tokens/s "
        f"(first token after {result.ttft_s:.2f} s, finish: {result.finish_reason})"
    )
    return result
