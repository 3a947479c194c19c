"""Half precision: float16 and bfloat16 inputs are accumulated in float32 and returned in the input dtype.

For every registered loss and many random inputs, the result in a half dtype is compared with
torch's float64 reference computed on the same (already rounded) inputs. The error is measured
in units of the dtype's epsilon, relative to ``max(|reference|, mean |reference|)``: rounding the
float32 result once costs at most 0.5, while accumulating in the half dtype itself would cost
about the number of summed terms. The measured table is written by

    python tests/test_precision.py      # -> benchmarks/results/precision.md and precision.json
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from strategies import BUILT_IN, REFERENCES, make_good

import lossreg

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}
EPS = {name: torch.finfo(dt).eps for name, dt in DTYPES.items()}
SEEDS = range(4)  # per test; the written report uses REPORT_SEEDS
REPORT_SEEDS = range(16)
SIZES = ((64, 16), (512, 3))  # (n, c): the second sums 1536 terms, far beyond a half dtype's 2^8-2^11
BOUND = 1.0  # in epsilons: twice what rounding the float32 result once costs
RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def _run(name: str, dtype: str, seed: int, n: int, c: int, reduction: str) -> tuple[float, str]:
    """(error in epsilons, dtype of the result) for one random input."""
    ex = make_good(name, seed, n=n, c=c)
    half = {k: torch.from_numpy(np.asarray(v)).to(DTYPES[dtype]) if np.asarray(v).dtype.kind == "f"
            else torch.from_numpy(np.asarray(v)) for k, v in ex.inputs.items()}
    got = getattr(lossreg, name)(*half.values(), reduction=reduction)
    exact = {k: v.double() if v.is_floating_point() else v for k, v in half.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = REFERENCES[name](*exact.values(), reduction=reduction).numpy()
    g = got.double().numpy()
    scale = np.maximum(np.abs(want), np.abs(want).mean())
    err = np.abs(g - want) / (EPS[dtype] * np.where(scale > 0, scale, 1.0))
    return float(err.max()), str(got.dtype).removeprefix("torch.")


def measure(name: str, dtype: str, seeds: range = SEEDS) -> dict[str, Any]:
    errors, dtypes = [], set()
    for seed in seeds:
        for n, c in SIZES:
            for reduction in ("none", "mean", "sum"):
                e, dt = _run(name, dtype, seed, n, c, reduction)
                errors.append(e)
                dtypes.add(dt)
    return {"loss": name, "dtype": dtype, "inputs": len(errors), "max_error_eps": max(errors),
            "mean_error_eps": float(np.mean(errors)), "result_dtypes": sorted(dtypes)}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", BUILT_IN)
def test_half_precision_error_within_dtype_bound(name: str, dtype: str) -> None:
    m = measure(name, dtype)
    assert m["result_dtypes"] == [dtype], m
    assert m["max_error_eps"] <= BOUND, m


@pytest.mark.parametrize("name", BUILT_IN)
def test_numpy_float16_returns_float16(name: str) -> None:
    ex = make_good(name)
    half = [np.asarray(v).astype("float16") if np.asarray(v).dtype.kind == "f" else v for v in ex.inputs.values()]
    got = getattr(lossreg, name)(*half)
    want = REFERENCES[name](*(torch.from_numpy(np.asarray(v).astype("float64") if np.asarray(v).dtype.kind == "f"
                                               else np.asarray(v)) for v in half)).item()
    assert got.dtype == np.float16
    assert abs(float(got) - want) <= BOUND * EPS["float16"] * max(abs(want), 1e-3)


def _jax_half(name: str, dtype: str, inputs: dict[str, Any], **options: Any) -> float:
    """The error in epsilons of ``name`` on JAX arrays of the half ``dtype`` (an ml_dtypes dtype, whose
    NumPy kind is "V", not "f"), against torch's float64 reference on the same rounded inputs."""
    jnp = pytest.importorskip("jax.numpy")
    half = {k: jnp.asarray(v, dtype=dtype) if np.asarray(v).dtype.kind == "f" else jnp.asarray(v)
            for k, v in inputs.items()}
    got = getattr(lossreg, name)(*half.values(), **options)
    assert str(got.dtype) == dtype
    exact = {k: torch.from_numpy(np.array(v.astype("float32") if v.dtype == dtype else v)).to(
        torch.float64 if v.dtype == dtype else torch.int64) for k, v in half.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = REFERENCES[name](*exact.values(), **options).numpy()
    g = np.asarray(got.astype("float32"), dtype=np.float64)
    scale = np.maximum(np.abs(want), np.abs(want).mean())
    return float((np.abs(g - want) / (EPS[dtype] * np.where(scale > 0, scale, 1.0))).max())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", BUILT_IN)
def test_jax_half_precision_error_within_dtype_bound(name: str, dtype: str) -> None:
    for reduction in ("none", "mean"):
        assert _jax_half(name, dtype, make_good(name, 0, n=64, c=16).inputs, reduction=reduction) <= BOUND


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["cross_entropy", "linear_cross_entropy"])
def test_jax_half_precision_probability_targets_are_probabilities(name: str, dtype: str) -> None:
    """A bfloat16 target is floating (it was read as not-integer-not-float: "expected integer
    class indices" from linear_cross_entropy), in each half dtype."""
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(7), size=5)
    inputs = ({"input": rng.normal(size=(5, 7)), "target": p} if name == "cross_entropy" else
              {"input": rng.normal(size=(5, 3)), "linear_weight": rng.normal(size=(7, 3)), "target": p})
    for reduction in ("none", "mean"):
        assert _jax_half(name, dtype, inputs, reduction=reduction) <= BOUND


def write_report() -> None:
    rows = [measure(name, dtype, REPORT_SEEDS) for name in BUILT_IN for dtype in DTYPES]
    meta = {"command": "python tests/test_precision.py", "torch": torch.__version__,
            "eps": EPS, "bound_eps": BOUND, "sizes": SIZES, "seeds": len(REPORT_SEEDS),
            "error": "max |half result - float64 reference| / (eps · max(|reference|, mean |reference|)), "
                     "reference computed by torch in float64 on the rounded half inputs"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "precision.json").write_text(json.dumps({**meta, "results": rows}, indent=1) + "\n")
    lines = ["# Half-precision error per loss", "",
             f"Command: `{meta['command']}` (torch {torch.__version__}, CPU). {meta['error']}; "
             f"{rows[0]['inputs']} inputs per loss and dtype "
             f"({len(REPORT_SEEDS)} seeds × sizes {SIZES} × 3 reductions). "
             f"Bound: {BOUND} eps (float16 eps = {EPS['float16']:.3g}, bfloat16 eps = {EPS['bfloat16']:.3g}).",
             "", "| loss | float16 max (eps) | float16 mean | bfloat16 max (eps) | bfloat16 mean | result dtype |",
             "|---|---|---|---|---|---|"]
    for name in BUILT_IN:
        f, b = (next(r for r in rows if r["loss"] == name and r["dtype"] == dt) for dt in DTYPES)
        lines.append(f"| {name} | {f['max_error_eps']:.3f} | {f['mean_error_eps']:.3f} | {b['max_error_eps']:.3f} | "
                     f"{b['mean_error_eps']:.3f} | {', '.join(f['result_dtypes'] + b['result_dtypes'])} |")
    (RESULTS / "precision.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    write_report()
