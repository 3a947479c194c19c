"""JAX and Keras 3 users' hunt: what a demanding user of ``jax`` transforms and of ``lossreg.keras``
(on the JAX and torch Keras backends) found wrong, each kept as the behaviour it now has.

Keras reads KERAS_BACKEND once, when it is first imported, so the Keras checks run
``fixtures/keras_users.py`` in a subprocess per backend.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from fixtures.keras_run import checks_passed

KERAS_CHECKS = ["check_half_precision_weighted_means_are_summed_in_float32"]


@pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="the keras extra is not installed")
@pytest.mark.parametrize("keras_backend", ["jax", "torch"])
def test_keras_users_on_backend(keras_backend: str, tmp_path: Path) -> None:
    assert checks_passed("keras_users.py", keras_backend, tmp_path) == KERAS_CHECKS
