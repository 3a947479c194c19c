"""The compiled programs behind benchmarks/results/jax_peers.md: lossreg and optax under ``jax.jit``.

Timings on a shared 2-core machine move by ±30 %; the programs XLA compiles do not. For each
loss optax also has, this counts the fusions of the compiled HLO module (forward, and
``jax.value_and_grad``) and how many of them write a full input-sized array (a pass over
memory that a fused reduction avoids); a loop's fusions (CTC's scan over the frames) are
counted per step, apart. XLA's cost analysis adds the flops and bytes it counts: two programs
with the same fusions and bytes may still differ by an operation per element (a term that torch's
formula has and optax's has not), which only the flops show::

    python benchmarks/jax_programs.py --size tiny,medium,large --out benchmarks/results/jax_programs.md
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any


def programs(size: str) -> list[tuple[str, ...]]:
    import jax
    import numpy as np

    from lossreg import bench_peers
    from lossreg.timing import SIZES

    shape = SIZES[size]
    full = re.compile(rf"= f32\[{shape[0]},{shape[1]}\]")
    rows: list[tuple[str, ...]] = []
    for name, pair in bench_peers._pairs().items():
        if pair.optax is None:
            continue
        arrays = pair.make(np.random.default_rng(0), shape)
        for mode, transform in (("jit forward", lambda f: f), ("jit forward+grad", jax.value_and_grad)):
            cells = []
            for lib in ("lossreg", "optax"):
                compiled = jax.jit(transform(getattr(pair, lib))).lower(*arrays[lib]).compile()
                text = compiled.as_text() or ""
                computations = {c.split(" ", 1)[0].lstrip("%"): c for c in re.split(r"\n(?=\S)", text)}
                fusions = [line for line in text[text.index("ENTRY"):].splitlines() if " fusion(" in line]
                bodies = re.findall(r"body=%?([\w.\-]+)", text)
                per_step = [computations.get(body, "").count(" fusion(") for body in bodies]
                cells.append(f"{len(fusions)}" + "".join(f" + {n} per step" for n in per_step)
                             + f" / {sum(bool(full.search(line)) for line in fusions)}")
                cost = _cost(compiled)
                cells.append(f"{_si(cost.get('flops', 0.0))} / {_si(cost.get('bytes accessed', 0.0))}")
            # lossreg's cells, then optax's: fusions, then flops and bytes
            rows.append((pair.call, f"{size} {shape[0]}×{shape[1]}", mode, cells[0], cells[2], cells[1], cells[3]))
    return rows


def _cost(compiled: Any) -> dict[str, float]:
    """XLA's cost analysis of a compiled program (a dict, or a list of one per device in older jax)."""
    cost = compiled.cost_analysis()
    return dict(cost[0] if isinstance(cost, list) else cost or {})


def _si(value: float) -> str:
    """3 significant digits with a k/M/G suffix: 775935 -> 776k."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="medium,large")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    lines = ["# lossreg and optax under jax.jit: the compiled programs", "",
             f"Command: `python benchmarks/jax_programs.py {' '.join(argv or sys.argv[1:])}`", "",
             "Fusions: fusions in the compiled HLO module (a loop's, per step, apart) / fusions that "
             "write a full input-sized array (float32, XLA CPU). Cost: flops / bytes accessed, as XLA's "
             "cost analysis counts them (a loop's body once).", "",
             "| call | size | mode | lossreg fusions | optax fusions | lossreg cost | optax cost |",
             "|---|---|---|---|---|---|---|"]
    for size in args.size.split(","):
        lines += ["| " + " | ".join(row) + " |" for row in programs(size.strip())]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
