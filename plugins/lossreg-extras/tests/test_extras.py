"""Tests of lossreg-extras, run with lossreg's pytest plugin:

    pytest --backend numpy,array_api_strict,torch,jax,dask

The conformance suite checks every loss against the reference cases, also on the package's own
``numpy_readonly`` backend; the property tests check relations between losses on each backend.
"""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
from lossreg_extras import (
    generalized_cross_entropy,
    log_cosh_loss,
    nt_xent_loss,
    poly1_cross_entropy,
    quantile_loss,
    sparsemax_loss,
)

import lossreg
from lossreg.conformance import Case
from lossreg.pytest_plugin import check_conformance

rng = np.random.default_rng(11)


def close(backend, got, want, rtol=1e-10):
    np.testing.assert_allclose(backend.to_numpy(got), np.asarray(backend.to_numpy(want)), rtol=rtol, atol=1e-12)


def test_conformance(lossreg_conformance):
    lossreg_conformance(plugin="extras")


def test_conformance_on_read_only_arrays():
    check_conformance(plugin="extras", backends=["numpy_readonly"])


def test_read_only_backend_catches_a_loss_that_writes_into_its_input():
    @lossreg.define_loss(class_name="ClampInPlaceLoss")
    def clamp_in_place_loss(input, target, /, *, reduction="mean"):
        np.clip(input, 0, None, out=input)  # the bug the backend exists to catch
        return np.sum((input - target) ** 2)

    case = Case("clamp_in_place_loss", "one", {"input": {"data": [1.0, -1.0]},
                                                                   "target": {"data": [0.0, 0.0]}}, expected=1.0)
    plugin = types.SimpleNamespace(lossreg_losses=lossreg.hookimpl(lambda: [clamp_in_place_loss]),
                                   lossreg_cases=lossreg.hookimpl(lambda: [case]))
    lossreg.register_plugin(plugin, name="in_place_test")
    try:
        # float64 only: in float32 the suite judges a loss against itself run in float64 with
        # torch at the rounded inputs, and this NumPy-only loss cannot run on torch.
        check_conformance(["clamp_in_place_loss"], backends=["numpy"], dtypes=["float64"])  # NumPy lets it through
        with pytest.raises(pytest.fail.Exception, match="read-only"):
            check_conformance(["clamp_in_place_loss"], backends=["numpy_readonly"], dtypes=["float64"])
    finally:
        lossreg.unregister_plugin("in_place_test")


def test_registered_under_every_name():
    for name in ("logcosh", "mape", "MSLELoss", "pinball", "poly1", "gce", "sparsemax", "ZLoss", "info_nce"):
        assert lossreg.spec(name).plugin == "extras"
    assert "numpy_readonly" in lossreg.registry().backends


def test_poly1_with_epsilon_0_is_cross_entropy(backend, device):
    x = backend.asarray(rng.normal(size=(5, 4, 2)), "float64", device)
    t = backend.asarray(rng.integers(0, 4, size=(5, 2)), "int64", device)
    close(backend, poly1_cross_entropy(x, t, epsilon=0.0), lossreg.cross_entropy(x, t))


def test_quantile_one_half_is_half_of_l1(backend, device):
    x, y = (backend.asarray(rng.normal(size=(4, 3)), "float64", device) for _ in range(2))
    close(backend, 2 * quantile_loss(x, y, quantile=0.5), lossreg.l1_loss(x, y))


def test_generalized_cross_entropy_with_q_1_is_one_minus_p(backend, device):
    logits = rng.normal(size=(6, 3))
    t = rng.integers(0, 3, size=6)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    got = generalized_cross_entropy(backend.asarray(logits, "float64", device), backend.asarray(t, "int64", device),
                                    q=1.0, reduction="none")
    np.testing.assert_allclose(backend.to_numpy(got), 1 - p[np.arange(6), t], rtol=1e-12)


def test_sparsemax_loss_is_0_for_a_clear_winner_and_positive_otherwise(backend, device):
    x = backend.asarray(np.array([[5.0, 0.0, 0.0], [0.2, 0.1, 0.0]]), "float64", device)
    t = backend.asarray(np.array([0, 2]), "int64", device)
    got = backend.to_numpy(sparsemax_loss(x, t, reduction="none"))
    assert got[0] == 0.0 and got[1] > 0


def test_log_cosh_lies_between_its_asymptotes(backend, device):
    d = np.array([-30.0, -1.0, -1e-4, 0.0, 1e-4, 2.0, 50.0])
    got = backend.to_numpy(log_cosh_loss(backend.asarray(d, "float64", device),
                                         backend.asarray(np.zeros_like(d), "float64", device), reduction="none"))
    assert np.all(got <= d**2 / 2 + 1e-15) and np.all(got >= np.abs(d) - math.log(2) - 1e-12)


def test_nt_xent_prefers_matching_views(backend, device):
    a = rng.normal(size=(8, 16))
    matching = nt_xent_loss(backend.asarray(a, "float64", device), backend.asarray(a, "float64", device))
    shuffled = nt_xent_loss(backend.asarray(a, "float64", device), backend.asarray(a[::-1].copy(), "float64", device))
    assert float(backend.to_numpy(matching)) < float(backend.to_numpy(shuffled))


SORTING = [pytest.param(name, marks=pytest.mark.skipif(not lossreg.registry().backends[name].unavailable() is None,
                                                       reason=f"{name} is not installed"))
           for name in ("numpy", "array_api_strict", "torch", "jax")]


@pytest.mark.parametrize("name", SORTING)
def test_sparsemax_loss_sorted_support_equals_the_sort_free_one(name):
    """Backends that sort find the support from the sorted logits; Dask compares every pair of
    logits instead. Ties (which both must treat alike) and several support sizes, on (N, C, d)."""
    dask = lossreg.registry().backends["dask"]
    if dask.unavailable() is not None:
        pytest.skip("dask is not installed")
    backend = lossreg.registry().backends[name]
    x = np.round(rng.normal(size=(5, 7, 3)) * 2, 1)  # rounded: ties within a row
    x[0, :, 0] = 1.5  # a row of equal logits: the support is every class
    x[1, 0, 1] = 40.0  # a clear winner: the support is one class
    t = rng.integers(0, 7, size=(5, 3))
    want = dask.to_numpy(sparsemax_loss(dask.asarray(x, "float64", "cpu"), dask.asarray(t, "int64", "cpu"),
                                        reduction="none"))
    dev = backend.devices[0]
    got = backend.to_numpy(sparsemax_loss(backend.asarray(x, "float64", dev), backend.asarray(t, "int64", dev),
                                          reduction="none"))
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    assert want[1, 1] == 0.0 or t[1, 1] != 0


def test_sparsemax_loss_handles_a_vocabulary_sized_row_in_linear_memory():
    # 50 000 classes: the sort-free form would need 50 000² = 2.5e9 entries per row.
    x = rng.normal(size=(2, 50_000)).astype(np.float32)
    got = sparsemax_loss(x, np.array([3, 49_999]), reduction="none")
    assert got.shape == (2,) and np.all(np.isfinite(got)) and np.all(got >= 0)
