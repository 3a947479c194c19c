"""JAX as most of its users run it: x64 off, so float32 and int32 arrays only.

Every loss (built-in, and those of the two plugin packages) runs there eagerly, under ``jit`` and
under ``grad`` without a warning (asking JAX for int64 there warns, then truncates to int32), and
gives the x64 answer to float32 precision.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from torch_examples import NAMES, differentiable, example, plugins_registered

import lossreg

jax = pytest.importorskip("jax")
jnp = jax.numpy


@pytest.fixture(scope="module", autouse=True)
def _plugins():
    with plugins_registered():
        yield


def _narrow(v: np.ndarray) -> np.ndarray:
    """What a JAX user without x64 holds: float32 and int32."""
    v = np.asarray(v)
    return v.astype(np.float32) if v.dtype.kind == "f" else v.astype(np.int32) if v.dtype.kind in "iu" else v


def _loss_and_grad(name: str, inputs: dict, options: dict, diff: list[str]):
    arrays = [jnp.asarray(v) for v in inputs.values()]
    opts = {k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    loss = lossreg.get(name, **opts)
    argnums = tuple(i for i, k in enumerate(inputs) if k in diff)
    total = lambda *a: jnp.sum(loss(*a))  # noqa: E731
    eager = loss(*arrays)
    jitted = jax.jit(lambda *a: loss(*a))(*arrays)
    grads = jax.jit(jax.grad(total, argnums=argnums))(*arrays) if argnums else ()
    return eager, jitted, grads


@pytest.mark.parametrize("name", NAMES)
def test_without_x64_a_loss_warns_nothing_and_gives_the_x64_answer(name: str) -> None:
    inputs, options = example(name, seed=0)
    diff = differentiable(name, inputs)
    with jax.enable_x64(True):
        want, _, want_grads = _loss_and_grad(name, inputs, options, diff)
    narrow = {k: _narrow(v) for k, v in inputs.items()}
    narrow_options = {k: _narrow(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    with jax.enable_x64(False), warnings.catch_warnings():
        warnings.simplefilter("error")
        eager, jitted, grads = _loss_and_grad(name, narrow, narrow_options, diff)
    assert eager.dtype == jnp.float32 and jitted.dtype == jnp.float32
    np.testing.assert_allclose(eager, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(jitted, want, rtol=1e-4, atol=1e-5)
    for got, expected in zip(grads, want_grads, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-5)


def test_an_array_too_large_for_int32_indices_is_refused_rather_than_wrapped() -> None:
    from lossreg import toolkit
    from lossreg.errors import LossValueError

    with jax.enable_x64(False):
        assert toolkit.index_dtype("ctc_loss", "log_probs", jnp, 2**31 - 1) == jnp.int32
        with pytest.raises(LossValueError, match=r"ctc_loss.*log_probs.*at most 2147483647.*jax_enable_x64.*"
                                                 r"got indices up to 2147483648 \(shape \(1024, 2048, 1024\)\)"):
            toolkit.index_dtype("ctc_loss", "log_probs", jnp, 2**31, (1024, 2048, 1024))
    with jax.enable_x64(True):
        assert toolkit.index_dtype("ctc_loss", "log_probs", jnp, 2**40) == jnp.int64
