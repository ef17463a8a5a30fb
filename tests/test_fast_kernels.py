"""The `fast` back-end's Triton kernels against float64 PyTorch references on fresh random inputs.

On the CPU the kernels run in Triton's interpreter (TRITON_INTERPRET=1, set here before Triton is
first imported); the ``gpu`` variants run the compiled kernels on CUDA, also in bfloat16.
"""

from __future__ import annotations

import os

import pytest
import torch

if "TRITON_INTERPRET" not in os.environ:  # read when Triton is first imported: set it before
    os.environ["TRITON_INTERPRET"] = "0" if torch.cuda.is_available() else "1"

from pmpprag.fast import kernels

pytest.importorskip("triton")

# (rows, hidden): ragged sizes, not powers of two
NORM_SHAPES = [(1, 64), (3, 576), (7, 640), (5, 1000)]
# (tokens, n_heads, n_kv_heads, head_dim)
ROPE_SHAPES = [(1, 4, 1, 64), (5, 9, 3, 64), (3, 4, 1, 256), (2, 16, 8, 128)]
# (rows, n_heads, n_kv_heads, head_dim, max_len, window, softcap)
ATTN_SHAPES = [
    (1, 4, 1, 64, 37, 0, 0.0),
    (3, 9, 3, 64, 200, 0, 0.0),
    (4, 4, 1, 256, 80, 16, 0.0),
    (2, 6, 2, 96, 130, 0, 30.0),
    (1, 4, 1, 256, 300, 100, 0.0),  # split over programs, with a sliding window
    (1, 2, 1, 64, 600, 0, 0.0),  # 10 splits: combined by its own kernel even when partial
]


def cases(device: str) -> list[tuple[str, torch.dtype]]:
    if device == "cpu":
        return [(device, torch.float32)]
    return [(device, torch.float32), (device, torch.bfloat16)]


def tol(dtype: torch.dtype) -> dict[str, float]:
    return {"atol": 2e-5, "rtol": 2e-5} if dtype == torch.float32 else {"atol": 3e-2, "rtol": 3e-2}


@pytest.fixture(autouse=True)
def triton_on() -> object:
    old = kernels.set_backend("triton")
    yield
    kernels.set_backend(old)


def run_add_rms_norm(device: str, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    for rows, hidden in NORM_SHAPES:
        for gemma, with_res, with_pre in [(False, True, False), (False, False, False),
                                          (True, True, True), (True, False, False)]:  # fmt: skip
            x, res, w, pre = (torch.randn(rows, hidden, generator=gen) for _ in range(4))
            w, pre = w[0], pre[0]
            expected, expected_res = kernels.add_rms_norm_torch(
                x.double(), res.double() if with_res else None, w.double(), 1e-6, gemma,
                pre.double() if with_pre else None,
            )  # fmt: skip
            dev = [t.to(device, dtype) for t in (x, res, w, pre)]
            out, new_res = kernels.add_rms_norm(dev[0], dev[1] if with_res else None, dev[2],
                                                1e-6, gemma, dev[3] if with_pre else None)  # fmt: skip
            torch.testing.assert_close(out.double().cpu(), expected, **tol(dtype))
            torch.testing.assert_close(new_res.double().cpu(), expected_res, **tol(dtype))
            if with_res:
                assert new_res.data_ptr() == dev[1].data_ptr()  # the residual is updated in place


def run_act_and_mul(device: str, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(1)
    for rows, inter in [(1, 64), (3, 1536), (5, 2048 + 17)]:
        gate_up = 3 * torch.randn(rows, 2 * inter, generator=gen)
        for activation in ("silu", "gelu_tanh"):
            expected = kernels.act_and_mul_torch(gate_up.double(), activation)  # type: ignore[arg-type]
            out = kernels.act_and_mul(gate_up.to(device, dtype), activation)  # type: ignore[arg-type]
            torch.testing.assert_close(out.double().cpu(), expected, **tol(dtype))


def run_rope_and_cache_write(device: str, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(2)
    for tokens, heads, kv_heads, head_dim in ROPE_SHAPES:
        for qk_norm, gemma in [(False, False), (True, False), (True, True)]:
            max_len, n_slots = 50, 4
            qkv = torch.randn(tokens, (heads + 2 * kv_heads) * head_dim, generator=gen)
            positions = torch.randperm(max_len, generator=gen)[:tokens]
            slots = torch.randint(0, n_slots, (tokens,), generator=gen)
            inv_freq = 1.0 / 10000 ** (torch.arange(0, head_dim, 2).double() / head_dim)
            angles = torch.arange(max_len).double()[:, None] * inv_freq
            cos, sin = angles.cos(), angles.sin()
            qn, kn = torch.randn(head_dim, generator=gen), torch.randn(head_dim, generator=gen)
            cache = torch.zeros(n_slots, kv_heads, max_len, head_dim, dtype=torch.float64)
            k_ref, v_ref = cache.clone(), cache.clone()
            expected = kernels.rope_and_cache_write_torch(
                qkv.double(), positions, slots, cos, sin, k_ref, v_ref, heads, kv_heads,
                qn.double() if qk_norm else None, kn.double() if qk_norm else None, 1e-6, gemma,
            )  # fmt: skip
            k_cache = cache.to(device, dtype)
            v_cache = cache.to(device, dtype)
            q = kernels.rope_and_cache_write(
                qkv.to(device, dtype), positions.to(device), slots.to(device),
                cos.to(device, dtype), sin.to(device, dtype), k_cache, v_cache, heads, kv_heads,
                qn.to(device, dtype) if qk_norm else None, kn.to(device, dtype) if qk_norm else None,
                1e-6, gemma,
            )  # fmt: skip
            torch.testing.assert_close(q.double().cpu(), expected, **tol(dtype))
            torch.testing.assert_close(k_cache.double().cpu(), k_ref, **tol(dtype))
            torch.testing.assert_close(v_cache.double().cpu(), v_ref, **tol(dtype))


def run_decode_attention(device: str, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(3)
    split_seen = 0
    for rows, heads, kv_heads, head_dim, max_len, window, softcap in ATTN_SHAPES:
        n_slots = rows + 2
        k_cache = torch.randn(n_slots, kv_heads, max_len, head_dim, generator=gen)
        v_cache = torch.randn(n_slots, kv_heads, max_len, head_dim, generator=gen)
        q = torch.randn(rows, heads, head_dim, generator=gen)
        slots = torch.randperm(n_slots, generator=gen)[:rows]
        lengths = torch.randint(1, max_len + 1, (rows,), generator=gen)
        lengths[0] = max_len  # one row uses the whole slot
        scale = head_dim**-0.5
        expected = kernels.decode_attention_torch(q.double(), k_cache.double(), v_cache.double(),
                                                  slots, lengths, scale, window, softcap)  # fmt: skip
        args = (q.to(device, dtype), k_cache.to(device, dtype), v_cache.to(device, dtype),
                slots.to(device), lengths.to(device, torch.int32), scale, window, softcap)  # fmt: skip
        out = kernels.decode_attention(*args)
        assert isinstance(out, torch.Tensor)
        torch.testing.assert_close(out.double().cpu(), expected, **tol(dtype))
        # uncombined splits: combined in PyTorch, or inside the o-projection (norm_linear)
        parts = kernels.decode_attention(*args, partial=True)
        if not isinstance(parts, kernels.AttentionParts):
            torch.testing.assert_close(parts.double().cpu(), expected, **tol(dtype))
        else:
            split_seen += 1
            flat = expected.reshape(rows, -1)
            torch.testing.assert_close(
                kernels.combine_parts_torch(parts).double().cpu(), flat, **tol(dtype)
            )
            w_o = torch.randn(40, heads * head_dim, generator=gen) / (heads * head_dim) ** 0.5
            projected, _ = kernels.norm_linear(parts, w_o.to(device, dtype))
            torch.testing.assert_close(
                projected.double().cpu(), flat @ w_o.double().T, **tol(dtype)
            )
    # the shapes with few rows x heads and long caches were split; 10 splits came combined
    assert split_seen == 3


def run_norm_linear(device: str, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(4)
    # (rows, K, N): K over several BLOCK_K chunks and ragged, N not a multiple of BLOCK_N
    for rows, k, n in [(1, 64, 24), (2, 576, 70), (3, 640, 9), (4, 700, 33)]:
        for norm, residual, gemma, pre, bias, activation in [
            (False, False, False, False, False, None),
            (False, False, False, False, True, None),
            (True, True, False, False, True, None),
            (True, False, False, False, False, None),
            (True, True, True, True, False, "gelu_tanh"),
            (True, True, False, False, False, "silu"),
            (True, False, True, False, False, None),
        ]:
            x, res = torch.randn(rows, k, generator=gen), torch.randn(rows, k, generator=gen)
            w_norm, w_pre = torch.randn(k, generator=gen), torch.randn(k, generator=gen)
            weight = torch.randn(n * (2 if activation else 1), k, generator=gen) / k**0.5
            b = torch.randn(n, generator=gen)
            args = (norm and w_norm, residual and res, gemma, pre and w_pre, bias and b)
            expected, expected_res = kernels.norm_linear_torch(
                x.double(), weight.double(), args[4].double() if bias else None,
                w_norm.double() if norm else None, res.double() if residual else None, 1e-6,
                gemma, w_pre.double() if pre else None, activation,  # type: ignore[arg-type]
            )  # fmt: skip
            on = [t.to(device, dtype) for t in (x, weight, b, w_norm, res, w_pre)]
            out, new_res = kernels.norm_linear(
                on[0], on[1], on[2] if bias else None, on[3] if norm else None,
                on[4] if residual else None, 1e-6, gemma, on[5] if pre else None,
                activation,  # type: ignore[arg-type]
            )  # fmt: skip
            torch.testing.assert_close(out.double().cpu(), expected, **tol(dtype))
            if norm:
                assert new_res is not None and expected_res is not None
                torch.testing.assert_close(new_res.double().cpu(), expected_res, **tol(dtype))
                if residual:
                    torch.testing.assert_close(on[4].cpu(), res.to(dtype))  # input left as it was


@pytest.mark.parametrize("limit", [("MAX_K", 64), ("SMALL_ROWS", 1)])
def test_norm_linear_past_its_limits_runs_the_unfused_kernels(
    monkeypatch: pytest.MonkeyPatch, limit: tuple[str, int]
) -> None:
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("Triton was imported without TRITON_INTERPRET=1 (run this module on its own)")
    monkeypatch.setattr(kernels, *limit)  # K = 100 over MAX_K, or 2 rows over SMALL_ROWS
    gen = torch.Generator().manual_seed(5)
    x, res, norm = (torch.randn(2, 100, generator=gen) for _ in range(3))
    weight = torch.randn(2 * 12, 100, generator=gen)
    expected, expected_res = kernels.norm_linear_torch(x, weight, None, norm[0], res, 1e-6, False,
                                                       None, "silu")  # fmt: skip
    out, new_res = kernels.norm_linear(x, weight, None, norm[0], res, 1e-6, False, None, "silu")
    torch.testing.assert_close(out, expected, **tol(torch.float32))
    assert new_res is not None and expected_res is not None
    torch.testing.assert_close(new_res, expected_res, **tol(torch.float32))
    assert new_res.data_ptr() == res.data_ptr()  # updated in place, as add_rms_norm does


def run_argmax(device: str, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(6)
    for rows, vocab in [(1, 100), (2, 49152), (3, 4096 * 3 + 5)]:
        logits = torch.randn(rows, vocab, generator=gen)
        logits[0, vocab // 2] = logits[0, vocab - 1] = 9.0  # a tie: the first index wins
        got = kernels.argmax(logits.to(device, dtype)).cpu()
        assert got.dtype == torch.int64
        assert got.tolist() == logits.to(dtype).argmax(-1).tolist()
        assert got[0] == vocab // 2


def run_decode_attention_grouped(device: str, dtype: torch.dtype) -> None:
    """One program for all query heads of a KV head (tl.dot over them; the default)."""
    _attention_with(True, device, dtype)


def run_decode_attention_per_head(device: str, dtype: torch.dtype) -> None:
    """The same checks with one program per query head (``PMPPRAG_FAST_GQA=0``)."""
    _attention_with(False, device, dtype)


def _attention_with(grouped: bool, device: str, dtype: torch.dtype) -> None:
    old = kernels.GROUPED_ATTENTION
    kernels.GROUPED_ATTENTION = grouped
    try:
        run_decode_attention(device, dtype)
    finally:
        kernels.GROUPED_ATTENTION = old


KERNELS = [
    run_argmax,
    run_add_rms_norm,
    run_act_and_mul,
    run_rope_and_cache_write,
    run_decode_attention_grouped,
    run_decode_attention_per_head,
    run_norm_linear,
]


@pytest.mark.parametrize("check", KERNELS, ids=lambda f: f.__name__.removeprefix("run_"))
def test_kernel_matches_float64_reference_in_interpreter(check) -> None:  # type: ignore[no-untyped-def]
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("Triton was imported without TRITON_INTERPRET=1 (run this module on its own)")
    for device, dtype in cases("cpu"):
        check(device, dtype)


@pytest.mark.gpu
@pytest.mark.parametrize("check", KERNELS, ids=lambda f: f.__name__.removeprefix("run_"))
def test_kernel_matches_float64_reference_on_cuda(check) -> None:  # type: ignore[no-untyped-def]
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("compiled kernels: run with TRITON_INTERPRET=0 on the GPU")
    for device, dtype in cases("cuda"):
        check(device, dtype)
