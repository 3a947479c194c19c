"""``lossreg conformance`` compiles JAX's programs as fast as its backends allow.

Eager JAX compiles every operation for every new shape, so a run spends most of its time in
XLA's compiler: the run sets fast-compile flags for its own process (and its workers) before JAX
starts. XLA's legacy CPU emitters halve the compile time of small programs but blow up on a whole
loss unrolled under ``jax.jit`` (CTC: past 20 GB), so only a run without ``jax_jit`` takes them.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import lossreg
from lossreg.backends import fast_jax_compile_flags
from lossreg.registry import registry

pytest.importorskip("jax")

LEGACY = "--xla_cpu_use_fusion_emitters=false"


def test_the_legacy_emitters_are_added_only_for_eager_runs():
    assert LEGACY in fast_jax_compile_flags("", eager_only=True).split()
    assert "fusion_emitters" not in fast_jax_compile_flags("", eager_only=False)


def test_the_callers_own_xla_flags_win():
    mine = "--xla_cpu_use_fusion_emitters=true --xla_backend_optimization_level=2"
    flags = fast_jax_compile_flags(mine, eager_only=True).split()
    assert flags.count("--xla_cpu_use_fusion_emitters=true") == 1 and LEGACY not in flags
    assert "--xla_backend_optimization_level=0" not in flags
    assert "--xla_llvm_disable_expensive_passes=true" in flags


@pytest.mark.parametrize("backends, legacy", [("numpy,jax", True), ("jax,jax_jit", False)])
def test_the_run_records_the_flags_it_compiled_with(tmp_path, backends, legacy):
    report = tmp_path / "report.json"
    env = {"LOSSREG_JAX_CACHE": "0", "LOSSREG_DISABLE_PLUGIN_AUTOLOAD": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "lossreg.cli", "conformance", "--backend", backends, "--loss", "mse_loss",
                           "--dtype", "float64", "--max-cases", "1", "--json", str(report)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    flags = json.loads(report.read_text())["versions"]["XLA_FLAGS"].split()
    assert "--xla_backend_optimization_level=0" in flags
    assert (LEGACY in flags) is legacy


def test_quick_runs_the_fewest_cases_that_exercise_every_option_value_shape_and_error():
    import lossreg
    from lossreg import conformance
    from lossreg.registry import registry

    for loss in ("cross_entropy", "triplet_margin_loss", "ctc_loss"):
        cases = conformance.cases_for(lossreg.spec(loss), registry().cases)
        quick = conformance.select_cases(cases, conformance.COVER)
        every = set().union(*map(conformance._features, cases))
        assert set().union(*map(conformance._features, quick)) == every
        assert len(quick) < len(cases) / 2


def test_max_cases_refuses_what_it_cannot_read():
    done = subprocess.run([sys.executable, "-m", "lossreg.cli", "conformance", "--max-cases", "jax=few"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "--max-cases takes N, cover or BACKEND=N|cover" in done.stderr and "'jax=few'" in done.stderr


def test_max_cases_says_when_it_limits_a_backend_the_run_leaves_out():
    """``--backend numpy --max-cases torch=3``: the run goes on (one limit may serve several runs),
    saying that the limit is unused rather than seeming to have applied it."""
    done = subprocess.run([sys.executable, "-m", "lossreg.cli", "conformance", "--backend", "numpy", "--loss", "mse",
                           "--max-cases", "torch=3"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--max-cases names backend 'torch', which this run leaves out (--backend numpy): its limit is unused" \
        in done.stderr


def test_a_run_with_a_slow_backend_spreads_over_the_cores_by_default():
    import os

    from lossreg import conformance

    assert conformance.default_jobs(["numpy", "torch", "array_api_strict"]) == 1
    assert conformance.default_jobs(["numpy", "dask"]) == max(1, min(os.cpu_count() or 1, 4))
    assert conformance.default_jobs(["jax"]) == conformance.default_jobs(["jax_jit"]) == conformance.default_jobs(["dask"])


def test_eager_jax_makes_a_cases_arrays_without_compiling_a_program():
    # jnp.asarray cast float64 data to float32 in a program compiled for every new shape: one per
    # float32 input of the suite's cases. NumPy casts them; only bfloat16 is still JAX's (NumPy's
    # cast to it rounds twice). Counted as programs lowered, which JAX's disk cache cannot spare.
    import jax

    from lossreg import backends

    lowered = []

    def count(event: str, duration: float, **_: object) -> None:
        if event == "/jax/core/compile/jaxpr_to_mlir_module_duration":
            lowered.append(event)

    jax.monitoring.register_event_duration_secs_listener(count)
    data = np.linspace(-3, 3, 7 * 11 * 5).reshape(7, 11, 5) / 7  # a shape no other test makes
    jax_backend = backends.JAXBackend()
    for dtype, spec in [("float32", data), ("float16", data), ("float64", data), ("int32", np.arange(7 * 11 * 3)),
                        ("int64", np.arange(7 * 11 * 3)), ("bool", np.arange(7 * 11 * 3) % 2 == 0)]:
        made = jax_backend.asarray(spec, dtype, "cpu")
        assert str(made.dtype) == dtype and made.shape == spec.shape
        np.testing.assert_array_equal(np.asarray(made), np.asarray(spec, dtype=dtype))
    assert lowered == []


def test_a_parallel_run_gives_each_eager_jax_loss_in_a_dtype_to_one_worker(monkeypatch):
    # Eager JAX lowers a program per operation and shape (and its kernels one per shape and
    # options) before its disk cache is consulted: a loss's cases share those programs, and a
    # slice of them in each worker lowered them again (9,992 programs in a --jobs 2 run, not 7,621).
    # jax_jit and Dask, whose long losses would leave a worker running alone, stay sliced.
    from lossreg import conformance

    given = []

    def pool(tasks, jobs, setup, record):
        for task in tasks:
            given.append(task)
            record(task, conformance._died(task, None, True), 0.0)
        return [], []

    monkeypatch.setattr(conformance, "_in_pool", pool)
    conformance.run(["jax", "jax_jit"], ["float32", "float64"], losses=["triplet_margin_loss"], jobs=2)
    cases = len(conformance.cases_for(lossreg.spec("triplet_margin_loss"), registry().cases))
    assert cases > 64  # enough cases that a sliced backend cuts them
    eager = sorted((dtype, part) for backend, dtype, _, loss, _, part in given if backend == "jax")
    assert eager == [("float32", None), ("float64", None)]
    assert len([t for t in given if t[0] == "jax_jit"]) == 2 * -(-cases // conformance._SLICE["jax_jit"])


def _setup_after_a_teardown(marker: str) -> None:
    """A worker's setup, after an exit handler that stands for JAX's own (registered as JAX is
    imported: it frees every compiled program, thousands in a run)."""
    import atexit

    from lossreg import conformance

    atexit.register(lambda: open(marker, "w").close())
    conformance._worker_setup(False, True, ())


def _mse_outcomes() -> list:
    from lossreg import conformance

    return conformance.run(["numpy"], ["float32"], losses=["mse_loss"], max_cases=2)


def test_a_worker_process_ends_without_tearing_down_what_it_loaded(tmp_path):
    # The pool's shutdown waited for each worker to free every JAX program and module it held
    # (1-2 CPU-s a worker, at the run's end). Its results are back by then: it now leaves at once,
    # with status 0, skipping the exit handlers registered before its setup.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    marker = tmp_path / "torn-down"
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_setup_after_a_teardown,
                               initargs=(str(marker),))
    outcomes = pool.submit(_mse_outcomes).result(timeout=120)
    workers = list(pool._processes.values())
    pool.shutdown(wait=True)
    assert (outcomes[0].path, outcomes[0].status, outcomes[0].cases) == ("portable", "passed", 2)
    assert [w.exitcode for w in workers] == [0]
    assert not marker.exists()
