"""Cross-entropy over logits that do not fit in memory: Dask on a local cluster of worker processes.

    python benchmarks/dask_out_of_core.py                    # 2^21 x 4096 float32: 32 GiB of logits
    python benchmarks/dask_out_of_core.py --rows 65536       # a quick 1 GiB run

The logits are generated lazily (``dask.array.random``, fixed seed, float32), N x C in chunks that
split both the batch and the class axis, with random class labels; nothing of that size ever
exists at once. ``lossreg.cross_entropy`` builds the graph (per-row losses and their mean, one
graph, so each chunk is generated once); a ``dask.distributed.LocalCluster`` of worker processes
with a memory limit each computes it. A thread samples the resident memory (RSS) of this process
and every process it started (workers, nannies) and keeps the peak of their sum.

The check is independent of lossreg: for a few row blocks the logits are materialised and the
per-row losses recomputed in float64 with NumPy (log-sum-exp minus the picked logit), and the
mean is compared with the mean of the per-row losses. Each run is added to
``benchmarks/results/dask_out_of_core.json`` (replacing an earlier run of the same size and
number of workers), and ``dask_out_of_core.md`` is written from all of them.

How cross-entropy picks ``x[n, y_n]`` matters here: with ``take`` on the flattened logits, Dask,
not knowing the indices, pairs every chunk of labels with every chunk of logits, so work and
memory grow with the square of the size. ``lossreg.toolkit.take_class`` therefore picks with a one-hot
``where`` summed over the class axis on Dask: blockwise along both axes, one more pass over the
logits.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import psutil

RESULTS = Path(__file__).resolve().parent / "results"


class PeakMemory:
    """Samples the summed RSS of this process and all its descendants until stopped."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval, self.peak, self.samples = interval, 0, 0
        self.per_process: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    rss = p.memory_info().rss
                except psutil.Error:
                    continue
                total += rss
                self.per_process[p.pid] = max(self.per_process.get(p.pid, 0), rss)
            self.peak = max(self.peak, total)
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def logsumexp_minus_picked(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-row cross-entropy in float64, written without lossreg."""
    x = logits.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    lse = np.log(np.exp(x - m).sum(axis=1)) + m[:, 0]
    return lse - x[np.arange(len(x)), labels]


def version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2**21, help="N, the batch (default 2^21)")
    parser.add_argument("--classes", type=int, default=4096, help="C, the classes (default 4096)")
    parser.add_argument("--row-chunk", type=int, default=32768, help="rows per chunk (default 32768)")
    parser.add_argument("--class-chunk", type=int, default=1024, help="classes per chunk (default 1024)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (default 1)")
    parser.add_argument("--memory-limit", default="3GiB", help="per worker (default 3GiB)")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--check-blocks", type=int, default=3, help="row blocks checked against NumPy (default 3)")
    parser.add_argument("--out", default=str(RESULTS / "dask_out_of_core"), help="path without suffix for .json/.md")
    args = parser.parse_args()

    import dask
    import dask.array as da
    from dask.distributed import Client, LocalCluster, wait

    import lossreg

    n, c = args.rows, args.classes
    nbytes = n * c * 4
    with PeakMemory() as memory:
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=args.threads,
                               memory_limit=args.memory_limit, processes=True, dashboard_address=None)
        client = Client(cluster)
        baseline = memory.peak
        rng = da.random.default_rng(args.seed)
        logits = rng.standard_normal((n, c), dtype=np.float32, chunks=(args.row_chunk, args.class_chunk)) * 3
        labels = rng.integers(0, c, size=n, chunks=args.row_chunk)

        start = time.perf_counter()
        with dask.config.set(scheduler=_refuse):  # building the graph must not compute anything
            losses = lossreg.cross_entropy(logits, labels, reduction="none")
            mean = lossreg.cross_entropy(logits, labels)
        built = time.perf_counter() - start
        start = time.perf_counter()
        mean_value, per_row = dask.compute(mean, losses)
        seconds = time.perf_counter() - start
        peak = memory.peak

        # The check: a few row blocks, materialised and recomputed with NumPy in float64.
        blocks = np.unique(np.linspace(0, n // args.row_chunk - 1, args.check_blocks).astype(int))
        worst = 0.0
        for b in blocks:
            rows = slice(b * args.row_chunk, (b + 1) * args.row_chunk)
            x_block, y_block = dask.compute(logits[rows], labels[rows])
            want = logsumexp_minus_picked(x_block, y_block)
            got = np.asarray(per_row[rows], dtype=np.float64)
            worst = max(worst, float(np.max(np.abs(got - want) / (np.abs(want) + 1.0))))
        mean_error = abs(float(mean_value) - float(np.mean(per_row, dtype=np.float64))) / abs(float(mean_value))
        client.close()
        cluster.close()

    eps = float(np.finfo(np.float32).eps)
    passed = worst <= 32 * eps and mean_error <= 32 * eps
    result = {
        "what": "lossreg.cross_entropy(logits, labels) and reduction='none', Dask on a LocalCluster",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "command": " ".join(["python", *sys.argv]),
        "logits": {"shape": [n, c], "dtype": "float32", "bytes": nbytes, "GiB": round(nbytes / 2**30, 2),
                   "chunks": [args.row_chunk, args.class_chunk],
                   "chunk_MiB": round(args.row_chunk * args.class_chunk * 4 / 2**20, 1),
                   "n_chunks": [-(-n // args.row_chunk), -(-c // args.class_chunk)],
                   "generated": f"dask.array.random.default_rng({args.seed}).standard_normal * 3, labels integers"},
        "cluster": {"workers": args.workers, "threads_per_worker": args.threads, "memory_limit": args.memory_limit,
                    "processes": True},
        "graph_build_seconds": round(built, 3),
        "compute_seconds": round(seconds, 1),
        "throughput_GB_per_s": round(nbytes / seconds / 1e9, 3),
        "peak_rss_all_processes_GiB": round(peak / 2**30, 2),
        "rss_after_cluster_start_GiB": round(baseline / 2**30, 2),
        "peak_rss_per_process_GiB": {str(pid): round(v / 2**30, 2) for pid, v in sorted(memory.per_process.items())},
        "peak_as_fraction_of_logits": round(peak / nbytes, 4),
        "memory_samples": memory.samples,
        "mean_loss": float(mean_value),
        "check": {"row_blocks": [int(b) for b in blocks], "rows_checked": int(len(blocks) * args.row_chunk),
                  "max_error_per_row": worst, "mean_vs_mean_of_rows": mean_error, "bound": 32 * eps,
                  "against": "NumPy float64 log-sum-exp minus the picked logit (not lossreg)", "passed": passed},
        "machine": {"cpus": os.cpu_count(), "memory_GiB": round(psutil.virtual_memory().total / 2**30, 1),
                    "platform": platform.platform(), "python": platform.python_version()},
        "versions": {name: version(name) for name in ("lossreg", "dask", "distributed", "numpy", "array-api-compat",
                                                      "array-api-extra")},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.with_suffix(".json")
    runs = json.loads(path.read_text(encoding="utf-8"))["runs"] if path.exists() else []
    same = (result["logits"]["shape"], result["cluster"]["workers"])
    runs = [r for r in runs if (r["logits"]["shape"], r["cluster"]["workers"]) != same] + [result]
    runs.sort(key=lambda r: (-r["logits"]["bytes"], r["cluster"]["workers"]))
    path.write_text(json.dumps({"runs": runs}, indent=1) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(markdown(runs), encoding="utf-8")
    print(markdown([result]))
    return 0 if passed else 1


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("lossreg computed during graph construction")


def markdown(runs: list[dict[str, Any]]) -> str:
    text = ["# Cross-entropy out of core with Dask", "",
            "`lossreg.cross_entropy` (mean, and per row) over float32 logits generated lazily by "
            "`dask.array.random`, computed on a `dask.distributed.LocalCluster` of worker processes; "
            "peak memory is the summed RSS of every process (client, scheduler, nannies, workers), "
            "sampled every 0.2 s. Produced by `benchmarks/dask_out_of_core.py`.", "",
            "| logits | workers × memory limit | compute | peak RSS (all processes) | check |",
            "|---|---|---|---|---|"]
    for r in runs:
        text.append(f"| {r['logits']['GiB']} GiB | {r['cluster']['workers']} × "
                    f"{r['cluster']['memory_limit']} | {r['compute_seconds']} s | {r['peak_rss_all_processes_GiB']} GiB | "
                    f"{'passed' if r['check']['passed'] else 'FAILED'} |")
    text.append("")
    for r in runs:
        lg, cl, ck = r["logits"], r["cluster"], r["check"]
        text.append(f"""## {lg['GiB']} GiB of logits

`{r['command']}` ({r['date'][:10]})

| | |
|---|---|
| logits | {lg['shape'][0]:,} × {lg['shape'][1]:,} float32 = {lg['GiB']} GiB ({lg['bytes'] / 1e9:.1f} GB), generated lazily |
| chunks | {lg['chunks'][0]:,} × {lg['chunks'][1]:,} ({lg['chunk_MiB']} MiB), a {lg['n_chunks'][0]} × {lg['n_chunks'][1]} grid: batch and class axes split |
| cluster | `LocalCluster`: {cl['workers']} worker processes × {cl['threads_per_worker']} thread, memory limit {cl['memory_limit']} each |
| graph built in | {r['graph_build_seconds']} s, with a scheduler that refuses to compute |
| computed in | {r['compute_seconds']} s ({r['throughput_GB_per_s']} GB/s of logits, generation included) |
| peak RSS, all processes | **{r['peak_rss_all_processes_GiB']} GiB** ({100 * r['peak_as_fraction_of_logits']:.1f}% of the logits; {r['rss_after_cluster_start_GiB']} GiB with the idle cluster) |
| mean loss | {r['mean_loss']:.6f} |
| check | {ck['rows_checked']:,} rows of blocks {ck['row_blocks']} against {ck['against']}: largest error {ck['max_error_per_row']:.2e}, mean vs mean of rows {ck['mean_vs_mean_of_rows']:.2e} (bound {ck['bound']:.2e}): {'passed' if ck['passed'] else 'FAILED'} |
| machine | {r['machine']['cpus']} CPUs, {r['machine']['memory_GiB']} GiB, {r['machine']['platform']} |
| versions | {', '.join(f'{k} {v}' for k, v in r['versions'].items())} |
""")
    return "\n".join(text)


if __name__ == "__main__":
    sys.exit(main())
