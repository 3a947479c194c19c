"""Every registered loss inside JAX's transforms: jit, grad, vmap, and arrays sharded over devices.

A transformed loss must give the plain answer: ``jax.jit`` the eager value and gradient,
``jax.vmap`` (per-sample losses and per-sample gradients) the Python loop over the samples.
Sharding needs 8 CPU devices, which JAX only makes if told before it starts: that part runs
``fixtures/jax_sharding.py`` in a subprocess.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from strategies import make_good

import lossreg

jax = pytest.importorskip("jax")
jnp = jax.numpy


@pytest.fixture(autouse=True)
def float64():
    """float64 within each test only (thread-local): the other tests' JAX is left as it was."""
    with jax.enable_x64(True):
        yield

SAMPLES = 3


def _problem(name: str, seed: int) -> tuple[list, int]:
    """One loss call's arrays, and the position of the first differentiable one."""
    inputs = make_good(name, seed=seed).inputs
    return [jnp.asarray(v) for v in inputs.values()], list(inputs).index(lossreg.spec(name).differentiable[0])


@pytest.mark.parametrize("name", lossreg.names())
def test_jit_grad_and_vmap_give_the_plain_answer(name: str) -> None:
    loss = lossreg.get(name)
    arrays, first = _problem(name, 0)
    value_and_grad = jax.value_and_grad(lambda *a: loss(*a), argnums=first)

    problems = [_problem(name, seed)[0] for seed in range(SAMPLES)]  # same shapes, other values
    stacked = [jnp.stack(column) for column in zip(*problems)]
    # One compilation for both: the jitted call, and per-sample losses and gradients under vmap.
    jitted = jax.jit(lambda single, batch: (value_and_grad(*single), jax.vmap(value_and_grad)(*batch)))
    (jit_value, jit_grad), (values, grads) = jitted(arrays, stacked)

    eager_value, eager_grad = value_and_grad(*arrays)
    np.testing.assert_allclose(jit_value, eager_value, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(jit_grad, eager_grad, rtol=1e-10, atol=1e-14)
    for i, problem in enumerate(problems):  # the eager loop
        want_value, want_grad = value_and_grad(*problem)
        np.testing.assert_allclose(values[i], want_value, rtol=1e-12, atol=1e-14, err_msg=f"sample {i}")
        np.testing.assert_allclose(grads[i], want_grad, rtol=1e-10, atol=1e-14, err_msg=f"sample {i} gradient")


def test_vmap_of_unreduced_losses_over_a_batch_of_single_samples() -> None:
    """The per-sample pattern: vmap a one-sample loss over the batch, as optax users write it."""
    x, y = jnp.asarray(np.random.default_rng(0).normal(size=(5, 4))), jnp.asarray([0, 3, 1, 2, 3])
    one = lambda xi, yi: lossreg.cross_entropy(xi, yi)  # noqa: E731  (C) input, () target
    per_sample, grads = jax.jit(jax.vmap(jax.value_and_grad(one)))(x, y)
    whole = jax.jit(jax.value_and_grad(lambda x: lossreg.cross_entropy(x, y, reduction="sum")))
    np.testing.assert_allclose(per_sample, jax.jit(lambda x: lossreg.cross_entropy(x, y, reduction="none"))(x),
                               rtol=1e-12)
    np.testing.assert_allclose(per_sample.sum(), whole(x)[0], rtol=1e-12)
    np.testing.assert_allclose(grads, whole(x)[1], rtol=1e-12)


def test_sharded_over_eight_cpu_devices() -> None:
    script = Path(__file__).parent / "fixtures" / "jax_sharding.py"
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    assert done.stdout.split("\n")[:2] == ["ok batch axis", "ok class axis"]
