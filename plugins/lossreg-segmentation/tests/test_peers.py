"""Each loss against the library a user would otherwise pick: MONAI, Keras, optax.

Where a peer's semantics differ from lossreg's, the test states the difference and checks that it
is exactly that difference (the same numbers once it is accounted for). A peer that is not
installed skips its tests, naming it; lossreg's own suite installs them all and runs these tests
without skips (tests/test_plugins_real.py).
"""

from __future__ import annotations


import numpy as np
import pytest

import lossreg
from lossreg_segmentation import binary_focal_loss, dice_loss, focal_loss, generalized_dice_loss, tversky_loss

rng = np.random.default_rng(11)
N, C, H, W = 3, 4, 6, 5


def probabilities_and_one_hot() -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities and one-hot masks of shape (N, C, H, W), as segmentation nets give them."""
    logits = rng.normal(size=(N, C, H, W))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, C, size=(N, H, W))
    return p, np.moveaxis(np.eye(C)[labels], -1, 1)


def per_channel(a: np.ndarray) -> np.ndarray:
    """(N, C, ...) as (N·C, ...): each (sample, channel) pair becomes a sample of its own."""
    return a.reshape(a.shape[0] * a.shape[1], -1)


def as_torch(*arrays: np.ndarray):
    import torch

    return [torch.from_numpy(a) for a in arrays]


# --- MONAI ---------------------------------------------------------------------------------------

def test_dice_of_one_channel_is_monai_dice_loss(monai):
    p, y = rng.uniform(size=(N, 1, H, W)), (rng.uniform(size=(N, 1, H, W)) < 0.4).astype(float)
    for smooth in (1.0, 1e-5):
        peer = monai.DiceLoss(smooth_nr=smooth, smooth_dr=smooth, reduction="none")(*as_torch(p, y))
        np.testing.assert_allclose(dice_loss(p, y, smooth=smooth, reduction="none"), peer.numpy().ravel(), rtol=1e-12)


def test_dice_pools_channels_where_monai_averages_them(monai):
    """MONAI scores each (sample, channel) and averages; lossreg scores each sample over all of its
    channels. Splitting the channels into samples of their own gives MONAI's numbers exactly."""
    p, y = probabilities_and_one_hot()
    for reduction in ("mean", "sum"):
        peer = monai.DiceLoss(smooth_nr=1.0, smooth_dr=1.0, reduction=reduction)(*as_torch(p, y)).item()
        np.testing.assert_allclose(dice_loss(per_channel(p), per_channel(y), reduction=reduction), peer, rtol=1e-12)
        assert abs(dice_loss(p, y, reduction=reduction) - peer) > 1e-3  # pooled: another number
    peer = monai.DiceLoss(smooth_nr=1.0, smooth_dr=1.0, reduction="none")(*as_torch(p, y)).numpy().reshape(N, C)
    np.testing.assert_allclose(dice_loss(per_channel(p), per_channel(y), reduction="none").reshape(N, C), peer,
                               rtol=1e-12)


def test_tversky_is_monai_tversky_loss_per_channel(monai):
    """alpha weighs false positives, beta false negatives, in both (and in Salehi et al.)."""
    p, y = probabilities_and_one_hot()
    for alpha, beta in ((0.3, 0.7), (0.5, 0.5), (0.9, 0.1)):
        peer = monai.TverskyLoss(alpha=alpha, beta=beta, smooth_nr=1.0, smooth_dr=1.0)(*as_torch(p, y)).item()
        got = tversky_loss(per_channel(p), per_channel(y), alpha=alpha, beta=beta)
        np.testing.assert_allclose(got, peer, rtol=1e-12)


def test_generalized_dice_is_monai_generalized_dice_loss(monai):
    """Absent classes weighted as MONAI does; MONAI computes the weights in float32 (hence 1e-6)."""
    p, y = probabilities_and_one_hot()
    y[0, 2] = 0.0  # class 2 absent from sample 0
    y[0, 3] = np.maximum(y[0, 3], y[0, 2])
    peer = monai.GeneralizedDiceLoss(smooth_nr=1e-5, smooth_dr=1e-5, reduction="none")(*as_torch(p, y))
    np.testing.assert_allclose(generalized_dice_loss(p, y, reduction="none"), peer.numpy().ravel(), rtol=1e-6)


def test_binary_focal_is_monai_sigmoid_focal_loss(monai):
    x, t = rng.normal(scale=2.0, size=(N, C, H)), (rng.uniform(size=(N, C, H)) < 0.3).astype(float)
    for alpha in (None, 0.25, 0.8):
        for gamma in (0.0, 2.0, 0.5):
            peer = monai.FocalLoss(alpha=alpha, gamma=gamma)(*as_torch(x, t)).item()
            np.testing.assert_allclose(binary_focal_loss(x, t, alpha=alpha, gamma=gamma), peer, rtol=1e-6)


def test_softmax_focal_mean_is_per_target_where_monai_divides_by_classes_too(monai):
    """MONAI's "mean" averages over the one-hot entries, classes included: C times smaller."""
    x, labels = rng.normal(size=(N, C, H)), rng.integers(0, C, size=(N, H))
    one_hot = np.moveaxis(np.eye(C)[labels], -1, 1)
    peer = monai.FocalLoss(gamma=2.0, use_softmax=True)(*as_torch(x, one_hot)).item()
    np.testing.assert_allclose(focal_loss(x, labels), C * peer, rtol=1e-6)


# --- Keras ---------------------------------------------------------------------------------------

def test_dice_is_keras_dice_with_its_axes_and_no_smoothing(keras):
    """Keras' default scores the whole batch as one sample; with axis=(1, 2, 3), each sample.
    Keras adds its epsilon (1e-7) to the denominator only; lossreg adds ``smooth`` to both."""
    p, y = probabilities_and_one_hot()
    whole = float(keras.losses.Dice()(y, p))
    np.testing.assert_allclose(dice_loss(p.reshape(1, -1), y.reshape(1, -1), smooth=0.0), whole, rtol=1e-6)
    each = np.asarray(keras.losses.Dice(axis=(1, 2, 3), reduction=None)(y, p))
    np.testing.assert_allclose(dice_loss(p, y, smooth=0.0, reduction="none"), each, rtol=1e-6)


def test_tversky_keras_alpha_weighs_false_negatives(keras):
    """Keras' ``tversky`` computes its "fp" as Σ y (1 - x), the false negatives, so its alpha is
    lossreg's (and the paper's, and MONAI's) beta. Swapped, the numbers agree."""
    p, y = probabilities_and_one_hot()
    for alpha, beta in ((0.3, 0.7), (0.8, 0.2)):
        peer = float(keras.losses.Tversky(alpha=alpha, beta=beta)(y, p))
        got = tversky_loss(p.reshape(1, -1), y.reshape(1, -1), alpha=beta, beta=alpha, smooth=0.0)
        np.testing.assert_allclose(got, peer, rtol=1e-6)


def test_binary_focal_is_keras_binary_focal_crossentropy_on_logits_with_class_balancing(keras):
    """Keras' defaults differ: Keras takes probabilities (``from_logits=False``) and weighs no class
    (``apply_class_balancing`` False, i.e. lossreg's ``alpha=None``). So ``binary_focal_crossentropy``
    is not a lossreg name of this loss: ``lossreg.get`` refuses it and says why."""
    x, t = rng.normal(scale=2.0, size=(N, 7)), (rng.uniform(size=(N, 7)) < 0.3).astype(float)
    peer = keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.25, gamma=2.0, from_logits=True)
    np.testing.assert_allclose(binary_focal_loss(x, t), float(peer(t, x)), rtol=1e-6)
    peer = keras.losses.BinaryFocalCrossentropy(gamma=2.0)
    probabilities = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(binary_focal_loss(x, t, alpha=None), float(peer(t, probabilities)), rtol=1e-5)
    with pytest.raises(lossreg.UnknownLossError, match="on purpose: Keras' binary_focal_crossentropy takes probabilities"):
        lossreg.get("binary_focal_crossentropy")


def test_focal_is_keras_categorical_focal_crossentropy_with_alpha_as_class_weights(keras):
    """Keras' ``alpha`` (default 0.25) scales every class alike: lossreg's ``weight`` of C alphas."""
    x, labels = rng.normal(size=(8, C)), rng.integers(0, C, size=8)
    for alpha in (0.25, 1.0):
        peer = keras.losses.CategoricalFocalCrossentropy(alpha=alpha, gamma=2.0, from_logits=True)
        want = float(peer(np.eye(C)[labels], x))
        # Keras' "mean" divides by the batch, lossreg's by the summed weights of the targets: "sum" / N.
        np.testing.assert_allclose(focal_loss(x, labels, weight=np.full(C, alpha), reduction="sum") / 8, want,
                                   rtol=1e-6)


# --- optax (values and jax.grad) ------------------------------------------------------------------

def test_binary_focal_is_optax_sigmoid_focal_loss_gradients_included():
    jax = pytest.importorskip("jax", reason="JAX is not installed (pip install jax)")
    optax = pytest.importorskip("optax", reason="optax is not installed (pip install optax)")
    with jax.enable_x64(True):
        x = jax.numpy.asarray(rng.normal(scale=3.0, size=(N, 9)))
        t = jax.numpy.asarray((rng.uniform(size=(N, 9)) < 0.3).astype(float))
        for alpha in (None, 0.25):
            for gamma in (0.0, 2.0):
                value, grad = jax.value_and_grad(lambda z: binary_focal_loss(z, t, alpha=alpha, gamma=gamma))(x)
                want, want_grad = jax.value_and_grad(
                    lambda z: optax.losses.sigmoid_focal_loss(z, t, alpha=alpha, gamma=gamma).mean())(x)
                np.testing.assert_allclose(value, want, rtol=1e-12)
                np.testing.assert_allclose(grad, want_grad, rtol=1e-10, atol=1e-15)


def test_dice_and_tversky_are_optax_dice_loss_per_class():
    """optax scores each (sample, class), classes last, and averages over the classes; its Dice form
    (alpha = beta = 1/2) has half lossreg's smoothing, its Tversky form the same."""
    jax = pytest.importorskip("jax", reason="JAX is not installed (pip install jax)")
    optax = pytest.importorskip("optax", reason="optax is not installed (pip install optax)")
    p, y = probabilities_and_one_hot()
    last = [np.moveaxis(a, 1, -1) for a in (p, y)]  # (N, H, W, C)
    with jax.enable_x64(True):
        for reduction in ("none", "mean"):
            peer = np.asarray(optax.losses.dice_loss(*last, apply_softmax=False, smooth=1.0, reduction=reduction))
            got = dice_loss(per_channel(p), per_channel(y), smooth=2.0, reduction="none").reshape(N, C)
            np.testing.assert_allclose(got if reduction == "none" else got.mean(axis=1), peer, rtol=1e-12)
        peer = optax.losses.dice_loss(*last, apply_softmax=False, smooth=1.0, alpha=0.3, beta=0.7, reduction="none")
        got = tversky_loss(per_channel(p), per_channel(y), alpha=0.3, beta=0.7, smooth=1.0, reduction="none")
        np.testing.assert_allclose(got.reshape(N, C), np.asarray(peer), rtol=1e-12)


def test_optax_multiclass_generalized_dice_is_class_weighted_dice_per_class_not_this_loss():
    """optax's ``multiclass_generalized_dice_loss`` is another loss under the name: a Dice score per
    (sample, class), classes last, each weighted by one weight per class from the whole batch's
    volumes, 1 / (v² + 1e-7) scaled to sum to C, then averaged. Sudre et al.'s generalized Dice here
    forms one ratio per sample from its own volumes. optax's is dice_loss per (sample, class) row with
    twice optax's smoothing, times those weights; gradients included."""
    jax = pytest.importorskip("jax", reason="JAX is not installed (pip install jax)")
    optax = pytest.importorskip("optax", reason="optax is not installed (pip install optax)")
    p, y = probabilities_and_one_hot()
    volume = y.sum(axis=(0, 2, 3))
    weights = 1 / (volume ** 2 + 1e-7)
    weights = weights / weights.sum() * C
    with jax.enable_x64(True):
        q, rows = jax.numpy.asarray(p), jax.numpy.asarray(per_channel(y))
        for smooth in (1.0, 1e-5):
            def peer(q):
                last = [jax.numpy.moveaxis(a, 1, -1) for a in (q, y)]  # (N, H, W, C)
                return optax.losses.multiclass_generalized_dice_loss(*last, smooth=smooth, apply_softmax=False)

            def weighted_dice(q):
                per = dice_loss(q.reshape(N * C, -1), rows, smooth=2 * smooth, reduction="none")
                return (per.reshape(N, C) * weights).mean()

            want, want_grad = jax.value_and_grad(peer)(q)
            got, grad = jax.value_and_grad(weighted_dice)(q)
            np.testing.assert_allclose(got, want, rtol=1e-12)
            np.testing.assert_allclose(grad, want_grad, rtol=1e-10, atol=1e-15)
            assert abs(generalized_dice_loss(p, y, smooth=smooth) - float(want)) > 1e-3  # not this loss's number
