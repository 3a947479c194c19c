"""The "mean" of class-index losses on JAX: the sum of the losses over the sum of the active weights.

JAX divides plainly (``toolkit.reduce_classes``): IEEE's ``x / 0`` is torch's answer and JAX
does not warn, and the guarded division NumPy needs cost XLA three more fusions per call. So
where the active weights sum to 0 the value and the gradient are torch's: NaN when every target
is ignored, with a zero gradient; NaN or ±inf when every active target has weight 0 or the
weights cancel, with torch's NaN or infinite gradient. Checked on the JAX kernel (under
``jax.jit``, as ``lossreg.cross_entropy`` runs on JAX arrays) and on the portable path.
"""

from __future__ import annotations

import numpy as np
import pytest

import lossreg

jax = pytest.importorskip("jax")
torch = pytest.importorskip("torch")
jnp = jax.numpy

X = np.random.default_rng(5).standard_normal((3, 4))

DEGENERATE = {  # (targets, class weights or None): the active weights sum to 0
    "every target ignored": ([-100, -100, -100], None),
    "every target ignored, weighted": ([-100, -100, -100], [1.0, 2.0, 3.0, 4.0]),
    "active targets of weight 0": ([0, 1, -100], [0.0, 0.0, 1.0, 1.0]),
    "weights that cancel": ([0, 1, -100], [1.0, -1.0, 1.0, 1.0]),
}


def _torch(loss: str, y: list[int], weight: list[float] | None) -> tuple[float, np.ndarray]:
    x = torch.tensor(X, requires_grad=True)
    w = None if weight is None else torch.tensor(weight, dtype=torch.float64)
    scores = torch.log_softmax(x, dim=1) if loss == "nll_loss" else x
    value = getattr(torch.nn.functional, loss)(scores, torch.tensor(y), weight=w)
    value.backward()
    return value.item(), x.grad.numpy()


@pytest.mark.parametrize("kernels", [True, False], ids=["kernel", "portable"])
@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("case", DEGENERATE)
def test_a_mean_over_zero_total_weight_is_torchs_in_value_and_gradient(case: str, loss: str, kernels: bool) -> None:
    y, weight = DEGENERATE[case]
    want_value, want_grad = _torch(loss, y, weight)
    with jax.enable_x64(True), lossreg.use_kernels(kernels):
        w = None if weight is None else jnp.asarray(weight)
        target = jnp.asarray(y, dtype=jnp.int32)

        def f(x):
            scores = jax.nn.log_softmax(x, axis=1) if loss == "nll_loss" else x
            return getattr(lossreg, loss)(scores, target, weight=w)

        value, grad = jax.jit(jax.value_and_grad(f))(jnp.asarray(X))
    np.testing.assert_allclose(float(value), want_value, rtol=1e-12)  # NaN and ±inf compare equal to themselves
    np.testing.assert_allclose(np.asarray(grad), want_grad, rtol=1e-12, atol=1e-15)


def test_a_partly_ignored_mean_divides_by_the_active_weights_only() -> None:
    y, weight = [0, -100, 3], [0.5, 1.0, 2.0, 4.0]
    want_value, want_grad = _torch("cross_entropy", y, weight)
    with jax.enable_x64(True):
        w = jnp.asarray(weight)
        value, grad = jax.jit(jax.value_and_grad(lambda x: lossreg.cross_entropy(x, jnp.asarray(y), weight=w)))(
            jnp.asarray(X))
    np.testing.assert_allclose(float(value), want_value, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(grad), want_grad, rtol=1e-12, atol=1e-15)
