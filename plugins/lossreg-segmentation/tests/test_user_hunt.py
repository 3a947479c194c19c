"""Edge cases found by a user-style bug hunt: inputs a training loop meets, checked against the
portable definitions and the peers."""

from __future__ import annotations

import numpy as np
import pytest

import lossreg
from lossreg_segmentation import binary_focal_loss


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_binary_focal_torch_kernel_gradient_is_finite_at_saturated_logits_with_gamma_below_1(dtype):
    # A confidently right logit makes 1 - p_t exactly 0: z.pow(0.5)'s infinite slope times ce = 0 was NaN.
    torch = pytest.importorskip("torch")
    x = torch.tensor([1e4, -1e4, 3.0, -2.0], dtype=getattr(torch, dtype), requires_grad=True)
    t = torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=x.dtype)
    (fast,) = torch.autograd.grad(binary_focal_loss(x, t, gamma=0.5, reduction="sum"), x)
    with lossreg.use_kernels(False):
        (portable,) = torch.autograd.grad(binary_focal_loss(x, t, gamma=0.5, reduction="sum"), x)
    assert torch.isfinite(fast).all()
    torch.testing.assert_close(fast, portable)
    np.testing.assert_array_equal(fast[:2].detach().numpy(), [0.0, 0.0])


def test_softmax_focal_sum_is_monai_sum_times_the_spatial_size():
    # MONAI's FocalLoss "sum" first averages over the spatial axes (kept for backward compatibility),
    # so on (N, C, d1, ...) input it is lossreg's "sum" divided by d1·....
    pytest.importorskip("torch", reason="MONAI needs torch")
    monai = pytest.importorskip("monai.losses", reason="MONAI is not installed (pip install monai)")
    import torch

    from lossreg_segmentation import focal_loss

    rng = np.random.default_rng(3)
    x, labels = rng.normal(size=(2, 3, 4, 5)), rng.integers(0, 3, size=(2, 4, 5))
    one_hot = np.moveaxis(np.eye(3)[labels], -1, 1)
    peer = monai.FocalLoss(gamma=2.0, use_softmax=True, reduction="sum")(torch.from_numpy(x), torch.from_numpy(one_hot))
    np.testing.assert_allclose(focal_loss(x, labels, reduction="sum"), 4 * 5 * peer.item(), rtol=1e-6)


@pytest.mark.parametrize("loss, option", [("dice_loss", "smooth"), ("generalized_dice_loss", "smooth"),
                                          ("tversky_loss", "alpha"), ("tversky_loss", "beta"),
                                          ("binary_focal_loss", "gamma"), ("focal_loss", "gamma")])
def test_an_infinite_option_is_refused_rather_than_giving_nan(loss, option):
    # smooth=inf gives inf / inf, gamma=inf 0 ** inf times log: NaN or 0 for every input, silently.
    x = np.array([[0.3, -1.2], [2.0, 0.1]])
    target = np.array([0, 1]) if loss == "focal_loss" else np.array([[0.0, 1.0], [1.0, 0.0]])
    with pytest.raises(lossreg.LossValueError, match=f"{loss}: argument '{option}' expected a finite number"):
        lossreg.get(loss, **{option: float("inf")})(x, target)


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_every_loss_takes_dask_rows_picked_by_a_boolean_mask(reduction):
    # Boolean indexing, then compute_chunk_sizes(), leaves empty chunks, on which Dask's own max
    # fails when computed (generalized Dice's weights for absent classes take one).
    da = pytest.importorskip("dask.array")
    from lossreg_segmentation import dice_loss, focal_loss, generalized_dice_loss, tversky_loss

    rng = np.random.default_rng(5)
    p, labels = rng.random((8, 3, 4)), rng.integers(0, 3, (8, 4))
    one_hot, x = np.moveaxis(np.eye(3)[labels], -1, 1), rng.normal(size=(8, 3, 4))
    keep = da.from_array(np.arange(8) % 4 < 2, chunks=2)  # the second chunk of every two: empty
    for loss, arrays in ((generalized_dice_loss, (p, one_hot)), (dice_loss, (p, one_hot)),
                         (tversky_loss, (p, one_hot)), (binary_focal_loss, (x, one_hot)), (focal_loss, (x, labels))):
        picked = [da.from_array(a, chunks=(2,) + a.shape[1:])[keep].compute_chunk_sizes() for a in arrays]
        assert 0 in picked[0].chunks[0]
        want = loss(*(np.asarray(a) for a in picked), reduction=reduction)
        np.testing.assert_allclose(loss(*picked, reduction=reduction).compute(), want, rtol=1e-12)
