"""The backends: arrays made and read back on each library, dtype and device; gradients; what a
backend reports when it cannot run; backends from plugins; mixed libraries and devices.

Tests that take ``backend`` run once per backend of ``--lossreg-backend`` (lossreg's pytest plugin; tests/conftest.py).
"""

from __future__ import annotations

import io
import json
import types
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import array_api_compat as compat
import numpy as np
import pytest

import lossreg
from lossreg import cli, conformance
from lossreg.backends import Backend, DaskBackend, JAXJitBackend, NumPyBackend
from lossreg.errors import LossError, LossTypeError, LossValueError
from lossreg.hookspecs import hookimpl
from lossreg.registry import registry

# The built-in catalogue (a plugin installed beside lossreg is checked by its own tests).
NAMES = [name for name in lossreg.names() if lossreg.spec(name).plugin == "lossreg"]
DATA = np.array([[0.1, -2.5, 3.0], [1e-3, 7.25, -0.5]])


def _rounded(data: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":  # round to nearest even on the 16 high bits of the float32 pattern
        bits = data.astype("float32").view("uint32")
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        return bits.astype("uint32").view("float32").astype("float64")
    return data.astype(dtype).astype("float64")


def test_round_trip(backend: Backend, device: str) -> None:
    for dtype in backend.dtypes:
        x = backend.asarray(DATA, dtype, device)
        assert str(x.dtype).rsplit(".", 1)[-1] == dtype
        assert backend.owns(x)
        got = backend.to_numpy(x).astype("float64")
        np.testing.assert_array_equal(got, _rounded(DATA, dtype), err_msg=f"{backend.name} {dtype}")
        again = backend.asarray(np.array([1, 2, 3]), "int64", device)
        assert compat.device(again) == compat.device(x)


def test_value_and_grad(backend: Backend, device: str) -> None:
    if backend.value_and_grad is None:
        why = ("JAX's gradients are checked by the jax_jit backend" if backend.name == "jax"
               else "the library has no automatic differentiation")
        pytest.skip(f"the {backend.name} backend checks values only: {why}")
    x, y = backend.asarray(DATA, "float64", device), backend.asarray(DATA * 0, "float64", device)
    value, (gx, gy) = backend.value_and_grad(lossreg.mse_loss.portable, [x, y], [0, 1], {"reduction": "sum"})
    np.testing.assert_allclose(backend.to_numpy(value), (DATA**2).sum())
    np.testing.assert_allclose(backend.to_numpy(gx), 2 * DATA)
    np.testing.assert_allclose(backend.to_numpy(gy), -2 * DATA)


def test_every_builtin_backend_is_registered() -> None:
    assert {"numpy", "array_api_strict", "torch", "jax", "jax_jit", "dask", "cupy"} <= set(registry().backends)


def test_missing_library_is_reported() -> None:
    class Missing(Backend):
        name = module = "lossreg_no_such_array_library"

    assert Missing().unavailable() == "lossreg_no_such_array_library is not installed"
    outcomes = conformance.run([Missing()], ("float64",), None, ["mse_loss"])
    assert [o.status for o in outcomes] == ["unsupported"]
    assert "not installed" in conformance.matrix(outcomes)


def test_unknown_device_is_reported() -> None:
    outcomes = conformance.run(["numpy"], ("float64",), "cuda", ["mse_loss"])
    assert outcomes[0].status == "unsupported" and "no device 'cuda'" in outcomes[0].reason


def test_torch_without_cuda_says_so() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    why = registry().backends["torch"].device_unavailable("cuda")
    assert why and "CUDA" in why
    assert any(line.startswith("torch on cuda: ") for line in conformance.not_covered(["torch"]))


def test_run_says_what_it_cannot_cover() -> None:
    """CI runs on CPUs: the output must say that CuPy and CUDA were not checked, and why."""
    torch = pytest.importorskip("torch")
    lines = conformance.not_covered(["numpy", "torch"])
    if "cupy" not in registry().backends or registry().backends["cupy"].unavailable():
        assert any(line.startswith("cupy: ") for line in lines)
    if not torch.cuda.is_available():
        assert any(line.startswith("torch on cuda: ") and "CUDA" in line for line in lines)
    assert lines[-1].startswith("available here, not requested: ") and "torch" not in lines[-1].split(": ")[1].split(", ")


def test_tolerances_are_derived_from_epsilon() -> None:
    for dtype, (rtol, atol) in conformance.TOLERANCES.items():
        eps = conformance.EPS[dtype]
        assert rtol == atol == conformance.ULPS[dtype] * eps
    assert conformance.EPS["float16"] == np.finfo(np.float16).eps
    assert conformance.EPS["float32"] == np.finfo(np.float32).eps
    assert conformance.MAX["float16"] == float(np.finfo(np.float16).max)


def test_half_precision_case_out_of_range_does_not_apply() -> None:
    case = conformance.Case("mse_loss", "too-big", {"input": {"data": [1e5, 1.0]}, "target": {"data": [0.0, 1.0]}},
                            {"reduction": "none"}, expected=[1e10, 0.0], grads={"input": [2e5, 0.0]})
    spec = lossreg.spec("mse_loss")
    backend = registry().backends["numpy"]
    with pytest.raises(conformance.NotApplicable, match="beyond the float16 range"):
        conformance.check_case(case, spec, spec.function, backend, "float16", "cpu")
    # In float32 the rounded inputs give the reference answer, and the case passes.
    assert conformance.check_case(case, spec, spec.function, backend, "float32", "cpu") <= 1


def test_half_precision_is_judged_at_the_rounded_inputs() -> None:
    """|x - y| of two nearly equal numbers: float16 rounding moves the exact answer by far more
    than its tolerance, yet the float16 result is the exact answer at the rounded inputs."""
    x, y = np.array([1.0001, 2.0004]), np.array([1.0, 2.0])
    case = conformance.Case("l1_loss", "cancel", {"input": {"data": x.tolist()}, "target": {"data": y.tolist()}},
                            {"reduction": "none"}, expected=np.abs(x - y).tolist(), grads={})
    spec = lossreg.spec("l1_loss")
    numpy = registry().backends["numpy"]
    assert conformance.check_case(case, spec, spec.function, numpy, "float16", "cpu") <= 1
    wrong = conformance.Case(**{**case.__dict__, "expected": [5e-4, 5e-4]})  # torch's answer is the reference
    with pytest.raises(AssertionError, match="disagrees with the golden"):
        conformance.check_case(wrong, spec, spec.function, numpy, "float16", "cpu")


@pytest.mark.parametrize("backend", ["torch", "jax_jit"])
def test_a_golden_gradient_of_an_array_not_declared_differentiable_is_checked(backend: str) -> None:
    """soft_margin_loss declares only its input differentiable, yet differentiates a target that
    requires grad: a case that gives the target's gradient is held to it, not passed unchecked."""
    pytest.importorskip("torch" if backend == "torch" else "jax")
    x, y = np.array([0.5, -1.0, 2.0]), np.array([1.0, -1.0, 1.0])
    dy = -x * (1 / (1 + np.exp(y * x))) / 3  # d mean(log(1 + exp(-y x))) / dy
    spec = lossreg.spec("soft_margin_loss")
    assert "target" not in spec.differentiable
    right = conformance.Case("soft_margin_loss", "target-gradient", {"input": {"data": x.tolist()},
                             "target": {"data": y.tolist()}}, {}, expected=float(np.mean(np.log1p(np.exp(-y * x)))),
                             grads={"target": dy.tolist()})
    chosen = registry().backends[backend]
    assert conformance.check_case(right, spec, spec.function, chosen, "float64", "cpu") <= 1
    wrong = conformance.Case(**{**right.__dict__, "grads": {"target": (1000 * dy).tolist()}})
    with pytest.raises(AssertionError, match="gradient of target"):
        conformance.check_case(wrong, spec, spec.function, chosen, "float64", "cpu")


def test_error_cases_on_arrays_not_read_give_nan_and_raise_when_synchronised() -> None:
    """On a GPU the default mode reads no values (a read waits for the device): an invalid value
    poisons the result. The case then passes only if ``value_checks("sync")`` raises its error.
    ``value_checks("poison")`` on NumPy stands in for the GPU here."""
    case = next(c for c in conformance.cases_for(lossreg.spec("binary_cross_entropy"), registry().cases)
                if c.raises == "LossValueError" and c.id == "probability-above-1")
    spec = lossreg.spec("binary_cross_entropy")
    numpy = registry().backends["numpy"]
    with lossreg.value_checks("poison"):
        assert conformance.check_case(case, spec, spec.function, numpy, "float32", "cpu") == 0.0

        def only_nan(input: Any, target: Any, /, **options: Any) -> Any:
            return np.asarray(np.nan, dtype=input.dtype)

        with pytest.raises(AssertionError, match=r"under value_checks\('sync'\) did not raise LossValueError"):
            conformance.check_case(case, spec, only_nan, numpy, "float32", "cpu")
    # Where values are read (eager CPU arrays by default) NaN is no substitute for the error.
    with pytest.raises(AssertionError, match="expected LossValueError"):
        conformance.check_case(case, spec, only_nan, numpy, "float32", "cpu")


class ReadOnlyNumPy(NumPyBackend):
    """NumPy arrays that refuse writes: a loss that writes into its inputs fails here."""

    name = "numpy_frozen_test"
    short = "np-ro"

    def owns(self, x: Any) -> bool:
        return False  # NumPy arrays belong to the numpy backend

    def asarray(self, data: np.ndarray, dtype: str, device: str) -> Any:
        x = np.array(data, dtype=dtype)
        x.flags.writeable = False
        return x


class BackendPlugin:
    @hookimpl
    def lossreg_backends(self) -> list[Backend]:
        return [ReadOnlyNumPy()]


def test_backend_from_a_plugin() -> None:
    lossreg.register_plugin(BackendPlugin(), name="readonly-backend")
    try:
        assert "numpy_frozen_test" in registry().backends
        outcomes = conformance.run(["numpy_frozen_test"], ("float64",), None, ["mse_loss", "cross_entropy"], max_cases=6)
        assert conformance.summarize(outcomes)["failed"] == 0, conformance.matrix(outcomes)
        assert "np-ro" in conformance.matrix(outcomes)
    finally:
        from lossreg.registry import unregister_plugin

        unregister_plugin("readonly-backend")
    assert "numpy_frozen_test" not in registry().backends


def test_dask_backend_refuses_compute_during_the_call() -> None:
    pytest.importorskip("dask")
    backend = DaskBackend()
    x = backend.asarray(DATA, "float64", "cpu")

    def eager(a: Any) -> Any:
        return a * float(a.sum())  # reads a value: computes

    with pytest.raises(AssertionError, match="computed a Dask graph"):
        backend.call(eager, [x], {})
    with pytest.raises(AssertionError, match="not a lazy Dask array"):
        backend.call(lambda a: np.zeros(2), [x], {})
    assert backend.call(lambda a: a * 2, [x], {}).chunks == ((1, 1), (3,))


def test_jax_jit_compiles_once_per_shape_and_options() -> None:
    pytest.importorskip("jax")
    backend = registry().backends["jax_jit"]
    assert isinstance(backend, JAXJitBackend)
    traced = []

    def loss(x: Any, y: Any, /, *, reduction: str = "mean", weights: Any = None) -> Any:
        traced.append(reduction)
        return lossreg.mse_loss.portable(x * weights, y, reduction=reduction)

    x = backend.asarray(DATA, "float64", "cpu")
    w = backend.asarray(np.ones(3), "float64", "cpu")
    for scale in (1.0, 2.0, 3.0):
        backend.call(loss, [x * scale, x], {"reduction": "sum", "weights": w * scale})
    assert traced == ["sum"]
    backend.call(loss, [x, x], {"reduction": "none", "weights": w})
    assert traced == ["sum", "none"]
    value, (grad,) = backend.value_and_grad(loss, [x, x * 0], [0], {"reduction": "sum", "weights": w})
    np.testing.assert_allclose(np.asarray(grad), 2 * DATA)


# --- mixed libraries and devices: a lossreg error naming the loss and the argument ------------

def _valid_inputs(name: str, ndim: int | None = None) -> tuple[list[str], dict[str, np.ndarray]]:
    """The inputs of a loss's first plain case (no expected error; with a first input of ``ndim``
    dimensions, if given), as NumPy arrays."""
    spec = lossreg.spec(name)
    for case in conformance.cases_for(spec, registry().cases):
        if not case.raises and all(n in case.inputs for n in spec.inputs):
            data = {n: conformance._data(case.inputs[n]) for n in spec.inputs}
            if ndim is None or data[spec.inputs[0]].ndim == ndim:
                return list(spec.inputs), data
    if ndim is not None:
        pytest.skip(f"{name} has no case with {ndim}-d inputs")
    pytest.fail(f"{name} has no case to take valid inputs from")


def _assert_names(err: LossError, name: str, argument: str) -> None:
    assert isinstance(err, (ValueError, TypeError)) and err.loss == name, repr(err)
    assert argument in err.argument.split("/"), f"{err.argument!r} does not name {argument!r}: {err}"
    assert str(err).startswith(f"{name}: ")


@pytest.mark.parametrize("name", NAMES)
def test_torch_tensor_among_numpy_arrays(name: str) -> None:
    torch = pytest.importorskip("torch")
    names, data = _valid_inputs(name)
    for mixed in names:
        arrays = [torch.asarray(data[n]) if n == mixed else data[n] for n in names]
        with pytest.raises(LossTypeError) as info:
            getattr(lossreg, name)(*arrays)
        _assert_names(info.value, name, mixed)
        assert "torch" in info.value.got and "one array library" in info.value.expected


@pytest.mark.parametrize("name", NAMES)
def test_array_api_strict_devices_mixed(name: str) -> None:
    xp = pytest.importorskip("array_api_strict")
    names, data = _valid_inputs(name)
    for odd in names:
        for main, other in (("CPU_DEVICE", "device1"), ("device1", "CPU_DEVICE")):
            arrays = [xp.asarray(data[n], device=xp.Device(other if n == odd else main)) for n in names]
            if odd == names[0]:  # the first input sets the device: the second argument is the odd one out
                with pytest.raises(LossValueError) as info:
                    getattr(lossreg, name)(*arrays)
                _assert_names(info.value, name, names[1])
            else:
                with pytest.raises(LossValueError) as info:
                    getattr(lossreg, name)(*arrays)
                _assert_names(info.value, name, odd)
                assert other in info.value.got


@pytest.mark.parametrize("ndim", [None, 0])
@pytest.mark.parametrize("name", NAMES)
def test_torch_devices_mixed(name: str, ndim: int | None) -> None:
    """A tensor on torch's "meta" device (shapes, no data) next to CPU tensors; also 0-d ones,
    which torch's own operators accept on the CPU next to tensors on any device."""
    torch = pytest.importorskip("torch")
    names, data = _valid_inputs(name, ndim)
    odd = names[-1]
    arrays = [torch.asarray(data[n], device="meta" if n == odd else "cpu") for n in names]
    with pytest.raises(LossValueError) as info:
        getattr(lossreg, name)(*arrays)
    _assert_names(info.value, name, odd)
    assert "meta" in info.value.got


# --- the command ---------------------------------------------------------------------------

def _cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli.main(["conformance", *args])
    return code, out.getvalue()


def test_cli_backend_all_lists_what_is_missing(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    code, out = _cli("--backend", "all", "--loss", "mse_loss,cross_entropy", "--dtype", "float64",
                     "--max-cases", "2", "--json", str(report))
    assert code == 0, out
    lines = out.splitlines()
    assert lines[1].split()[0] == "loss" and lines[2].startswith("mse_loss ")
    for name, backend in registry().backends.items():
        why = backend.unavailable()
        if why:
            assert f"not run: {name}: {why}" in lines
        else:
            assert backend.label in lines[0]
    data = json.loads(report.read_text())
    assert data["summary"]["failed"] == 0 and data["versions"]["numpy"] == np.__version__
    assert {"date", "command", "device_names", "seconds", "not_run", "tolerances", "matrix"} <= set(data)


@pytest.mark.parametrize(("args", "message"), [
    (["--backend", "numpy,tensorflow"], "argument 'backend' expected some of numpy, "),
    (["--backend", "numpy", "--dtype", "float128"], "argument 'dtype' expected some of float16, "),
    (["--backend", "numpy", "--loss", "nosuchloss"], "no loss named 'nosuchloss'"),
])
def test_cli_bad_arguments_are_one_line_errors_before_anything_runs(args: list, message: str,
                                                                     capsys: pytest.CaptureFixture) -> None:
    code, out = _cli(*args)
    err = capsys.readouterr().err
    assert code == 2 and out == ""
    assert err.startswith("lossreg: ") and message in err and "Traceback" not in err
    assert "took" not in err  # numpy, named first, did not run


@pytest.mark.parametrize(("args", "message"), [
    (["--backend", "numpy", "--json", "/nonexistent/folder/report.json"], "cannot write there"),
    (["--backend", "numpy", "--max-cases", "0"], "--max-cases 0 would run nothing"),
    (["--backend", "numpy", "--max-cases", "nosuch=3"], "names backend 'nosuch', which is not registered"),
])
def test_cli_arguments_that_would_waste_the_run_are_refused_before_it(args: list, message: str,
                                                                      capsys: pytest.CaptureFixture) -> None:
    code, out = _cli(*args)
    err = capsys.readouterr().err
    assert code == 2 and out == "" and message in err and "Traceback" not in err


def test_cli_a_run_that_checks_nothing_fails(capsys: pytest.CaptureFixture) -> None:
    """As pytest's "no tests ran": every requested backend unavailable is not a pass."""
    missing = next((name for name, b in registry().backends.items() if b.unavailable()), None)
    if missing is None:
        pytest.skip("every registered backend is available here")
    code, out = _cli("--backend", missing, "--loss", "mse_loss")
    assert code == 1 and "nothing ran" in capsys.readouterr().err


def test_a_backend_whose_availability_check_raises_is_a_plugin_fault_not_a_crash() -> None:
    class Broken(Backend):
        name = short = "broken"
        module = "numpy"

        def unavailable(self) -> str | None:
            raise RuntimeError("driver exploded")

    plugin = types.SimpleNamespace(lossreg_backends=lossreg.hookimpl(lambda: [Broken()]))
    with pytest.warns(lossreg.LossregPluginWarning, match="driver exploded"):
        lossreg.register_plugin(plugin, name="broken-backend")
        try:
            code, out = _cli("--backend", "all", "--loss", "mse_loss", "--dtype", "float64", "--max-cases", "1")
            assert code == 0, out
            assert "not run: broken: backend 'broken': unavailable() raised RuntimeError: driver exploded" in out
            assert any("driver exploded" in f for f in registry().plugins["broken-backend"].faults)
        finally:
            lossreg.unregister_plugin("broken-backend")


def test_cli_matrix_stays_compact() -> None:
    names = lossreg.names()  # as registered now (another test's in-process plugins included)
    code, out = _cli("--backend", "numpy,array_api_strict", "--dtype", "all", "--max-cases", "1")
    assert code == 0, out
    header, dtypes, *rows = out.splitlines()
    assert header.split() == ["numpy", "strict"]
    assert dtypes.split() == ["loss", "f16", "f32", "f64", "f32", "f64"]  # no column where nothing ran
    table = rows[: len(names)]
    assert [r.split()[0] for r in table] == names
    assert max(map(len, table)) <= max(map(len, names)) + 2 + 5 * 5
    assert "unsupported  numpy/bf16, strict/f16, strict/bf16" in out or "numpy has no bfloat16" in out


def test_dask_backend_reads_a_result_as_dask_computes_it() -> None:
    # The suite runs a result's graph itself (dask.core.get and the array's finalizer): the same
    # values, shape and dtype as Dask's compute, whatever the chunks.
    da = pytest.importorskip("dask.array")
    backend = DaskBackend()
    x = da.from_array(np.arange(24.0).reshape(4, 6), chunks=(2, 3)) * 2
    results = {
        "blocks of rows and columns": x - 1,
        "a 0-d sum across chunks": x.sum(),
        "chunks of unknown size": x[x > 10],
        "no elements": x[:0],
        "integers": da.argmax(x, axis=1),
        "a result of tasks that return tuples": lossreg.toolkit.by_rows(
            compat.array_namespace(x), lambda xp, a: (xp.sum(a, axis=1), a[:, :1]), x, rows=(0,))[1],
    }
    for what, result in results.items():
        got, want = backend.to_numpy(result), np.asarray(result.compute(scheduler="sync"))
        assert got.shape == want.shape and got.dtype == want.dtype, what
        np.testing.assert_array_equal(got, want, err_msg=what)
