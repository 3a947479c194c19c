"""The testing side of the toolkit: conformance cases, backends, the conformance check, and the
helpers that write reference cases.

A plugin's tests and its reference generator need only this module::

    from lossreg.testing import Backend, Case, check_conformance, value_case, error_case, write_cases

- :class:`Case` is one reference case (inputs, options, expected value and gradients);
  :func:`load_cases` reads a JSON case file, :data:`TOLERANCES` are the per-dtype tolerances.
- :class:`Backend` is an array library as the suite sees it (subclass it to add one).
- :func:`check_conformance` runs the suite in a test and fails it with the matrix.
- :func:`encode_array`, :func:`value_case`, :func:`error_case` and :func:`write_cases` turn
  reference values computed elsewhere (torch in float64, the published formula in NumPy, mpmath)
  into a case file; :func:`mp_case` and its helpers compute the reference with mpmath, at its
  working precision, and the gradients by numerical differentiation.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .backends import Backend
from .conformance import EPS, TOLERANCES, Case, Outcome, load_cases

__all__ = [
    "Backend", "Case", "Outcome", "load_cases", "EPS", "TOLERANCES", "DEFAULT_BACKENDS", "check_conformance",
    "encode_array", "value_case", "error_case", "write_cases", "snap",
    "mp_case", "mp_array", "mp_reduce", "mp_sum", "mp_float", "per_sample", "elementwise",
]

DEFAULT_BACKENDS = "numpy,array_api_strict,torch"


# --- the conformance check, for tests ---------------------------------------------------------

def check_conformance(losses: Sequence[str] | str | None = None, *, plugin: str | None = None,
                      backends: Sequence[str] | str = DEFAULT_BACKENDS,
                      dtypes: Sequence[str] | str = ("float32", "float64"), device: str | None = None) -> list[Outcome]:
    """Run the conformance suite on ``losses`` (default: every loss ``plugin`` registered) and fail
    the calling test with the matrix if any case fails. ``losses``, ``backends`` and ``dtypes`` are
    lists of names or comma-separated strings; one that names nothing fails the test.

    ``plugin`` (its entry-point or distribution name) must be loaded without faults (a failed
    import, a hook that raised, a name it could not register all fail the test, saying why); a
    slow import only warns. Backends whose library is not installed are skipped, each with a
    warning saying why; if none could run, the test is skipped. Returns the
    :class:`Outcome` list. Needs pytest (it fails and skips tests).
    """
    import pytest

    from . import conformance
    from .errors import LossregPluginWarning, PluginError
    from .registry import registry

    reg = registry()
    losses, dtypes, names = (None if losses is None else _listed(losses)), _listed(dtypes), _listed(backends)
    for what, given in (("losses", losses), ("backends", names), ("dtypes", dtypes)):
        if given is not None and not given:  # not every loss, nor a skip: a list computed empty is a mistake
            pytest.fail(f"check_conformance: {what} names nothing; leave it out for its default", pytrace=False)
    if plugin is not None:
        try:
            found, notes = conformance.plugin_losses(plugin)
        except PluginError as exc:
            pytest.fail(str(exc), pytrace=False)
        for note in notes:
            warnings.warn(note, LossregPluginWarning, stacklevel=2)
        losses = found if losses is None else losses
    if losses is not None:
        missing = [name for name in losses if not _known(reg, name)]
        if missing:
            pytest.fail(f"no loss named {', '.join(map(repr, missing))} is registered; is the plugin that "
                        "defines it installed (`pip install -e .`)?", pytrace=False)
    unknown = [b for b in names if b not in reg.backends]
    if unknown:
        pytest.fail(f"unknown backend {', '.join(unknown)}; known: {', '.join(reg.backends)}", pytrace=False)
    skipped = {b: why for b in names if (why := reg.backends[b].unavailable())}
    for b, why in skipped.items():  # a pass must not hide what it did not check
        warnings.warn(f"lossreg conformance: backend {b} not run: {why}", UserWarning, stacklevel=2)
    outcomes = conformance.run([b for b in names if b not in skipped], dtypes, device, losses)
    report = conformance.matrix(outcomes) + "".join(f"\nnot run: {b}: {why}" for b, why in skipped.items())
    counts = conformance.summarize(outcomes)
    if counts["failed"]:
        pytest.fail("lossreg conformance failed\n" + report, pytrace=False)
    if not any(o.cases for o in outcomes):  # unsupported everywhere, or no case applies to the dtypes
        pytest.skip("no backend could run the conformance suite, or no case applies:\n" + report)
    idle = sorted({f"{o.loss} in {o.dtype}" for o in outcomes if o.status == "not_applicable"})
    if idle:  # as a backend not run: a pass must not hide what it did not check
        warnings.warn(f"lossreg conformance: no case applies to {', '.join(idle)} (checked nothing there)",
                      UserWarning, stacklevel=2)
    return outcomes


def _listed(names: Sequence[str] | str) -> list[str]:
    """Names given as a list, or as one comma-separated string (as the command's flags take them):
    a string is not iterated letter by letter."""
    return [n.strip() for n in names.split(",") if n.strip()] if isinstance(names, str) else list(names)


def _known(reg: Any, name: str) -> bool:
    try:
        reg.lookup(name)
    except Exception:
        return False
    return True


# --- writing cases ------------------------------------------------------------------------------

def _numpy(x: Any) -> np.ndarray:
    """``np.asarray(x)``, with an ml_dtypes floating dtype (bfloat16, float8_*: NumPy's kind "V",
    not "f", as JAX's bfloat16 arrays give them) as float64, which holds its values exactly."""
    x = np.asarray(x)
    if x.dtype.kind == "V":
        try:
            import ml_dtypes

            ml_dtypes.finfo(x.dtype)
        except (ImportError, ValueError):  # not a floating one
            return x
        return x.astype(np.float64)
    return x


def encode_array(x: Any) -> dict[str, Any]:
    """An array as a case file holds it: ``{"data", "dtype"}`` (``"float"`` for any floating dtype,
    which becomes the dtype under test), plus ``"shape"`` for empty arrays (lists lose it)."""
    x = _numpy(x)
    encoded: dict[str, Any] = {"data": x.tolist(), "dtype": "float" if x.dtype.kind == "f" else str(x.dtype)}
    if x.size == 0:
        encoded["shape"] = list(x.shape)
    return encoded


def _options(options: dict[str, Any] | None) -> dict[str, Any]:
    return {k: encode_array(v) if isinstance(v, np.ndarray) else v for k, v in (options or {}).items()}


def value_case(loss: str, id: str, inputs: dict[str, Any], expected: Any, options: dict[str, Any] | None = None,
               *, grads: dict[str, Any] | None = None, dtypes: Sequence[str] | None = None,
               source: str = "") -> dict[str, Any]:
    """One case as a dict for :func:`write_cases`: ``loss(*inputs, **options)`` must give ``expected``
    (a number or nested list, float64) and ``d sum(loss) / d input`` must be ``grads[input]``.

    ``inputs`` are NumPy arrays (or anything ``np.asarray`` takes); array ``options`` must be NumPy
    arrays (a list stays a plain list, which the functional form refuses for an array option);
    ``dtypes`` restricts the case to those run dtypes; ``source`` says where the formula is from.
    """
    case: dict[str, Any] = {"loss": loss, "id": id, "inputs": {k: encode_array(v) for k, v in inputs.items()},
                            "options": _options(options), "expected": np.asarray(expected, dtype="float64").tolist()}
    if grads:
        case["grads"] = {k: np.asarray(g, dtype="float64").tolist() for k, g in grads.items()}
    if dtypes:
        case["dtypes"] = list(dtypes)
    if source:
        case["source"] = source
    return case


def error_case(loss: str, id: str, raises: str, inputs: dict[str, Any], options: dict[str, Any] | None = None,
               *, source: str = "argument checking") -> dict[str, Any]:
    """A case whose call must raise the lossreg exception named ``raises`` (``"LossValueError"``)."""
    return {"loss": loss, "id": id, "inputs": {k: encode_array(v) for k, v in inputs.items()},
            "options": _options(options), "raises": raises, "source": source}


def write_cases(path: str | Path, cases: Iterable[dict[str, Any]], **header: Any) -> Path:
    """Write ``cases`` to the JSON case file ``path`` (``header`` fields first, e.g. the generator).

    Refuses duplicate (loss, id) pairs, which would make a failure ambiguous. NaN and infinities
    are written as JSON's ``NaN``/``Infinity``, which :func:`load_cases` reads back.
    """
    cases = list(cases)
    ids = [(c["loss"], c["id"]) for c in cases]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"duplicate case ids: {duplicates}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**header, "cases": cases}, allow_nan=True) + "\n", encoding="utf-8")
    return path


def snap(x: Any, bits: int = 8) -> np.ndarray:
    """``x`` rounded to ``bits`` significant bits (8: float16 and bfloat16 hold it exactly), so that a
    reference answers for the very inputs each dtype is run on. Integer arrays are returned as they are."""
    x = _numpy(x)
    if x.dtype.kind != "f":
        return x
    mantissa, exponent = np.frexp(x)
    return np.ldexp(np.round(mantissa * 2**bits) / 2**bits, exponent)


# --- mpmath references: NumPy object arrays of mpmath numbers -----------------------------------

def mp_array(x: Any) -> np.ndarray:
    """A floating array as an object array of ``mpmath.mpf`` (exact copies); other arrays unchanged."""
    import mpmath as mp

    x = _numpy(x)
    if x.dtype.kind != "f":
        return x
    out = np.empty(x.shape, dtype=object)
    for index in np.ndindex(x.shape):
        out[index] = mp.mpf(float(x[index]))
    return out


def mp_float(value: Any) -> Any:
    """An mpmath number, or an object array of them, rounded to float64 (nested lists for arrays)."""
    if isinstance(value, np.ndarray):
        return [mp_float(v) for v in value] if value.ndim else mp_float(value[()])
    return float(value)


def mp_sum(x: Any) -> Any:
    """The exact (``mpmath.fsum``) sum of every element."""
    import mpmath as mp

    return mp.fsum(np.asarray(x).ravel())


def mp_reduce(values: np.ndarray, reduction: str, count: Any = None) -> Any:
    """A "none" / "mean" / "sum" reduction in mpmath; "mean" divides by ``count`` (default: the
    number of values) and is NaN when that is 0."""
    import mpmath as mp

    if reduction == "none":
        return values
    total = mp.fsum(values.ravel())
    if reduction == "sum":
        return total
    count = values.size if count is None else count
    return total / count if count else mp.nan


def per_sample(f: Callable[..., Any], *arrays: np.ndarray) -> np.ndarray:
    """``f`` applied to each sample (index along axis 0) of the arrays: an object array of shape (N,)."""
    out = np.empty(arrays[0].shape[0], dtype=object)
    for n in range(arrays[0].shape[0]):
        out[n] = f(*(a[n] for a in arrays))
    return out


def elementwise(f: Callable[..., Any], reduction: str, *arrays: np.ndarray) -> Any:
    """``f`` applied element by element to the arrays, then reduced with :func:`mp_reduce`."""
    values = np.frompyfunc(f, len(arrays), 1)(*arrays)
    return mp_reduce(np.asarray(values, dtype=object), reduction)


def mp_case(loss: str, id: str, reference: Callable[..., Any], inputs: dict[str, np.ndarray],
            options: dict[str, Any] | None = None, *, grads: Iterable[str] = ("input",),
            dtypes: Sequence[str] | None = None, source: str,
            subgradients: dict[str, np.ndarray] | None = None, exact: bool = False) -> dict[str, Any]:
    """One case computed by ``reference(**inputs, **options)`` in mpmath: the value, and
    ``d sum(loss) / d input`` for each name in ``grads`` by ``mpmath.diff`` at the working precision.

    ``reference`` takes object arrays of ``mpf`` (see :func:`mp_array`) and returns one, or a number.
    Inputs are snapped to 8 significant bits (:func:`snap`) unless ``exact`` (values chosen to
    probe float32 or float64 precision, whose ``dtypes`` should then say so). At a point where the
    formula is not differentiable, ``subgradients`` gives the gradient the loss documents.
    """
    import mpmath as mp

    inputs = inputs if exact else {k: snap(v) for k, v in inputs.items()}
    given = options or {}
    mp_options = {k: mp_array(v) if isinstance(v, np.ndarray) else v for k, v in given.items()}
    at = {k: mp_array(v) for k, v in inputs.items()}
    value = reference(**at, **mp_options)
    out: dict[str, Any] = {"loss": loss, "id": id, "inputs": {k: encode_array(v) for k, v in inputs.items()},
                           "options": _options(given), "expected": mp_float(value), "grads": {}}
    for name in grads:
        if subgradients and name in subgradients:
            out["grads"][name] = np.asarray(subgradients[name], dtype="float64").tolist()
            continue
        grad = np.empty(at[name].shape, dtype=object)
        for index in np.ndindex(at[name].shape):
            def f(t: Any, index: tuple[int, ...] = index, name: str = name) -> Any:
                moved = {k: v.copy() for k, v in at.items()}
                moved[name][index] = t
                result = reference(**moved, **mp_options)
                return mp.fsum(result.ravel()) if isinstance(result, np.ndarray) else result

            grad[index] = mp.diff(f, at[name][index])
        out["grads"][name] = mp_float(grad)
    if not out["grads"]:
        del out["grads"]
    if dtypes:
        out["dtypes"] = list(dtypes)
    out["source"] = source + f"; reference: mpmath, {mp.mp.dps} digits (generate_cases.py)"
    return out
