"""A user training in half precision (float16 and bfloat16) on CPU: torch, JAX, NumPy and Dask.

What this file pins, beyond ``tests/test_precision.py`` (torch and eager JAX values):

- the conformance suite passes on torch and NumPy in float16 and bfloat16 (the quick case
  selection; CI otherwise runs it in float32 and float64 only), and every combination it does not
  run says why;
- under ``jax.jit(jax.value_and_grad(...))`` every built-in loss, in each half dtype, returns the
  value and the gradients in that dtype, within an epsilon or two of torch's float64 value and
  gradients on the same rounded inputs (the plugins' losses likewise, on their own cases, against
  lossreg's float64 answer);
- NumPy's bfloat16 (ml_dtypes, which NumPy itself cannot compute with) is a LossTypeError naming
  the loss and the argument and saying what to do, for every loss;
- long sums accumulate in float32 on torch, JAX, NumPy and Dask (100,000 float16 terms: within
  one epsilon of the float64 sum of the rounded inputs);
- a half-precision result is inf exactly where its float32 value is beyond the dtype's range:
  as torch where that is so ("sum" of many large terms), finite where torch's half-precision
  arithmetic overflows on the way (a mean of squares past 65504, label smoothing over masked
  logits, a total class weight past 65504: a documented difference, README "Precision");
- mixed precision: a half-precision argument among float32 ones is promoted before the
  arithmetic, where torch computes some terms in the half dtype first (documented likewise);
- the case writers of ``lossreg.testing`` take bfloat16 arrays (JAX's, ml_dtypes') as the floating
  arrays they are (they were read as not floating, by NumPy's kind "V": pinned to bfloat16 in the
  case, and mpmath's numerical gradients raised or were taken in bfloat16).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from strategies import BUILT_IN, REFERENCES, make_good

import lossreg
from lossreg import conformance
from lossreg.errors import LossTypeError

HALF = ("float16", "bfloat16")
TORCH = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
EPS = {name: torch.finfo(dt).eps for name, dt in TORCH.items()}


def _is_float(v: Any) -> bool:
    return np.asarray(v).dtype.kind == "f"


# --- the conformance suite in half precision ----------------------------------------------------

def test_conformance_on_torch_and_numpy_in_half_precision_passes_and_says_why_where_it_does_not_run():
    outcomes = conformance.run(["torch", "numpy"], HALF, max_cases=conformance.COVER)
    counts = conformance.summarize(outcomes)
    assert counts["failed"] == 0, conformance.matrix(outcomes)
    assert counts["passed"] >= 2 * len(lossreg.names()), conformance.matrix(outcomes)  # torch in both dtypes
    ran = {(o.backend, o.dtype) for o in outcomes if o.status == "passed"}
    assert {("torch", "float16"), ("torch", "bfloat16"), ("numpy", "float16")} <= ran
    unsupported = [o for o in outcomes if o.status == "unsupported"]
    assert all(o.reason for o in unsupported), [o for o in unsupported if not o.reason]
    reasons = {(o.backend, o.dtype, o.path.split(":")[0], o.reason) for o in unsupported}
    # The only ones: NumPy has no bfloat16, and the float32/float64 kernels decline half precision
    # (the portable path, which passed above, answers instead).
    assert all(r == "numpy has no bfloat16" or (path == "kernel" and "declined every case" in r)
               for _, _, path, r in reasons), reasons


# --- JAX: jit and grad in the half dtype ----------------------------------------------------------

def _jax_value_and_grad(function: Any, arrays: dict[str, Any], options: dict[str, Any], wrt: list[str]) -> Any:
    import jax

    def loss(*diff: Any) -> Any:
        return function(*{**arrays, **dict(zip(wrt, diff))}.values(), **options)

    return jax.jit(jax.value_and_grad(loss, argnums=tuple(range(len(wrt)))))(*(arrays[k] for k in wrt))


def _error_eps(got: Any, want: np.ndarray, dtype: str) -> float:
    """max |got - want| in epsilons of ``dtype``, relative to the largest |want|."""
    g = np.asarray(np.asarray(got).astype(np.float32), dtype=np.float64)
    return float(np.abs(g - want).max() / (EPS[dtype] * max(np.abs(want).max(), 1e-30)))


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("name", BUILT_IN)
def test_jax_jit_value_and_grad_in_half_precision_are_torchs_float64_ones_rounded(name: str, dtype: str) -> None:
    jnp = pytest.importorskip("jax.numpy")
    ex = make_good(name, 1, n=32, c=8)
    arrays = {k: jnp.asarray(v, dtype=dtype) if _is_float(v) else jnp.asarray(v) for k, v in ex.inputs.items()}
    wrt = [k for k in lossreg.spec(name).differentiable if k in arrays and _is_float(ex.inputs[k])]
    value, grads = _jax_value_and_grad(getattr(lossreg, name), arrays, {"reduction": "mean"}, wrt)

    exact = {k: torch.from_numpy(np.array(v.astype("float32") if _is_float(ex.inputs[k]) else v)) for k, v in arrays.items()}
    exact = {k: v.double().requires_grad_(k in wrt) if v.is_floating_point() else v for k, v in exact.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = REFERENCES[name](*exact.values(), reduction="mean")
    want_grads = torch.autograd.grad(want, [exact[k] for k in wrt])

    assert {str(value.dtype)} | {str(g.dtype) for g in grads} == {dtype}
    assert _error_eps(value, want.detach().numpy(), dtype) <= 1.0
    for k, g, w in zip(wrt, grads, want_grads):
        assert _error_eps(g, w.numpy(), dtype) <= 2.0, k


def _plugin_cases(plugin: str) -> list[Any]:
    """One "mean" case with gradients, that may run in bfloat16, per loss of ``plugin``."""
    from lossreg.registry import registry

    picked: dict[str, Any] = {}
    for case in registry().cases:
        if (case.plugin == plugin and case.raises is None and case.options.get("reduction") == "mean"
                and (case.dtypes is None or "bfloat16" in case.dtypes) and case.grads):
            picked.setdefault(case.loss, case)
    return list(picked.values())


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("plugin", ["extras", "segmentation"])
def test_plugin_losses_under_jax_jit_and_grad_in_half_precision(plugin: str, dtype: str, request: Any) -> None:
    """The plugins' losses have no torch peer: the reference is lossreg's own float64 answer (which
    their conformance cases check against mpmath) on the same rounded inputs."""
    jnp = pytest.importorskip("jax.numpy")
    request.getfixturevalue(plugin)  # the real plugin package, registered as its entry point would
    cases = _plugin_cases(plugin)
    assert len(cases) >= 3, f"lossreg-{plugin} has cases to run"
    for case in cases:
        spec = lossreg.spec(case.loss)
        data = {k: np.asarray(v["data"], dtype="float64" if v["dtype"] == "float" else v["dtype"])
                for k, v in case.inputs.items()}
        options = {k: np.asarray(v["data"], dtype="float64") if isinstance(v, dict) else v for k, v in case.options.items()}
        wrt = [k for k in spec.differentiable if k in data and _is_float(data[k])]
        arrays = {k: jnp.asarray(v, dtype=dtype) if _is_float(v) else jnp.asarray(v) for k, v in data.items()}
        jopts = {k: jnp.asarray(v, dtype=dtype) if isinstance(v, np.ndarray) else v for k, v in options.items()}
        value, grads = _jax_value_and_grad(spec.function, arrays, jopts, wrt)

        exact = {k: torch.from_numpy(np.array(v.astype("float32"), dtype=np.float64) if _is_float(data[k]) else np.array(v))
                 for k, v in arrays.items()}
        exact = {k: v.requires_grad_(k in wrt) if v.is_floating_point() else v for k, v in exact.items()}
        topts = {k: torch.from_numpy(np.asarray(v.astype("float32"), dtype=np.float64)) if hasattr(v, "shape") else v
                 for k, v in jopts.items()}
        want = spec.function(*exact.values(), **topts)
        want_grads = torch.autograd.grad(want, [exact[k] for k in wrt])

        assert {str(value.dtype)} | {str(g.dtype) for g in grads} == {dtype}, case.loss
        assert _error_eps(value, want.detach().numpy(), dtype) <= 1.0, case.loss
        for k, g, w in zip(wrt, grads, want_grads):
            assert _error_eps(g, w.numpy(), dtype) <= 2.0, (case.loss, k)


# --- NumPy's bfloat16 -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", BUILT_IN)
def test_numpy_bfloat16_from_ml_dtypes_is_a_lossreg_error_saying_what_to_do(name: str) -> None:
    """NumPy cannot compute in ml_dtypes' bfloat16 (it is not one of the Array API's dtypes): every
    loss refuses it, naming itself and the argument, and says how to pass the values instead."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    ex = make_good(name)
    first = next(k for k, v in ex.inputs.items() if _is_float(v))
    arrays = [np.asarray(v).astype(ml_dtypes.bfloat16) if _is_float(v) else np.asarray(v) for v in ex.inputs.values()]
    with pytest.raises(LossTypeError) as info:
        getattr(lossreg, name)(*arrays)
    message = str(info.value)
    assert message.startswith(f"{name}: argument '{first}'") and "bfloat16" in message and ".astype(np.float32)" in message


def test_a_numpy_bfloat16_class_weight_of_float32_logits_is_refused_the_same_way():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(LossTypeError, match=r"cross_entropy: argument 'weight' .*astype\(np.float32\)"):
        lossreg.cross_entropy(x, np.array([0, 2]), weight=np.ones(3, ml_dtypes.bfloat16))


# --- accumulation and overflow ----------------------------------------------------------------------

def _libraries() -> list[Any]:
    def jax_(a: np.ndarray) -> Any:
        import jax.numpy as jnp
        return jnp.asarray(a)

    def dask_(a: np.ndarray) -> Any:
        import dask.array as da
        return da.from_array(a, chunks=a.shape[0] // 4)

    return [pytest.param(torch.from_numpy, id="torch"), pytest.param(jax_, id="jax"),
            pytest.param(lambda a: a, id="numpy"), pytest.param(dask_, id="dask")]


def _value(x: Any) -> float:
    x = x.compute() if hasattr(x, "compute") else x
    return float(np.asarray(x.float() if torch.is_tensor(x) else x, dtype=np.float64))


@pytest.mark.parametrize("library", _libraries())
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_a_long_float16_sum_accumulates_in_float32(library: Any, reduction: str) -> None:
    """100,000 float16 terms, summed in float16, would stop growing at 2^11 times a term (and
    lose about 10 bits); accumulated in float32 the result is the exact one rounded once."""
    rng = np.random.default_rng(7)
    a, b = (rng.uniform(0, 1, 100_000).astype(np.float16) for _ in range(2))  # sum about 16,700
    got = lossreg.mse_loss(library(a), library(b), reduction=reduction)
    exact = ((a.astype(np.float64) - b) ** 2)
    want = exact.sum() if reduction == "sum" else exact.mean()
    assert str(got.dtype).endswith("float16")
    assert abs(_value(got) - want) <= EPS["float16"] * abs(want)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # NumPy's own (README)
@pytest.mark.parametrize("library", _libraries())
def test_a_float16_sum_beyond_65504_is_inf_as_torchs(library: Any) -> None:
    a = np.full(1000, 20.0, np.float16)  # 1000 terms of 400: 400,000
    b = np.zeros(1000, np.float16)
    want = F.mse_loss(torch.from_numpy(a), torch.from_numpy(b), reduction="sum")
    got = lossreg.mse_loss(library(a), library(b), reduction="sum")
    assert torch.isinf(want) and np.isinf(_value(got)) and _value(got) > 0
    # and a mean of the same terms, 400, is finite in both
    assert _value(lossreg.mse_loss(library(a), library(b))) == F.mse_loss(torch.from_numpy(a), torch.from_numpy(b)).item() == 400


@pytest.mark.parametrize("library", _libraries())
def test_a_float16_mean_whose_terms_overflow_in_float16_is_finite_unlike_torchs(library: Any) -> None:
    """A documented difference (README "Precision"): torch squares float16 differences in float16
    (300² = 90,000 > 65504: inf) before averaging; lossreg computes in float32, so the mean is the
    exact 900."""
    a = np.zeros(100, np.float16)
    a[0] = 300
    b = np.zeros(100, np.float16)
    assert torch.isinf(F.mse_loss(torch.from_numpy(a), torch.from_numpy(b)))
    got = lossreg.mse_loss(library(a), library(b))
    assert str(got.dtype).endswith("float16") and _value(got) == F.mse_loss(torch.from_numpy(a).double(),
                                                                            torch.from_numpy(b).double()).item() == 900


def test_label_smoothing_over_float16_masked_logits_is_finite_unlike_torchs():
    """Logits masked with float16's most negative value (-65504), as attention masks do: the
    smoothing term sums them, -131008 for two masked classes, beyond float16 in torch's
    arithmetic (inf); in float32 it is not, and lossreg's loss and gradient are the float64 ones
    of the same inputs, rounded."""
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(8, 6)) * 3, dtype=torch.float16)
    x[:, 4:] = torch.finfo(torch.float16).min
    t = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    assert torch.isinf(F.cross_entropy(x, t, label_smoothing=0.1))
    xr, x64 = x.clone().requires_grad_(), x.double().requires_grad_()
    got, want = lossreg.cross_entropy(xr, t, label_smoothing=0.1), F.cross_entropy(x64, t, label_smoothing=0.1)
    assert got.dtype == torch.float16
    assert abs(got.item() - want.item()) <= EPS["float16"] * want.item()
    (g,), (w,) = torch.autograd.grad(got, xr), torch.autograd.grad(want, x64)
    assert (g.double() - w).abs().max() <= 2 * EPS["float16"] * w.abs().max()


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_a_float16_weighted_mean_whose_total_weight_passes_65504_is_finite_unlike_torchs(name: str) -> None:
    """200 samples of class weight 1000: the total weight, 200,000, is beyond float16; torch's
    float16 "mean" divides by it in float16 (nan or 0), lossreg's is the float64 mean rounded."""
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(200, 5)), dtype=torch.float16)
    t, w = torch.tensor(rng.integers(0, 5, 200)), torch.full((5,), 1000.0, dtype=torch.float16)
    theirs = getattr(F, name)(x, t, weight=w)
    assert torch.isnan(theirs) or theirs.item() == 0
    got, want = getattr(lossreg, name)(x, t, weight=w), getattr(F, name)(x.double(), t, weight=w.double())
    assert got.dtype == torch.float16 and abs(got.item() - want.item()) <= EPS["float16"] * abs(want.item())


# --- mixed precision ----------------------------------------------------------------------------------

MIXED = {  # (loss, the float32 arguments' names): the others are bfloat16
    "gaussian_nll_loss": ("input", "target"),
    "kl_div": ("input",),
    "poisson_nll_loss": ("target",),
    "triplet_margin_loss": ("negative",),
    "cosine_embedding_loss": ("input1",),
}


@pytest.mark.parametrize("name", list(MIXED))
def test_a_bfloat16_argument_among_float32_ones_is_promoted_before_the_arithmetic(name: str) -> None:
    """A documented difference (README "Precision"): torch computes the terms of the bfloat16
    arguments in bfloat16 before promoting (GaussianNLLLoss's log(var), KLDivLoss's log(target)...),
    lossreg promotes first: its float32 result is the exact one of the rounded inputs, to float32's
    precision, where torch's is off by up to bfloat16's."""
    ex = make_good(name, 0, n=32, c=5)
    args = {k: torch.from_numpy(np.asarray(v)).to(torch.float32 if k in MIXED[name] else torch.bfloat16)
            if _is_float(v) else torch.from_numpy(np.asarray(v)) for k, v in ex.inputs.items()}
    want = REFERENCES[name](*args.values(), reduction="none")
    got = lossreg.spec(name).function(*args.values(), reduction="none")
    exact = REFERENCES[name](*(v.double() if v.is_floating_point() else v for v in args.values()), reduction="none")
    scale = exact.abs().max()
    assert got.dtype == want.dtype == torch.float32
    assert (got.double() - exact).abs().max() <= 32 * EPS["float32"] * scale
    assert (want.double() - exact).abs().max() > 32 * EPS["float32"] * scale  # torch's half-precision terms


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "portable"])
@pytest.mark.parametrize(("name", "argument"), [("gaussian_nll_loss", "var"), ("linear_cross_entropy", "input"),
                                                ("linear_cross_entropy", "linear_weight")])
def test_a_float8_argument_among_float32_ones_is_promoted_as_a_half_precision_one(name: str, argument: str,
                                                                                   kernels: bool) -> None:
    # The other losses compute torch's float8 values in float32; these two raised torch's own error:
    # float8 has no comparison (gaussian_nll_loss's check of var, "lt_cpu" not implemented) and no
    # promotion (the linear_cross_entropy kernel's promote_types: "Promotion for Float8 Types").
    args = {k: torch.from_numpy(np.asarray(v)) for k, v in make_good(name).inputs.items()}
    args = {k: v.float() if v.is_floating_point() else v for k, v in args.items()}
    args[argument] = args[argument].to(torch.float8_e4m3fn)
    want = REFERENCES[name](*(v.float() if v.is_floating_point() else v for v in args.values()), reduction="none")
    with lossreg.use_kernels(kernels):
        got = getattr(lossreg, name)(*args.values(), reduction="none")
    assert got.dtype == torch.float32, got.dtype
    torch.testing.assert_close(got, want)
    if argument == "var":  # and a negative variance is lossreg's error, as in any other dtype
        with pytest.raises(lossreg.LossValueError, match="'var' expected non-negative"):
            lossreg.gaussian_nll_loss(args["input"], args["target"], (-args["var"].float()).to(torch.float8_e4m3fn))


# --- writing cases from half-precision arrays (lossreg.testing) ---------------------------------------

def _bfloat16_arrays() -> list[Any]:
    def jax_(a: np.ndarray) -> Any:
        import jax.numpy as jnp
        return jnp.asarray(a, dtype="bfloat16")

    def ml_(a: np.ndarray) -> Any:
        import ml_dtypes
        return a.astype(ml_dtypes.bfloat16)

    return [pytest.param(jax_, id="jax"), pytest.param(ml_, id="ml_dtypes")]


@pytest.mark.parametrize("make", _bfloat16_arrays())
def test_a_case_written_from_bfloat16_arrays_is_the_case_of_their_float32_values(make: Any) -> None:
    """bfloat16 (NumPy kind "V", not "f") is a floating dtype to the case writers too: its arrays
    are ``"float"`` inputs (the dtype under test), not pinned to bfloat16 as float16 ones are not,
    and mpmath references get mpf copies of them, so that the numerical gradients are not taken
    through bfloat16 arithmetic (they were all 0: a step of the derivative rounded away)."""
    from lossreg import testing

    x = np.array([[0.5, -1.25, 2.0], [1.5, 0.75, -0.5]], np.float32)
    t = np.array([[0.25, 0.5, -1.0], [1.0, 0.0, 0.25]], np.float32)

    def mse(input: Any, target: Any, reduction: str) -> Any:
        return testing.elementwise(lambda a, b: (a - b) ** 2, reduction, input, target)

    def write(a: Any, b: Any) -> dict[str, Any]:
        return testing.mp_case("mse_loss", "half", mse,
                               {"input": a, "target": b}, {"reduction": "mean"}, grads=("input", "target"), source="test")

    want, got = write(x, t), write(make(x), make(t))
    assert testing.encode_array(make(x)) == testing.encode_array(x) == {"data": x.tolist(), "dtype": "float"}
    assert got["inputs"] == want["inputs"]
    assert got["expected"] == pytest.approx(want["expected"], rel=1e-12)
    for name in ("input", "target"):
        np.testing.assert_allclose(got["grads"][name], want["grads"][name], rtol=1e-12)
        assert np.any(np.asarray(want["grads"][name]) != 0)
