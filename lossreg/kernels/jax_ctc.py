"""JAX kernel of ctc_loss: the portable definition with its frames in a ``lax.scan``.

The standard has no loop construct, so the portable recursion over the T frames is a Python
loop, which ``jax.jit`` unrolls into T copies of the frame's operations: compile time and
memory grow with T (hundreds of frames take minutes to compile). Here the same frame step is the
body of one ``lax.scan`` (compiled once, whatever T), and the whole loss one program per shape and
options, as the other JAX kernels (see :mod:`lossreg.kernels.jax`). Each state's three
predecessors are slices, summed by an elementwise log-sum-exp (:func:`~lossreg.losses.sequence.sliced`):
a frame compiles to one loop fusion instead of four, and its gradient is slices too. The
gradient is autodiff's of the portable expression, so torch's ``exp(log_probs) - γ``.
"""

from __future__ import annotations

from typing import Any

import jax

from ..losses import sequence
from .jax import compiled


def _scanned(xp: Any, came_from: sequence.Predecessors, alpha: Any, emit: Any, running: Any, sources: Any,
             barred: Any) -> Any:
    # Rolled whatever T: with the elementwise step, unrolling a tiny input (B=2, T=5) made its
    # program larger and slower (benchmarks/jax_tiny_latency.py --dispatch sync, unrolled: 22.2 against
    # 19.8 µs forward, 34.1 against 31.6 µs forward+grad), and T=50 unrolled by 4 was 1.4-1.6×.
    def step(a: Any, now: tuple[Any, Any]) -> tuple[Any, None]:
        return sequence.frame(xp, came_from, a, *now, sources, barred), None

    return jax.lax.scan(step, alpha, (emit, running))[0]


def _ctc_loss(log_probs: Any, targets: Any, input_lengths: Any, target_lengths: Any, /, *, blank: int = 0,
              reduction: str = "mean", zero_infinity: bool = False) -> Any:
    return sequence.ctc(log_probs, targets, input_lengths, target_lengths, blank, reduction, zero_infinity, _scanned,
                        sequence.sliced)


KERNELS = {"ctc_loss": compiled("ctc_loss", _ctc_loss)}
