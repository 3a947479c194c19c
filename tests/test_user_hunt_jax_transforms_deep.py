"""JAX transformations beyond jit, grad and vmap, as a demanding JAX user reaches for them: export
with symbolic shapes, with the JAX kernels on and off (``lossreg.use_kernels(False)``).
"""

from __future__ import annotations

import numpy as np
import pytest

import lossreg

jax = pytest.importorskip("jax")
jnp = jax.numpy


pytestmark = pytest.mark.usefixtures("jax_float64")  # float64 in every test


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "portable"])
@pytest.mark.parametrize("axes", [("b",), (2, "b")], ids=["(N, D)", "(B, T, D)"])
def test_linear_cross_entropy_export_with_a_symbolic_token_count_is_lossregs_refusal(kernels: bool,
                                                                                     axes: tuple) -> None:
    # The portable path looped over chunks with range(0, n, step) on JAX's symbolic size: a bare
    # "TypeError: '_DimExpr' object cannot be interpreted as an integer" from inside the loss (the
    # kernel: JAX's InconclusiveDimensionOperation). Both paths plan chunks from the token count,
    # so both refuse it the same way, naming the way out; the logits' cross_entropy exports.
    from jax import export

    (b,) = export.symbolic_shape("b")
    lead = tuple(b if d == "b" else d for d in axes)  # the tokens' axes, "b" symbolic
    hidden, weight = jax.ShapeDtypeStruct((*lead, 3), jnp.float64), jax.ShapeDtypeStruct((5, 3), jnp.float64)
    target = jax.ShapeDtypeStruct(lead, jnp.int64)
    with lossreg.use_kernels(kernels), pytest.raises(
            lossreg.UnsupportedError, match=r"linear_cross_entropy: argument 'input' of shape .* has a symbolic number "
                                            r"of tokens .*export it at a fixed size"):
        export.export(jax.jit(lossreg.linear_cross_entropy))(hidden, weight, target)

    def unfused(h, w, t):
        return lossreg.cross_entropy(jnp.reshape(h @ w.T, (-1, 5)), jnp.reshape(t, (-1,)))

    # Not serialized: that needs flatbuffers, which JAX does not require (test_user_hunt_deploy covers it).
    exported = export.export(jax.jit(unfused))(hidden, weight, target)
    rng = np.random.default_rng(0)
    for n in (4, 7):
        shape = tuple(n if d == "b" else d for d in axes)
        h, w = jnp.asarray(rng.normal(size=(*shape, 3))), jnp.asarray(rng.normal(size=(5, 3)))
        t = jnp.asarray(rng.integers(0, 5, shape))
        with lossreg.use_kernels(kernels):
            np.testing.assert_allclose(exported.call(h, w, t), lossreg.linear_cross_entropy(h, w, t), rtol=1e-12)
