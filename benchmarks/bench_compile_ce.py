"""Compiled cross-entropy: ``torch.compile(lossreg.cross_entropy)`` against ``torch.compile(F.cross_entropy)``.

    python benchmarks/bench_compile_ce.py [--device cpu|cuda] [--backend inductor] [--repeat 30]

Both are compiled with ``fullgraph=True`` on the same backend and timed interleaved, forward
alone and forward + backward, on the same arrays; the ratio lossreg / F is what to read (below 1
is faster). lossreg's call path reaches torch's own operator (its torch kernel), so the two
graphs should be the same: a ratio well above 1 means the kernel was lost under tracing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import lossreg


def _time(fn: Callable[[], object], device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backend", default="inductor")
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    sizes = [(8192, 32768), (4096, 128256)] if args.device == "cuda" else [(64, 10), (1024, 1000), (4096, 4096)]
    print(f"device {args.device}, backend {args.backend}, torch {torch.__version__}; median of {args.repeat}, "
          "interleaved")
    print("| N x C (float32) | lossreg fwd ms | F fwd ms | ratio | lossreg fwd+bwd ms | F fwd+bwd ms | ratio |")
    print("|---|---|---|---|---|---|---|")
    for n, c in sizes:
        torch.manual_seed(0)
        x = torch.randn(n, c, device=args.device, requires_grad=True)
        t = torch.randint(0, c, (n,), device=args.device)
        ours = torch.compile(lambda a, b: lossreg.cross_entropy(a, b), fullgraph=True, backend=args.backend)
        theirs = torch.compile(lambda a, b: F.cross_entropy(a, b), fullgraph=True, backend=args.backend)
        jobs = {}
        for label, fn in (("lossreg", ours), ("F", theirs)):
            with torch.no_grad():
                fn(x.detach(), t)  # compile both graphs before timing
            torch.autograd.grad(fn(x, t), x)
            jobs[label, "fwd"] = lambda fn=fn: fn(x.detach(), t)
            jobs[label, "bwd"] = lambda fn=fn: torch.autograd.grad(fn(x, t), x)
        times: dict[tuple[str, str], list[float]] = {k: [] for k in jobs}
        for _ in range(args.repeat):
            for key, job in jobs.items():
                if key[1] == "fwd":
                    with torch.no_grad():
                        times[key].append(_time(job, args.device))
                else:
                    times[key].append(_time(job, args.device))
        ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
        print(f"| {n} x {c} | {ms['lossreg', 'fwd']:.3f} | {ms['F', 'fwd']:.3f} | "
              f"{ms['lossreg', 'fwd'] / ms['F', 'fwd']:.2f} | {ms['lossreg', 'bwd']:.3f} | {ms['F', 'bwd']:.3f} | "
              f"{ms['lossreg', 'bwd'] / ms['F', 'bwd']:.2f} |")


if __name__ == "__main__":
    main()
