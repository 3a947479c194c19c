"""The conformance suite as its users run it: a plugin author's ``lossreg conformance`` in CI, its
exit status and report, and the suite's reading of a plugin's cases.

Each test registers a small plugin in this process (``lossreg.register_plugin``), as a notebook or
a test would, and runs the command in this process (``lossreg.cli.main``).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import redirect_stdout
from typing import Any

import numpy as np
import pytest

import lossreg
from lossreg import cli, conformance, define_loss, hookimpl, toolkit
from lossreg.testing import Case, value_case

X, Y = np.array([1.0, 2.0, 3.0]), np.array([0.5, 2.5, 1.0])
# What the loss does, set by each test: None computes it right, else an exception to raise.
FAULT: list[BaseException | None] = [None]


@define_loss(class_name="HuntSquaredLoss", differentiable=("input", "target"))
def hunt_squared_loss(input: Any, target: Any, /, *, reduction: str = "mean") -> Any:
    """ℓ_i = (x_i - y_i)², then reduced; raises what a test asks it to."""
    xp, x, y, dtype = toolkit.pointwise_inputs("hunt_squared_loss", input, target, reduction)
    if FAULT[0] is not None:
        raise FAULT[0]
    return toolkit.reduce(xp, (x - y) ** 2, reduction, dtype)


class Plugin:
    def __init__(self, **case: Any) -> None:
        self.case = case

    @hookimpl
    def lossreg_losses(self) -> list[Any]:
        return [hunt_squared_loss]

    @hookimpl
    def lossreg_cases(self) -> list[Case]:
        return [Case.from_dict(value_case("hunt_squared_loss", "sum", {"input": X, "target": Y}, ((X - Y) ** 2).sum(),
                                          {"reduction": "sum"}, grads={"input": 2 * (X - Y), "target": 2 * (Y - X)},
                                          **self.case))]


@pytest.fixture
def plugin(request: pytest.FixtureRequest) -> Iterator[None]:
    """The plugin registered in this process, with the case fields the test's parameter gives."""
    lossreg.register_plugin(Plugin(**getattr(request, "param", {})), name="hunt")
    try:
        yield
    finally:
        FAULT[0] = None
        lossreg.unregister_plugin("hunt")


def conformance_cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli.main(["conformance", "--backend", "numpy", "--loss", "hunt_squared_loss", *args])
    return code, out.getvalue()


# --- the exit status -------------------------------------------------------------------------------

@pytest.mark.parametrize("plugin", [{"dtypes": ["float64"]}], indirect=True)
def test_a_run_in_which_no_case_applies_to_the_dtypes_is_nothing_ran_not_a_pass(plugin: None,
                                                                                capsys: pytest.CaptureFixture) -> None:
    """Every case restricted to float64 and the run asked for float32: the matrix says n/a and "0
    case runs", and the command exits 1, as the README says of a run in which nothing ran; it
    exited 0, a CI job passing on a check that never happened."""
    code, out = conformance_cli("--dtype", "float32")
    assert "n/a" in out and "0 case runs" in out
    assert code == 1 and "nothing ran" in capsys.readouterr().err
    code, out = conformance_cli("--dtype", "float32,float64")  # one case ran: a pass
    assert code == 0 and "1 case runs" in out


@pytest.mark.parametrize("plugin", [{"dtypes": ["float64"]}], indirect=True)
def test_the_json_summary_says_how_many_cases_ran_as_the_matrix_and_the_exit_status_do(plugin: None,
                                                                                       tmp_path: Any) -> None:
    """Its counts of statuses alone read "1 passed, 0 failed" for the run that exits 1 as nothing ran."""
    for dtypes, runs, status in (("float32", 0, 1), ("float32,float64", 1, 0)):
        report = tmp_path / "report.json"
        code, out = conformance_cli("--dtype", dtypes, "--json", str(report))
        summary = json.loads(report.read_text())["summary"]
        assert code == status and summary["case_runs"] == runs and f"; {runs} case runs" in out


@pytest.mark.parametrize("plugin", [{"dtypes": ["float64"]}], indirect=True)
def test_check_conformance_skips_a_test_in_which_no_case_applies_to_the_dtypes(plugin: None) -> None:
    """The pytest side says the same: skipped, saying why, not passed with nothing checked."""
    from lossreg.testing import check_conformance

    with pytest.raises(pytest.skip.Exception, match="no case applies"):
        check_conformance("hunt_squared_loss", backends="numpy", dtypes="float32")
    assert check_conformance("hunt_squared_loss", backends="numpy", dtypes="float64")[0].cases == 1


# --- a loss that raises: its case fails, saying what it raised; the run goes on ------------------

class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message")


@pytest.mark.parametrize(("raised", "said"), [
    (SystemExit(0), "raised SystemExit: 0"),        # ended the run, status 0, no matrix, no report
    (SystemExit("bye"), "raised SystemExit: bye"),  # ended the run, status 1, no matrix
    (Unprintable(), "raised Unprintable: (its message could not be read: RuntimeError)"),  # a traceback
    (AssertionError(), "raised AssertionError"),    # a bare `assert` in the loss: the failure read "sum: "
])
def test_whatever_a_loss_raises_fails_its_case_with_the_matrix_and_the_report(plugin: None, raised: BaseException,
                                                                              said: str, tmp_path: Any) -> None:
    FAULT[0] = raised
    report = tmp_path / "report.json"
    code, out = conformance_cli("--dtype", "float64", "--json", str(report))
    assert code == 1
    assert f"FAIL hunt_squared_loss [numpy/float64/cpu, portable]\n       sum: {said}" in out
    outcome, = json.loads(report.read_text())["outcomes"]
    assert outcome["status"] == "failed" and outcome["failures"][0].startswith(f"sum: {said}")


def test_the_suites_own_verdicts_are_not_said_to_be_raised_by_the_loss(plugin: None) -> None:
    case, = [c for c in lossreg.registry().cases if c.loss == "hunt_squared_loss"]
    wrong = Case.from_dict({**case.__dict__, "expected": 4.6})
    with pytest.raises(AssertionError) as verdict:
        conformance.check_case(wrong, lossreg.spec("hunt_squared_loss"), hunt_squared_loss,
                               lossreg.registry().backends["numpy"], "float64", "cpu")
    assert conformance._ours(verdict.value) and "value off by" in str(verdict.value)


# --- how many cases ----------------------------------------------------------------------------------

@pytest.mark.parametrize("limit", ["00", "numpy=000", "numpy=cover,00"])
def test_max_cases_zero_in_any_spelling_is_refused_as_0_is(limit: str, capsys: pytest.CaptureFixture) -> None:
    """"00" ran no case and failed every loss as "no conformance cases are registered for this loss"."""
    code, out = _cli_builtin("--max-cases", limit)
    assert code == 2 and out == ""
    assert "--max-cases 0 would run nothing" in capsys.readouterr().err


def _cli_builtin(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli.main(["conformance", "--backend", "numpy", "--loss", "mse_loss", *args])
    return code, out.getvalue()


@pytest.mark.parametrize("limit", [0, -1, {"numpy": 0}, {"*": -3, "numpy": "cover"}, "all"])
def test_run_refuses_a_case_limit_that_selects_nothing(limit: Any) -> None:
    with pytest.raises(lossreg.LossValueError, match="max_cases"):
        conformance.run(["numpy"], ["float64"], losses=["mse_loss"], max_cases=limit)
    outcome, = conformance.run(["numpy"], ["float64"], losses=["mse_loss"], max_cases=np.int64(1))[:1]
    assert outcome.status == "passed" and outcome.cases == 1


# --- a plugin's case file with a malformed entry ------------------------------------------------------

class FilePlugin:
    def __init__(self, path: Any) -> None:
        self.path = path

    @hookimpl
    def lossreg_losses(self) -> list[Any]:
        return [hunt_squared_loss]

    @hookimpl
    def lossreg_cases(self) -> list[Any]:
        return [self.path]


GOOD = value_case("hunt_squared_loss", "sum", {"input": X, "target": Y}, ((X - Y) ** 2).sum(), {"reduction": "sum"})


@pytest.mark.parametrize(("entry", "said"), [
    ({k: v for k, v in GOOD.items() if k != "id"}, "cases[1]: no 'id' field"),
    ({k: v for k, v in GOOD.items() if k != "inputs"}, "cases[1]: case 'sum': no 'inputs' field"),
    ([1, 2], "cases[1]: list [1, 2], not an object"),
    ({**GOOD, "inputs": [[1.0], [2.0]]}, "cases[1]: case 'sum': 'inputs' is list"),
    ({**GOOD, "options": ["sum"]}, "cases[1]: case 'sum': 'options' is list"),
])
def test_a_malformed_entry_of_a_case_file_is_a_fault_naming_the_file_and_entry(entry: Any, said: str,
                                                                                 tmp_path: Any) -> None:
    """Not Case.__init__'s "missing 1 required positional argument" (which entry?) nor, for inputs
    or options given as a list, an AttributeError out of the registry: that broke lossreg.get("mse")
    and `lossreg list` in every process that loaded the plugin, where a fault keeps the rest working."""
    path = tmp_path / "cases.json"
    path.write_text(json.dumps({"loss": "hunt_squared_loss", "cases": [{**GOOD, "id": "first"}, entry]}))
    with pytest.warns(lossreg.LossregPluginWarning) as warned:
        lossreg.register_plugin(FilePlugin(path), name="hunt-file")
    try:
        fault, = lossreg.registry().plugins["hunt-file"].faults
        assert f"cannot read {path}: ValueError: {said}" in fault
        assert any(said in str(w.message) for w in warned)
        assert lossreg.get("mse")(np.ones(2), np.zeros(2)) == 1.0  # everything else keeps working
    finally:
        lossreg.unregister_plugin("hunt-file")


@pytest.mark.parametrize("array", [[1.0, 2.0, 3.0], {"values": [1.0, 2.0, 3.0], "dtype": "float"}])
def test_an_input_not_written_as_a_case_files_array_is_a_fault_not_a_failure_at_every_run(array: Any,
                                                                                          tmp_path: Any) -> None:
    """It was registered, then failed on every backend as "raised AttributeError: 'list' object has
    no attribute 'get'" or "raised KeyError: 'data'"."""
    path = tmp_path / "cases.json"
    path.write_text(json.dumps({"cases": [GOOD, {**GOOD, "id": "bare", "inputs": {**GOOD["inputs"], "input": array}}]}))
    with pytest.warns(lossreg.LossregPluginWarning, match="case 'bare' .* is not used: inputs 'input' are not arrays"):
        lossreg.register_plugin(FilePlugin(path), name="hunt-file")
    try:
        assert [c.id for c in lossreg.registry().cases if c.loss == "hunt_squared_loss"] == ["sum"]
    finally:
        lossreg.unregister_plugin("hunt-file")


def test_a_case_made_in_code_with_a_list_of_inputs_is_a_fault_not_a_broken_registry() -> None:
    plugin = FilePlugin(Case(loss="hunt_squared_loss", id="listed", inputs=[X, Y], expected=1.0))  # type: ignore[arg-type]
    with pytest.warns(lossreg.LossregPluginWarning, match="case 'listed' .* is not used: malformed: AttributeError"):
        lossreg.register_plugin(plugin, name="hunt-file")
    try:
        assert lossreg.get("mse")(np.ones(2), np.zeros(2)) == 1.0
    finally:
        lossreg.unregister_plugin("hunt-file")


# --- jobs > 1 with a plugin registered in this process -----------------------------------------------

def _mse_off_by_a_thousandth(input: Any, target: Any, /, *, reduction: str = "mean") -> Any:
    xp, x, y, dtype = toolkit.pointwise_inputs("mse_loss", input, target, reduction)
    return toolkit.reduce(xp, (x - y) ** 2 * 1.001, reduction, dtype)


class KernelPlugin:
    """A kernel for another plugin's loss (the built-in mse_loss on NumPy), wrong by 1e-3."""

    def __init__(self, unpicklable: bool = False) -> None:
        self.lock = __import__("threading").Lock() if unpicklable else None

    @hookimpl
    def lossreg_kernels(self) -> list[Any]:
        return [lossreg.Kernel(loss="mse_loss", backend="numpy", function=_mse_off_by_a_thousandth, name="off")]


@pytest.fixture
def kernel_plugin(request: pytest.FixtureRequest) -> Iterator[None]:
    lossreg.register_plugin(KernelPlugin(**getattr(request, "param", {})), name="hunt-kernel")
    try:
        yield
    finally:
        lossreg.unregister_plugin("hunt-kernel")


def test_worker_processes_check_the_kernels_of_a_plugin_registered_in_this_process(kernel_plugin: None) -> None:
    """With jobs=2 the workers, which load plugins from entry points, did not have it: its wrong
    kernel was left out and mse_loss passed, on the portable path alone, as with jobs=1 it fails."""
    for jobs in (1, 2):
        found = {o.path: o.status for o in conformance.run(["numpy"], ["float64"], losses=["mse_loss"],
                                                           jobs=jobs)}
        assert found["kernel:off"] == "failed", (jobs, found)


def test_worker_processes_know_the_losses_of_a_plugin_registered_in_this_process(plugin: None) -> None:
    """It was an UnknownLossError out of a worker: "no loss named 'hunt_squared_loss'"."""
    outcome, = conformance.run(["numpy"], ["float64"], losses=["hunt_squared_loss"], jobs=2)
    assert outcome.status == "passed" and outcome.cases == 1


@pytest.mark.parametrize("kernel_plugin", [{"unpicklable": True}], indirect=True)
def test_a_plugin_that_cannot_be_sent_to_workers_runs_the_suite_here_saying_so(kernel_plugin: None) -> None:
    with pytest.warns(lossreg.LossregPluginWarning, match="'hunt-kernel' cannot be pickled .* runs in this process"):
        found = {o.path: o.status for o in conformance.run(["numpy"], ["float64"], losses=["mse_loss"],
                                                           jobs=2)}
    assert found["kernel:off"] == "failed"


def _cannot_be_rebuilt() -> None:
    raise RuntimeError("not in this process")


class OnlyHere(KernelPlugin):
    def __reduce__(self) -> Any:
        return _cannot_be_rebuilt, ()


def test_a_plugin_a_worker_cannot_rebuild_is_an_error_saying_so_not_another_registrys_verdict() -> None:
    lossreg.register_plugin(OnlyHere(), name="hunt-kernel")
    try:
        with pytest.raises(lossreg.PluginError, match="'hunt-kernel', registered in the calling process, could not be "
                                                      "registered in a worker process: RuntimeError"):
            conformance.run(["numpy"], ["float64"], losses=["mse_loss"], jobs=2)
    finally:
        lossreg.unregister_plugin("hunt-kernel")


# --- lossreg bench --------------------------------------------------------------------------------------

def test_bench_refuses_an_out_it_cannot_write_before_timing_anything(tmp_path: Any,
                                                                     capsys: pytest.CaptureFixture) -> None:
    """As conformance's --json: it timed every row, then ended in a traceback (FileExistsError,
    status 1) and the results were lost."""
    (tmp_path / "file").write_text("")
    code = cli.main(["bench", "--size", "tiny", "--loss", "mse", "--library", "numpy", "--budget", "0.01",
                     "--out", str(tmp_path / "file" / "cpu")])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert f"lossreg bench: --out {tmp_path / 'file' / 'cpu'}: cannot write there" in err


# --- --json on stdout, with a plugin that prints ----------------------------------------------------------

def test_json_on_stdout_stays_json_when_an_installed_plugin_prints_as_it_loads(tmp_path: Any) -> None:
    """A plugin (or a library it imports) that prints as it is imported or registered wrote that
    line at the head of `lossreg list --json`, `plugins --json` and `conformance --json`, which
    `jq` and json.load then refused: the README promises JSON only there. It goes to stderr now."""
    (tmp_path / "lossreg_chatty.py").write_text(textwrap.dedent('''
        print("lossreg-chatty: hello")
        from lossreg import hookimpl

        @hookimpl
        def lossreg_cases():
            print("lossreg-chatty: registering")
            return []
    '''))
    info = tmp_path / "lossreg_chatty-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lossreg-chatty\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[lossreg]\nchatty = lossreg_chatty\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOSSREG_")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), *filter(None, [env.get("PYTHONPATH")])])
    for args in (["list", "--json"], ["plugins", "--json"],
                 ["conformance", "--loss", "mse", "--dtype", "float64", "--max-cases", "1", "--json"]):
        done = subprocess.run([sys.executable, "-m", "lossreg", *args], capture_output=True, text=True, env=env,
                              timeout=300, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        json.loads(done.stdout)
        assert "lossreg-chatty: hello" in done.stderr and "lossreg-chatty: registering" in done.stderr
    done = subprocess.run([sys.executable, "-m", "lossreg", "list"], capture_output=True, text=True, env=env,
                          timeout=300, stdin=subprocess.DEVNULL)
    assert done.stdout.startswith("lossreg-chatty: hello")  # without --json, stdout is the person's, as before


# --- the pytest plugin's marker on a lossreg_conformance test -------------------------------------------

MARKED_TESTS = """
import pytest


@pytest.mark.lossreg(backends=["numpy"])
def test_numpy_only(lossreg_conformance):
    outcomes = lossreg_conformance(["mse_loss"])
    assert {o.backend for o in outcomes} == {"numpy"}


@pytest.mark.lossreg(backends="jax_jit")
def test_not_chosen(lossreg_conformance):
    lossreg_conformance(["mse_loss"])


def test_unmarked(lossreg_conformance):
    outcomes = lossreg_conformance(["mse_loss"], dtypes="float64")
    assert {o.backend for o in outcomes} == {"numpy", "array_api_strict"}
"""


def _pytest_project(tmp_path: Any, tests: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["lossreg.pytest_plugin"]\n')
    (tmp_path / "test_mine.py").write_text(tests)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOSSREG_")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:randomly", "-p", "no:cacheprovider",
                           "-p", "no:xdist", "--lossreg-backend", "numpy,array_api_strict", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600, env=env)


def test_the_lossreg_marker_restricts_a_lossreg_conformance_test_as_it_does_a_lossreg_xp_test(tmp_path: Any) -> None:
    """The README: the marker "restricts one test". On a test of lossreg_conformance it was ignored:
    the suite ran on every --lossreg-backend, and a test marked for a backend the run did not choose
    ran (and passed) where a lossreg_xp test is skipped, saying so."""
    done = _pytest_project(tmp_path, MARKED_TESTS)
    assert done.returncode == 0, done.stdout
    assert "2 passed, 1 skipped" in done.stdout
    assert "marked for lossreg backends jax_jit, none of --lossreg-backend numpy,array_api_strict" in done.stdout


def test_a_lossreg_conformance_test_marked_with_an_unknown_backend_is_a_collection_error(tmp_path: Any) -> None:
    """As for a lossreg_xp test; it ran on every backend, the typo unseen."""
    done = _pytest_project(tmp_path, MARKED_TESTS.replace('backends="jax_jit"', 'backends="jax-jit"'))
    assert done.returncode == 2, done.stdout  # pytest's "interrupted: errors during collection"
    assert "names 'jax-jit', which no registered backend is" in done.stdout


# --- a device option that names nothing ----------------------------------------------------------------

@pytest.mark.parametrize("device", ["", "  "])
def test_an_empty_device_is_a_usage_error_not_a_run_on_the_default_device(device: str,
                                                                          capsys: pytest.CaptureFixture) -> None:
    """`--device "$DEVICE"` with DEVICE unset ran on the CPU and passed, where a GPU run was asked
    for; as `--backend ""`, it is refused."""
    code, out = _cli_builtin("--device", device)
    assert code == 2 and out == ""
    assert f"--device {device!r} names nothing" in capsys.readouterr().err


def test_an_empty_lossreg_device_is_a_pytest_usage_error(tmp_path: Any) -> None:
    done = _pytest_project(tmp_path, MARKED_TESTS, "--lossreg-device", "")
    assert done.returncode == 4  # pytest's usage error, as for --lossreg-backend ""
    assert "--lossreg-device '' names no device" in done.stderr
