"""The conformance suite under pytest, once per backend named by ``--lossreg-backend`` (lossreg's plugin).

    pytest tests/test_conformance.py --lossreg-backend numpy,array_api_strict,torch,jax,jax_jit,dask

Every registered loss runs every case (values and gradients against the golden answers) on each
backend, in float32 and float64 (``LOSSREG_CONFORMANCE_DTYPES`` changes that, and
``LOSSREG_CONFORMANCE_MAX_CASES`` caps the cases per loss, as ``--max-cases`` does). On eager
JAX and Dask, where each case costs 0.1-2 s (every new shape compiles its operations, or builds a
graph), each loss runs the cases that cover each of its option values, input shapes and expected
errors once (``lossreg conformance --quick``'s choice: 402 of the 1670 built-in cases, 38 of
CTC's 112, say); the other backends run them all. ``LOSSREG_SLOW=1`` runs every case everywhere, as
``lossreg conformance --backend all`` does (its record: ``conformance/results/cpu.json``). On top:
``lazy_xp_function`` runs each loss under ``jax.jit`` and forbids Dask from computing during the
call; Dask with the class axis chunked too; array-api-strict with its data-dependent features
switched off and on its fake devices.
"""

from __future__ import annotations

import os
import types
from typing import Any

import numpy as np
import pytest
from array_api_extra.testing import lazy_xp_function, patch_lazy_xp_functions

import lossreg
from lossreg import conformance
from lossreg.backends import DaskBackend
from lossreg.registry import registry

NAMES = lossreg.names()
DTYPES = [d.strip() for d in os.environ.get("LOSSREG_CONFORMANCE_DTYPES", "float32,float64").split(",") if d.strip()]
MAX_CASES = int(os.environ["LOSSREG_CONFORMANCE_MAX_CASES"]) if os.environ.get("LOSSREG_CONFORMANCE_MAX_CASES") else None
SLOW = os.environ.get("LOSSREG_SLOW", "0") == "1"
SLOW_BACKENDS = ("jax", "dask")  # see the module's docstring


def _max_cases(backend: Any) -> conformance.MaxCases:
    if MAX_CASES is not None or SLOW or backend.name not in SLOW_BACKENDS:
        return MAX_CASES
    return conformance.COVER


def _assert_passed(outcomes: list[conformance.Outcome]) -> None:
    counts = conformance.summarize(outcomes)
    if counts["failed"]:
        pytest.fail(conformance.matrix(outcomes), pytrace=False)
    if not counts["passed"]:
        pytest.skip("; ".join(sorted({o.reason for o in outcomes})))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", NAMES)
def test_conformance(backend: Any, device: str, loss: str, dtype: str) -> None:
    _assert_passed(conformance.run([backend], [dtype], device, [loss], max_cases=_max_cases(backend)))


def test_the_slow_backends_run_cases_covering_every_feature_of_each_losss_list_and_the_others_run_them_all() -> None:
    assert _max_cases(registry().backends["numpy"]) == MAX_CASES
    limit = _max_cases(registry().backends["jax"])
    if SLOW or MAX_CASES is not None:
        assert limit == MAX_CASES
        return
    for name in NAMES:
        every = conformance.cases_for(registry().lookup(name), registry().cases)
        chosen = conformance.select_cases(every, limit)
        assert {case.id for case in chosen} <= {case.id for case in every}
        features = [set().union(*map(conformance._features, cases)) for cases in (chosen, every)]
        assert features[0] == features[1], f"{name}: the choice misses {features[1] - features[0]}"


def call_loss(function: Any, *arrays: Any, **options: Any) -> Any:
    """A loss call; tagged below, so that on JAX it runs in ``jax.jit`` (options static) and on
    Dask any ``compute()`` during it fails the test."""
    return function(*arrays, **options)


lazy_xp_function(call_loss)


@pytest.fixture
def lazy_calls(request: pytest.FixtureRequest, xp: Any) -> Any:
    with patch_lazy_xp_functions(request, xp=xp):
        yield


@pytest.mark.parametrize("loss", NAMES)
def test_lazy_xp_function(backend: Any, device: str, lazy_calls: None, loss: str) -> None:
    spec = lossreg.spec(loss)
    cases = [c for c in conformance.cases_for(spec, registry().cases) if not c.raises]
    cases = [c for c in conformance.select_cases(cases, 4) if c.dtypes is None or "float64" in c.dtypes]
    assert cases, f"{loss} has no conformance case to run"
    for case in cases:
        names = [n for n in spec.inputs if n in case.inputs]
        arrays = [conformance._make(backend, case.inputs[n], "float64", device) for n in names]
        options = {k: conformance._make(backend, v, "float64", device) if conformance._is_array(v) else v
                   for k, v in case.options.items()}
        with lossreg.use_kernels(False):
            value = call_loss(spec.function, *arrays, **options)
        got = backend.to_numpy(value)
        rtol, atol = conformance.TOLERANCES["float64"]
        ratio = conformance._error_ratio(got, np.asarray(case.expected, dtype="float64"), rtol, atol)
        assert ratio <= 1, f"{loss} case {case.id}: off by {ratio:.3g}× the tolerance: {got} vs {case.expected}"


def _registered(name: str) -> Any:
    found = registry().backends[name]
    reason = found.unavailable()
    if reason:
        pytest.skip(f"{name}: {reason}")
    return found


@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
def test_dask_class_axis_chunked(loss: str) -> None:
    """Inputs split along the class axis as well as the batch axis: reductions cross chunks."""
    _registered("dask")
    both = DaskBackend(split_axes=(0, 1), name="dask_class_chunks", short="dask01")
    _assert_passed(conformance.run([both], ("float32", "float64"), None, [loss], max_cases=MAX_CASES))


def test_dask_cross_entropy_stays_lazy_with_many_chunks() -> None:
    """A (N, C) problem in 4 × 5 chunks: the loss is a Dask array, computed only when asked,
    equal to NumPy's answer."""
    _registered("dask")
    import dask
    import dask.array as da

    rng = np.random.default_rng(0)
    logits, target = rng.normal(size=(40, 50)) * 4, rng.integers(0, 50, size=40)
    weight = rng.uniform(0.5, 2, size=50)
    x, t, w = da.from_array(logits, chunks=(10, 10)), da.from_array(target, chunks=10), da.from_array(weight, chunks=25)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("computed during the call")

    for options in ({}, {"reduction": "none"}, {"label_smoothing": 0.2}, {"ignore_index": 3}):
        with dask.config.set(scheduler=refuse):
            lazy = lossreg.cross_entropy(x, t, weight=w, **options)
        assert isinstance(lazy, da.Array)
        want = lossreg.cross_entropy(logits, target, weight=weight, **options)
        np.testing.assert_allclose(lazy.compute(scheduler="sync"), want, rtol=1e-12)


def test_array_api_strict_without_data_dependent_features() -> None:
    """The strictest referee: no boolean indexing, no data-dependent shapes."""
    xp = pytest.importorskip("array_api_strict")
    _registered("array_api_strict")
    with xp.ArrayAPIStrictFlags(boolean_indexing=False, data_dependent_shapes=False):
        assert not xp.get_array_api_strict_flags()["boolean_indexing"]
        outcomes = conformance.run(["array_api_strict"], ("float32", "float64"), None, None, max_cases=MAX_CASES)
    _assert_passed(outcomes)


@pytest.mark.parametrize("device", ["device1", "device2"])
def test_array_api_strict_fake_device(device: str) -> None:
    """Inputs on a fake device: every result stays there (the runner checks each one)."""
    _registered("array_api_strict")
    _assert_passed(conformance.run(["array_api_strict"], ("float64",), device, None, max_cases=MAX_CASES))


def _grid_case() -> lossreg.testing.Case:
    return lossreg.testing.Case("mse_loss", "grid", {"input": {"data": [[0.0, 1.0], [2.0, 3.0]], "dtype": "float"},
                                                     "target": {"data": [[0.0, 0.0], [0.0, 0.0]], "dtype": "float"}},
                                {"reduction": "none"}, expected=[[0.0, 1.0], [4.0, 9.0]],
                                grads={"input": [[0.0, 2.0], [4.0, 6.0]]})


def test_a_wrong_value_is_reported_first_at_its_worst_element_then_whole():
    """The matrix cuts a failure at 400 characters: the element furthest off comes before the arrays."""
    def wrong(input, target, /, *, reduction):
        return (input - target) ** 2 + (input == 2.0)

    with pytest.raises(AssertionError, match=r"^value off by .*× the tolerance at \[1, 0\]: got 5\.0, expected 4\.0; "
                                             r"of all 4: got \[\[0\.0, 1\.0\], \[5\.0, 9\.0\]\], expected \[\[0\.0, "):
        conformance.check_case(_grid_case(), lossreg.spec("mse_loss"), wrong, registry().backends["numpy"],
                               "float64", "cpu")


def test_a_wrong_gradient_is_reported_with_the_got_and_expected_of_its_worst_element():
    pytest.importorskip("torch")

    def wrong(input, target, /, *, reduction):  # the value of (x - y)², the gradient of x · (x - y) held
        return input * (input - target).detach()

    with pytest.raises(AssertionError, match=r"^gradient of input off by .*× the tolerance at \[1, 1\]: got 3\.0, "
                                             r"expected 6\.0$"):
        conformance.check_case(_grid_case(), lossreg.spec("mse_loss"), wrong, registry().backends["torch"],
                               "float64", "cpu")


def test_a_plugin_adding_only_a_kernel_to_a_builtin_loss_is_checked_by_its_name():
    """`lossreg conformance --plugin NAME` and `lossreg_conformance(plugin=NAME)` of a plugin with a faster
    kernel for a built-in loss check that loss, the plugin's kernel among its paths (not "registered no losses")."""
    def wrong_mse(input, target, /, *, reduction="mean"):
        return np.mean((input - target) ** 2) + 1.0

    plugin = types.SimpleNamespace(lossreg_kernels=lossreg.hookimpl(
        lambda: [lossreg.Kernel("mse", "numpy", wrong_mse, name="wrong_mse")]))
    lossreg.register_plugin(plugin, name="kernel-only")
    try:
        assert conformance.plugin_losses("kernel-only") == (["mse_loss"], [])
        with pytest.raises(pytest.fail.Exception, match=r"FAIL mse_loss \[numpy/float64/cpu, kernel:wrong_mse\]"):
            lossreg.testing.check_conformance(plugin="kernel-only", backends=["numpy"], dtypes=["float64"])
    finally:
        lossreg.unregister_plugin("kernel-only")


def test_cases_a_kernel_declines_are_not_counted_as_passed_by_it():
    """A kernel may hand some calls back with NotImplemented: those cases are not its passes, and say so."""
    def sums_only(input, target, /, *, reduction="mean"):
        return np.sum((input - target) ** 2) if reduction == "sum" else NotImplemented

    plugin = types.SimpleNamespace(lossreg_kernels=lossreg.hookimpl(
        lambda: [lossreg.Kernel("mse_loss", "numpy", sums_only, name="sums_only")]))
    lossreg.register_plugin(plugin, name="sums-only")
    try:
        outcomes = conformance.run(["numpy"], ["float64"], None, ["mse_loss"])
    finally:
        lossreg.unregister_plugin("sums-only")
    portable = next(o for o in outcomes if o.path == "portable")
    mine = next(o for o in outcomes if o.path == "kernel:sums_only")
    declined = mine.notes[conformance.DECLINED]
    assert mine.status == "passed" and 0 < mine.cases < portable.cases
    assert mine.cases + declined == portable.cases and mine.not_applicable == declined
    assert f"{declined} cases of 1 loss ({conformance.DECLINED})" in conformance.matrix(outcomes)
