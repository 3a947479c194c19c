"""JAX and Keras 3 users' hunt: what a demanding user of ``jax`` transforms and of ``lossreg.keras``
(on the JAX and torch Keras backends) found wrong, each kept as the behaviour it now has.

Keras reads KERAS_BACKEND once, when it is first imported, so the Keras checks run
``fixtures/keras_users.py`` in a subprocess per backend.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from fixtures.keras_run import checks_passed

KERAS_CHECKS = ["check_half_precision_weighted_means_are_summed_in_float32"]


@pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="the keras extra is not installed")
@pytest.mark.parametrize("keras_backend", ["jax", "torch"])
def test_keras_users_on_backend(keras_backend: str, tmp_path: Path) -> None:
    assert checks_passed("keras_users.py", keras_backend, tmp_path) == KERAS_CHECKS


@pytest.mark.parametrize("x64", [False, True], ids=["float32", "float64"])
def test_bce_at_probabilities_of_exactly_0_makes_no_nan_for_jax_debug_nans(x64: bool) -> None:
    """BCE clamps its logs at -100, as torch does, so a probability of exactly 0 (a float32 sigmoid
    below -88, a clipped output) has a finite loss and gradient. Under ``jax_debug_nans`` with jit
    disabled, the mode that checks every operation's output to find where a NaN is made, no
    operation may make one: the log's stand-in for x = 0 was the smallest subnormal number, which
    XLA flushes to 0, so the gradient of the discarded log was 0 / 0 and JAX raised
    FloatingPointError "invalid value (nan) encountered in div" inside lossreg, where there is no
    NaN. The value is torch's; the gradient is the clamped loss's (README: torch's formula differs
    at 0 and 1)."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    import lossreg

    x = np.array([0.0, 0.0, 1.0, 1.0, 0.5])
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0])
    with jax.enable_x64(x64), jax.debug_nans(True), jax.disable_jit():
        value, grad = jax.value_and_grad(
            lambda x: lossreg.binary_cross_entropy(x, jnp.asarray(y), reduction="sum"))(jnp.asarray(x))
    np.testing.assert_allclose(float(value), 200.0 + np.log(2.0), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(grad), [0.0, 1.0, 0.0, -1.0, -2.0], rtol=1e-6)
