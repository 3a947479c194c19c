"""Block size and warps of the Triton cross-entropy (lossreg/kernels/triton_ce.py), on a CUDA GPU.

    python benchmarks/gpu/sweep_triton_ce.py --out DIR      (benchmarks/gpu/run.sh runs it)

At 8192×128256, bfloat16 and float32: the forward launch (losses and log-sum-exp)
and the backward launch (the gradient) for each BLOCK and num_warps, median of CUDA-event times,
against the bandwidth floor (bytes that must move / the measured copy bandwidth). The kernel's
choice (``triton_ce._block``) is marked; the table tells whether another would be faster.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from typing import Any

import torch

from lossreg.kernels import triton_ce


def _time(fn: Any, reps: int = 20) -> float:
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def host_time() -> dict[str, float]:
    """Microseconds the host spends in one call (the GPU kept busy, so no wait is counted), for
    lossreg and F.cross_entropy at 8192×128256 bfloat16, and where lossreg's go (cProfile)."""
    import cProfile
    import pstats
    import time

    import torch.nn.functional as F

    import lossreg

    x = torch.randn(8192, 128256, device="cuda", dtype=torch.bfloat16)
    t = torch.randint(0, 128256, (8192,), device="cuda")
    out: dict[str, float] = {}
    for name, fn in (("lossreg", lossreg.cross_entropy), ("torch", F.cross_entropy)):
        with torch.no_grad():
            fn(x, t)
            torch.cuda.synchronize()
            spent = []
            for _ in range(30):
                start = time.perf_counter()
                fn(x, t)
                spent.append(time.perf_counter() - start)
            torch.cuda.synchronize()
        out[name] = statistics.median(spent) * 1e6
    print(f"host time per forward call: lossreg {out['lossreg']:.0f} us, F.cross_entropy {out['torch']:.0f} us")
    profile = cProfile.Profile()
    with torch.no_grad():
        profile.enable()
        for _ in range(30):
            lossreg.cross_entropy(x, t)
        profile.disable()
    torch.cuda.synchronize()
    pstats.Stats(profile).sort_stats("tottime").print_stats(18)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--out", default="benchmarks/results/gpu")
    args = parser.parse_args()
    src = torch.empty(1 << 28, device="cuda")
    dst = torch.empty_like(src)
    bandwidth = 2 * src.numel() * 4 / (_time(lambda: dst.copy_(src)) / 1e3)
    del src, dst
    rows = []
    for c in (128256,):
        for dtype in (torch.bfloat16, torch.float32):
            n = 8192
            x = torch.randn(n, c, device="cuda", dtype=dtype)
            t = torch.randint(0, c, (n,), device="cuda")
            losses = torch.empty(n, device="cuda")
            lse = torch.empty(n, device="cuda")
            grad = torch.empty_like(x)
            gout = torch.ones((), device="cuda", dtype=dtype)
            chosen = triton_ce._block(x)
            nbytes = x.numel() * x.element_size()
            for block in (4096, 8192, 16384, 32768):
                for warps in (8, 16, 32):
                    if block > triton_ce.triton.next_power_of_2(c) or block // (32 * warps) < 1:
                        continue

                    def launch(backward: bool, block: int = block, warps: int = warps) -> None:
                        triton_ce._ce_kernel[(n,)](
                            x, x.stride(0), t, losses, losses, losses, losses, lse, gout, grad, grad.stride(0), c,
                            -100, 0.0, HAS_WEIGHT=False, SMOOTH=False, HAS_SCALE=False, BACKWARD=backward,
                            GOUT_PER_ROW=False, BLOCK=block, num_warps=warps)

                    try:
                        fwd, bwd = _time(lambda: launch(False)), _time(lambda: launch(True))
                    except Exception as exc:  # too many registers or shared memory: not a candidate
                        print(f"{c} {dtype} BLOCK={block} warps={warps}: {type(exc).__name__}", flush=True)
                        continue
                    row = {"classes": c, "dtype": str(dtype).split(".")[-1], "block": block, "warps": warps,
                           "chosen": (block, warps) == chosen, "forward_ms": fwd, "backward_ms": bwd,
                           "forward_floor_ms": nbytes / bandwidth * 1e3, "backward_floor_ms": 2 * nbytes / bandwidth * 1e3}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
            del x, grad
    host = host_time()
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "triton_ce_sweep.json"), "w") as f:
        json.dump({"gpu": torch.cuda.get_device_name(), "copy_GBps": bandwidth / 1e9, "rows": rows, "host_us": host},
                  f, indent=1)
    best: dict[tuple[int, str], dict] = {}
    for r in rows:
        key = (r["classes"], r["dtype"])
        if key not in best or r["forward_ms"] + r["backward_ms"] < best[key]["forward_ms"] + best[key]["backward_ms"]:
            best[key] = r
    for key, r in best.items():
        mine = next((x for x in rows if (x["classes"], x["dtype"]) == key and x["chosen"]), None)
        print(f"{key}: best BLOCK={r['block']} warps={r['warps']} fwd {r['forward_ms']:.3f} bwd {r['backward_ms']:.3f} ms;"
              f" chosen {mine and (mine['block'], mine['warps'])} fwd {mine and round(mine['forward_ms'], 3)}"
              f" bwd {mine and round(mine['backward_ms'], 3)} ms; floors {r['forward_floor_ms']:.3f} / "
              f"{r['backward_floor_ms']:.3f} ms")


if __name__ == "__main__":
    main()
