"""GPU back-ends for real (run on the H200: ../shared/H200.md); skipped without CUDA.

The GPU machine has no model weights, so the model is SmolLM2-135M's architecture with random
weights (vLLM ``load_format="dummy"``), built by the vLLM kit's smoke.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from conftest import start_server
from pmpprag.generation import GeneratorConfig, SamplingConfig, load_generator

pytestmark = pytest.mark.gpu
SMOKE = Path("/root/vk/smoke.py")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SMOKE.is_file():
        pytest.skip("needs the vLLM kit (/root/vk) on the GPU machine")
    path = tmp_path_factory.mktemp("tiny-llama")
    subprocess.run(
        [sys.executable, str(SMOKE), "--make-only", "--model-dir", str(path)], check=True
    )
    return path


def test_vllm_generator_batches_with_exact_lengths(model_dir: Path) -> None:
    cfg = GeneratorConfig(backend="vllm", model=str(model_dir), dtype="bfloat16", load_format="dummy",
                          gpu_memory_utilization=0.3)  # fmt: skip
    generator = load_generator(cfg)
    prompts = [[{"role": "user", "content": f"question {i}: what is a warp?"}] for i in range(8)]
    out = generator.generate(prompts, SamplingConfig(max_new_tokens=16, min_new_tokens=16))  # type: ignore[arg-type]
    assert len(out) == 8
    assert all(
        g.completion_tokens == 16 and g.prompt_tokens > 5 and 0 < g.ttft_s <= g.wall_s for g in out
    )
    again = generator.generate(prompts[:2], SamplingConfig(max_new_tokens=16, min_new_tokens=16))  # type: ignore[arg-type]
    assert [g.text for g in again] == [g.text for g in out[:2]]  # greedy is deterministic


def test_vllm_async_times_each_request_and_overlaps_batches(model_dir: Path) -> None:
    cfg = GeneratorConfig(backend="vllm-async", model=str(model_dir), dtype="bfloat16",
                          load_format="dummy", gpu_memory_utilization=0.3)  # fmt: skip
    generator = load_generator(cfg)
    sampling = SamplingConfig(max_new_tokens=32, min_new_tokens=32)
    prompts = [[{"role": "user", "content": f"question {i}: what is a warp?"}] for i in range(8)]
    out = generator.generate(prompts, sampling)  # type: ignore[arg-type]
    assert all(g.completion_tokens == 32 and 0 < g.ttft_s < g.wall_s for g in out)
    # two batches from two threads share the engine: together barely slower than one alone
    started = time.perf_counter()
    generator.generate(prompts, sampling)  # type: ignore[arg-type]
    alone = time.perf_counter() - started
    with ThreadPoolExecutor(2) as pool:
        started = time.perf_counter()
        both = list(pool.map(lambda _: generator.generate(prompts, sampling), range(2)))  # type: ignore[arg-type]
        together = time.perf_counter() - started
    assert [g.text for g in both[0]] == [g.text for g in out]  # greedy is deterministic
    assert together < 1.6 * alone, (together, alone)
    pieces = list(generator.stream(prompts[0], sampling))  # type: ignore[arg-type]
    assert len(pieces) > 1 and "".join(pieces).strip() == out[0].text
    generator.close()  # type: ignore[attr-defined]


def test_server_on_vllm_async_answers_50_concurrent_requests(
    model_dir: Path, tmp_path: Path
) -> None:
    args = ["--no-rag", "--generator.backend", "vllm-async", "--generator.model", str(model_dir),
            "--generator.load_format", "dummy", "--generator.dtype", "bfloat16",
            "--generator.gpu_memory_utilization", "0.3", "--sampling.max_new_tokens", "32"]  # fmt: skip
    server = start_server(args, tmp_path)
    url = next(server)
    questions = [f"question {i}: what is shared memory?" for i in range(50)]
    try:
        with ThreadPoolExecutor(50) as pool:
            replies = list(
                pool.map(
                    lambda q: httpx.post(url + "/predict", json={"prompt": q}, timeout=120),
                    questions,
                )
            )
    finally:
        server.close()  # stops the server
    assert [r.status_code for r in replies] == [200] * 50
    assert all(isinstance(r.json()["response"], str) for r in replies)


QUESTIONS = [
    "What does __syncthreads() do?",
    "How many warps does a block of 256 threads form?",
    "Why does tiling reduce global memory traffic in matrix multiplication?",
    "What is control divergence?",
]


@pytest.fixture(scope="module")
def real_model_and_adapter() -> tuple[str, Path]:
    """SmolLM2-135M's real weights and an adapter trained by `pmpprag train` (shipped over)."""
    from pmpprag import models

    adapter = Path(os.environ.get("PMPPRAG_TEST_ADAPTER", "out/train/sft/adapter"))
    if not (adapter / "adapter_config.json").is_file():
        pytest.skip(f"needs a trained adapter at {adapter} (PMPPRAG_TEST_ADAPTER)")
    try:
        model = models.resolve("smollm2-135m-instruct").path_or_id
    except models.ModelError as err:
        pytest.skip(f"needs SmolLM2's weights: {err}")
    return model, adapter


def test_vllm_applies_a_trained_lora_adapter_like_transformers(
    real_model_and_adapter: tuple[str, Path],
) -> None:
    model, adapter = real_model_and_adapter
    prompts = [[{"role": "user", "content": q}] for q in QUESTIONS]
    sampling = SamplingConfig(max_new_tokens=24)

    def texts(backend: str, with_adapter: bool) -> list[str]:
        cfg = GeneratorConfig(backend=backend, model=model, dtype="bfloat16", device="cuda",  # type: ignore[arg-type]
                              adapter=str(adapter) if with_adapter else None,
                              gpu_memory_utilization=0.3)  # fmt: skip
        generator = load_generator(cfg)
        out = [g.text for g in generator.generate(prompts, sampling)]  # type: ignore[arg-type]
        if hasattr(generator, "close"):
            generator.close()
        return out

    tuned = texts("vllm", True)
    reference = texts("transformers", True)
    plain = texts("transformers", False)
    # bf16 kernels differ between the engines, so greedy texts may part after a few words
    agree = sum(a.split()[:4] == b.split()[:4] for a, b in zip(tuned, reference, strict=True))
    assert agree >= 3, list(zip(tuned, reference, strict=True))
    assert tuned != plain  # the adapter changes what vLLM writes
