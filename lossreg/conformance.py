"""The conformance suite: every case of every registered loss, on each backend, dtype and path.

A case is data (see ``conformance/README.md``): inputs, options and the expected value and input
gradients, computed in float64 by a reference implementation. Each loss runs through its
portable definition and through every kernel registered for the backend; the outcome of each
(loss, backend, dtype, path) is passed, failed or unsupported, with the largest error measured
against the dtype's tolerance (1.0 means at the tolerance).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import errors
from .backends import Backend
from .registry import Kernel, LossSpec, normalize, registry, use_kernels

# (rtol, atol) per dtype: results are compared with inputs rounded to the dtype, so the bound
# grows with the dtype's epsilon; float64 only absorbs differences in summation order.
TOLERANCES = {
    "float64": (1e-9, 1e-12),
    "float32": (2e-4, 2e-6),
    "float16": (2e-2, 2e-4),
    "bfloat16": (8e-2, 8e-4),
}


@dataclass
class Case:
    """One reference case of one loss."""

    loss: str
    id: str
    inputs: dict[str, Any]  # name -> {"data": nested list, "dtype": "float" | "int64" | ...}
    options: dict[str, Any] = field(default_factory=dict)  # arrays as {"data", "dtype"}
    expected: Any = None  # value (nested list or number); absent when the case expects an error
    grads: dict[str, Any] = field(default_factory=dict)  # input -> d sum(loss) / d input
    raises: str | None = None  # name of the lossreg exception the call must raise
    dtypes: list[str] | None = None  # restrict to these run dtypes (values that need the range)
    source: str = ""
    plugin: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any], loss: str | None = None) -> Case:
        data = dict(data)
        data.setdefault("loss", loss)
        known = {k: data.pop(k) for k in list(data) if k in cls.__dataclass_fields__}
        if data:
            raise ValueError(f"case {known.get('id')!r}: unknown fields {sorted(data)}")
        return cls(**known)


def load_cases(path: str | Path) -> list[Case]:
    """Read a JSON case file: ``{"loss": name, "cases": [...]}`` (a case may name its own loss)."""
    content = json.loads(Path(path).read_text(encoding="utf-8"))
    return [Case.from_dict(case, content.get("loss")) for case in content["cases"]]


@dataclass
class Outcome:
    """The verdict for one loss on one backend, dtype, device and path."""

    loss: str
    plugin: str
    backend: str
    dtype: str
    device: str
    path: str  # "portable" or "kernel:<name>"
    status: str  # passed | failed | unsupported
    worst: float = 0.0  # largest |error| / (atol + rtol |expected|) over the cases
    cases: int = 0
    not_applicable: int = 0  # cases restricted to other dtypes
    reason: str = ""
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _make(backend: Backend, spec: dict[str, Any], dtype: str, device: str) -> Any:
    kind = spec.get("dtype", "float")
    data = np.asarray(spec["data"], dtype="float64" if kind in ("float", *TOLERANCES) else kind)
    if "shape" in spec:
        data = data.reshape(spec["shape"])
    return backend.asarray(data, dtype if kind == "float" else kind, device)


def _error_ratio(got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> float:
    """Largest error against the tolerance; NaN and infinities must match exactly."""
    if want.size == 0 and got.size == 0:
        return 0.0  # JSON cannot say the shape of an empty expectation; any empty result will do
    if got.shape != want.shape:
        raise AssertionError(f"shape {got.shape}, expected {want.shape}")
    got, want = got.astype("float64"), want.astype("float64")
    special = ~np.isfinite(want)
    if not np.array_equal(got[special], want[special], equal_nan=True):
        raise AssertionError(f"non-finite values differ: got {got[special]}, expected {want[special]}")
    if not np.all(np.isfinite(got[~special])):
        raise AssertionError(f"got non-finite values where finite ones were expected: {got}")
    if not got[~special].size:
        return 0.0
    diff = np.abs(got[~special] - want[~special]) / (atol + rtol * np.abs(want[~special]))
    return float(diff.max())


class _Declined(Exception):
    """A kernel returned NotImplemented: the case is not for it."""


def _declining(function: Any) -> Any:
    def call(*arrays: Any, **options: Any) -> Any:
        result = function(*arrays, **options)
        if result is NotImplemented:
            raise _Declined
        return result

    return call


def check_case(case: Case, spec: LossSpec, function: Any, backend: Backend, dtype: str,
               device: str) -> float:
    """Run one case; the error ratio (≤ 1 passes), or an AssertionError saying what is wrong."""
    arrays = [_make(backend, case.inputs[name], dtype, device) for name in spec.inputs if name in case.inputs]
    options = {k: _make(backend, v, dtype, device) if isinstance(v, dict) and "data" in v else v
               for k, v in case.options.items()}
    rtol, atol = TOLERANCES[dtype]
    function = _declining(function)
    if case.raises:
        expected_error = getattr(errors, case.raises)
        try:
            value = backend.to_numpy(backend.call(function, arrays, options))
        except expected_error:
            return 0.0
        except _Declined:
            raise
        except Exception as exc:
            raise AssertionError(f"raised {type(exc).__name__}: {exc}; expected {case.raises}") from None
        if backend.lazy and np.isnan(value).any():
            return 0.0  # lazy arrays cannot raise on data; invalid values come out as NaN
        raise AssertionError(f"returned {value!r}; expected {case.raises}")
    wrt = [i for i, name in enumerate(spec.inputs)
           if name in case.grads and name in spec.differentiable]
    if wrt and backend.value_and_grad is not None:
        value, grads = backend.value_and_grad(function, arrays, wrt, options)
    else:
        value, grads = backend.call(function, arrays, options), []
    got = backend.to_numpy(value)
    if str(value.dtype).rsplit(".", 1)[-1] != dtype:
        raise AssertionError(f"result dtype {value.dtype}, expected {dtype}")
    worst = _error_ratio(got, np.asarray(case.expected, dtype="float64"), rtol, atol)
    for i, grad in zip(wrt, grads):
        name = spec.inputs[i]
        try:
            ratio = _error_ratio(backend.to_numpy(grad), np.asarray(case.grads[name], dtype="float64"), rtol, atol)
        except AssertionError as exc:
            raise AssertionError(f"gradient of {name}: {exc}") from None
        if ratio > 1:
            raise AssertionError(f"gradient of {name} off by {ratio:.3g}× the tolerance")
        worst = max(worst, ratio)
    if worst > 1:
        raise AssertionError(f"value off by {worst:.3g}× the tolerance: got {got.tolist()}, expected {case.expected}")
    return worst


def cases_for(spec: LossSpec, cases: Iterable[Case]) -> list[Case]:
    key = {normalize(n) for n in spec.all_names}
    return [case for case in cases if normalize(case.loss) in key]


def run(backends: Sequence[str], dtypes: Sequence[str] = ("float32", "float64"), device: str | None = None,
        losses: Sequence[str] | None = None) -> list[Outcome]:
    """Run the suite; one :class:`Outcome` per (loss, backend, dtype, path)."""
    reg = registry()
    specs = [reg.lookup(name) for name in losses] if losses else [reg.specs[n] for n in sorted(reg.specs)]
    outcomes: list[Outcome] = []
    for backend_name in backends:
        backend = reg.backends.get(backend_name)
        if backend is None:
            raise errors.LossValueError("lossreg conformance", "backend",
                                        "one of " + ", ".join(reg.backends), repr(backend_name))
        dev = device or backend.devices[0]
        reason = backend.unavailable()
        if reason is None and dev not in backend.devices:
            reason = f"{backend.name} has no device {dev!r} (it has {', '.join(backend.devices)})"
        if reason is None:
            try:
                backend.asarray(np.zeros(1), "float32", dev)
            except Exception as exc:
                reason = f"cannot make arrays on {dev}: {type(exc).__name__}: {exc}"
        for dtype in dtypes:
            why = reason or (None if dtype in backend.dtypes else f"{backend.name} has no {dtype}")
            for spec in specs:
                kernels = reg.kernels.get((spec.name, backend.name), [])
                paths = [("portable", spec.function)] + [(f"kernel:{k.name}", k.function) for k in kernels]
                for path, function in paths:
                    base = Outcome(spec.name, spec.plugin, backend.name, dtype, dev, path, "unsupported", reason=why or "")
                    outcomes.append(base if why else _run_path(base, spec, function, backend, reg.cases))
    return outcomes


def _run_path(outcome: Outcome, spec: LossSpec, function: Any, backend: Backend, all_cases: list[Case]) -> Outcome:
    cases = cases_for(spec, all_cases)
    start = time.perf_counter()
    if not cases:
        outcome.status, outcome.reason = "failed", "no conformance cases are registered for this loss"
        return outcome
    declined = 0
    with use_kernels(False), warnings.catch_warnings():  # the path under test is called directly
        # NumPy warns where a result is NaN by design (0/0 for a mean of nothing); values are checked.
        warnings.simplefilter("ignore", RuntimeWarning)
        for case in cases:
            if case.dtypes is not None and outcome.dtype not in case.dtypes:
                outcome.not_applicable += 1
                continue
            outcome.cases += 1
            try:
                ratio = check_case(case, spec, function, backend, outcome.dtype, outcome.device)
            except _Declined:
                declined += 1
                continue
            except AssertionError as exc:
                outcome.failures.append(f"{case.id}: {exc}")
                continue
            except Exception as exc:
                outcome.failures.append(f"{case.id}: raised {type(exc).__name__}: {exc}")
                continue
            outcome.worst = max(outcome.worst, ratio)
    outcome.seconds = time.perf_counter() - start
    if outcome.failures:
        outcome.status = "failed"
    elif declined == outcome.cases:
        outcome.status, outcome.reason = "unsupported", "the kernel declined every case (returned NotImplemented)"
    else:
        outcome.status = "passed"
    return outcome


def summarize(outcomes: Sequence[Outcome]) -> dict[str, int]:
    counts = {"passed": 0, "failed": 0, "unsupported": 0}
    for outcome in outcomes:
        counts[outcome.status] += 1
    return counts


def matrix(outcomes: Sequence[Outcome]) -> str:
    """One line per loss, a column per backend/dtype; details follow for anything not passed."""
    columns = list(dict.fromkeys(f"{o.backend}/{o.dtype}" for o in outcomes))
    cells: dict[tuple[str, str], list[Outcome]] = {}
    for o in outcomes:
        cells.setdefault((o.loss, f"{o.backend}/{o.dtype}"), []).append(o)
    losses = list(dict.fromkeys(o.loss for o in outcomes))
    width = max([len("loss"), *map(len, losses)])
    col = max([10, *map(len, columns)])

    def cell(group: list[Outcome]) -> str:
        if any(o.status == "failed" for o in group):
            return "FAIL"
        if all(o.status == "unsupported" for o in group):
            return "n/a"
        worst = max(o.worst for o in group if o.status == "passed")
        kernels = sum(o.path != "portable" and o.status == "passed" for o in group)
        return f"ok {worst:.2f}" + ("+k" * bool(kernels))

    lines = ["loss".ljust(width) + " | " + " | ".join(c.ljust(col) for c in columns)]
    lines.append("-" * len(lines[0]))
    for loss in losses:
        lines.append(loss.ljust(width) + " | " + " | ".join(cell(cells.get((loss, c), [])).ljust(col) for c in columns))
    lines.append("")
    lines.append("ok x.xx: passed, with the largest error as a fraction of the dtype's tolerance; "
                 "+k: kernels passed too; n/a: unsupported")
    lines.extend(dict.fromkeys(f"n/a  {o.backend}/{o.dtype}: {o.reason}" for o in outcomes if o.status == "unsupported"))
    for o in outcomes:
        if o.status == "failed":
            lines.append(f"FAIL {o.loss} [{o.backend}/{o.dtype}/{o.device}, {o.path}]" + (": " + o.reason if o.reason else ""))
            lines.extend(f"       {failure}"[:400] for failure in o.failures[:5])
            if len(o.failures) > 5:
                lines.append(f"       ... and {len(o.failures) - 5} more")
    counts = summarize(outcomes)
    lines.append(f"{counts['passed']} passed, {counts['failed']} failed, {counts['unsupported']} unsupported "
                 f"(loss × backend × dtype × path)")
    return "\n".join(lines)


def to_json(outcomes: Sequence[Outcome], **context: Any) -> str:
    return json.dumps({**context, "summary": summarize(outcomes), "outcomes": [asdict(o) for o in outcomes]},
                      indent=1, default=str, allow_nan=True)
