"""Dask arrays chunked as data engineers chunk them, for the catalogue's and the plugins' losses.

A loss on Dask arrays only builds a graph (README, "Data larger than memory: Dask"), and each of
its tasks must stay about as large as the inputs' own chunks: data larger than memory is computed
a chunk at a time. Each answer is compared with the same loss on the NumPy arrays of the same data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import lossreg

da = pytest.importorskip("dask.array")
from dask.callbacks import Callback  # noqa: E402


class LargestTask(Callback):
    """The most bytes one task of a computed graph returned, past the final concatenation."""

    def __init__(self) -> None:
        super().__init__()
        self.nbytes = 0

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        if "finalize" not in str(key):
            self.nbytes = max(self.nbytes, getattr(result, "nbytes", 0))


def test_nt_xent_over_chunked_embeddings_keeps_every_task_to_a_block_of_similarities(extras: Any) -> None:
    """NT-Xent's similarities of 2N embeddings are (2N, 2N), split as the embeddings' rows are.
    The mask of each embedding's similarity with itself compared an arange with itself: on Dask one
    (2N, 2N) chunk, a single task holding 4N² bools (5.5 MiB here, against blocks of 0.3 MiB; 40 GB
    at N = 100,000) however small the chunks. It is now split as the similarities are."""
    rng = np.random.default_rng(0)
    n, rows, d = 1200, 200, 8
    x, p = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    block = rows * rows * 8  # one block of float64 similarities
    for reduction in ("none", "mean"):
        want = np.asarray(lossreg.nt_xent_loss(x, p, reduction=reduction))
        lazy = lossreg.nt_xent_loss(da.from_array(x, chunks=(rows, d)), da.from_array(p, chunks=(rows, d)),
                                    reduction=reduction)
        with LargestTask() as largest:
            got = lazy.compute(scheduler="sync")
        np.testing.assert_allclose(got, want, rtol=1e-12)
        assert largest.nbytes <= block, f"a task of {largest.nbytes / 2**20:.1f} MiB, blocks of {block / 2**20:.1f} MiB"



@pytest.mark.parametrize("chunks", [((3, 0, 4), 3), ((0, 7), (0, 3)), ((7, 0), 1)])
def test_nt_xent_over_embeddings_with_empty_chunks_gives_numpys_answer(extras: Any, chunks: Any) -> None:
    """Rows picked by a mask, then ``compute_chunk_sizes()``, leave empty chunks; the positions
    counted along the rows (Dask's cumulative sum, which fails on an empty chunk when computed)
    are counted once they are dropped."""
    rng = np.random.default_rng(1)
    x, p = rng.normal(size=(7, 3)), rng.normal(size=(7, 3))
    for reduction in ("none", "mean", "sum"):
        want = np.asarray(lossreg.nt_xent_loss(x, p, reduction=reduction))
        got = lossreg.nt_xent_loss(da.from_array(x, chunks=chunks), da.from_array(p, chunks=chunks), reduction=reduction)
        np.testing.assert_allclose(got.compute(scheduler="sync"), want, rtol=1e-12, err_msg=reduction)
