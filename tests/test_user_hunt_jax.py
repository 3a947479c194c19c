"""A JAX user's sharded arrays outside ``jax.jit`` and inside ``shard_map``, and an older Array API standard.

Sharding needs several CPU devices, which JAX only makes if told before it starts: those checks
run in a subprocess with ``--xla_force_host_platform_device_count=4``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import lossreg

SHARDED = """
import os, sys
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
import numpy as np, jax, jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import lossreg

mesh = Mesh(np.array(jax.devices()), ("b",))
on = lambda a, *spec: jax.device_put(a, NamedSharding(mesh, P(*spec)))
rng = np.random.default_rng(0)
x, y = jnp.asarray(rng.normal(size=(8, 3)), jnp.float32), jnp.asarray(rng.integers(0, 3, 8))
weight = jnp.asarray([1.0, 2.0, 0.5])      # uncommitted, as jnp.asarray makes it: JAX moves it
logits = jnp.asarray(rng.normal(size=(7, 8, 5)), jnp.float32)
log_probs = jax.nn.log_softmax(logits)
targets, lengths = jnp.asarray(rng.integers(1, 5, (8, 3))), jnp.full((8,), 7)

def same(got, want, what):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6, err_msg=what)  # float32

def check_eager():
    # Each call as jax.jit takes it, and as it is without sharding.
    calls = {
        "cross_entropy with jnp.asarray class weights": (lossreg.cross_entropy, (on(x, "b"), on(y, "b")),
                                                          {"weight": weight}),
        "ctc_loss, log-probabilities (T, N, C) and targets (N, S) split over N":
            (lossreg.ctc_loss, (on(log_probs, None, "b"), on(targets, "b"), on(lengths, "b"), on(lengths // 3, "b")), {}),
        "multi_margin_loss over 3 classes": (lossreg.multi_margin_loss, (on(x, "b"), on(y, "b")), {}),
        "multilabel_margin_loss over 3 classes": (lossreg.multilabel_margin_loss,
                                                  (on(x, "b"), on(jnp.where(x > 0, jnp.arange(3), -1), "b")), {}),
    }
    for what, (loss, arrays, options) in calls.items():
        plain = [jnp.asarray(np.asarray(a)) for a in arrays]
        same(loss(*arrays, **options), loss(*plain, **options), what)
        same(jax.jit(lambda *a: loss(*a, **options))(*arrays), loss(*plain, **options), what + " under jit")
    # Arrays committed to different devices are still refused, with lossreg's error.
    try:
        lossreg.mse_loss(jax.device_put(x, jax.devices()[1]), jax.device_put(x, jax.devices()[2]))
    except lossreg.LossValueError as error:
        assert "mse_loss" in str(error) and "'target'" in str(error), error
    else:
        raise AssertionError("arrays on two devices were accepted")
    print("ok eager")

def check_shard_map():
    # Per-device sums of linear_cross_entropy, added up with psum: the loss and the gradients of
    # the split hidden states and of the replicated weight are the unsplit ones.
    h, w = jnp.asarray(rng.normal(size=(8, 4)), jnp.float32), jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)
    t = jnp.asarray(rng.integers(0, 5, 8))
    local = lambda h, w, t: jax.lax.psum(lossreg.linear_cross_entropy(h, w, t, reduction="sum"), "b")
    split = jax.shard_map(local, mesh=mesh, in_specs=(P("b"), P(), P("b")), out_specs=P())
    whole = lambda h, w, t: lossreg.linear_cross_entropy(h, w, t, reduction="sum")
    same(jax.jit(split)(h, w, t), whole(h, w, t), "value")
    got = jax.jit(jax.grad(split, argnums=(0, 1)))(h, w, t)
    want = jax.grad(whole, argnums=(0, 1))(h, w, t)
    same(got[0], want[0], "gradient of the hidden states")
    same(got[1], want[1], "gradient of the replicated weight")
    print("ok shard_map")

{"eager": check_eager, "shard_map": check_shard_map}[sys.argv[1]]()
"""


def _run(what: str) -> None:
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed")
    done = subprocess.run([sys.executable, "-c", SHARDED, what], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "LOSSREG_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    assert done.stdout.strip().splitlines()[-1] == f"ok {what}"


def test_sharded_jax_arrays_called_eagerly_give_what_jit_gives() -> None:
    """Arrays on one set of devices meet however each is split over it, and an uncommitted one (made
    by ``jnp.asarray``) is moved by JAX, as under ``jax.jit``; new arrays the loss makes (class
    indices, say) are not given a sharding that cannot fit their shape."""
    _run("eager")


def test_linear_cross_entropy_inside_shard_map_with_a_replicated_weight() -> None:
    """The JAX kernel's scan carry and custom VJP have the types shard_map checks."""
    pytest.importorskip("jax").shard_map  # noqa: B018  (jax.shard_map: JAX >= 0.7)
    _run("shard_map")


def test_array_api_strict_at_an_older_standard_is_a_lossreg_error() -> None:
    """lossreg is written against the 2024.12 standard; array-api-strict set to an older one gets
    lossreg's error saying so, not an AttributeError from inside a loss."""
    xs = pytest.importorskip("array_api_strict")
    x, y = xs.asarray(np.array([[0.5, -1.0, 2.0]])), xs.asarray(np.array([2]))
    try:
        xs.set_array_api_strict_flags(api_version="2023.12")
        with pytest.raises(lossreg.LossTypeError, match=r"cross_entropy: argument 'input' expected arrays of the "
                                                        r"Array API standard 2024\.12 or later.*got array_api_strict "
                                                        r"arrays of standard 2023\.12"):
            lossreg.cross_entropy(x, y)
        xs.set_array_api_strict_flags(api_version="2024.12")
        assert abs(float(lossreg.cross_entropy(x, y)) - 0.2413113) < 1e-6  # log(e^0.5 + e^-1 + e^2) - 2
    finally:
        xs.reset_array_api_strict_flags()
