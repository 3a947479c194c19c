"""Every loss on Dask arrays computed by a ``dask.distributed`` cluster of worker processes.

Data that outgrows one machine is computed on a cluster, where each task of the graph lossreg
built is pickled and run in another process: everything a loss puts in its graph must travel
(no closure over a lock, an open file or a local class) and compute there to the value the
loss has on NumPy arrays.
"""

from __future__ import annotations

import numpy as np
import pytest
from strategies import make_good

import lossreg

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("dask.distributed", reason="the dask extra installs distributed")

NAMES = [name for name in lossreg.names() if lossreg.spec(name).plugin == "lossreg"]


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster) as client:
        yield client


def _chunked(name: str, x: np.ndarray) -> object:
    """Two chunks along the batch axis (axis 1 of CTC's (T, N, C) log-probabilities)."""
    axis = 1 if name == "ctc_loss" and x.ndim == 3 else 0
    chunks = tuple(max(1, -(-s // 2)) if i == axis else s for i, s in enumerate(x.shape))
    return da.from_array(x, chunks=chunks or -1)


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("name", NAMES)
def test_a_cluster_of_worker_processes_computes_the_numpy_value(client, name: str, reduction: str) -> None:
    inputs = make_good(name, seed=3).inputs
    want = np.asarray(lossreg.get(name, reduction=reduction)(*inputs.values()))
    lazy = lossreg.get(name, reduction=reduction)(*(_chunked(name, v) for v in inputs.values()))
    assert isinstance(lazy, da.Array)
    got = client.compute(lazy).result(timeout=120)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-300)
