"""Fused decode kernels for the `fast` back-end: Triton on the GPU, PyTorch everywhere else.
(It stays one module: each kernel sits next to the PyTorch reference it is tested against.)

Each op has a pure-PyTorch reference (``*_torch``), a Triton kernel (``_*_kernel``) and one
dispatch function that picks between them (:func:`uses_triton`): Triton on CUDA tensors, or on
CPU tensors under ``TRITON_INTERPRET=1`` (Triton's interpreter, for tests without a GPU).

Why these ops: at decode time a 135M-parameter model moves ~0.3 GB of weights per step and
almost nothing else, so the step is bound by launches and small round trips through HBM.
Fusion removes both:

- :func:`add_rms_norm` - residual add + RMSNorm (+ Gemma's sandwich norm before the add): one
  read and two writes of the hidden row instead of ~8 elementwise kernels.
- :func:`act_and_mul` - SiLU(gate) * up or GELU-tanh(gate) * up over the fused gate|up GEMM.
- :func:`norm_linear` - for a few rows (batch-1 decode): a matrix-vector product with the add +
  RMSNorm before it and the act-and-mul after it in the same kernel (6 kernels a layer, not 9).
- :func:`rope_and_cache_write` - per-head QK-norm (Qwen3, Gemma 3) + rotary embedding for q and
  k + the write of k and v into the slotted KV cache, in one kernel.
- :func:`decode_attention` - one query token per sequence against its slot of the cache
  (online softmax, sliding window, optional logit soft-capping), for short contexts; split over
  programs for few rows, its splits combined by a kernel or inside the o-projection.
- :func:`argmax` - the greedy token in two small kernels.

On Hopper the decode-path kernels use programmatic dependent launch (see :data:`PDL`).

Numerics follow transformers: every kernel computes in float32 and rounds to the tensor dtype
exactly where transformers' bf16 modules round (after the norm, after the weight multiply,
after each rotary product...), so bf16 results track transformers' own as closely as a
different kernel can.

Triton is optional: it is imported on first use (:func:`_triton_kernels`), and the kernel
bodies below are plain functions until then.
"""

# Triton kernels branch on constexprs (only one side is compiled): keep the if/else blocks.
# ruff: noqa: SIM108

from __future__ import annotations

import functools
import importlib.util
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Literal, TypeVar, no_type_check

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

Backend = Literal["auto", "torch", "triton"]
Activation = Literal["silu", "gelu_tanh"]

# Filled in by _triton_kernels() when Triton is first needed; the kernel bodies read them as
# module globals, which is where triton.jit looks them up.
triton: Any = None
tl: Any = None
libdevice: Any = None  # CUDA's own expf/tanhf/rsqrtf, so activations round like PyTorch's

_backend: Backend = "auto"


def set_backend(backend: Backend) -> Backend:
    """Force the torch fallback or the Triton kernels ("auto" decides per tensor); returns the old one."""
    global _backend
    old, _backend = _backend, backend
    return old


def triton_available() -> bool:
    """Whether Triton can be imported (it is an optional dependency)."""
    return importlib.util.find_spec("triton") is not None


def uses_triton(x: torch.Tensor) -> bool:
    """Whether the ops run their Triton kernel on this tensor (see :func:`set_backend`)."""
    if _backend == "torch":
        return False
    if _backend == "triton":
        return True
    return triton_available() and (x.is_cuda or os.environ.get("TRITON_INTERPRET") == "1")


R = TypeVar("R")
# ops whose Triton kernel failed (to compile, typically) under the "auto" backend, with the error:
# from then on the PyTorch version stands in, and benchmarks report it next to their numbers
FALLBACKS: dict[str, str] = {}


def _dispatch(
    op: str,
    x: torch.Tensor,
    triton_fn: Callable[..., R],
    torch_fn: Callable[..., R],
    args: tuple[Any, ...],
) -> R:
    """Run the Triton kernel where :func:`uses_triton` says so, else the PyTorch version.

    Under the "auto" backend a kernel that raises (a Triton version that cannot compile it) is
    replaced by its PyTorch version for the rest of the process, with a warning and an entry in
    :data:`FALLBACKS`; a forced "triton" backend (the tests) raises instead.
    """
    if not uses_triton(x) or op in FALLBACKS:
        return torch_fn(*args)
    try:
        return triton_fn(*args)
    except Exception as err:
        if _backend == "triton":
            raise
        FALLBACKS[op] = f"{type(err).__name__}: {err}"[:500]
        logger.warning("Triton kernel %s failed, PyTorch ops stand in: %s", op, FALLBACKS[op])
        return torch_fn(*args)


def _libdevice(x: torch.Tensor) -> bool:
    """Use CUDA libdevice math (compiled kernels on CUDA only; the interpreter lacks it)."""
    return x.is_cuda and os.environ.get("TRITON_INTERPRET") != "1" and libdevice is not None


def _block(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


# Programmatic dependent launch (Hopper and newer): a decode-path kernel is launched while its
# predecessor still runs, does the loads that do not depend on it (a projection's weights),
# then waits for it (griddepcontrol.wait) before touching its outputs. Off: PMPPRAG_FAST_PDL=0.
PDL = os.environ.get("PMPPRAG_FAST_PDL", "1") != "0"


def _pdl(x: torch.Tensor) -> bool:
    """Launch with PDL: compiled kernels on a CUDA device of compute capability 9 or newer."""
    return PDL and _libdevice(x) and torch.cuda.get_device_capability(x.device)[0] >= 9


def _pdl_launch(x: torch.Tensor) -> dict[str, bool]:
    """The launch option that lets a kernel start before its predecessor ends (see PDL)."""
    return {"launch_pdl": True} if _pdl(x) else {}


@no_type_check
def _gdc_wait(PDL: tl.constexpr):
    """Wait until the preceding kernel has finished and its writes are visible, then let the
    next kernel launch (the griddepcontrol pair; nothing without PDL)."""
    if PDL:
        tl.extra.cuda.gdc_wait()
        tl.extra.cuda.gdc_launch_dependents()


# ---------------------------------------------------------------------------------------------
# add + RMSNorm
# ---------------------------------------------------------------------------------------------


def add_rms_norm_torch(
    x: torch.Tensor,
    residual: torch.Tensor | None,
    weight: torch.Tensor,
    eps: float,
    gemma: bool,
    pre_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference for :func:`add_rms_norm`, written the way transformers computes it."""
    dtype = x.dtype
    acc = torch.promote_types(dtype, torch.float32)
    if pre_weight is not None:  # Gemma's post-attention / post-feedforward norm, then the add
        x = _rms_torch(x, pre_weight, eps, True)
    s = x if residual is None else (x.to(acc) + residual.to(acc)).to(dtype)
    return _rms_torch(s, weight, eps, gemma), s


def _rms_torch(x: torch.Tensor, weight: torch.Tensor, eps: float, gemma: bool) -> torch.Tensor:
    dtype = x.dtype
    acc = torch.promote_types(dtype, torch.float32)
    h = x.to(acc)
    normed = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    if gemma:  # Gemma3RMSNorm: (x_hat * (1 + w)) in float32, one rounding
        return (normed * (1.0 + weight.to(acc))).to(dtype)
    # LlamaRMSNorm: round x_hat to the input dtype, then multiply by w in that dtype
    return (weight.to(acc) * normed.to(dtype).to(acc)).to(dtype)


@no_type_check
def _add_rms_norm_kernel(
    x_ptr,
    res_ptr,
    pre_w_ptr,
    w_ptr,
    out_ptr,
    res_out_ptr,
    n_cols,
    stride_x,
    stride_res,
    stride_out,
    stride_res_out,
    eps,
    HAS_RES: tl.constexpr,
    HAS_PRE: tl.constexpr,
    GEMMA: tl.constexpr,
    BLOCK: tl.constexpr,
    LIBDEVICE: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    dtype = out_ptr.dtype.element_ty
    x = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
    if HAS_PRE:
        pre_w = tl.load(pre_w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
        pre_var = tl.sum(x * x, axis=0) * (1.0 / n_cols) + eps
        if LIBDEVICE:
            pre_r = libdevice.rsqrt(pre_var)
        else:
            pre_r = 1.0 / tl.sqrt(pre_var)
        x = (x * pre_r * (1.0 + pre_w)).to(dtype).to(tl.float32)
    if HAS_RES:
        res = tl.load(res_ptr + row * stride_res + cols, mask=mask, other=0.0).to(tl.float32)
        x = (x + res).to(dtype).to(tl.float32)
    tl.store(res_out_ptr + row * stride_res_out + cols, x.to(dtype), mask=mask)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    var = tl.sum(x * x, axis=0) * (1.0 / n_cols) + eps
    if LIBDEVICE:
        r = libdevice.rsqrt(var)
    else:
        r = 1.0 / tl.sqrt(var)
    if GEMMA:
        y = x * r * (1.0 + w)
    else:
        y = w * (x * r).to(dtype).to(tl.float32)
    tl.store(out_ptr + row * stride_out + cols, y.to(dtype), mask=mask)


def add_rms_norm(
    x: torch.Tensor,
    residual: torch.Tensor | None,
    weight: torch.Tensor,
    eps: float,
    gemma: bool,
    pre_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``s = residual + norm_pre(x)`` (or ``x`` alone), then ``(norm(s), s)``.

    Args:
        x: [rows, hidden], the sublayer output (or the embedding for the first layer).
        residual: [rows, hidden] running residual stream, or None at the first layer.
        weight: the norm applied to the sum.
        eps: RMSNorm epsilon.
        gemma: Gemma's RMSNorm (``x_hat * (1 + w)`` in float32) instead of Llama's.
        pre_weight: Gemma's post-sublayer norm, applied to ``x`` before the add.

    Returns:
        The normed rows (input of the next sublayer) and the new residual stream.
    """
    return _dispatch(
        "add_rms_norm",
        x,
        _add_rms_norm_triton,
        add_rms_norm_torch,
        (x, residual, weight, eps, gemma, pre_weight),
    )


def _add_rms_norm_triton(
    x, residual, weight, eps, gemma, pre_weight
) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the add + RMSNorm kernel (arguments as :func:`add_rms_norm`)."""
    rows, n_cols = x.shape
    out = torch.empty_like(x)
    res_out = torch.empty_like(x) if residual is None else residual  # updated in place
    res = x if residual is None else residual
    _triton_kernels().add_rms_norm[(rows,)](
        x, res, weight if pre_weight is None else pre_weight, weight, out, res_out, n_cols,
        x.stride(0), res.stride(0), out.stride(0), res_out.stride(0), eps,
        HAS_RES=residual is not None, HAS_PRE=pre_weight is not None, GEMMA=gemma,
        BLOCK=_block(n_cols), LIBDEVICE=_libdevice(x), num_warps=4 if n_cols <= 2048 else 8,
    )  # fmt: skip
    return out, res_out


# ---------------------------------------------------------------------------------------------
# activation and multiply
# ---------------------------------------------------------------------------------------------


def act_and_mul_torch(gate_up: torch.Tensor, activation: Activation) -> torch.Tensor:
    """Reference for :func:`act_and_mul`: ``act(gate) * up``, rounded where transformers rounds."""
    gate, up = gate_up.chunk(2, dim=-1)
    act = F.silu(gate) if activation == "silu" else F.gelu(gate, approximate="tanh")
    return act * up


@no_type_check
def _act_and_mul_kernel(
    gu_ptr,
    out_ptr,
    n_cols,
    stride_gu,
    stride_out,
    GELU: tl.constexpr,
    BLOCK: tl.constexpr,
    LIBDEVICE: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < n_cols
    dtype = out_ptr.dtype.element_ty
    g = tl.load(gu_ptr + row * stride_gu + cols, mask=mask, other=0.0).to(tl.float32)
    u = tl.load(gu_ptr + row * stride_gu + n_cols + cols, mask=mask, other=0.0).to(tl.float32)
    y = _activate(g, GELU, LIBDEVICE).to(dtype).to(tl.float32) * u
    tl.store(out_ptr + row * stride_out + cols, y.to(dtype), mask=mask)


@no_type_check
def _activate(g, GELU: tl.constexpr, LIBDEVICE: tl.constexpr):
    """act(g) in float32 (a jitted helper of the kernels that apply an activation)."""
    if GELU:  # gelu_pytorch_tanh: 0.5 g (1 + tanh(sqrt(2 / pi) (g + 0.044715 g^3)))
        z = 0.7978845608028654 * (g + 0.044715 * (g * g * g))
        if LIBDEVICE:
            t = libdevice.tanh(z)
        else:
            e = tl.exp(-2.0 * tl.abs(z))
            t = (1.0 - e) / (1.0 + e)
            t = tl.where(z < 0.0, -t, t)
        a = 0.5 * g * (1.0 + t)
    else:  # SiLU as PyTorch writes it: g / (1 + exp(-g))
        if LIBDEVICE:
            a = g / (1.0 + libdevice.exp(-g))
        else:
            a = g / (1.0 + tl.exp(-g))
    return a


def act_and_mul(gate_up: torch.Tensor, activation: Activation) -> torch.Tensor:
    """``act(gate) * up`` over the output of the fused gate|up projection.

    Args:
        gate_up: [rows, 2 * intermediate], gate in the first half and up in the second.
        activation: "silu" (Llama, Qwen) or "gelu_tanh" (Gemma's gelu_pytorch_tanh).

    Returns:
        [rows, intermediate], the input of the down projection.
    """
    return _dispatch(
        "act_and_mul", gate_up, _act_and_mul_triton, act_and_mul_torch, (gate_up, activation)
    )


def _act_and_mul_triton(gate_up, activation) -> torch.Tensor:
    """Launch the activation-and-multiply kernel (arguments as :func:`act_and_mul`)."""
    rows, n2 = gate_up.shape
    n_cols = n2 // 2
    out = torch.empty((rows, n_cols), dtype=gate_up.dtype, device=gate_up.device)
    block = min(1024, _block(n_cols))
    _triton_kernels().act_and_mul[(rows, triton.cdiv(n_cols, block))](
        gate_up, out, n_cols, gate_up.stride(0), out.stride(0),
        GELU=activation == "gelu_tanh", BLOCK=block, LIBDEVICE=_libdevice(gate_up),
    )  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------------
# small-batch linear: add + RMSNorm prologue, activation epilogue
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttentionParts:
    """Split decode attention not yet combined (:func:`decode_attention` with ``partial``):
    [rows, heads, splits, block_d + 2] float32, each split's unnormalised output, then its
    running max and sum. :func:`norm_linear` combines them while it reads its input row, so
    the o-projection needs no separate combine kernel."""

    parts: torch.Tensor
    head_dim: int
    dtype: torch.dtype

    @property
    def rows(self) -> int:
        return self.parts.shape[0]

    @property
    def width(self) -> int:  # the combined row: heads x head_dim
        return self.parts.shape[1] * self.head_dim


# Rows up to this use :func:`norm_linear`'s GEMV kernel in the decode step; larger batches use
# add_rms_norm + cuBLAS + act_and_mul, whose tensor-core GEMMs win once the weights are reused.
SMALL_ROWS = 4
# Split attention hands norm_linear (the o-projection) its uncombined parts only up to this many
# splits: every o-projection program re-reads all of them, which costs more than the separate
# combine kernel for gemma-3-270m's 16 splits of 256-wide heads (profile_decode on an H100).
FUSED_COMBINE_SPLITS = 8
# Decode attention with one program for all query heads of a KV head: each cached key and value
# is loaded once, not once per query head (GQA models, long RAG contexts). Measured on an H100
# against one program per head (gpu_generate's fast-per-head variant): SmolLM2-135M batch 1
# 2,322 vs 2,129 tokens/s, course batch 149,824 vs 127,296, 100 RAG prompts' decode 41,504 vs
# 20,819; Qwen3-0.6B 1,256 vs 1,091 and 66,287 vs 47,953. PMPPRAG_FAST_GQA=0 turns it off.
GROUPED_ATTENTION = os.environ.get("PMPPRAG_FAST_GQA", "1") != "0"
# The longest input row (power of two) one program holds: the kernel keeps it in registers.
MAX_K = 8192


def norm_linear_torch(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    norm: torch.Tensor | None = None,
    residual: torch.Tensor | None = None,
    eps: float = 1e-6,
    gemma: bool = False,
    pre_weight: torch.Tensor | None = None,
    activation: Activation | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Reference for :func:`norm_linear`: the three ops it fuses, one after the other."""
    new_residual = residual
    if norm is not None:
        x, new_residual = add_rms_norm_torch(x, residual, norm, eps, gemma, pre_weight)
    y = F.linear(x, weight, bias)
    return (act_and_mul_torch(y, activation) if activation else y), new_residual


@no_type_check
def _norm_linear_kernel(
    x_ptr,
    res_ptr,
    pre_w_ptr,
    norm_w_ptr,
    w_ptr,
    b_ptr,
    out_ptr,
    res_out_ptr,
    K,
    N_OUT,
    up_offset,
    stride_x,
    stride_res,
    stride_w,
    stride_out,
    stride_res_out,
    eps,
    n_heads,
    NORM: tl.constexpr,
    HAS_RES: tl.constexpr,
    HAS_PRE: tl.constexpr,
    GEMMA: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    ACT: tl.constexpr,
    GELU: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    LIBDEVICE: tl.constexpr,
    PDL: tl.constexpr,
    SPLITS: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    PART: tl.constexpr,
):
    # One program: BLOCK_N outputs of one row, over the whole K (BLOCK_K >= K). The weight
    # tile is loaded first, so its DRAM round trip overlaps the norm; with NORM every program
    # recomputes the row's norm (a few KB from L2) instead of a kernel writing it out and the
    # next reading it back.
    pid = tl.program_id(0)
    row = tl.program_id(1).to(tl.int64)
    dtype = out_ptr.dtype.element_ty
    n = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = n < N_OUT
    ks = tl.arange(0, BLOCK_K)
    m = ks < K
    tile = n_mask[:, None] & m[None, :]
    wt = tl.load(w_ptr + n[:, None] * stride_w + ks[None, :], mask=tile, other=0.0)
    if ACT:
        wu = tl.load(
            w_ptr + (n + up_offset)[:, None] * stride_w + ks[None, :], mask=tile, other=0.0
        )
    _gdc_wait(PDL)  # the weights are read; the row comes from the kernel before
    if SPLITS > 0:  # x holds AttentionParts: combine each head's splits, as the combine kernel
        base = x_ptr + (row * n_heads + ks // HEAD_DIM) * SPLITS * PART
        d = ks % HEAD_DIM
        m_max = tl.full([BLOCK_K], -float("inf"), tl.float32)
        for sp in tl.static_range(SPLITS):
            m_max = tl.maximum(m_max, tl.load(base + sp * PART + PART - 2, mask=m, other=0.0))
        num = tl.zeros([BLOCK_K], dtype=tl.float32)
        den = tl.zeros([BLOCK_K], dtype=tl.float32)
        for sp in tl.static_range(SPLITS):
            m_s = tl.load(base + sp * PART + PART - 2, mask=m, other=-float("inf"))
            w_s = tl.where(m_s > -float("inf"), tl.exp(m_s - m_max), 0.0)
            num += w_s * tl.load(base + sp * PART + d, mask=m, other=0.0)
            den += w_s * tl.load(base + sp * PART + PART - 1, mask=m, other=0.0)
        v = (num / tl.where(den > 0.0, den, 1.0)).to(dtype).to(tl.float32)
    else:
        v = tl.load(x_ptr + row * stride_x + ks, mask=m, other=0.0).to(tl.float32)
    if NORM:  # as _add_rms_norm_kernel, then the normed row stays in registers
        if HAS_PRE:
            pre_var = tl.sum(v * v, axis=0) / K + eps
            if LIBDEVICE:
                pre_r = libdevice.rsqrt(pre_var)
            else:
                pre_r = 1.0 / tl.sqrt(pre_var)
            pre_w = tl.load(pre_w_ptr + ks, mask=m, other=0.0).to(tl.float32)
            v = (v * pre_r * (1.0 + pre_w)).to(dtype).to(tl.float32)
        if HAS_RES:
            res = tl.load(res_ptr + row * stride_res + ks, mask=m, other=0.0).to(tl.float32)
            v = (v + res).to(dtype).to(tl.float32)
        # the new residual stream (program 0 writes it, into a fresh buffer: no program reads
        # a half-updated row)
        res_cols = tl.where(pid == 0, K, 0)
        tl.store(res_out_ptr + row * stride_res_out + ks, v.to(dtype), mask=ks < res_cols)
        var = tl.sum(v * v, axis=0) / K + eps
        if LIBDEVICE:
            r = libdevice.rsqrt(var)
        else:
            r = 1.0 / tl.sqrt(var)
        w = tl.load(norm_w_ptr + ks, mask=m, other=0.0).to(tl.float32)
        if GEMMA:
            v = (v * r * (1.0 + w)).to(dtype).to(tl.float32)
        else:
            v = (w * (v * r).to(dtype).to(tl.float32)).to(dtype).to(tl.float32)
    acc = tl.sum(wt.to(tl.float32) * v[None, :], axis=1)
    if HAS_BIAS:
        acc += tl.load(b_ptr + n, mask=n_mask, other=0.0).to(tl.float32)
    y = acc.to(dtype)
    if ACT:  # act(gate) * up, rounded where act_and_mul rounds
        up = tl.sum(wu.to(tl.float32) * v[None, :], axis=1).to(dtype).to(tl.float32)
        a = _activate(y.to(tl.float32), GELU, LIBDEVICE).to(dtype).to(tl.float32)
        y = (a * up).to(dtype)
    tl.store(out_ptr + row * stride_out + n, y, mask=n_mask)


def norm_linear(
    x: torch.Tensor | AttentionParts,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    norm: torch.Tensor | None = None,
    residual: torch.Tensor | None = None,
    eps: float = 1e-6,
    gemma: bool = False,
    pre_weight: torch.Tensor | None = None,
    activation: Activation | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A linear layer for a few rows (the decode step at small batch), with its neighbours fused.

    ``y = act_and_mul(linear(add_rms_norm(x, residual, norm)))``: with ``norm`` the input is
    first normed as :func:`add_rms_norm` does it (``pre_weight``/``gemma`` included), and with
    ``activation`` the weight holds [gate; up] and the result is ``act(gate) * up``. One
    kernel instead of three, and the normed row and the gate|up row never go through HBM.

    Args:
        x: [rows, K] input (the sublayer output when ``norm`` is given), or the uncombined
            output of a split decode attention (then K = heads x head_dim; no ``norm``).
        weight: [N, K] (with ``activation``: [2 * N, K], gate rows first).
        bias: [N] or None.
        norm, residual, eps, gemma, pre_weight: as :func:`add_rms_norm`; ``norm=None`` skips it.
        activation: "silu" / "gelu_tanh" for a fused gate|up projection, else None.

    Returns:
        (output [rows, N], the new residual stream or ``residual`` unchanged without ``norm``).
        The fused kernel writes the new residual into a new tensor; the unfused kernels (more
        than SMALL_ROWS rows, or K over MAX_K) update ``residual`` in place, as add_rms_norm.
    """
    if isinstance(x, AttentionParts) and (not uses_triton(x.parts) or "norm_linear" in FALLBACKS):
        x = combine_parts_torch(x)  # the PyTorch path takes the combined row
    return _dispatch(
        "norm_linear",
        x.parts if isinstance(x, AttentionParts) else x,
        _norm_linear_triton,
        norm_linear_torch,
        (x, weight, bias, norm, residual, eps, gemma, pre_weight, activation),
    )


def combine_parts_torch(p: AttentionParts) -> torch.Tensor:
    """[rows, heads x head_dim]: the splits' outputs weighted by their softmax mass, in p.dtype."""
    acc, m, l_sum = p.parts[..., : p.head_dim], p.parts[..., -2], p.parts[..., -1]
    w = torch.exp(m - m.max(dim=2, keepdim=True).values).nan_to_num(0.0)  # empty splits: 0
    out = (w[..., None] * acc).sum(2) / (w * l_sum).sum(2).clamp_min(1e-30)[..., None]
    return out.to(p.dtype).reshape(p.rows, -1)


def _norm_linear_triton(
    x, weight, bias, norm, residual, eps, gemma, pre_weight, activation
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Launch the fused small-batch linear kernel (arguments as :func:`norm_linear`). More than
    SMALL_ROWS rows, or a K over MAX_K (a row that does not fit one program's registers), run
    the unfused kernels instead: add + RMSNorm (the residual updated in place), cuBLAS,
    act-and-multiply."""
    parts = x if isinstance(x, AttentionParts) else None
    rows, k = (parts.rows, parts.width) if parts is not None else x.shape
    n_out = weight.shape[0] // (2 if activation else 1)
    block_k = _block(k)
    if rows > SMALL_ROWS or block_k > MAX_K:
        if parts is not None:
            x = combine_parts_torch(parts)
        new_residual = residual
        if norm is not None:
            x, new_residual = add_rms_norm(x, residual, norm, eps, gemma, pre_weight)
        y = F.linear(x, weight, bias)
        return (act_and_mul(y, activation) if activation else y), new_residual
    if parts is not None:
        x = parts.parts
    dtype = parts.dtype if parts is not None else x.dtype
    out = torch.empty((rows, n_out), dtype=dtype, device=x.device)
    res_out = torch.empty_like(x) if norm is not None else residual
    res = residual if residual is not None else x
    # about one program per SM or more at batch 1, and at most 8K weights a tile (registers)
    block_n = max(2, min(MAX_K // block_k, _block(max(1, n_out // 128) + 1) // 2))
    _triton_kernels().norm_linear[(triton.cdiv(n_out, block_n), rows)](
        x, res, pre_weight if pre_weight is not None else weight, norm if norm is not None else weight,
        weight, bias if bias is not None else weight, out, res_out if res_out is not None else out,
        k, n_out, n_out if activation else 0, x.stride(0), res.stride(0), weight.stride(0),
        out.stride(0), res_out.stride(0) if res_out is not None else 0, eps,
        x.shape[1] if parts is not None else 1,
        NORM=norm is not None, HAS_RES=residual is not None, HAS_PRE=pre_weight is not None,
        GEMMA=gemma, HAS_BIAS=bias is not None, ACT=activation is not None,
        GELU=activation == "gelu_tanh", BLOCK_N=block_n, BLOCK_K=block_k,
        LIBDEVICE=_libdevice(x), PDL=_pdl(x),
        SPLITS=parts.parts.shape[2] if parts is not None else 0,
        HEAD_DIM=parts.head_dim if parts is not None else 1,
        PART=parts.parts.shape[3] if parts is not None else 1,
        num_warps=8 if activation or block_n * block_k >= 8192 else 4, **_pdl_launch(x),
    )  # fmt: skip
    return out, res_out


# ---------------------------------------------------------------------------------------------
# QK-norm + rotary embedding + KV-cache write
# ---------------------------------------------------------------------------------------------


def rope_and_cache_write_torch(
    qkv: torch.Tensor,
    positions: torch.Tensor,
    slots: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    n_heads: int,
    n_kv_heads: int,
    q_norm: torch.Tensor | None = None,
    k_norm: torch.Tensor | None = None,
    eps: float = 1e-6,
    gemma: bool = False,
) -> torch.Tensor:
    """Reference for :func:`rope_and_cache_write` (transformers' rotate_half form)."""
    tokens = qkv.shape[0]
    head_dim = k_cache.shape[-1]
    q, k, v = qkv.split([n_heads * head_dim, n_kv_heads * head_dim, n_kv_heads * head_dim], -1)
    q = q.reshape(tokens, n_heads, head_dim)
    k = k.reshape(tokens, n_kv_heads, head_dim)
    v = v.reshape(tokens, n_kv_heads, head_dim)
    if q_norm is not None and k_norm is not None:
        q, k = _rms_torch(q, q_norm, eps, gemma), _rms_torch(k, k_norm, eps, gemma)
    c = cos[positions].to(qkv.dtype)[:, None, :]  # [tokens, 1, head_dim / 2]
    s = sin[positions].to(qkv.dtype)[:, None, :]
    q, k = _rotate(q, c, s), _rotate(k, c, s)
    k_cache[slots, :, positions] = k.to(k_cache.dtype)
    v_cache[slots, :, positions] = v.to(v_cache.dtype)
    return q


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


@no_type_check
def _rope_cache_kernel(
    qkv_ptr,
    q_out_ptr,
    k_cache_ptr,
    v_cache_ptr,
    cos_ptr,
    sin_ptr,
    pos_ptr,
    slot_ptr,
    qn_ptr,
    kn_ptr,
    stride_qkv,
    stride_q_tok,
    stride_c_slot,
    stride_c_head,
    stride_c_pos,
    stride_cos,
    n_heads,
    n_kv_heads,
    eps,
    HEAD_DIM: tl.constexpr,
    HALF: tl.constexpr,
    BLOCK_HALF: tl.constexpr,
    QK_NORM: tl.constexpr,
    GEMMA: tl.constexpr,
    LIBDEVICE: tl.constexpr,
    PDL: tl.constexpr,
):
    tok = tl.program_id(0).to(tl.int64)
    head = tl.program_id(1)
    dtype = q_out_ptr.dtype.element_ty
    _gdc_wait(PDL)
    cols = tl.arange(0, BLOCK_HALF)
    mask = cols < HALF
    pos = tl.load(pos_ptr + tok).to(tl.int64)
    c = tl.load(cos_ptr + pos * stride_cos + cols, mask=mask, other=0.0).to(tl.float32)
    s = tl.load(sin_ptr + pos * stride_cos + cols, mask=mask, other=0.0).to(tl.float32)
    is_q = head < n_heads
    # q heads and then k heads are contiguous in the fused QKV row, so head indexes both
    src = qkv_ptr + tok * stride_qkv + head * HEAD_DIM
    x1 = tl.load(src + cols, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(src + HALF + cols, mask=mask, other=0.0).to(tl.float32)
    if QK_NORM:
        wq1 = tl.load(qn_ptr + cols, mask=mask, other=0.0).to(tl.float32)
        wq2 = tl.load(qn_ptr + HALF + cols, mask=mask, other=0.0).to(tl.float32)
        wk1 = tl.load(kn_ptr + cols, mask=mask, other=0.0).to(tl.float32)
        wk2 = tl.load(kn_ptr + HALF + cols, mask=mask, other=0.0).to(tl.float32)
        w1 = tl.where(is_q, wq1, wk1)
        w2 = tl.where(is_q, wq2, wk2)
        var = (tl.sum(x1 * x1, axis=0) + tl.sum(x2 * x2, axis=0)) * (1.0 / HEAD_DIM) + eps
        if LIBDEVICE:
            r = libdevice.rsqrt(var)
        else:
            r = 1.0 / tl.sqrt(var)
        if GEMMA:
            x1 = (x1 * r * (1.0 + w1)).to(dtype).to(tl.float32)
            x2 = (x2 * r * (1.0 + w2)).to(dtype).to(tl.float32)
        else:
            x1 = (w1 * (x1 * r).to(dtype).to(tl.float32)).to(dtype).to(tl.float32)
            x2 = (w2 * (x2 * r).to(dtype).to(tl.float32)).to(dtype).to(tl.float32)
    # (x * cos) + (rotate_half(x) * sin), each product rounded like transformers' bf16 ops
    x1c = (x1 * c).to(dtype).to(tl.float32)
    x2s = (x2 * s).to(dtype).to(tl.float32)
    x2c = (x2 * c).to(dtype).to(tl.float32)
    x1s = (x1 * s).to(dtype).to(tl.float32)
    o1 = (x1c - x2s).to(dtype)
    o2 = (x2c + x1s).to(dtype)
    if is_q:
        dst = q_out_ptr + tok * stride_q_tok + head * HEAD_DIM
        tl.store(dst + cols, o1, mask=mask)
        tl.store(dst + HALF + cols, o2, mask=mask)
    else:
        kv_head = head - n_heads
        slot = tl.load(slot_ptr + tok).to(tl.int64)
        off = slot * stride_c_slot + kv_head * stride_c_head + pos * stride_c_pos
        tl.store(k_cache_ptr + off + cols, o1, mask=mask)
        tl.store(k_cache_ptr + off + HALF + cols, o2, mask=mask)
        v_src = qkv_ptr + tok * stride_qkv + (n_heads + n_kv_heads + kv_head) * HEAD_DIM
        v1 = tl.load(v_src + cols, mask=mask, other=0.0)
        v2 = tl.load(v_src + HALF + cols, mask=mask, other=0.0)
        tl.store(v_cache_ptr + off + cols, v1, mask=mask)
        tl.store(v_cache_ptr + off + HALF + cols, v2, mask=mask)


def rope_and_cache_write(
    qkv: torch.Tensor,
    positions: torch.Tensor,
    slots: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    n_heads: int,
    n_kv_heads: int,
    q_norm: torch.Tensor | None = None,
    k_norm: torch.Tensor | None = None,
    eps: float = 1e-6,
    gemma: bool = False,
) -> torch.Tensor:
    """QK-norm (optional) and rotary embedding for q and k; k and v go into the KV cache.

    Args:
        qkv: [tokens, (n_heads + 2 * n_kv_heads) * head_dim], the fused QKV projection.
        positions: [tokens] int64 position of each token (its row in the cache and the table).
        slots: [tokens] int64 cache slot (sequence) of each token.
        cos, sin: [max_len, head_dim / 2] rotary tables (the duplicated half dropped).
        k_cache, v_cache: [slots, n_kv_heads, max_len, head_dim], written in place.
        n_heads, n_kv_heads: attention heads and key/value heads.
        q_norm, k_norm: per-head RMSNorm weights [head_dim] (Qwen3, Gemma 3) or None.
        eps: RMSNorm epsilon of q_norm/k_norm.
        gemma: Gemma-style norm (``1 + w``).

    Returns:
        q after norm and rotary embedding, [tokens, n_heads, head_dim].
    """
    return _dispatch(
        "rope_and_cache_write",
        qkv,
        _rope_and_cache_write_triton,
        rope_and_cache_write_torch,
        (
            qkv,
            positions,
            slots,
            cos,
            sin,
            k_cache,
            v_cache,
            n_heads,
            n_kv_heads,
            q_norm,
            k_norm,
            eps,
            gemma,
        ),
    )


def _rope_and_cache_write_triton(
    qkv,
    positions,
    slots,
    cos,
    sin,
    k_cache,
    v_cache,
    n_heads,
    n_kv_heads,
    q_norm,
    k_norm,
    eps,
    gemma,
) -> torch.Tensor:
    """Launch the QK-norm + RoPE + cache-write kernel (as :func:`rope_and_cache_write`)."""
    tokens = qkv.shape[0]
    head_dim = k_cache.shape[-1]
    q_out = torch.empty((tokens, n_heads, head_dim), dtype=qkv.dtype, device=qkv.device)
    qk_norm = q_norm is not None and k_norm is not None
    norm = q_norm if q_norm is not None else cos
    _triton_kernels().rope_cache[(tokens, n_heads + n_kv_heads)](
        qkv, q_out, k_cache, v_cache, cos, sin, positions, slots, norm,
        k_norm if k_norm is not None else cos,
        qkv.stride(0), q_out.stride(0), k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        cos.stride(0), n_heads, n_kv_heads, eps,
        HEAD_DIM=head_dim, HALF=head_dim // 2, BLOCK_HALF=_block(head_dim // 2),
        QK_NORM=qk_norm, GEMMA=gemma, LIBDEVICE=_libdevice(qkv), PDL=_pdl(qkv),
        num_warps=1 if head_dim <= 128 else 2, **_pdl_launch(qkv),
    )  # fmt: skip
    return q_out


# ---------------------------------------------------------------------------------------------
# decode attention
# ---------------------------------------------------------------------------------------------


def decode_attention_torch(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    slots: torch.Tensor,
    lengths: torch.Tensor,
    scale: float,
    window: int = 0,
    softcap: float = 0.0,
    partial: bool = False,
) -> torch.Tensor:
    """Reference for :func:`decode_attention`: masked softmax over each row's cache slot
    (never split, so ``partial`` changes nothing)."""
    acc = torch.promote_types(q.dtype, torch.float32)
    n_heads = q.shape[1]
    k = k_cache[slots].to(acc)  # [rows, n_kv_heads, max_len, head_dim]
    v = v_cache[slots].to(acc)
    group = n_heads // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    scores = torch.einsum("bhd,bhpd->bhp", q.to(acc), k) * scale
    if softcap:
        scores = softcap * torch.tanh(scores / softcap)
    pos = torch.arange(k.shape[2], device=q.device)
    valid = pos[None, :] < lengths[:, None]
    if window:
        valid &= pos[None, :] >= lengths[:, None] - window
    scores = scores.masked_fill(~valid[:, None, :], float("-inf"))
    probs = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return torch.einsum("bhp,bhpd->bhd", probs, v).to(q.dtype)


@no_type_check
def _decode_attention_kernel(
    q_ptr,
    k_cache_ptr,
    v_cache_ptr,
    out_ptr,
    slot_ptr,
    len_ptr,
    stride_q_tok,
    stride_q_head,
    stride_c_slot,
    stride_c_head,
    stride_c_pos,
    stride_o_tok,
    stride_o_head,
    group,
    scale,
    softcap,
    window,
    chunk,
    part_ptr,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    SOFTCAP: tl.constexpr,
    SPLIT: tl.constexpr,
    PDL: tl.constexpr,
):
    # program (row, head, split): positions [lo + split * chunk, lo + (split + 1) * chunk) of
    # the row's window. SPLIT (flash-decoding, for small batches whose few rows x heads would
    # leave most SMs idle): write this split's (max, sum, unnormalised output) to part_ptr for
    # _attention_combine_kernel; else (one split) write the output itself.
    row = tl.program_id(0).to(tl.int64)
    head = tl.program_id(1)
    split = tl.program_id(2)
    _gdc_wait(PDL)
    kv_head = head // group
    dtype = out_ptr.dtype.element_ty
    d = tl.arange(0, BLOCK_D)
    d_mask = d < HEAD_DIM
    n = tl.arange(0, BLOCK_N)
    slot = tl.load(slot_ptr + row).to(tl.int64)
    length = tl.load(len_ptr + row).to(tl.int32)
    lo = tl.maximum(length - window, 0)
    q = tl.load(q_ptr + row * stride_q_tok + head * stride_q_head + d, mask=d_mask, other=0.0)
    q = q.to(tl.float32)
    base = slot * stride_c_slot + kv_head * stride_c_head
    m_i = -float("inf")
    l_i = 0.0
    acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    first = lo + split * chunk
    for start in range(first, tl.minimum(length, first + chunk), BLOCK_N):
        pos = start + n
        p_mask = pos < length
        offs = base + pos.to(tl.int64)[:, None] * stride_c_pos + d[None, :]
        kv_mask = p_mask[:, None] & d_mask[None, :]
        k = tl.load(k_cache_ptr + offs, mask=kv_mask, other=0.0).to(tl.float32)
        s = tl.sum(k * q[None, :], axis=1) * scale
        if SOFTCAP:
            s = softcap * (1.0 - 2.0 / (tl.exp(2.0 * s / softcap) + 1.0))
        s = tl.where(p_mask, s, -float("inf"))
        m_new = tl.maximum(tl.max(s, axis=0), m_i)
        alpha = tl.exp(m_i - m_new)
        p = tl.exp(s - m_new)
        v = tl.load(v_cache_ptr + offs, mask=kv_mask, other=0.0).to(tl.float32)
        acc = acc * alpha + tl.sum(p[:, None] * v, axis=0)
        l_i = l_i * alpha + tl.sum(p, axis=0)
        m_i = m_new
    if SPLIT:  # [rows, heads, splits, BLOCK_D + 2] float32: acc, then m and l
        part = part_ptr + ((row * tl.num_programs(1) + head) * tl.num_programs(2) + split) * (
            BLOCK_D + 2
        )
        tl.store(part + d, acc)
        tl.store(part + BLOCK_D, m_i)
        tl.store(part + BLOCK_D + 1, l_i)
    else:
        l_i = tl.where(l_i > 0.0, l_i, 1.0)
        out = acc / l_i
        tl.store(
            out_ptr + row * stride_o_tok + head * stride_o_head + d, out.to(dtype), mask=d_mask
        )


@no_type_check
def _decode_attention_grouped_kernel(
    q_ptr,
    k_cache_ptr,
    v_cache_ptr,
    out_ptr,
    slot_ptr,
    len_ptr,
    stride_q_tok,
    stride_q_head,
    stride_c_slot,
    stride_c_head,
    stride_c_pos,
    stride_o_tok,
    stride_o_head,
    group,
    n_heads,
    scale,
    softcap,
    window,
    chunk,
    part_ptr,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_G: tl.constexpr,
    SOFTCAP: tl.constexpr,
    SPLIT: tl.constexpr,
    IEEE: tl.constexpr,
    PDL: tl.constexpr,
):
    # program (row, kv_head, split): as _decode_attention_kernel, for all `group` query heads
    # of one KV head at once ([BLOCK_G, HEAD_DIM] queries, padded to the 16 rows tl.dot needs),
    # so each cached key and value is loaded once, not once per query head.
    row = tl.program_id(0).to(tl.int64)
    kv_head = tl.program_id(1)
    split = tl.program_id(2)
    _gdc_wait(PDL)
    dtype = out_ptr.dtype.element_ty
    d = tl.arange(0, BLOCK_D)
    d_mask = d < HEAD_DIM
    g = tl.arange(0, BLOCK_G)
    g_mask = g < group
    heads = kv_head * group + g
    n = tl.arange(0, BLOCK_N)
    slot = tl.load(slot_ptr + row).to(tl.int64)
    length = tl.load(len_ptr + row).to(tl.int32)
    lo = tl.maximum(length - window, 0)
    q_offs = row * stride_q_tok + heads[:, None] * stride_q_head + d[None, :]
    q = tl.load(q_ptr + q_offs, mask=g_mask[:, None] & d_mask[None, :], other=0.0)
    base = slot * stride_c_slot + kv_head * stride_c_head
    m_i = tl.full([BLOCK_G], -float("inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_G], dtype=tl.float32)
    acc = tl.zeros([BLOCK_G, BLOCK_D], dtype=tl.float32)
    first = lo + split * chunk
    for start in range(first, tl.minimum(length, first + chunk), BLOCK_N):
        pos = start + n
        p_mask = pos < length
        offs = base + pos.to(tl.int64)[:, None] * stride_c_pos + d[None, :]
        kv_mask = p_mask[:, None] & d_mask[None, :]
        k = tl.load(k_cache_ptr + offs, mask=kv_mask, other=0.0)
        if IEEE:  # float32 caches: exact float32 products (no TF32), as the reference
            s = tl.dot(q, tl.trans(k), input_precision="ieee") * scale
        else:
            s = tl.dot(q, tl.trans(k)) * scale
        if SOFTCAP:
            s = softcap * (1.0 - 2.0 / (tl.exp(2.0 * s / softcap) + 1.0))
        s = tl.where(p_mask[None, :], s, -float("inf"))
        m_new = tl.maximum(tl.max(s, axis=1), m_i)
        alpha = tl.exp(m_i - m_new)
        p = tl.exp(s - m_new[:, None])
        v = tl.load(v_cache_ptr + offs, mask=kv_mask, other=0.0)
        if IEEE:
            acc = acc * alpha[:, None] + tl.dot(p, v, input_precision="ieee")
        else:
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        m_i = m_new
    if SPLIT:  # the same [rows, heads, splits, BLOCK_D + 2] layout as the per-head kernel
        part = part_ptr + ((row * n_heads + heads) * tl.num_programs(2) + split) * (BLOCK_D + 2)
        tl.store(part[:, None] + d[None, :], acc, mask=g_mask[:, None])
        tl.store(part + BLOCK_D, m_i, mask=g_mask)
        tl.store(part + BLOCK_D + 1, l_i, mask=g_mask)
    else:
        l_i = tl.where(l_i > 0.0, l_i, 1.0)
        out = acc / l_i[:, None]
        o_offs = row * stride_o_tok + heads[:, None] * stride_o_head + d[None, :]
        tl.store(out_ptr + o_offs, out.to(dtype), mask=g_mask[:, None] & d_mask[None, :])


@no_type_check
def _attention_combine_kernel(
    part_ptr,
    out_ptr,
    stride_o_tok,
    stride_o_head,
    n_splits,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_S: tl.constexpr,
    PDL: tl.constexpr,
):
    # program (row, head): softmax-weighted sum of the splits' partial outputs; an empty split
    # (m = -inf, l = 0) weighs 0
    row = tl.program_id(0).to(tl.int64)
    head = tl.program_id(1)
    _gdc_wait(PDL)
    d = tl.arange(0, BLOCK_D)
    sp = tl.arange(0, BLOCK_S)
    s_mask = sp < n_splits
    part = part_ptr + (row * tl.num_programs(1) + head) * n_splits * (BLOCK_D + 2)
    m = tl.load(part + sp * (BLOCK_D + 2) + BLOCK_D, mask=s_mask, other=-float("inf"))
    l_s = tl.load(part + sp * (BLOCK_D + 2) + BLOCK_D + 1, mask=s_mask, other=0.0)
    m_max = tl.max(m, axis=0)
    w = tl.where(m > -float("inf"), tl.exp(m - m_max), 0.0)
    acc = tl.load(part + sp[:, None] * (BLOCK_D + 2) + d[None, :], mask=s_mask[:, None], other=0.0)
    total = tl.sum(w * l_s, axis=0)
    total = tl.where(total > 0.0, total, 1.0)
    out = tl.sum(w[:, None] * acc, axis=0) / total
    dtype = out_ptr.dtype.element_ty
    tl.store(
        out_ptr + row * stride_o_tok + head * stride_o_head + d, out.to(dtype), mask=d < HEAD_DIM
    )


def decode_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    slots: torch.Tensor,
    lengths: torch.Tensor,
    scale: float,
    window: int = 0,
    softcap: float = 0.0,
    partial: bool = False,
) -> torch.Tensor | AttentionParts:
    """Attention of one new query token per row over the row's slot of the KV cache.

    Args:
        q: [rows, n_heads, head_dim], already rotated.
        k_cache, v_cache: [slots, n_kv_heads, max_len, head_dim]; the row's new key is in it.
        slots: [rows] int64 cache slot of each row.
        lengths: [rows] int32/int64 valid positions (the new token included) of each row.
        scale: score scale (head_dim ** -0.5, or query_pre_attn_scalar ** -0.5 for Gemma).
        window: sliding window (attend to the last ``window`` positions), 0 for global layers.
        softcap: attention logit soft-capping (``c * tanh(s / c)``), 0 for none.
        partial: where the kernel splits the positions (few rows) into at most
            ``FUSED_COMBINE_SPLITS`` splits, return the uncombined
            :class:`AttentionParts` for :func:`norm_linear` to combine.

    Returns:
        [rows, n_heads, head_dim] in q's dtype, or AttentionParts (see ``partial``).
    """
    return _dispatch(
        "decode_attention",
        q,
        _decode_attention_triton,
        decode_attention_torch,
        (q, k_cache, v_cache, slots, lengths, scale, window, softcap, partial),
    )


def _decode_attention_triton(
    q, k_cache, v_cache, slots, lengths, scale, window, softcap, partial
) -> torch.Tensor | AttentionParts:
    """Launch the decode attention kernel (arguments as :func:`decode_attention`)."""
    rows, n_heads, head_dim = q.shape
    out = torch.empty_like(q)
    block_d = _block(head_dim)
    # 64 positions x 128 dims x 4 B x 2 (k and v tiles) = 64 KiB of registers per program at most
    block_n = 64 if block_d <= 128 else 32
    # Few rows x heads (batch-1 decode): split each row's positions over programs so that
    # the cache is read by many SMs at once, then combine; the split count follows the cache
    # length, not the row's (a CUDA graph replays the same grid at every length), and splits
    # past a row's length return at once.
    span = min(k_cache.shape[2], window) if window else k_cache.shape[2]
    chunk = 1 << 30
    splits = 1
    if rows * n_heads < 64 and span > block_n:  # one tile of positions a program
        chunk, splits = block_n, triton.cdiv(span, block_n)
    parts = torch.empty((rows, n_heads, splits, block_d + 2) if splits > 1 else (1,),
                        dtype=torch.float32, device=q.device)  # fmt: skip
    kernels = _triton_kernels()
    group, n_kv = n_heads // k_cache.shape[1], k_cache.shape[1]
    if GROUPED_ATTENTION and group > 1:
        kernels.decode_attention_grouped[(rows, n_kv, splits)](
            q, k_cache, v_cache, out, slots, lengths,
            q.stride(0), q.stride(1), k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
            out.stride(0), out.stride(1), group, n_heads, scale, softcap or 1.0,
            window or 1 << 30, chunk, parts,
            HEAD_DIM=head_dim, BLOCK_D=block_d, BLOCK_N=block_n, BLOCK_G=max(16, _block(group)),
            SOFTCAP=bool(softcap), SPLIT=splits > 1, IEEE=q.dtype == torch.float32,
            PDL=_pdl(q), num_warps=4, **_pdl_launch(q),
        )  # fmt: skip
    else:
        kernels.decode_attention[(rows, n_heads, splits)](
            q, k_cache, v_cache, out, slots, lengths,
            q.stride(0), q.stride(1), k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
            out.stride(0), out.stride(1), group, scale, softcap or 1.0,
            window or 1 << 30, chunk, parts,
            HEAD_DIM=head_dim, BLOCK_D=block_d, BLOCK_N=block_n, SOFTCAP=bool(softcap),
            SPLIT=splits > 1, PDL=_pdl(q), num_warps=4, **_pdl_launch(q),
        )  # fmt: skip
    if splits > 1 and partial and splits <= FUSED_COMBINE_SPLITS:
        return AttentionParts(parts, head_dim, q.dtype)
    if splits > 1:
        kernels.attention_combine[(rows, n_heads)](
            parts, out, out.stride(0), out.stride(1), splits,
            HEAD_DIM=head_dim, BLOCK_D=block_d, BLOCK_S=_block(splits), PDL=_pdl(q),
            num_warps=4, **_pdl_launch(q),
        )  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------------
# greedy choice
# ---------------------------------------------------------------------------------------------


def argmax_torch(logits: torch.Tensor) -> torch.Tensor:
    """Reference for :func:`argmax`."""
    return logits.argmax(-1)


@no_type_check
def _argmax_chunk_kernel(
    x_ptr, val_ptr, idx_ptr, n_cols, stride_x, BLOCK: tl.constexpr, PDL: tl.constexpr
):
    # program (row, chunk): the chunk's largest logit and its first index
    row = tl.program_id(0).to(tl.int64)
    chunk = tl.program_id(1)
    _gdc_wait(PDL)
    cols = chunk * BLOCK + tl.arange(0, BLOCK)
    v = tl.load(x_ptr + row * stride_x + cols, mask=cols < n_cols, other=-float("inf"))
    v = v.to(tl.float32)
    at = row * tl.num_programs(1) + chunk
    tl.store(val_ptr + at, tl.max(v, axis=0))
    tl.store(idx_ptr + at, chunk * BLOCK + tl.argmax(v, axis=0, tie_break_left=True))


@no_type_check
def _argmax_final_kernel(
    val_ptr, idx_ptr, out_ptr, n_chunks, BLOCK_C: tl.constexpr, PDL: tl.constexpr
):
    # program (row): the first chunk holding the row's maximum, so ties go to the first index
    row = tl.program_id(0).to(tl.int64)
    _gdc_wait(PDL)
    c = tl.arange(0, BLOCK_C)
    vals = tl.load(val_ptr + row * n_chunks + c, mask=c < n_chunks, other=-float("inf"))
    best = tl.argmax(vals, axis=0, tie_break_left=True)
    tl.store(out_ptr + row, tl.load(idx_ptr + row * n_chunks + best).to(tl.int64))


def argmax(logits: torch.Tensor) -> torch.Tensor:
    """[rows, vocab] -> [rows] int64 index of each row's largest logit (the first one on ties,
    as ``torch.argmax``), in two small kernels: chunk maxima over many programs, then the row's.
    At batch 1 PyTorch's one-block reduction over a 50k-262k vocabulary takes 9-13 us."""
    return _dispatch("argmax", logits, _argmax_triton, argmax_torch, (logits,))


def _argmax_triton(logits: torch.Tensor) -> torch.Tensor:
    kernels, pdl = _triton_kernels(), _pdl(logits)  # first: it imports triton
    rows, n_cols = logits.shape
    block = 4096
    n_chunks = triton.cdiv(n_cols, block)
    vals = torch.empty((rows, n_chunks), dtype=torch.float32, device=logits.device)
    idx = torch.empty((rows, n_chunks), dtype=torch.int32, device=logits.device)
    out = torch.empty(rows, dtype=torch.int64, device=logits.device)
    kernels.argmax_chunk[(rows, n_chunks)](logits, vals, idx, n_cols, logits.stride(0),
                                           BLOCK=block, PDL=pdl, num_warps=8, **_pdl_launch(logits))  # fmt: skip
    kernels.argmax_final[(rows,)](vals, idx, out, n_chunks, BLOCK_C=_block(n_chunks), PDL=pdl,
                                  num_warps=4, **_pdl_launch(logits))  # fmt: skip
    return out


@functools.cache
def _triton_kernels() -> SimpleNamespace:
    """Import Triton and jit the kernels (once). TRITON_INTERPRET must be set before this."""
    global triton, tl, libdevice, _activate, _gdc_wait
    import triton as _triton
    import triton.language as _tl

    triton, tl = _triton, _tl
    try:
        from triton.language.extra import libdevice as _libdevice_module

        libdevice = _libdevice_module
    except ImportError:  # older Triton: the portable formulas below stand in
        libdevice = None
    logger.info("Triton %s kernels (interpreter: %s)", _triton.__version__,
                os.environ.get("TRITON_INTERPRET") == "1")  # fmt: skip
    # helpers called from kernel bodies are looked up as module globals when a kernel compiles
    _activate = _triton.jit(_activate)
    _gdc_wait = _triton.jit(_gdc_wait)
    return SimpleNamespace(
        add_rms_norm=_triton.jit(_add_rms_norm_kernel),
        norm_linear=_triton.jit(_norm_linear_kernel),
        act_and_mul=_triton.jit(_act_and_mul_kernel),
        rope_cache=_triton.jit(_rope_cache_kernel),
        decode_attention=_triton.jit(_decode_attention_kernel),
        decode_attention_grouped=_triton.jit(_decode_attention_grouped_kernel),
        attention_combine=_triton.jit(_attention_combine_kernel),
        argmax_chunk=_triton.jit(_argmax_chunk_kernel),
        argmax_final=_triton.jit(_argmax_final_kernel),
    )
