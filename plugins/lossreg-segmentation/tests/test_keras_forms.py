"""``focal_loss`` in its Keras form (``lossreg.keras``), as a Keras user trains with it.

Its "mean" is cross_entropy's: weighted by ``weight[y]`` over the non-ignored targets, so
``sample_weight`` (what ``fit(class_weight=...)`` passes) must divide by ``Σ sᵢ·weight[yᵢ]`` over
those targets, and all-ones weights must give the plain value.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

rng = np.random.default_rng(12)
W = [1.0, 2.0, 0.5, 0.25]


@pytest.fixture(scope="module")
def lk():
    os.environ.setdefault("KERAS_BACKEND", "numpy")  # losses only: Keras' NumPy backend computes them
    pytest.importorskip("keras", reason="Keras 3 is not installed (pip install keras)")
    import lossreg.keras

    return lossreg.keras


@pytest.mark.parametrize("shape", [(6, 4), (6, 4, 3)])
def test_focal_with_unit_sample_weights_is_the_plain_loss(lk, shape):
    import lossreg

    x = rng.normal(size=shape).astype("float32")
    y = rng.integers(0, 4, size=(6, *shape[2:]))
    y.reshape(-1)[[0, 3]] = 1  # ignored below
    options = {"weight": W, "ignore_index": 1, "gamma": 2.0}
    plain = float(lossreg.get("focal_loss", **options)(x, y))
    np.testing.assert_allclose(float(lk.get("focal_loss", **options)(y, x, sample_weight=np.ones(6))), plain, rtol=1e-6)


def test_focal_sample_weights_divide_by_the_class_weights_of_the_targets_kept(lk):
    import lossreg

    x, y = rng.normal(size=(6, 4)).astype("float32"), np.array([0, 1, 2, 3, 2, 0])
    s = rng.uniform(0.5, 2.0, size=6).astype("float32")
    per = np.asarray(lossreg.get("focal_loss", weight=W, ignore_index=3, reduction="none")(x, y))
    wy = np.where(y == 3, 0.0, np.array(W)[np.where(y == 3, 0, y)])
    got = float(lk.get("focal_loss", weight=W, ignore_index=3)(y, x, sample_weight=s))
    np.testing.assert_allclose(got, (s * per).sum() / (s * wy).sum(), rtol=1e-6)
