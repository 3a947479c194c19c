"""Each loss against the library a user would otherwise pick: Keras, optax, scikit-learn.

Keras computes in float32 (its ``floatx``), so its comparisons hold to 1e-6; optax and
scikit-learn take float64 and agree to 1e-12, gradients included (both sides differentiated by
``jax.grad``). A peer that is not installed skips its tests, naming it; lossreg's own suite
installs them all and runs these tests without skips (tests/test_plugins_real.py).
``z_loss`` has no peer in these libraries: its reference cases (mpmath, from the paper) are its check.
"""

from __future__ import annotations


import numpy as np
import pytest
from lossreg_extras import (
    generalized_cross_entropy,
    log_cosh_loss,
    mape_loss,
    msle_loss,
    nt_xent_loss,
    poly1_cross_entropy,
    quantile_loss,
    sparsemax_loss,
)

rng = np.random.default_rng(5)


def regression_pair(positive: bool = False) -> tuple[np.ndarray, np.ndarray]:
    x, y = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    return (np.abs(x), np.abs(y)) if positive else (x, y)


# --- Keras (y_true first, y_pred second; a mean over the last axis, then over the batch) -----------

@pytest.mark.parametrize("positive", [True, False], ids=["positive", "signed"])
def test_regression_losses_are_keras_losses(keras, positive):
    x, y = regression_pair(positive)
    K = keras.losses
    pairs = {"log_cosh": (log_cosh_loss, K.log_cosh), "mape": (mape_loss, K.mean_absolute_percentage_error),
             "msle": (msle_loss, K.mean_squared_logarithmic_error)}  # msle: negatives clipped to eps, as Keras
    for name, (ours, theirs) in pairs.items():
        np.testing.assert_allclose(ours(x, y, reduction="none").mean(axis=-1), np.asarray(theirs(y, x)), rtol=1e-6,
                                   err_msg=name)
        np.testing.assert_allclose(ours(x, y), float(np.mean(theirs(y, x))), rtol=1e-6, err_msg=name)


@pytest.mark.parametrize("q", [0.5, 0.7])
def test_generalized_cross_entropy_is_keras_categorical_gce_on_probabilities(keras, q):
    """Keras takes probabilities and (y_true, y_pred); lossreg takes logits (and defaults to q = 0.7)."""
    x, labels = rng.normal(size=(8, 5)), rng.integers(0, 5, size=8)
    probabilities = np.exp(x) / np.exp(x).sum(axis=-1, keepdims=True)
    peer = keras.losses.CategoricalGeneralizedCrossEntropy(q=q)
    np.testing.assert_allclose(generalized_cross_entropy(x, labels, q=q), float(peer(labels, probabilities)),
                               rtol=1e-6)


# --- scikit-learn ---------------------------------------------------------------------------------

def test_quantile_loss_is_sklearn_mean_pinball_loss():
    metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is not installed (pip install scikit-learn)")
    x, y = regression_pair()
    for q in (0.05, 0.5, 0.9):
        np.testing.assert_allclose(quantile_loss(x, y, quantile=q), metrics.mean_pinball_loss(y, x, alpha=q),
                                   rtol=1e-12)


# --- optax (values and jax.grad) ------------------------------------------------------------------

def same_value_and_grad(jax, ours, theirs, *arrays):
    """lossreg and the peer on the same JAX arrays (lossreg refuses a mix of libraries): equal values
    and equal gradients w.r.t. the first."""
    jnp = jax.numpy
    arrays = [jnp.asarray(a) for a in arrays]
    for f in (ours, theirs):
        assert jnp.isfinite(f(*arrays))
    value, grad = jax.value_and_grad(ours)(*arrays)
    want, want_grad = jax.value_and_grad(theirs)(*arrays)
    np.testing.assert_allclose(value, want, rtol=1e-12)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-10, atol=1e-14)


def test_log_cosh_is_optax_log_cosh(jax):
    import optax

    same_value_and_grad(jax, log_cosh_loss, lambda x, y: optax.losses.log_cosh(x, y).mean(), *regression_pair())


@pytest.mark.parametrize("epsilon", [1.0, 2.0, -0.5])
def test_poly1_is_optax_poly_loss_cross_entropy(jax, epsilon):
    import optax

    logits, labels = rng.normal(size=(7, 5)), jax.numpy.asarray(rng.integers(0, 5, size=7))
    same_value_and_grad(jax, lambda x: poly1_cross_entropy(x, labels, epsilon=epsilon),
                        lambda x: optax.losses.poly_loss_cross_entropy(x, jax.nn.one_hot(labels, 5), epsilon=epsilon).mean(),
                        logits)


def test_sparsemax_loss_is_optax_multiclass_sparsemax_loss(jax):
    import optax

    logits, labels = rng.normal(scale=2.0, size=(9, 6)), jax.numpy.asarray(rng.integers(0, 6, size=9))
    same_value_and_grad(jax, lambda x: sparsemax_loss(x, labels),
                        lambda x: optax.losses.multiclass_sparsemax_loss(x, labels).mean(), logits)


@pytest.mark.parametrize("temperature", [0.5, 0.07])
def test_nt_xent_is_optax_ntxent_on_the_two_views_stacked(jax, temperature):
    """optax takes one (2N, D) batch and labels saying which rows are views of one example."""
    import optax

    a, b = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    labels = np.concatenate([np.arange(4), np.arange(4)])
    same_value_and_grad(jax, lambda u, v: nt_xent_loss(u, v, temperature=temperature),
                        lambda u, v: optax.losses.ntxent(jax.numpy.concatenate([u, v]), labels,
                                                         temperature=temperature), a, b)
