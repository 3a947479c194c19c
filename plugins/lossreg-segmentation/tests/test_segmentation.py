"""Tests of lossreg-segmentation, run with lossreg's pytest plugin (``pytest_plugins`` in ../conftest.py):

    pytest --lossreg-backend numpy,array_api_strict,torch,jax,dask

The conformance suite checks every loss against the reference cases; the property tests below
check relations between losses on every backend given by ``--lossreg-backend``.
"""

from __future__ import annotations

import numpy as np
import pytest
from lossreg_segmentation import binary_focal_loss, dice_loss, focal_loss, generalized_dice_loss, tversky_loss

import lossreg

rng = np.random.default_rng(7)


def close(backend, got, want, rtol=1e-10):
    np.testing.assert_allclose(backend.to_numpy(got), backend.to_numpy(want), rtol=rtol, atol=1e-12)


def test_conformance(lossreg_conformance):
    lossreg_conformance(plugin="segmentation")


def test_registered_under_every_name():
    for name in ("dice", "DiceLoss", "tversky", "gdl", "sigmoid_focal_loss", "binary_focal_loss", "FocalLoss",
                 "categorical_focal_loss"):
        assert lossreg.spec(name).plugin == "segmentation"
    assert lossreg.get("dice", smooth=0.0).get_config() == {"name": "dice_loss",
                                                            "options": {"smooth": 0.0, "reduction": "mean"}}


def test_tversky_with_equal_weights_is_dice(lossreg_backend, lossreg_device):
    x = lossreg_backend.asarray(rng.uniform(size=(3, 2, 4)), "float64", lossreg_device)
    y = lossreg_backend.asarray((rng.uniform(size=(3, 2, 4)) < 0.5).astype("float64"), "float64", lossreg_device)
    close(lossreg_backend, tversky_loss(x, y, smooth=0.0, reduction="none"), dice_loss(x, y, smooth=0.0, reduction="none"))


def test_focal_with_gamma_0_is_cross_entropy(lossreg_backend, lossreg_device):
    x = lossreg_backend.asarray(rng.normal(size=(6, 4)), "float64", lossreg_device)
    t = lossreg_backend.asarray(np.array([0, 3, 1, -100, 2, 2]), "int64", lossreg_device)
    w = lossreg_backend.asarray(np.array([0.5, 1.0, 2.0, 1.5]), "float64", lossreg_device)
    close(lossreg_backend, focal_loss(x, t, gamma=0.0, weight=w), lossreg.cross_entropy(x, t, weight=w))


def test_binary_focal_with_gamma_0_is_bce_with_logits(lossreg_backend, lossreg_device):
    x = lossreg_backend.asarray(rng.normal(scale=3.0, size=(5, 3)), "float64", lossreg_device)
    t = lossreg_backend.asarray(rng.uniform(size=(5, 3)), "float64", lossreg_device)
    bce = lossreg.get("BCEWithLogitsLoss", reduction="none")
    close(lossreg_backend, binary_focal_loss(x, t, alpha=None, gamma=0.0, reduction="none"), bce(x, t))


def test_generalized_dice_of_a_perfect_prediction_is_0(lossreg_backend, lossreg_device):
    y = np.moveaxis(np.eye(3)[rng.integers(0, 3, size=(2, 5))], -1, 1)  # one-hot (2, 3, 5)
    y_ = lossreg_backend.asarray(y, "float64", lossreg_device)
    np.testing.assert_allclose(lossreg_backend.to_numpy(generalized_dice_loss(y_, y_, reduction="none")), 0.0, atol=1e-9)


def test_torch_kernel_is_chosen_and_agrees_with_the_portable_definition():
    torch = pytest.importorskip("torch")
    from lossreg_segmentation.kernels import binary_focal_loss_torch

    assert lossreg.registry().kernel_for("binary_focal_loss", torch.zeros(1)) is binary_focal_loss_torch
    x = torch.randn(64, 5, dtype=torch.float64, requires_grad=True)
    t = torch.rand(64, 5, dtype=torch.float64)
    fast = binary_focal_loss(x, t, gamma=1.5)
    (g_fast,) = torch.autograd.grad(fast, x)
    with lossreg.use_kernels(False):
        portable = binary_focal_loss(x, t, gamma=1.5)
    (g_portable,) = torch.autograd.grad(portable, x)
    torch.testing.assert_close(fast, portable, rtol=1e-12, atol=0)
    torch.testing.assert_close(g_fast, g_portable, rtol=1e-10, atol=1e-15)


def test_focal_takes_the_documents_n_by_1_targets(lossreg_backend, lossreg_device):
    x = lossreg_backend.asarray(rng.normal(size=(5, 4)), "float64", lossreg_device)
    t = rng.integers(0, 4, size=5)
    column, flat = (lossreg_backend.asarray(v, "int64", lossreg_device) for v in (t[:, None], t))
    close(lossreg_backend, focal_loss(x, column, reduction="none"), focal_loss(x, flat, reduction="none"))


def test_focal_with_gamma_0_agrees_with_cross_entropy_at_infinite_logits(lossreg_backend, lossreg_device):
    """A -inf logit is a class of probability 0; a +inf logit makes its row NaN, as torch's cross_entropy."""
    inf = np.inf
    x = lossreg_backend.asarray(np.array([[-inf, 0.0, 1.0], [-inf, 0.0, 1.0], [inf, 0.0, 1.0]]), "float64",
                                lossreg_device)
    t = lossreg_backend.asarray(np.array([1, 0, 1]), "int64", lossreg_device)
    got = lossreg_backend.to_numpy(focal_loss(x, t, gamma=0.0, reduction="none"))
    want = lossreg_backend.to_numpy(lossreg.cross_entropy(x, t, reduction="none"))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.isinf(got[1]) and np.isnan(got[2])
