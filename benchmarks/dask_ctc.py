"""CTC on Dask: the size of the graph and the time to build and compute it.

    python benchmarks/dask_ctc.py                 # T=200, N=32 in 4 chunks, C=30, S=40
    python benchmarks/dask_ctc.py --frames 50

The standard has no loop construct, so the portable definition records the recursion over the
frames in the graph, one frame after another: what one frame adds is paid T times over.
lossreg's Dask kernel (``lossreg/kernels/dask_ctc.py``, the default) runs each batch chunk's
sequences in one task instead. Both are timed; each value is checked against NumPy (the same
inputs, eager). Writes ``benchmarks/results/dask_ctc.md``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import platform
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np

import lossreg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--chunk", type=int, default=8, help="sequences per batch chunk")
    parser.add_argument("--classes", type=int, default=30)
    parser.add_argument("--labels", type=int, default=40, help="padded target length S")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "dask_ctc.md")
    args = parser.parse_args()
    t, n, c, s, k = args.frames, args.batch, args.classes, args.labels, args.chunk
    rng = np.random.default_rng(0)
    x = rng.normal(size=(t, n, c))
    log_probs = x - np.log(np.exp(x).sum(axis=-1, keepdims=True))
    targets = rng.integers(1, c, size=(n, s))
    input_lengths = rng.integers(t // 2, t + 1, size=n)
    target_lengths = rng.integers(s // 2, s + 1, size=n)
    eager = lossreg.ctc_loss(log_probs, targets, input_lengths, target_lengths, reduction="none")
    arrays = [da.from_array(log_probs, chunks=(t, k, c)), da.from_array(targets, chunks=(k, s)),
              da.from_array(input_lengths, chunks=k), da.from_array(target_lengths, chunks=k)]
    load = os.getloadavg()[0]
    rows = []
    for path, kernels in (("kernel (default)", True), ("portable (use_kernels(False))", False)):
        timings = []
        with lossreg.use_kernels(kernels):
            for _ in range(args.rounds):
                start = time.perf_counter()
                lazy = lossreg.ctc_loss(*arrays, reduction="none")
                built = time.perf_counter()
                graph = dict(lazy.__dask_graph__())
                counted = time.perf_counter()
                value = lazy.compute(scheduler="threads")
                timings.append((built - start, time.perf_counter() - counted))
        np.testing.assert_allclose(value, eager, rtol=1e-12)
        build, compute = (min(column) for column in zip(*timings))
        rechunks = sum("rechunk" in (key[0] if isinstance(key, tuple) else key) for key in graph)
        rows.append(f"| {path} | {len(graph)} | {rechunks} | {build:.2f} s | {compute:.2f} s |")
    lines = [
        "# CTC on Dask",
        "",
        f"`python benchmarks/dask_ctc.py --frames {t} --batch {n} --chunk {k} --classes {c} --labels {s} "
        f"--rounds {args.rounds}`, {datetime.date.today()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, load {load:.2f} at the start; dask {dask.__version__}, "
        f"lossreg {importlib.metadata.version('lossreg')}.",
        "",
        f"T={t} frames, N={n} sequences in chunks of {k}, C={c} classes, targets padded to S={s}, float64, "
        f"reduction 'none'; best of {args.rounds} rounds; the threaded scheduler. Each checked against NumPy "
        "(rtol 1e-12): passed.",
        "",
        "| path | tasks in the graph | of which rechunk | build | compute |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
