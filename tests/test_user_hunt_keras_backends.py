"""A Keras 3 user's hunt of ``lossreg.keras`` on each Keras backend lossreg reads (JAX, torch, and
NumPy's, which computes losses for ``evaluate``/``predict``), each finding kept as the behaviour it
now has.

Keras reads KERAS_BACKEND once, when it is first imported, so the checks run
``fixtures/keras_backends.py`` in a subprocess per backend.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from fixtures.keras_run import checks_passed

KERAS_CHECKS = ["check_a_class_index_loss_without_a_reduction_option_is_computed_as_it_is",
                "check_class_weights_of_a_plugin_loss_given_as_a_list_are_read_by_the_mean",
                "check_a_keras_config_is_not_rebuilt_with_default_options_by_from_config"]
GRADIENT_CHECKS = ["check_class_weights_of_the_backend_are_traced_and_differentiated",
                   "check_a_layers_bias_as_linear_bias_trains_as_the_unfused_head"]


@pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="the keras extra is not installed")
@pytest.mark.parametrize("keras_backend", ["jax", "torch", "numpy"])
def test_keras_backends_hunt(keras_backend: str, tmp_path: Path) -> None:
    expected = KERAS_CHECKS + (GRADIENT_CHECKS if keras_backend != "numpy" else [])
    assert checks_passed("keras_backends.py", keras_backend, tmp_path) == expected
