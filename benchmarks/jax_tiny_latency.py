"""Why a tiny jitted call's time depends on what ran before it: lossreg and optax, alone and alternated.

``lossreg bench --library jax`` times each call to completion (``block_until_ready``), lossreg's
and optax's calls interleaved. At the tiny size that measures latency, and a program's latency
on XLA's CPU runtime depends on which program ran just before it. This script times the tiny
rows' compiled programs four ways, per call, 4000 calls each: alone (the same program call after
call), against a second copy of itself, against the other library's program and against a
trivial ``x + 1`` program (each pair alternated call by call), and prints percentiles in µs.
``--dispatch sync`` turns JAX's asynchronous CPU dispatch off (``jax_cpu_enable_async_dispatch``:
each program then runs in the calling thread, with no hand-over to a worker thread)::

    python benchmarks/jax_tiny_latency.py --out benchmarks/results/jax_tiny_latency
    python benchmarks/jax_tiny_latency.py --dispatch sync --out benchmarks/results/jax_tiny_latency_sync
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any


def _latencies(calls: list[Any], n: int) -> list[list[float]]:
    import jax

    for f, args in calls:  # compiled, and warm
        jax.block_until_ready(f(*args))
        jax.block_until_ready(f(*args))
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(n):
        for i, (f, args) in enumerate(calls):
            t0 = time.perf_counter()
            jax.block_until_ready(f(*args))
            times[i].append((time.perf_counter() - t0) * 1e6)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loss", default="ctc_loss;cross_entropy(x, labels)", help="calls, separated by ;")
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--dispatch", choices=("async", "sync"), default="async",
                        help="JAX's CPU dispatch: async (its default) or sync")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import jax
    import numpy as np

    jax.config.update("jax_cpu_enable_async_dispatch", args.dispatch == "async")

    from lossreg import bench_peers
    from lossreg.timing import SIZES, load

    pairs = bench_peers._pairs()
    trivial = jax.jit(lambda x: x + 1.0)
    lines = ["# Tiny jitted calls: latency alone and alternated", "",
             f"Command: `python benchmarks/jax_tiny_latency.py {' '.join(argv or sys.argv[1:])}`  ",
             f"Load average at start: {load()}; JAX's CPU dispatch: {args.dispatch}", "",
             "Per-call time to completion in µs (5th / 50th percentile), each program called "
             f"{args.calls} times; a pair alternates call by call. Same programs, inputs and "
             "modes as the tiny rows of `benchmarks/results/jax_peers.md`.", "",
             "| call | mode | program | alone | with a copy of itself | with the other's | with x + 1 |",
             "|---|---|---|---|---|---|---|"]
    for key in args.loss.split(";"):
        pair = next(p for k, p in pairs.items() if k.startswith(key.strip()))
        arrays = pair.make(np.random.default_rng(0), SIZES["tiny"])
        for mode, transform in (("jit forward", lambda f: f), ("jit forward+grad", jax.value_and_grad)):
            program = {lib: jax.jit(transform(getattr(pair, lib))) for lib in ("lossreg", "optax")}
            copy = {lib: jax.jit(transform(getattr(pair, lib))) for lib in ("lossreg", "optax")}
            a, b = arrays["lossreg"], arrays["optax"]
            for lib, x, other, y in (("lossreg", a, "optax", b), ("optax", b, "lossreg", a)):
                f = program[lib]
                cells = []
                for calls in ([(f, x)], [(f, x), (copy[lib], x)], [(f, x), (program[other], y)],
                              [(f, x), (trivial, (a[0],))]):
                    t = np.asarray(_latencies(calls, args.calls)[0])
                    cells.append(f"{np.percentile(t, 5):.1f} / {np.percentile(t, 50):.1f}")
                lines.append(f"| {pair.call.split(' [')[0]} | {mode} | {lib} | " + " | ".join(cells) + " |")
                print(lines[-1], flush=True)
    lines += ["", f"Load average at end: {load()}"]
    if args.out:
        with open(args.out + ".md", "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
