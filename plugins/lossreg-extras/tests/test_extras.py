"""Tests of lossreg-extras, run with lossreg's pytest plugin (``pytest_plugins`` in ../conftest.py):

    pytest --lossreg-backend numpy,array_api_strict,torch,jax,dask

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
from lossreg.testing import Case, check_conformance

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


def test_poly1_with_epsilon_0_is_cross_entropy(lossreg_backend, lossreg_device):
    x = lossreg_backend.asarray(rng.normal(size=(5, 4, 2)), "float64", lossreg_device)
    t = lossreg_backend.asarray(rng.integers(0, 4, size=(5, 2)), "int64", lossreg_device)
    close(lossreg_backend, poly1_cross_entropy(x, t, epsilon=0.0), lossreg.cross_entropy(x, t))


def test_quantile_one_half_is_half_of_l1(lossreg_backend, lossreg_device):
    x, y = (lossreg_backend.asarray(rng.normal(size=(4, 3)), "float64", lossreg_device) for _ in range(2))
    close(lossreg_backend, 2 * quantile_loss(x, y, quantile=0.5), lossreg.l1_loss(x, y))


def test_generalized_cross_entropy_with_q_1_is_one_minus_p(lossreg_backend, lossreg_device):
    logits = rng.normal(size=(6, 3))
    t = rng.integers(0, 3, size=6)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    got = generalized_cross_entropy(lossreg_backend.asarray(logits, "float64", lossreg_device), lossreg_backend.asarray(t, "int64", lossreg_device),
                                    q=1.0, reduction="none")
    np.testing.assert_allclose(lossreg_backend.to_numpy(got), 1 - p[np.arange(6), t], rtol=1e-12)


def test_sparsemax_loss_is_0_for_a_clear_winner_and_positive_otherwise(lossreg_backend, lossreg_device):
    x = lossreg_backend.asarray(np.array([[5.0, 0.0, 0.0], [0.2, 0.1, 0.0]]), "float64", lossreg_device)
    t = lossreg_backend.asarray(np.array([0, 2]), "int64", lossreg_device)
    got = lossreg_backend.to_numpy(sparsemax_loss(x, t, reduction="none"))
    assert got[0] == 0.0 and got[1] > 0


def test_log_cosh_lies_between_its_asymptotes(lossreg_backend, lossreg_device):
    d = np.array([-30.0, -1.0, -1e-4, 0.0, 1e-4, 2.0, 50.0])
    got = lossreg_backend.to_numpy(log_cosh_loss(lossreg_backend.asarray(d, "float64", lossreg_device),
                                         lossreg_backend.asarray(np.zeros_like(d), "float64", lossreg_device), reduction="none"))
    assert np.all(got <= d**2 / 2 + 1e-15) and np.all(got >= np.abs(d) - math.log(2) - 1e-12)


def test_nt_xent_prefers_matching_views(lossreg_backend, lossreg_device):
    a = rng.normal(size=(8, 16))
    matching = nt_xent_loss(lossreg_backend.asarray(a, "float64", lossreg_device), lossreg_backend.asarray(a, "float64", lossreg_device))
    shuffled = nt_xent_loss(lossreg_backend.asarray(a, "float64", lossreg_device), lossreg_backend.asarray(a[::-1].copy(), "float64", lossreg_device))
    assert float(lossreg_backend.to_numpy(matching)) < float(lossreg_backend.to_numpy(shuffled))


def test_class_index_losses_take_the_documents_n_by_1_targets(lossreg_backend, lossreg_device):
    x = lossreg_backend.asarray(rng.normal(size=(5, 4)), "float64", lossreg_device)
    t = rng.integers(0, 4, size=5)
    flat, column = (lossreg_backend.asarray(v, "int64", lossreg_device) for v in (t, t[:, None]))
    for loss in (poly1_cross_entropy, generalized_cross_entropy, sparsemax_loss):
        close(lossreg_backend, loss(x, column, reduction="none"), loss(x, flat, reduction="none"))


def test_poly1_agrees_with_cross_entropy_at_infinite_logits(lossreg_backend, lossreg_device):
    """A -inf logit is a class of probability 0; a +inf logit makes its row NaN, as torch's cross_entropy."""
    inf = math.inf
    x = lossreg_backend.asarray(np.array([[-inf, 0.0, 1.0], [-inf, 0.0, 1.0], [inf, 0.0, 1.0], [2.0, -1.0, 0.5]]),
                                "float64", lossreg_device)
    t = lossreg_backend.asarray(np.array([1, 0, 1, 2]), "int64", lossreg_device)
    got = lossreg_backend.to_numpy(poly1_cross_entropy(x, t, epsilon=0.0, reduction="none"))
    want = lossreg_backend.to_numpy(lossreg.cross_entropy(x, t, reduction="none"))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.isinf(got[1]) and np.isnan(got[2])


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
    with backend.scope():  # JAX: float64 for this test only
        got = backend.to_numpy(sparsemax_loss(backend.asarray(x, "float64", dev), backend.asarray(t, "int64", dev),
                                              reduction="none"))
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    assert want[1, 1] == 0.0 or t[1, 1] != 0


def test_sparsemax_loss_handles_a_vocabulary_sized_row_in_linear_memory():
    # 50 000 classes: the sort-free form would need 50 000² = 2.5e9 entries per row.
    x = rng.normal(size=(2, 50_000)).astype(np.float32)
    got = sparsemax_loss(x, np.array([3, 49_999]), reduction="none")
    assert got.shape == (2,) and np.all(np.isfinite(got)) and np.all(got >= 0)


@pytest.mark.parametrize("name", ["poly1_cross_entropy", "log_cosh_loss", "sparsemax_loss"])
def test_jax_kernels_agree_with_the_portable_definitions_in_value_and_gradient(name):
    jax = pytest.importorskip("jax")
    loss = {"poly1_cross_entropy": poly1_cross_entropy, "log_cosh_loss": log_cosh_loss,
            "sparsemax_loss": sparsemax_loss}[name]
    assert [k.plugin for k in lossreg.registry().kernels[(name, "jax")]] == ["extras"]
    x = jax.numpy.asarray(rng.standard_normal((6, 5)) * 4, dtype="float32")
    other = (jax.numpy.asarray(rng.integers(0, 5, 6), dtype="int32") if name != "log_cosh_loss"
             else jax.numpy.asarray(np.round(rng.standard_normal((6, 5)) * 4), dtype="float32").at[0].set(x[0]))
    for reduction in ("none", "mean", "sum"):
        got, want = loss(x, other, reduction=reduction), loss.portable(x, other, reduction=reduction)
        np.testing.assert_allclose(got, want, rtol=1e-6)
    got = jax.grad(lambda a: loss(a, other))(x)
    np.testing.assert_allclose(got, jax.grad(lambda a: loss.portable(a, other))(x), rtol=1e-5, atol=1e-7)
    if name == "log_cosh_loss":  # the derivative the kernel states, at d = 0 (row 0) too
        np.testing.assert_allclose(got, np.tanh(np.asarray(x - other)) / x.size, rtol=1e-6, atol=1e-9)


def test_sparsemax_jax_kernel_states_the_gradient_sparsemax_minus_onehot_in_both_modes():
    """Reverse and forward mode, on (N, C, d) logits with an ignored and an invalid (poisoned) target."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    x = jnp.asarray(rng.standard_normal((4, 5, 2)) * 2, dtype="float32")
    t = jnp.asarray([[0, 4], [2, -100], [1, 1], [3, 0]], dtype="int32")
    z = np.moveaxis(np.asarray(x, dtype=np.float64), 1, -1)  # (N, d, C): sparsemax by sorting each row
    ordered = -np.sort(-z, axis=-1)
    k = np.arange(1, 6)
    size = np.sum(1 + k * ordered > np.cumsum(ordered, axis=-1), axis=-1, keepdims=True)
    tau = (np.take_along_axis(np.cumsum(ordered, axis=-1), size - 1, axis=-1) - 1) / size
    active = np.asarray(t) != -100
    onehot = np.eye(5)[np.where(active, t, 0)]
    want = np.moveaxis((np.maximum(z - tau, 0) - onehot) * active[..., None], -1, 1) / active.sum()
    got = jax.jit(jax.grad(lambda a: sparsemax_loss(a, t)))(x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    direction = jnp.asarray(rng.standard_normal(x.shape), dtype="float32")
    _, slope = jax.jvp(lambda a: sparsemax_loss(a, t), (x,), (direction,))
    np.testing.assert_allclose(slope, np.sum(want * np.asarray(direction)), rtol=1e-5, atol=1e-7)
    poisoned = jax.grad(lambda a: sparsemax_loss(a, t.at[0, 0].set(7), reduction="sum"))(x)
    assert np.all(np.isfinite(poisoned)) and np.isnan(sparsemax_loss(x, t.at[0, 0].set(7)))


def test_sparsemax_loss_with_an_entry_exactly_on_the_threshold():
    # z = x - 2 = (-0.7, -0.4, -2.1, -1.8, -3.7, 0, -4.8): τ = -0.7 with the entry -0.7 in the
    # support or out of it, so ℓ = ½((0 - .49) + (.16 - .49)) + 0.7 + 0.5 = 0.79 either way. Whether
    # the entry is in is decided by rounding; an XLA program that decided it differently for τ's
    # numerator and denominator gave -0.129 (jit with --xla_backend_optimization_level=0).
    x = np.array([[1.3, 1.6, -0.1, 0.2, -1.7, 2.0, -2.8]])
    t = np.array([0])
    assert float(sparsemax_loss(x, t)) == pytest.approx(0.79, abs=1e-12)
    jax = pytest.importorskip("jax")
    with jax.enable_x64(True):
        compiled = jax.jit(lambda a, b: sparsemax_loss(a, b))(jax.numpy.asarray(x), jax.numpy.asarray(t))
        assert float(compiled) == pytest.approx(0.79, abs=1e-12)
