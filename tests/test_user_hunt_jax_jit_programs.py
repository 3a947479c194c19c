"""What CTC compiles to under ``jax.jit``: no work the value or the gradient does not need.

Issue 13 asks the programs behind ``lossreg bench --library jax`` to be the ones a JAX author
would write. These tests state structural properties of those programs, which do not move with
the load of the machine as timings do (timings are in ``benchmarks/results/jax_peers.md``):

- the backward pass keeps no mask of where each frame's log-sum-exp found its maximum: the
  shift is held constant (its derivative cancels), as optax's ``stop_gradient(max)``, and the
  gradient is the same.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

import lossreg

jax = pytest.importorskip("jax")
jnp = jax.numpy

from jax.ad_checkpoint import print_saved_residuals  # noqa: E402

T, N = 7, 2
TARGETS = jnp.asarray([[1, 2, 3], [2, 2, 1]], dtype=jnp.int32)
LENGTHS = jnp.asarray([7, 5], dtype=jnp.int32), jnp.asarray([3, 2], dtype=jnp.int32)
STATES = 2 * TARGETS.shape[1] + 1


def _log_probs(classes: int):
    x = np.random.default_rng(0).standard_normal((T, N, classes))
    return jax.nn.log_softmax(jnp.asarray(x, dtype=jnp.float32), axis=-1)


def _ctc(log_probs):
    return lossreg.ctc_loss(log_probs, TARGETS, *LENGTHS)


def _saved_per_frame() -> int:
    """How many (T, N, L) arrays the backward pass of ``jit(ctc_loss)`` keeps (one per frame each)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        print_saved_residuals(jax.jit(_ctc), _log_probs(5))
    return sum(line.split(" ")[0].endswith(f"[{T},{N},{STATES}]") for line in out.getvalue().splitlines())


def test_ctc_backward_keeps_no_mask_of_each_frames_maximum():
    # Per frame: the three exponentials and their sum, the running and empty-sum masks, and the
    # frame's inputs. Differentiating through the maximum added its masks and more (12 arrays):
    # 1.4x optax's jit(value_and_grad) at T, N, S = 200, 16, 60 on 2 CPU cores.
    assert _saved_per_frame() <= 8


def test_ctc_gradient_through_the_constant_shift_is_the_log_sum_exp_one():
    # The kernel's gradient is the portable definition's (its frames unrolled), finite, with
    # ties between the predecessors (a uniform input) as elsewhere.
    for log_probs in (_log_probs(5), jax.nn.log_softmax(jnp.zeros((T, N, 5)), axis=-1)):
        value, grad = jax.jit(jax.value_and_grad(_ctc))(log_probs)
        with lossreg.use_kernels(False):
            value_portable, grad_portable = jax.jit(jax.value_and_grad(_ctc))(log_probs)
        np.testing.assert_allclose(value, value_portable, rtol=1e-6)
        np.testing.assert_allclose(grad, grad_portable, rtol=1e-5, atol=1e-6)
        assert np.isfinite(np.asarray(grad)).all()
