"""The `fast` generation back-end: our own GPU decode path (issue #18).

A static slotted KV cache, the whole decode step captured in one CUDA graph per batch-size
bucket, and Triton kernels where fusion removes memory traffic or launches (kernels.py), for
Llama (SmolLM2), Qwen2, Qwen3 and Gemma 3 decoders (model.py). FastEngine (engine.py) adds
greedy sampling and continuous batching. On the CPU everything runs through PyTorch fallbacks,
which is how tests check greedy equality with transformers without a GPU.
"""

from pmpprag.fast.engine import FastEngine, GenerateResult
from pmpprag.fast.model import DecoderSpec, FastDecoder

__all__ = ["DecoderSpec", "FastDecoder", "FastEngine", "GenerateResult"]
