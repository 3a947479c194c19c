"""A sweep of the plugin's losses against their peers and across backends at the edges: empty
batches, lazy arrays, and the claims the docstrings make about the peers."""

from __future__ import annotations

import numpy as np
import pytest

from lossreg_segmentation import generalized_dice_loss


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_generalized_dice_of_an_empty_dask_batch_is_numpys(reduction):
    """An empty batch (N = 0) gives what it gives on NumPy: no losses, a sum of 0, a mean of NaN.
    Dask's max over the classes of a batch with no rows raised NumPy's "zero-size array to
    reduction operation maximum" when computed (the weight given to absent classes takes it)."""
    da = pytest.importorskip("dask.array")
    p, one_hot = np.full((0, 3, 4), 0.5), np.zeros((0, 3, 4))
    want = generalized_dice_loss(p, one_hot, reduction=reduction)
    got = generalized_dice_loss(da.from_array(p), da.from_array(one_hot), reduction=reduction).compute()
    np.testing.assert_array_equal(got, want)
