"""A Keras 3 user's hunts deep inside training with ``lossreg.keras``: callbacks, metrics, saving,
masks and weights (``fixtures/keras_fit_deep.py``), and training written beyond compile/fit,
custom loops, subclassed losses and models (``fixtures/keras_loops.py``); each finding kept as the
behaviour it now has, on the JAX and torch Keras backends.

Keras reads KERAS_BACKEND once, when it is first imported, so each fixture runs in a subprocess
per backend.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from fixtures.keras_run import checks_passed

# Each fixture script and the checks it must pass, in order.
HUNTS = {
    "keras_fit_deep.py": ["check_a_loss_as_a_metric_is_minimised_by_early_stopping_and_checkpoints",
                          "check_boolean_multi_hot_labels_are_cast_as_keras_casts_them"],
    "keras_loops.py": ["check_a_subclass_overriding_call_gives_its_own_value",
                       "check_float_class_indices_are_read_as_keras_sparse_losses_read_them"],
}


@pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="the keras extra is not installed")
@pytest.mark.parametrize("keras_backend", ["jax", "torch"])
@pytest.mark.parametrize("script", sorted(HUNTS))
def test_keras_hunt_on_backend(script: str, keras_backend: str, tmp_path: Path) -> None:
    assert checks_passed(script, keras_backend, tmp_path) == HUNTS[script]
