"""Side-by-side CPU timings of lossreg against the native implementation (``lossreg bench``).

For each loss, array library, size and mode, the native call, lossreg with kernels (the default
path) and lossreg with kernels off (the portable definition) run on the same arrays, interleaved
round by round, each after each other equally often (see :func:`lossreg.timing.measure`), so
that a busy machine slows all three alike. Each sample times a batch of calls (about 0.2 ms
worth, so that the timer's resolution does not matter); the report gives the median per call
and the ratios lossreg / native.

Native is ``torch.nn.functional`` on torch tensors (torch's default threads) and, for NumPy
arrays, torch on one thread (``torch.set_num_threads(1)``) on the same memory.

``--library jax`` compares lossreg on JAX arrays with optax and Keras instead (see
:mod:`lossreg.bench_peers`): under ``jax.jit`` and eagerly, forward and forward+grad.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .timing import (SAME, SIZES, cpu as _cpu, differ, largest_difference, load as _load, measure as _measure, report,
                     us as _us, versions as _versions)

LOSSES = ("mse", "l1", "cross_entropy", "bce")
PEER_MODES = ("jit forward", "jit forward+grad", "eager forward", "eager forward+grad")
# Targets of issue 6 for the default (kernel) path: (library, mode, size) -> ratio.
TARGETS = {("torch", "forward", "tiny"): 1.3, ("torch", "forward", "medium"): 1.1,
           ("torch", "forward", "large"): 1.1, ("torch", "forward+backward", "tiny"): 1.3,
           ("torch", "forward+backward", "medium"): 1.2, ("torch", "forward+backward", "large"): 1.2,
           ("numpy", "forward", "tiny"): 2.0, ("numpy", "forward", "medium"): 2.0, ("numpy", "forward", "large"): 2.0}
# Targets of issue 13 for the portable definition (kernels off) on torch tensors.
PORTABLE_TARGETS = {("torch", mode, size): 1.5 for mode in ("forward", "forward+backward") for size in ("medium", "large")}


@dataclass
class Row:
    library: str
    loss: str
    size: str
    shape: tuple[int, int]
    mode: str
    native_us: float
    kernel_us: float
    portable_us: float
    samples: int
    calls_per_sample: int
    target: float | None = None
    portable_target: float | None = None
    # The largest difference of lossreg's outputs (kernel and portable; the gradient in
    # forward+backward) from native's, relative to native's largest: a ratio of two different
    # computations means nothing, so a row beyond timing.SAME meets no target and says so.
    max_rel_diff: float = 0.0
    same_values: bool = field(init=False)
    kernel_ratio: float = field(init=False)
    portable_ratio: float = field(init=False)
    met: bool | None = field(init=False)
    portable_met: bool | None = field(init=False)

    def __post_init__(self) -> None:
        self.kernel_ratio = self.kernel_us / self.native_us
        self.portable_ratio = self.portable_us / self.native_us
        self.same_values = self.max_rel_diff <= SAME
        judged = self.same_values
        self.met = None if self.target is None or not judged else self.kernel_ratio <= self.target
        self.portable_met = (None if self.portable_target is None or not judged
                             else self.portable_ratio <= self.portable_target)


def _inputs(loss: str, shape: tuple[int, int], seed: int = 0) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    n, c = shape
    x = rng.standard_normal(shape, dtype=np.float32)
    if loss == "cross_entropy":
        return x, rng.integers(0, c, size=n)
    if loss == "bce":
        return 1 / (1 + np.exp(-x)), rng.random(shape, dtype=np.float32)
    return x, rng.standard_normal(shape, dtype=np.float32)


def _calls(loss: str, library: str, mode: str, x: Any, y: Any) -> dict[str, Callable[[], Any]]:
    """The three callables to compare: native, lossreg (kernels on), lossreg (kernels off)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    import lossreg

    natives: dict[str, Callable[..., Any]] = {"mse": F.mse_loss, "l1": F.l1_loss, "cross_entropy": F.cross_entropy,
                                              "bce": F.binary_cross_entropy}
    native_fn = natives[loss]
    ours = {"mse": lossreg.mse_loss, "l1": lossreg.l1_loss, "cross_entropy": lossreg.cross_entropy,
            "bce": lossreg.binary_cross_entropy}[loss]
    tx, ty = torch.from_numpy(x), torch.from_numpy(np.ascontiguousarray(y))
    if library == "numpy":
        def native() -> Any:
            return native_fn(tx, ty)

        def kernel() -> Any:
            return ours(x, y)

        def portable() -> Any:
            with lossreg.use_kernels(False):
                return ours(x, y)

        return {"native": native, "kernel": kernel, "portable": portable}
    if mode == "forward":
        def native() -> Any:
            return native_fn(tx, ty)

        def kernel() -> Any:
            return ours(tx, ty)

        def portable() -> Any:
            with lossreg.use_kernels(False):
                return ours(tx, ty)

        return {"native": native, "kernel": kernel, "portable": portable}
    leaf = tx.clone().requires_grad_(True)

    def backward(fn: Callable[..., Any]) -> Callable[[], Any]:
        def run() -> Any:
            leaf.grad = None
            fn(leaf, ty).backward()
            return leaf.grad

        return run

    def off(*a: Any) -> Any:
        with lossreg.use_kernels(False):
            return ours(*a)

    return {"native": backward(native_fn), "kernel": backward(ours), "portable": backward(off)}


def run(losses: Sequence[str] = LOSSES, sizes: Sequence[str] = tuple(SIZES), libraries: Sequence[str] = ("torch", "numpy"),
        budget_s: float = 1.0, log: Callable[[str], None] | None = None) -> list[Row]:
    import torch

    rows = []
    threads = torch.get_num_threads()
    for library in libraries:
        modes = ("forward", "forward+backward") if library == "torch" else ("forward",)
        torch.set_num_threads(1 if library == "numpy" else threads)
        try:
            for size in sizes:
                for loss in losses:
                    x, y = _inputs(loss, SIZES[size])
                    for mode in modes:
                        calls = _calls(loss, library, mode, x, y)
                        diff: list[float] = []
                        med, samples, batch = _measure(
                            calls, budget_s, check=lambda out: diff.append(largest_difference(out, "native")))
                        row = Row(library, loss, size, SIZES[size], mode, med["native"] * 1e6, med["kernel"] * 1e6,
                                  med["portable"] * 1e6, samples, batch, TARGETS.get((library, mode, size)),
                                  PORTABLE_TARGETS.get((library, mode, size)), diff[0])
                        rows.append(row)
                        if log:
                            log(_line(row))
        finally:
            torch.set_num_threads(threads)
    return rows


HEADER = ("library", "loss", "size", "mode", "native µs", "lossreg µs", "ratio", "target", "portable µs", "ratio",
          "target")


def _target(target: float | None, met: bool | None, same: bool = True) -> str:
    if not same:
        return "VALUES DIFFER"
    return "" if target is None else f"≤{target} " + ("met" if met else "MISSED")


def _cells(r: Row) -> tuple[str, ...]:
    return (r.library, r.loss, f"{r.size} {r.shape[0]}×{r.shape[1]}", r.mode, _us(r.native_us), _us(r.kernel_us),
            f"{r.kernel_ratio:.2f}", _target(r.target, r.met, r.same_values), _us(r.portable_us),
            f"{r.portable_ratio:.2f}", _target(r.portable_target, r.portable_met, r.same_values))


def _line(r: Row) -> str:
    return "  ".join(_cells(r))


def markdown(rows: Sequence[Row], context: dict[str, Any]) -> str:
    text = report(
        "lossreg CPU benchmark", context,
        f"{context['cpu']} ({context['cores']} cores, torch threads {context['torch_threads']})",
        "Median time per call; ratio = lossreg / native on the same arrays, sampled interleaved. "
        "`lossreg` is the default path (kernels on: lossreg/kernels/torch.py on torch tensors, "
        "lossreg/kernels/numpy.py on NumPy arrays); "
        "`portable` is the same call with `use_kernels(False)`. "
        "Native: torch.nn.functional (torch tensors), torch on one thread (NumPy arrays). "
        "The first target is the default path's, the second the portable definition's on torch tensors.",
        HEADER, rows, _cells,
        lambda r: f"{r.library} {r.loss} {r.size} {r.mode} {r.kernel_ratio:.2f}× (target {r.target}×)")
    text += differ(rows, lambda r: f"{r.library} {r.loss} {r.size} {r.mode}")
    judged = [r for r in rows if r.portable_met is not None]
    if judged:
        text += f"Portable targets met: {sum(bool(r.portable_met) for r in judged)} of {len(judged)}.\n"
        missed = [f"{r.loss} {r.size} {r.mode} {r.portable_ratio:.2f}×" for r in judged if not r.portable_met]
        if missed:
            text += "Portable missed: " + "; ".join(missed) + ".\n"
    return text


def main(argv: Sequence[str] | None = None, *, command: str | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="lossreg bench", description=__doc__.partition("\n")[0])
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv), command=command)


def positive_int(value: str) -> int:
    """An argparse type: a whole number of at least 1 (``--threads`` here, ``--jobs`` of
    ``lossreg conformance``), which torch and the process pool refuse otherwise."""
    import argparse

    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {number}")
    return number


def positive_seconds(value: str) -> float:
    """An argparse type: a number of seconds above 0 (``--budget``); 0, a negative number or NaN
    would time nothing or sample without end."""
    import argparse
    import math

    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {value!r}") from None
    if not (number > 0 and math.isfinite(number)):
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {value}")
    return number


# The torch rows' names by lossreg's name of their loss: --loss takes any name or alias of these.
ROWS = {"mse_loss": "mse", "l1_loss": "l1", "cross_entropy": "cross_entropy", "binary_cross_entropy": "bce"}


def loss_names(names: Sequence[str], libraries: Sequence[str]) -> tuple[list[str] | None, list[str] | None]:
    """``--loss``'s names (any name or alias ``lossreg.get`` takes) as the torch rows' names and as
    the JAX rows' (lossreg's names), each once; None for a library not chosen. ValueError for a name
    the chosen libraries have no rows for: with torch or numpy, each must be one of ``LOSSES``
    (which then runs on JAX where it has a peer there); with JAX alone, one of its peers."""
    import lossreg

    from .errors import LossError

    native = [lib for lib in libraries if lib != "jax"]
    resolved: list[tuple[str, str | None]] = []
    for name in names:
        try:
            resolved.append((name, lossreg.spec(name).name))
        except LossError:
            resolved.append((name, None))
    rows: list[str] | None = None
    if native:
        rows = []
        for name, found in resolved:
            if found is None:
                raise ValueError(f"unknown loss {name!r}; expected one of {', '.join(LOSSES)} (or another of "
                                 "their names: `lossreg list`)")
            if found not in ROWS:
                raise ValueError(f"no bench rows for loss {name!r} ({found}) on --library {', '.join(native)}; "
                                 f"expected one of {', '.join(LOSSES)} (or another of their names: `lossreg list`)")
            rows.append(ROWS[found])
        rows = list(dict.fromkeys(rows))
    peers: list[str] | None = None
    if "jax" in libraries:
        from . import bench_peers

        known = bench_peers.loss_names()
        if not native:
            for name, found in resolved:
                if (found or name) not in known:
                    raise ValueError(f"unknown loss {name!r} for --library jax; expected one of {', '.join(known)} "
                                     "(or another of their names: `lossreg list`)")
        peers = list(dict.fromkeys(found or name for name, found in resolved))
    return rows, peers


def add_arguments(parser: Any) -> None:
    parser.add_argument("--loss", default=None, help="comma-separated: " + ", ".join(LOSSES) + " or any other "
                        "of their names (default: these; with --library jax, every loss optax or Keras also has, "
                        "which --library jax alone takes by any of its names)")
    parser.add_argument("--size", default=",".join(SIZES), help="comma-separated: " + ", ".join(SIZES))
    parser.add_argument("--library", default="torch,numpy",
                        help="comma-separated: torch, numpy (against native torch), jax (against optax and Keras)")
    parser.add_argument("--mode", default=None, help="with --library jax, comma-separated: " + ", ".join(
        m.replace(" ", "-") for m in PEER_MODES) + " (default: all)")
    parser.add_argument("--budget", type=positive_seconds, default=0.5,
                        help="seconds of sampling per row, above 0 (default 0.5); a row takes at least 5 rounds "
                             "(3 where a round takes half a second or more), so a slow row can take longer")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch threads for the torch-tensor rows (default: torch's own choice); on a "
                             "shared machine, 1 avoids stalls of parallel regions waiting for a busy core")
    parser.add_argument("--out", default=None, metavar="STEM",
                        help="write STEM.json and STEM.md (e.g. benchmarks/results/cpu)")


def _unwritable(stem: str) -> str | None:
    """Why ``STEM.json`` and ``STEM.md`` cannot be written (their folder made, as the run's end makes
    it), or None."""
    folder = os.path.dirname(os.path.abspath(stem))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        return f"{exc.strerror or type(exc).__name__}: {exc.filename or folder}"
    if not os.access(folder, os.W_OK):
        return f"{folder} is not writable"
    taken = [stem + ext for ext in (".json", ".md") if os.path.isdir(stem + ext)]
    return f"{taken[0]} is a folder" if taken else None


def _finite(value: Any) -> Any:
    """``value`` with each float that is not finite replaced by None, in dicts, lists and tuples."""
    import math

    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def run_from_args(args: Any, *, command: str | None = None) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    split = [[s.strip() for s in v.split(",") if s.strip()] for v in (args.size, args.library)]
    for values, known, what in zip(split, (tuple(SIZES), ("torch", "numpy", "jax")), ("size", "library")):
        for v in values:
            if v not in known:
                print(f"lossreg bench: unknown {what} {v!r}; expected one of {', '.join(known)}", file=sys.stderr)
                return 2
    for values, flag in zip(split, ("--size", "--library")):
        if not values:  # `--size ""`: a run of nothing is no benchmark
            print(f"lossreg bench: {flag} names nothing; leave it out for its default", file=sys.stderr)
            return 2
    sizes, libraries = split
    if args.loss is not None and not [s for s in args.loss.split(",") if s.strip()]:
        print("lossreg bench: --loss names nothing; leave it out for its default", file=sys.stderr)
        return 2
    native = [lib for lib in libraries if lib != "jax"]
    if "jax" in libraries:  # its peers' rows need optax (Keras is optional): said now, not as a traceback
        try:
            import jax  # noqa: F401
            import optax  # noqa: F401
        except ImportError as exc:
            print(f"lossreg bench: --library jax times lossreg against optax (and Keras) on JAX, and needs jax "
                  f"and optax installed ({type(exc).__name__}: {exc})", file=sys.stderr)
            return 2
    rows_of: list[str] | None = None  # the torch rows' names
    peer_losses: list[str] | None = None  # the JAX rows' (lossreg's names)
    if args.loss is not None:
        try:
            rows_of, peer_losses = loss_names([s.strip() for s in args.loss.split(",") if s.strip()], libraries)
        except ValueError as exc:
            print(f"lossreg bench: {exc}", file=sys.stderr)
            return 2
    modes = PEER_MODES
    if getattr(args, "mode", None) and "jax" not in libraries:  # the torch and numpy rows have no modes to choose
        print(f"lossreg bench: --mode applies to --library jax only, not to --library {', '.join(libraries)}",
              file=sys.stderr)
        return 2
    if getattr(args, "mode", None):
        modes = tuple(m.strip().replace("-", " ").replace("forward grad", "forward+grad")
                      for m in args.mode.split(",") if m.strip())
        bad = [m for m in modes if m not in PEER_MODES]
        if bad:
            print(f"lossreg bench: unknown mode {bad[0]!r}; expected one of "
                  f"{', '.join(m.replace(' ', '-') for m in PEER_MODES)}", file=sys.stderr)
            return 2
    problem = _unwritable(args.out) if args.out else None
    if problem:  # said now, not as a traceback once every row has been timed and the results are lost
        print(f"lossreg bench: --out {args.out}: cannot write there ({problem})", file=sys.stderr)
        return 2
    context = {"command": command or " ".join(["lossreg", "bench", *sys.argv[1:]]),
               "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "cpu": _cpu(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
               "load_start": _load(), "versions": _versions(), "platform": platform.platform()}
    outputs: list[tuple[str, str, list[Any], dict[str, Any]]] = []
    if native:
        print("  ".join(HEADER))
        rows = run(rows_of or LOSSES, sizes, native, budget_s=args.budget, log=print)
        context["load_end"] = _load()
        outputs.append(("", markdown(rows, context), rows, dict(context)))
    if "jax" in libraries:
        from . import bench_peers

        peer_context = {**context, "load_start": _load(), "versions": bench_peers.versions()}
        print("  ".join(bench_peers.HEADER))
        peer_rows = bench_peers.run(peer_losses, sizes, modes, budget_s=args.budget, log=print)
        peer_context["load_end"] = _load()
        outputs.append(("_jax" if native else "", bench_peers.markdown(peer_rows, peer_context), peer_rows,
                        peer_context))
    for suffix, md, rows, ctx in outputs:
        print(md.split("\n\n")[-1].strip())
        if args.out:
            stem = args.out + suffix
            os.makedirs(os.path.dirname(stem) or ".", exist_ok=True)
            with open(stem + ".json", "w", encoding="utf-8") as f:
                # allow_nan=False: JSON has no inf or NaN (json.dump would write the invalid
                # `Infinity`), so a figure that is not finite (a row whose outputs differ in
                # shape: max_rel_diff inf) is written as null.
                json.dump(_finite({**ctx, "rows": [asdict(r) for r in rows]}), f, indent=1, allow_nan=False)
            with open(stem + ".md", "w", encoding="utf-8") as f:
                f.write(md)
            print(f"wrote {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
