"""The Keras forms of the classification losses (``lossreg.keras``), as a Keras user trains with them.

Their "mean" is cross_entropy's: the sum over the non-ignored targets divided by their count, so
``sample_weight`` (what ``fit(class_weight=...)`` passes) must divide by the summed weights of
those targets, and all-ones weights must give the plain value.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

CLASSIFICATION = ["poly1_cross_entropy", "generalized_cross_entropy", "sparsemax_loss"]
rng = np.random.default_rng(11)


@pytest.fixture(scope="module")
def lk():
    os.environ.setdefault("KERAS_BACKEND", "numpy")  # losses only: Keras' NumPy backend computes them
    pytest.importorskip("keras", reason="Keras 3 is not installed (pip install keras)")
    import lossreg.keras

    return lossreg.keras


def inputs(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """float32 scores (N, C, ...) and class indices with two ignored targets (-100)."""
    x = rng.normal(size=shape).astype("float32")
    y = rng.integers(0, shape[1], size=(shape[0], *shape[2:]))
    y.reshape(-1)[[1, 4]] = -100
    return x, y


@pytest.mark.parametrize("shape", [(6, 4), (6, 4, 3)])
@pytest.mark.parametrize("name", CLASSIFICATION)
def test_unit_sample_weights_give_the_plain_loss(lk, name, shape):
    import lossreg

    x, y = inputs(shape)
    plain = float(lossreg.get(name)(x, y))
    loss = lk.get(name)
    np.testing.assert_allclose(float(loss(y, x)), plain, rtol=1e-6)
    np.testing.assert_allclose(float(loss(y, x, sample_weight=np.ones(shape[0]))), plain, rtol=1e-6)


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_sample_weights_divide_by_the_weights_of_the_targets_kept(lk, name):
    import lossreg

    x, y = inputs((6, 4))
    s = rng.uniform(0.5, 2.0, size=6).astype("float32")
    per = np.asarray(lossreg.get(name, reduction="none")(x, y))  # 0 where the target is ignored
    kept = (y != -100).astype("float32")
    np.testing.assert_allclose(float(lk.get(name)(y, x, sample_weight=s)), (s * per).sum() / (s * kept).sum(),
                               rtol=1e-6)
