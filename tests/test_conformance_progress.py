"""``lossreg conformance`` reports each loss as it finishes, each backend when done, and the total time.

On a terminal the report is a live display; in a pipe (as here) it is plain lines on stderr.
"""

from __future__ import annotations

import io

import lossreg
from lossreg import conformance
from lossreg.registry import registry
from lossreg.progress import ConformanceProgress


def test_the_run_reports_every_loss_of_every_backend_as_it_finishes():
    seen = []
    conformance.run(["numpy", "array_api_strict"], ["float64"], losses=["mse_loss", "l1_loss"], max_cases=2,
                    step=lambda backend, device, loss, outcomes: seen.append((backend, loss, len(outcomes))))
    # numpy runs its kernel too: two paths per loss.
    assert seen == [("numpy", "mse_loss", 2), ("numpy", "l1_loss", 2),
                    ("array_api_strict", "mse_loss", 1), ("array_api_strict", "l1_loss", 1)]


def test_outcomes_stay_ordered_by_backend_then_dtype():
    outcomes = conformance.run(["array_api_strict"], ["float32", "float64"], losses=["mse_loss", "l1_loss"],
                               max_cases=1)
    assert [(o.dtype, o.loss) for o in outcomes] == [("float32", "mse_loss"), ("float32", "l1_loss"),
                                                     ("float64", "mse_loss"), ("float64", "l1_loss")]


def test_without_a_terminal_it_prints_a_line_per_backend_and_the_total():
    out = io.StringIO()
    with ConformanceProgress({"numpy": 1}, stream=out) as shown:
        outcomes = conformance.run(["numpy"], ["float64"], losses=["mse_loss"], max_cases=1,
                                   step=shown.step, progress=shown.backend_done)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("lossreg conformance: numpy on cpu took ") and lines[0].endswith(" s")
    assert lines[1].startswith("lossreg conformance: total ")
    assert not any(o.status == "failed" for o in outcomes)


def test_without_a_terminal_a_long_run_says_how_far_it_has_got_between_backends():
    out = io.StringIO()
    with ConformanceProgress({"jax": 2, "dask": 1}, stream=out, interval=0.0) as shown:
        shown.step("jax", "cpu", "mse_loss", [])
        shown.step("dask", "cpu", "mse_loss", [])
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("lossreg conformance: 1 of 3 losses done (jax: 1 of 2), ")
    assert lines[1].startswith("lossreg conformance: 2 of 3 losses done (dask: 1 of 1), ")


def test_failures_are_counted_in_the_backend_line():
    out = io.StringIO()
    failed = conformance.Outcome("mse_loss", "lossreg", "numpy", "float64", "cpu", "portable", "failed")
    with ConformanceProgress({"numpy": 1}, stream=out, live=False) as shown:
        shown.step("numpy", "cpu", "mse_loss", [failed])
        shown.backend_done("numpy", "cpu", 1.25)
    assert "numpy on cpu took 1.2 s, 1 failed" in out.getvalue() or "took 1.3 s, 1 failed" in out.getvalue()


def test_slices_of_a_loss_in_parallel_add_up_to_one_run_of_it(monkeypatch):
    # The slow backends' losses are cut into slices of cases (one task each) under --jobs; cut
    # NumPy's too, so that this test stays cheap: the merged verdicts are those of a plain run.
    monkeypatch.setitem(conformance._SLICE, "numpy", 5)
    seen = []
    alone = conformance.run(["numpy"], ["float64"], losses=["mse_loss"])
    sliced = conformance.run(["numpy"], ["float64"], losses=["mse_loss"], jobs=2,
                             step=lambda backend, device, loss, outcomes: seen.append((backend, loss, len(outcomes))))
    assert len(conformance.cases_for(lossreg.spec("mse_loss"), registry().cases)) > 5  # so it was cut

    def verdict(o):
        return o.loss, o.dtype, o.path, o.status, o.cases, o.not_applicable, o.total, o.worst, o.failures, o.notes

    assert [verdict(o) for o in sliced] == [verdict(o) for o in alone]
    assert seen == [("numpy", "mse_loss", 2)]  # once, when its last slice is in: portable and kernel


def test_a_failure_in_any_slice_fails_the_merged_outcome():
    def part(status, cases, worst, failures=()):
        return [conformance.Outcome("mse_loss", "lossreg", "numpy", "float64", "cpu", "portable", status,
                                    worst=worst, cases=cases, total=9, failures=list(failures), notes={"n/a": 1})]

    merged = conformance._merge([part("passed", 4, 0.5), part("failed", 3, 0.1, ["c7: off"]), part("passed", 2, 0.7)])
    assert [(o.status, o.cases, o.worst, o.failures, o.notes) for o in merged] == [
        ("failed", 9, 0.7, ["c7: off"], {"n/a": 3})]
