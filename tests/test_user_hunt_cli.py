"""The ``lossreg`` command as CI scripts and a terminal use it: run as a real process (the console
script, and ``python -m lossreg``), its exit status, what goes to stdout and to stderr, Ctrl-C,
a pipe closed early, ``lossreg bench``, the pytest plugin in a project of its own, and the
environment switches of the README.

Exit status of ``lossreg`` (``lossreg.cli.main``): 0 done, every case passed; 1 a failure (a case,
a run that checked nothing, ``plugins --strict``); 2 a usage error; 130 interrupted; 141 stdout
closed before the output was written (``| head``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

LOSSREG = str(Path(sys.executable).with_name("lossreg"))
SUBCOMMANDS = ["list", "plugins", "new-plugin", "conformance", "bench", "docs"]
# The fewest cases that still run: one loss, one dtype, two cases.
SMALL = ["--loss", "mse", "--dtype", "float64", "--max-cases", "2"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOSSREG_")}
    env.update(extra)
    return env


def lossreg(*args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    """The console script, as a CI script calls it: stdout and stderr captured (not a terminal)."""
    return subprocess.run([LOSSREG, *args], capture_output=True, text=True, timeout=timeout, env=_env(**env),
                          stdin=subprocess.DEVNULL)


def _no_traceback(err: str) -> None:
    assert "Traceback" not in err and "Exception ignored" not in err, err


# --- the command and its help ---------------------------------------------------------------------

def test_python_dash_m_lossreg_is_the_lossreg_command():
    # `python -m lossreg list` failed: "No module named lossreg.__main__; 'lossreg' is a package
    # and cannot be directly executed".
    by_module = subprocess.run([sys.executable, "-m", "lossreg", "list", "--json"], capture_output=True, text=True,
                               timeout=300, env=_env())
    assert by_module.returncode == 0, by_module.stderr
    assert json.loads(by_module.stdout) == json.loads(lossreg("list", "--json").stdout)


def test_python_dash_m_lossreg_refuses_a_bad_argument_as_the_command_does():
    done = subprocess.run([sys.executable, "-m", "lossreg", "conformance", "--backend", "nosuch"],
                          capture_output=True, text=True, timeout=300, env=_env())
    assert done.returncode == 2 and done.stdout == ""
    assert "argument 'backend' expected some of numpy" in done.stderr
    _no_traceback(done.stderr)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help_on_stdout_and_exits_0(command):
    done = lossreg(command, "--help")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith(f"usage: lossreg {command}")


def test_no_subcommand_and_an_unknown_one_are_usage_errors():
    for args in ([], ["nosuch"]):
        done = lossreg(*args)
        assert done.returncode == 2 and done.stdout == "" and done.stderr.startswith("usage: lossreg")


# --- closing the pipe early, Ctrl-C --------------------------------------------------------------

def test_a_reader_that_stops_early_gets_no_traceback():
    # `lossreg list | head -1` printed a BrokenPipeError traceback and exited 1.
    process = subprocess.Popen([LOSSREG, "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # as `head -1` does once it has its line
    err = process.stderr.read().decode()
    process.wait(timeout=300)
    assert first.split() == [b"name", b"class", b"plugin", b"aliases"]
    _no_traceback(err)
    # 128 + SIGPIPE: what the shell reports for a writer the pipe stopped; 0 when the whole listing
    # was already in the pipe's buffer before the reader closed it (a loaded machine: CI saw it).
    assert process.returncode in (141, 0)


def _sigint_as_at_a_terminal() -> None:
    """Ctrl-C's default disposition in the child, as a shell at a terminal gives it: a test run
    started in the background (``cmd &``, nohup) ignores SIGINT, and children inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt(args: list[str], *, after_line: str | None = None, after_s: float = 0.0) -> tuple[int, str, float]:
    """Run ``lossreg conformance ARGS`` in a process group of its own and press Ctrl-C (SIGINT to the
    whole group, as a terminal does) once stderr shows ``after_line`` or after ``after_s`` seconds;
    the exit status, stderr and the seconds from the signal to the end."""
    process = subprocess.Popen([LOSSREG, "conformance", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=_env(LOSSREG_JAX_CACHE="0"), start_new_session=True,
                               preexec_fn=_sigint_as_at_a_terminal)
    assert process.stderr is not None
    seen = ""
    if after_line is not None:
        for line in process.stderr:
            seen += line
            if after_line in line:
                break
    time.sleep(after_s)
    assert process.poll() is None, "the run ended before it could be interrupted"
    os.killpg(process.pid, signal.SIGINT)
    start = time.perf_counter()
    out, err = process.communicate(timeout=120)
    return process.returncode, seen + err, time.perf_counter() - start


def test_ctrl_c_ends_the_run_with_one_line_and_status_130():
    # Ctrl-C printed a KeyboardInterrupt traceback through the conformance internals.
    # numpy first (quick), then Dask's CTC and eager JAX's (compiling without the disk cache: half a
    # minute or more): interrupted while they run.
    code, err, took = _interrupt(["--backend", "numpy,dask,jax", "--loss", "ctc", "--jobs", "1"],
                                 after_line="numpy on cpu took")
    _no_traceback(err)
    assert err.rstrip().endswith("lossreg: interrupted")
    assert code == 130 and took < 60


def test_ctrl_c_stops_the_worker_processes_of_jobs_at_once_without_their_tracebacks():
    # With --jobs each worker printed "Process SpawnProcess-1: Traceback ... KeyboardInterrupt",
    # and the run waited for the slices in progress before it ended. Eager JAX's CTC compiling
    # without the disk cache takes half a minute or more: workers are busy at 10 s (Dask's CTC
    # alone, once minutes, ended in 7 s and could no longer be interrupted).
    code, err, took = _interrupt(["--backend", "numpy,dask,jax", "--loss", "ctc,triplet", "--jobs", "2"],
                                 after_s=10)
    _no_traceback(err)
    assert err.rstrip().endswith("lossreg: interrupted")
    assert code == 130 and took < 30


# --- the lists of names ---------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["--loss", ""],            # `--loss "$LOSSES"` with LOSSES unset: it ran every loss
    ["--loss", " , "],
    ["--backend", ""],         # it ran nothing and said "nothing ran", status 1, as for a failure
    ["--dtype", ""],
    ["--plugin", ""],
    ["--json", ""],            # `--json "$REPORT"` with REPORT unset: it ran every case, wrote no report, exit 0
])
def test_a_list_option_that_names_nothing_is_a_usage_error(args):
    done = lossreg("conformance", *(["--backend", "numpy"] if args[0] != "--backend" else []), *args)
    assert done.returncode == 2 and done.stdout == ""
    assert f"lossreg conformance: {args[0]} {args[1]!r} names nothing" in done.stderr
    assert "took" not in done.stderr  # refused before anything ran


def test_all_cannot_be_mixed_with_backend_names():
    # It said "argument 'backend' expected some of numpy, ..., got 'all'", as if 'all' were unknown.
    done = lossreg("conformance", "--backend", "all,numpy", "--loss", "mse")
    assert done.returncode == 2 and done.stdout == ""
    assert "--backend all means every one; it cannot be combined with names" in done.stderr


def test_an_unknown_loss_suggests_the_closest_name():
    done = lossreg("conformance", "--backend", "numpy", "--loss", "msee")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == "lossreg: no loss named 'msee'; closest: mse"


def test_spaces_repeats_and_aliases_in_the_lists_run_each_loss_and_backend_once(tmp_path):
    report = tmp_path / "report.json"
    done = lossreg("conformance", "--backend", " numpy , numpy ", "--loss", " mse , MSELoss,mse_loss ",
                   "--dtype", " float64 ", "--max-cases", "2", "--json", str(report))
    assert done.returncode == 0, done.stderr
    data = json.loads(report.read_text())
    assert [(o["loss"], o["backend"], o["dtype"]) for o in data["outcomes"] if o["path"] == "portable"] == [
        ("mse_loss", "numpy", "float64")]


def test_a_backend_whose_library_is_missing_is_a_failure_to_run_not_a_pass():
    done = lossreg("conformance", "--backend", "cupy", "--loss", "mse")
    if "cupy is not installed" not in done.stdout:
        pytest.skip("CuPy is installed here")
    assert done.returncode == 1
    assert "unsupported  cupy/f32, cupy/f64: cupy is not installed" in done.stdout
    assert "lossreg conformance: nothing ran" in done.stderr


@pytest.mark.parametrize("jobs", ["0", "-1", "two"])
def test_jobs_must_be_a_whole_number_of_at_least_one(jobs):
    # --jobs 0 and --jobs -3 were taken silently, as --jobs 1.
    done = lossreg("conformance", "--backend", "numpy", "--loss", "mse", "--jobs", jobs)
    assert done.returncode == 2 and done.stdout == ""
    assert "argument --jobs:" in done.stderr
    _no_traceback(done.stderr)


# --- the report: stdout, stderr and --json ---------------------------------------------------------

def test_a_piped_run_prints_the_matrix_on_stdout_and_plain_progress_lines_on_stderr(tmp_path):
    report = tmp_path / "report.json"
    done = lossreg("conformance", "--backend", "numpy,array_api_strict", *SMALL, "--jobs", "3", "--json", str(report))
    assert done.returncode == 0, done.stderr
    assert "\x1b[" not in done.stdout + done.stderr  # not a terminal: no live display, no colours
    assert done.stderr.splitlines()[-1].startswith("lossreg conformance: total ")
    assert {line.split(" on ")[0] for line in done.stderr.splitlines() if " took " in line} == {
        "lossreg conformance: numpy", "lossreg conformance: array_api_strict"}
    lines = done.stdout.splitlines()
    assert lines[1].split() == ["loss", "f64", "f64"] and lines[2].startswith("mse_loss ")
    # The JSON file holds the totals the matrix's last line gives, and one outcome per cell and path.
    data = json.loads(report.read_text())
    summary = data["summary"]
    total = next(line for line in lines if line.endswith("case runs"))
    assert total.startswith(f"{summary['passed']} passed, {summary['failed']} failed, "
                            f"{summary['unsupported']} unsupported")
    assert sum(o["cases"] for o in data["outcomes"]) == int(total.split("; ")[1].split()[0])
    assert data["command"][:2] == ["lossreg", "conformance"] and data["backends"] == ["numpy", "array_api_strict"]
    assert {"loss", "backend", "dtype", "device", "path", "status", "worst", "cases", "failures"} <= set(
        data["outcomes"][0])


def test_json_alone_prints_the_report_on_stdout_as_list_and_plugins_do():
    # `lossreg list --json` and `lossreg plugins --json` print JSON; `conformance --json` wanted a
    # path ("argument --json: expected one argument"). Alone it prints the report on stdout, JSON
    # only, and the matrix a person reads goes to stderr.
    done = lossreg("conformance", "--json", "--backend", "numpy", *SMALL)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["backends"] == ["numpy"] and data["dtypes"] == ["float64"]
    assert data["summary"]["passed"] >= 1 and data["summary"]["failed"] == 0
    assert {o["loss"] for o in data["outcomes"]} == {"mse_loss"}
    assert any(line.startswith("mse_loss ") for line in done.stderr.splitlines())  # the matrix


def test_json_dash_is_stdout_too():
    done = lossreg("conformance", "--backend", "numpy", *SMALL, "--json", "-")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["summary"]["failed"] == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--backend", "nosuch"], "lossreg: argument 'backend' expected some of numpy"),
    (["--backend", "numpy", "--dtype", "float8"], "lossreg: argument 'dtype' expected some of float16"),
])
def test_an_error_that_names_the_command_is_printed_with_one_prefix(args, message):
    # It printed "lossreg: lossreg conformance: argument 'backend' ...".
    done = lossreg("conformance", "--loss", "mse", *args)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(message), done.stderr
    assert "lossreg conformance:" not in done.stderr and done.stderr.count("lossreg") == 1


# --- lossreg bench ----------------------------------------------------------------------------------

def test_bench_tiny_writes_rows_whose_ratios_are_lossreg_over_native(tmp_path):
    done = lossreg("bench", "--size", "tiny", "--library", "numpy", "--loss", "mse", "--budget", "0.02",
                   "--threads", "1", "--out", str(tmp_path / "cpu"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].split("  ")[:7] == [
        "library", "loss", "size", "mode", "native µs", "lossreg µs", "ratio"]
    data = json.loads((tmp_path / "cpu.json").read_text())
    (row,) = data["rows"]
    assert (row["library"], row["loss"], row["size"], row["shape"]) == ("numpy", "mse", "tiny", [4, 5])
    assert row["kernel_ratio"] == pytest.approx(row["kernel_us"] / row["native_us"])
    assert row["portable_ratio"] == pytest.approx(row["portable_us"] / row["native_us"])
    assert data["torch_threads"] == 1 and (tmp_path / "cpu.md").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--threads", "-2"], "argument --threads: expected at least 1"),   # was torch's RuntimeError, a traceback
    (["--threads", "0"], "argument --threads: expected at least 1"),    # was taken as torch's default
    (["--size", ""], "--size names nothing"),                           # ran nothing, status 0
    (["--library", " , "], "--library names nothing"),
    (["--loss", ""], "--loss names nothing"),                           # ran every loss
    (["--size", "huge"], "unknown size 'huge'"),
    (["--loss", "huber"], "no bench rows for loss 'huber' (huber_loss) on --library torch, numpy; expected one "
                          "of mse, l1, cross_entropy, bce"),  # a registered loss the bench has no rows for
    (["--loss", "nosuch"], "unknown loss 'nosuch'; expected one of mse, l1, cross_entropy, bce"),
    (["--budget", "0"], "argument --budget: expected a number of seconds above 0, got 0"),  # was taken silently
    (["--budget", "-5"], "argument --budget: expected a number of seconds above 0, got -5"),
    (["--budget", "nan"], "argument --budget: expected a number of seconds above 0, got nan"),
    (["--budget", "soon"], "argument --budget: expected a number of seconds above 0, got 'soon'"),
    (["--library", "numpy", "--mode", "jit-forward"], "--mode applies to --library jax only"),  # was ignored
])
def test_bench_refuses_bad_arguments_before_timing_anything(args, message):
    done = lossreg("bench", "--size", "tiny", "--budget", "0.01", *args)
    assert done.returncode == 2 and message in done.stderr
    assert "library  loss" not in done.stdout
    _no_traceback(done.stderr)


def test_bench_jax_refuses_a_loss_it_has_no_peer_for():
    pytest.importorskip("optax")
    # It timed nothing and exited 0 with "Targets met: 0 of 0."
    done = lossreg("bench", "--library", "jax", "--size", "tiny", "--loss", "nosuch", "--budget", "0.01")
    assert done.returncode == 2
    assert "unknown loss 'nosuch' for --library jax; expected one of cross_entropy" in done.stderr
    assert "Targets met" not in done.stdout


def test_bench_loss_takes_any_name_or_alias_of_a_benched_loss(tmp_path):
    # It took only its own row names (mse, l1, cross_entropy, bce): "mse_loss", "MSELoss" and the
    # other names `lossreg.get` takes were unknown losses. Each loss is timed once, under its row name.
    done = lossreg("bench", "--size", "tiny", "--library", "numpy", "--loss", "MSELoss,mean_squared_error,BCELoss",
                   "--budget", "0.01", "--threads", "1", "--out", str(tmp_path / "cpu"))
    assert done.returncode == 0, done.stderr
    rows = json.loads((tmp_path / "cpu.json").read_text())["rows"]
    assert [row["loss"] for row in rows] == ["mse", "bce"]


def test_bench_jax_takes_the_torch_rows_names_and_aliases_as_well():
    # `--library jax --loss mse` was "unknown loss 'mse' for --library jax": the JAX rows took
    # registry names only, the torch rows their short names only. What each library's rows are
    # given (in a process of its own: JAX, optax and Keras stay out of this one, which forks).
    pytest.importorskip("optax")
    done = _python("from lossreg import bench\n"
                   "print(bench.loss_names(['mse', 'CrossEntropyLoss', 'ce', 'huber'], ['jax']))\n"
                   "print(bench.loss_names(['mse_loss', 'cross_entropy', 'bce'], ['torch', 'jax']))\n"
                   "try:\n"
                   "    bench.loss_names(['nosuch'], ['jax'])\n"
                   "except ValueError as error:\n"
                   "    print(error)\n")
    assert done.returncode == 0, done.stderr
    jax_only, both, unknown = done.stdout.splitlines()
    assert jax_only == str((None, ["mse_loss", "cross_entropy", "huber_loss"]))
    assert both == str((["mse", "cross_entropy", "bce"], ["mse_loss", "cross_entropy", "binary_cross_entropy"]))
    assert unknown.startswith("unknown loss 'nosuch' for --library jax; expected one of cross_entropy")


# --- the pytest plugin, in a project of its own -----------------------------------------------------

PROJECT_TEST = '''
import types

import pytest

import lossreg
from lossreg.testing import Case


@lossreg.define_loss(class_name="HuntCubeLoss", differentiable=("input",))
def hunt_cube_loss(input, target, /, *, reduction="mean"):
    """(x - y)^3, reduced: a loss for this project only."""
    from lossreg import toolkit

    xp, x, y, dtype = toolkit.pointwise_inputs("hunt_cube_loss", input, target, reduction)
    return toolkit.reduce(xp, (x - y) ** 3, reduction, dtype)


def _case(case_id, expected):
    return Case("hunt_cube_loss", case_id, {"input": {"data": [1.0, 3.0]}, "target": {"data": [0.0, 1.0]}},
                {"reduction": "sum"}, expected=expected)


plugin = types.SimpleNamespace()
plugin.lossreg_losses = lossreg.hookimpl(lambda: [hunt_cube_loss])
plugin.lossreg_cases = lossreg.hookimpl(lambda: [_case("sum-right", 9.0), _case("sum-wrong", 10.0)])
lossreg.register_plugin(plugin, name="hunt")


def test_conformance_of_my_plugin(lossreg_conformance):
    lossreg_conformance(plugin="hunt")


def test_my_arrays(lossreg_xp, lossreg_backend):
    assert lossreg_xp.asarray([1.0]).shape == (1,)
'''


def _pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    project.joinpath("pytest.ini").write_text("[pytest]\n")
    project.joinpath("conftest.py").write_text('pytest_plugins = ["lossreg.pytest_plugin"]\n')
    project.joinpath("test_mine.py").write_text(PROJECT_TEST)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
                           "-p", "no:xdist", *args], cwd=project, capture_output=True, text=True, timeout=600,
                          env=_env())


def test_a_failing_case_is_reported_with_its_loss_backend_dtype_and_case_id(tmp_path):
    done = _pytest(tmp_path, "-k", "conformance", "--lossreg-backend", "numpy")
    assert done.returncode == 1, done.stdout
    assert "1 failed, 1 deselected" in done.stdout  # -k chose it, not test_my_arrays[numpy]
    assert "FAIL hunt_cube_loss [numpy/float64/cpu, portable]" in done.stdout
    assert "sum-wrong: value off by" in done.stdout and "sum-right" not in done.stdout


def test_an_empty_lossreg_backend_is_a_usage_error_not_a_session_of_skips(tmp_path):
    # `--lossreg-backend "$BACKENDS"` with BACKENDS unset skipped every lossreg test ("got empty
    # parameter set") and the session passed.
    done = _pytest(tmp_path, "-k", "my_arrays", "--lossreg-backend", "")
    assert done.returncode == 4  # pytest's usage error
    assert "--lossreg-backend '' names no backend" in done.stderr


def test_a_backend_named_twice_runs_once_as_in_the_command(tmp_path):
    # It ran the test twice, as test_my_arrays[numpy0] and [numpy1].
    done = _pytest(tmp_path, "-k", "my_arrays", "--lossreg-backend", "numpy, numpy")
    assert done.returncode == 0, done.stdout
    assert "1 passed, 1 deselected" in done.stdout


# --- environment switches ------------------------------------------------------------------------

CHECK = ("import numpy as np, lossreg\n"
         "print(lossreg.toolkit.check_mode(), lossreg.registry.kernels_enabled())\n"
         "try:\n"
         "    print(lossreg.cross_entropy(np.zeros((2, 5)), np.array([1, 7])))\n"
         "except lossreg.LossValueError as error:\n"
         "    print('raised', error)\n")


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=_env(**env))


@pytest.mark.parametrize("value", ["bogus", "sink"])
def test_an_unknown_value_checks_mode_warns_and_keeps_the_checks_on(value):
    # It was taken as a mode that is neither "auto" nor "sync": invalid class indices on the CPU
    # gave NaN silently instead of lossreg's error.
    done = _python(CHECK, LOSSREG_VALUE_CHECKS=value)
    assert done.returncode == 0, done.stderr
    assert f"LOSSREG_VALUE_CHECKS='{value}' is not one of auto, sync, poison; using 'auto'" in done.stderr
    mode, checked = done.stdout.splitlines()
    assert mode.split()[0] == "auto" and checked.startswith("raised cross_entropy: argument 'target'")


def test_value_checks_modes_are_read_in_any_case():
    sync, poison = _python(CHECK, LOSSREG_VALUE_CHECKS=" SYNC "), _python(CHECK, LOSSREG_VALUE_CHECKS="Poison")
    assert sync.stderr == "" and sync.stdout.split()[0] == "sync" and "raised" in sync.stdout
    assert poison.stdout.splitlines() == ["poison True", "nan"]  # "poison" never reads, as the README says


@pytest.mark.parametrize(("value", "enabled"), [("0", "False"), ("false", "False"), ("OFF", "False"),
                                                ("no", "False"), ("1", "True"), ("", "True"), ("yes", "True")])
def test_lossreg_kernels_takes_the_usual_spellings_of_off_and_on(value, enabled):
    # LOSSREG_KERNELS=false (or off, no) left the kernels on: only "0" switched them off.
    done = _python(CHECK, LOSSREG_KERNELS=value)
    assert done.stderr == "" and done.stdout.split()[1] == enabled


def test_an_unknown_lossreg_kernels_value_warns_and_keeps_the_default():
    done = _python(CHECK, LOSSREG_KERNELS="banana")
    assert "LOSSREG_KERNELS='banana' is not one of 1, true, yes, on / 0, false, no, off; using the default (on)" \
        in done.stderr
    assert done.stdout.split()[1] == "True"


def test_naming_the_builtin_catalogue_in_lossreg_plugins_is_no_fault():
    # LOSSREG_PLUGINS=lossreg,... listed the built-in catalogue as a missing plugin with a fault
    # ("no installed package provides a lossreg plugin of that name"), and --strict exited 1.
    done = lossreg("plugins", "--strict", "--json", LOSSREG_PLUGINS="lossreg")
    assert done.returncode == 0, done.stderr
    builtin = next(info for info in json.loads(done.stdout) if info["name"] == "lossreg")
    assert builtin["status"] == "loaded" and builtin["faults"] == []
    assert "mse_loss" in builtin["registered"]["losses"]


def test_naming_an_uninstalled_plugin_is_a_fault_that_strict_reports():
    done = lossreg("plugins", "--strict", LOSSREG_PLUGINS="nosuch")
    assert done.returncode == 1
    assert "named in LOSSREG_PLUGINS, but no installed package provides a lossreg plugin" in done.stdout
    assert "lossreg plugins --strict: faults in nosuch" in done.stderr


def test_disabling_plugin_autoload_keeps_the_builtin_catalogue():
    done = lossreg("list", "--json", LOSSREG_DISABLE_PLUGIN_AUTOLOAD="1")
    assert done.returncode == 0
    assert {row["plugin"] for row in json.loads(done.stdout)} == {"lossreg"}


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "1,5"])
def test_an_unusable_slow_import_threshold_warns_and_keeps_the_default(monkeypatch, value):
    # LOSSREG_SLOW_IMPORT_S=abc was taken as 1.0 without a word; -1 reported every plugin as slow.
    from lossreg import plugins

    monkeypatch.setenv("LOSSREG_SLOW_IMPORT_S", value)
    with pytest.warns(UserWarning, match=rf"LOSSREG_SLOW_IMPORT_S='{value}' is not a number of seconds \(0 or more\); "
                                         r"using the default \(1.0\)"):
        assert plugins.slow_import_s() == 1.0


@pytest.mark.parametrize(("value", "seconds"), [("0.5", 0.5), (" 2 ", 2.0), ("0", 0.0), ("", 1.0)])
def test_a_slow_import_threshold_in_seconds_is_taken_without_a_warning(monkeypatch, recwarn, value, seconds):
    from lossreg import plugins

    monkeypatch.setenv("LOSSREG_SLOW_IMPORT_S", value)
    assert plugins.slow_import_s() == seconds and not recwarn.list


GPU_SWITCHES = [("LOSSREG_CUPY_KERNELS", False), ("LOSSREG_CE_TRITON", True), ("LOSSREG_LCE_TRITON", True)]


@pytest.mark.parametrize(("switch", "default"), GPU_SWITCHES)
@pytest.mark.parametrize(("value", "on"), [("0", False), ("false", False), ("OFF", False), ("no", False),
                                           ("1", True), ("true", True), (" On ", True), ("yes", True)])
def test_the_gpu_kernel_switches_take_the_spellings_lossreg_kernels_takes(monkeypatch, recwarn, switch, default,
                                                                           value, on):
    # Only "0" was off: LOSSREG_CUPY_KERNELS=false switched the CuPy kernels *on*, and
    # LOSSREG_LCE_TRITON=off left the Triton rows on. Read on a GPU only; the reading is checked here.
    from lossreg import kernels

    monkeypatch.setenv(switch, value)
    assert kernels.switched_on(switch) is on and not recwarn.list


@pytest.mark.parametrize(("switch", "default"), GPU_SWITCHES)
def test_an_unknown_gpu_kernel_switch_value_warns_and_keeps_the_default(monkeypatch, switch, default):
    from lossreg import kernels

    monkeypatch.setenv(switch, "banana")
    with pytest.warns(UserWarning, match=f"{switch}='banana' is not one of 1, true, yes, on / 0, false, no, off; "
                                         f"using the default \\({'on' if default else 'off'}\\)"):
        assert kernels.switched_on(switch) is default
    monkeypatch.delenv(switch)
    assert kernels.switched_on(switch) is default
