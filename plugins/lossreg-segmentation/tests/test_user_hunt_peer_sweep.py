"""A sweep of the plugin's losses against their peers and across backends at the edges: empty
batches, lazy arrays, and the claims the docstrings make about the peers."""

from __future__ import annotations

import numpy as np
import pytest

from lossreg_segmentation import focal_loss, generalized_dice_loss


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_generalized_dice_of_an_empty_dask_batch_is_numpys(reduction):
    """An empty batch (N = 0) gives what it gives on NumPy: no losses, a sum of 0, a mean of NaN.
    Dask's max over the classes of a batch with no rows raised NumPy's "zero-size array to
    reduction operation maximum" when computed (the weight given to absent classes takes it)."""
    da = pytest.importorskip("dask.array")
    p, one_hot = np.full((0, 3, 4), 0.5), np.zeros((0, 3, 4))
    want = generalized_dice_loss(p, one_hot, reduction=reduction)
    got = generalized_dice_loss(da.from_array(p), da.from_array(one_hot), reduction=reduction).compute()
    np.testing.assert_array_equal(got, want)


def test_monai_softmax_focal_mean_with_class_weights_is_the_weighted_sum_over_every_one_hot_entry(monai):
    """The docstring's "MONAI's mean is this one's divided by C" holds without weights only: with
    MONAI's ``weight`` MONAI still divides by the N·C·H one-hot entries, this loss's "mean" by the
    summed weights of the targets (as cross_entropy's)."""
    import torch

    rng = np.random.default_rng(7)
    n, c, h = 3, 3, 6
    x, labels = rng.normal(size=(n, c, h)), rng.integers(0, c, size=(n, h))
    one_hot = np.moveaxis(np.eye(c)[labels], -1, 1)
    weight = np.array([0.2, 0.5, 0.3])
    peer = monai.FocalLoss(use_softmax=True, weight=weight.tolist())(torch.tensor(x), torch.tensor(one_hot)).item()
    np.testing.assert_allclose(focal_loss(x, labels, weight=weight, reduction="sum") / (n * c * h), peer, rtol=1e-6)
    assert not np.isclose(focal_loss(x, labels, weight=weight) / c, peer, rtol=1e-3)
    unweighted = monai.FocalLoss(use_softmax=True)(torch.tensor(x), torch.tensor(one_hot)).item()
    np.testing.assert_allclose(focal_loss(x, labels) / c, unweighted, rtol=1e-6)


def test_monai_generalized_dice_batch_true_uniform_weights_and_no_background_are_lossreg_on_what_they_compute(monai):
    """MONAI's GeneralizedDiceLoss options, as the README's table states them: ``batch=True`` is this
    loss on the classes-first rows (1, C, N·H·W); ``w_type="uniform"`` is ``dice_loss`` pooling a
    sample's channels; ``include_background=False`` drops channel 0 (here a class absent from
    sample 0, whose weight is that sample's largest)."""
    import torch

    from lossreg_segmentation import dice_loss

    rng = np.random.default_rng(11)
    n, c, h, w = 3, 4, 5, 6
    p, labels = rng.uniform(size=(n, c, h, w)), rng.integers(0, c, size=(n, h, w))
    labels[0][labels[0] == 2] = 0
    one_hot = np.moveaxis(np.eye(c)[labels], -1, 1)
    def peer(**options):
        return monai.GeneralizedDiceLoss(**options)(torch.tensor(p), torch.tensor(one_hot)).item()

    rows = [np.swapaxes(a, 0, 1).reshape(1, c, -1) for a in (p, one_hot)]
    np.testing.assert_allclose(generalized_dice_loss(*rows), peer(batch=True), rtol=1e-6)  # MONAI's weights: float32
    np.testing.assert_allclose(dice_loss(p, one_hot, smooth=1e-5), peer(w_type="uniform"), rtol=1e-12)
    np.testing.assert_allclose(generalized_dice_loss(p[:, 1:], one_hot[:, 1:]), peer(include_background=False),
                               rtol=1e-6)


def test_monai_sigmoid_focal_sum_averages_the_spatial_axes_first_and_is_the_mean_without_them(monai):
    """MONAI's FocalLoss (sigmoid, as binary_focal_loss) equals this loss in "mean" and "none"; its
    "sum" is this one's divided by the spatial size H·W, and on (N, C) inputs, with no spatial axis,
    torch's mean over an empty list of axes makes MONAI's "sum" this loss's "mean"."""
    import torch

    from lossreg_segmentation import binary_focal_loss

    rng = np.random.default_rng(13)
    x = rng.normal(size=(2, 3, 4, 5))
    t = (rng.uniform(size=x.shape) < 0.4).astype(float)
    def peer(x, t, reduction):
        return monai.FocalLoss(alpha=0.25, reduction=reduction)(torch.tensor(x), torch.tensor(t)).numpy()

    np.testing.assert_allclose(binary_focal_loss(x, t, reduction="none"), peer(x, t, "none"), rtol=1e-6)
    np.testing.assert_allclose(binary_focal_loss(x, t), peer(x, t, "mean"), rtol=1e-6)
    np.testing.assert_allclose(binary_focal_loss(x, t, reduction="sum") / (4 * 5), peer(x, t, "sum"), rtol=1e-6)
    flat_x, flat_t = x[:, :, 0, 0], t[:, :, 0, 0]  # (N, C)
    np.testing.assert_allclose(binary_focal_loss(flat_x, flat_t), peer(flat_x, flat_t, "sum"), rtol=1e-6)


def test_monai_softmax_focal_sum_on_logits_without_spatial_axes_is_its_mean(monai):
    """On (N, C) logits MONAI's softmax FocalLoss "sum" is its "mean" (an average over the N·C
    one-hot entries): this loss's "sum" / (N·C), not its "sum"."""
    import torch

    rng = np.random.default_rng(17)
    n, c = 4, 3
    x, labels = rng.normal(size=(n, c)), rng.integers(0, c, size=n)
    peer = monai.FocalLoss(use_softmax=True, reduction="sum")(torch.tensor(x), torch.tensor(np.eye(c)[labels])).item()
    np.testing.assert_allclose(focal_loss(x, labels, reduction="sum") / (n * c), peer, rtol=1e-6)


def test_monai_dice_and_tversky_on_inputs_without_spatial_axes_score_the_whole_batch_as_one(monai):
    """The README's "equal on (N·C, -1) rows" needs a spatial axis: on (N, C) inputs MONAI sums over
    an empty list of axes, every axis to torch, and gives one score for the whole batch, this loss on
    the batch as one sample, x.reshape(1, -1)."""
    import torch

    from lossreg_segmentation import dice_loss, tversky_loss

    rng = np.random.default_rng(19)
    p, y = rng.uniform(size=(4, 3)), (rng.uniform(size=(4, 3)) < 0.5).astype(float)
    options = {"smooth_nr": 1.0, "smooth_dr": 1.0, "reduction": "none"}
    dice = monai.DiceLoss(**options)(torch.tensor(p), torch.tensor(y)).numpy()
    tversky = monai.TverskyLoss(alpha=0.3, beta=0.7, **options)(torch.tensor(p), torch.tensor(y)).numpy()
    assert dice.size == tversky.size == 1
    np.testing.assert_allclose(dice_loss(p.reshape(1, -1), y.reshape(1, -1), reduction="none"), dice.ravel(),
                               rtol=1e-12)
    np.testing.assert_allclose(tversky_loss(p.reshape(1, -1), y.reshape(1, -1), alpha=0.3, beta=0.7, reduction="none"),
                               tversky.ravel(), rtol=1e-12)
    assert not np.isclose(dice_loss(p.reshape(-1, 1), y.reshape(-1, 1)), dice.item())  # not the (N·C, -1) rows


def test_monai_dice_and_tversky_defaults_smooth_by_1e_5_where_these_smooth_by_1(monai):
    """MONAI's DiceLoss() and TverskyLoss() smooth by 1e-5 (smooth_nr = smooth_dr), these losses by 1:
    on a small mask the defaults give other numbers, and smooth=1e-5 gives MONAI's."""
    import torch

    from lossreg_segmentation import dice_loss, tversky_loss

    rng = np.random.default_rng(31)
    p, y = rng.uniform(size=(2, 1, 4, 4)), np.zeros((2, 1, 4, 4))
    y[:, :, 1, 1] = 1.0  # one-pixel masks
    for loss, peer in ((dice_loss, monai.DiceLoss()), (tversky_loss, monai.TverskyLoss())):
        want = peer(torch.tensor(p), torch.tensor(y)).item()
        np.testing.assert_allclose(loss(p, y, smooth=1e-5), want, rtol=1e-12)
        assert abs(loss(p, y) - want) > 0.01
