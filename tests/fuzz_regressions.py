"""Differential comparison against torch.nn, and saving a failing case as conformance data.

``compare`` runs a lossreg loss (its portable definition, on torch tensors through autograd and
on NumPy arrays) and the torch reference on the same inputs, and raises ``AssertionError`` on
any difference in value or gradient. ``save_regression`` appends a case, with torch's answer as
the expectation, to ``conformance/cases/regressions.json``; the conformance runner (and
``test_fuzz.test_saved_regressions``) replay every case there.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from strategies import REFERENCES, Example

import lossreg

REGRESSIONS = Path(__file__).resolve().parent.parent / "conformance" / "cases" / "regressions.json"
RTOL, ATOL = 1e-6, 1e-9
RTOL32, ATOL32 = 2e-4, 1e-5  # float32 inputs: summation order and libm differences
_lock = threading.Lock()


def _tensor(x: Any, dtype: str, grad: bool) -> torch.Tensor:
    a = np.asarray(x)
    t = torch.from_numpy(np.array(a.astype(dtype) if a.dtype.kind == "f" else a))
    return t.requires_grad_(True) if grad and t.is_floating_point() else t


def _convert(options: dict[str, Any], dtype: str) -> dict[str, Any]:
    return {k: _tensor(v, dtype, False) if isinstance(v, np.ndarray) else v for k, v in options.items()}


def reference(name: str, ex: Example, grads: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """torch's value and its gradients of ``sum(loss)`` for the inputs lossreg differentiates."""
    leaves = set(lossreg.spec(name).differentiable) if grads else set()
    ins = {k: _tensor(v, ex.dtype, k in leaves) for k, v in ex.inputs.items()}
    value = REFERENCES[name](*ins.values(), **_convert(ex.options, ex.dtype))
    return value, _grads(value, ins)


def _function(name: str, kernels: bool) -> Any:
    """The portable definition, or with ``kernels`` the default path that hands arrays to kernels."""
    return getattr(lossreg, name) if kernels else lossreg.spec(name).function


def ours(name: str, ex: Example, grads: bool = True, kernels: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    leaves = set(lossreg.spec(name).differentiable) if grads else set()
    ins = {k: _tensor(v, ex.dtype, k in leaves) for k, v in ex.inputs.items()}
    value = _function(name, kernels)(*ins.values(), **_convert(ex.options, ex.dtype))
    return value, _grads(value, ins)


def _grads(value: torch.Tensor, ins: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    leaves = {k: t for k, t in ins.items() if t.requires_grad}
    if not leaves or not value.requires_grad:
        return {k: torch.zeros_like(t) for k, t in leaves.items()}
    got = torch.autograd.grad(value.sum(), list(leaves.values()), allow_unused=True)
    return {k: torch.zeros_like(t) if g is None else g for (k, t), g in zip(leaves.items(), got)}


def assert_matches(got: Any, want: Any, what: str, rtol: float = RTOL, atol: float = ATOL, exact: Any = None) -> None:
    """Equal within tolerance; NaN where torch has NaN and the same infinities.

    ``exact``, for float32 inputs, is torch's float64 answer at the same (rounded) inputs: an
    element off torch's float32 answer still passes if it is at least as close to ``exact`` as
    torch's float32 is, because torch's float32 is itself an approximation (its CTC gradient, for
    one, loses most digits where ``exp(log_probs)`` nearly cancels).
    """
    got, want = _float64(got), _float64(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, torch {want.shape}"
    if exact is not None:
        exact = _float64(exact)
        with np.errstate(invalid="ignore"):
            want = np.where(np.abs(got - exact) <= np.abs(want - exact), got, want)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


def _float64(x: Any) -> np.ndarray:
    return np.asarray(x.detach().numpy() if isinstance(x, torch.Tensor) else x, dtype="float64")


def compare(name: str, ex: Example, *, grads: bool = True, numpy: bool = True, kernels: bool = False) -> None:
    """lossreg against torch on ``ex``: values and gradients on torch tensors, values on NumPy.

    ``kernels`` calls the default path (torch and NumPy kernels where registered) rather than
    the portable definition.
    """
    want, g_want = reference(name, ex, grads)
    got, g_got = ours(name, ex, grads, kernels)
    context = f"{name}{ex!r}"
    assert got.dtype == want.dtype, f"dtype {got.dtype}, torch {want.dtype}: {context}"
    rtol, atol = (max(RTOL, ex.rtol), ATOL) if ex.dtype == "float64" else (RTOL32, ATOL32)
    exact, g_exact = reference(name, _rounded(ex), grads) if ex.dtype != "float64" else (None, {})
    finite = np.nan_to_num(want.detach().numpy(), nan=0.0, posinf=0.0, neginf=0.0)
    value_scale = float(np.abs(finite).max()) if finite.size else 0.0
    assert_matches(got, want, f"value: {context}", rtol, atol * max(1.0, value_scale), exact)
    for k in g_want:
        finite = np.nan_to_num(g_want[k].detach().numpy(), nan=0.0, posinf=0.0, neginf=0.0)
        scale = float(np.abs(finite).max()) if finite.size else 0.0
        assert_matches(g_got[k], g_want[k], f"gradient of {k}: {context}", rtol, atol * max(1.0, scale),
                       g_exact.get(k))
    if numpy:
        np_in = [np.asarray(v).astype(ex.dtype) if np.asarray(v).dtype.kind == "f" else np.asarray(v)
                 for v in ex.inputs.values()]
        np_opts = {k: v.astype(ex.dtype) if isinstance(v, np.ndarray) else v for k, v in ex.options.items()}
        assert_matches(_function(name, kernels)(*np_in, **np_opts), want, f"numpy value: {context}", rtol,
                       atol * max(1.0, value_scale), exact)


def _rounded(ex: Example) -> Example:
    """``ex`` in float64 at its inputs rounded to ``ex.dtype``: the exact answer a float32 result approximates."""
    def rounded(x: Any) -> Any:
        a = np.asarray(x)
        return a.astype(ex.dtype).astype("float64") if a.dtype.kind == "f" else x

    return Example({k: rounded(v) for k, v in ex.inputs.items()},
                   {k: rounded(v) if isinstance(v, np.ndarray) else v for k, v in ex.options.items()}, "float64")


def _encode(x: Any) -> dict[str, Any]:
    a = np.asarray(x)
    kind = "float" if a.dtype.kind == "f" else str(a.dtype)
    return {"data": a.astype("float64" if kind == "float" else a.dtype).tolist(), "dtype": kind,
            "shape": list(a.shape)}


def _plain(x: Any) -> Any:
    return x.detach().numpy().astype("float64").tolist() if isinstance(x, torch.Tensor) else x


def save_regression(name: str, ex: Example, error: str, path: Path = REGRESSIONS) -> str:
    """Append ``ex`` with torch's float64 answer to the regression cases; returns the case id."""
    f64 = Example(ex.inputs, ex.options, "float64")
    want, g_want = reference(name, f64)
    case = {
        "loss": name,
        "inputs": {k: _encode(v) for k, v in ex.inputs.items()},
        "options": {k: _encode(v) if isinstance(v, np.ndarray) else v for k, v in ex.options.items()},
        "expected": _plain(want),
        "grads": {k: _plain(g) for k, g in g_want.items()},
        "source": "tests/test_fuzz.py: " + error.strip().splitlines()[0][:200],
    }
    digest = hashlib.sha1(json.dumps([case["inputs"], case["options"]], sort_keys=True).encode()).hexdigest()[:10]
    case = {"id": f"fuzz-{digest}", **case}
    with _lock:
        content = json.loads(path.read_text()) if path.exists() else {
            "family": "regressions", "generator": "tests/test_fuzz.py (failures of the differential fuzzing)",
            "torch": torch.__version__, "cases": []}
        if all(c["id"] != case["id"] for c in content["cases"]):
            content["cases"].append(case)
            path.write_text(json.dumps(content, indent=1) + "\n")
    return case["id"]


def load_regressions(path: Path = REGRESSIONS) -> list[dict[str, Any]]:
    return json.loads(path.read_text())["cases"] if path.exists() else []


def decode(case: dict[str, Any]) -> Example:
    def arr(spec: dict[str, Any]) -> np.ndarray:
        dtype = "float64" if spec["dtype"] == "float" else spec["dtype"]
        return np.asarray(spec["data"], dtype=dtype).reshape(spec["shape"])
    options = {k: arr(v) if isinstance(v, dict) and "data" in v else v for k, v in case.get("options", {}).items()}
    return Example({k: arr(v) for k, v in case["inputs"].items()}, options)
