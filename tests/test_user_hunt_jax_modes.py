"""JAX users' global modes and transforms around lossreg's JAX kernels.

A JAX training stack may run with ``jax_numpy_dtype_promotion="strict"`` (no implicit promotion
between float16, bfloat16 and float32) and with half-precision parameters. lossreg computes half
precision in float32 internally and casts explicitly, so every loss and its gradient must run in
that mode and give what the standard mode gives.
"""

from __future__ import annotations

import numpy as np
import pytest

import lossreg

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")


@pytest.mark.parametrize("options", [[], ["linear_bias", "weight"]], ids=["plain", "bias-and-class-weights"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_linear_cross_entropy_half_precision_gradient_under_strict_dtype_promotion(dtype: str, reduction: str,
                                                                                  options: list[str]) -> None:
    """The JAX kernel's backward pass of "mean" and "sum" multiplied its float32 gradients by the
    incoming cotangent, which comes in the loss's dtype (float16 or bfloat16): under strict
    promotion ``jax.grad`` raised JAX's TypePromotionError from inside lossreg. It now gives the
    standard mode's gradient, in the inputs' dtype, equal to the portable definition's (the class
    weights' gradient, taken with the cotangent as it came, included)."""
    rng = np.random.default_rng(0)
    h = jnp.asarray(rng.standard_normal((6, 3)), dtype)
    w = jnp.asarray(rng.standard_normal((5, 3)), dtype)
    arrays = {"linear_bias": jnp.asarray(rng.standard_normal(5), dtype),
              "weight": jnp.asarray(rng.random(5) + 0.5, dtype)}
    t = jnp.asarray([0, 1, 2, 3, 4, -100])
    free = [h, w, *(arrays[k] for k in options)]
    argnums = tuple(range(len(free)))

    def total(h, w, *opts):
        loss = lossreg.linear_cross_entropy(h, w, t, reduction=reduction, ignore_index=-100, **dict(zip(options, opts)))
        return jnp.sum(loss).astype(jnp.float32)

    with jax.numpy_dtype_promotion("strict"):
        strict = jax.grad(total, argnums=argnums)(*free)
        jitted = jax.jit(jax.grad(total, argnums=argnums))(*free)
    standard = jax.grad(total, argnums=argnums)(*free)
    with lossreg.use_kernels(False):
        portable = jax.grad(total, argnums=argnums)(*free)
    for got, jit_got, want, ref in zip(strict, jitted, standard, portable):
        assert got.dtype == jnp.dtype(dtype) and jit_got.dtype == jnp.dtype(dtype)
        np.testing.assert_array_equal(np.asarray(got, np.float32), np.asarray(want, np.float32))
        np.testing.assert_array_equal(np.asarray(jit_got, np.float32), np.asarray(want, np.float32))
        np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(ref, np.float32), rtol=2e-2, atol=2e-3)
