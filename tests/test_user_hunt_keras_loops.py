"""A Keras 3 user's hunt of ``lossreg.keras`` in training written beyond compile/fit: custom
training loops, subclassed losses and models, distributions, callbacks; each finding kept as the
behaviour it now has.

Keras reads KERAS_BACKEND once, when it is first imported, so the checks run
``fixtures/keras_loops.py`` in a subprocess per backend.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from fixtures.keras_run import checks_passed

CHECKS = ["check_a_subclass_overriding_call_gives_its_own_value",
          "check_float_class_indices_are_read_as_keras_sparse_losses_read_them"]


@pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="the keras extra is not installed")
@pytest.mark.parametrize("keras_backend", ["jax", "torch"])
def test_keras_loops_hunt(keras_backend: str, tmp_path: Path) -> None:
    assert checks_passed("keras_loops.py", keras_backend, tmp_path) == CHECKS
