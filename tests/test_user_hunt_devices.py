"""Where arrays live: every loss keeps its result where its inputs are, and makes the arrays it
needs (aranges, masks, class weights given as lists) where they meet its inputs.

JAX makes several CPU devices only if told before it starts, so its checks run in a subprocess
with ``--xla_force_host_platform_device_count=2``.

Bugs this file found: a JAX user who commits one argument to a device (the model's output, or
labels put there with ``jax.device_put``) and passes the others as ``jnp.asarray`` makes them
(uncommitted), which JAX moves to meet the committed one and lossreg's device check lets pass,
got a bare JAX "Received incompatible devices for jitted computation" from ``multi_margin_loss``,
``multilabel_margin_loss``, ``ctc_loss`` and ``linear_cross_entropy`` (portable forms), the
plugins' ``sparsemax_loss``, and class forms given a list ``weight``: the arange, mask or list made
inside was made on the uncommitted argument's device with ``device=``, which commits it there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("jax")

ROOT = Path(__file__).resolve().parent.parent

ONE_ARGUMENT_COMMITTED = """
import os
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np, jax, jax.numpy as jnp
import lossreg
from strategies import make_good

jax.config.update("jax_enable_x64", True)
d0, d1 = jax.devices()
rng = np.random.default_rng(0)
# Each call once with the named argument committed to the second device, the others uncommitted:
# the result is there (where jnp's own operations put it), with the value of the call on one device.
calls = [(name, arg, {}) for name, arg in [
    ("multi_margin_loss", "target"), ("multilabel_margin_loss", "target"), ("ctc_loss", "targets"),
    ("ctc_loss", "input_lengths"), ("ctc_loss", "target_lengths"), ("linear_cross_entropy", "linear_weight"),
    ("linear_cross_entropy", "target"), ("cross_entropy", "target")]]
calls += [("linear_cross_entropy", "target", {"chunk_size": 2, "z_loss": 1e-3, "label_smoothing": 0.1})]
for name, arg, options in calls:
    inputs = make_good(name, n=6).inputs
    for kernels in (True, False):
        with lossreg.use_kernels(kernels):
            want = getattr(lossreg, name)(*map(jnp.asarray, inputs.values()), reduction="none", **options)
            given = [jax.device_put(jnp.asarray(v), d1) if k == arg else jnp.asarray(v) for k, v in inputs.items()]
            got = getattr(lossreg, name)(*given, reduction="none", **options)
        assert got.devices() == {d1}, (name, arg, kernels, got.devices())
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12)

# A class form's list option is made where the inputs meet too.
x, t = rng.normal(size=(6, 3)), rng.integers(0, 3, 6)
got = lossreg.MultiMarginLoss(weight=[1.0, 2.0, 3.0])(jnp.asarray(x), jax.device_put(jnp.asarray(t), d1))
want = lossreg.MultiMarginLoss(weight=[1.0, 2.0, 3.0])(jnp.asarray(x), jnp.asarray(t))
assert got.devices() == {d1}, got.devices()
np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12)

# Two committed devices still do not meet: lossreg's error names the loss and the argument.
try:
    lossreg.multi_margin_loss(jax.device_put(jnp.asarray(x), d0), jax.device_put(jnp.asarray(t), d1))
except lossreg.LossValueError as e:
    assert str(e).startswith("multi_margin_loss: argument 'target'"), e
else:
    raise AssertionError("two committed devices were mixed")
print("ok")
"""


def test_one_argument_committed_to_a_jax_device_draws_the_call_there() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", ONE_ARGUMENT_COMMITTED, str(ROOT / "tests")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
