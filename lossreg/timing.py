"""Timing helpers shared by the benchmarks (``lossreg bench``): interleaved sampling and the context."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

SIZES = {"tiny": (4, 5), "medium": (256, 1000), "large": (2048, 8192)}


def measure(calls: dict[str, Callable[[], Any]], budget_s: float, min_samples: int = 5,
            max_samples: int | None = None, warmups: int = 2,
            check: Callable[[dict[str, Any]], None] | None = None) -> tuple[dict[str, float], int, int]:
    """Median seconds per call of each callable, sampled in interleaved rounds after ``warmups`` calls each.

    A call can slow the one after it (on JAX, any call that follows Keras's at 2048x8192 takes
    10-15 % longer), so each callable must follow each other one equally often: rounds alternate
    the given order with its tail reversed, ``a b c``, ``a c b``, ..., so that of two or three
    callables each follows each other one in half the rounds. (Rotation, ``a b c``, ``b c a``,
    ``c a b``, puts ``a`` after ``c`` in two rounds of three and ``b`` after ``c`` in one: it
    made lossreg, timed after Keras twice as often as optax, 1.1-1.4x optax where equal.)

    Rounds are taken until ``budget_s`` seconds of sampling have passed on the clock
    (``--budget``, "seconds of sampling per row"), and never fewer than ``min_samples`` (3 where
    one round takes half a second or more), so a slow row overruns it; ``max_samples`` caps them
    where given. (A count of rounds fixed beforehand from one call's time, capped at 200 rounds
    of about 0.2 ms of calls, sampled a fast row for 0.1 s whatever the budget above that, and
    on a loaded machine a row for several times the budget.)

    ``check``, where given, is called with each callable's output of its last warm-up call (at
    least one), for :func:`largest_difference`: the callables must compute the same thing. It runs
    before the timing, and the outputs are let go then, so that no timed call runs with them held
    (at 2048x8192 a gradient is 64 MiB; held, it changes what the allocator reuses).
    """
    results: dict[str, Any] = {}
    for name, fn in calls.items():  # warm up: caches, lazy imports, allocator
        for _ in range(warmups if check is None else max(warmups, 1)):
            results[name] = fn()
    if check is not None:
        check(results)
    results.clear()
    start = time.perf_counter()
    for fn in calls.values():
        fn()
    per_round = max(time.perf_counter() - start, 1e-7)
    batch = max(1, int(2e-4 * len(calls) / per_round))
    floor = min_samples if per_round < 0.5 else 3  # rows of whole seconds: three rounds
    if max_samples is not None:
        floor = min(floor, max_samples)
    times: dict[str, list[float]] = {k: [] for k in calls}
    names = list(calls)
    gc_was = gc.isenabled()
    gc.disable()
    samples = 0
    try:
        start = time.perf_counter()
        while samples < floor or (time.perf_counter() - start < budget_s
                                  and (max_samples is None or samples < max_samples)):
            order = names if samples % 2 == 0 else names[:1] + names[:0:-1]
            for name in order:
                fn = calls[name]
                t0 = time.perf_counter()
                for _ in range(batch):
                    fn()
                times[name].append((time.perf_counter() - t0) / batch)
            samples += 1
    finally:
        if gc_was:
            gc.enable()
    return {k: statistics.median(v) for k, v in times.items()}, samples, batch


def largest_difference(results: dict[str, Any], reference: str) -> float:
    """The largest difference of any callable's output from ``reference``'s, relative to the
    largest magnitude of the reference's (each array of a tuple, such as JAX's value and gradient,
    compared in turn, in float64); inf where the shapes differ. A benchmark's ratio means
    something only where this is at rounding level: else the two compute different things."""
    import numpy as np

    def leaves(out: Any) -> list[Any]:
        if isinstance(out, (tuple, list)):
            return [leaf for item in out for leaf in leaves(item)]
        if hasattr(out, "detach"):  # a torch tensor
            out = out.detach().cpu()
        return [np.asarray(out, dtype=np.float64)]

    want = leaves(results[reference])
    worst = 0.0
    for name, out in results.items():
        got = leaves(out)
        if len(got) != len(want) or any(g.shape != w.shape for g, w in zip(got, want)):
            return float("inf")
        for g, w in zip(got, want):
            finite = np.isfinite(w)  # inf and NaN must match where they are
            if not (np.array_equal(finite, np.isfinite(g)) and np.array_equal(g[~finite], w[~finite], equal_nan=True)):
                return float("inf")
            scale = float(np.max(np.abs(w[finite]), initial=0.0)) or 1.0
            worst = max(worst, float(np.max(np.abs(g[finite] - w[finite]), initial=0.0)) / scale)
    return worst


# What ``lossreg bench`` calls computing the same thing: float32 arithmetic done in another
# order (a sum over 2^24 elements, torch's CTC gradient) stays far below it; another formula
# (a default option that differs, a mean over another axis) far above.
SAME = 1e-3


def differ(rows: Sequence[Any], name: Callable[[Any], str]) -> str:
    """The report's line on rows whose compared calls gave different values (``same_values``
    False): their ratios compare different computations, so no target is judged on them."""
    bad = [r for r in rows if not r.same_values]
    if not bad:
        return ""
    return ("Values differ (no target judged; largest relative difference from the reference): "
            + "; ".join(f"{name(r)} {r.max_rel_diff:.1e}" for r in bad) + ".\n")


def cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


CORE = ("lossreg", "torch", "numpy", "array-api-compat", "array-api-extra")


def versions(*names: str) -> dict[str, str]:
    """Python's version and each installed distribution's of ``names`` (default :data:`CORE`),
    keyed as named; one not installed is left out."""
    out = {"python": platform.python_version()}
    for name in names or CORE:
        try:
            out[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            pass
    return out


def load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def us(t: float) -> str:
    return f"{t:,.1f}" if t < 1000 else f"{t:,.0f}"


def report(title: str, context: dict[str, Any], cpu_line: str, intro: str, header: Sequence[str],
           rows: Sequence[Any], cells: Callable[[Any], Sequence[str]], missed: Callable[[Any], str]) -> str:
    """A benchmark's Markdown report: its context, one table row per result, and the targets.

    ``rows`` have ``met`` (True, False, or None where no target applies); ``cells`` gives a row's
    table cells and ``missed`` how a missed row is named in the closing line.
    """
    lines = [f"# {title}", "", f"Command: `{context['command']}`  ", f"Date: {context['date']}  ",
             f"CPU: {cpu_line}; load average at start {context['load_start']}, at end {context['load_end']}  ",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in context["versions"].items()), "", intro, "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells(r)) + " |" for r in rows]
    lines += ["", f"Targets met: {sum(r.met is True for r in rows)} of {sum(r.met is not None for r in rows)}."]
    if any(r.met is False for r in rows):
        lines.append("Missed: " + "; ".join(missed(r) for r in rows if r.met is False) + ".")
    return "\n".join(lines) + "\n"
