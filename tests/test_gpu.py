"""GPU back-ends for real (run on the H200: ../shared/H200.md); skipped without CUDA.

The GPU machine has no model weights, so the model is SmolLM2-135M's architecture with random
weights (vLLM ``load_format="dummy"``), built by the vLLM kit's smoke.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pmpprag.serve import GeneratorConfig, SamplingConfig, load_generator

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
