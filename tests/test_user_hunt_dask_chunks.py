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

# --- an axis of length 0 or 1 held in several chunks ---------------------------------------------
# Rows picked by a boolean mask, then compute_chunk_sizes() (as lossreg's error for unknown sizes
# says), keep one chunk per chunk of the mask: picking one row of six in chunks of two gives chunks
# (0, 1, 0) along the batch, picking none (0, 0, 0). Dask's arithmetic takes a length-1 axis as
# one to broadcast beside an array that holds it in one chunk (the target, or an array the loss
# makes) and pairs the blocks wrongly; its sums fail on the empty one when computed.

SCORES = np.random.default_rng(5).normal(size=(6, 4))
SIGNS = np.sign(np.random.default_rng(6).normal(size=(6, 4)))


def _picked(x: np.ndarray, rows: list[int]) -> Any:
    keep = np.isin(np.arange(x.shape[0]), rows)
    return da.from_array(x, chunks=2)[da.from_array(keep, chunks=2)].compute_chunk_sizes()


def test_one_row_picked_by_a_mask_is_refused_where_dask_gave_a_wrong_mean() -> None:
    """soft_margin_loss of one picked row gave a mean of 4 times NumPy's and a (4, 4) "none" for
    a (1, 4) input, silently; most other losses gave a bare error when computed, and picking the
    target's row by the same mask did not help (the loss's own arrays hold the axis in one chunk)."""
    x, y = _picked(SCORES, [3]), _picked(SIGNS, [3])
    assert x.chunks[0] == (0, 1, 0)
    with pytest.raises(lossreg.LossValueError, match=r"^soft_margin_loss: argument 'input' expected an axis of length "
                                                     r"0 or 1 in one chunk .*pass lossreg.toolkit.dense_chunks\(x\), "
                                                     r"got chunks \(0, 1, 0\) along axis 0 of shape \(1, 4\)$"):
        lossreg.soft_margin_loss(x, da.from_array(SIGNS[3:4]))
    with pytest.raises(lossreg.LossValueError, match="argument 'input' expected an axis of length 0 or 1 in one chunk"):
        lossreg.soft_margin_loss(x, y)
    # The fix the error names gives NumPy's answer.
    for reduction in ("none", "mean", "sum"):
        want = lossreg.soft_margin_loss(SCORES[3:4], SIGNS[3:4], reduction=reduction)
        got = lossreg.soft_margin_loss(lossreg.toolkit.dense_chunks(x), da.from_array(SIGNS[3:4]), reduction=reduction)
        assert got.shape == want.shape
        np.testing.assert_allclose(got.compute(scheduler="sync"), want, rtol=1e-12)


@pytest.mark.parametrize("rows", [[3], []], ids=["one row", "no row"])
@pytest.mark.parametrize("name", ["mse_loss", "cross_entropy", "multi_margin_loss", "triplet_margin_loss",
                                  "binary_cross_entropy"])
def test_rows_picked_by_a_mask_down_to_one_or_none_are_refused_and_dense_chunks_gives_numpys_answer(
        name: str, rows: list[int]) -> None:
    """No row picked (chunks (0, 0, 0)): Dask's sums failed when computed, with a bare
    ``AxisError: axis 1 is out of bounds``, for most losses; ``dense_chunks`` left such an axis as
    it was (Dask's rechunk does nothing to an array without elements). Now both sizes are refused
    when called, and ``dense_chunks`` gives the axis in one chunk, on which every loss gives
    NumPy's answer: NaN for a mean over nothing, 0 for a sum."""
    rng = np.random.default_rng(7)
    arrays = {"mse_loss": [SCORES, SIGNS], "cross_entropy": [SCORES, rng.integers(0, 4, 6)],
              "multi_margin_loss": [SCORES, rng.integers(0, 4, 6)],
              "triplet_margin_loss": [SCORES, SIGNS, rng.normal(size=(6, 4))],
              "binary_cross_entropy": [rng.uniform(0.1, 0.9, (6, 4)), rng.uniform(size=(6, 4))]}[name]
    picked = [_picked(a, rows) for a in arrays]
    assert {x.chunks[0] for x in picked} == {(0, 1, 0) if rows else (0, 0, 0)}
    with pytest.raises(lossreg.LossValueError, match=rf"^{name}: argument '{lossreg.spec(name).inputs[0]}' expected "
                                                     r"an axis of length 0 or 1 in one chunk"):
        lossreg.get(name)(*picked)
    dense = [lossreg.toolkit.dense_chunks(x) for x in picked]
    assert {x.chunks[0] for x in dense} == {(len(rows),)}
    for reduction in ("none", "mean", "sum"):
        want = np.asarray(lossreg.get(name, reduction=reduction)(*(a[rows] for a in arrays)))
        got = lossreg.get(name, reduction=reduction)(*dense).compute(scheduler="sync")
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=reduction)


# --- CTC's mean -----------------------------------------------------------------------------------

def whole_batch_layers(result: Any, n: int, rows: int) -> set[str]:
    """The graph's arrays of any dtype whose first axis is the batch of ``n`` and holds more than
    ``rows`` of them in one chunk."""
    found = set()
    for key, layer in result.__dask_graph__().layers.items():
        meta = getattr(layer, "collection_annotations", None) or {}
        chunks, shape = meta.get("chunks"), meta.get("shape")
        if chunks and shape and shape[0] == n and max(chunks[0]) > rows:
            found.add(key.rsplit("-", 1)[0])
    return found


@pytest.mark.parametrize("kernels", [True, False])
def test_ctc_mean_keeps_the_target_lengths_in_the_batchs_chunks(kernels: bool) -> None:
    """CTC's "mean" divides each loss by its target length clamped to 1. array-api-compat's Dask
    ``clip`` broadcast the bound 1 to all N lengths in one chunk (``toolkit.clip`` exists for that),
    on the Dask kernel and the portable path alike; the lengths now stay in the batch's chunks."""
    rng = np.random.default_rng(4)
    t, n, c, s, rows = 12, 64, 5, 4, 8
    log_probs = np.log(rng.dirichlet(np.ones(c), size=(t, n)))
    targets, input_lengths = rng.integers(1, c, size=(n, s)), np.full(n, t)
    target_lengths = rng.integers(0, s + 1, size=n)
    want = lossreg.ctc_loss(log_probs, targets, input_lengths, target_lengths)
    with lossreg.use_kernels(kernels):
        lazy = lossreg.ctc_loss(da.from_array(log_probs, chunks=(t, rows, c)), da.from_array(targets, chunks=(rows, s)),
                                da.from_array(input_lengths, chunks=rows), da.from_array(target_lengths, chunks=rows))
    assert not whole_batch_layers(lazy, n, rows)
    np.testing.assert_allclose(lazy.compute(scheduler="sync"), want, rtol=1e-12)
