"""The toolkit's picks by index, on every backend: ``take_class`` (one entry of each row),
``take_each`` (K entries of each row) and ``take_rows`` (K entries of each row of every frame)
are NumPy's fancy indexing, whatever the backend does inside (a flat take, a gather along the
axis, Dask's take within each block), non-finite entries and empty batches included."""

from __future__ import annotations

import numpy as np
import pytest

from lossreg import toolkit

rng = np.random.default_rng(7)


def _scores(*shape: int) -> np.ndarray:
    x = rng.standard_normal(shape)
    if x.size >= 3:  # what a one-hot product would turn into NaN, picked as it is
        x.flat[:3] = [np.inf, -np.inf, np.nan]
    return x


def _same(got, want: np.ndarray) -> None:
    np.testing.assert_array_equal(np.asarray(got), want)


@pytest.mark.parametrize("n, c, k", [(4, 5, 3), (3, 1, 2), (0, 5, 2), (2, 6, 0)])
def test_take_each_picks_the_named_entries_of_each_row(lossreg_xp, n, c, k):
    x, index = _scores(n, c), rng.integers(0, c, (n, k))
    got = toolkit.take_each(lossreg_xp, lossreg_xp.asarray(x), lossreg_xp.asarray(index))
    assert tuple(got.shape) == (n, k)
    _same(got, np.take_along_axis(x, index, axis=1))


@pytest.mark.parametrize("shape", [(4, 5), (3, 4, 2, 3), (0, 5)])
def test_take_class_picks_one_entry_along_the_class_axis(lossreg_xp, shape):
    x = _scores(*shape)
    index = rng.integers(0, shape[1], (shape[0], *shape[2:]))
    got = toolkit.take_class(lossreg_xp, lossreg_xp.asarray(x), lossreg_xp.asarray(index))
    _same(got, np.squeeze(np.take_along_axis(x, index[:, None], axis=1), axis=1))


def test_take_rows_picks_the_same_entries_in_every_frame(lossreg_xp):
    t, n, c, k = 3, 4, 6, 5
    x, index = _scores(t, n, c), rng.integers(0, c, (n, k))
    got = toolkit.take_rows(lossreg_xp, lossreg_xp.asarray(x), lossreg_xp.asarray(index))
    _same(got, np.take_along_axis(x, np.broadcast_to(index, (t, n, k)), axis=2))


def _jax_take_rows_flops(t: int) -> float:
    jax = pytest.importorskip("jax")
    x, index = jax.numpy.zeros((t, 4, 6)), jax.numpy.zeros((4, 5), dtype=jax.numpy.int32)
    cost = jax.jit(lambda x, index: toolkit.take_rows(jax.numpy, x, index)).lower(x, index).compile().cost_analysis()
    return (cost[0] if isinstance(cost, list) else cost).get("flops", 0.0)


def test_take_rows_on_jax_computes_the_indices_once_for_all_frames():
    # Taken as columns of the (T, N·C) array: N·K indices, where a flat index for each of the
    # T·N·K entries is an add each in every forward program under jax.jit (CTC's emissions:
    # 390,000 at T, N, K = 200, 16, 121, and half the tiny program's count of issue 13).
    assert _jax_take_rows_flops(40) == _jax_take_rows_flops(4)


def test_take_rows_on_jax_differentiates_as_the_entries_it_picks():
    # The value is taken as columns, the derivative as single entries (whose transpose, the
    # gradient, scatters entries, not columns): the same linear map, repeated picks summed.
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    t, n, c, k = 3, 4, 6, 5
    x, index = rng.standard_normal((t, n, c)), rng.integers(0, c, (n, k))
    index[0, :2] = 1  # a class picked twice in a row: its gradient is the sum of both
    weights = rng.standard_normal((t, n, k))
    picked = np.take_along_axis(x, np.broadcast_to(index, (t, n, k)), axis=2)

    def loss(x):
        return jnp.sum(toolkit.take_rows(jnp, x, jnp.asarray(index)) * weights)

    want = np.zeros_like(x)
    for frame in range(t):
        for row in range(n):
            np.add.at(want[frame, row], index[row], weights[frame, row])
    x_jax = jnp.asarray(x, dtype=jnp.float64) if jax.config.jax_enable_x64 else jnp.asarray(x, dtype=jnp.float32)
    tolerance = dict(rtol=1e-6) if x_jax.dtype == jnp.float64 else dict(rtol=1e-5, atol=1e-5)
    value, grad = jax.jit(jax.value_and_grad(loss))(x_jax)
    np.testing.assert_allclose(value, np.sum(picked * weights), **tolerance)
    np.testing.assert_allclose(grad, want, **tolerance)
    tangent = rng.standard_normal((t, n, c))
    _, forward = jax.jvp(loss, (x_jax,), (jnp.asarray(tangent, dtype=x_jax.dtype),))
    np.testing.assert_allclose(forward, np.sum(want * tangent), **tolerance)
    # Second order: the derivative is itself linear in x, so the Hessian is 0.
    np.testing.assert_array_equal(jax.hessian(loss)(x_jax), 0.0)
