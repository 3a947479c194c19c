"""JAX kernel of ctc_loss: the portable definition with its frames in a ``lax.scan``.

The standard has no loop construct, so the portable recursion over the T frames is a Python
loop, which ``jax.jit`` unrolls into T copies of the frame's operations: compile time and
memory grow with T (hundreds of frames take minutes to compile). Here the same frame step is the
body of one ``lax.scan`` (compiled once, whatever T), and the whole loss one program per shape and
options, as the other JAX kernels (see :mod:`lossreg.kernels.jax`). Each state's three
predecessors are slices, summed by an elementwise log-sum-exp (:func:`~lossreg.losses.sequence.sliced`):
a frame compiles to one loop fusion instead of four, and its gradient is slices too. The
gradient is autodiff's of the portable expression, so torch's ``exp(log_probs) - γ``, but for
each frame's log-sum-exp, whose derivative (the three predecessors' softmax weights) is stated
(:func:`_logsumexp3`): the backward pass keeps the three weights of each frame, not the
exponentials, their sum and the masks autodiff would keep for them.
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


@jax.custom_jvp
def _logsumexp3(a: Any, b: Any, c: Any) -> Any:
    """:func:`~lossreg.losses.sequence._logsumexp3` (the same value), with its derivative stated:
    ``(ȧ e_a + ḃ e_b + ċ e_c) / Σ e``, 0 where all three terms are -inf. Autodiff of the
    portable expression differentiates its guards too (the all -inf mask's wheres, the log of
    the sum), in the scan's forward pass and its backward one: a frame's forward step was 14
    fusions writing 12 arrays for the backward pass, now 13 writing 10, and ``jit(value_and_grad)``
    0.78× optax's at T, N, S = 50, 8, 20 where it was 0.91-0.94× (2 CPU cores, interleaved)."""
    return sequence._logsumexp3(jax.numpy, a, b, c)


@_logsumexp3.defjvp
def _logsumexp3_jvp(primals: tuple[Any, Any, Any], tangents: tuple[Any, Any, Any]) -> tuple[Any, Any]:
    jnp = jax.numpy
    a, b, c = primals
    m = jnp.maximum(jnp.maximum(a, b), c)
    dead = m == -jnp.inf
    shift = jnp.where(dead, 0.0, m)  # as sequence._shifted_log: no -inf - -inf, no log(0)
    ea, eb, ec = jnp.exp(a - shift), jnp.exp(b - shift), jnp.exp(c - shift)
    total = jnp.where(dead, 1.0, ea + eb + ec)
    da, db, dc = tangents
    return m + jnp.log(total), (da * ea + db * eb + dc * ec) / total


def _sliced(xp: Any, alpha: Any, sources: Any, barred: Any) -> Any:
    """:func:`~lossreg.losses.sequence.sliced` with :func:`_logsumexp3`."""
    return sequence.sliced(xp, alpha, sources, barred, lse3=lambda _, a, b, c: _logsumexp3(a, b, c))


def _ctc_loss(log_probs: Any, targets: Any, input_lengths: Any, target_lengths: Any, /, *, blank: int = 0,
              reduction: str = "mean", zero_infinity: bool = False) -> Any:
    return sequence.ctc(log_probs, targets, input_lengths, target_lengths, blank, reduction, zero_infinity, _scanned, _sliced)


KERNELS = {"ctc_loss": compiled("ctc_loss", _ctc_loss)}
