"""GPU benchmark of issue 14: linear_cross_entropy at N=8192, D=4096, V=128256 bfloat16.

    python benchmarks/gpu/bench_lce_gpu.py --out DIR                      # on a CUDA machine
    python benchmarks/gpu/bench_lce_gpu.py --device cpu --dry-run --out DIR   # the logic, small sizes

Forward+backward of "mean" (hidden and weight gradients) for: torch unfused (``F.linear`` then
``F.cross_entropy``), lossreg's torch kernel (chunked, torch matmuls and elementwise ops), the same
with the Triton row kernel (``LOSSREG_LCE_TRITON=1``; unverified before this run, so its value and
gradients are first compared with torch's and a mismatch is reported instead of a time), and
Liger-Kernel's fused linear cross-entropy when it is installed. Each: median time (CUDA events,
variants interleaved round by round), peak extra memory (``max_memory_allocated`` above what was
allocated before the call, less the two gradients every variant returns: the logits alone are
2.1 GB here), and the
ratios to torch. Targets (issue 14): time ≤ torch unfused, memory ≤ 1/10 of the logits.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))


def _inputs(n: int, d: int, v: int, dtype: torch.dtype, device: str) -> tuple[Any, Any, Any]:
    g = torch.Generator(device="cpu").manual_seed(0)
    h = torch.randn(n, d, generator=g).to(device, dtype).requires_grad_(True)
    w = (torch.randn(v, d, generator=g) * d**-0.5).to(device, dtype).requires_grad_(True)
    t = torch.randint(0, v, (n,), generator=g).to(device)
    t[::17] = -100
    return h, w, t


def _variants(triton_ok: bool) -> dict[str, Callable[..., Any]]:
    """torch unfused (and compiled), lossreg's torch kernel at several chunk sizes (tokens, or
    (tokens, vocabulary entries)), with and without the Triton row kernel, and Liger-Kernel."""
    from lossreg.kernels import torch_lce

    def lossreg_kernel(rows: Any, **options: Any) -> Callable[..., Any]:
        def call(h: Any, w: Any, t: Any) -> Any:
            torch_lce._TRITON[:] = [rows]  # None: the torch elementwise path
            return torch_lce.linear_cross_entropy(h, w, t, **options)

        return call

    unfused = torch.compile(lambda h, w, t: F.cross_entropy(F.linear(h, w).float(), t))
    variants: dict[str, Callable[..., Any]] = {
        "torch unfused": lambda h, w, t: F.cross_entropy(F.linear(h, w).float(), t),
        "torch unfused, torch.compile": unfused,
        "lossreg torch kernel": lossreg_kernel(None),
        "lossreg torch kernel, 1024 tokens": lossreg_kernel(None, chunk_size=1024),
        "lossreg recomputed": lossreg_kernel(None, recompute=True),
        "lossreg recomputed, (8192, 8192)": lossreg_kernel(None, recompute=True, chunk_size=(8192, 8192)),
    }
    if triton_ok:
        from lossreg.kernels.triton_lce import rows

        variants["lossreg + triton rows"] = lossreg_kernel(rows)
        for tokens in (256, 1024, 2048):
            variants[f"lossreg + triton rows, {tokens} tokens"] = lossreg_kernel(rows, chunk_size=tokens)
    try:
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

        variants["liger-kernel"] = lambda h, w, t: liger_fused_linear_cross_entropy(h, w, t)
    except Exception as exc:  # not installed, or another API
        print(f"liger-kernel not used: {type(exc).__name__}: {exc}")
    return variants


def _step(f: Callable[..., Any], h: Any, w: Any, t: Any) -> Any:
    h.grad = w.grad = None
    loss = f(h, w, t)
    loss.backward()
    return loss


def _check(f: Callable[..., Any], ref: tuple[Any, Any, Any], h: Any, w: Any, t: Any) -> str:
    """'' when value and gradients agree with torch's (bfloat16 rounding allowed), else what differs."""
    loss = _step(f, h, w, t)
    got = (loss.float(), h.grad.float(), w.grad.float())
    problems = []
    for name, a, b in zip(("value", "d_hidden", "d_weight"), got, ref):
        err = float((a - b).abs().max()) / max(float(b.abs().max()), 1e-30)
        if not err <= 2e-2:
            problems.append(f"{name} off by {err:.3g} of its largest element")
    return "; ".join(problems)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dry-run", action="store_true", help="small sizes")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--out", default="benchmarks/results/gpu")
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    n, d, v = (256, 64, 1000) if args.dry_run else (8192, 4096, 128256)
    dtype = torch.bfloat16 if cuda or not args.dry_run else torch.float32
    triton_ok = cuda
    try:
        import triton  # noqa: F401
    except Exception:
        triton_ok = False
    variants = _variants(triton_ok)
    h, w, t = _inputs(n, d, v, dtype, args.device)
    logits_bytes = n * v * torch.finfo(dtype).bits // 8
    ref_loss = _step(variants["torch unfused"], h, w, t)
    ref = (ref_loss.detach().float(), h.grad.float().clone(), w.grad.float().clone())
    rows: list[dict[str, Any]] = []
    usable: dict[str, Callable[..., Any]] = {}
    for name, f in variants.items():
        try:
            problem = "" if name == "torch unfused" else _check(f, ref, h, w, t)
        except Exception as exc:  # a variant that cannot run here is reported, not fatal
            problem = f"raised {type(exc).__name__}: {str(exc)[:300]}"
        if problem:
            rows.append({"variant": name, "error": problem})
            print(f"{name}: NOT TIMED, disagrees with torch: {problem}", flush=True)
        else:
            usable[name] = f
    del ref
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    times: dict[str, list[float]] = {k: [] for k in usable}
    names = list(usable)
    for i in range(args.reps):
        for name in names[i % len(names):] + names[:i % len(names)]:
            sync()
            start = time.perf_counter()
            _step(usable[name], h, w, t)
            sync()
            times[name].append(time.perf_counter() - start)
    for name in names:
        peak = None
        if cuda:
            h.grad = w.grad = None
            gc.collect()
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            _step(usable[name], h, w, t)
            torch.cuda.synchronize()
            # Beyond the two gradients every variant must return (d_weight alone is V×D).
            peak = torch.cuda.max_memory_allocated() - before - (h.numel() + w.numel()) * h.element_size()
        ratios = [a / b for a, b in zip(times[name], times["torch unfused"])]
        rows.append({"variant": name, "median_ms": 1e3 * statistics.median(times[name]),
                     "time_ratio": statistics.median(ratios), "peak_extra_bytes": peak,
                     "peak_over_logits": None if peak is None else peak / logits_bytes})
        print(rows[-1], flush=True)
    os.makedirs(args.out, exist_ok=True)
    result = {"n": n, "d": d, "v": v, "dtype": str(dtype), "device": args.device,
              "gpu": torch.cuda.get_device_name() if cuda else None, "torch": torch.__version__,
              "logits_bytes": logits_bytes, "rows": rows}
    with open(os.path.join(args.out, "lce.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
