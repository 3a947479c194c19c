"""Every loss (built-in, and those of the two plugin packages) inside JAX's transforms: jit, grad, vmap, sharding.

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
from torch_examples import NAMES, differentiable, example, plugins_registered

import lossreg

jax = pytest.importorskip("jax")
jnp = jax.numpy


pytestmark = pytest.mark.usefixtures("jax_float64")  # float64 in every test


@pytest.fixture(scope="module", autouse=True)
def _plugins():
    """The losses of the two plugin packages under plugins/ are checked too, installed or not."""
    with plugins_registered():
        yield

SAMPLES = 3


def _problem(name: str, seed: int) -> tuple[list, tuple[int, ...], dict]:
    """One loss call's arrays, the positions of the differentiable floating ones, and its options."""
    inputs, options = example(name, seed=seed)
    diff = differentiable(name, inputs)
    grads = tuple(i for i, k in enumerate(inputs) if k in diff)
    options = {k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    return [jnp.asarray(v) for v in inputs.values()], grads, options


@pytest.mark.parametrize("name", NAMES)
def test_jit_grad_and_vmap_give_the_plain_answer(name: str) -> None:
    arrays, differentiable, options = _problem(name, 0)
    loss = lossreg.get(name, **options)

    def value_and_grad(*a):
        """The loss (unreduced ones as they are) and the gradients of its sum."""
        (_, value), grads = jax.value_and_grad(lambda *b: (jnp.sum(out := loss(*b)), out), argnums=differentiable,
                                               has_aux=True)(*a)
        return value, grads

    problems = [_problem(name, seed)[0] for seed in range(SAMPLES)]  # same shapes, other values
    stacked = [jnp.stack(column) for column in zip(*problems)]
    # One compilation for both: the jitted call, and per-sample losses and gradients under vmap.
    jitted = jax.jit(lambda single, batch: (value_and_grad(*single), jax.vmap(value_and_grad)(*batch)))
    (jit_value, jit_grad), (values, grads) = jitted(arrays, stacked)

    eager_value, eager_grad = value_and_grad(*arrays)
    np.testing.assert_allclose(jit_value, eager_value, rtol=1e-12, atol=1e-14)
    for got, want in zip(jit_grad, eager_grad, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)
    for i, problem in enumerate(problems):  # the eager loop
        want_value, want_grad = value_and_grad(*problem)
        np.testing.assert_allclose(values[i], want_value, rtol=1e-12, atol=1e-14, err_msg=f"sample {i}")
        for got, want in zip(grads, want_grad, strict=True):
            np.testing.assert_allclose(got[i], want, rtol=1e-10, atol=1e-14, err_msg=f"sample {i} gradient")


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


@pytest.mark.parametrize("mode", ["automatic", "explicit"])  # two processes, which xdist may run side by side
def test_sharded_over_eight_cpu_devices(mode: str) -> None:
    script = Path(__file__).parent / "fixtures" / "jax_sharding.py"
    done = subprocess.run([sys.executable, str(script), mode], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    groups = ("batch axis", "class weights", "input alone", "class axis")
    groups += ("no context mesh",) if mode == "explicit" else ()
    assert done.stdout.split("\n")[:len(groups)] == [f"ok {axes} ({mode} axes)" for axes in groups]
