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
