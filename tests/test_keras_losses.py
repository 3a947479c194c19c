"""lossreg.keras on the JAX and torch Keras backends, each in its own interpreter.

Keras reads KERAS_BACKEND once, when it is first imported, so each backend runs
``fixtures/keras_check.py`` in a subprocess: every loss against torch.nn (with and without
sample weights), the sample-weight rules, Keras masks, get_config/from_config and keras.saving, a real
``model.compile``/``fit``/``save``/``load_model``, and the error for tensors lossreg cannot read.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from fixtures.keras_run import checks_passed

if importlib.util.find_spec("keras") is None:  # not imported here: that would fix this process's Keras backend
    pytest.skip("the keras extra is not installed: pip install 'lossreg[keras]'", allow_module_level=True)

CHECKS = ["check_every_loss_equals_torch_nn", "check_sample_weight_rules", "check_keras_masks_leave_masked_steps_out",
          "check_config_and_saving",
          "check_fit_and_load_model", "check_fit_class_weight_is_torchs_class_weight",
          "check_unsupported_tensors_are_a_lossreg_error"]


@pytest.mark.parametrize("keras_backend", ["jax", "torch"])
def test_keras_losses_on_backend(keras_backend: str, tmp_path: Path) -> None:
    assert checks_passed("keras_check.py", keras_backend, tmp_path) == CHECKS
