"""Where lossreg's Triton cross-entropy starts to pay on CUDA: native ``F.cross_entropy``,
``lossreg.cross_entropy`` as it dispatches by default, lossreg with torch's operator (Triton
off) and the Triton kernel called directly, over logits from 64×10 to 8192×128256,
float32 and bfloat16, forward and forward+backward; one call per timed region (host time
counted) and queued (bench_gpu.QUEUED calls per region). The size gate in
``lossreg.kernels.torch`` (``TRITON_CE_MIN_HALF``, ``TRITON_CE_MIN_FLOAT32``) is read off this table.

    python benchmarks/gpu/ce_crossover.py --out DIR      (benchmarks/gpu/run.sh runs it)
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from bench_gpu import Clock, _fwd, _fwd_bwd, interleaved  # noqa: E402

import lossreg  # noqa: E402
from lossreg.kernels import CE_TRITON_SWITCH  # noqa: E402
from lossreg.kernels import torch as torch_kernels  # noqa: E402


def torch_operator(*args: object, **options: object) -> object:
    """lossreg.cross_entropy with the Triton kernel taken away: torch's operator at every size."""
    torch_kernels._triton(CE_TRITON_SWITCH)  # loaded (or found missing) once, as on a first call
    saved, torch_kernels._TRITON[CE_TRITON_SWITCH] = torch_kernels._TRITON[CE_TRITON_SWITCH], None
    try:
        return lossreg.cross_entropy(*args, **options)
    finally:
        torch_kernels._TRITON[CE_TRITON_SWITCH] = saved

SHAPES = [(64, 10), (1024, 1000), (4096, 4096), (8192, 8192), (8192, 16000), (8192, 32000), (8192, 65536),
          (8192, 128256)]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=".")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--small", action="store_true", help="the sizes below the gate only (to 4096×4096)")
    parser.add_argument("--profile", action="store_true", help="only where the host time of a small call goes")
    args = parser.parse_args()
    if args.profile:
        return profile(args.device)
    from lossreg.kernels.triton_ce import cross_entropy as triton

    clock, rows = Clock(args.device), []
    shapes = SHAPES[:2] if args.dry_run else SHAPES[:3] if args.small else SHAPES
    for n, c in shapes:
        for dtype in (torch.float32, torch.bfloat16):
            logits = torch.randn(n, c, device=args.device, dtype=dtype)
            target = torch.randint(0, c, (n,), device=args.device)
            leaf = logits.clone().requires_grad_(True)
            variants = {"native": F.cross_entropy, "lossreg": lossreg.cross_entropy, "torch operator": torch_operator,
                        "triton": triton}
            for mode in ("forward", "forward+backward"):
                fns = {k: (_fwd(f, logits, target) if mode == "forward" else _fwd_bwd(f, leaf, target))
                       for k, f in variants.items()}
                one, queued = interleaved(clock, fns, 10), interleaved(clock, fns, 10, queued=True)
                row = {"shape": [n, c], "dtype": str(dtype).split(".")[-1], "mode": mode,
                       "bytes": logits.numel() * logits.element_size(),
                       "ms": {k: v * 1e3 for k, v in one.items()}, "queued_ms": {k: v * 1e3 for k, v in queued.items()}}
                rows.append(row)
                print(f"{n}x{c} {row['dtype']:8s} {mode:16s} one call: " +
                      "  ".join(f"{k} {v:.3f}" for k, v in row["ms"].items()) + " ms | queued: " +
                      "  ".join(f"{k} {v:.3f}" for k, v in row["queued_ms"].items()) +
                      f" ms | lossreg/native {one['lossreg'] / one['native']:.2f} / {queued['lossreg'] / queued['native']:.2f}",
                      flush=True)
            del logits, target, leaf
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "ce_crossover.json"), "w", encoding="utf-8") as f:
        json.dump({"device": torch.cuda.get_device_name() if args.device == "cuda" else args.device,
                   "torch": torch.__version__, "rows": rows}, f, indent=1)
    return 0


def profile(device: str) -> int:
    """torch's profiler and cProfile over 200 calls at 64×10 float32: lossreg's host time, by operator
    and by Python function, beside ``F.cross_entropy``'s."""
    import cProfile
    import pstats
    import time

    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    logits, target = torch.randn(64, 10, device=device), torch.randint(0, 10, (64,), device=device)
    for name, f in (("F.cross_entropy", F.cross_entropy), ("lossreg.cross_entropy", lossreg.cross_entropy)):
        for _ in range(50):
            f(logits, target)
        clock = Clock(device)
        clock.sync()
        start = time.perf_counter()
        for _ in range(200):
            f(logits, target)
        host = (time.perf_counter() - start) / 200
        clock.sync()
        print(f"{name}: {host * 1e6:.1f} us of host time per call")
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(200):
            lossreg.cross_entropy(logits, target)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    stats = cProfile.Profile()
    stats.enable()
    for _ in range(200):
        lossreg.cross_entropy(logits, target)
    stats.disable()
    pstats.Stats(stats).sort_stats("tottime").print_stats(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
