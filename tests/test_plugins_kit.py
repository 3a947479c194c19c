"""The plugin author's kit in lossreg's pytest plugin: check_conformance and the fixtures."""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import lossreg
from lossreg.conformance import Case
from lossreg.testing import check_conformance


@lossreg.define_loss(class_name="KitCubeLoss", differentiable=("input",))
def kit_cube_loss(input: Any, target: Any, /, *, reduction: str = "mean") -> Any:
    """``ℓ_i = (x_i - y_i)³``: a loss for these tests only."""
    from lossreg import toolkit

    xp, x, y, dtype = toolkit.pointwise_inputs("kit_cube_loss", input, target, reduction)
    return toolkit.reduce(xp, (x - y) ** 3, reduction, dtype)


def _case(expected: float, grad: list[float]) -> Case:
    return Case("kit_cube_loss", "sum", {"input": {"data": [1.0, 3.0]}, "target": {"data": [0.0, 1.0]}},
                {"reduction": "sum"}, expected=expected, grads={"input": grad})


@pytest.fixture
def plugin() -> Iterator[types.SimpleNamespace]:
    """An in-process plugin; tests set its cases."""
    found = types.SimpleNamespace(cases=[_case(9.0, [3.0, 12.0])])
    found.lossreg_losses = lossreg.hookimpl(lambda: [kit_cube_loss])
    found.lossreg_cases = lossreg.hookimpl(lambda: found.cases)
    lossreg.register_plugin(found, name="kit")
    yield found
    lossreg.unregister_plugin("kit")


def test_check_conformance_passes_and_returns_the_outcomes(plugin):
    outcomes = check_conformance(plugin="kit", backends="numpy,torch")
    assert {(o.backend, o.dtype, o.status) for o in outcomes} == {
        (b, d, "passed") for b in ("numpy", "torch") for d in ("float32", "float64")}


def test_check_conformance_warns_of_each_backend_it_could_not_run(plugin):
    if lossreg.registry().backends["cupy"].unavailable() is None:
        pytest.skip("CuPy runs here; the check needs a backend that cannot")
    with pytest.warns(UserWarning, match="lossreg conformance: backend cupy not run: cupy is not installed"):
        outcomes = check_conformance(plugin="kit", backends="numpy,cupy", dtypes=["float64"])
    assert [(o.backend, o.status) for o in outcomes] == [("numpy", "passed")]


def test_check_conformance_fails_with_the_matrix(plugin):
    plugin.cases = [_case(9.0, [3.0, 11.0])]  # a wrong gradient: only backends with autograd see it
    lossreg.reload()
    with pytest.raises(pytest.fail.Exception) as failed:
        check_conformance(["kit_cube_loss"], backends=["numpy", "torch"], dtypes=["float64"])
    message = str(failed.value)
    row = next(line for line in message.splitlines() if line.startswith("kit_cube_loss "))
    numpy_cell, torch_cell = row.split()[1:]
    assert numpy_cell.startswith(".") and torch_cell == "FAIL", row  # numpy passed (no gradients), torch failed
    assert "FAIL kit_cube_loss [torch/float64/cpu, portable]" in message and "gradient of input" in message


def test_check_conformance_fails_for_a_loss_without_cases(plugin):
    plugin.cases = []
    lossreg.reload()
    with pytest.raises(pytest.fail.Exception, match="no conformance cases are registered"):
        check_conformance(plugin="kit", backends=["numpy"])


def test_check_conformance_says_what_is_missing():
    with pytest.raises(pytest.fail.Exception, match=r"no lossreg plugin named 'nope' is loaded.*pip install -e"):
        check_conformance(plugin="nope")
    with pytest.raises(pytest.fail.Exception, match="no loss named 'nope_loss' is registered"):
        check_conformance(["nope_loss"])
    with pytest.raises(pytest.fail.Exception, match="unknown backend tensorflow"):
        check_conformance(["mse_loss"], backends=["tensorflow"])


def test_check_conformance_takes_losses_and_dtypes_as_a_comma_separated_string_as_it_takes_backends(plugin):
    outcomes = check_conformance("kit_cube_loss, mse", backends="numpy", dtypes="float64")
    assert {(o.loss, o.dtype) for o in outcomes} == {("kit_cube_loss", "float64"), ("mse_loss", "float64")}


@pytest.mark.parametrize("given", [{"losses": []}, {"losses": " , "}, {"backends": []}, {"dtypes": ""}])
def test_check_conformance_fails_for_a_list_that_names_nothing(plugin, given):
    """As the command's `--loss ''`: a list computed empty is not every loss (losses=[] ran them all and
    passed), nor a skip (backends=[], dtypes=[] skipped the test)."""
    what = next(iter(given))
    with pytest.raises(pytest.fail.Exception, match=f"check_conformance: {what} names nothing"):
        check_conformance(**{"plugin": "kit", **given})


def test_check_conformance_fails_for_a_plugin_with_faults():
    broken = types.SimpleNamespace(lossreg_losses=lossreg.hookimpl(lambda: [kit_cube_loss, 42]))
    with pytest.warns(lossreg.LossregPluginWarning, match="lossreg plugin 'broken': lossreg_losses returned int"):
        lossreg.register_plugin(broken, name="broken")
    try:
        with pytest.raises(pytest.fail.Exception, match="plugin 'broken' is loaded: lossreg_losses returned int"):
            check_conformance(plugin="broken", backends=["numpy"])
    finally:
        lossreg.unregister_plugin("broken")


def test_check_conformance_skips_when_no_backend_can_run(monkeypatch):
    backend = lossreg.registry().backends["numpy"]
    monkeypatch.setattr(type(backend), "unavailable", lambda self: "pretend it is not installed")
    with pytest.raises(pytest.skip.Exception, match="not run: numpy: pretend it is not installed"), \
            pytest.warns(UserWarning, match="backend numpy not run: pretend it is not installed"):
        check_conformance(["mse_loss"], backends=["numpy"])


def test_the_xp_fixture_runs_once_per_backend(lossreg_xp, lossreg_backend):
    x = lossreg_xp.asarray(np.array([1.0, 2.0, 3.0]))
    assert lossreg_backend.owns(x)
    assert float(lossreg.mse_loss(x, x + 1)) == 1.0


def test_the_conformance_fixture_uses_the_command_line_backends(lossreg_conformance, request, plugin):
    outcomes = lossreg_conformance(plugin="kit", dtypes=["float64"])
    wanted = [b.strip() for b in request.config.getoption("--lossreg-backend").split(",")]
    assert [o.backend for o in outcomes] == [b for b in wanted if not lossreg.registry().backends[b].unavailable()]


def test_a_kernel_named_by_alias_is_used_and_may_decline():
    calls = []

    def declining(input: Any, target: Any, /, *, reduction: str = "mean") -> Any:
        calls.append(reduction)
        return NotImplemented  # hands the call back to the portable definition

    plugin = types.SimpleNamespace(lossreg_kernels=lossreg.hookimpl(
        lambda: [lossreg.Kernel(loss="MSE", backend="numpy", function=declining)]))
    lossreg.register_plugin(plugin, name="alias_kernel")
    try:
        assert lossreg.registry().plugins["alias_kernel"].registered == {"kernels": ["mse_loss[numpy]"]}
        assert float(lossreg.mse_loss(np.ones(2), np.zeros(2), reduction="sum")) == 2.0
        assert calls == ["sum"]
    finally:
        lossreg.unregister_plugin("alias_kernel")


def test_the_backend_fixtures_float64_holds_for_their_own_tests_only(tmp_path):
    """JAX's float64 (jax_enable_x64), which the jax backend's fixtures switch on, is off again for
    the next test that does not ask for them."""
    pytest.importorskip("jax")
    import subprocess
    import sys

    (tmp_path / "test_leak.py").write_text(
        "def test_uses_the_backend(lossreg_xp):\n"
        "    lossreg_xp.asarray([1.0], dtype=lossreg_xp.float64)\n\n"
        "def test_plain_jax_after_it():\n"
        "    import jax.numpy as jnp\n"
        "    assert jnp.asarray(1.0).dtype == jnp.float32\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                           "-p", "lossreg.pytest_plugin", "--lossreg-backend", "numpy,jax", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0 and "3 passed" in done.stdout, done.stdout[-2000:]
