"""Execute the Triton kernels of the chapter 24 notes and check them against PyTorch.

Every ```python block of data/corpus/ch24-beyond-cuda-triton-ptx-tile-languages.md is
extracted in order and executed in one shared namespace (each block is written to a
temporary file first, because ``triton.jit`` reads a kernel's source with ``inspect``).
The kernels defined there (vector add, fused and online softmax, autotuned matmul, fused
attention, layer norm forward, 1D convolution) are then run on fresh random inputs at a
few shapes, including ragged sizes that are not multiples of the block sizes, and
compared with a PyTorch reference. The script prints the max abs error of every case and
exits non-zero on any mismatch.

On a machine without a GPU, run it through Triton's CPU interpreter:

    TRITON_INTERPRET=1 python scripts/check_triton_notes.py

On a CUDA GPU, run it without TRITON_INTERPRET (device = "cuda" if available else "cpu").
There ``tl.dot`` on fp32 inputs uses TF32 tensor cores by default, so the matmul
tolerance is wider on the GPU than in the interpreter.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from pathlib import Path

import torch

NOTES = (
    Path(__file__).resolve().parents[1]
    / "data"
    / "corpus"
    / "ch24-beyond-cuda-triton-ptx-tile-languages.md"
)
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)

INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def load_notes(tmpdir: Path) -> dict:
    """Exec every ```python block of the notes, in order, in one namespace."""
    blocks = FENCE.findall(NOTES.read_text(encoding="utf-8"))
    if not blocks:
        sys.exit(f"no ```python blocks found in {NOTES}")
    ns: dict = {"__name__": "ch24_notes"}
    for i, src in enumerate(blocks, 1):
        path = tmpdir / f"ch24_block_{i:02d}.py"
        path.write_text(src, encoding="utf-8")
        exec(compile(src, str(path), "exec"), ns)
    print(f"executed {len(blocks)} python blocks from {NOTES.name}")
    return ns


def cpu_bench(fn, quantiles=None, **_):
    """Stand-in for Triton's GPU benchmarker so that autotuning runs in the interpreter."""
    start = time.perf_counter()
    fn()
    ms = (time.perf_counter() - start) * 1e3
    return [ms] * len(quantiles) if quantiles else ms


def main() -> int:
    if DEVICE == "cpu" and not INTERPRET:
        print("no CUDA device: run with TRITON_INTERPRET=1 to use the CPU interpreter")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        ns = load_notes(Path(tmp))
        from triton.runtime.autotuner import Autotuner

        if DEVICE == "cpu":
            for obj in ns.values():
                if isinstance(obj, Autotuner):
                    obj.do_bench = cpu_bench
        return run_checks(ns)


def run_checks(ns: dict) -> int:
    torch.manual_seed(0)
    dev = DEVICE
    mm_tol = 1e-4 if DEVICE == "cpu" else 5e-2  # TF32 tensor cores on the GPU
    failures = 0

    def report(name: str, shape, got: torch.Tensor, ref: torch.Tensor, tol: float):
        nonlocal failures
        err = (got.float() - ref.float()).abs().max().item()
        ok = err <= tol and got.shape == ref.shape
        failures += not ok
        print(
            f"{'ok  ' if ok else 'FAIL'} {name:15s} {shape!s:18s} "
            f"max abs err {err:.3e} (tol {tol:.0e})"
        )

    for n in (1, 1000, 4099):
        x, y = torch.randn(n, device=dev), torch.randn(n, device=dev)
        report("add", (n,), ns["add"](x, y), x + y, 1e-6)

    for shape in ((4, 7), (3, 128), (5, 1000)):
        x = torch.randn(*shape, device=dev)
        report("softmax", shape, ns["softmax"](x), torch.softmax(x, dim=1), 1e-5)

    for shape, block in (((4, 7), 32), ((3, 300), 128), ((2, 1030), 256)):
        x = 3 * torch.randn(*shape, device=dev)
        got = ns["online_softmax"](x, block_size=block)
        report("online_softmax", shape, got, torch.softmax(x, dim=1), 1e-5)

    for m, n, k in ((64, 64, 64), (100, 70, 45), (33, 130, 200)):
        a, b = torch.randn(m, k, device=dev), torch.randn(k, n, device=dev)
        ref = (a.double() @ b.double()).float()
        report("matmul", (m, n, k), ns["matmul"](a, b), ref, mm_tol)

    for seq_len, d, bm, bn in ((50, 16, 16, 16), (130, 32, 32, 64), (64, 64, 64, 32)):
        q, k, v = (torch.randn(seq_len, d, device=dev) for _ in range(3))
        p = torch.softmax((q.double() @ k.double().T) * d**-0.5, dim=1)
        ref = (p @ v.double()).float()
        got = ns["attention"](q, k, v, block_m=bm, block_n=bn)
        report("attention", (seq_len, d, bm, bn), got, ref, mm_tol)

    for shape in ((3, 10), (4, 256), (2, 1500)):
        x = torch.randn(*shape, device=dev) + 0.5
        w = torch.randn(shape[1], device=dev)
        b = torch.randn(shape[1], device=dev)
        y, mean, rstd = ns["layer_norm"](x, w, b, eps=1e-5)
        ref = torch.nn.functional.layer_norm(x, (shape[1],), w, b, eps=1e-5)
        var = x.var(dim=1, unbiased=False)
        report("layer_norm", shape, y, ref, 1e-4)
        report("layer_norm.mean", shape, mean, x.mean(dim=1), 1e-5)
        report("layer_norm.rstd", shape, rstd, torch.rsqrt(var + 1e-5), 1e-4)

    for width, mask_width in ((10, 3), (700, 5), (1025, 7)):
        n = torch.randn(width, device=dev)
        m = torch.randn(mask_width, device=dev)
        ref = torch.nn.functional.conv1d(
            n.view(1, 1, -1), m.view(1, 1, -1), padding=mask_width // 2
        ).view(-1)
        report("conv1d", (width, mask_width), ns["conv1d"](n, m), ref, 1e-5)

    if DEVICE == "cuda" and not INTERPRET and "add_kernel_ptx" in ns:
        ptx = ns["add_kernel_ptx"]()
        wanted = ("ld.global", "st.global", "%ctaid.x", "%tid.x", "setp")
        missing = [w for w in wanted if w not in ptx]
        failures += bool(missing)
        print(
            f"{'ok  ' if not missing else 'FAIL'} add_kernel PTX: {len(ptx)} chars, "
            f"missing {missing or 'nothing'}"
        )

    where = "CPU interpreter" if INTERPRET else torch.cuda.get_device_name()
    print(f"device: {DEVICE} ({where}); failures: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
