"""A MONAI (and Keras, optax) user's hunt at the edges the peer tests do not reach: empty and full
masks, MONAI's options (``batch``, ``jaccard``, ``include_background``, ``softmax``, ``to_onehot_y``,
class weights, ``ignore_index``), 3-D volumes, float32, gradients (torch autograd against MONAI's,
``jax.grad`` against optax's), saturated and infinite logits; and every backend in float64.

Each peer value is computed here by the peer; where the peer's semantics differ, the test states
the difference the README documents and checks that it is exactly that difference.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import lossreg
from lossreg_segmentation import binary_focal_loss, dice_loss, focal_loss, generalized_dice_loss, tversky_loss

rng = np.random.default_rng(23)


@pytest.fixture(autouse=True)
def fresh_rng():
    """Each test draws the same numbers however the tests are selected or ordered."""
    global rng
    rng = np.random.default_rng(23)
N, C, H, W = 3, 3, 4, 5


def as_torch(*arrays, requires_grad=False):
    import torch

    return [torch.tensor(a, requires_grad=requires_grad) for a in arrays]


def softmax(x: np.ndarray, axis: int = 1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    """(N, d1, ...) class indices as (N, C, d1, ...) one-hot masks, MONAI's layout."""
    return np.moveaxis(np.eye(classes)[labels], -1, 1)


def per_channel(a: np.ndarray) -> np.ndarray:
    return a.reshape(a.shape[0] * a.shape[1], -1)


def masks_with_edges(shape=(4, 1, H, W)) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and masks where sample 0 is empty in both, sample 1 has an empty mask, sample 2 a
    full one and sample 3 is ordinary."""
    p, y = rng.uniform(size=shape), (rng.uniform(size=shape) < 0.4).astype(float)
    p[0], y[0], y[1], y[2] = 0.0, 0.0, 0.0, 1.0
    return p, y


# --- Dice and Tversky against MONAI ----------------------------------------------------------------

@pytest.mark.parametrize("smooth", [1.0, 1e-5])
def test_dice_and_tversky_at_empty_and_full_masks_are_monai_values_and_gradients(monai, smooth):
    """Empty prediction and mask: loss 0 in both (the smoothing terms alone); an empty mask, a full
    mask: MONAI's numbers, and the same gradient for the prediction and for a soft target."""
    import torch

    p, y = masks_with_edges()
    pairs = [(lambda a, b: dice_loss(a, b, smooth=smooth, reduction="none"),
              monai.DiceLoss(smooth_nr=smooth, smooth_dr=smooth, reduction="none")),
             (lambda a, b: tversky_loss(a, b, alpha=0.3, beta=0.7, smooth=smooth, reduction="none"),
              monai.TverskyLoss(alpha=0.3, beta=0.7, smooth_nr=smooth, smooth_dr=smooth, reduction="none"))]
    for ours, peer in pairs:
        a, b = as_torch(p, y, requires_grad=True)
        got = ours(a, b)
        c, d = as_torch(p, y, requires_grad=True)
        want = peer(c, d).reshape(-1)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)
        assert got[0].item() == 0.0
        for g, h in zip(torch.autograd.grad(got.sum(), [a, b]), torch.autograd.grad(want.sum(), [c, d])):
            torch.testing.assert_close(g, h, rtol=1e-10, atol=1e-15)


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide")  # NumPy on 0 / 0
def test_dice_without_smoothing_is_nan_on_an_empty_sample_as_monai(monai):
    """smooth=0 (MONAI's smooth_nr = smooth_dr = 0) leaves 0 / 0 on a sample with empty prediction and
    mask: NaN in both; an empty mask under a non-empty prediction is 1 in both."""
    p, y = masks_with_edges()
    got = dice_loss(p, y, smooth=0.0, reduction="none")
    want = monai.DiceLoss(smooth_nr=0.0, smooth_dr=0.0, reduction="none")(*as_torch(p, y)).numpy().ravel()
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert math.isnan(got[0]) and got[1] == 1.0


def test_monai_batch_true_is_dice_of_each_channel_over_the_whole_batch(monai):
    """MONAI's batch=True sums each channel over the batch too: lossreg on (C, N·d1·...) rows."""
    p, y = rng.uniform(size=(N, C, H, W)), (rng.uniform(size=(N, C, H, W)) < 0.4).astype(float)
    rows = [np.moveaxis(a, 1, 0).reshape(C, -1) for a in (p, y)]
    peer = monai.DiceLoss(batch=True, smooth_nr=1.0, smooth_dr=1.0, reduction="none")(*as_torch(p, y))
    np.testing.assert_allclose(dice_loss(*rows, reduction="none"), peer.numpy().ravel(), rtol=1e-12)
    peer = monai.TverskyLoss(batch=True, alpha=0.2, beta=0.8, smooth_nr=1.0, smooth_dr=1.0, reduction="none")
    np.testing.assert_allclose(tversky_loss(*rows, alpha=0.2, beta=0.8, reduction="none"),
                               peer(*as_torch(p, y)).numpy().ravel(), rtol=1e-12)


def test_monai_jaccard_is_tversky_with_alpha_and_beta_1_and_half_the_smoothing(monai):
    """MONAI's jaccard=True: 1 - (2 TP + s) / (2 (TP + FP + FN) + s), Tversky's α = β = 1 with s / 2."""
    p, y = masks_with_edges()
    peer = monai.DiceLoss(jaccard=True, smooth_nr=1.0, smooth_dr=1.0, reduction="none")(*as_torch(p, y))
    got = tversky_loss(p, y, alpha=1.0, beta=1.0, smooth=0.5, reduction="none")
    np.testing.assert_allclose(got, peer.numpy().ravel(), rtol=1e-12)


def test_monai_softmax_one_hot_background_and_class_weights_are_lossreg_on_what_they_compute(monai):
    """MONAI's options act before the loss: softmax of logits, one-hot of (N, 1, ...) indices, dropping
    channel 0; its class weights scale each (sample, channel) loss before the mean."""
    x, labels = rng.normal(size=(N, C, 2, H, W)), rng.integers(0, C, size=(N, 1, 2, H, W))  # 3-D volumes
    p, y = softmax(x), one_hot(labels[:, 0], C)
    weight = np.array([0.2, 0.5, 0.3])
    per_pair = dice_loss(per_channel(p), per_channel(y), reduction="none").reshape(N, C)
    peer = monai.DiceLoss(softmax=True, to_onehot_y=True, smooth_nr=1.0, smooth_dr=1.0, weight=weight)
    np.testing.assert_allclose((per_pair * weight).mean(), peer(*as_torch(x, labels)).item(), rtol=1e-12)
    peer = monai.DiceLoss(softmax=True, to_onehot_y=True, include_background=False, smooth_nr=1.0, smooth_dr=1.0)
    np.testing.assert_allclose(per_pair[:, 1:].mean(), peer(*as_torch(x, labels)).item(), rtol=1e-12)


def test_dice_in_float32_is_float32_and_monai_float32(monai):
    p, y = (a.astype(np.float32) for a in masks_with_edges((4, 1, 3, H, W)))
    got = dice_loss(p, y, reduction="none")
    assert got.dtype == np.float32
    want = monai.DiceLoss(smooth_nr=1.0, smooth_dr=1.0, reduction="none")(*as_torch(p, y)).numpy().ravel()
    np.testing.assert_allclose(got, want, rtol=1e-6)


# --- Generalized Dice against MONAI ----------------------------------------------------------------

def test_generalized_dice_gradient_is_monai_gradient_with_an_absent_class(monai):
    import torch

    x, labels = rng.normal(size=(2, C, H, W)), rng.integers(0, C, size=(2, H, W))
    labels[0] = 0  # sample 0: classes 1 and 2 absent
    p, y = softmax(x), one_hot(labels, C)
    a, b = as_torch(p, requires_grad=True), as_torch(p, requires_grad=True)
    got = generalized_dice_loss(a[0], *as_torch(y), reduction="sum")
    want = monai.GeneralizedDiceLoss(reduction="sum")(b[0], *as_torch(y))
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)  # MONAI's weights are float32
    torch.testing.assert_close(torch.autograd.grad(got, a[0])[0], torch.autograd.grad(want, b[0])[0], rtol=1e-5,
                               atol=1e-9)


def test_generalized_dice_of_empty_targets_and_of_one_class_is_monai(monai):
    x = rng.normal(size=(2, C, H, W))
    p, empty = softmax(x), np.zeros((2, C, H, W))
    np.testing.assert_array_equal(generalized_dice_loss(p, empty, reduction="none"), [0.0, 0.0])
    peer = monai.GeneralizedDiceLoss(reduction="none")(*as_torch(p, empty)).numpy().ravel()
    np.testing.assert_array_equal(peer, [0.0, 0.0])
    p1, y1 = p[:, :1], (rng.uniform(size=(2, 1, H, W)) < 0.5).astype(float)
    peer = monai.GeneralizedDiceLoss(reduction="none")(*as_torch(p1, y1)).numpy().ravel()
    np.testing.assert_allclose(generalized_dice_loss(p1, y1, reduction="none"), peer, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_generalized_dice_class_of_tiny_volume_whose_weight_overflows_counts_as_absent_as_in_monai(monai, dtype):
    """A soft target (a teacher's softmax, label smoothing) can give a class a volume so small that
    1 / volume² overflows: MONAI finds infinite weights with isinf and gives them the sample's largest
    finite weight, as for an absent class. lossreg treated only a volume of exactly 0 so: the infinite
    weight made the loss NaN (inf / inf)."""
    import torch

    x = rng.normal(size=(2, C, H, W))
    p = softmax(x).astype(dtype)
    y = np.zeros((2, C, H, W), dtype=dtype)
    tiny = 1e-25 if dtype == "float32" else 1e-170  # 1 / (20 tiny)² is past the dtype's largest number
    y[:, 2] = tiny
    y[:, 0] = 1 - tiny
    y[1, 1, :2] = 1.0
    y[1, 0, :2] = 0.0
    a, b = as_torch(p, requires_grad=True), as_torch(p, requires_grad=True)
    got = generalized_dice_loss(a[0], torch.tensor(y), reduction="none")
    want = monai.GeneralizedDiceLoss(reduction="none")(b[0], torch.tensor(y)).reshape(-1)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)
    (grad,) = torch.autograd.grad(got.sum(), a[0])
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(grad, torch.autograd.grad(want.sum(), b[0])[0], rtol=1e-5, atol=1e-9)


# --- focal losses against MONAI, torch, Keras, optax -----------------------------------------------

@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("alpha", [None, 0.25, 0.0, 1.0])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_binary_focal_at_saturated_logits_is_monai_values_and_gradients(monai, dtype, alpha, gamma):
    """Logits of ±1e4 on labels exactly 0 and 1, right and wrong, through the torch kernel and the
    portable form: MONAI's numbers and autograd's gradients (MONAI computes in float32)."""
    import torch

    x = np.array([[1e4, -1e4, 1e4, -1e4, 0.0, 3.0, -2.5, 30.0, -40.0]], dtype=dtype)
    t = np.array([[1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0]], dtype=dtype)
    a, b = as_torch(x, requires_grad=True), as_torch(x, requires_grad=True)
    want = monai.FocalLoss(alpha=alpha, gamma=gamma, reduction="none")(b[0], torch.tensor(t)).sum()
    (want_grad,) = torch.autograd.grad(want, b[0])
    for kernels in (True, False):
        with lossreg.use_kernels(kernels):
            got = binary_focal_loss(a[0], torch.tensor(t), alpha=alpha, gamma=gamma, reduction="sum")
        (grad,) = torch.autograd.grad(got, a[0])
        assert got.dtype == a[0].dtype
        torch.testing.assert_close(got, want.to(got.dtype), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(grad, want_grad.to(grad.dtype), rtol=1e-4, atol=1e-6)


def test_binary_focal_with_gamma_0_and_no_alpha_is_torch_bce_with_logits_to_the_last_bit():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    x = torch.tensor([1e4, -1e4, 1e4, -1e4, 0.0, 3.0, -2.5], dtype=torch.float64)
    t = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.3, 0.9], dtype=torch.float64)
    want = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    for kernels in (True, False):
        with lossreg.use_kernels(kernels):
            torch.testing.assert_close(binary_focal_loss(x, t, alpha=None, gamma=0.0, reduction="none"), want,
                                       rtol=1e-15, atol=0)


def test_binary_focal_on_soft_targets_is_optax_not_monai(monai, jax):
    """On soft targets lossreg, optax and torchvision modulate by 1 - p_t, p_t = p t + (1 - p)(1 - t);
    MONAI by σ(-x (2t - 1)), which is 1 - p_t only for t in {0, 1}: the README says "Equal" for
    hard targets only."""
    import optax

    x, t = rng.normal(scale=3.0, size=(N, 7)), rng.uniform(size=(N, 7))
    z, targets = jax.numpy.asarray(x), jax.numpy.asarray(t)
    value, grad = jax.value_and_grad(lambda a: binary_focal_loss(a, targets))(z)
    want, want_grad = jax.value_and_grad(lambda a: optax.losses.sigmoid_focal_loss(a, targets, alpha=0.25).mean())(z)
    np.testing.assert_allclose(value, want, rtol=1e-12)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-10, atol=1e-15)
    assert abs(binary_focal_loss(x, t) - monai.FocalLoss(alpha=0.25)(*as_torch(x, t)).item()) > 1e-4
    hard = np.round(t)
    np.testing.assert_allclose(binary_focal_loss(x, hard), monai.FocalLoss(alpha=0.25)(*as_torch(x, hard)).item(),
                               rtol=1e-6)


def test_binary_focal_default_alpha_is_025_where_monai_and_optax_default_to_none(monai, jax):
    """The README's equalities pass alpha explicitly: with the peers' defaults, alpha=None here."""
    import optax

    x, t = rng.normal(size=(N, 7)), np.round(rng.uniform(size=(N, 7)))
    theirs = [monai.FocalLoss()(*as_torch(x, t)).item(), float(optax.losses.sigmoid_focal_loss(x, t).mean())]
    np.testing.assert_allclose(theirs, binary_focal_loss(x, t, alpha=None), rtol=1e-6)
    assert abs(binary_focal_loss(x, t) - theirs[1]) > 1e-3


def test_focal_with_gamma_0_is_torch_cross_entropy_on_3d_volumes_weights_and_ignored_voxels():
    """gamma=0 is cross_entropy itself: class weights, ignore_index, a weighted "mean", logits of
    ±1e4, float32 and float64, values and gradients."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    x = rng.normal(size=(2, C, 3, H, W)) * 1e4
    labels = rng.integers(0, C, size=(2, 3, H, W))
    labels[0, 0] = -100
    weight = torch.tensor([0.2, 0.5, 0.3])
    for dtype in (torch.float64, torch.float32):
        a, b = (torch.tensor(x, dtype=dtype, requires_grad=True) for _ in range(2))
        for reduction in ("mean", "sum", "none"):
            got = focal_loss(a, torch.tensor(labels), gamma=0.0, weight=weight.to(dtype), reduction=reduction)
            want = F.cross_entropy(b, torch.tensor(labels), weight=weight.to(dtype), reduction=reduction)
            assert got.shape == want.shape
            torch.testing.assert_close(got, want)
            torch.testing.assert_close(torch.autograd.grad(got.sum(), a)[0], torch.autograd.grad(want.sum(), b)[0])


def test_focal_none_is_monai_none_summed_over_the_one_hot_classes(monai):
    """MONAI's "none" keeps the one-hot layout (N, C, d1, ...), zeros off the target class; lossreg's is
    one loss per voxel, (N, d1, ...), as cross_entropy's."""
    x, labels = rng.normal(size=(N, C, H, W)), rng.integers(0, C, size=(N, H, W))
    peer = monai.FocalLoss(use_softmax=True, gamma=2.0, reduction="none")(*as_torch(x, one_hot(labels, C)))
    got = focal_loss(x, labels, reduction="none")
    assert got.shape == (N, H, W) and tuple(peer.shape) == (N, C, H, W)
    np.testing.assert_allclose(got, peer.numpy().sum(axis=1), rtol=1e-5, atol=1e-8)  # MONAI: float32


def test_monai_softmax_focal_alpha_is_class_weights_one_minus_alpha_for_the_background(monai):
    """MONAI's scalar alpha weighs the background (class 0) by 1 - α and the others by α; a sequence
    is a weight per class; its "mean" divides by every one-hot entry (N·C·H·W)."""
    x, labels = rng.normal(size=(N, C, H, W)), rng.integers(0, C, size=(N, H, W))
    entries = N * C * H * W
    for alpha, weight in ((0.25, [0.75, 0.25, 0.25]), ([0.2, 0.5, 0.3], [0.2, 0.5, 0.3])):
        peer = monai.FocalLoss(use_softmax=True, alpha=alpha)(*as_torch(x, one_hot(labels, C))).item()
        got = focal_loss(x, labels, weight=np.array(weight), reduction="sum") / entries
        np.testing.assert_allclose(got, peer, rtol=1e-6)


def test_monai_softmax_focal_without_background_is_focal_of_the_other_channels_ignoring_background(monai):
    """include_background=False drops channel 0 before MONAI's softmax: lossreg on the other channels,
    background voxels ignored, "sum" over MONAI's count of entries."""
    x, labels = rng.normal(size=(N, C, H, W)), rng.integers(0, C, size=(N, H, W))
    peer = monai.FocalLoss(use_softmax=True, include_background=False)(*as_torch(x, one_hot(labels, C))).item()
    shifted = np.where(labels == 0, -100, labels - 1)
    got = focal_loss(x[:, 1:], shifted, reduction="sum") / (N * (C - 1) * H * W)
    np.testing.assert_allclose(got, peer, rtol=1e-6)


def test_monai_softmax_focal_mean_with_ignore_index_divides_by_kept_voxels_only(monai):
    """The README's "MONAI's mean also divides by the number of classes" holds without MONAI's
    ignore_index; with it, MONAI divides by the kept voxels alone: lossreg's "mean" exactly."""
    x, labels = rng.normal(size=(N, C, H, W)), rng.integers(0, C, size=(N, H, W))
    labels[0, :2] = 255
    peer = monai.FocalLoss(use_softmax=True, to_onehot_y=True, ignore_index=255)
    np.testing.assert_allclose(focal_loss(x, labels, ignore_index=255), peer(*as_torch(x, labels[:, None])).item(),
                               rtol=1e-6)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_focal_gradient_stays_finite_at_saturated_logits(monai, gamma):
    """Logits of ±1e4: MONAI's gradient is NaN for gamma < 1 ((1 - p)^γ at p = 1); lossreg's is finite and
    otherwise MONAI's."""
    import torch

    x, labels = rng.normal(size=(N, C, H)) * 1e4, rng.integers(0, C, size=(N, H))
    a, b = as_torch(x, requires_grad=True), as_torch(x, requires_grad=True)
    got = focal_loss(a[0], torch.tensor(labels), gamma=gamma, reduction="sum")
    want = monai.FocalLoss(use_softmax=True, gamma=gamma, reduction="none")(b[0], *as_torch(one_hot(labels, C))).sum()
    torch.testing.assert_close(got, want.to(got.dtype), rtol=1e-6, atol=0)
    (grad,) = torch.autograd.grad(got, a[0])
    (want_grad,) = torch.autograd.grad(want, b[0])
    assert torch.isfinite(grad).all()
    finite = torch.isfinite(want_grad)
    assert gamma >= 1 or not finite.all()
    torch.testing.assert_close(grad[finite], want_grad[finite], rtol=1e-5, atol=1e-9)


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide")  # NumPy on 0 / 0
def test_keras_dice_and_tversky_on_an_empty_sample_give_1_where_smooth_0_gives_nan(keras):
    """Keras adds its epsilon to the denominator only, so 0 / ε = 0 and the loss is 1 on an empty
    prediction and mask; lossreg's smooth=0 gives 0 / 0, and its default smooth gives 0 (a perfect
    prediction), as MONAI's. Elsewhere smooth=0 is Keras' value, as the README says."""
    empty = np.zeros((1, 2, H, W))
    assert float(keras.losses.Dice()(empty, empty)) == 1.0
    assert float(keras.losses.Tversky()(empty, empty)) == 1.0
    assert math.isnan(dice_loss(empty, empty, smooth=0.0)) and math.isnan(tversky_loss(empty, empty, smooth=0.0))
    assert dice_loss(empty, empty) == 0.0 and tversky_loss(empty, empty) == 0.0


def test_keras_focal_losses_clip_probabilities_so_saturated_logits_differ(keras):
    """Keras clips probabilities to [ε, 1 - ε] even from logits: a logit 1e4 on the wrong side costs
    about -log ε there, its true value here (torch's cross-entropy too)."""
    x, labels = np.array([[1e4, -1e4, 0.0]]), np.array([1])
    peer = keras.losses.CategoricalFocalCrossentropy(alpha=1.0, gamma=0.0, from_logits=True)
    peer = float(peer(np.eye(3)[labels], x))
    assert peer < 20.0
    np.testing.assert_allclose(focal_loss(x, labels, gamma=0.0), 2e4, rtol=1e-12)


def test_keras_binary_focal_clips_the_sigmoid_too_so_logits_past_16_differ(keras):
    """Keras' BinaryFocalCrossentropy(from_logits=True) takes σ(x) and clips it to [ε, 1 - ε], ε = 1e-7:
    past |x| ≈ 16 its cross-entropy stops at -log ε ≈ 16 (the plugin's README says so). Below, the two agree."""
    peer = keras.losses.BinaryFocalCrossentropy(from_logits=True, apply_class_balancing=True, gamma=0.0)
    x, t = np.array([[5.0, 30.0]]), np.zeros((1, 2))
    got = binary_focal_loss(x, t, gamma=0.0, reduction="none")  # (1 - α) · log(1 + eˣ)
    np.testing.assert_allclose(got, 0.75 * np.logaddexp(0.0, x), rtol=1e-12)
    np.testing.assert_allclose(np.mean(got[:, :1]), peer(t[:, :1], x[:, :1]), rtol=1e-6)
    assert float(peer(t[:, 1:], x[:, 1:])) < 0.75 * 16.2 < float(got[0, 1])  # 22.5 here


# --- every backend the plugin runs on, in float64 --------------------------------------------------

def edge_cases() -> list:
    """Each loss on inputs with the edges above: empty and full masks, ignored voxels, ±1e4 and -inf logits."""
    p, y = masks_with_edges((4, 2, 3, H))
    x = rng.normal(size=(3, C, 3, H)) * 3
    x[0, :, 0, 1], x[1, :, 1, 1] = [1e4, -1e4, 0.0], [-math.inf, 0.0, 1.0]
    labels = rng.integers(0, C, size=(3, 3, H))
    labels[0, 0, 0] = -100
    logits = rng.normal(size=(4, 2, 3, H)) * 3
    logits[0, 0, 0] = [1e4, -1e4, 1e4, -1e4]
    probabilities, hot = softmax(np.where(np.isfinite(x), x, -1e300)), one_hot(np.where(labels < 0, 0, labels), C)
    hot[1] = 0.0
    return [(dice_loss, (p, y), {}), (dice_loss, (p[1:], y[1:]), {"smooth": 0.0}),
            (tversky_loss, (p, y), {"alpha": 0.2, "beta": 0.8}), (generalized_dice_loss, (probabilities, hot), {}),
            (binary_focal_loss, (logits, y), {}), (binary_focal_loss, (logits, y), {"alpha": None, "gamma": 0.5}),
            (focal_loss, (x, labels), {"weight": np.array([0.2, 0.5, 0.3])}), (focal_loss, (x, labels), {"gamma": 0.0})]


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_every_loss_agrees_across_backends_in_float64_at_the_edges(lossreg_backend, lossreg_device, reduction):
    for loss, arrays, options in edge_cases():
        want = loss(*arrays, reduction=reduction, **options)
        converted = [lossreg_backend.asarray(a, "int64" if a.dtype.kind == "i" else "float64", lossreg_device)
                     for a in arrays]
        opts = {k: lossreg_backend.asarray(v, "float64", lossreg_device) if isinstance(v, np.ndarray) else v
                for k, v in options.items()}
        got = np.asarray(lossreg_backend.to_numpy(loss(*converted, reduction=reduction, **opts)))
        assert got.shape == np.shape(want), loss.__name__
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=0, equal_nan=True, err_msg=loss.__name__)


def test_torch_autograd_and_jax_grad_agree_at_the_edges(jax):
    torch = pytest.importorskip("torch")
    jnp = jax.numpy
    for loss, arrays, options in edge_cases():
        leaf = torch.tensor(arrays[0], requires_grad=True)
        others = [torch.tensor(a) for a in arrays[1:]]
        topts = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
        (want,) = torch.autograd.grad(loss(leaf, *others, reduction="sum", **topts), leaf)
        jopts = {k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
        rest = [jnp.asarray(a) for a in arrays[1:]]
        got = jax.grad(lambda z: loss(z, *rest, reduction="sum", **jopts))(jnp.asarray(arrays[0]))
        np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-9, atol=1e-12, equal_nan=True,
                                   err_msg=loss.__name__)
