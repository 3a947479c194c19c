"""The claims lossreg makes to its users, checked as worded: the docs site's equivalence tables
(``lossreg/docsite/equivalents.py``) and the README.

What this file pins:

- ``keras.losses.CTC`` (Keras 3) takes logits, blank = class 0 and labels padded with 0, and averages
  over the batch: the docs' mapping used to say probabilities with the blank last (tf.keras'
  ``ctc_batch_cost``), which gives another number; the equality the mapping now states is evaluated
  as written.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

from lossreg.docsite import equivalents

ENV = {**os.environ, "LOSSREG_DISABLE_PLUGIN_AUTOLOAD": "1", "KERAS_BACKEND": "jax"}

KERAS_CTC = """
import json, sys
import jax, keras, numpy as np
import lossreg
rng = np.random.default_rng(0)
N, T, C, S = 4, 11, 6, 5
z = rng.normal(size=(N, T, C))                       # logits, batch-major
y = rng.integers(1, C, size=(N, S))                  # labels 1..C-1, padded with 0 (Keras' blank)
y[1, 3:] = 0
y[2, 1:] = 0
y[3, 2] = y[3, 1]                                    # a repeated label
log_softmax = lambda a: np.asarray(jax.nn.log_softmax(a, axis=-1))
claim = sys.argv[1]
left, right = claim.split(" == ")
names = {"CTC": keras.losses.CTC, "ctc_loss": lossreg.ctc_loss, "log_softmax": log_softmax,
         "y": y, "z": z, "N": N, "T": T}
per_sequence = np.asarray(keras.losses.CTC(reduction=None)(y, z), float)
print(json.dumps({"left": float(eval(left, names)), "right": float(eval(right, names)),
                  "keras_none": per_sequence.tolist(),
                  "lossreg_none": np.asarray(lossreg.ctc_loss(log_softmax(z).transpose(1, 0, 2), y, [T] * N,
                                                              (y != 0).sum(1), reduction="none")).tolist()}))
"""


def test_keras_ctc_mapping_states_logits_blank_0_and_its_equality_holds_as_written() -> None:
    if importlib.util.find_spec("keras") is None or importlib.util.find_spec("jax") is None:
        pytest.skip("keras and jax are not installed")
    mapping = equivalents.KERAS["ctc_loss"].mapping
    assert "probabilities" not in mapping and "last class" not in mapping  # tf.keras' ctc_batch_cost, not Keras 3
    stated = [span for span in re.findall(r"`([^`]*)`", mapping) if " == " in span]
    assert len(stated) == 1, mapping  # the mapping gives the equality to check
    done = subprocess.run([sys.executable, "-c", KERAS_CTC, stated[0]], capture_output=True, text=True, env=ENV,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["left"] == pytest.approx(got["right"], rel=1e-5)  # Keras computes in float32
    assert got["keras_none"] == pytest.approx(got["lossreg_none"], rel=1e-5)
