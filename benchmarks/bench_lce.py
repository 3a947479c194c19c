"""linear_cross_entropy against the unfused ``F.linear`` + ``F.cross_entropy`` (and its JAX twin).

    python benchmarks/bench_lce.py --out benchmarks/results/lce_cpu            # N=4096 D=512 V=32000
    python benchmarks/bench_lce.py --size small --out /tmp/lce                 # a quick check
    python benchmarks/bench_lce.py --class-weights --no-jax --no-numpy --no-sweep \
        --out benchmarks/results/lce_class_weights                            # torch, with weight=(V,)

torch (CPU, float32, forward + backward of "mean"): the unfused reference, lossreg's kernel with
gradients made in the forward pass (Liger-style) and recomputed in the backward pass (Cut
Cross-Entropy style), and a sweep of chunk sizes. Times are medians of interleaved rounds (every
variant once per round, so that the load of a shared machine falls on all alike); ratios are
against the unfused reference of the same round.

Memory on torch's CPU allocator: tracemalloc does not see it, and the profiler's memory events
need a timeline walk, so each variant runs once in a fresh subprocess that reads its resident set
before the call (inputs made, a small warm-up done) and polls it every 0.5 ms during it: torch's
CPU allocator takes large blocks from mmap and returns them on free, so the resident set follows
the live tensors. "extra" is that peak minus the baseline; the gradients themselves (d_hidden and
d_weight, which both paths must return) are listed apart, and "beyond grads" subtracts them.

torch.compile (``--compiled``): the unfused reference and lossreg's public function, each eager and
under ``torch.compile(fullgraph=True)`` (inductor), forward + backward interleaved as above; time
ratios against both unfused forms. Memory of one compiled step in a fresh subprocess, the step
compiled (and run once) at the measured shape before the baseline is read: "total" is the peak
above the inputs (gradients included), "beyond grads" subtracts d_hidden and d_weight.

    python benchmarks/bench_lce.py --compiled --no-jax --no-sweep --rounds 5 --out /tmp/lce_compiled

JAX (CPU, float32): ``jax.jit(jax.value_and_grad(...))`` of the unfused definition
(``logits = h @ W.T``, log-softmax, pick: optax's integer-label cross-entropy) against lossreg
(the custom_vjp kernel), the targets an argument of the compiled program as in a training step;
temporary memory from ``compiled.memory_analysis().temp_size_in_bytes`` (the gradients are
outputs, not temporaries), time interleaved as above; bfloat16 inputs compiled for their memory.

NumPy: the portable ``lossreg.linear_cross_entropy_value_and_grad`` once, in a fresh process:
peak of the live arrays (NumPy reports them to tracemalloc) and of the resident set.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

SIZES = {"full": (4096, 512, 32000), "small": (1024, 256, 8000)}
CHUNKS = (64, 256, 512, 1024, (4096, 2048))  # tokens per chunk (whole vocabulary), or (tokens, vocab)
JAX_CHUNKS = (64, 256, 512)  # the default is 128 at V=32000
CLASS_WEIGHTS = False  # --class-weights: every torch variant is given class weights (torch's ``weight``)


def _torch_inputs(n: int, d: int, v: int) -> tuple[Any, Any, Any]:
    import torch

    g = torch.Generator().manual_seed(0)
    h = torch.randn(n, d, generator=g).requires_grad_(True)
    w = (torch.randn(v, d, generator=g) * d**-0.5).requires_grad_(True)
    return h, w, torch.randint(0, v, (n,), generator=g)


def _torch_variants(chunks: tuple[Any, ...]) -> dict[str, Callable[..., Any]]:
    import torch
    import torch.nn.functional as F

    from lossreg.kernels import torch_lce

    def weight(w: Any) -> dict[str, Any]:  # with --class-weights: one per class, 0.5 to 1.5
        return {"weight": torch.linspace(0.5, 1.5, w.shape[0])} if CLASS_WEIGHTS else {}

    variants: dict[str, Callable[..., Any]] = {
        "torch unfused": lambda h, w, t: F.cross_entropy(F.linear(h, w), t, **weight(w)),
        "lossreg forward-time grads": lambda h, w, t: torch_lce.linear_cross_entropy(h, w, t, **weight(w)),
        "lossreg recomputed grads": lambda h, w, t: torch_lce.linear_cross_entropy(h, w, t, recompute=True,
                                                                                  **weight(w)),
    }
    if hasattr(F, "linear_cross_entropy"):  # torch ≥ 2.13's own chunked operator: the peer a torch user has
        options = torch.nn.LinearCrossEntropyOptions()
        variants["torch F.linear_cross_entropy(options=...)"] = lambda h, w, t: F.linear_cross_entropy(
            h, w, t, options=options, **weight(w))
    for c in chunks:
        variants[f"lossreg chunk {c}"] = (lambda c: lambda h, w, t: torch_lce.linear_cross_entropy(
            h, w, t, chunk_size=c, **weight(w)))(c)
    return variants


def _step(f: Callable[..., Any], h: Any, w: Any, t: Any) -> None:
    h.grad = w.grad = None
    f(h, w, t).backward()


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss(run: Callable[[], Any]) -> tuple[int, int]:
    """(resident set before, its peak during ``run()``), polled every 0.5 ms from a thread: torch
    and NumPy release the GIL inside their operators, so the thread keeps polling."""
    base = _rss()
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.0005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        run()
    finally:
        done.set()
        sampler.join()
    return base, peak[0]


def memory_child(variant: str, size: str) -> None:
    """In a fresh process: the peak resident memory of one forward+backward above the baseline."""
    import torch

    n, d, v = SIZES[size]
    variants = _torch_variants(CHUNKS)
    small = _torch_inputs(64, d, 256)
    _step(variants[variant], *small)  # loads the kernels and torch's threads outside the count
    h, w, t = _torch_inputs(n, d, v)
    base, peak = _peak_rss(lambda: _step(variants[variant], h, w, t))
    print(json.dumps({"extra": peak - base, "grads": (h.numel() + w.numel()) * 4,
                      "threads": torch.get_num_threads()}))


def _memory(variant: str, size: str) -> dict[str, int]:
    out = subprocess.run([sys.executable, __file__, "--memory-child", variant, "--size", size,
                          *["--class-weights"] * CLASS_WEIGHTS], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_torch(size: str, rounds: int, chunks: tuple[Any, ...]) -> list[dict[str, Any]]:
    n, d, v = SIZES[size]
    logits = n * v * 4
    variants = _torch_variants(chunks)
    h, w, t = _torch_inputs(n, d, v)
    times: dict[str, list[float]] = {k: [] for k in variants}
    for f in variants.values():  # warm-up
        _step(f, *_torch_inputs(64, d, 256))
    for r in range(rounds):
        for name, f in variants.items():
            start = time.perf_counter()
            _step(f, h, w, t)
            times[name].append(time.perf_counter() - start)
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()), flush=True)
    rows = []
    for name in variants:
        ratios = [a / b for a, b in zip(times[name], times["torch unfused"])]
        mem = _memory(name, size)
        rows.append({"variant": name, "median_s": statistics.median(times[name]),
                     "time_ratio": statistics.median(ratios), "extra_bytes": mem["extra"],
                     "beyond_grads_bytes": mem["extra"] - mem["grads"], "logits_bytes": logits,
                     "extra_over_logits": mem["extra"] / logits,
                     "beyond_grads_over_logits": (mem["extra"] - mem["grads"]) / logits})
        print(rows[-1], flush=True)
    return rows


def _compiled_variants(names: tuple[str, ...] | None = None) -> dict[str, Callable[..., Any]]:
    """The unfused reference and lossreg's public function, eager and under torch.compile (inductor)."""
    import torch
    import torch.nn.functional as F

    import lossreg

    def unfused(h: Any, w: Any, t: Any) -> Any:
        return F.cross_entropy(F.linear(h, w), t)

    def fused(h: Any, w: Any, t: Any) -> Any:
        return lossreg.linear_cross_entropy(h, w, t)

    made = {"torch unfused, eager": lambda: unfused, "torch unfused, inductor": lambda: torch.compile(unfused, fullgraph=True),
            "lossreg, eager": lambda: fused, "lossreg, inductor": lambda: torch.compile(fused, fullgraph=True)}
    return {k: make() for k, make in made.items() if names is None or k in names}


def _trim() -> None:
    """Hand the C allocator's free memory back to the system (glibc), so that the baseline read after a
    full-size warm-up does not include the warm-up's freed blocks, which the measured step would reuse."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name:
        libc = ctypes.CDLL(name)
        if hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)


def compiled_memory_child(variant: str, size: str) -> None:
    """In a fresh process: the peak resident memory of one compiled forward+backward above the inputs.

    The step is compiled and run once at the measured shape first (compilation, its caches and
    torch's threads are outside the count), then the gradients are dropped, the allocator's free
    memory returned (:func:`_trim`) and the baseline read."""
    import torch

    n, d, v = SIZES[size]
    f = _compiled_variants((variant,))[variant]
    h, w, t = _torch_inputs(n, d, v)
    _step(f, h, w, t)
    h.grad = w.grad = None
    _trim()
    base, peak = _peak_rss(lambda: _step(f, h, w, t))
    print(json.dumps({"extra": peak - base, "grads": (h.numel() + w.numel()) * 4, "peak_rss": peak,
                      "threads": torch.get_num_threads()}))


def bench_torch_compiled(size: str, rounds: int) -> list[dict[str, Any]]:
    """Eager and inductor forward+backward, interleaved; memory of each in a fresh subprocess."""
    import torch._inductor.config

    torch._inductor.config.compile_threads = 1  # no worker pool on a shared machine
    n, d, v = SIZES[size]
    logits = n * v * 4
    variants = _compiled_variants()
    h, w, t = _torch_inputs(n, d, v)
    load = [os.getloadavg()[0]]
    for name, f in variants.items():  # compiled at the measured shape, outside the timings
        start = time.perf_counter()
        _step(f, h, w, t)
        print(f"warm-up {name}: {time.perf_counter() - start:.1f}s", flush=True)
    times: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(rounds):
        for name, f in variants.items():
            start = time.perf_counter()
            _step(f, h, w, t)
            times[name].append(time.perf_counter() - start)
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {x[-1]:.2f}s" for k, x in times.items()), flush=True)
    load.append(os.getloadavg()[0])
    rows = []
    for name in variants:
        out = subprocess.run([sys.executable, __file__, "--compiled-memory-child", name, "--size", size],
                             capture_output=True, text=True, check=True)
        mem = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append({"variant": name, "median_s": statistics.median(times[name]),
                     "vs_unfused_eager": statistics.median(a / b for a, b in zip(times[name], times["torch unfused, eager"])),
                     "vs_unfused_inductor": statistics.median(
                         a / b for a, b in zip(times[name], times["torch unfused, inductor"])),
                     "total_bytes": mem["extra"], "beyond_grads_bytes": mem["extra"] - mem["grads"],
                     "peak_rss_bytes": mem["peak_rss"], "logits_bytes": logits, "load": load})
        print(rows[-1], flush=True)
    return rows


def _markdown_compiled(rows: list[dict[str, Any]]) -> str:
    mb = 2**20
    logits = rows[0]["logits_bytes"]
    lines = ["", f"torch.compile (inductor), forward+backward; load average {rows[0]['load'][0]:.1f} before the "
             f"timings, {rows[0]['load'][1]:.1f} after. Memory: one step in a fresh process, above the inputs.", "",
             "| variant | median s | / unfused eager | / unfused inductor | total MiB | / logits | "
             "beyond grads MiB | / logits |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['median_s']:.2f} | {r['vs_unfused_eager']:.2f} | "
                     f"{r['vs_unfused_inductor']:.2f} | {r['total_bytes'] / mb:.0f} | {r['total_bytes'] / logits:.3f} | "
                     f"{r['beyond_grads_bytes'] / mb:.0f} | {r['beyond_grads_bytes'] / logits:.3f} |")
    return "\n".join(lines) + "\n"


def bench_jax(size: str, rounds: int) -> list[dict[str, Any]]:
    import jax
    import jax.numpy as jnp

    import lossreg
    from lossreg.kernels import jax_lce

    n, d, v = SIZES[size]
    logits = n * v * 4
    h = jax.random.normal(jax.random.PRNGKey(0), (n, d), jnp.float32)
    w = jax.random.normal(jax.random.PRNGKey(1), (v, d), jnp.float32) * d**-0.5
    t = jax.random.randint(jax.random.PRNGKey(2), (n,), 0, v)

    def unfused(h: Any, w: Any, t: Any) -> Any:  # optax's softmax_cross_entropy_with_integer_labels, mean
        z = (h @ w.T).astype(jnp.float32)
        logp = jax.nn.log_softmax(z, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, t[:, None], axis=1))

    def fused(chunk: Any = None, recompute: bool = False) -> Callable[..., Any]:
        if recompute:  # the kernel's option for the benchmark; the public loss does not take it
            return lambda h, w, t: jax_lce.linear_cross_entropy(h, w, t, chunk_size=chunk, recompute=True)
        return lambda h, w, t: lossreg.linear_cross_entropy(h, w, t, chunk_size=chunk)

    # The targets are an argument, as in a training step (closed over, XLA would fold what depends on them).
    variants = {"jax unfused (jit)": unfused, "lossreg jax kernel (default)": fused()}
    for c in JAX_CHUNKS:
        variants[f"lossreg jax chunk {c}"] = fused(c)
    variants["lossreg jax recomputed grads"] = fused(recompute=True)
    compiled, rows = {}, []
    for name, f in variants.items():
        compiled[name] = jax.jit(jax.value_and_grad(f, argnums=(0, 1))).lower(h, w, t).compile()
        jax.block_until_ready(compiled[name](h, w, t))
    times: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(rounds):
        for name, c in compiled.items():
            start = time.perf_counter()
            jax.block_until_ready(c(h, w, t))
            times[name].append(time.perf_counter() - start)
        print(f"jax round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()), flush=True)
    for name, c in compiled.items():
        temp = c.memory_analysis().temp_size_in_bytes
        ratios = [a / b for a, b in zip(times[name], times["jax unfused (jit)"])]
        rows.append({"variant": name, "dtype": "float32", "median_s": statistics.median(times[name]),
                     "time_ratio": statistics.median(ratios), "temp_bytes": temp, "logits_bytes": logits,
                     "temp_over_logits": temp / logits})
        print(rows[-1], flush=True)
    # bfloat16 inputs (float32 inside): compiled only, for the temporary memory (bfloat16 matmuls
    # on a CPU time nothing useful). The logits would be bfloat16 too: half the float32 size.
    hb, wb = h.astype(jnp.bfloat16), w.astype(jnp.bfloat16)
    for name in ("jax unfused (jit)", "lossreg jax kernel (default)"):
        c = jax.jit(jax.value_and_grad(variants[name], argnums=(0, 1))).lower(hb, wb, t).compile()
        temp = c.memory_analysis().temp_size_in_bytes
        rows.append({"variant": name, "dtype": "bfloat16", "median_s": None, "time_ratio": None, "temp_bytes": temp,
                     "logits_bytes": logits // 2, "temp_over_logits": temp / (logits // 2)})
        print(rows[-1], flush=True)
    return rows


def numpy_memory_child(size: str) -> None:
    """In a fresh process: time and peak memory of the portable ``linear_cross_entropy_value_and_grad``
    on NumPy. NumPy reports its arrays to tracemalloc, so its peak is the live arrays' exactly;
    the resident set (polled as for torch) adds what the allocator keeps."""
    import tracemalloc

    import numpy as np

    import lossreg

    n, d, v = SIZES[size]
    rng = np.random.default_rng(0)
    small = rng.standard_normal((64, d), dtype=np.float32), rng.standard_normal((256, d), dtype=np.float32)
    lossreg.linear_cross_entropy_value_and_grad(*small, rng.integers(0, 256, 64))
    h = rng.standard_normal((n, d), dtype=np.float32)
    w = rng.standard_normal((v, d), dtype=np.float32) * np.float32(d**-0.5)
    t = rng.integers(0, v, n)
    def run() -> None:  # NumPy releases the GIL in its loops and BLAS calls, so the sampler polls
        tracemalloc.start()
        start = time.perf_counter()
        lossreg.linear_cross_entropy_value_and_grad(h, w, t)
        measured["seconds"] = time.perf_counter() - start
        measured["traced"] = tracemalloc.get_traced_memory()[1]

    measured: dict[str, float] = {}
    base, peak = _peak_rss(run)
    print(json.dumps({"extra": peak - base, "traced": measured["traced"], "grads": (h.size + w.size) * 4,
                      "seconds": measured["seconds"]}))


def bench_numpy(size: str) -> list[dict[str, Any]]:
    n, d, v = SIZES[size]
    logits = n * v * 4
    out = subprocess.run([sys.executable, __file__, "--numpy-memory-child", "--size", size],
                         capture_output=True, text=True, check=True)
    mem = json.loads(out.stdout.strip().splitlines()[-1])
    row = {"variant": "numpy, portable linear_cross_entropy_value_and_grad (default chunks)", "median_s": mem["seconds"],
           "traced_bytes": mem["traced"], "extra_bytes": mem["extra"], "grads_bytes": mem["grads"],
           "logits_bytes": logits, "traced_over_logits": mem["traced"] / logits,
           "traced_beyond_grads_over_logits": (mem["traced"] - mem["grads"]) / logits,
           "extra_over_logits": mem["extra"] / logits}
    print(row, flush=True)
    return [row]


def _markdown(torch_rows: list[dict[str, Any]], jax_rows: list[dict[str, Any]], context: dict[str, Any],
              numpy_rows: tuple[dict[str, Any], ...] = ()) -> str:
    mb = 2**20
    lines = [f"# linear_cross_entropy, CPU, N={context['n']} D={context['d']} V={context['v']} float32, "
             f"forward+backward{', class weights (weight=, one per class) everywhere' if context.get('class_weights') else ''} "
             f"({context['date']})", "",
             f"Machine: {context['machine']}. Logits: {context['logits_mb']:.0f} MiB.", ""]
    if torch_rows:
        lines += ["| torch variant | median s | time / torch | peak extra MiB | / logits | beyond grads MiB | / logits |",
                  "|---|---|---|---|---|---|---|"]
    for r in torch_rows:
        lines.append(f"| {r['variant']} | {r['median_s']:.2f} | {r['time_ratio']:.2f} | {r['extra_bytes'] / mb:.0f} | "
                     f"{r['extra_over_logits']:.3f} | {r['beyond_grads_bytes'] / mb:.0f} | "
                     f"{r['beyond_grads_over_logits']:.3f} |")
    if jax_rows:
        lines += ["", "| JAX variant (jit, value_and_grad) | dtype | median s | time / unfused | temp MiB | / logits |",
                  "|---|---|---|---|---|---|"]
        for r in jax_rows:
            timed = (f"{r['median_s']:.2f} | {r['time_ratio']:.2f}" if r["median_s"] is not None
                     else "(compiled only) | –")
            lines.append(f"| {r['variant']} | {r['dtype']} | {timed} | {r['temp_bytes'] / mb:.0f} | "
                         f"{r['temp_over_logits']:.3f} |")
    if numpy_rows:
        lines += ["", "| NumPy (one run, fresh process) | s | peak of live arrays MiB (tracemalloc) | / logits | "
                  "beyond grads / logits | peak RSS extra MiB | / logits |", "|---|---|---|---|---|---|---|"]
        for r in numpy_rows:
            lines.append(f"| {r['variant']} | {r['median_s']:.1f} | {r['traced_bytes'] / mb:.0f} | "
                         f"{r['traced_over_logits']:.3f} | {r['traced_beyond_grads_over_logits']:.3f} | "
                         f"{r['extra_bytes'] / mb:.0f} | {r['extra_over_logits']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-jax", action="store_true")
    parser.add_argument("--no-sweep", action="store_true", help="skip the chunk-size sweep")
    parser.add_argument("--out", help="write OUT.json and OUT.md")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--no-numpy", action="store_true")
    parser.add_argument("--compiled", action="store_true", help="also torch.compile (inductor) against the unfused")
    parser.add_argument("--class-weights", action="store_true",
                        help="torch only: every variant with class weights (weight=, one per class)")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    parser.add_argument("--compiled-memory-child", help=argparse.SUPPRESS)
    parser.add_argument("--numpy-memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global CLASS_WEIGHTS
    CLASS_WEIGHTS = args.class_weights
    if args.memory_child:
        memory_child(args.memory_child, args.size)
        return
    if args.compiled_memory_child:
        compiled_memory_child(args.compiled_memory_child, args.size)
        return
    if args.numpy_memory_child:
        numpy_memory_child(args.size)
        return
    n, d, v = SIZES[args.size]
    chunks = () if args.no_sweep else CHUNKS
    torch_rows = [] if args.no_torch else bench_torch(args.size, args.rounds, chunks)
    jax_rows = [] if args.no_jax else bench_jax(args.size, args.rounds)
    compiled_rows = bench_torch_compiled(args.size, args.rounds) if args.compiled else []
    numpy_rows = [] if args.no_numpy else bench_numpy(args.size)
    load = os.getloadavg()
    context = {"n": n, "d": d, "v": v, "logits_mb": n * v * 4 / 2**20, "class_weights": CLASS_WEIGHTS,
               "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "machine": f"{os.cpu_count()} CPUs shared with other jobs, load average {load[0]:.1f} at the end"}
    text = (_markdown(torch_rows, jax_rows, context, tuple(numpy_rows))
            + (_markdown_compiled(compiled_rows) if compiled_rows else ""))
    print(text)
    if args.out:
        with open(args.out + ".json", "w") as f:
            json.dump({"context": context, "torch": torch_rows, "jax": jax_rows, "torch_compiled": compiled_rows,
                       "numpy": numpy_rows}, f, indent=1)
        with open(args.out + ".md", "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
