"""The conformance suite: every case of every registered loss, on each backend, dtype and path.

A case is data: inputs, options and the expected value and input gradients, computed in float64
by a reference implementation (torch). Each loss runs through its portable definition and through
every kernel registered for the backend; the outcome of each (loss, backend, dtype, path) is
passed, failed, unsupported or not applicable (no case applies to it), with the largest error
measured against the dtype's tolerance
(1.0 means at the tolerance).

How a run in a lower precision is judged. Rounding the inputs to float16 moves the exact answer
by far more than float16 arithmetic errs (an L1 loss of two nearly equal numbers loses all its
digits), so comparing with the float64 answer at the original inputs would need tolerances loose
enough to hide real mistakes. Instead, the expected answer for a dtype is the float64 answer at
the inputs *as that dtype holds them*, computed by the portable definition on a reference backend
(torch on the CPU when installed, else the backend under test) that is first checked against the
golden float64 value at the original inputs. What remains is the backend's own arithmetic error,
held to :data:`TOLERANCES`, a small multiple of the dtype's epsilon. A case whose inputs or answer
lie beyond the dtype's range (float16 overflows at 65504) is not applicable to it, as is a case
restricted by its ``dtypes`` field.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

import array_api_compat as compat
import numpy as np

from . import errors, plugins
from .backends import JAXBackend, JAXJitBackend, use_fast_jax_compile
from .core import Backend, Case, load_cases  # noqa: F401  (Case and load_cases: also their public home, lossreg.testing)
from .registry import LossSpec, normalize, registry, use_kernels
from .toolkit import reads_values, value_checks

# Machine epsilon (the gap above 1.0) of each floating dtype the suite runs.
EPS = {"float16": 2.0**-10, "bfloat16": 2.0**-7, "float32": 2.0**-23, "float64": 2.0**-52}
# Largest finite value: inputs or answers beyond it do not fit the dtype.
MAX = {"float64": 1.7976931348623157e308, "float32": 3.4028234663852886e38, "float16": 65504.0,
       "bfloat16": 3.3895313892515355e38}
# Tolerances as multiples of epsilon, from real runs (numpy, array-api-strict, torch, JAX, Dask on
# CPU): the largest error seen, as a multiple of eps · (|want| + scale), was 0.25 in float16 and
# bfloat16 (a result computed in float32 and rounded once is within 0.5 eps of the answer at the
# same inputs), 8 in float32 (CTC's long recursions; 2 elsewhere) and 58 in float64, where the
# reference is another implementation (torch's CTC backward is its own formula; 2 elsewhere).
# The multiples leave room of 4 to 8 times that.
ULPS = {"float16": 2, "bfloat16": 2, "float32": 32, "float64": 256}
# (rtol, atol) per dtype. An element passes when |got - want| <= atol * scale + rtol * |want|, with
# scale = max(1, max |want|): absolute errors are relative to the size of the array's values.
TOLERANCES = {dtype: (ULPS[dtype] * eps, ULPS[dtype] * eps) for dtype, eps in EPS.items()}
DTYPE_ABBREVIATIONS = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64"}
# An outcome's verdict: every case that ran agreed, one did not, none could run (no backend
# library, or a kernel that declined every case), or none applies (each restricted by the case to
# other dtypes, or beyond the dtype's range: 0 cases run, the matrix's "n/a"; such an outcome read
# "passed", a pass of nothing). The JSON report and summarize() use these words.
Status = Literal["passed", "failed", "unsupported", "not_applicable"]
STATUSES: tuple[Status, ...] = get_args(Status)


@dataclass
class Outcome:
    """The verdict for one loss on one backend, dtype, device and path."""

    loss: str
    plugin: str
    backend: str
    dtype: str
    device: str
    path: str  # "portable" or "kernel:<name>"
    status: Status
    worst: float = 0.0  # largest |error| / tolerance over the cases that passed (the others: ``failures``)
    cases: int = 0  # cases run, failed ones included
    not_applicable: int = 0  # cases that do not apply to this dtype or path (see ``notes``)
    total: int = 0  # cases registered for the loss (more than run when sampled)
    reason: str = ""
    failures: list[str] = field(default_factory=list)
    notes: dict[str, int] = field(default_factory=dict)  # why cases did not apply -> how many
    seconds: float = 0.0


class NotApplicable(Exception):
    """The case cannot be run in this dtype (its values do not fit it)."""


# The note of the cases a kernel handed back (they count as not applicable to its path, never as passed).
DECLINED = "declined by a kernel: it returned NotImplemented"


class _Declined(Exception):
    """A kernel returned NotImplemented: the case is not for it."""


@functools.lru_cache(maxsize=None)
def _declining(function: Any) -> Any:
    """``function``, raising :class:`_Declined` where it returns NotImplemented; one wrapper per
    function for the life of the process, so that what a backend compiled for it (keyed by the
    function) serves every dtype, slice and run of its cases."""
    def call(*arrays: Any, **options: Any) -> Any:
        result = function(*arrays, **options)
        if result is NotImplemented:
            raise _Declined
        return result

    return call


def _is_array(value: Any) -> bool:
    return isinstance(value, dict) and "data" in value


def _is_float(spec: dict[str, Any]) -> bool:
    return spec.get("dtype", "float") == "float"


def _data(spec: dict[str, Any]) -> np.ndarray:
    kind = spec.get("dtype", "float")
    data = np.asarray(spec["data"], dtype="float64" if kind in ("float", *EPS) else kind)
    return data.reshape(spec["shape"]) if "shape" in spec else data


def _make(backend: Backend, spec: dict[str, Any], dtype: str, device: str, data: np.ndarray | None = None) -> Any:
    kind = spec.get("dtype", "float")
    return backend.asarray(_data(spec) if data is None else data, dtype if kind == "float" else kind, device)


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
    return float(_ratios(got, want, rtol, atol).max())


def _ratios(got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    """Each element's error against the tolerance (0 where ``want`` is not finite), in ``want``'s shape."""
    got, want = got.astype("float64"), want.astype("float64")
    finite = np.isfinite(want)
    scale = max(1.0, float(np.abs(want[finite]).max(initial=0)))
    diff = np.abs(np.where(finite, got, 0) - np.where(finite, want, 0))
    return diff / (atol * scale + rtol * np.abs(np.where(finite, want, 0)))


def _worst_element(got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> str:
    """The element furthest off, as ``" at [i, j]: got g, expected w"`` (no place for a scalar): said
    first, it survives the cut of a long message in the matrix, where whole arrays would not."""
    at = np.unravel_index(int(np.argmax(_ratios(got, want, rtol, atol))), want.shape)
    place = f" at {[int(i) for i in at]}" if want.ndim else ""
    return f"{place}: got {float(got[at])!r}, expected {float(want[at])!r}"


def _floats(backend: Backend, case: Case, names: Sequence[str], arrays: Sequence[Any],
            options: dict[str, Any]) -> dict[str, np.ndarray]:
    """The floating inputs and array options as the backend holds them, in float64."""
    held = {}
    for name, array in zip(names, arrays):
        if _is_float(case.inputs[name]):
            held[name] = backend.to_numpy(array).astype("float64")
    for name, value in case.options.items():
        if _is_array(value) and _is_float(value):
            held[name] = backend.to_numpy(options[name]).astype("float64")
    return held


class References:
    """Float64 answers (value and gradients) at a case's inputs as a lower dtype holds them.

    They are computed by the portable definition on a reference backend: torch on the CPU if it
    is installed (cheap, with autograd), else the backend under test in float64. The reference
    backend is first checked against the golden value at the original inputs, once per case.
    Answers are kept per case and rounded inputs, so every backend of a run shares them.
    """

    def __init__(self) -> None:
        self._answers: dict[tuple[Any, ...], tuple[np.ndarray, dict[str, np.ndarray]]] = {}
        self._checked: dict[tuple[int, str], str | None] = {}
        self._torch: list[Backend] | None = None

    def backend_for(self, backend: Backend) -> tuple[Backend, str]:
        if self._torch is None:
            torch = registry().backends.get("torch")
            self._torch = [torch] if torch is not None and torch.unavailable() is None else []
        if self._torch:
            return self._torch[0], "cpu"
        if "float64" in backend.dtypes:
            return backend, backend.devices[0]
        return registry().backends["numpy"], "cpu"

    def answer(self, case: Case, spec: LossSpec, backend: Backend,
               held: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        ref, device = self.backend_for(backend)
        key = (id(case), ref.name, tuple((k, v.shape, v.tobytes()) for k, v in sorted(held.items())))
        if key not in self._answers:
            self._check(case, spec, ref, device)
            try:
                self._answers[key] = _evaluate(case, spec, ref, device, held)
            except errors.LossError as exc:  # rounding made the inputs invalid (a probability of 1 + eps)
                raise NotApplicable(f"inputs invalid once rounded: {type(exc).__name__}") from None
        return self._answers[key]

    def _check(self, case: Case, spec: LossSpec, ref: Backend, device: str) -> None:
        key = (id(case), ref.name)
        if key not in self._checked:
            value, grads = _evaluate(case, spec, ref, device, {})
            parts = [("value", value, case.expected)] + [(f"gradient of {name}", grad, case.grads[name])
                                                         for name, grad in grads.items()]
            self._checked[key] = "; ".join(filter(None, (_disagreement(got, want) and f"{what}: {_disagreement(got, want)}"
                                                         for what, got, want in parts))) or None
        if self._checked[key]:
            # Named by part ("gradient of input: ..."), so that a wrong golden gradient reads as one.
            raise AssertionError(f"{self._checked[key]} (the float64 reference, {ref.name}, disagrees with the golden "
                                 "answer at the case's inputs, so lower precisions cannot be judged)")


def _disagreement(got: np.ndarray, want: Any) -> str:
    """Why ``got`` fails the float64 tolerance against ``want``, or ""."""
    rtol, atol = TOLERANCES["float64"]
    try:
        ratio = _error_ratio(got, np.asarray(want, dtype="float64"), rtol, atol)
    except AssertionError as exc:
        return str(exc)
    return f"off by {ratio:.3g}× the float64 tolerance" if ratio > 1 else ""


def _evaluate(case: Case, spec: LossSpec, ref: Backend, device: str,
              held: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The portable loss in float64 on ``ref``, with floating inputs replaced by ``held``."""
    names = [name for name in spec.inputs if name in case.inputs]
    arrays = [_make(ref, case.inputs[n], "float64", device, held.get(n)) for n in names]
    options = {k: _make(ref, v, "float64", device, held.get(k)) if _is_array(v) else v
               for k, v in case.options.items()}
    wrt = [i for i, name in enumerate(names) if name in case.grads]
    if wrt and ref.value_and_grad is not None:
        value, grads = ref.value_and_grad(spec.function, arrays, wrt, options)
    else:
        value, grads, wrt = ref.call(spec.function, arrays, options), [], []
    return ref.to_numpy(value).astype("float64"), {names[i]: ref.to_numpy(g).astype("float64")
                                                     for i, g in zip(wrt, grads)}


def check_case(case: Case, spec: LossSpec, function: Any, backend: Backend, dtype: str,
               device: str, references: References | None = None) -> float:
    """Run one case; the error ratio (≤ 1 passes), or an AssertionError saying what is wrong.

    Raises :class:`NotApplicable` when the case's values do not fit ``dtype``.
    """
    names = [name for name in spec.inputs if name in case.inputs]
    arrays = [_make(backend, case.inputs[name], dtype, device) for name in names]
    options = {k: _make(backend, v, dtype, device) if _is_array(v) else v for k, v in case.options.items()}
    rtol, atol = TOLERANCES[dtype]
    if case.raises:
        expected_error = getattr(errors, case.raises)

        def attempt() -> np.ndarray | None:
            try:
                return backend.to_numpy(backend.call(function, arrays, options))
            except expected_error:
                return None
            except _Declined:
                raise
            except _LOSS_FAULTS as exc:
                raise AssertionError(f"{_raised(exc)}; expected {case.raises}") from None

        value = attempt()
        if value is None:
            return 0.0
        if backend.lazy and np.isnan(value).any():
            return 0.0  # lazy arrays cannot raise on data; invalid values come out as NaN
        if arrays and not reads_values(arrays[0]) and np.isnan(value).any():
            # An accelerator's values are not read by default (a read waits for the device): the
            # invalid value poisons the result, and value_checks("sync") must raise instead.
            with value_checks("sync"):
                if attempt() is None:
                    return 0.0
            raise AssertionError(f"gave NaN, as the default mode must on {device}, but under "
                                 f"value_checks('sync') did not raise {case.raises}")
        raise AssertionError(f"returned {value!r}; expected {case.raises}")
    want = np.asarray(case.expected, dtype="float64")
    want_grads: dict[str, np.ndarray | None] = {name: np.asarray(g, dtype="float64") for name, g in case.grads.items()}
    if dtype != "float64":
        held = _floats(backend, case, names, arrays, options)
        for name, values in held.items():
            if not np.array_equal(np.isfinite(values), np.isfinite(_data(case.inputs.get(name) or case.options[name]))):
                raise NotApplicable(f"inputs beyond the {dtype} range")
        want, reference_grads = (references or References()).answer(case, spec, backend, held)
        want_grads = {name: reference_grads.get(name) for name in want_grads}
        if any(np.abs(a[np.isfinite(a)]).max(initial=0) > MAX[dtype] for a in (want, *reference_grads.values())):
            raise NotApplicable(f"answers beyond the {dtype} range")
    # Every golden gradient is checked, also of an array the loss does not declare differentiable
    # (a target that requires grad): a case that says a gradient holds it to that gradient.
    wrt = [i for i, name in enumerate(names) if name in want_grads]
    if wrt and backend.value_and_grad is not None:
        value, grads = backend.value_and_grad(function, arrays, wrt, options)
    else:
        value, grads, wrt = backend.call(function, arrays, options), [], []
    got = backend.to_numpy(value)
    if str(value.dtype).rsplit(".", 1)[-1] != dtype:
        raise AssertionError(f"result dtype {value.dtype}, expected {dtype}")
    if arrays and compat.device(value) != compat.device(arrays[0]):
        raise AssertionError(f"result on device {compat.device(value)}, input on {compat.device(arrays[0])}")
    worst = _error_ratio(got, want, rtol, atol)
    if worst > 1:  # before the gradients: a wrong value is reported as one, not as the gradient it implies
        where = _worst_element(got, want, rtol, atol)
        if want.ndim:  # the whole arrays after the worst element, for the JSON report
            where += f"; of all {want.size}: got {got.tolist()}, expected {want.tolist()}"
        raise AssertionError(f"value off by {worst:.3g}× the tolerance{where}")
    for i, grad in zip(wrt, grads):
        name = names[i]
        wanted = want_grads[name]
        if wanted is None:  # the reference backend cannot differentiate
            continue
        got_grad = backend.to_numpy(grad)
        try:
            ratio = _error_ratio(got_grad, wanted, rtol, atol)
        except AssertionError as exc:
            raise AssertionError(f"gradient of {name}: {exc}") from None
        if ratio > 1:
            raise AssertionError(f"gradient of {name} off by {ratio:.3g}× the tolerance"
                                 f"{_worst_element(got_grad, wanted, rtol, atol)}")
        worst = max(worst, ratio)
    return worst


# Why a plugin without faults was not loaded (lossreg.plugins' environment switches).
_NOT_LOADED = {"blocked": "skipped by LOSSREG_BLOCK_PLUGINS, or not named in LOSSREG_PLUGINS",
               "disabled": "no plugin is loaded while LOSSREG_DISABLE_PLUGIN_AUTOLOAD is set"}


def plugin_losses(plugin: str) -> tuple[list[str], list[str]]:
    """The losses the installed plugin ``plugin`` (its entry-point or distribution name) registered or
    added kernels or cases to, and its warnings (a slow import), for checking it;
    :class:`~lossreg.errors.PluginError` if it cannot be checked as installed: unknown, blocked,
    failed, any fault, or none of these."""
    reg = registry()
    info = plugins.find(reg.plugins, plugin)
    if info is None:
        known = ", ".join(n for n in reg.plugins if n != "lossreg") or "none"
        raise errors.PluginError(f"no lossreg plugin named {plugin!r} is loaded (plugins: {known}); is its package "
                                 "installed, e.g. with `pip install -e .`, and is the entry point in the group "
                                 "'lossreg'?")
    faults = [f for f in info.faults if not f.startswith("slow import")]
    if info.status != "loaded" or faults:
        why = faults or info.faults or [_NOT_LOADED.get(info.status, "not loaded")]
        raise errors.PluginError(f"lossreg plugin {info.name!r} is {info.status}: " + "; ".join(why))
    losses = [spec.name for spec in reg.specs.values() if spec.plugin == info.name]
    # Kernels and cases may be for another plugin's loss (a faster torch kernel for the built-in
    # cross_entropy): that loss is what such a plugin asks to be checked, with its kernels and cases.
    theirs = [loss for (loss, _), kernels in reg.kernels.items() if any(k.plugin == info.name for k in kernels)]
    theirs += [reg.index[key] for key in (normalize(c.loss) for c in reg.cases if c.plugin == info.name)
               if key in reg.index]
    losses += [name for name in dict.fromkeys(theirs) if name not in losses]
    if not losses:
        raise errors.PluginError(f"lossreg plugin {info.name!r} registered no losses, and no kernels or cases for "
                                 "another plugin's")
    return losses, [f"lossreg plugin '{info.name}': {fault}" for fault in info.faults]


def cases_for(spec: LossSpec, cases: Iterable[Case]) -> list[Case]:
    key = {normalize(n) for n in spec.all_names}
    return [case for case in cases if normalize(case.loss) in key]


def _features(case: Case) -> set[tuple[Any, ...]]:
    """What a case exercises: option values, input shapes and dtypes, errors, its id's first word."""
    found: set[tuple[Any, ...]] = {("id", case.id.split("-")[0]), ("raises", case.raises),
                                   ("grads", bool(case.grads)), ("dtypes", tuple(case.dtypes or ()))}
    for name, spec in case.inputs.items():
        found.add(("input", name, _data(spec).shape, spec.get("dtype", "float")))
    for name, value in case.options.items():
        found.add(("option", name, json.dumps(_data(value).shape if _is_array(value) else value, default=repr)))
    return found


# A ``max_cases`` value: per loss, the fewest cases (chosen as by a limit) that together exercise
# every option value, input shape and expected error once; about a quarter of them.
COVER = "cover"
# How many cases per loss: all (None), at most N, COVER, or either per backend name ("*": the others).
MaxCases = int | str | dict[str, int | str] | None


def select_cases(cases: Sequence[Case], limit: int | str | None) -> list[Case]:
    """At most ``limit`` of ``cases``, in their order, chosen greedily to cover the most distinct
    option values, input shapes and expected errors first (ties go to the earlier case); with
    ``limit`` :data:`COVER`, as many as it takes to cover each of them once."""
    if limit is None or (limit != COVER and len(cases) <= int(limit)):
        return list(cases)
    features = [_features(case) for case in cases]
    chosen: list[int] = []
    seen: set[tuple[Any, ...]] = set()
    remaining = list(range(len(cases)))
    while remaining and (limit == COVER or len(chosen) < int(limit)):
        best = max(remaining, key=lambda i: (len(features[i] - seen), -i))
        if limit == COVER and not features[best] - seen:
            break
        chosen.append(best)
        seen |= features[best]
        remaining.remove(best)
    return [cases[i] for i in sorted(chosen)]


def run(backends: Sequence[str | Backend], dtypes: Sequence[str] = ("float32", "float64"), device: str | None = None,
        losses: Sequence[str] | None = None, *, max_cases: MaxCases = None,
        progress: Callable[[str, str, float], None] | None = None, jobs: int = 1,
        step: Callable[[str, str, str, list[Outcome]], None] | None = None) -> list[Outcome]:
    """Run the suite; one :class:`Outcome` per (loss, backend, dtype, path).

    ``backends`` are registered names or :class:`Backend` objects; ``max_cases`` runs at most
    that many cases per loss (see :func:`select_cases`; :data:`COVER`: the fewest that exercise
    every option value, input shape and expected error), or per backend name (``"*"`` for the
    others) from a dict; ``progress(backend, device, seconds)``
    is called as each backend finishes, ``step(backend, device, loss, outcomes)`` as each loss
    finishes on a backend (every dtype and path). ``jobs`` > 1 spreads the (backend, loss, dtype)
    triples, the slow backends' cut into slices of cases (see ``_SLICE``), over that many
    processes, which load plugins from entry points and register again those registered in this
    process (a module by its name, another object pickled; where one cannot be sent, the suite
    runs in this process, with a warning). ``lossreg conformance`` and the worker processes keep JAX's compiled programs on
    disk between runs (see :func:`share_jax_compiles`); an in-process run changes no JAX setting.
    """
    reg = registry()
    specs = [reg.lookup(name) for name in losses] if losses else [reg.specs[n] for n in sorted(reg.specs)]
    unknown = [d for d in dtypes if d not in EPS]
    if unknown:
        raise errors.LossValueError("lossreg conformance", "dtype", "some of " + ", ".join(EPS), ", ".join(unknown))
    # A limit below 1 would select no case, and every loss would fail as having no cases registered.
    limits = list(max_cases.values()) if isinstance(max_cases, dict) else [max_cases]
    wrong = [repr(n) for n in limits if n is not None and n != COVER and not (isinstance(n, (int, np.integer)) and n >= 1)]
    if wrong:
        raise errors.LossValueError("lossreg conformance", "max_cases", f"None, {COVER!r} or a whole number of at "
                                    "least 1 (per backend in a dict)", ", ".join(wrong))
    unknown = [repr(b) for b in backends if not isinstance(b, Backend) and b not in reg.backends]
    if unknown:  # before anything runs, not after the backends ahead of it
        raise errors.LossValueError("lossreg conformance", "backend", "some of " + ", ".join(reg.backends),
                                    ", ".join(unknown))
    if jobs > 1:
        plugins, unsendable = _plugins_for_workers()
        if unsendable is None:
            return _run_parallel(backends, dtypes, device, [s.name for s in specs], max_cases, progress, jobs, step,
                                 plugins)
        # Workers without it would not know its losses (UnknownLossError) or would leave out its
        # kernels and cases of another plugin's loss (a pass of what was never checked).
        warnings.warn(f"lossreg conformance: {unsendable}, so the suite runs in this process, not in {jobs} "
                      "worker processes (install the plugin as a package, or register an importable module)",
                      errors.LossregPluginWarning, stacklevel=2)
    references = References()
    outcomes: list[Outcome] = []
    for chosen in backends:
        backend = chosen if isinstance(chosen, Backend) else reg.backends[chosen]
        start = time.perf_counter()
        dev = device or backend.devices[0]
        outcomes += _run_on(backend, dev, dtypes, specs, max_cases, references, step)
        if progress is not None:
            progress(backend.name, dev, time.perf_counter() - start)
    return outcomes


def _run_on(backend: Backend, dev: str, dtypes: Sequence[str], specs: list[LossSpec],
            max_cases: MaxCases, references: References,
            step: Callable[[str, str, str, list[Outcome]], None] | None = None,
            part: tuple[int, int] | None = None) -> list[Outcome]:
    """Every case of ``specs`` on one backend and device (or only the ``part`` (index, size) slice of
    each loss's cases), or every outcome unsupported with the reason it cannot run here."""
    reason = backend.unavailable() or backend.device_unavailable(dev)
    if reason is None:
        try:
            with backend.scope():
                backend.asarray(np.zeros(1), "float32", dev)
        except Exception as exc:
            reason = f"cannot make arrays on {dev}: {type(exc).__name__}: {exc}"
    with contextlib.ExitStack() as scope:
        if reason is None:
            scope.enter_context(backend.scope())  # e.g. JAX's float64, for this run only
        return _run_backend(backend, reason, dev, dtypes, specs, max_cases, references, step, part)


def _run_backend(backend: Backend, reason: str | None, dev: str, dtypes: Sequence[str], specs: list[LossSpec],
                 max_cases: MaxCases, references: References,
                 step: Callable[[str, str, str, list[Outcome]], None] | None = None,
                 part: tuple[int, int] | None = None) -> list[Outcome]:
    reg = registry()
    per_loss: list[list[Outcome]] = []
    # Loss by loss (each in every dtype), so that progress can be reported as each finishes;
    # the outcomes are then ordered by dtype, as before.
    for spec in specs:
        kernels = reg.kernels.get((spec.name, backend.kernels_of or backend.name), [])
        paths = [("portable", spec.function)] + [(f"kernel:{k.name}", k.function) for k in kernels]
        all_cases = cases_for(spec, reg.cases)
        cases = select_cases(all_cases, _limit(max_cases, backend.name))
        if part is not None:
            cases = cases[part[0] * part[1]:(part[0] + 1) * part[1]]
        found: list[Outcome] = []
        for dtype in dtypes:
            why = reason or (None if dtype in backend.dtypes else f"{backend.name} has no {dtype}")
            for path, function in paths:
                base = Outcome(spec.name, spec.plugin, backend.name, dtype, dev, path, "unsupported",
                               total=len(all_cases), reason=why or "")
                found.append(base if why else _run_path(base, spec, function, backend, cases, references))
        if reason is None:
            backend.release()
        per_loss.append(found)
        if step is not None:
            step(backend.name, dev, spec.name, found)
    return [o for dtype in dtypes for found in per_loss for o in found if o.dtype == dtype]


def _limit(max_cases: MaxCases, backend: str) -> int | str | None:
    if isinstance(max_cases, dict):
        return max_cases.get(backend, max_cases.get("*"))
    return max_cases


# Cases per task of a parallel run on the slow backends (a loss in one dtype is cut into slices of
# this many cases), so that no single long task (CTC under jax.jit: minutes) is left running alone
# at the end while the other workers idle. Slices stay contiguous: a loss's cases come grouped by
# shape, and the shapes of one slice share compiled programs. Other backends: one task per loss.
# Eager JAX is not sliced: its programs (one operation on one shape, a kernel's per shape and
# options) are shared by the whole loss in a dtype, and each worker that runs a slice lowers them
# again (lowering comes before the disk cache is consulted). In slices of 32 its two workers
# lowered 9,992 programs, whole 7,621 (one process: 7,004); its longest task, CTC in one dtype,
# takes about 25 s, started first.
_SLICE = {"jax_jit": 16, "dask": 24}
# Rough cost of a case per backend, relative to NumPy (from the CPU report's seconds per case run):
# eager JAX compiles every operation for every new shape and dtype, jax_jit every case's program,
# Dask builds and orders a graph per case. Used only to start long tasks first.
_COST = {"jax": 30.0, "jax_jit": 200.0, "dask": 100.0, "array_api_strict": 2.0, "torch": 2.0}
def default_jobs(backends: Sequence[str | Backend]) -> int:
    """Processes for a run that does not say: one per core (at most 4: a worker holds up to
    2.5 GB of compiled programs) when a slow backend (eager JAX, ``jax_jit``, Dask: they compile
    or build a graph per case) is among ``backends``, else 1 (a worker's start, importing the
    array libraries again, costs more than NumPy's whole run)."""
    import os

    slow = any(_COST.get(_backend_name(b), 1.0) >= 10 for b in backends)
    return max(1, min(os.cpu_count() or 1, 4)) if slow else 1


# The worker's own float64 references, shared by every task it runs (the same case on another
# backend or dtype slice needs no second reference computation).
_WORKER_REFERENCES: References | None = None


def _run_task(task: tuple[Any, ...], beacon: str | None = None) -> tuple[list[Outcome], float]:
    """One task in a worker process; ``beacon``, a file that exists while it runs (see _in_pool)."""
    if beacon is None:
        return _run_one(task)
    with open(beacon, "w"):
        pass
    try:
        return _run_one(task)
    finally:
        import os
        os.remove(beacon)


def _run_one(task: tuple[Any, ...]) -> tuple[list[Outcome], float]:
    global _WORKER_REFERENCES
    backend, dtype, device, loss, max_cases, part = task
    if _WORKER_PLUGINS_FAILED is not None:  # the task would check another registry than the caller's
        raise errors.PluginError(_WORKER_PLUGINS_FAILED)
    if _WORKER_REFERENCES is None:
        _WORKER_REFERENCES = References()
    reg = registry()
    chosen = backend if isinstance(backend, Backend) else reg.backends[backend]
    start = time.perf_counter()
    found = _run_on(chosen, device or chosen.devices[0], [dtype], [reg.lookup(loss)], max_cases,
                    _WORKER_REFERENCES, part=part)
    return found, time.perf_counter() - start


def _size(case: Case) -> int:
    """How many numbers a case's inputs hold: a case's cost grows with it (CTC's recursion most)."""
    return sum(int(np.prod(_data(spec).shape)) for spec in case.inputs.values())


# Which slice's status a merged outcome takes: a failure anywhere; else a pass anywhere; a slice
# whose every case a kernel declined (unsupported) over one whose cases did not apply, as one run
# of both calls it (_run_path).
_RANK = {"not_applicable": 0, "unsupported": 1, "passed": 2, "failed": 3}


def _merge(parts: list[list[Outcome]]) -> list[Outcome]:
    """The outcomes of one loss and dtype, run as slices of its cases, as one run of them all."""
    merged = [Outcome(**{**asdict(o), "failures": list(o.failures), "notes": dict(o.notes)}) for o in parts[0]]
    for found in parts[1:]:
        for into, o in zip(merged, found):
            into.worst = max(into.worst, o.worst)
            into.cases += o.cases
            into.not_applicable += o.not_applicable
            into.failures += o.failures
            into.seconds += o.seconds
            for note, count in o.notes.items():
                into.notes[note] = into.notes.get(note, 0) + count
            if _RANK[o.status] > _RANK[into.status]:
                into.status, into.reason = o.status, o.reason
    return merged


def _plugins_for_workers() -> tuple[list[tuple[str, str, Any]], str | None]:
    """The plugins registered in this process (``lossreg.register_plugin``) as a worker process
    registers them again, ``(name, "module", its name)`` or ``(name, "object", pickled)``; or why
    one of them cannot be sent (a module another process cannot import, an object pickle cannot
    take, or one of ``__main__`` where that is no file: a notebook)."""
    import importlib.machinery
    import pickle
    import sys
    import types

    from .registry import in_process_plugins

    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    sent: list[tuple[str, str, Any]] = []
    for name, plugin in in_process_plugins():
        module = plugin.__name__ if isinstance(plugin, types.ModuleType) else type(plugin).__module__
        if module == "__main__" and main_file is None:
            return [], f"plugin '{name}' is defined in __main__, which a worker process cannot import"
        if isinstance(plugin, types.ModuleType):
            if module != "__main__" and importlib.machinery.PathFinder.find_spec(module.partition(".")[0]) is None:
                return [], f"plugin '{name}' is the module {module}, which is not importable from sys.path"
            sent.append((name, "module", module))
            continue
        try:
            sent.append((name, "object", pickle.dumps(plugin)))
        except Exception as exc:
            return [], f"plugin '{name}' cannot be pickled for a worker process: {type(exc).__name__}: {exc}"
    return sent, None


# Why the plugins of this process could not be registered in this worker (see _worker_setup).
_WORKER_PLUGINS_FAILED: str | None = None


def _register_in_worker(plugins: Sequence[tuple[str, str, Any]]) -> None:
    global _WORKER_PLUGINS_FAILED
    import importlib
    import pickle

    from .registry import register_plugin

    for name, kind, payload in plugins:
        try:
            if kind == "module":
                plugin = importlib.import_module("__mp_main__" if payload == "__main__" else payload)
            else:
                plugin = pickle.loads(payload)
            if registry().pm.get_name(plugin) is None:  # not loaded here by its entry point already
                register_plugin(plugin, name)
        except Exception as exc:
            _WORKER_PLUGINS_FAILED = (f"the plugin '{name}', registered in the calling process, could not be registered "
                                      f"in a worker process: {type(exc).__name__}: {exc}; run with jobs=1, or install "
                                      "it as a package")
            return


def _run_parallel(backends: Sequence[str | Backend], dtypes: Sequence[str], device: str | None, losses: list[str],
                  max_cases: MaxCases, progress: Callable[[str, str, float], None] | None,
                  jobs: int, step: Callable[[str, str, str, list[Outcome]], None] | None = None,
                  plugins: Sequence[tuple[str, str, Any]] = ()) -> list[Outcome]:
    reg = registry()
    tasks: list[tuple[float, tuple[Any, ...]]] = []
    for b in backends:
        name = _backend_name(b)
        chosen = b if isinstance(b, Backend) else reg.backends[name]
        runs = chosen.unavailable() is None
        for loss in losses:
            cases = select_cases(cases_for(reg.specs[loss], reg.cases), _limit(max_cases, name))
            size = _SLICE.get(name, len(cases)) if runs else len(cases)
            slices = max(1, -(-len(cases) // max(1, size)))
            for dtype in dtypes:
                for i in range(slices):
                    mine = cases[i * size:(i + 1) * size]
                    cost = _COST.get(name, 1.0) * sum(1 + _size(c) / 16 for c in mine)
                    tasks.append((cost, (b, dtype, device, loss, max_cases, (i, size) if slices > 1 else None)))
    # The longest tasks first, so that no long task starts last and the short ones fill the gaps.
    tasks.sort(key=lambda t: -t[0])
    waiting = {(_backend_name(t[0]), t[3]): 0 for _, t in tasks}
    for _, t in tasks:
        waiting[(_backend_name(t[0]), t[3])] += 1
    pending = {_backend_name(b): sum(n for (name, _), n in waiting.items() if name == _backend_name(b))
               for b in backends}
    got: dict[tuple[str, str], dict[tuple[str, int], list[Outcome]]] = {}
    results: dict[tuple[str, str], list[Outcome]] = {}
    spent: dict[str, float] = {}
    picked = [b if isinstance(b, Backend) else reg.backends[b] for b in backends]
    uses_jax = any(isinstance(b, JAXBackend) for b in picked)
    eager_only = not any(isinstance(b, JAXJitBackend) for b in picked)

    def record(task: tuple[Any, ...], found: list[Outcome], took: float) -> None:
        backend, dtype, _, loss, _, part = task
        name = _backend_name(backend)
        spent[name] = spent.get(name, 0.0) + took
        got.setdefault((name, loss), {})[(dtype, part[0] if part else 0)] = found
        waiting[(name, loss)] -= 1
        pending[name] -= 1
        if not waiting[(name, loss)]:
            parts = got.pop((name, loss))
            results[(name, loss)] = [o for d in dtypes
                                     for o in _merge([parts[k] for k in sorted(parts) if k[0] == d])]
            if step is not None:
                found = results[(name, loss)]
                step(name, found[0].device if found else device or "", loss, found)
        if not pending[name] and progress is not None:
            done = [o for (b, _), found in results.items() if b == name for o in found]
            progress(name, done[0].device if done else device or "", spent[name])

    # A worker that dies (a loss calling os._exit, a crash in native code) breaks the whole pool:
    # every task not finished fails with BrokenProcessPool, which ended the run with its traceback
    # and no report. The tasks it was running are run again one by one, each in a pool of its own:
    # the one that dies again fails, named; the others, and those not started, go on in a new pool.
    remaining = [task for _, task in tasks]
    while remaining:
        running, lost = _in_pool(remaining, jobs, (uses_jax, eager_only, plugins), record)
        for task in running:
            again, never = _in_pool([task], 1, (uses_jax, eager_only, plugins), record)
            for dead in again + never:
                record(dead, _died(dead, device, never == [dead]), 0.0)
        if lost and not running:  # no task was running: the workers died before any (their start)
            for dead in lost:
                record(dead, _died(dead, device, True), 0.0)
            lost = []
        remaining = lost
    ordered = []
    for backend in backends:
        name = _backend_name(backend)
        for dtype in dtypes:
            ordered += [o for loss in losses for o in results[(name, loss)] if o.dtype == dtype]
    return ordered


def _in_pool(tasks: list[tuple[Any, ...]], jobs: int, setup: tuple[Any, ...],
             record: Callable[[tuple[Any, ...], list[Outcome], float], None]) -> tuple[list[Any], list[Any]]:
    """Run ``tasks`` in a pool of ``jobs`` worker processes, calling ``record(task, outcomes,
    seconds)`` as each finishes. Returns ``(running, lost)``, empty unless a worker process died:
    the tasks that were running then (one of them its cause; the pool stopped the others), and the
    others not finished. Each task marks its start with a file (its beacon), removed as it ends."""
    import multiprocessing
    import shutil
    import tempfile
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool
    from pathlib import Path

    beacons = Path(tempfile.mkdtemp(prefix="lossreg-conformance-"))
    lost: list[tuple[Path, tuple[Any, ...]]] = []
    try:
        # "spawn": JAX and torch threads do not survive a fork.
        pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_setup, initargs=setup)
        with _stopped_on_interrupt(pool):
            futures = {pool.submit(_run_task, task, str(beacons / str(i))): (beacons / str(i), task)
                       for i, task in enumerate(tasks)}
            for future in as_completed(futures):
                try:
                    found, took = future.result()
                except BrokenProcessPool:
                    lost.append(futures[future])
                    continue
                record(futures[future][1], found, took)
        return [t for b, t in lost if b.exists()], [t for b, t in lost if not b.exists()]
    finally:
        shutil.rmtree(beacons, ignore_errors=True)


def _died(task: tuple[Any, ...], device: str | None, before: bool) -> list[Outcome]:
    """The outcomes of a task whose worker process died (``before``: before it started it): failed,
    on each path the loss has there, saying so; its cases are unchecked."""
    backend, dtype, _, loss, max_cases, part = task
    reg = registry()
    chosen = backend if isinstance(backend, Backend) else reg.backends[backend]
    spec = reg.lookup(loss)
    kernels = reg.kernels.get((spec.name, chosen.kernels_of or chosen.name), [])
    cases = select_cases(cases_for(spec, reg.cases), _limit(max_cases, chosen.name))
    which = "" if part is None else f", cases {part[0] * part[1] + 1}-{min(len(cases), (part[0] + 1) * part[1])}"
    what = (f"the worker process died before running {loss} on {chosen.name}/{dtype}{which}" if before else
            f"the worker process died running {loss} on {chosen.name}/{dtype}{which} (it died again when run "
            "alone: os._exit, a crash in native code, or killed)")
    return [Outcome(spec.name, spec.plugin, chosen.name, dtype, device or chosen.devices[0], path, "failed",
                    total=len(cases), reason=what, failures=[what + "; its cases are unchecked"])
            for path in ["portable", *(f"kernel:{k.name}" for k in kernels)]]


@contextlib.contextmanager
def _stopped_on_interrupt(pool: Any) -> Iterator[None]:
    """``pool`` shut down on leaving; on Ctrl-C (or any error) at once: the tasks not started are
    cancelled and the workers, which ignore SIGINT (see :func:`_worker_setup`), are stopped, not
    waited for (a slice of eager JAX or Dask cases can take minutes)."""
    try:
        yield
    except BaseException:
        workers = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for worker in workers:
            worker.terminate()
        raise
    pool.shutdown(wait=True)


def _backend_name(backend: str | Backend) -> str:
    return backend if isinstance(backend, str) else backend.name


def _worker_setup(uses_jax: bool = True, eager_only: bool = False,
                  plugins: Sequence[tuple[str, str, Any]] = ()) -> None:
    """A worker process is the conformance run's own: fast XLA compiles (faster still in a run
    without jax_jit, see :func:`~lossreg.backends.use_fast_jax_compile`) and the shared JAX cache
    (JAX imported only where a JAX backend runs). Ctrl-C reaches the whole process group: the
    main process alone handles it, stopping the workers, which would each print a traceback."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    use_fast_jax_compile(eager_only)
    if uses_jax:
        share_jax_compiles()
    _register_in_worker(plugins)  # the calling process's in-process plugins (see _plugins_for_workers)
    _exit_without_teardown()


def _exit_without_teardown() -> None:
    """End this worker process, once the pool has its last result, without the teardown of what it
    loaded: JAX's exit handler frees every compiled program (thousands in a run) and the interpreter
    then frees each module and object, 1-2 CPU-s a worker that the pool's shutdown waited for. Its
    results are sent by then, and JAX wrote its disk cache as it compiled. Registered last, so run
    first at exit; a handler registered later (a library imported by a task) still runs. Only in a
    child process: never in a caller that runs ``_worker_setup`` itself."""
    import atexit
    import multiprocessing
    import os
    import sys

    def leave() -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(0)

    if multiprocessing.parent_process() is not None:
        atexit.register(leave)


def share_jax_compiles() -> None:
    """Keep JAX's compiled programs on disk, so that the next run (and every worker process of
    ``jobs`` > 1) loads them instead of compiling again: eager JAX compiles each operation for
    each new shape and dtype, ~10-60 ms apiece, which is most of a JAX run's time.

    ``LOSSREG_JAX_CACHE``: a folder (default ``$XDG_CACHE_HOME/lossreg/jax``, else
    ``~/.cache/lossreg/jax``), or ``0`` for none. A folder the user configured for JAX wins.
    Process-wide (JAX's config), so only ``lossreg conformance``, its workers and a test suite that
    asks call it, never ``run`` itself.
    """
    import os

    where = os.environ.get("LOSSREG_JAX_CACHE", "")
    if where == "0":
        return
    try:
        import jax
    except ImportError:
        return
    if getattr(jax.config, "jax_compilation_cache_dir", None):
        return
    if not where:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        where = os.path.join(base, "lossreg", "jax")
    try:
        os.makedirs(where, exist_ok=True)
    except OSError:
        return  # a read-only home: compile as before
    jax.config.update("jax_compilation_cache_dir", where)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


# What a loss under test may raise that fails its case, not the run: any exception, also
# SystemExit (a plugin's loss calling sys.exit or exit(): it ended the run with its status, 0 when
# none was given, with no matrix and no report) and GeneratorExit; Ctrl-C still stops the run.
_LOSS_FAULTS = (Exception, SystemExit, GeneratorExit)


def _raised(exc: BaseException) -> str:
    """``"raised Name: message"``, also for an exception whose ``str`` itself raises (which ended
    the whole run with a traceback, the matrix unprinted)."""
    try:
        message = str(exc)
    except Exception as error:
        message = f"(its message could not be read: {type(error).__name__})"
    return f"raised {type(exc).__name__}: {message}"


def _ours(exc: AssertionError) -> bool:
    """Whether the suite raised ``exc`` (its verdict, which says what is wrong), not the code under
    test: a bare ``assert`` in a plugin's loss read as the failure ``"case-id: "``, saying nothing."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is None or tb.tb_frame.f_globals.get("__name__") == __name__


def _run_path(outcome: Outcome, spec: LossSpec, function: Any, backend: Backend, cases: list[Case],
              references: References) -> Outcome:
    start = time.perf_counter()
    if not cases:
        outcome.status, outcome.reason = "failed", "no conformance cases are registered for this loss"
        return outcome
    declined = 0
    function = _declining(function)
    with use_kernels(False), warnings.catch_warnings():  # the path under test is called directly
        # NumPy warns where a result is NaN by design (0/0 for a mean of nothing); values are checked.
        warnings.simplefilter("ignore", RuntimeWarning)
        for case in cases:
            if case.dtypes is not None and outcome.dtype not in case.dtypes:
                outcome.not_applicable += 1
                outcome.notes["restricted to other dtypes by the case"] = outcome.notes.get(
                    "restricted to other dtypes by the case", 0) + 1
                continue
            try:
                ratio = check_case(case, spec, function, backend, outcome.dtype, outcome.device, references)
            except NotApplicable as exc:
                outcome.not_applicable += 1
                outcome.notes[str(exc)] = outcome.notes.get(str(exc), 0) + 1
                continue
            except _Declined:  # computed by the portable path, not by this one: not a case it passed
                declined += 1
                outcome.not_applicable += 1
                outcome.notes[DECLINED] = outcome.notes.get(DECLINED, 0) + 1
                continue
            except AssertionError as exc:  # the suite's verdict, or an `assert` in the loss under test
                outcome.failures.append(f"{case.id}: {exc if _ours(exc) else _raised(exc)}")
            except _LOSS_FAULTS as exc:
                outcome.failures.append(f"{case.id}: {_raised(exc)}")
            else:
                outcome.worst = max(outcome.worst, ratio)
            outcome.cases += 1
    outcome.seconds = time.perf_counter() - start
    if outcome.failures:
        outcome.status = "failed"
    elif declined and not outcome.cases:
        outcome.status, outcome.reason = "unsupported", f"{outcome.path} declined every case (returned NotImplemented)"
    elif not outcome.cases:  # each case restricted to other dtypes or beyond this one's range (notes)
        outcome.status, outcome.reason = "not_applicable", "no case applies to this dtype"
    else:
        outcome.status = "passed"
    return outcome


def summarize(outcomes: Sequence[Outcome]) -> dict[str, int]:
    """How many outcomes have each status (every one of :data:`STATUSES`, 0 where none has)."""
    counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
    for outcome in outcomes:
        counts[outcome.status] += 1
    return counts


def _label(backend: str, device: str) -> str:
    found = registry().backends.get(backend)
    label = found.label if found is not None else backend
    default = found.devices[0] if found is not None else device
    return label if device == default else f"{label}@{device}"


def _cell(group: list[Outcome]) -> str:
    if any(o.status == "failed" for o in group):
        return "FAIL"
    ran = [o for o in group if o.status == "passed"]
    if not ran:
        return "n/a" if any(o.status == "not_applicable" for o in group) else "-"
    worst = max(o.worst for o in ran)
    text = "1.0" if worst >= 0.995 else f"{worst:.2f}"[1:]  # ".12": 0.12 of the tolerance
    return text + ("k" if any(o.path != "portable" for o in ran) else "")


def matrix(outcomes: Sequence[Outcome], seconds: dict[str, float] | None = None) -> str:
    """One line per loss, a column per backend and dtype (two header lines), compact cells; then
    the reasons for unsupported columns (once each), what did not apply, and failure details."""
    keys = list(dict.fromkeys((o.backend, o.device, o.dtype) for o in outcomes))
    groups: dict[tuple[str, str, str, str], list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault((o.loss, o.backend, o.device, o.dtype), []).append(o)
    losses = list(dict.fromkeys(o.loss for o in outcomes))
    unsupported: dict[str, list[str]] = {}  # reason -> columns
    for o in outcomes:
        if o.status == "unsupported":
            where = f"{_label(o.backend, o.device)}/{DTYPE_ABBREVIATIONS.get(o.dtype, o.dtype)}"
            columns = unsupported.setdefault(o.reason, [])
            if where not in columns:
                columns.append(where)
    # Columns where nothing ran only say "unsupported"; their reasons are listed below instead.
    keys = [k for k in keys if any(o.status != "unsupported" for o in outcomes
                                   if (o.backend, o.device, o.dtype) == k)]
    width = max([len("loss"), *map(len, losses)])
    heads = list(dict.fromkeys(k[:2] for k in keys))
    top, second = ["".ljust(width)], ["loss".ljust(width)]
    cell_width: dict[tuple[str, str, str], int] = {}
    for head in heads:
        mine = [k for k in keys if k[:2] == head]
        label = _label(*head)
        widths = [max(4, len(DTYPE_ABBREVIATIONS.get(k[2], k[2]))) for k in mine]
        short = len(label) - (sum(widths) + len(widths) - 1)
        widths[-1] += max(0, short)
        cell_width.update(zip(mine, widths))
        top.append(label.ljust(sum(widths) + len(widths) - 1))
        second.append(" ".join(DTYPE_ABBREVIATIONS.get(k[2], k[2]).ljust(w) for k, w in zip(mine, widths)))
    lines = ["  ".join(top).rstrip(), "  ".join(second).rstrip()]
    for loss in losses:
        row = [loss.ljust(width)]
        for head in heads:
            row.append(" ".join(_cell(groups.get((loss, *k), [])).ljust(cell_width[k]) for k in keys if k[:2] == head))
        lines.append("  ".join(row).rstrip())
    lines += ["", ".12: passed, the largest error 0.12 of the dtype's tolerance; k: kernels passed too; "
                  "FAIL: see below; -: unsupported; n/a: no case applies to the dtype"]
    for reason, columns in unsupported.items():
        lines.append(f"unsupported  {', '.join(columns)}: {reason}")
    ran = {o.backend for o in outcomes if o.status != "unsupported"}
    known = registry().backends
    why_not: dict[str, list[str]] = {}
    for name in ran:
        if name in known and known[name].values_only:
            why_not.setdefault(known[name].values_only, []).append(name)
    if why_not:
        lines.append("gradients    not checked on " + "; ".join(f"{', '.join(names)} ({why})" for why, names in why_not.items()))
    applicable: dict[tuple[str, str], dict[str, int]] = {}
    for o in outcomes:
        for note, count in o.notes.items():
            applicable.setdefault((o.dtype, note), {})[o.loss] = count
    for (dtype, note), per_loss in applicable.items():
        lines.append(f"n/a cases    {DTYPE_ABBREVIATIONS.get(dtype, dtype)}: {sum(per_loss.values())} case{'s' * (sum(per_loss.values()) > 1)} of "
                     f"{len(per_loss)} loss{'es' * (len(per_loss) > 1)} ({note})")
    considered: dict[tuple[str, str], dict[str, tuple[int, int]]] = {}  # (backend, device) -> loss -> (run, total)
    for o in outcomes:
        if o.status != "unsupported" and (o.cases or o.not_applicable):  # not a task whose worker died
            considered.setdefault((o.backend, o.device), {}).setdefault(o.loss, (o.cases + o.not_applicable, o.total))
    sampled = [f"{_label(*b)} {sum(r for r, _ in per.values())} of {sum(t for _, t in per.values())}"
               for b, per in considered.items() if any(r < t for r, t in per.values())]
    if sampled:
        lines.append(f"sampled      {', '.join(sampled)} cases (--quick or --max-cases: per loss and dtype, "
                     "chosen to cover every option value, input shape and expected error first)")
    for o in outcomes:
        if o.status == "failed":
            lines.append(f"FAIL {o.loss} [{o.backend}/{o.dtype}/{o.device}, {o.path}]" + (": " + o.reason if o.reason else ""))
            lines.extend(f"       {failure}"[:400] for failure in o.failures[:5])
            if len(o.failures) > 5:
                lines.append(f"       ... and {len(o.failures) - 5} more")
    if seconds:
        # Summed over the tasks: with --jobs a backend's slices run side by side, so these can add up past the wall time.
        lines.append("task-seconds " + ", ".join(f"{name} {s:.1f}" for name, s in seconds.items()))
    counts = summarize(outcomes)
    cases = sum(o.cases for o in outcomes)
    lines.append(f"{counts['passed']} passed, {counts['failed']} failed, {counts['unsupported']} unsupported, "
                 f"{counts['not_applicable']} not applicable (loss × backend × dtype × path); {cases} case runs")
    return "\n".join(lines)


def not_covered(ran: Sequence[str], device: str | None = None) -> list[str]:
    """What this run leaves out and why: every other registered backend, and the devices of the
    backends run other than the one used (CUDA, say). One line per thing that cannot run here,
    with the reason, then one line listing what could run but was not asked for."""
    reg = registry()
    missing, idle = [], []
    for name, backend in reg.backends.items():
        why = backend.unavailable()
        if name not in ran:
            missing.append(f"{name}: {why}") if why else idle.append(name)
            continue
        if why:
            continue
        used = (device or backend.devices[0]).partition(":")[0]
        for other in backend.devices:
            if other.partition(":")[0] != used:
                reason = backend.device_unavailable(other)
                missing.append(f"{name} on {other}: {reason}") if reason else idle.append(f"{name} on {other}")
    return missing + ([f"available here, not requested: {', '.join(idle)}"] if idle else [])


def to_json(outcomes: Sequence[Outcome], **context: Any) -> str:
    return json.dumps({**context, "tolerances": {d: {"rtol": r, "atol": a, "eps": EPS[d]} for d, (r, a) in TOLERANCES.items()},
                       # The matrix's last line, case runs too: the exit status is 1 where none ran
                       # (every outcome unsupported or not applicable).
                       "summary": {**summarize(outcomes), "case_runs": sum(o.cases for o in outcomes)},
                       "outcomes": [asdict(o) for o in outcomes]},
                      indent=1, default=str, allow_nan=True)

