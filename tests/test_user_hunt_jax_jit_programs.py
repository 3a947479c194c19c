"""What CTC compiles to under ``jax.jit``: no work the value or the gradient does not need.

Issue 13 asks the programs behind ``lossreg bench --library jax`` to be the ones a JAX author
would write. These tests state structural properties of those programs, which do not move with
the load of the machine as timings do (timings are in ``benchmarks/results/jax_peers.md``):

- the backward pass keeps no mask of where each frame's log-sum-exp found its maximum: the
  shift is held constant (its derivative cancels), as optax's ``stop_gradient(max)``, and the
  gradient is the same; JAX's kernel states the derivative of each frame's log-sum-exp;
- a forward call computes no ``exp`` over the whole ``log_probs`` for the term that gives torch's
  gradient (``Σ exp(log_probs)``, 0 in value): it is only computed when differentiated;
- and the zero that carries that term, stated with its derivative, still differentiates under
  ``jax.vmap`` (per-sample losses over a padded batch, as a JAX user writes them).
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

import lossreg
from lossreg import toolkit

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


def test_ctc_kernel_states_the_derivative_of_each_frames_log_sum_exp():
    # Softmax weights of the three predecessors, stated (a custom JVP): the backward pass no
    # longer goes back through the guards of the log-sum-exp, one array less kept per frame,
    # and its second derivatives are the portable definition's (float32 here; float64 agree to 1 ulp).
    assert _saved_per_frame() <= 7
    log_probs, v = _log_probs(5), _log_probs(5)[::-1]

    def hvp(x):
        return jax.jvp(jax.grad(_ctc), (x,), (v,))[1]

    kernel = jax.jit(hvp)(log_probs)
    with lossreg.use_kernels(False):
        portable = jax.jit(hvp)(log_probs)
    np.testing.assert_allclose(kernel, portable, rtol=1e-4, atol=1e-5)


def _transcendentals(classes: int) -> float:
    compiled = jax.jit(_ctc).lower(_log_probs(classes)).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return cost.get("transcendentals", 0.0)


def test_ctc_forward_computes_no_exp_over_the_log_probs():
    # The frames' log-sum-exps do not depend on the number of classes; an exp over log_probs,
    # for a term that is 0 in value, added T·N·C to every forward call.
    assert _transcendentals(50) == _transcendentals(5)


def test_ctc_gradient_still_carries_torchs_exp_term():
    # torch's backward returns exp(log_probs) - γ: summed over the classes of a frame that is
    # read, that is 1 - 1 = 0 for log-probabilities of a softmax... but not for others, where the
    # term shows: log_probs shifted by a constant c get exp(c) times as much of it.
    log_probs = _log_probs(5)
    shifted = log_probs - 1.0
    g = jax.jit(jax.grad(lambda x: lossreg.ctc_loss(x, TARGETS, *LENGTHS, reduction="sum")))
    frames = np.arange(T)[:, None] < np.asarray(LENGTHS[0])[None, :]
    sums = np.asarray(g(log_probs)).sum(axis=2), np.asarray(g(shifted)).sum(axis=2)
    np.testing.assert_allclose(sums[0][frames], 0.0, atol=1e-5)
    np.testing.assert_allclose(sums[1][frames], np.exp(-1.0) - 1.0, rtol=1e-5)
    np.testing.assert_array_equal(sums[0][~frames], 0.0)
    # An infinite term (a log-probability of +inf) adds no gradient, as before.
    broken = log_probs.at[0, 0, 0].set(jnp.inf)
    assert np.asarray(g(broken))[:, 1].sum() == pytest.approx(np.asarray(g(log_probs))[:, 1].sum(), abs=1e-5)


def _issue13_tiny_forward_flops() -> float:
    """XLA's count of the tiny CTC row of ``lossreg bench --library jax`` (B, T, K, S = 2, 5, 5,
    2: a log_softmax of the logits, then the loss summed), forward under ``jax.jit``."""
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(2, 5, 5)), dtype=jnp.float32)
    labels = jnp.asarray([[1, 3], [4, 2]], dtype=jnp.int32)
    frames, used = jnp.asarray([5, 3], dtype=jnp.int32), jnp.asarray([2, 1], dtype=jnp.int32)

    def loss(logits, labels, frames, used):
        log_probs = jnp.transpose(jax.nn.log_softmax(logits, axis=-1), (1, 0, 2))
        return lossreg.ctc_loss(log_probs, labels, frames, used, reduction="sum") / logits.shape[0]

    cost = jax.jit(loss).lower(logits, labels, frames, used).compile().cost_analysis()
    return (cost[0] if isinstance(cost, list) else cost)["flops"]


def test_ctc_tiny_forward_program_runs_in_the_calling_thread():
    # XLA's CPU client runs a program of under 1000 flops (its cost analysis) in the calling
    # thread, and hands a larger one to a worker (50-100 µs when the worker has gone idle): the
    # label bookkeeping (a floor division and a remainder of the states' indices, JAX's bounds
    # checks of each take, a flat index for each emission) took the tiny program to 1739, where
    # optax's counts 805 (issue 13's tiny row, 2.65-3.3x optax's time).
    assert _issue13_tiny_forward_flops() < 1000


def test_ctc_gradient_of_per_sample_losses_under_vmap_is_torchs():
    # The stated zero's value did not depend on its input, so under vmap it was unbatched where
    # its derivative was batched: grad of vmap(ctc_loss) raised JAX's "broadcast_in_dim
    # broadcast_dimensions must have length equal to operand ndim" (the kernel, a jit, inside).
    torch = pytest.importorskip("torch")
    log_probs = _log_probs(5)
    per_sample = jax.vmap(lambda x, y, il, tl: lossreg.ctc_loss(x, y, il, tl, reduction="sum"), in_axes=(1, 0, 0, 0))
    got = jax.grad(lambda x: jnp.sum(per_sample(x, TARGETS, *LENGTHS)))(log_probs)
    x = torch.tensor(np.asarray(log_probs), dtype=torch.float64, requires_grad=True)
    lengths = [torch.tensor(np.asarray(a)) for a in LENGTHS]
    loss = torch.nn.functional.ctc_loss(x, torch.tensor(np.asarray(TARGETS)), *lengths, reduction="sum")
    np.testing.assert_allclose(got, torch.autograd.grad(loss, x)[0].numpy(), rtol=1e-5, atol=1e-6)


def test_zero_with_gradient_differentiates_inside_a_vmapped_jit():
    xp = toolkit.namespace("test", x=jnp.zeros(1))

    def f(x):  # per sample: (1, 2) -> (1,), as CTC's per-sequence sums of an unbatched call
        return jnp.sum(x, axis=1) + toolkit.zero_with_gradient(xp, jnp.sum(jnp.exp(x), axis=1))

    x = jnp.asarray([[[0.0, 1.0]], [[2.0, -jnp.inf]]])
    g = jax.grad(lambda x: jnp.sum(jax.vmap(jax.jit(f))(x)))(x)
    np.testing.assert_allclose(g, 1.0 + np.exp(np.asarray(x)), rtol=1e-6)
    assert np.asarray(jax.vmap(jax.jit(f))(x)).tolist() == [[1.0], [-np.inf]]
