"""A JAX engineer's training stack around lossreg: per-example gradients, options differentiated
as arrays, compiled training loops, ahead-of-time compilation and export.
"""

from __future__ import annotations

import numpy as np
import pytest

import lossreg

jax = pytest.importorskip("jax")
jnp = jax.numpy


pytestmark = pytest.mark.usefixtures("jax_float64")  # float64 in every test


def _lce_problem():
    rng = np.random.default_rng(0)
    h, w = jnp.asarray(rng.normal(size=(6, 3))), jnp.asarray(rng.normal(size=(5, 3)))
    return h, w, jnp.asarray([0, 4, 2, 1, 3, -100]), jnp.asarray([1.0, 2.0, 0.5, 1.5, 3.0])


@pytest.mark.parametrize("options", [{}, {"reduction": "sum"}, {"reduction": "none"}, {"label_smoothing": 0.2},
                                     {"softcap": 2.0, "chunk_size": (2, 2)}])
def test_linear_cross_entropy_class_weight_gradient_is_the_portable_one_not_zero(options: dict) -> None:
    # The JAX kernel's custom_vjp returned a zero gradient for the class weights, where the portable
    # definition (and cross_entropy on the same logits) give the real one.
    h, w, t, cw = _lce_problem()

    def total(cw):
        return jnp.sum(lossreg.linear_cross_entropy(h, w, t, weight=cw, ignore_index=-100, **options))

    got, jitted = jax.grad(total)(cw), jax.jit(jax.grad(total))(cw)
    with lossreg.use_kernels(False):
        want = jax.grad(total)(cw)
    assert np.all(np.asarray(want) != 0)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(jitted, want, rtol=1e-10, atol=1e-12)
    if "softcap" not in options:  # the same loss through the logits
        logits = jax.grad(lambda cw: jnp.sum(lossreg.cross_entropy(h @ w.T, t, weight=cw, ignore_index=-100,
                                                                   **options)))(cw)
        np.testing.assert_allclose(got, logits, rtol=1e-10, atol=1e-12)


def test_linear_cross_entropy_class_weights_leave_the_other_gradients_as_they_were() -> None:
    # The class weights' cotangent is computed beside the others: those must not change.
    h, w, t, cw = _lce_problem()
    f = lambda h, w, cw: lossreg.linear_cross_entropy(h, w, t, weight=cw, ignore_index=-100)  # noqa: E731
    got = jax.grad(f, argnums=(0, 1, 2))(h, w, cw)
    with lossreg.use_kernels(False):
        want = jax.grad(f, argnums=(0, 1, 2))(h, w, cw)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def _ctc_problem(n: int):
    rng = np.random.default_rng(n)
    log_probs = jax.nn.log_softmax(jnp.asarray(rng.normal(size=(7, n, 4))))
    return (log_probs, jnp.asarray(rng.integers(1, 4, (n, 3))), jnp.full((n,), 7), jnp.asarray(np.arange(n) % 4))


def _multilabel_problem(n: int):
    rng = np.random.default_rng(n)
    labels = np.full((n, 3), -1)
    for r in range(n):
        labels[r, : r % 4] = rng.permutation(3)[: r % 4]
    return jnp.asarray(rng.normal(size=(n, 3))), jnp.asarray(labels)


@pytest.mark.parametrize("x64", [True, False])
@pytest.mark.parametrize(("name", "problem", "axes"), [("ctc_loss", _ctc_problem, (1, 0, 0, 0)),
                                                        ("multilabel_margin_loss", _multilabel_problem, (0, 0))])
def test_jax_export_with_a_symbolic_batch_size(name: str, problem, axes: tuple[int, ...], x64: bool) -> None:
    # The int32-index size check compared the symbolic size with a number: JAX raised
    # InconclusiveDimensionOperation instead of exporting the loss.
    from jax import export

    loss = getattr(lossreg, name)
    with jax.enable_x64(x64):
        (b,) = export.symbolic_shape("b")
        specs = []
        for a, axis in zip(problem(4), axes, strict=True):
            shape = list(a.shape)
            shape[axis] = b
            specs.append(jax.ShapeDtypeStruct(tuple(shape), a.dtype))
        exported = export.export(jax.jit(loss))(*specs)
        for n in (4, 6):
            arrays = problem(n)
            np.testing.assert_allclose(exported.call(*arrays), loss(*arrays), rtol=1e-6 if not x64 else 1e-12)


def test_linear_cross_entropy_export_needs_a_fixed_token_count() -> None:
    # Documented (README, JAX section): the kernel's chunk plan reads the number of tokens, so a
    # symbolic one is lossreg's UnsupportedError (it was JAX's InconclusiveDimensionOperation);
    # a fixed size exports and agrees.
    from jax import export

    h, w, t, _ = _lce_problem()
    (b,) = export.symbolic_shape("b")
    symbolic = (jax.ShapeDtypeStruct((b, 3), h.dtype), jax.ShapeDtypeStruct(w.shape, w.dtype),
                jax.ShapeDtypeStruct((b,), t.dtype))
    with pytest.raises(lossreg.UnsupportedError, match="symbolic number of tokens"):
        export.export(jax.jit(lossreg.linear_cross_entropy))(*symbolic)
    fixed = export.export(jax.jit(lossreg.linear_cross_entropy))(h, w, t)
    np.testing.assert_allclose(fixed.call(h, w, t), lossreg.linear_cross_entropy(h, w, t), rtol=1e-12)
