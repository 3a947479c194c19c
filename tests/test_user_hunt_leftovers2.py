"""User-style hunt: leftovers of earlier reviews (second round), each checked against torch 2.13.

- ``linear_cross_entropy`` with an infinite class weight and label smoothing: torch's smoothing
  term Σ_c w_c (lse - z_c) is +inf, the streamed form (W (lse - a) - Σ_c w_c (z_c - a)) was
  inf - inf and 0 · inf: NaN losses where torch's are +inf. Without smoothing, the kernels'
  gradients were NaN for every token (0 · inf), torch's finite for the tokens of finite weight.
- ``triplet_margin_with_distance_loss`` whose distance function returns another dtype than the
  inputs' (float32 distances of float64 inputs): torch's loss is in the dtype of
  ``margin + d``, lossreg's was cast back to the inputs'.
- ``dir(lossreg.torch)`` left out the functional forms it gives; ``LinearCrossEntropyLoss``'s
  ``bias`` defaulted to None where torch.nn's defaults to False.
- ``toolkit.real_dtype``: the one complex-to-real dtype map of l1_loss and the embedding losses.
- ``lossreg conformance``: an outcome in which no case applied read "passed"; it is
  "not_applicable". Under ``--jobs``, a worker process that died ended the run with a bare
  BrokenProcessPool; the task it ran now fails, named, and the others are reported.
"""

from __future__ import annotations

import warnings

import array_api_compat
import array_api_compat.numpy
import array_api_compat.torch
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lossreg
import lossreg.torch as lt

jax = pytest.importorskip("jax")
jnp = jax.numpy

INF = float("inf")


# --- linear_cross_entropy: an infinite class weight with label smoothing ----------------------


def _head_with_infinite_weight(dtype: str) -> tuple[np.ndarray, ...]:
    """(N, D) states, a (V, D) head, a (V,) bias, targets, and class weights with one +inf."""
    rng = np.random.default_rng(0)
    n, d, v = 6, 4, 5
    h, w, b = (rng.standard_normal(s).astype(dtype) for s in ((n, d), (v, d), (v,)))
    cw = np.ones(v, dtype=dtype)
    cw[2] = np.inf
    return h, w, b, np.array([0, 1, 2, 3, 4, 1]), cw


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("backend", ["numpy", "torch-kernel", "torch-portable", "torch-module", "jax"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_linear_cross_entropy_infinite_class_weight_with_smoothing_is_torchs_inf(backend, reduction, dtype):
    h, w, b, t, cw = _head_with_infinite_weight(dtype)
    want = F.cross_entropy(F.linear(torch.tensor(h), torch.tensor(w), torch.tensor(b)), torch.tensor(t),
                           weight=torch.tensor(cw), label_smoothing=0.1, reduction=reduction).numpy()
    assert np.isnan(want).all() if reduction == "mean" else np.isposinf(want).all()  # inf / inf for "mean"
    kw = {"weight": cw, "label_smoothing": 0.1, "reduction": reduction}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's, on the infinite sums
        if backend == "numpy":
            got = lossreg.linear_cross_entropy(h, w, t, linear_bias=b, **kw)
        elif backend == "jax":
            with jax.enable_x64(dtype == "float64"):
                got = lossreg.linear_cross_entropy(*map(jnp.asarray, (h, w, t)), linear_bias=jnp.asarray(b),
                                                   **{**kw, "weight": jnp.asarray(cw)})
                got = np.asarray(got)
        else:
            args = [torch.tensor(a) for a in (h, w, t)]
            kwt = {**kw, "weight": torch.tensor(cw)}
            if backend == "torch-module":
                got = lt.LinearCrossEntropyLoss(linear_bias=torch.tensor(b), **kwt)(*args)
            else:
                with lossreg.use_kernels(backend == "torch-kernel"):
                    got = lossreg.linear_cross_entropy(*args, linear_bias=torch.tensor(b), **kwt)
            got = got.numpy()
    np.testing.assert_array_equal(np.asarray(got), want)


@pytest.mark.parametrize("reduction", ["none", "sum"])
@pytest.mark.parametrize("backend", ["torch-kernel", "jax", "torch-portable", "jax-portable"])
def test_linear_cross_entropy_infinite_class_weight_gradients_without_smoothing_are_torchs(backend, reduction):
    """The kernels' gradient carried the smoothing's (ε / V) W term at ε = 0: 0 · inf = NaN for every
    token, where torch's is finite for the tokens of finite weight (and ±inf for the head). The
    portable path's autodiff differentiated the log-sum-exp's shift, the maximum, whose backward
    multiplied the infinite token's inf - inf by its 0/1 mask: the whole head's gradient NaN."""
    h, w, b, t, cw = _head_with_infinite_weight("float64")
    ht, wt = torch.tensor(h, requires_grad=True), torch.tensor(w, requires_grad=True)
    want = F.cross_entropy(F.linear(ht, wt, torch.tensor(b)), torch.tensor(t), weight=torch.tensor(cw),
                           reduction=reduction)
    want_h, want_w = (g.numpy() for g in torch.autograd.grad(want.sum(), (ht, wt)))
    assert np.isfinite(want_h[t != 2]).all()
    kernels = lossreg.use_kernels(not backend.endswith("portable"))
    if backend.startswith("jax"):
        with jax.enable_x64(True), kernels:
            def total(hj, wj):
                return lossreg.linear_cross_entropy(hj, wj, jnp.asarray(t), linear_bias=jnp.asarray(b),
                                                    weight=jnp.asarray(cw), reduction=reduction).sum()
            got_h, got_w = (np.asarray(g) for g in jax.grad(total, argnums=(0, 1))(jnp.asarray(h), jnp.asarray(w)))
    else:
        hk, wk = torch.tensor(h, requires_grad=True), torch.tensor(w, requires_grad=True)
        with kernels:
            got = lossreg.linear_cross_entropy(hk, wk, torch.tensor(t), linear_bias=torch.tensor(b),
                                               weight=torch.tensor(cw), reduction=reduction)
        got_h, got_w = (g.numpy() for g in torch.autograd.grad(got.sum(), (hk, wk)))
    np.testing.assert_allclose(got_h, want_h, rtol=1e-12)  # NaN where torch's is, for the infinite-weight token
    np.testing.assert_allclose(got_w, want_w, rtol=1e-12)


def test_linear_cross_entropy_finite_weights_with_smoothing_unchanged():
    """The finite case, which the infinite weights' handling must not move: torch's value."""
    h, w, b, t, cw = _head_with_infinite_weight("float64")
    cw[2] = 3.0
    want = F.cross_entropy(F.linear(*map(torch.tensor, (h, w, b))), torch.tensor(t), weight=torch.tensor(cw),
                           label_smoothing=0.2, reduction="none").numpy()
    got = lossreg.linear_cross_entropy(h, w, t, linear_bias=b, weight=cw, label_smoothing=0.2, reduction="none")
    np.testing.assert_allclose(got, want, rtol=1e-12)


# --- triplet_margin_with_distance_loss: the loss is in the distances' dtype -------------------


def _l1(x, y):
    xp = array_api_compat.array_namespace(x, y)
    return xp.sum(xp.abs(x - y), axis=-1)


_DISTANCES = {
    "float32": lambda x, y: _as(_l1(x, y), "float32"),
    "float16": lambda x, y: _as(_l1(x, y), "float16"),
    "int64": lambda x, y: _as(_rounded(_l1(x, y)), "int64"),
}


def _as(d, dtype):
    xp = array_api_compat.array_namespace(d)
    return xp.astype(d, getattr(xp, dtype))


def _rounded(d):
    return array_api_compat.array_namespace(d).round(d)


@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("returned", list(_DISTANCES))
def test_triplet_with_distance_is_in_the_dtype_torchs_margin_plus_distance_gives(returned, reduction, swap):
    rng = np.random.default_rng(1)
    arrays = [torch.from_numpy(rng.standard_normal((5, 3))) for _ in range(3)]  # float64
    kw = {"distance_function": _DISTANCES[returned], "reduction": reduction, "swap": swap}
    want = F.triplet_margin_with_distance_loss(*arrays, **kw)
    got = lossreg.triplet_margin_with_distance_loss(*arrays, **kw)
    assert got.dtype == want.dtype  # float32, float16, and torch's default dtype for integer counts
    module = lt.TripletMarginWithDistanceLoss(**kw)(*arrays)
    assert module.dtype == want.dtype
    np.testing.assert_allclose(got.double().numpy(), want.double().numpy(), rtol=1e-3)


def test_triplet_with_distance_float32_distances_of_float64_arrays_elsewhere():
    """NumPy and JAX (x64) alike: float32 distances, a float32 loss; integer counts, the library's
    default floating dtype (NumPy: float64)."""
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal((5, 3)) for _ in range(3)]
    assert lossreg.triplet_margin_with_distance_loss(*arrays, distance_function=_DISTANCES["float32"]).dtype \
        == np.float32
    assert lossreg.triplet_margin_with_distance_loss(*arrays, distance_function=_DISTANCES["int64"]).dtype \
        == np.float64
    with jax.enable_x64(True):
        got = lossreg.triplet_margin_with_distance_loss(*map(jnp.asarray, arrays), reduction="none",
                                                        distance_function=_DISTANCES["float32"])
        assert got.dtype == jnp.float32
    want = F.triplet_margin_with_distance_loss(*map(torch.from_numpy, arrays), reduction="none",
                                               distance_function=_DISTANCES["float32"])
    np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-6)


# --- lossreg.torch: dir() and LinearCrossEntropyLoss's bias ----------------------------------


def test_dir_of_lossreg_torch_lists_the_functional_forms_it_gives():
    """``lossreg.torch.cross_entropy`` (what a traced loss module's graph calls) is there; dir() and
    tab completion listed only the module classes."""
    names = dir(lt)
    for name in ("cross_entropy", "linear_cross_entropy", "mse_loss"):
        assert name in names and callable(getattr(lt, name))
    assert {"CrossEntropyLoss", "LinearCrossEntropyLoss", "LossModule"} <= set(names)


def test_linear_cross_entropy_loss_bias_defaults_to_false_as_torch_nn():
    import inspect
    ours = inspect.signature(lt.LinearCrossEntropyLoss).parameters["bias"].default
    assert ours is inspect.signature(torch.nn.LinearCrossEntropyLoss).parameters["bias"].default is False
    assert lt.LinearCrossEntropyLoss(4, 5).linear.bias is None
    assert lt.LinearCrossEntropyLoss(4, 5, bias=True).linear.bias is not None
    # Without a layer, bias=False (torch.nn's "no bias") is no bias; an array is linear_bias's old name.
    h, w, t = torch.randn(3, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64), torch.tensor([0, 1, 4])
    want = F.cross_entropy(h @ w.T, t)
    torch.testing.assert_close(lt.LinearCrossEntropyLoss(bias=False)(h, w, t), want)
    b = torch.randn(5, dtype=torch.float64)
    torch.testing.assert_close(lt.LinearCrossEntropyLoss(bias=b)(h, w, t), F.cross_entropy(h @ w.T + b, t))


def test_linear_cross_entropy_loss_bias_true_without_a_layer_is_refused_when_made():
    """torch.nn's bias=True is the owned layer's; without in_features it failed only at the call,
    with 'bias expected a real floating-point array, got ... torch.bool'."""
    with pytest.raises(TypeError, match="give in_features and num_classes"):
        lt.LinearCrossEntropyLoss(bias=True)


# --- toolkit.real_dtype: one complex-to-real map, l1_loss's and the embedding losses' ---------


@pytest.mark.parametrize("library", ["numpy", "torch", "jax", "array_api_strict"])
def test_real_dtype_is_the_real_one_of_a_complex_dtypes_precision(library):
    from lossreg import toolkit
    xp = {"numpy": array_api_compat.numpy, "torch": array_api_compat.torch, "jax": jnp}.get(library) \
        or pytest.importorskip(library)
    with jax.enable_x64(True):
        assert toolkit.real_dtype(xp, xp.complex64) == xp.float32
        assert toolkit.real_dtype(xp, xp.complex128) == xp.float64
        assert toolkit.real_dtype(xp, xp.float32) == xp.float32
        # what abs of such an array is: a dtype lossreg's result_type takes (not NumPy's scalar type)
        x = xp.asarray([1 + 2j], dtype=xp.complex64)
        assert toolkit.result_type(xp, toolkit.real_dtype(xp, x.dtype)) == xp.abs(x).dtype


# --- conformance: an outcome in which no case applies is "not_applicable", not "passed" --------


@lossreg.define_loss(class_name="LeftoverSquaredLoss", differentiable=("input", "target"))
def leftover_squared_loss(input, target, /, *, reduction: str = "mean"):
    """ℓ_i = (x_i - y_i)², then reduced."""
    from lossreg import toolkit
    xp, x, y, dtype = toolkit.pointwise_inputs("leftover_squared_loss", input, target, reduction)
    return toolkit.reduce(xp, (x - y) ** 2, reduction, dtype)


class _Float64Only:
    """A plugin whose one case is restricted to float64."""

    @lossreg.hookimpl
    def lossreg_losses(self):
        return [leftover_squared_loss]

    @lossreg.hookimpl
    def lossreg_cases(self):
        from lossreg.testing import Case, value_case
        x, y = np.array([1.0, 2.0, 3.0]), np.array([0.5, 2.5, 1.0])
        return [Case.from_dict(value_case("leftover_squared_loss", "sum", {"input": x, "target": y},
                                          ((x - y) ** 2).sum(), {"reduction": "sum"}, dtypes=["float64"]))]


@pytest.fixture
def float64_only():
    lossreg.register_plugin(_Float64Only(), name="leftovers-f64")
    try:
        yield
    finally:
        lossreg.unregister_plugin("leftovers-f64")


def _conformance_json(tmp_path, dtypes: str) -> tuple[int, dict, str]:
    import contextlib
    import io
    import json

    from lossreg import cli
    out, report = io.StringIO(), tmp_path / "report.json"
    with contextlib.redirect_stdout(out):
        code = cli.main(["conformance", "--backend", "numpy", "--loss", "leftover_squared_loss",
                         "--dtype", dtypes, "--json", str(report)])
    return code, json.loads(report.read_text()), out.getvalue()


def test_conformance_outcome_with_no_applicable_case_is_not_applicable_everywhere(float64_only, tmp_path):
    """The JSON said status "passed" (and the summary "1 passed") for float32, where no case ran."""
    code, report, matrix = _conformance_json(tmp_path, "float32,float64")
    by_dtype = {o["dtype"]: o for o in report["outcomes"] if o["path"] == "portable"}
    assert by_dtype["float32"]["status"] == "not_applicable" and by_dtype["float32"]["cases"] == 0
    assert by_dtype["float32"]["reason"] == "no case applies to this dtype"
    assert by_dtype["float64"]["status"] == "passed" and by_dtype["float64"]["cases"] == 1
    assert report["summary"]["not_applicable"] >= 1 and report["summary"]["case_runs"] >= 1
    assert "n/a" in matrix and "0 failed, 0 unsupported, 1 not applicable" in matrix
    assert code == 0  # the float64 case ran and passed
    code, report, matrix = _conformance_json(tmp_path, "float32")  # nothing ran: not a pass
    assert code == 1 and {o["status"] for o in report["outcomes"]} == {"not_applicable"}
    assert report["summary"]["passed"] == 0


def test_check_conformance_warns_of_what_no_case_applied_to(float64_only):
    from lossreg.testing import check_conformance
    with pytest.warns(UserWarning, match="no case applies to leftover_squared_loss in float32"):
        outcomes = check_conformance("leftover_squared_loss", backends="numpy", dtypes="float32,float64")
    assert {o.dtype: o.status for o in outcomes if o.path == "portable"} == {"float32": "not_applicable",
                                                                            "float64": "passed"}


def test_merged_slices_pass_where_one_ran_and_not_applicable_where_none_did():
    from lossreg import conformance

    def part(status, cases):
        return [conformance.Outcome("mse_loss", "lossreg", "numpy", "float64", "cpu", "portable", status,
                                    cases=cases, total=9)]

    assert conformance._merge([part("not_applicable", 0), part("passed", 2)])[0].status == "passed"
    assert conformance._merge([part("not_applicable", 0), part("not_applicable", 0)])[0].status == "not_applicable"


# --- conformance --jobs: a worker process that dies ----------------------------------------------

_DYING_PLUGIN = '''
import os

import numpy as np

import lossreg
from lossreg import toolkit
from lossreg.testing import Case, value_case


@lossreg.define_loss(class_name="LeftoverDyingLoss", differentiable=("input", "target"))
def leftover_dying_loss(input, target, /, *, reduction="mean"):
    """The squared error; in float32 its process dies (os._exit, as native code crashing would)."""
    xp, x, y, dtype = toolkit.pointwise_inputs("leftover_dying_loss", input, target, reduction)
    if x.dtype == xp.float32:
        os._exit(1)
    return toolkit.reduce(xp, (x - y) ** 2, reduction, dtype)


@lossreg.hookimpl
def lossreg_losses():
    return [leftover_dying_loss]


@lossreg.hookimpl
def lossreg_cases():
    x, y = np.array([1.0, 2.0, 3.0]), np.array([0.5, 2.5, 1.0])
    return [Case.from_dict(value_case("leftover_dying_loss", "sum", {"input": x, "target": y},
                                      ((x - y) ** 2).sum(), {"reduction": "sum"}))]
'''


def test_conformance_jobs_reports_the_task_whose_worker_died_and_the_others(tmp_path, monkeypatch):
    """It ended with a bare BrokenProcessPool traceback, no matrix, no report of the other tasks."""
    import contextlib
    import importlib
    import io
    import json

    from lossreg import cli
    (tmp_path / "leftover_dying_plugin.py").write_text(_DYING_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))  # the worker processes import it by its name
    lossreg.register_plugin(importlib.import_module("leftover_dying_plugin"), name="leftovers-dying")
    try:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = cli.main(["conformance", "--backend", "numpy", "--loss", "leftover_dying_loss,mse_loss",
                             "--jobs", "2", "--json", str(tmp_path / "report.json")])
    finally:
        lossreg.unregister_plugin("leftovers-dying")
    assert code == 1
    assert "died running leftover_dying_loss on numpy/float32" in out.getvalue()
    report = json.loads((tmp_path / "report.json").read_text())
    status = {(o["loss"], o["dtype"], o["path"]): o["status"] for o in report["outcomes"]}
    assert status[("leftover_dying_loss", "float32", "portable")] == "failed"
    assert status[("leftover_dying_loss", "float64", "portable")] == "passed"
    assert {s for (loss, _, _), s in status.items() if loss == "mse_loss"} == {"passed"}


def test_docs_read_not_applicable_outcomes_as_nothing_checked_not_as_a_pass():
    """The loss pages and the README's "verified on" column: n/a is neither a pass nor a failure
    (an earlier report's "passed" with 0 cases run reads as n/a too)."""
    from lossreg import docs
    from lossreg.docsite import pages

    def outcome(dtype, status, cases):
        return {"loss": "mse_loss", "backend": "numpy", "device": "cpu", "dtype": dtype, "path": "portable",
                "status": status, "cases": cases, "worst": 0.0, "reason": ""}

    for old in (outcome("float32", "not_applicable", 0), outcome("float32", "passed", 0)):
        assert pages._cell([old]).startswith("n/a")
    report = {"outcomes": [outcome("float32", "not_applicable", 0), outcome("float64", "passed", 3)]}
    assert docs.verified(report) == {"mse_loss": ["numpy"]}
