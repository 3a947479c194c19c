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


# Frames up to which the scan is unrolled whole. Each step of a rolled loop costs a few µs of
# latency on the CPU, most of a tiny call (B=2, T=5: forward+grad 1.5-2.1× optax rolled, 1.0-1.1×
# unrolled); unrolling longer sequences slowed T=50 by 1.4-1.6× and lengthens the compile.
UNROLL_FRAMES = 8


def _scanned(step: sequence.Frame, alpha: Any, emit: Any, running: Any) -> Any:
    return jax.lax.scan(lambda a, frame: (step(a, *frame), None), alpha, (emit, running),
                        unroll=emit.shape[0] <= UNROLL_FRAMES)[0]


def _ctc_loss(log_probs: Any, targets: Any, input_lengths: Any, target_lengths: Any, /, *, blank: int = 0,
              reduction: str = "mean", zero_infinity: bool = False) -> Any:
    return sequence.ctc(log_probs, targets, input_lengths, target_lengths, blank, reduction, zero_infinity, _scanned,
                        sequence.sliced)


KERNELS = {"ctc_loss": compiled("ctc_loss", _ctc_loss)}
