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


def _pairs(n: int = 6, d: int = 4) -> tuple[np.ndarray, np.ndarray]:
    u = rng.normal(size=(n, d)).astype("float32")
    return u, (u + 0.5 * rng.normal(size=(n, d))).astype("float32")


@pytest.mark.parametrize("shape", [(6,), (6, 1), (12,)])
def test_nt_xent_takes_a_sample_weight_per_pair_for_both_of_its_losses(lk, shape):
    # NT-Xent gives 2N losses for N pairs (the input rows' first), where Keras's sample weights
    # (fit's, class_weight's) are one per row of y_pred: (N,) and (N, 1) were a LossValueError
    # asking for (2N,), so NTXentLoss could not take fit(sample_weight=...) at all, nor all-ones
    # weights. A pair's weight weighs both of its losses; (2N,), one per loss, as before.
    import lossreg

    u, v = _pairs()
    s = np.array([1.0, 0.0, 2.0, 1.0, 1.0, 0.5], dtype="float32")
    per = np.asarray(lossreg.nt_xent_loss(u, v, reduction="none"))
    w = s.reshape(shape) if shape[0] == 6 else np.concatenate([s, s])
    loss = lk.NTXentLoss()
    np.testing.assert_allclose(float(loss(v, u, sample_weight=w)), (np.r_[s, s] * per).mean(), rtol=1e-6)
    ones = np.ones(shape, dtype="float32")
    np.testing.assert_allclose(float(loss(v, u, sample_weight=ones)), float(lossreg.nt_xent_loss(u, v)), rtol=1e-6)
    got = lk.NTXentLoss(reduction="none")(v, u, sample_weight=w)
    np.testing.assert_allclose(np.asarray(got), np.r_[s, s] * per, rtol=1e-6)


def test_nt_xent_names_both_sample_weight_shapes_it_takes(lk):
    import lossreg

    u, v = _pairs()
    with pytest.raises(lossreg.LossValueError, match=r"\(12,\), each axis of that length or 1, or \(6,\): one per "
                                                     r"sample, for each of its 2 views, got shape \(5,\)"):
        lk.NTXentLoss()(v, u, sample_weight=np.ones(5))


FIT = """
import numpy as np, keras, lossreg, lossreg.keras
rng = np.random.default_rng(0)
u = rng.normal(size=(6, 4)).astype("float32"); v = (u + 0.5 * rng.normal(size=(6, 4))).astype("float32")
s = np.array([1.0, 0.0, 2.0, 1.0, 1.0, 0.5], dtype="float32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4)])
model.compile(optimizer="sgd", loss=lossreg.keras.NTXentLoss())
per = np.asarray(lossreg.nt_xent_loss(np.asarray(model.predict(u, verbose=0)), v, reduction="none"))
got = model.evaluate(u, v, sample_weight=s, batch_size=6, verbose=0)
np.testing.assert_allclose(got, (np.r_[s, s] * per).mean(), rtol=1e-5)
model.fit(u, v, sample_weight=s, batch_size=6, epochs=2, verbose=0)
print("ok")
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_nt_xent_trains_in_fit_with_sample_weights(backend):
    # Keras reads KERAS_BACKEND once per process: each backend in its own interpreter.
    import subprocess
    import sys

    pytest.importorskip(backend)
    pytest.importorskip("keras")
    done = subprocess.run([sys.executable, "-c", FIT], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "KERAS_BACKEND": backend})
    assert done.stdout.strip().endswith("ok"), done.stderr[-2000:]
