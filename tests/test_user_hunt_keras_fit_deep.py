"""A Keras 3 user's hunt deep inside training with ``lossreg.keras`` (callbacks, metrics, saving,
masks and weights), each kept as the behaviour it now has, on the JAX and torch Keras backends.

Keras reads KERAS_BACKEND once, when it is first imported, so the checks run
``fixtures/keras_fit_deep.py`` in a subprocess per backend.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from fixtures.keras_run import checks_passed

KERAS_CHECKS = ["check_a_loss_as_a_metric_is_minimised_by_early_stopping_and_checkpoints",
                "check_boolean_multi_hot_labels_are_cast_as_keras_casts_them"]


@pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="the keras extra is not installed")
@pytest.mark.parametrize("keras_backend", ["jax", "torch"])
def test_keras_fit_deep_on_backend(keras_backend: str, tmp_path: Path) -> None:
    assert checks_passed("keras_fit_deep.py", keras_backend, tmp_path) == KERAS_CHECKS
