"""A jax_peers.md row timed again in one process: lossreg, optax, a second copy of lossreg's program,
and plain ``jax.numpy`` forms of the formula with and without the term optax lacks.

On 2 shared cores the ratio of one ``lossreg bench --library jax`` row moves by ±30 % from run
to run. Alternated call by call in one process (each program after each other equally often,
``block_until_ready`` on every call), the copy of lossreg's program gives the noise band (its
ratio to lossreg's own is 1 but for the noise), and the ``jax.numpy`` pair says what one term
of the formula costs: torch's count of targets not ignored in cross-entropy's mean, the ε
inside the triplet loss's norm. Medians per repetition, in µs::

    python benchmarks/jax_alternated.py --out benchmarks/results/jax_alternated.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

ROWS = ("cross_entropy(x, labels)|tiny|jit forward+grad", "cross_entropy(x, labels)|large|jit forward",
        "cross_entropy(x, labels)|large|jit forward+grad", "triplet_margin_loss(a, p, n)|medium|jit forward",
        "triplet_margin_loss(a, p, n)|large|jit forward", "huber_loss(x, y)|large|jit forward",
        "sparsemax_loss(x, labels)|medium|jit forward")


def _forms() -> dict[str, dict[str, Callable[..., Any]]]:
    """Plain jax.numpy forms of a loss, by its bench call: with the term optax lacks, and without."""
    import jax
    import jax.numpy as jnp

    def ce(count: bool) -> Callable[..., Any]:
        def f(x: Any, y: Any) -> Any:  # lossreg's program, written out: masks, shift, picked logit
            c = x.shape[1]
            m = jnp.floor(jnp.clip(jax.lax.stop_gradient(jnp.max(x, axis=1, keepdims=True)), min=-3.4e38))
            log_sum = jnp.log(jnp.sum(jnp.exp(x - m), axis=1))
            valid, kept = (y >= 0) & (y < c), y != -100
            picked = jnp.take_along_axis(x, jnp.where(valid, y, 0)[:, None], axis=1)[:, 0]
            losses = jnp.where(valid & kept, log_sum - (picked - m[:, 0]), 0.0)
            losses = losses + jnp.sqrt(-(~valid & kept).astype(x.dtype))  # NaN for an invalid index
            return jnp.sum(losses) / (jnp.sum((valid & kept).astype(x.dtype)) if count else x.shape[0])
        return f

    def triplet(eps: float) -> Callable[..., Any]:
        def f(a: Any, p: Any, n: Any) -> Any:
            d_pos = jnp.sqrt(jnp.sum((a - p + eps) ** 2, axis=1))
            d_neg = jnp.sqrt(jnp.sum((n - a - eps) ** 2, axis=1))
            return jnp.mean(jnp.maximum(1.0 + d_pos - d_neg, 0.0))
        return f

    return {"cross_entropy(x, labels)": {"jnp, mean over the targets counted": ce(True),
                                         "jnp, mean over N": ce(False)},
            "triplet_margin_loss(a, p, n)": {"jnp, ‖a - p + ε‖": triplet(1e-6), "jnp, ‖a - p‖": triplet(0.0)}}


def row(call: str, size: str, mode: str, repeats: int, budget_s: float) -> list[str]:
    import jax
    import numpy as np

    from lossreg import bench_peers
    from lossreg.timing import SIZES

    pair = bench_peers._pairs()[call]
    assert pair.optax is not None, f"{call} has no optax peer"
    arrays = pair.make(np.random.default_rng(0), SIZES[size])
    grad = mode.endswith("grad")

    def compiled(f: Callable[..., Any]) -> Callable[..., Any]:
        return jax.jit(jax.value_and_grad(f) if grad else f)

    # Two jax.jit wrappers of lossreg: two compiled programs, the same HLO.
    programs = {"lossreg": (compiled(pair.lossreg), arrays["lossreg"]),
                "lossreg, a second copy": (compiled(lambda *a: pair.lossreg(*a)), arrays["lossreg"]),
                "optax": (compiled(pair.optax), arrays["optax"])}
    programs |= {name: (compiled(f), arrays["lossreg"]) for name, f in _forms().get(call, {}).items()}
    once = {}
    for name, (f, args) in programs.items():
        jax.block_until_ready(f(*args))  # compiled, and warm
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        once[name] = time.perf_counter() - t0
    rounds = max(5, min(4000, int(budget_s / sum(once.values()))))
    medians: dict[str, list[float]] = {name: [] for name in programs}
    order = list(programs.items())
    for _ in range(repeats):
        times: dict[str, list[float]] = {name: [] for name in programs}
        for r in range(rounds):
            for name, (f, args) in (order if r % 2 else order[::-1]):  # each before each other alike
                t0 = time.perf_counter()
                jax.block_until_ready(f(*args))
                times[name].append(time.perf_counter() - t0)
        for name, ts in times.items():
            medians[name].append(statistics.median(ts) * 1e6)
    load = os.getloadavg()[0]
    lines = []
    for name, ms in medians.items():
        ratios = [m / o for m, o in zip(ms, medians["optax"])]
        lines.append(f"| {call} | {size} | {mode} | {name} | {' / '.join(f'{m:,.1f}' for m in ms)} | "
                     f"{min(ratios):.2f}–{max(ratios):.2f} | {rounds} | {load:.1f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default=";".join(ROWS), help="call|size|mode, separated by ;")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=float, default=3.0, help="seconds per repetition")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    lines = ["# A jax_peers.md row timed again in one process, alternated with a copy of itself", "",
             f"Command: `python benchmarks/jax_alternated.py {' '.join(argv or sys.argv[1:])}`  ",
             f"Load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", "",
             "Median µs per call in each repetition (float32, XLA CPU), the ratio to optax's median in the "
             "same repetition (its range), rounds per repetition, and the 1-minute load at the row's end. "
             "`jnp` forms: the formula in plain jax.numpy, with the term torch's definition has and optax's "
             "has not, and without it.", "",
             "| call | size | mode | program | µs per repetition | ratio to optax | rounds | load |",
             "|---|---|---|---|---|---|---|---|"]
    for spec in args.rows.split(";"):
        call, size, mode = (part.strip() for part in spec.split("|"))
        try:
            new = row(call, size, mode, args.repeats, args.budget)
        except KeyError:  # a plugin's loss that is not installed
            new = [f"| {call} | {size} | {mode} | not installed | | | | |"]
        lines += new
        print("\n".join(new), flush=True)
    lines.append(f"\nLoad average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
