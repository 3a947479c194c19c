"""A JAX user's losses on several devices: a tensor-parallel LM head under ``jax.jit``.

Sharding needs several CPU devices, which JAX only makes if told before it starts: the checks run
in a subprocess with ``--xla_force_host_platform_device_count=4``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import lossreg
from lossreg import chunked

VOCAB_SPLIT = """
import os
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
import numpy as np, jax, jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import lossreg, lossreg.chunked

jax.config.update("jax_enable_x64", True)
mesh = Mesh(np.array(jax.devices()), ("model",))
split = NamedSharding(mesh, P("model"))  # the (V, D) head split over the vocabulary, 16 rows a device

# The weight gradient is added by blocks of rows (WEIGHT_GRAD_ELEMENTS // D of them: 16 here, as
# 2**20 // D is at a real head's size), in a scan of four chunks of 8 tokens.
lossreg.chunked.WEIGHT_GRAD_ELEMENTS = 256
rng = np.random.default_rng(0)
h, w = jnp.asarray(rng.normal(size=(32, 16))), jnp.asarray(rng.normal(size=(64, 16)))
t = jnp.asarray(rng.integers(0, 64, 32))
loss = lambda h, w, t: lossreg.linear_cross_entropy(h, w, t, chunk_size=8, label_smoothing=0.1)
step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
want, (want_h, want_w) = step(h, w, t)
value, (d_h, d_w) = step(h, jax.device_put(w, split), t)
np.testing.assert_allclose(value, want, rtol=1e-12)
np.testing.assert_allclose(d_h, want_h, rtol=1e-10, atol=1e-14)
np.testing.assert_allclose(d_w, want_w, rtol=1e-10, atol=1e-14)
assert d_w.sharding.is_equivalent_to(split, 2), d_w.sharding

# At a real head's size (V = 32000, D = 1024, 2048 tokens: the default 16 chunks of 128), each
# device's temporaries are two chunks of its quarter of the logits, not the whole weight gradient.
lossreg.chunked.WEIGHT_GRAD_ELEMENTS = 2**20
shapes = [jax.ShapeDtypeStruct((2048, 1024), jnp.float32),
          jax.ShapeDtypeStruct((32000, 1024), jnp.float32, sharding=split),
          jax.ShapeDtypeStruct((2048,), jnp.int32)]
head = lambda h, w, t: lossreg.linear_cross_entropy(h, w, t)
compiled = jax.jit(jax.value_and_grad(head, argnums=(0, 1))).lower(*shapes).compile()
temp, quarter = compiled.memory_analysis().temp_size_in_bytes, 32000 * 1024 * 4 // 4
assert temp < quarter, (temp, quarter)
print("ok")
"""


def test_linear_cross_entropy_keeps_a_vocabulary_split_head_split() -> None:
    """A head split over the vocabulary (``P("model")`` on its rows, automatic axes) gets its
    gradient split the same way, each device computing its rows' share, as optax's unfused
    ``softmax_cross_entropy_with_integer_labels(h @ w.T, t)`` does. The weight gradient's blocks
    of contiguous rows crossed the devices' runs of rows, and XLA gathered the whole (V, D)
    gradient on every device: 145 MiB of temporaries a device at V = 32000, D = 1024, where the
    unsplit call takes 32 MiB."""
    _runs_on_four_devices(VOCAB_SPLIT)


@pytest.mark.parametrize("v", [96, 100, 97])  # blocks of 16 and of 4 rows spread over the vocabulary; 97: contiguous
def test_linear_cross_entropy_weight_gradient_by_spread_blocks_is_the_portable_one(monkeypatch, jax_float64, v):
    """The blocks of rows the weight gradient is added by, spread over the vocabulary (rows i,
    i + k, ...), give the portable definition's value and gradients with every option."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    monkeypatch.setattr(chunked, "WEIGHT_GRAD_ELEMENTS", 96)  # 16 rows of D = 6
    rng = np.random.default_rng(v)
    h, w, b = (jnp.asarray(rng.normal(size=s)) for s in [(20, 6), (v, 6), (v,)])
    t = jnp.asarray(rng.integers(0, v, 20)).at[2].set(-100)
    for options in [{"label_smoothing": 0.1, "z_loss": 1e-2, "softcap": 3.0},
                    {"weight": jnp.asarray(rng.random(v) + 0.5), "label_smoothing": 0.2}, {"reduction": "none"}]:
        def loss(h, w, b, options=options):
            return jnp.sum(lossreg.linear_cross_entropy(h, w, t, linear_bias=b, chunk_size=6, **options))

        got = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(h, w, b)
        with lossreg.use_kernels(False):
            want = jax.value_and_grad(loss, argnums=(0, 1, 2))(h, w, b)
        for a, c in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12, err_msg=str(list(options)))


# Four CPU devices, a mesh of one explicit axis named as asked, log-probabilities of scores.
CTC_ON_FOUR = """
import os
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
import numpy as np, jax, jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P
import lossreg

def explicit_mesh(name):
    return jax.make_mesh((4,), (name,), axis_types=(jax.sharding.AxisType.Explicit,))

def log_softmax(x):
    return jnp.asarray(x - np.log(np.exp(x).sum(-1, keepdims=True)), jnp.float32)

rng = np.random.default_rng(0)
"""

CTC_TARGETS_SPLIT = CTC_ON_FOUR + """
mesh = explicit_mesh("b")
log_probs = log_softmax(rng.normal(size=(7, 8, 5)))
targets, lengths = rng.integers(1, 5, (8, 3)), (rng.integers(3, 8, 8), rng.integers(0, 4, 8))
plain = [jnp.asarray(a) for a in (targets, *lengths)]
split = [jax.device_put(a, NamedSharding(mesh, P("b", *[None] * (a.ndim - 1)))) for a in plain]
step = jax.jit(jax.value_and_grad(lambda x, *a: lossreg.ctc_loss(x, *a)))
want, want_grad = step(log_probs, *plain)
value, grad = step(log_probs, *split)  # the labels and lengths split over the batch, log_probs not
np.testing.assert_allclose(value, want, rtol=1e-6)
np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-6)
print("ok")
"""


def test_ctc_with_only_its_targets_split_over_explicit_axes() -> None:
    """Labels and lengths split over the batch on a mesh of explicit axes, log_probs replicated:
    CTC's emissions were picked from the flattened log_probs by indices built from the split
    labels, and JAX refused to flatten them ("This reshape is not supported"). They are now
    gathered along the class axis, as for split log_probs."""
    _runs_on_four_devices(CTC_TARGETS_SPLIT)


CTC_TIME_SPLIT = CTC_ON_FOUR + """
mesh = explicit_mesh("t")
log_probs = log_softmax(rng.normal(size=(8, 3, 5)))
targets, lengths = jnp.asarray(rng.integers(1, 5, (3, 3))), (jnp.asarray([8, 6, 5]), jnp.asarray([3, 2, 0]))
over_time = NamedSharding(mesh, P("t"))
unbatched = jnp.asarray(8), jnp.asarray(3)
step = jax.jit(jax.value_and_grad(lambda x, *a: lossreg.ctc_loss(x, *a)))
for kernels in (True, False):
    with lossreg.use_kernels(kernels):
        want, want_grad = step(log_probs, targets, *lengths)
        with jax.set_mesh(mesh):
            value, grad = step(jax.device_put(log_probs, over_time), targets, *lengths)
            one, one_grad = step(jax.device_put(log_probs[:, 0], over_time), targets[0], *unbatched)  # (T, C)
    np.testing.assert_allclose(value, want, rtol=1e-6)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-6)
    assert grad.sharding.is_equivalent_to(over_time, 3), grad.sharding
    np.testing.assert_allclose(one, lossreg.ctc_loss(log_probs[:, 0], targets[0], *unbatched), rtol=1e-6)
print("ok")
"""


def test_ctc_with_log_probs_split_over_time_on_explicit_axes() -> None:
    """log_probs split over its frames (T, axis 0) on a mesh of explicit axes: the recursion reads
    them one frame at a time, and JAX refused to slice a frame out of the split axis (a bare
    ShardingTypeError). The frames are now gathered whole, as a mesh of automatic axes does on
    its own: the same value and gradient, the gradient split over time like the input."""
    _runs_on_four_devices(CTC_TIME_SPLIT)


def _runs_on_four_devices(script: str) -> None:
    """``script`` run in a fresh interpreter (its XLA_FLAGS make 4 CPU devices), which prints "ok" last."""
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "LOSSREG_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    assert done.stdout.strip().splitlines()[-1] == "ok"
