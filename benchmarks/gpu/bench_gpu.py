"""GPU benchmarks of issue 6: lossreg against torch's native losses, and against the bandwidth floor.

    python benchmarks/gpu/bench_gpu.py --out DIR            # on a CUDA machine (a few minutes)
    python benchmarks/gpu/bench_gpu.py --device cpu --dry-run --out DIR   # the logic, small sizes

Cross-entropy at N=8192, C=32000 and 128256, float32 and bfloat16, forward and forward+backward:
``F.cross_entropy``, ``torch.compile``d ``F.cross_entropy``, lossreg's default path (the torch kernel: Triton on CUDA when installed) and
lossreg's portable path (kernels off), each with its median time and peak extra memory (the
peak allocated during the call above what was allocated before it, the gradient included).
MSE, L1 and BCE over 2^27 float32 elements likewise; then the same losses on CuPy arrays
(lossreg's path for CuPy) when CuPy is installed. Beside each time: the floor, bytes that must
move / the measured device-to-device copy bandwidth (read + write). Each time twice: one call
per timed region (its host time counted) and queued, QUEUED calls back to back per region (host
time hidden behind the device's work, as in a training loop).

Variants run interleaved, round by round, so that clocks and other load affect all alike.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any

import torch
import torch.nn.functional as F

import lossreg


class Clock:
    """Times one call on the device: CUDA events, or perf_counter on the CPU."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def time(self, fn: Callable[[], Any]) -> float:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    def peak_extra(self, fn: Callable[[], Any]) -> float | None:
        """Bytes allocated at the peak of ``fn`` above those allocated before it (CUDA only)."""
        if not self.cuda:
            return None
        gc.collect()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return float(torch.cuda.max_memory_allocated() - before)


def copy_bandwidth(clock: Clock, device: str, nbytes: int) -> float:
    """Device-to-device copy bandwidth in bytes/s, counting the read and the write."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    clock.sync()
    t = statistics.median(clock.time(lambda: dst.copy_(src)) for _ in range(20))
    del src, dst
    return 2 * nbytes / t


QUEUED = 8  # calls per timed region in the queued figure


def interleaved(clock: Clock, fns: dict[str, Callable[[], Any]], reps: int, queued: bool = False) -> dict[str, float]:
    """Median seconds per call. One call per timed region: its host time (launches, checks) is
    in the figure, as for a loss whose result is waited for. ``queued``: QUEUED calls back to
    back per region, as in a training loop where the host runs ahead of the device, so that
    host time is hidden wherever the device's work is longer."""
    for fn in fns.values():
        fn()
    clock.sync()
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)

    def several(fn: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(QUEUED):
                fn()

        return run

    for i in range(reps):
        for name in names[i % len(names):] + names[:i % len(names)]:
            times[name].append(clock.time(several(fns[name])) / QUEUED if queued else clock.time(fns[name]))
    return {k: statistics.median(v) for k, v in times.items()}


def _off(fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(*a: Any, **k: Any) -> Any:
        with lossreg.use_kernels(False):
            return fn(*a, **k)

    return call


def _fwd_bwd(fn: Callable[..., Any], leaf: torch.Tensor, *rest: Any) -> Callable[[], Any]:
    def run() -> Any:
        leaf.grad = None
        fn(leaf, *rest).backward()
        return leaf.grad

    return run


def _fwd(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    def run() -> Any:
        with torch.no_grad():
            return fn(*args)

    return run


def bench_torch(clock: Clock, device: str, dry: bool, bandwidth: float, reps: int, log: Callable[[str], None]) -> list[dict]:
    rows = []
    n = 64 if dry else 8192
    classes = (1000, 4000) if dry else (32000, 128256)
    # torch.compile'd F.cross_entropy: what a user who compiles the model gets without lossreg.
    compiled = torch.compile(F.cross_entropy, dynamic=True)  # one graph for both class counts
    variants = {"native": F.cross_entropy, "compiled": compiled, "lossreg": lossreg.cross_entropy,
                "portable": _off(lossreg.cross_entropy)}
    for c in classes:
        for dtype in (torch.float32, torch.bfloat16):
            g = torch.Generator(device=device).manual_seed(0)
            logits = torch.randn(n, c, device=device, dtype=dtype, generator=g)
            target = torch.randint(0, c, (n,), device=device, generator=g)
            leaf = logits.clone().requires_grad_(True)
            nbytes = logits.numel() * logits.element_size()
            for mode in ("forward", "forward+backward"):
                fns = {k: (_fwd(f, logits, target) if mode == "forward" else _fwd_bwd(f, leaf, target))
                       for k, f in variants.items()}
                try:
                    fns["compiled"]()  # compiled outside the timed rounds
                except torch.cuda.OutOfMemoryError:
                    raise
                except Exception as exc:  # report, and time the others
                    log(f"CE {c} {dtype} {mode}: torch.compile failed: {type(exc).__name__}: {exc}")
                    del fns["compiled"]
                try:
                    med = interleaved(clock, fns, reps)
                    queued = interleaved(clock, fns, reps, queued=True)
                    mem = {k: clock.peak_extra(f) for k, f in fns.items()}
                except torch.cuda.OutOfMemoryError as exc:
                    log(f"CE {c} {dtype} {mode}: out of memory: {exc}")
                    continue
                leaf.grad = None
                moved = nbytes if mode == "forward" else 2 * nbytes  # read the logits (and write the gradient)
                row = {"loss": "cross_entropy", "library": "torch", "shape": [n, c], "dtype": str(dtype).split(".")[-1],
                       "mode": mode, "ms": {k: v * 1e3 for k, v in med.items()},
                       "ratio_to_native": {k: med[k] / med["native"] for k in med},
                       "queued_ms": {k: v * 1e3 for k, v in queued.items()},
                       "peak_extra_bytes": mem, "logits_bytes": nbytes,
                       "floor_ms": moved / bandwidth * 1e3}
                row["ratio_to_floor"] = {k: v / row["floor_ms"] for k, v in row["ms"].items()}
                rows.append(row)
                log(_line(row))
            del logits, target, leaf
            gc.collect()
    size = 1 << (16 if dry else 27)
    pointwise = {"mse": (F.mse_loss, lossreg.mse_loss), "l1": (F.l1_loss, lossreg.l1_loss),
                 "bce": (F.binary_cross_entropy, lossreg.binary_cross_entropy)}
    g = torch.Generator(device=device).manual_seed(1)
    x = torch.rand(size, device=device, generator=g).clamp_(0.01, 0.99)
    y = torch.rand(size, device=device, generator=g)
    leaf = x.clone().requires_grad_(True)
    for name, (native, ours) in pointwise.items():
        for mode in ("forward", "forward+backward"):
            variants = {"native": native, "lossreg": ours, "portable": _off(ours)}
            fns = {k: (_fwd(f, x, y) if mode == "forward" else _fwd_bwd(f, leaf, y)) for k, f in variants.items()}
            med = interleaved(clock, fns, reps)
            queued = interleaved(clock, fns, reps, queued=True)
            mem = {k: clock.peak_extra(f) for k, f in fns.items()}
            leaf.grad = None
            moved = 8 * size if mode == "forward" else 4 * 4 * size  # read x, y (again in backward), write grad
            row = {"loss": name, "library": "torch", "shape": [size], "dtype": "float32", "mode": mode,
                   "ms": {k: v * 1e3 for k, v in med.items()}, "queued_ms": {k: v * 1e3 for k, v in queued.items()},
                   "ratio_to_native": {k: med[k] / med["native"] for k in med}, "peak_extra_bytes": mem,
                   "floor_ms": moved / bandwidth * 1e3}
            row["ratio_to_floor"] = {k: v / row["floor_ms"] for k, v in row["ms"].items()}
            rows.append(row)
            log(_line(row))
    return rows


def bench_cupy(dry: bool, bandwidth: float, reps: int, log: Callable[[str], None]) -> list[dict]:
    """lossreg on CuPy arrays (its CuPy kernels when registered, else the portable path)."""
    import cupy as cp

    def timed(fn: Callable[[], Any]) -> float:
        start, end = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        return cp.cuda.get_elapsed_time(start, end) / 1e3

    def measure(fns: dict[str, Callable[[], Any]]) -> dict[str, float]:
        for f in fns.values():
            f()
        cp.cuda.Device().synchronize()
        times: dict[str, list[float]] = {k: [] for k in fns}
        for i in range(reps):
            for k in list(fns)[i % len(fns):] + list(fns)[:i % len(fns)]:
                times[k].append(timed(fns[k]))
        return {k: statistics.median(v) for k, v in times.items()}

    rows = []
    rng = cp.random.default_rng(0)
    size = 1 << (16 if dry else 27)
    x = rng.random(size, dtype=cp.float32) * 0.98 + 0.01
    y = rng.random(size, dtype=cp.float32)
    for name, fn in {"mse": lossreg.mse_loss, "l1": lossreg.l1_loss, "bce": lossreg.binary_cross_entropy}.items():
        med = measure({"lossreg": lambda fn=fn: fn(x, y), "portable": lambda fn=fn: _off(fn)(x, y)})
        floor = 8 * size / bandwidth
        row = {"loss": name, "library": "cupy", "shape": [size], "dtype": "float32", "mode": "forward",
               "ms": {k: v * 1e3 for k, v in med.items()}, "floor_ms": floor * 1e3,
               "ratio_to_floor": {k: v / floor for k, v in med.items()}}
        rows.append(row)
        log(_line(row))
    del x, y
    n = 64 if dry else 8192
    for c in ((1000,) if dry else (32000, 128256)):
        logits = rng.standard_normal((n, c), dtype=cp.float32)
        target = rng.integers(0, c, n)
        floor = logits.nbytes / bandwidth
        med = measure({"lossreg": lambda: lossreg.cross_entropy(logits, target),
                       "portable": lambda: _off(lossreg.cross_entropy)(logits, target)})
        row = {"loss": "cross_entropy", "library": "cupy", "shape": [n, c], "dtype": "float32", "mode": "forward",
               "ms": {k: v * 1e3 for k, v in med.items()}, "floor_ms": floor * 1e3,
               "ratio_to_floor": {k: v / floor for k, v in med.items()}}
        rows.append(row)
        log(_line(row))
        del logits
    return rows


def check_kernels(device: str) -> dict[str, Any]:
    """The CUDA kernels against the portable definition on one mid-size case (values and gradients)."""
    out: dict[str, Any] = {}
    g = torch.Generator(device=device).manual_seed(2)
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(256, 5000, device=device, dtype=dtype, generator=g) * 4
        t = torch.randint(0, 5000, (256,), device=device, generator=g)
        t[::7] = -100
        w = (torch.rand(5000, device=device, generator=g) + 0.5).to(dtype)
        for opts in ({}, {"label_smoothing": 0.1, "weight": w}, {"reduction": "sum"}, {"reduction": "none", "label_smoothing": 0.2}):
            res = []
            for on in (True, False):
                leaf = x.clone().requires_grad_(True)
                with lossreg.use_kernels(on):
                    v = lossreg.cross_entropy(leaf, t, **opts)
                (v * torch.arange(1, v.numel() + 1, device=device).reshape(v.shape)).sum().backward()
                res.append((v.detach().double(), leaf.grad.double()))
            key = f"ce {str(dtype).split('.')[-1]} {sorted(k for k in opts)}"
            out[key] = {"value_rel_diff": _rel(res[0][0], res[1][0]), "grad_rel_diff": _rel(res[0][1], res[1][1])}
    return out


def _rel(got: torch.Tensor, want: torch.Tensor) -> float:
    """Largest difference relative to the largest expected magnitude."""
    return float((got - want).abs().max() / want.abs().max().clamp_min(1e-30))


def _line(row: dict) -> str:
    ms = "  ".join(f"{k} {v:.3f} ms" for k, v in row["ms"].items())
    mem = row.get("peak_extra_bytes") or {}
    mems = "  ".join(f"{k} {v / 2**30:.2f} GiB" for k, v in mem.items() if v is not None)
    return (f"{row['library']} {row['loss']} {row['shape']} {row['dtype']} {row['mode']}: {ms}  "
            f"(floor {row['floor_ms']:.3f} ms)  {mems}")


def markdown(result: dict) -> str:
    lines = ["# lossreg GPU benchmark", "", f"Command: `{result['command']}`  ", f"Date: {result['date']}  ",
             f"Device: {result['device_name']}  ", "Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()),
             f"  \nCopy bandwidth (read + write): {result['copy_GBps']:.0f} GB/s; Triton kernel in use: "
             f"{result['triton_in_use']}", "",
             "| library | loss | shape | dtype | mode | native ms | compiled ms | lossreg ms | ratio | portable ms | ratio | "
             "floor ms | lossreg/floor | queued: native ms | lossreg ms | ratio | "
             "extra peak GiB native / compiled / lossreg / portable |", "|" + "---|" * 17]
    nan = float("nan")
    for r in result["rows"]:
        ms, ratio, q = r["ms"], r.get("ratio_to_native", {}), r.get("queued_ms", {})
        queued = (f"{q.get('native', nan):.3f} | {q.get('lossreg', nan):.3f} | "
                  f"{q.get('lossreg', nan) / q.get('native', nan):.2f}" if q.get("native") else "- | - | -")
        mem = r.get("peak_extra_bytes") or {}
        mems = " / ".join("-" if mem.get(k) is None else f"{mem[k] / 2**30:.2f}"
                          for k in ("native", "compiled", "lossreg", "portable"))
        lines.append(f"| {r['library']} | {r['loss']} | {'×'.join(map(str, r['shape']))} | {r['dtype']} | {r['mode']} | "
                     f"{ms.get('native', float('nan')):.3f} | {ms.get('compiled', float('nan')):.3f} | "
                     f"{ms['lossreg']:.3f} | {ratio.get('lossreg', float('nan')):.2f} | "
                     f"{ms['portable']:.3f} | {ratio.get('portable', float('nan')):.2f} | {r['floor_ms']:.3f} | "
                     f"{r['ratio_to_floor']['lossreg']:.2f} | {queued} | {mems} |")
    if result.get("check"):
        lines += ["", "Kernel vs portable (largest difference / largest value): " +
                  "; ".join(f"{k}: value {v['value_rel_diff']:.1e}, grad {v['grad_rel_diff']:.1e}" for k, v in result["check"].items())]
    return "\n".join(lines) + "\n"


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "torch": torch.__version__, "cuda": str(torch.version.cuda)}
    for name in ("triton", "cupy", "cupy-cuda12x", "cupy-cuda13x", "numpy", "array-api-compat"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dry-run", action="store_true", help="small sizes, to check the logic (e.g. on CPU)")
    parser.add_argument("--reps", type=int, default=None, help="timed rounds per row (default 15, dry run 3)")
    parser.add_argument("--out", default=os.environ.get("OUT", "benchmarks/results/gpu"))
    parser.add_argument("--no-cupy", action="store_true")
    args = parser.parse_args(argv)
    reps = args.reps or (3 if args.dry_run else 15)
    clock = Clock(args.device)
    cuda = args.device.startswith("cuda")
    from lossreg.kernels import torch as torch_kernels

    result: dict[str, Any] = {
        "command": " ".join(["python", *sys.argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device_name": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
        "versions": _versions(), "dry_run": args.dry_run,
        "triton_in_use": bool(cuda and torch_kernels._triton() is not None),
    }
    os.makedirs(args.out, exist_ok=True)
    log = print
    if cuda:
        result["check"] = check_kernels(args.device)
        log(json.dumps(result["check"], indent=1))
    bandwidth = copy_bandwidth(clock, args.device, (1 << 24) if args.dry_run else (1 << 30))
    result["copy_GBps"] = bandwidth / 1e9
    log(f"copy bandwidth {bandwidth / 1e9:.0f} GB/s")
    rows = bench_torch(clock, args.device, args.dry_run, bandwidth, reps, log)
    if not args.no_cupy and cuda:
        try:
            import cupy  # noqa: F401
        except Exception as exc:
            result["cupy"] = f"not run: {type(exc).__name__}: {exc}"
        else:
            try:
                rows += bench_cupy(args.dry_run, bandwidth, reps, log)
            except Exception as exc:  # report, keep the torch results
                result["cupy"] = f"failed: {type(exc).__name__}: {exc}"
    result["rows"] = rows
    with open(os.path.join(args.out, "gpu.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    with open(os.path.join(args.out, "gpu.md"), "w", encoding="utf-8") as f:
        f.write(markdown(result))
    log(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
