"""Greedy generation speed on one GPU: transformers (eager; static cache + torch.compile), vLLM
and pmpprag's own `fast` decode path (src/pmpprag/fast), same workloads, one command.

    # on the GPU machine (vLLM rows only where the vLLM kit is installed: ../shared/H200.md);
    # the script puts src/ on sys.path itself, so env.sh's PYTHONPATH stays as it is
    [source /root/vk/env.sh &&] python3 benchmarks/gpu_generate.py --out $OUT [--models NAME ...]
    python3 benchmarks/gpu_generate.py --quick --out $OUT             # a short smoke run
    .venv/bin/python benchmarks/gpu_generate.py --cpu-smoke --out /tmp/g  # plumbing, on a CPU

One model with every engine takes a few minutes (vLLM's start and transformers' static-cache
compile dominate): pass --models to split a full run over several commands (--tag keeps files apart).

Model architectures are written below (SmolLM2-135M, gemma-3-270m, Qwen3-0.6B, Qwen2.5-1.5B)
with RANDOM bf16 weights: decode speed does not depend on weight values (no weights ship to the
GPU machine), and every sequence generates exactly the requested number of new tokens (no EOS).
For each model shape the script also checks greedy equality of `fast` against transformers on
the GPU: float32 (exact equality expected: same math, fp32 rounding only) and bf16 (reported as
the share of identical tokens: bf16 GEMMs of different shapes round differently, so long greedy
runs may part after a near-tie).

Also measured in the same call: device-to-device copy bandwidth (a 1 GiB copy), from which each
row gets the memory-bandwidth bound of its decode (weights + KV cache read once per step) and the
fraction of it reached; and one micro-benchmark row per Triton kernel (time inside a CUDA graph,
bytes moved, GB/s against the copy bandwidth, and the unfused PyTorch ops it replaces).

One engine failing never stops the run: its error goes into the table and the JSON
(benchmarks/results/gpu_generate.json, or --out), which is rewritten after every model.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import gc
import importlib.metadata as md
import itertools
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

os.environ.setdefault("TRITON_INTERPRET", "0")
os.environ.setdefault("VLLM_USE_FLASHINFER_SAMPLER", "0")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

# Architectures as published (config.json of each model), random weights.
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "smollm2-135m": ("llama", dict(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, head_dim=64, rms_norm_eps=1e-5,
        max_position_embeddings=8192, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 100000.0})),
    "gemma-3-270m": ("gemma3_text", dict(
        vocab_size=262144, hidden_size=640, intermediate_size=2048, num_hidden_layers=18,
        num_attention_heads=4, num_key_value_heads=1, head_dim=256, query_pre_attn_scalar=256,
        sliding_window=512, rms_norm_eps=1e-6, max_position_embeddings=32768,
        tie_word_embeddings=True, hidden_activation="gelu_pytorch_tanh",
        layer_types=(["sliding_attention"] * 5 + ["full_attention"]) * 3,
        rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1e6},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}})),
    "qwen3-0.6b": ("qwen3", dict(
        vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
        num_attention_heads=16, num_key_value_heads=8, head_dim=128, rms_norm_eps=1e-6,
        max_position_embeddings=40960, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6})),
    "qwen2.5-1.5b": ("qwen2", dict(
        vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
        num_attention_heads=12, num_key_value_heads=2, rms_norm_eps=1e-6,
        max_position_embeddings=32768, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6})),
}  # fmt: skip
ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM",
                 "qwen3": "Qwen3ForCausalLM", "gemma3_text": "Gemma3ForCausalLM"}  # fmt: skip
# name -> (prompts, prompt tokens (lo, hi), new tokens)
WORKLOADS = {
    "batch1": (1, (64, 64), 256),
    "course": (358, (50, 70), 256),  # the course batch: 358 questions of ~60 tokens
    "b256x128": (256, (128, 128), 256),
    # a grading run's shape: 100 RAG prompts of about 1,700 tokens (6 passages and a question)
    "rag": (100, (1500, 1900), 256),
}
# The fast path with one of its batch-1 optimisations switched off (kernels module settings):
# no programmatic dependent launch; no norm_linear (add_rms_norm + cuBLAS + act_and_mul).
FAST_VARIANTS: dict[str, dict[str, Any]] = {
    "fast-nopdl": {"PDL": False},
    "fast-unfused": {"SMALL_ROWS": 0, "PDL": False},
    # the o-projection combines split attention at any split count (default: up to 8 splits)
    "fast-combine-in-o": {"FUSED_COMBINE_SPLITS": 1 << 30},
    # one decode-attention program per query head (default: one per KV head, for all its heads)
    "fast-per-head": {"GROUPED_ATTENTION": False},
}
# Workloads a variant runs (default: batch 1 only); attention matters where contexts are long.
VARIANT_WORKLOADS = {"fast-per-head": list(WORKLOADS)}
ENGINES = ["hf-eager", "hf-static", "vllm", "vllm-lora", "fast", *FAST_VARIANTS]
# vllm-lora: vLLM serving the base model plus an unmerged LoRA adapter (rank below, every linear
# layer, random values) through LoRARequest; the vllm row is the merged model (same shapes).
LORA_RANK = 16
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@contextlib.contextmanager
def kernel_settings(settings: dict[str, Any]) -> Any:
    """pmpprag.fast.kernels module settings (a FAST_VARIANTS entry) for the block, then back."""
    from pmpprag.fast import kernels

    saved = {k: getattr(kernels, k) for k in settings}
    for k, v in settings.items():
        setattr(kernels, k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(kernels, k, v)


# "cuda"; "cpu" only for --cpu-smoke, a dry run of this script's plumbing on tiny layer counts
DEVICE = "cuda"
LAYERS = 0  # 0: as published


def empty_cache() -> None:
    if DEVICE == "cuda":
        import torch

        torch.cuda.empty_cache()


def sync() -> None:
    if DEVICE == "cuda":
        import torch

        torch.cuda.synchronize()


def make_config(name: str) -> Any:
    import transformers

    model_type, kwargs = MODELS[name]
    config = transformers.AutoConfig.for_model(model_type, bos_token_id=None, eos_token_id=None,
                                               pad_token_id=0, **kwargs)  # fmt: skip
    config.architectures = [ARCHITECTURES[model_type]]
    if LAYERS:
        config.num_hidden_layers = LAYERS
        if getattr(config, "layer_types", None):
            config.layer_types = config.layer_types[:LAYERS]
    return config


def make_prompts(workload: str, vocab: int, seed: int = 0) -> list[list[int]]:
    n, (lo, hi), _ = WORKLOADS[workload]
    rnd = random.Random(seed)
    return [[rnd.randrange(10, vocab) for _ in range(rnd.randint(lo, hi))] for _ in range(n)]


def random_model(config: Any, dtype: Any, sharp: bool = False) -> Any:
    """transformers model with random weights on the GPU; ``sharp`` scales them up so greedy
    choices are clear-cut (for the equality checks; speed rows use transformers' own init)."""
    import torch
    from transformers import AutoModelForCausalLM

    from pmpprag.fast.model import sharpen_random_weights

    torch.manual_seed(0)
    with torch.device(DEVICE):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype).eval()
    if sharp:
        sharpen_random_weights(model)
    return model


def cuda_time(fn: Any, repeats: int = 5) -> float:
    """Median seconds of fn() over repeats, timed with CUDA events."""
    import torch

    times = []
    for _ in range(repeats):
        if DEVICE != "cuda":
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
            continue
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def copy_bandwidth() -> float:
    """Device-to-device copy of 1 GiB: (read + write) bytes / s."""
    import torch

    src = torch.empty(2**30 if DEVICE == "cuda" else 2**26, dtype=torch.uint8, device=DEVICE)
    dst = torch.empty_like(src)
    dst.copy_(src)
    return 2 * src.numel() / cuda_time(functools.partial(dst.copy_, src), 20)


# -- engines -------------------------------------------------------------------------------


def run_fast(engine: Any, prompts: list[list[int]], new: int) -> dict[str, Any]:
    # Every batch bucket, as a server captures them at start-up: continuous batching admits a
    # long-prompt workload in waves, and a bucket first met inside the timed run (a graph
    # capture) was counted against it (the rag workload, on a fresh engine).
    engine.capture_all()
    engine.generate(prompts[:8], min(new, 8))  # warm-up: prefill shapes, Triton JIT
    result = engine.generate(prompts, new)
    assert all(len(t) == new for t in result.tokens)
    return {"new_tokens": result.new_tokens, "seconds": result.total_s,
            "prefill_s": result.prefill_s, "decode_s": result.decode_s,
            "decode_tokens_per_s": (result.new_tokens - len(prompts)) / result.decode_s}  # fmt: skip


def run_hf(model: Any, prompts: list[list[int]], new: int, static: bool) -> dict[str, Any]:
    import torch

    width = max(len(p) for p in prompts)  # left padding, as transformers wants for generation
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts], device=DEVICE)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=DEVICE)
    kwargs: dict[str, Any] = dict(attention_mask=mask, do_sample=False, pad_token_id=0)
    if static:
        kwargs["cache_implementation"] = "static"
    model.generate(ids, max_new_tokens=new, **kwargs)  # warm-up (compilation for static)
    sync()
    start = time.perf_counter()
    out = model.generate(ids, max_new_tokens=new, **kwargs)
    sync()
    seconds = time.perf_counter() - start
    return {"new_tokens": (out.shape[1] - width) * len(prompts), "seconds": seconds}


def run_vllm(
    name: str, workloads: list[str], new_cap: dict[str, int], timeout: int, lora: bool = False
) -> dict[str, Any]:
    """vLLM in a subprocess (its engine processes and GPU memory go away with it); with
    ``lora``, an unmerged random LoRA adapter on every request."""
    with tempfile.TemporaryDirectory() as tmp:
        make_config(name).save_pretrained(tmp)
        cmd = [sys.executable, __file__, "--vllm-worker", tmp, "--workloads", *workloads,
               "--new-tokens-json", json.dumps(new_cap), *(["--vllm-lora"] if lora else [])]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        for line in proc.stdout.splitlines():
            if line.startswith("VLLM_RESULT "):
                return json.loads(line.removeprefix("VLLM_RESULT "))
        raise RuntimeError(f"vLLM worker exited {proc.returncode}: {proc.stderr[-1500:]}")


def random_adapter(model_dir: str) -> str:
    """A rank-LORA_RANK LoRA adapter with random (non-zero) values for the model's config."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    lora = LoraConfig(r=LORA_RANK, lora_alpha=2 * LORA_RANK, target_modules=LORA_TARGETS,
                      init_lora_weights=False)  # fmt: skip
    peft_model = get_peft_model(model, lora)
    state = {k: torch.randn(v.shape, dtype=torch.bfloat16) * 0.01
             for k, v in peft_model.state_dict().items() if "lora_" in k}  # fmt: skip
    adapter = str(Path(model_dir) / "adapter")
    peft_model.save_pretrained(adapter, state_dict=state)
    return adapter


def vllm_worker(model_dir: str, workloads: list[str], new_cap: dict[str, int],
                lora: bool = False) -> None:  # fmt: skip
    from vllm import LLM, SamplingParams

    config = json.loads(Path(model_dir, "config.json").read_text())
    longest = max(WORKLOADS[w][1][1] + new_cap[w] for w in workloads)
    extra: dict[str, Any] = {}
    request = None
    if lora:
        from vllm.lora.request import LoRARequest

        extra = dict(enable_lora=True, max_lora_rank=LORA_RANK, max_loras=1)
        request = LoRARequest("random", 1, random_adapter(model_dir))
    llm = LLM(model=model_dir, load_format="dummy", dtype="bfloat16", skip_tokenizer_init=True,
              max_model_len=longest + 16, gpu_memory_utilization=0.6, seed=0,
              max_num_seqs=max(256, max(WORKLOADS[w][0] for w in workloads)), **extra)  # fmt: skip
    results = {}
    for workload in workloads:
        prompts = [{"prompt_token_ids": p} for p in make_prompts(workload, config["vocab_size"])]
        new = new_cap[workload]
        sampling = SamplingParams(
            temperature=0.0, max_tokens=new, ignore_eos=True, detokenize=False
        )
        llm.generate(prompts[:8], SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True,
                                                 detokenize=False),
                     use_tqdm=False, lora_request=request)  # fmt: skip
        start = time.perf_counter()
        outs = llm.generate(prompts, sampling, use_tqdm=False, lora_request=request)
        seconds = time.perf_counter() - start
        results[workload] = {"new_tokens": sum(len(o.outputs[0].token_ids) for o in outs),
                             "seconds": seconds}  # fmt: skip
    print("VLLM_RESULT " + json.dumps(results), flush=True)


# -- checks and bounds ---------------------------------------------------------------------


def check_greedy(config: Any, n_prompts: int = 4, new: int = 32) -> dict[str, Any]:
    """`fast` vs transformers greedy on the GPU: float32 exact, bf16 share of equal tokens."""
    import torch

    from pmpprag.fast import FastEngine

    prompts = [
        p[: 20 + 7 * i]
        for i, p in enumerate(make_prompts("b256x128", config.vocab_size)[:n_prompts])
    ]

    def reference(model: Any) -> list[list[int]]:
        out = []
        for p in prompts:  # one at a time: no padding in the reference
            ids = torch.tensor([p], device=DEVICE)
            gen = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=new, pad_token_id=0)  # fmt: skip
            out.append(gen[0, len(p) :].tolist())
        return out

    report: dict[str, Any] = {}
    config = copy.deepcopy(config)
    config.tie_word_embeddings = False  # tied + sharp weights just repeat the prompt's last token
    fp32 = random_model(config, torch.float32, sharp=True)
    expected = reference(fp32)
    engine = FastEngine.from_model(fp32, max_slots=2, max_len=256, sync_every=8)  # 2 slots: joins
    got = engine.generate(prompts, new).tokens
    report["fp32_equal"] = got == expected
    report["fp32_equal_tokens"] = _agreement(got, expected)
    del engine
    bf16 = fp32.to(torch.bfloat16)  # the same (sharp) weights, rounded
    expected = reference(bf16)
    engine = FastEngine.from_model(bf16, max_slots=2, max_len=256, sync_every=8)
    got = engine.generate(prompts, new).tokens
    report["bf16_equal"] = got == expected
    report["bf16_equal_tokens"] = _agreement(got, expected)
    return report


def _agreement(got: list[list[int]], expected: list[list[int]]) -> float:
    """Share of tokens before the first divergence, over all sequences."""
    same = 0
    for g, e in zip(got, expected, strict=True):
        for a, b in zip(g, e, strict=False):
            if a != b:
                break
            same += 1
    return round(same / max(1, sum(len(e) for e in expected)), 4)


def bound_tokens_per_s(decoder: Any, prompts: list[list[int]], new: int, bandwidth: float) -> float:
    """Decode tokens/s if each step only read the weights and the KV cache once at copy speed."""
    spec = decoder.spec
    mean_context = statistics.mean(len(p) for p in prompts) + new / 2
    per_position = (
        spec.num_layers * 2 * spec.num_kv_heads * spec.head_dim * decoder.k_cache.element_size()
    )
    step_bytes = decoder.weight_bytes() + len(prompts) * mean_context * per_position
    return len(prompts) / (step_bytes / bandwidth)


def kernel_rows(decoder: Any, batch: int, context: int, bandwidth: float) -> list[dict[str, Any]]:
    """Each Triton kernel at a decode shape of this model, against the PyTorch ops it replaces.

    Timed inside a CUDA graph of 20 launches (the regime of the decode step), median of 5.
    """
    import torch

    from pmpprag.fast import kernels

    spec, dev, dt = decoder.spec, decoder.device, decoder.dtype
    hidden, inter, heads, kvh, hd = (spec.hidden_size, spec.intermediate_size, spec.num_heads,
                                     spec.num_kv_heads, spec.head_dim)  # fmt: skip
    esize = torch.empty(0, dtype=dt).element_size()
    x, res = (
        torch.randn(batch, hidden, device=dev, dtype=dt),
        torch.randn(batch, hidden, device=dev, dtype=dt),
    )
    w = torch.randn(hidden, device=dev, dtype=dt)
    gate_up = torch.randn(batch, 2 * inter, device=dev, dtype=dt)
    qkv = torch.randn(batch, (heads + 2 * kvh) * hd, device=dev, dtype=dt)
    slots = torch.arange(batch, device=dev) % decoder.max_slots
    positions = torch.full((batch,), context - 1, device=dev)
    cos, sin = decoder.tables[spec.layer_types[-1]]
    kc, vc = decoder.k_cache[0], decoder.v_cache[0]
    q = torch.randn(batch, heads, hd, device=dev, dtype=dt)
    lengths = positions + 1
    nk = spec.qk_norm

    def per_head() -> Any:  # one program per query head (GROUPED_ATTENTION off)
        with kernel_settings({"GROUPED_ATTENTION": False}):
            return kernels.decode_attention(q, kc, vc, slots, lengths, spec.attn_scale)

    attention_bytes = (2 * batch * heads * hd + 2 * batch * kvh * context * hd) * esize
    ops = {
        "add_rms_norm": (lambda: kernels.add_rms_norm(x, res, w, spec.eps, spec.gemma),
                         (4 * batch * hidden + hidden) * esize),
        "act_and_mul": (lambda: kernels.act_and_mul(gate_up, spec.activation), 3 * batch * inter * esize),
        "rope_and_cache_write": (
            lambda: kernels.rope_and_cache_write(qkv, positions, slots, cos, sin, kc, vc, heads, kvh,
                                                 w[:hd] if nk else None, w[:hd] if nk else None,
                                                 spec.eps, spec.gemma),
            batch * (2 * (heads + 2 * kvh) * hd) * esize),
        "decode_attention": (
            lambda: kernels.decode_attention(q, kc, vc, slots, lengths, spec.attn_scale),
            attention_bytes),
        "decode_attention per head": (per_head, attention_bytes),
    }  # fmt: skip
    if batch <= kernels.SMALL_ROWS:  # the fused small-batch linears, against the ops they replace
        layer = decoder.layers[0]
        inter_out = torch.randn(batch, inter, device=dev, dtype=dt)
        w_bytes = {n: t.numel() * esize for n, t in (("qkv", layer.qkv), ("gate_up", layer.gate_up),
                                                      ("down", layer.down))}  # fmt: skip
        ops["norm_linear qkv"] = (
            lambda: kernels.norm_linear(x, layer.qkv, layer.qkv_bias, w, res, spec.eps, spec.gemma),
            w_bytes["qkv"] + 3 * batch * hidden * esize,
        )
        ops["norm_linear gate_up+act"] = (
            lambda: kernels.norm_linear(
                x, layer.gate_up, None, w, res, spec.eps, spec.gemma, None, spec.activation
            ),
            w_bytes["gate_up"] + (3 * batch * hidden + batch * inter) * esize,
        )
        ops["norm_linear down"] = (lambda: kernels.norm_linear(inter_out, layer.down),
                                   w_bytes["down"] + batch * (inter + hidden) * esize)  # fmt: skip
    errors = kernel_errors(decoder, batch, context)
    rows = []
    for name, (fn, nbytes) in ops.items():
        row: dict[str, Any] = {"kernel": name, "batch": batch, "context": context, "bytes": nbytes}
        row["max_err_vs_fp64"] = errors.get(name, errors.get("error"))
        for backend in ("triton", "torch"):
            old = kernels.set_backend(backend)  # type: ignore[arg-type]
            try:
                fn()
                sync()
                if DEVICE != "cuda":
                    row[f"{backend}_us"] = round(cuda_time(fn, 5) * 1e6, 2)
                    continue
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    for _ in range(20):
                        fn()
                seconds = cuda_time(graph.replay, 5) / 20
                row[f"{backend}_us"] = round(seconds * 1e6, 2)
                if backend == "triton":
                    row["gb_per_s"] = round(nbytes / seconds / 1e9, 1)
                    row["of_copy_bw"] = round(nbytes / seconds / bandwidth, 3)
            except Exception as err:  # one op failing must not stop the others
                row[f"{backend}_error"] = f"{type(err).__name__}: {err}"[:300]
            finally:
                kernels.set_backend(old)
        rows.append(row)
    return rows


def kernel_errors(decoder: Any, batch: int, context: int) -> dict[str, Any]:
    """Max |Triton - float64 reference| per kernel on fresh random inputs at this model's shapes
    (the same checks as tests/test_fast_kernels.py, so they run even without pytest)."""
    import torch

    from pmpprag.fast import kernels

    spec, dev, dt = decoder.spec, decoder.device, decoder.dtype
    heads, kvh, hd = spec.num_heads, spec.num_kv_heads, spec.head_dim
    gen = torch.Generator(device="cpu").manual_seed(batch)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen)

    x, res, w = rand(batch, spec.hidden_size), rand(batch, spec.hidden_size), rand(spec.hidden_size)
    gate_up, qkv = 3 * rand(batch, 2 * spec.intermediate_size), rand(batch, (heads + 2 * kvh) * hd)
    slots, positions = torch.arange(batch), torch.randint(0, context, (batch,), generator=gen)
    angles = torch.arange(context).double()[:, None] * rand(hd // 2).double().abs()
    cos, sin = angles.cos(), angles.sin()
    k_cache, v_cache, q = (
        rand(batch, kvh, context, hd),
        rand(batch, kvh, context, hd),
        rand(batch, heads, hd),
    )
    norm = rand(hd) if spec.qk_norm else None
    window = max(spec.windows)

    def on(t: torch.Tensor | None) -> Any:
        return None if t is None else t.to(dev, dt, copy=True)

    def err(got: torch.Tensor, ref: torch.Tensor) -> float:
        return float(f"{float((got.double().cpu() - ref).abs().max()):.3g}")

    out: dict[str, Any] = {}
    old = kernels.set_backend("triton")
    try:
        got, _ = kernels.add_rms_norm(
            on(x), on(res), on(w), spec.eps, spec.gemma, on(w) if spec.gemma else None
        )
        ref, _ = kernels.add_rms_norm_torch(x.double(), res.double(), w.double(), spec.eps, spec.gemma,
                                            w.double() if spec.gemma else None)  # fmt: skip
        out["add_rms_norm"] = err(got, ref)
        got = kernels.act_and_mul(on(gate_up), spec.activation)
        out["act_and_mul"] = err(got, kernels.act_and_mul_torch(gate_up.double(), spec.activation))
        caches = [torch.zeros(batch, kvh, context, hd, dtype=torch.float64) for _ in range(2)]
        ref = kernels.rope_and_cache_write_torch(qkv.double(), positions, slots, cos, sin, *caches, heads,
                                                 kvh, norm, norm, spec.eps, spec.gemma)  # fmt: skip
        dev_caches = [c.to(dev, dt) for c in caches]
        for c in dev_caches:
            c.zero_()
        got = kernels.rope_and_cache_write(on(qkv), positions.to(dev), slots.to(dev), on(cos), on(sin),
                                           *dev_caches, heads, kvh, on(norm), on(norm), spec.eps, spec.gemma)  # fmt: skip
        out["rope_and_cache_write"] = max(
            err(got, ref), err(dev_caches[0], caches[0]), err(dev_caches[1], caches[1])
        )
        lengths = positions + 1
        ref = kernels.decode_attention_torch(q.double(), k_cache.double(), v_cache.double(), slots, lengths,
                                             spec.attn_scale, window, spec.attn_softcap)  # fmt: skip
        got = kernels.decode_attention(on(q), on(k_cache), on(v_cache), slots.to(dev), lengths.to(dev),
                                       spec.attn_scale, window, spec.attn_softcap)  # fmt: skip
        out["decode_attention"] = err(got, ref)
    except Exception as error:
        out["error"] = f"{type(error).__name__}: {error}"[:300]
    finally:
        kernels.set_backend(old)
    return out


# -- main ----------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for package in ("torch", "transformers", "triton", "vllm"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[package] = md.version(package)
    return out


def table(report: dict[str, Any]) -> str:
    lines = [f"GPU: {report['gpu']}; {', '.join(f'{k} {v}' for k, v in report['versions'].items())}",
             f"command: `{report['command']}`",
             f"copy bandwidth (read + write): {report['copy_gb_per_s']:.0f} GB/s. RANDOM bf16 weights: "
             "speed does not depend on weight values; every sequence generates exactly its new tokens.",
             f"Triton kernels replaced by PyTorch ops (failed): {report.get('kernel_fallbacks') or 'none'}",
             "", "| model | workload | engine | new tok/seq | output tok/s | ms/token (b1) | "
             "decode tok/s | of BW bound | vs vLLM | error |", "|" + "---|" * 10]  # fmt: skip
    for r in report["rows"]:
        tps = r.get("tokens_per_s")
        lines.append("| " + " | ".join([
            r["model"], r["workload"], r["engine"], str(r.get("new_per_seq", "")),
            f"{tps:,.0f}" if tps else "-",
            f"{1e3 / tps:.2f}" if tps and r["workload"] == "batch1" else "",
            f"{r['decode_tokens_per_s']:,.0f}" if r.get("decode_tokens_per_s") else "",
            f"{r['of_bound']:.2f}" if r.get("of_bound") else "",
            f"{r['vs_vllm']:.2f}x" if r.get("vs_vllm") else "",
            (r.get("error") or "")[:80].replace("|", "/").replace("\n", " "),
        ]) + " |")  # fmt: skip
    lines += ["", "| model | greedy check | fp32 equal | fp32 equal tokens | bf16 equal | bf16 equal tokens |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for name, c in report["checks"].items():
        verdict = "pass" if c.get("fp32_equal") else ("error" if "error" in c else "FAIL")
        lines.append(f"| {name} | {verdict} | {c.get('fp32_equal')} | {c.get('fp32_equal_tokens')} | "
                     f"{c.get('bf16_equal')} | {c.get('bf16_equal_tokens')} |"
                     + (f" {c['error'][:80]}" if "error" in c else ""))  # fmt: skip
    lines += ["", "| model | kernel | batch | context | max err vs fp64 | Triton us | PyTorch ops us | bytes | GB/s | of copy BW |",
              "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for k in report["kernels"]:
        lines.append(f"| {k['model']} | {k['kernel']} | {k['batch']} | {k['context']} | {k.get('max_err_vs_fp64')} | "
                     f"{k.get('triton_us', k.get('triton_error', '-'))} | {k.get('torch_us', '-')} | "
                     f"{k['bytes']:,} | {k.get('gb_per_s', '-')} | {k.get('of_copy_bw', '-')} |")  # fmt: skip
    return "\n".join(lines)


def bench_model(name: str, args: argparse.Namespace, report: dict[str, Any]) -> None:
    import torch

    from pmpprag.fast import FastEngine

    config = make_config(name)
    workloads = args.workloads
    model = random_model(config, torch.bfloat16)
    try:
        if not args.skip_checks:
            report["checks"][name] = check_greedy(config)
    except Exception as err:
        report["checks"][name] = {
            "error": f"{type(err).__name__}: {err}",
            "trace": traceback.format_exc()[-2000:],
        }
    gc.collect()
    empty_cache()
    new = {w: args.new_tokens or WORKLOADS[w][2] for w in workloads}
    hf_new = {w: min(new[w], args.hf_new_tokens) for w in workloads}
    rows: dict[tuple[str, str], dict[str, Any]] = {}

    def record(engine: str, workload: str, fn: Any, new_per_seq: int) -> None:
        row: dict[str, Any] = {
            "model": name,
            "workload": workload,
            "engine": engine,
            "new_per_seq": new_per_seq,
        }
        try:
            row.update(fn())
            row["tokens_per_s"] = row["new_tokens"] / row["seconds"]
        except Exception as err:
            row["error"] = f"{type(err).__name__}: {err}"
            row["trace"] = traceback.format_exc()[-2000:]
        rows[(engine, workload)] = row
        print(json.dumps({k: v for k, v in row.items() if k != "trace"}), flush=True)

    for variant, settings in FAST_VARIANTS.items():  # ablations of the fast path
        if variant not in args.engines:
            continue
        for w in [w for w in workloads if w in VARIANT_WORKLOADS.get(variant, ["batch1"])]:
            n, (_, longest), _ = WORKLOADS[w]
            with kernel_settings(settings):
                engine = FastEngine.from_model(model, max_slots=n, max_len=longest + new[w])
                prompts = make_prompts(w, config.vocab_size)
                record(variant, w, functools.partial(run_fast, engine, prompts, new[w]), new[w])
                del engine
            gc.collect()
            empty_cache()
    if "fast" in args.engines:
        try:
            max_batch = max(WORKLOADS[w][0] for w in workloads)
            max_len = max(WORKLOADS[w][1][1] + new[w] for w in workloads)
            engine = FastEngine.from_model(model, max_slots=max_batch, max_len=max_len)
            for w in workloads:
                prompts = make_prompts(w, config.vocab_size)
                record("fast", w, lambda p=prompts, w=w: run_fast(engine, p, new[w]), new[w])
                row = rows[("fast", w)]
                if "decode_tokens_per_s" in row:
                    bound = bound_tokens_per_s(
                        engine.decoder, prompts, new[w], report["copy_bandwidth"]
                    )
                    row["bound_tokens_per_s"] = bound
                    row["of_bound"] = row["decode_tokens_per_s"] / bound
            # a short context, and a RAG prompt's (where it fits) for the attention kernels
            contexts = sorted({min(c, engine.decoder.max_len) for c in (128, 1792)})
            for batch, context in itertools.product(sorted({1, max_batch}), contexts):
                for k in kernel_rows(engine.decoder, batch, context, report["copy_bandwidth"]):
                    report["kernels"].append({"model": name, **k})
            del engine
        except Exception as err:
            rows[("fast", "build")] = {"model": name, "workload": "-", "engine": "fast",
                                       "error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()[-2000:]}  # fmt: skip
        gc.collect()
        empty_cache()
    for engine_name, static in (("hf-eager", False), ("hf-static", True)):
        if engine_name not in args.engines:
            continue
        for w in (
            workloads
            if engine_name == "hf-eager"
            else [w for w in workloads if w in args.hf_static_workloads]
        ):
            prompts = make_prompts(w, config.vocab_size)
            record(
                engine_name,
                w,
                functools.partial(run_hf, model, prompts, hf_new[w], static),
                hf_new[w],
            )
        empty_cache()
    del model
    gc.collect()
    empty_cache()
    for engine_name in ("vllm", "vllm-lora"):
        if engine_name not in args.engines:
            continue
        try:
            import vllm  # noqa: F401
        except ImportError:
            got: dict[str, Any] = {w: {"error": "vllm not importable"} for w in workloads}
        else:
            try:
                got = run_vllm(name, workloads, new, args.vllm_timeout, engine_name == "vllm-lora")
            except Exception as err:
                got = {w: {"error": f"{type(err).__name__}: {err}"} for w in workloads}
        for w in workloads:
            row = {"model": name, "workload": w, "engine": engine_name, "new_per_seq": new[w],
                   **got[w]}  # fmt: skip
            if "seconds" in row:
                row["tokens_per_s"] = row["new_tokens"] / row["seconds"]
            rows[(engine_name, w)] = row
            print(json.dumps(row), flush=True)
    for (engine_name, w), row in rows.items():
        vllm_row = rows.get(("vllm", w), {})
        if (
            engine_name in ("fast", "vllm-lora")
            and row.get("tokens_per_s")
            and vllm_row.get("tokens_per_s")
        ):
            row["vs_vllm"] = row["tokens_per_s"] / vllm_row["tokens_per_s"]
    report["rows"] += list(rows.values())


def merge(paths: list[str], out: Path) -> None:
    """One report from several commands' reports, which must come from the same GPU model."""
    reports = [json.loads(Path(p).read_text()) for p in paths]
    gpus = {r["gpu"] for r in reports}
    if len(gpus) != 1:
        sys.exit(f"--merge: the reports come from different GPUs ({sorted(gpus)}): rerun them "
                 "on one machine kind")  # fmt: skip
    merged = dict(reports[0])
    merged["command"] = " ; ".join(r["command"] for r in reports)
    merged["copy_gb_per_s"] = min(r["copy_gb_per_s"] for r in reports)
    merged["copy_bandwidth"] = merged["copy_gb_per_s"] * 1e9
    merged["workloads"] = {w: v for r in reports for w, v in r["workloads"].items()}
    for key in ("rows", "kernels"):
        merged[key] = [x for r in reports for x in r[key]]
    merged["checks"] = {k: v for r in reports for k, v in r["checks"].items()}
    merged["kernel_fallbacks"] = {k: v for r in reports for k, v in r["kernel_fallbacks"].items()}
    merged["merged_from"] = [Path(p).name for p in paths]
    out.write_text(json.dumps(merged, indent=1, default=str) + "\n")
    print(table(merged))
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--workloads", nargs="*", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--engines", nargs="*", default=ENGINES, choices=ENGINES)
    parser.add_argument(
        "--new-tokens", type=int, default=0, help="override new tokens per sequence"
    )
    parser.add_argument(
        "--hf-new-tokens",
        type=int,
        default=64,
        help="new tokens per sequence for the transformers rows (their speed per token is flat)",
    )
    parser.add_argument(
        "--hf-static-workloads",
        nargs="*",
        default=["batch1"],
        help="workloads for transformers static cache + compile (each shape recompiles)",
    )
    parser.add_argument("--vllm-timeout", type=int, default=420)
    parser.add_argument(
        "--skip-checks", action="store_true", help="no greedy-equality check (short timing runs)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="SmolLM2 + gemma, batch 1 and course, 64 new tokens"
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--tag", default="", help="write gpu_generate-TAG.json")
    parser.add_argument("--layers", type=int, default=0, help="override layer counts (smoke runs)")
    parser.add_argument(
        "--cpu-smoke",
        action="store_true",
        help="dry run on the CPU (PyTorch fallbacks, 2 layers, tiny workloads)",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        metavar="JSON",
        help="join the reports of one run split over several commands (one per model: a GPU "
        "command may run 10 minutes) into one JSON and table; no GPU needed",
    )
    parser.add_argument("--vllm-worker", help=argparse.SUPPRESS)
    parser.add_argument("--new-tokens-json", help=argparse.SUPPRESS)
    parser.add_argument("--vllm-lora", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.vllm_worker:
        vllm_worker(args.vllm_worker, args.workloads, json.loads(args.new_tokens_json),
                    args.vllm_lora)  # fmt: skip
        return
    if args.merge:
        merge(args.merge, Path(args.out, f"gpu_generate{'-' + args.tag if args.tag else ''}.json"))
        return
    if args.quick:
        args.models = [m for m in args.models if m in ("smollm2-135m", "gemma-3-270m")]
        args.workloads = [w for w in args.workloads if w in ("batch1", "course")]
        args.new_tokens = args.new_tokens or 64
        args.hf_new_tokens = min(args.hf_new_tokens, 16)
    import torch

    global DEVICE, LAYERS
    if args.cpu_smoke:
        DEVICE = "cpu"
        args.layers = args.layers or 2
        args.new_tokens = 4
        args.hf_new_tokens = 2
        for name, (n, (lo, hi), new) in list(WORKLOADS.items()):
            WORKLOADS[name] = (min(n, 3), (lo // 8, hi // 8), new)
    elif not torch.cuda.is_available():
        sys.exit("gpu_generate.py needs a CUDA GPU (see ../shared/H200.md)")
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 checks must be float32
    LAYERS = args.layers
    report: dict[str, Any] = {
        "benchmark": "gpu_generate",
        "command": " ".join(["python3", *sys.argv]),
        "gpu": torch.cuda.get_device_name(0) if DEVICE == "cuda" else "none (--cpu-smoke)",
        "machine": platform.platform(),
        "versions": versions(),
        "weights": "random bf16 (architectures only); exact new tokens per sequence, no EOS",
        "workloads": {w: WORKLOADS[w] for w in args.workloads},
        "copy_bandwidth": copy_bandwidth(),
        "rows": [], "checks": {}, "kernels": [],
    }  # fmt: skip
    report["copy_gb_per_s"] = report["copy_bandwidth"] / 1e9
    out = Path(args.out, f"gpu_generate{'-' + args.tag if args.tag else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        started = time.perf_counter()
        try:
            bench_model(name, args, report)
        except Exception as err:  # e.g. out of memory building the model: next model
            report["rows"].append({"model": name, "workload": "-", "engine": "-",
                                   "error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()[-2000:]})  # fmt: skip
        from pmpprag.fast import kernels

        report["kernel_fallbacks"] = dict(kernels.FALLBACKS)  # Triton kernels that did not run
        print(f"# {name}: {time.perf_counter() - started:.0f} s", flush=True)
        out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(table(report))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
