"""The toolkit's derivative helpers, and what they buy the portable definitions on torch.

``stop_gradient`` keeps a value and drops its derivative (torch's ``detach``, JAX's
``lax.stop_gradient``); ``absolute`` is ``|x|`` with torch's derivative, 0 at 0, on every
library. The log-sum-exp shift of every softmax loss goes through ``stop_gradient``: its
derivative cancels, and computed, torch's backward of the maximum is several passes over the
logits (a mask of where the maximum lies, its count), twice the backward's time at 2048×8192.
"""

from __future__ import annotations

import numpy as np
import pytest

import lossreg
from lossreg import toolkit

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = jax.numpy

VALUES = [-2.0, -0.0, 0.0, 0.5, np.inf, -np.inf, np.nan]


def test_stop_gradient_keeps_the_value_on_every_backend(lossreg_xp):
    x = np.array(VALUES)
    np.testing.assert_array_equal(np.asarray(toolkit.stop_gradient(lossreg_xp, lossreg_xp.asarray(x))), x)


def test_stop_gradient_drops_the_derivative_on_torch_and_jax():
    x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    held = toolkit.stop_gradient(toolkit.namespace("test", input=x), x)
    assert not held.requires_grad
    (g,) = torch.autograd.grad((x * held).sum(), x)
    assert g.tolist() == [1.0, 2.0]  # x·c differentiated with c constant

    xp = toolkit.namespace("test", input=jnp.ones(2))
    g = jax.grad(lambda v: jnp.sum(v * toolkit.stop_gradient(xp, v)))(jnp.array([1.0, 2.0]))
    assert g.tolist() == [1.0, 2.0]


def test_absolute_is_abs_with_a_plus_zero_on_every_backend(lossreg_xp):
    x = np.array(VALUES)
    got = np.asarray(toolkit.absolute(lossreg_xp, lossreg_xp.asarray(x)))
    np.testing.assert_array_equal(got, np.abs(x))
    assert not np.signbit(got[1])  # |-0| is +0


def test_absolute_has_torchs_derivative_on_torch_and_jax():
    """sign(x), 0 at ±0: JAX's own abs has slope 1 there."""
    finite = [-2.0, -0.0, 0.0, 0.5]
    x = torch.tensor(finite, dtype=torch.float64, requires_grad=True)
    (want,) = torch.autograd.grad(torch.abs(x).sum(), x)
    assert want.tolist() == [-1.0, 0.0, 0.0, 1.0]

    xt = torch.tensor(finite, dtype=torch.float64, requires_grad=True)
    (got,) = torch.autograd.grad(toolkit.absolute(toolkit.namespace("t", input=xt), xt).sum(), xt)
    assert got.tolist() == want.tolist()

    xp = toolkit.namespace("test", input=jnp.ones(2))
    got = jax.grad(lambda v: jnp.sum(toolkit.absolute(xp, v)))(jnp.array(finite))
    assert got.tolist() == want.tolist()


def test_sign_and_safe_abs_on_jax_are_jaxs_sign_with_the_wheres_values_and_torchs_derivative():
    """One ``sign`` operation on JAX, where other libraries take seven (comparisons and wheres):
    under ``jit`` each is an equation that every program using it lowers to MLIR again (three
    triplet distances' norms at p ≠ 2), and eager JAX compiles each one per new shape. The values
    are the wheres' (-1, 0 or 1, -0 at -0, NaN at NaN); ``safe_abs``'s derivative is torch's
    ``sgn(x)``, in forward mode too (the wheres gave 0·∞ = NaN at ±∞ there), and NaN at NaN
    (so that it propagates, where torch's is 0)."""
    xp = toolkit.namespace("test", input=jnp.ones(2))
    assert len(jax.make_jaxpr(lambda v: toolkit.sign(xp, v))(jnp.ones(3)).eqns) == 1
    x = np.array(VALUES)
    got, wheres = np.asarray(toolkit.sign(xp, jnp.asarray(x))), toolkit.sign(np, x)
    np.testing.assert_array_equal(got, wheres)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(wheres))
    assert not np.asarray(jax.grad(lambda v: jnp.sum(toolkit.sign(xp, v)))(jnp.asarray(x))).any()

    xt = torch.tensor(VALUES, dtype=torch.float64, requires_grad=True)
    (want,) = torch.autograd.grad(torch.abs(xt).sum(), xt)
    want[-1] = np.nan  # VALUES ends with NaN
    reverse = jax.vmap(jax.grad(lambda v: toolkit.safe_abs(xp, v)))(jnp.asarray(x))
    forward = jax.jvp(lambda v: toolkit.safe_abs(xp, v), (jnp.asarray(x),), (jnp.ones(len(x)),))[1]
    np.testing.assert_array_equal(np.asarray(reverse), want.numpy())
    np.testing.assert_array_equal(np.asarray(forward), want.numpy())


def _backward_nodes(value) -> set[str]:
    seen, names, stack = set(), set(), [value.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return names


SOFTMAX_CALLS = {
    "cross_entropy, labels": lambda x: lossreg.cross_entropy(x, torch.tensor([0, 3, 4])),
    "cross_entropy, labels, label smoothing": lambda x: lossreg.cross_entropy(
        x, torch.tensor([0, 3, 4]), label_smoothing=0.1),
    "cross_entropy, probabilities": lambda x: lossreg.cross_entropy(x, torch.softmax(torch.ones(3, 5), dim=1)),
    "toolkit.logsumexp": lambda x: toolkit.logsumexp(toolkit.namespace("t", input=x), x).sum(),
    "toolkit.log_softmax": lambda x: toolkit.log_softmax(toolkit.namespace("t", input=x), x).sum(),
}


@pytest.mark.parametrize("call", SOFTMAX_CALLS.values(), ids=SOFTMAX_CALLS)
def test_the_portable_softmax_losses_do_not_differentiate_their_shift_on_torch(call):
    x = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    with lossreg.use_kernels(False):
        value = call(x)
    nodes = _backward_nodes(value)
    assert "ExpBackward0" in nodes  # the portable definition ran, differentiated
    assert not {"AmaxBackward0", "MaxBackward0", "MaxBackward1"} & nodes
    # and the gradient is still torch's
    (got,) = torch.autograd.grad(value, x)
    x2 = x.detach().requires_grad_(True)
    with lossreg.use_kernels(True):
        (want,) = torch.autograd.grad(call(x2), x2)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
