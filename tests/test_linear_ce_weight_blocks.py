"""linear_cross_entropy's weight gradient, added block of rows by block of rows.

Each chunk of tokens adds ``Gᵀ h`` (V×D) into the weight gradient; made whole, that product would
be a temporary of the weight's size (1/8 of the logits at D/N = 1/8, the reference shape of
issue 14). ``lossreg.chunked.add_weight_grad`` (NumPy, array-api-strict, Dask) and the JAX
kernel's ``fori_loop`` add it by blocks of ``WEIGHT_GRAD_ELEMENTS // D`` rows. Here: blocks of 3
rows, V off their multiple, against torch float64; and the temporary memory of the compiled JAX
program, which must hold no array of the weight gradient's size.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from strategies import REFERENCES

import lossreg
from lossreg import chunked

reference = REFERENCES["linear_cross_entropy"]
OPTIONS = {"reduction": "sum", "label_smoothing": 0.1, "z_loss": 1e-2, "softcap": 3.0, "ignore_index": 2}
# (N, V, chunk_size): V = 3k + 2 rows, whole or cut into vocabulary blocks of 5 (3 + 2 rows each).
CASES = [(7, 11, 3), (9, 17, (4, 5))]


def _example(n: int, v: int, d: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(n * 100 + v)
    t = rng.integers(0, v, size=n)
    t[1] = OPTIONS["ignore_index"]
    return rng.normal(size=(n, d)), rng.normal(size=(v, d)), rng.normal(size=(v,)), t


def _torch_answer(h: np.ndarray, w: np.ndarray, b: np.ndarray, t: np.ndarray) -> list[np.ndarray]:
    ht, wt, bt = (torch.tensor(x, requires_grad=True) for x in (h, w, b))
    value = reference(ht, wt, torch.tensor(t), bias=bt, **OPTIONS)
    value.backward()
    return [value.detach().numpy(), ht.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()]


@pytest.fixture
def three_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunked, "WEIGHT_GRAD_ELEMENTS", 12)  # 3 rows of D=4


@pytest.mark.parametrize(("n", "v", "chunks"), CASES)
def test_numpy_value_and_grad_by_blocks_of_rows_match_torch(three_rows: None, n: int, v: int, chunks: object):
    h, w, b, t = _example(n, v)
    value, grads = lossreg.linear_cross_entropy_value_and_grad(h, w, t, bias=b, chunk_size=chunks, **OPTIONS)
    for got, want in zip([value, *grads], _torch_answer(h, w, b, t), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("n", "v", "chunks"), CASES)
def test_jax_kernel_by_blocks_of_rows_matches_torch(three_rows: None, jax_float64: None, n: int, v: int,
                                                     chunks: object):
    jax = pytest.importorskip("jax")
    h, w, b, t = _example(n, v)
    tj = jax.numpy.asarray(t)

    def loss(h: object, w: object, b: object) -> object:
        return lossreg.linear_cross_entropy(h, w, tj, bias=b, chunk_size=chunks, **OPTIONS)

    value, grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(*map(jax.numpy.asarray, (h, w, b)))
    for got, want in zip([value, *grads], _torch_answer(h, w, b, t), strict=True):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-12)


def test_compiled_jax_gradient_holds_no_weight_sized_temporary():
    """The temporaries of jit(value_and_grad): two chunks of logits and one block of rows, not V×D."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    n, d, v, tokens = 256, 256, 16384, 32
    args = (jax.ShapeDtypeStruct((n, d), jnp.float32), jax.ShapeDtypeStruct((v, d), jnp.float32),
            jax.ShapeDtypeStruct((n,), jnp.int32))

    def loss(h: object, w: object, t: object) -> object:
        return lossreg.linear_cross_entropy(h, w, t, chunk_size=tokens)

    compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(*args).compile()
    temp = compiled.memory_analysis().temp_size_in_bytes
    weight_bytes = v * d * 4  # 16 MiB; a chunk of logits is 2 MiB, a block of rows 4 MiB
    assert temp < weight_bytes * 3 // 4, (temp, weight_bytes)


def test_jax_invalid_target_poisons_every_gradient_as_the_portable_form(jax_float64: None):
    """JAX arrays are not read by the checks: a target outside [0, V) makes the value NaN, and the
    gradients of hidden (its row), weight and bias NaN too, as the portable value_and_grad does."""
    jax = pytest.importorskip("jax")
    h, w, b, t = _example(7, 11)
    t[3] = 11  # one past the vocabulary
    hj, wj, bj, tj = map(jax.numpy.asarray, (h, w, b, t))

    def loss(h: object, w: object, b: object) -> object:
        return lossreg.linear_cross_entropy(h, w, tj, bias=b, chunk_size=3)

    value, (d_h, d_w, d_b) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(hj, wj, bj)
    assert np.isnan(value)
    assert np.isnan(d_h[3]).all() and not np.isnan(np.delete(np.asarray(d_h), 3, axis=0)).any()
    assert np.isnan(d_w).all() and np.isnan(d_b).all()
