"""XLA's cost analysis of CTC's jitted programs, lossreg's and optax's, at the sizes of ``lossreg bench``.

Counts that do not move with the load of the machine, as timings do: the flops XLA's
``HloCostAnalysis`` counts (about one an element of each elementwise operation, integer ones,
compares and selects included; a while loop's body once) and the fusions of the optimized
program. XLA's CPU client runs a program of under 1000 flops in the calling thread, and hands a
larger one to a worker thread (issue 13's tiny CTC row)::

    python benchmarks/jax_ctc_flops.py
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

SIZES = {"tiny": (2, 5, 5, 2), "medium": (8, 50, 32, 20), "large": (16, 200, 128, 60)}


def _programs(b: int, t: int, k: int, s: int) -> dict[str, tuple[Callable[..., Any], tuple[Any, ...]]]:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    import lossreg

    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(b, t, k)).astype(np.float32))
    labels = jnp.asarray(rng.integers(1, k, size=(b, s)).astype(np.int32))
    frames = jnp.asarray(rng.integers(t // 2, t + 1, size=b).astype(np.int32))
    used = jnp.asarray(rng.integers(1, s + 1, size=b).astype(np.int32))

    def ours(logits: jax.Array, labels: jax.Array, frames: jax.Array, used: jax.Array) -> jax.Array:
        log_probs = jnp.transpose(jax.nn.log_softmax(logits, axis=-1), (1, 0, 2))
        return lossreg.ctc_loss(log_probs, labels, frames, used, reduction="sum") / logits.shape[0]

    def theirs(logits: jax.Array, frame_pad: jax.Array, labels: jax.Array, label_pad: jax.Array) -> jax.Array:
        return optax.losses.ctc_loss(logits, frame_pad, labels, label_pad).mean()

    frame_pad = (jnp.arange(t)[None, :] >= frames[:, None]).astype(jnp.float32)
    label_pad = (jnp.arange(s)[None, :] >= used[:, None]).astype(jnp.float32)
    return {"lossreg": (ours, (logits, labels, frames, used)),
            "optax": (theirs, (logits, frame_pad, labels, label_pad))}


def main() -> int:
    import jax

    print("| size | mode | library | flops | transcendentals | fusions |")
    print("|---|---|---|---:|---:|---:|")
    for size, shape in SIZES.items():
        for mode in ("forward", "forward+grad"):
            for library, (f, args) in _programs(*shape).items():
                program = jax.value_and_grad(f) if mode == "forward+grad" else f
                compiled = jax.jit(program).lower(*args).compile()
                analysis: Any = compiled.cost_analysis()
                cost = analysis[0] if isinstance(analysis, list) else analysis
                fusions = (compiled.as_text() or "").count(" fusion(")
                counts = f"{cost['flops']:,.0f} | {cost['transcendentals']:,.0f} | {fusions}"
                print(f"| {size} | {mode} | {library} | {counts} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
