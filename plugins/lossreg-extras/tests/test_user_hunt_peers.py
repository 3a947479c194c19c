"""An optax / jax.nn (and Keras) user's hunt at the edges the peer tests do not reach: tied and
saturated logits, one class, class axes beyond the second, ignored targets, options at their
extremes, the peers' own defaults, float32, gradients (``jax.grad`` on both sides), infinite
logits; and every backend in float64.

Each peer value is computed here by the peer; where the peer's semantics differ, the test states
the difference and checks that it is exactly that difference.
"""

from __future__ import annotations

import math

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
    z_loss,
)

rng = np.random.default_rng(29)


@pytest.fixture(autouse=True)
def fresh_rng():
    """Each test draws the same numbers however the tests are selected or ordered."""
    global rng
    rng = np.random.default_rng(29)
inf = math.inf


def same_value_and_grad(jax, ours, theirs, *arrays, rtol=1e-12):
    """Equal values and equal ``jax.grad`` w.r.t. the first array, both sides on the same JAX arrays."""
    arrays = [jax.numpy.asarray(a) for a in arrays]
    value, grad = jax.jit(jax.value_and_grad(ours))(*arrays)  # compiled whole: eager JAX compiles op by op
    want, want_grad = jax.jit(jax.value_and_grad(theirs))(*arrays)
    np.testing.assert_allclose(value, want, rtol=rtol)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-9, atol=1e-13)


# --- sparsemax, poly-1 against optax ---------------------------------------------------------------

EDGE_LOGITS = {
    "ties": np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [2.0, 2.0, -1.0], [5.0, 5.0, 5.0]]),
    "saturated": np.array([[1e4, -1e4, 0.0], [1e4, 1e4 - 0.5, 0.0], [-1e4, 0.0, 1e4], [1e4, 1e4, 1e4]]),
    "masked": np.array([[-inf, 0.0, 1.0], [-inf, -inf, 3.0], [0.3, -inf, 0.1], [2.0, 0.5, -inf]]),
}


@pytest.mark.parametrize("logits", list(EDGE_LOGITS), ids=list(EDGE_LOGITS))
def test_sparsemax_is_optax_at_ties_saturated_and_masked_logits_kernel_and_portable(jax, logits):
    import optax

    # a masked (-inf) class is never the target: its loss would be inf, and optax's gradient NaN
    labels = jax.numpy.asarray([1, 2, 0, 0] if logits == "masked" else [0, 1, 2, 0])
    for loss in (sparsemax_loss, sparsemax_loss.portable):
        same_value_and_grad(jax, lambda x: loss(x, labels, reduction="sum"),
                            lambda x: optax.losses.multiclass_sparsemax_loss(x, labels).sum(), EDGE_LOGITS[logits])


def test_sparsemax_of_one_class_and_of_class_axis_1_is_optax_with_classes_last(jax):
    """lossreg's class axis is 1, as torch's: (N, C, d) is optax's (N·d, C) after moving it last."""
    import optax

    jnp = jax.numpy
    zeros = jnp.zeros(3, dtype=int)
    same_value_and_grad(jax, lambda x: sparsemax_loss(x, zeros),
                        lambda x: optax.losses.multiclass_sparsemax_loss(x, zeros).mean(), rng.normal(size=(3, 1)))
    labels = jnp.asarray(rng.integers(0, 4, size=(2, 3)))
    same_value_and_grad(jax, lambda x: sparsemax_loss(x, labels),
                        lambda x: optax.losses.multiclass_sparsemax_loss(
                            jnp.moveaxis(x, 1, -1).reshape(6, 4), labels.reshape(6)).mean(),
                        rng.normal(scale=2.0, size=(2, 4, 3)))


def test_sparsemax_and_poly1_ignore_index_is_optax_mean_over_the_kept_targets(jax):
    import optax

    jnp = jax.numpy
    labels = jnp.asarray([0, 1, -100, 2, 3])
    kept = labels >= 0
    safe = jnp.where(kept, labels, 0)

    def mean_over_kept(losses):
        return jnp.where(kept, losses, 0.0).sum() / kept.sum()

    x = rng.normal(size=(5, 4))
    same_value_and_grad(jax, lambda z: sparsemax_loss(z, labels),
                        lambda z: mean_over_kept(optax.losses.multiclass_sparsemax_loss(z, safe)), x)
    same_value_and_grad(jax, lambda z: poly1_cross_entropy(z, labels, epsilon=2.0),
                        lambda z: mean_over_kept(optax.losses.poly_loss_cross_entropy(z, jax.nn.one_hot(safe, 4),
                                                                                      epsilon=2.0)), x)


@pytest.mark.parametrize("epsilon", [-1.0, 0.0, 2.0, 50.0])
def test_poly1_on_saturated_logits_and_a_class_axis_1_is_optax(jax, epsilon):
    import optax

    jnp = jax.numpy
    labels = jnp.asarray(rng.integers(0, 4, size=(5, 3)))
    x = rng.normal(size=(5, 4, 3)) * 1e4
    same_value_and_grad(jax, lambda z: poly1_cross_entropy(z, labels, epsilon=epsilon),
                        lambda z: optax.losses.poly_loss_cross_entropy(
                            jnp.moveaxis(z, 1, -1), jax.nn.one_hot(labels, 4), epsilon=epsilon).mean(), x)


def test_poly1_with_epsilon_0_is_optax_cross_entropy_with_integer_labels(jax):
    import optax

    labels = jax.numpy.asarray(rng.integers(0, 6, size=7))
    same_value_and_grad(jax, lambda z: poly1_cross_entropy(z, labels, epsilon=0.0),
                        lambda z: optax.losses.softmax_cross_entropy_with_integer_labels(z, labels).mean(),
                        rng.normal(size=(7, 6)) * 100)


def test_poly1_and_nt_xent_defaults_are_not_optax_defaults(jax):
    """optax's poly_loss_cross_entropy defaults to epsilon=2 (here 1), its ntxent to temperature=0.07
    (here 0.5): the README says so, and passing optax's values gives optax's numbers."""
    import optax

    jnp = jax.numpy
    x, labels = jnp.asarray(rng.normal(size=(6, 5))), jnp.asarray(rng.integers(0, 5, size=6))
    theirs = optax.losses.poly_loss_cross_entropy(x, jax.nn.one_hot(labels, 5)).mean()
    np.testing.assert_allclose(poly1_cross_entropy(x, labels, epsilon=2.0), theirs, rtol=1e-12)
    assert abs(poly1_cross_entropy(x, labels) - theirs) > 1e-2
    a, b = jnp.asarray(rng.normal(size=(4, 3))), jnp.asarray(rng.normal(size=(4, 3)))
    theirs = optax.losses.ntxent(jnp.concatenate([a, b]), jnp.asarray(np.tile(np.arange(4), 2)))
    np.testing.assert_allclose(nt_xent_loss(a, b, temperature=0.07), theirs, rtol=1e-12)
    assert abs(nt_xent_loss(a, b) - theirs) > 1e-2


# --- nt_xent against optax -------------------------------------------------------------------------

def stacked_ntxent(jax, temperature):
    import optax

    def peer(u, v):
        labels = jax.numpy.asarray(np.tile(np.arange(u.shape[0]), 2))
        return optax.losses.ntxent(jax.numpy.concatenate([u, v]), labels, temperature=temperature)
    return peer


@pytest.mark.parametrize("temperature", [1e-3, 0.01, 100.0, 1e6])
def test_nt_xent_at_extreme_temperatures_is_optax(jax, temperature):
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    same_value_and_grad(jax, lambda u, v: nt_xent_loss(u, v, temperature=temperature),
                        stacked_ntxent(jax, temperature), a, b, rtol=1e-10)


def test_nt_xent_of_one_pair_identical_views_and_one_feature_is_optax(jax):
    """One pair has no negatives (loss 0); identical views; D = 1 (every similarity ±1/τ)."""
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    for u, v in ((a[:1], b[:1]), (a, a.copy()), (a[:, :1], b[:, :1]), (a * 1e4, b * 1e-4)):
        same_value_and_grad(jax, lambda s, t: nt_xent_loss(s, t, temperature=0.5), stacked_ntxent(jax, 0.5), u, v)
    assert nt_xent_loss(a[:1], b[:1]) == 0.0


def test_nt_xent_is_scale_invariant_down_to_tiny_embeddings_where_optax_is_not(jax):
    """lossreg scales rows as torch's F.normalize (eps 1e-12 on each norm); optax divides by
    max(|u| |v|, machine ε), so embeddings of norm 1e-10 all look orthogonal there."""
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    ours = nt_xent_loss(a, b, temperature=0.1)
    np.testing.assert_allclose(nt_xent_loss(a * 1e-10, b * 1e-10, temperature=0.1), ours, rtol=1e-12)
    peer = stacked_ntxent(jax, 0.1)
    np.testing.assert_allclose(ours, peer(jax.numpy.asarray(a), jax.numpy.asarray(b)), rtol=1e-12)
    # optax at norm 1e-10: every similarity about 0 (u·v / ε), so every row's loss about log(2N - 1)
    np.testing.assert_allclose(peer(jax.numpy.asarray(a * 1e-10), jax.numpy.asarray(b * 1e-10)), math.log(7),
                               rtol=1e-3)
    assert abs(ours - math.log(7)) > 0.1


def test_nt_xent_in_float32_is_optax_float32_at_a_small_temperature(jax):
    with jax.enable_x64(False):
        a, b = (jax.numpy.asarray(rng.normal(size=(4, 3)), dtype="float32") for _ in range(2))
        got = nt_xent_loss(a, b, temperature=0.01)
        assert got.dtype == a.dtype
        np.testing.assert_allclose(got, stacked_ntxent(jax, 0.01)(a, b), rtol=1e-5)


# --- z_loss against jax.nn.logsumexp, log-cosh against optax and Keras ------------------------------

def test_z_loss_is_the_square_of_jax_nn_logsumexp_at_saturated_and_masked_logits(jax):
    x = np.array([[1e4, -1e4, 0.0], [-inf, 0.0, 1.0], [3.0, 3.0, 3.0], [-1e4, -1e4, -1e4]])
    same_value_and_grad(jax, lambda z: z_loss(z, reduction="sum"),
                        lambda z: (jax.nn.logsumexp(z, axis=1) ** 2).sum(), x)
    x3 = rng.normal(size=(2, 5, 3)) * 30
    same_value_and_grad(jax, lambda z: z_loss(z), lambda z: (jax.nn.logsumexp(z, axis=1) ** 2).mean(), x3)


def test_log_cosh_at_huge_and_tiny_differences_is_optax_kernel_and_portable(jax):
    import optax

    d = np.array([1e4, -1e4, 1e-8, 0.0, 20.0, -700.0, 800.0])
    for loss in (log_cosh_loss, log_cosh_loss.portable):
        same_value_and_grad(jax, loss, lambda x, y: optax.losses.log_cosh(x, y).mean(), d, np.zeros_like(d))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_regression_losses_at_zero_negative_and_huge_values_are_keras(keras, dtype):
    """Targets at 0 and ±1e-9 (MAPE's epsilon), negatives (MSLE's clip), errors of 1e4 (log-cosh)."""
    x = np.array([[0.0, 1e4, -1e4, 1e-8], [5.0, -3.0, 0.5, 80.0]], dtype=dtype)
    y = np.array([[0.0, 0.0, 0.0, 0.0], [1e-9, -1e-9, 0.5, -80.0]], dtype=dtype)
    K = keras.losses
    for ours, theirs in ((log_cosh_loss, K.log_cosh), (mape_loss, K.mean_absolute_percentage_error),
                         (msle_loss, K.mean_squared_logarithmic_error)):
        got = ours(x, y, reduction="none")
        assert got.dtype == x.dtype
        np.testing.assert_allclose(got.mean(axis=-1), np.asarray(theirs(y, x)), rtol=1e-6,
                                   err_msg=ours.__name__)


@pytest.mark.parametrize("q", [0.999, 0.5, 0.05])
def test_generalized_cross_entropy_at_extreme_q_is_keras_and_tends_to_cross_entropy(keras, q):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    x, labels = rng.normal(size=(8, 5)), rng.integers(0, 5, size=8)
    probabilities = np.exp(x) / np.exp(x).sum(axis=-1, keepdims=True)
    peer = keras.losses.CategoricalGeneralizedCrossEntropy(q=q)
    np.testing.assert_allclose(generalized_cross_entropy(x, labels, q=q), float(peer(labels, probabilities)),
                               rtol=1e-5)
    ce = F.cross_entropy(torch.tensor(x), torch.tensor(labels)).item()
    np.testing.assert_allclose(generalized_cross_entropy(x, labels, q=1e-9), ce, rtol=1e-6)


# --- every backend the plugin runs on, in float64 --------------------------------------------------

def edge_cases() -> list:
    x = rng.normal(size=(3, 4, 2, 5)) * 3
    x[0, :, 0, 1], x[1, :, 1, 1] = [1e4, -1e4, 0.0, 1e4], [-inf, 0.0, 1.0, -inf]
    x[2, :, 0, 0] = 0.5  # a tie across every class
    labels = rng.integers(0, 4, size=(3, 2, 5))
    labels[0, 0, 0] = -100
    labels[1, 1, 1] = 2
    d, y = rng.normal(size=(3, 4, 5)) * 3, rng.normal(size=(3, 4, 5))
    d[0, 0] = [1e4, -1e4, 800.0, -800.0, 0.0]
    y[0, 1] = [0.0, 1e-12, -1e-12, 0.0, 0.0]
    emb, pos = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    pos[1] = emb[1]
    return [(poly1_cross_entropy, (x, labels), {"epsilon": -1.0}), (poly1_cross_entropy, (x, labels), {}),
            (generalized_cross_entropy, (x, labels), {"q": 0.3}), (sparsemax_loss, (x, labels), {}),
            (z_loss, (np.where(np.isfinite(x), x, -1e4),), {}), (log_cosh_loss, (d, y), {}),
            (mape_loss, (d, y), {}), (msle_loss, (d, y), {}), (quantile_loss, (d, y), {"quantile": 0.9}),
            (nt_xent_loss, (emb, pos), {"temperature": 0.01})]


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_every_loss_agrees_across_backends_in_float64_at_the_edges(lossreg_backend, lossreg_device, reduction):
    for loss, arrays, options in edge_cases():
        want = loss(*arrays, reduction=reduction, **options)
        converted = [lossreg_backend.asarray(a, "int64" if a.dtype.kind == "i" else "float64", lossreg_device)
                     for a in arrays]
        got = np.asarray(lossreg_backend.to_numpy(loss(*converted, reduction=reduction, **options)))
        assert got.shape == np.shape(want), loss.__name__
        # atol: nt_xent's loss of identical views is a cancellation (1/τ - 1/τ + ...), 0 up to 1e-14
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, equal_nan=True, err_msg=loss.__name__)


def test_torch_autograd_and_jax_grad_agree_at_the_edges(jax):
    torch = pytest.importorskip("torch")
    jnp = jax.numpy
    for loss, arrays, options in edge_cases():
        leaf = torch.tensor(arrays[0], requires_grad=True)
        others = [torch.tensor(a) for a in arrays[1:]]
        (want,) = torch.autograd.grad(loss(leaf, *others, reduction="sum", **options), leaf)
        rest = [jnp.asarray(a) for a in arrays[1:]]
        for f in (loss, loss.portable):  # the JAX kernels (poly-1, log-cosh, sparsemax) and the definition
            got = jax.jit(jax.grad(lambda z: f(z, *rest, reduction="sum", **options)))(jnp.asarray(arrays[0]))
            np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-9, atol=1e-12, equal_nan=True,
                                       err_msg=loss.__name__)
