"""A Keras user moving a segmentation model's focal losses to lossreg-segmentation, checking each
swap against the Keras loss used before, as the plugin's README states it.

- Keras' ``CategoricalFocalCrossentropy`` takes one-hot (or soft) target rows, the
  ``keras.utils.to_categorical`` rows a Keras user has; ``focal_loss`` takes class indices only
  (the ``argmax`` of those rows), in its functional form and in ``lossreg.keras.FocalLoss`` alike,
  and has no soft targets nor ``label_smoothing``. The README's Keras row said nothing of it.
- Keras' ``BinaryFocalCrossentropy(label_smoothing=s)`` is ``binary_focal_loss`` of the smoothed
  targets ``t (1 - s) + s / 2``.

Keras reads KERAS_BACKEND once, when first imported: the Keras checks run in a subprocess.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import lossreg

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "plugins" / "lossreg-segmentation" / "README.md").read_text(encoding="utf-8")
needs_keras = pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="keras is not installed")


def _keras_row(loss: str, peer: str) -> str:
    return next(line for line in README.splitlines() if line.startswith(f"| `{loss}` | Keras `{peer}`"))


def _run_keras(code: str) -> str:
    """``code`` under Keras' JAX backend, with both plugins registered from their sources."""
    prelude = textwrap.dedent(f"""
        import sys, importlib, lossreg
        for name in ("extras", "segmentation"):
            sys.path.insert(0, {str(ROOT / "plugins")!r} + f"/lossreg-{{name}}/src")
            if name not in lossreg.registry().plugins:
                lossreg.register_plugin(importlib.import_module(f"lossreg_{{name}}"), name)
        import numpy as np, keras, lossreg.keras
    """)
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": path}
    done = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_focal_takes_class_indices_where_keras_categorical_focal_takes_one_hot_rows(segmentation):
    rng = np.random.default_rng(0)
    x, labels = rng.normal(size=(6, 4)), rng.integers(0, 4, size=6)
    one_hot = np.eye(4)[labels]
    # Keras' one-hot rows are refused, with lossreg's error naming the loss and the target ...
    with pytest.raises(lossreg.LossTypeError, match="focal_loss: argument 'target' expected integer class indices"):
        lossreg.focal_loss(x, one_hot)
    # ... their argmax is the target (the value is pinned against Keras in the plugin's test_peers.py).
    np.testing.assert_allclose(lossreg.focal_loss(x, one_hot.argmax(axis=1)), lossreg.focal_loss(x, labels))
    row = _keras_row("focal_loss", "CategoricalFocalCrossentropy")
    for said in ("one-hot (or soft) target rows", "class indices only", "`argmax`", "`LossTypeError`",
                 "`lossreg.keras.FocalLoss` refuses", "`label_smoothing`"):
        assert said in row, said


@needs_keras
def test_keras_focal_losses_of_one_hot_rows_and_label_smoothing_as_the_readme_says(segmentation):
    out = _run_keras("""
        rng = np.random.default_rng(1)
        x, labels = rng.normal(size=(8, 5)).astype("float32"), rng.integers(0, 5, size=8)
        one_hot = keras.utils.to_categorical(labels, 5)
        try:
            lossreg.keras.FocalLoss()(one_hot, x)
        except lossreg.LossError as error:
            print("refused", type(error).__name__)
        peer = keras.losses.CategoricalFocalCrossentropy(from_logits=True)
        print("argmax", float(peer(one_hot, x)),
              float(lossreg.keras.FocalLoss(weight=[0.25] * 5, reduction="sum")(one_hot.argmax(axis=1), x)) / 8)
        t, s = (rng.random((8, 5)) > 0.5).astype("float32"), 0.2
        peer = keras.losses.BinaryFocalCrossentropy(from_logits=True, apply_class_balancing=True, label_smoothing=s)
        print("smoothed", float(peer(t, x)), float(lossreg.keras.BinaryFocalLoss()(t * (1 - s) + s / 2, x)))
    """)
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    assert lines["refused"] in ("LossTypeError", "LossValueError")
    for key in ("argmax", "smoothed"):
        keras_value, lossreg_value = map(float, lines[key].split())
        np.testing.assert_allclose(lossreg_value, keras_value, rtol=1e-5)
    assert "`label_smoothing=s` is this loss of the smoothed targets `t (1 - s) + s / 2`" in \
        _keras_row("binary_focal_loss", "BinaryFocalCrossentropy")
