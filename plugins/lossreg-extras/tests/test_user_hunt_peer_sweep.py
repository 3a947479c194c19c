"""A sweep of the extras against the peers a user would otherwise pick, at the edges of their
option grids: the claims the README makes about each peer, checked by the peer."""

from __future__ import annotations

import numpy as np
import pytest

from lossreg_extras import msle_loss


def test_msle_is_sklearn_mean_squared_log_error_on_non_negative_values_and_keras_below_zero():
    """scikit-learn takes log1p of every value above -1 as it is: msle_loss with eps=0 on
    non-negative values (the default eps moves only values below 1e-7); a value in (-1, 0) counts
    as eps here, as in Keras, where scikit-learn takes its (negative) logarithm."""
    metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is not installed (pip install scikit-learn)")
    rng = np.random.default_rng(29)
    y, x = rng.uniform(0, 5, size=20), rng.uniform(0, 5, size=20)
    x[:2] = 0.0
    np.testing.assert_allclose(msle_loss(x, y, eps=0.0), metrics.mean_squared_log_error(y, x), rtol=1e-12)
    np.testing.assert_allclose(msle_loss(x, y), metrics.mean_squared_log_error(y, x), rtol=1e-6)
    if hasattr(metrics, "root_mean_squared_log_error"):  # scikit-learn >= 1.4
        np.testing.assert_allclose(np.sqrt(msle_loss(x, y, eps=0.0)), metrics.root_mean_squared_log_error(y, x),
                                   rtol=1e-12)
    x[0] = -0.5
    clipped = np.where(x < 1e-7, 1e-7, x)
    np.testing.assert_allclose(msle_loss(x, y), np.mean((np.log1p(clipped) - np.log1p(y)) ** 2), rtol=1e-12)
    assert not np.isclose(msle_loss(x, y), metrics.mean_squared_log_error(y, x), rtol=1e-3)


def test_optax_sparsemax_loss_of_the_same_name_is_the_binary_loss_this_one_of_two_logits():
    """optax.losses.sparsemax_loss is the binary sparsemax loss of a score and a 0/1 label: this loss
    (optax's multiclass_sparsemax_loss) of the logits [s, 0] with the class 1 - label; gradients too."""
    jax = pytest.importorskip("jax", reason="JAX is not installed (pip install jax)")
    optax = pytest.importorskip("optax", reason="optax is not installed (pip install optax)")
    from lossreg_extras import sparsemax_loss

    with jax.enable_x64(True):
        jnp = jax.numpy
        scores = jnp.linspace(-3.0, 3.0, 13)
        labels = (jnp.arange(13) % 3 == 0).astype(jnp.int32)

        def ours(s):
            return sparsemax_loss(jnp.stack([s, jnp.zeros_like(s)], axis=1), 1 - labels, reduction="sum")

        want, want_grad = jax.value_and_grad(lambda s: optax.losses.sparsemax_loss(s, labels).sum())(scores)
        got, grad = jax.value_and_grad(ours)(scores)
        np.testing.assert_allclose(got, want, rtol=1e-12)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-12, atol=1e-15)


def test_poly1_takes_the_class_indices_of_optax_one_hot_labels_and_refuses_soft_ones():
    """optax's poly_loss_cross_entropy takes label vectors; poly1_cross_entropy their class indices
    (the same loss on one-hot labels), and a floating-point target, such as smoothed labels, is a
    lossreg error naming the argument, not a silent reinterpretation."""
    jax = pytest.importorskip("jax", reason="JAX is not installed (pip install jax)")
    optax = pytest.importorskip("optax", reason="optax is not installed (pip install optax)")
    import lossreg
    from lossreg_extras import poly1_cross_entropy

    with jax.enable_x64(True):
        jnp = jax.numpy
        logits = jnp.asarray(np.random.default_rng(37).normal(size=(5, 4)))
        labels = jnp.asarray([0, 3, 1, 1, 2])
        one_hot = jax.nn.one_hot(labels, 4, dtype=logits.dtype)
        want = optax.losses.poly_loss_cross_entropy(logits, one_hot, epsilon=1.0).mean()
        np.testing.assert_allclose(poly1_cross_entropy(logits, labels), want, rtol=1e-12)
        message = "poly1_cross_entropy: argument 'target' expected integer class"
        with pytest.raises(lossreg.LossTypeError, match=message):
            poly1_cross_entropy(logits, optax.smooth_labels(one_hot, 0.1))
