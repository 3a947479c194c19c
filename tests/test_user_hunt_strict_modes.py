"""Every built-in loss inside the strict and debug modes an ML stack runs in.

JAX: ``jax_debug_nans`` / ``jax_debug_infs`` (with and without ``disable_jit``, which checks every
operation, the untaken branch of a ``where`` included), ``jax_numpy_rank_promotion="raise"``,
``jax_numpy_dtype_promotion="strict"``, ``jax_enable_checks`` and the x64 toggles. torch: anomaly
detection, deterministic algorithms, no_grad / inference_mode / set_grad_enabled(False), other
default dtypes and a meta default device. Python: warnings as errors on every array library.

Ordinary, finite inputs (one valid example per loss, plus the array options users pass) must go
through all of them, with torch.nn.functional's value and gradient in float64. JAX's config is
global: each test sets it with JAX's own context managers, which restore it.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
from strategies import REFERENCES
from sweep import sweep
from torch_examples import BUILTIN, differentiable, example

import lossreg

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

LOSSES = sorted(BUILTIN)
REDUCTIONS = ("mean", "sum", "none")
RTOL, ATOL = 1e-7, 1e-10


def _options_cases() -> list[tuple[str, dict[str, np.ndarray], dict[str, Any]]]:
    """Each loss's valid example, plus the array options a user passes: per-class weights (C,)
    that broadcast to (N, C) inputs, a linear layer's bias, and the non-default flags."""
    rng = np.random.default_rng(7)
    w = rng.uniform(0.5, 2.0, 3)
    cases = []

    def add(name: str, options: dict[str, Any], change: Callable[[dict], dict] | None = None) -> None:
        inputs, base = example(name)
        cases.append((name, change(dict(inputs)) if change else dict(inputs), {**base, **options}))

    for name in LOSSES:
        add(name, {})
    add("cross_entropy", {"weight": w, "label_smoothing": 0.1, "ignore_index": 0})
    add("nll_loss", {"weight": w})
    add("binary_cross_entropy", {"weight": w})
    add("binary_cross_entropy_with_logits", {"weight": w})
    add("binary_cross_entropy_with_logits", {"pos_weight": w})
    add("multilabel_soft_margin_loss", {"weight": w})
    add("multi_margin_loss", {"weight": w, "p": 2})
    add("kl_div", {"log_target": True}, lambda i: {**i, "target": np.log(i["target"])})
    # Targets ≥ 2: at targets 0 and 1 torch's own Stirling term has NaN intermediate gradients.
    add("poisson_nll_loss", {"full": True}, lambda i: {**i, "target": i["target"] % 3 + 2})
    add("gaussian_nll_loss", {"full": True})
    add("triplet_margin_loss", {"p": 1.0, "swap": True})
    add("ctc_loss", {"zero_infinity": True})
    add("linear_cross_entropy", {"linear_bias": rng.normal(size=5), "weight": rng.uniform(0.5, 2.0, 5)})
    add("linear_cross_entropy", {"z_loss": 1e-3, "softcap": 3.0})
    return cases


CASES = _options_cases()


def _ids(cases: list) -> list[str]:
    return [f"{name}-{'-'.join(k for k in opts if k not in ('reduction',)) or 'defaults'}" for name, _, opts in cases]


IDS = _ids(CASES)
# JAX compiles each case's programs afresh: CI runs op-by-op debug_nans (the mode that finds a NaN
# in an untaken branch) on every loss, the other JAX modes on sweep's representative losses
# (every loss under LOSSREG_SLOW=1).
SWEPT = sweep(CASES)
SWEPT_IDS = _ids(SWEPT)


def _reference(name: str, inputs: dict[str, np.ndarray], options: dict[str, Any]) -> tuple[np.ndarray, list[np.ndarray]]:
    """torch.nn.functional's value and the gradients of its sum, in float64."""
    grads = differentiable(name, inputs)
    ts = {k: torch.as_tensor(v) for k, v in inputs.items()}
    for k in grads:
        ts[k].requires_grad_(True)
    opts = {k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kl_div's "mean" warning is torch's, not lossreg's
        out = REFERENCES[name](*ts.values(), **opts)
    gs = torch.autograd.grad(out.sum(), [ts[k] for k in grads]) if grads else ()
    return out.detach().numpy(), [g.numpy() for g in gs]


def _jax_value_and_grads(name: str, inputs: dict[str, np.ndarray], options: dict[str, Any],
                         jit: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
    grads = differentiable(name, inputs)
    arrays = {k: jnp.asarray(v) for k, v in inputs.items()}
    opts = {k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    fn = getattr(lossreg, name)

    def total(*free: Any) -> Any:
        call = {**arrays, **dict(zip(grads, free))}
        return jnp.sum(fn(*call.values(), **opts))

    value = fn(*arrays.values(), **opts)
    grad = jax.grad(total, argnums=tuple(range(len(grads))))
    gs = (jax.jit(grad) if jit else grad)(*[arrays[k] for k in grads]) if grads else ()
    return np.asarray(value), [np.asarray(g) for g in gs]


def _assert_matches_torch(name: str, inputs: dict, options: dict, got: tuple[np.ndarray, list[np.ndarray]]) -> None:
    want = _reference(name, inputs, options)
    np.testing.assert_allclose(got[0], want[0], rtol=RTOL, atol=ATOL, err_msg=f"{name} value")
    for k, a, b in zip(differentiable(name, inputs), got[1], want[1]):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=f"{name} gradient of {k}")


@pytest.fixture
def x64() -> Iterator[None]:
    with jax.enable_x64(True):
        yield


# --- JAX -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("name", "inputs", "options"), CASES, ids=IDS)
def test_jax_debug_nans_op_by_op_finds_no_nan_made_inside_the_loss(x64, name, inputs, options, reduction):
    """Under debug_nans with jit disabled every operation's output is checked, so a NaN made for
    an untaken branch (a poison mask that flags nothing, a sqrt whose gradient is discarded)
    raises FloatingPointError, blaming lossreg for a NaN that is not there. optax's losses pass."""
    options = {**options, "reduction": reduction}
    with jax.debug_nans(True), jax.disable_jit():
        got = _jax_value_and_grads(name, inputs, options)
    _assert_matches_torch(name, inputs, options, got)


@pytest.mark.parametrize(("name", "inputs", "options"), SWEPT, ids=SWEPT_IDS)
@pytest.mark.parametrize("mode", ["debug_nans", "debug_infs"])
def test_jax_debug_nans_and_infs_under_jit(x64, mode, name, inputs, options):
    """As a user runs them: the losses and their gradients, eager and under jit."""
    with getattr(jax, mode)(True):
        got = _jax_value_and_grads(name, inputs, options)
        jitted = _jax_value_and_grads(name, inputs, options, jit=True)
    _assert_matches_torch(name, inputs, options, got)
    for a, b in zip(got[1], jitted[1]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(("name", "inputs", "options"), SWEPT, ids=SWEPT_IDS)
def test_jax_rank_promotion_raise(x64, name, inputs, options):
    """lossreg must broadcast its own arrays explicitly: with jax_numpy_rank_promotion="raise" a
    (C,) weight for (N, C) inputs, or a (L,) index row against (N, L) states, is an error."""
    for reduction in REDUCTIONS:
        opts = {**options, "reduction": reduction}
        with jax.numpy_rank_promotion("raise"):
            got = _jax_value_and_grads(name, inputs, opts)
            _jax_value_and_grads(name, inputs, opts, jit=True)
        _assert_matches_torch(name, inputs, opts, got)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("name", "inputs", "options"), SWEPT, ids=SWEPT_IDS)
def test_jax_strict_dtype_promotion(x64, dtype, name, inputs, options):
    """Every floating input (array options included) in one dtype: no implicit promotion needed."""
    inputs = {k: v.astype(dtype) if v.dtype.kind == "f" else v for k, v in inputs.items()}
    options = {k: v.astype(dtype) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    with jax.numpy_dtype_promotion("strict"):
        value, gs = _jax_value_and_grads(name, inputs, options)
    assert value.dtype == np.dtype(dtype)
    assert all(g.dtype == np.dtype(dtype) for g in gs)


@pytest.mark.parametrize("name", LOSSES)
def test_jax_enable_checks(x64, name):
    inputs, options = example(name)
    with jax.enable_checks(True):
        got = _jax_value_and_grads(name, inputs, options, jit=True)
    _assert_matches_torch(name, inputs, options, got)


@pytest.mark.parametrize("name", sweep(LOSSES))
def test_jax_x64_toggles_keep_the_input_dtype(name):
    """float32 inputs give float32 with x64 on or off; float64 ones (x64 on) give float64."""
    inputs, options = example(name)
    f32 = {k: v.astype("float32") if v.dtype.kind == "f" else v for k, v in inputs.items()}
    with jax.enable_x64(False):
        off = _jax_value_and_grads(name, f32, options)
    with jax.enable_x64(True):
        on = _jax_value_and_grads(name, f32, options)
        wide = _jax_value_and_grads(name, inputs, options)
    assert off[0].dtype == on[0].dtype == np.float32 and wide[0].dtype == np.float64
    np.testing.assert_allclose(off[0], on[0], rtol=1e-5, atol=1e-6)
    _assert_matches_torch(name, inputs, options, wide)


# --- torch ---------------------------------------------------------------------------------------


def _torch_call(fn: Callable[..., Any], name: str, inputs: dict, options: dict, dtype: torch.dtype = torch.float64,
                grad: bool = True) -> tuple[torch.Tensor, list[torch.Tensor]]:
    grads = differentiable(name, inputs) if grad else []
    ts = {k: torch.as_tensor(v).to(dtype) if v.dtype.kind == "f" else torch.as_tensor(v) for k, v in inputs.items()}
    for k in grads:
        ts[k].requires_grad_(True)
    opts = {k: torch.as_tensor(v).to(dtype) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "reduction: 'mean' divides", UserWarning)  # torch's kl_div's, not lossreg's
        out = fn(*ts.values(), **opts)
    gs = list(torch.autograd.grad(out.sum(), [ts[k] for k in grads])) if grads and out.requires_grad else []
    return out, gs


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("name", "inputs", "options"), CASES, ids=IDS)
def test_torch_anomaly_mode_backward_has_no_nan_where_torch_has_none(name, inputs, options, reduction):
    options = {**options, "reduction": reduction}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # anomaly mode's own warning, torch's kl_div "mean" warning
        with torch.autograd.detect_anomaly(check_nan=True):
            want = _torch_call(REFERENCES[name], name, inputs, options)  # torch's own loss does not trip it
            got = _torch_call(getattr(lossreg, name), name, inputs, options)
    torch.testing.assert_close(got[0], want[0], rtol=RTOL, atol=ATOL)
    for a, b in zip(got[1], want[1]):
        torch.testing.assert_close(a, b, rtol=RTOL, atol=ATOL)


@pytest.fixture
def deterministic() -> Iterator[None]:
    before, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)


@pytest.mark.parametrize(("name", "inputs", "options"), CASES, ids=IDS)
def test_torch_deterministic_algorithms(deterministic, name, inputs, options):
    got = _torch_call(getattr(lossreg, name), name, inputs, options)
    want = _torch_call(REFERENCES[name], name, inputs, options)
    torch.testing.assert_close(got[0], want[0], rtol=RTOL, atol=ATOL)
    for a, b in zip(got[1], want[1]):
        torch.testing.assert_close(a, b, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode, lambda: torch.set_grad_enabled(False)],
                         ids=["no_grad", "inference_mode", "set_grad_enabled_false"])
@pytest.mark.parametrize(("name", "inputs", "options"), CASES, ids=IDS)
def test_torch_without_autograd(mode, name, inputs, options):
    """Evaluation loops: the value, no graph, whatever mode turns autograd off."""
    with mode():
        got, _ = _torch_call(getattr(lossreg, name), name, inputs, options, grad=False)
    want, _ = _torch_call(REFERENCES[name], name, inputs, options, grad=False)
    assert not got.requires_grad
    torch.testing.assert_close(got, want.detach(), rtol=RTOL, atol=ATOL)


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


@pytest.mark.parametrize("default", [torch.float64, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize(("name", "inputs", "options"), CASES, ids=IDS)
def test_torch_default_dtype_does_not_leak_into_float32_losses(default, name, inputs, options):
    """Constants the loss makes follow its inputs' dtype, not torch's default dtype."""
    fn = getattr(lossreg, name)
    want = _torch_call(fn, name, inputs, options, dtype=torch.float32)
    with _default_dtype(default):
        got = _torch_call(fn, name, inputs, options, dtype=torch.float32)
    assert got[0].dtype == torch.float32
    torch.testing.assert_close(got[0], want[0], rtol=0, atol=0)
    for a, b in zip(got[1], want[1]):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize(("name", "inputs", "options"), CASES, ids=IDS)
def test_torch_meta_default_device_leaves_cpu_inputs_on_cpu(name, inputs, options):
    """A meta default device (model construction without memory) must not capture the tensors
    the loss makes for CPU inputs."""
    fn = getattr(lossreg, name)
    want = fn(*[torch.as_tensor(v) for v in inputs.values()], **_torch_options(options))
    ts, opts = [torch.as_tensor(v) for v in inputs.values()], _torch_options(options)  # made on the CPU
    with torch.device("meta"):
        got = fn(*ts, **opts)
    assert got.device.type == "cpu"
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def _torch_options(options: dict[str, Any]) -> dict[str, Any]:
    return {k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}


# --- warnings as errors --------------------------------------------------------------------------


def _backends() -> dict[str, Callable[[np.ndarray], Any]]:
    import array_api_strict
    import dask.array as da
    return {"numpy": np.asarray, "torch": torch.as_tensor, "jax": jnp.asarray,
            "dask": lambda a: da.from_array(a, chunks=2), "array_api_strict": array_api_strict.asarray}


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax", "dask", "array_api_strict"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("name", "inputs", "options"), CASES, ids=IDS)
def test_no_warnings_for_ordinary_inputs(x64, backend, dtype, name, inputs, options):
    convert = _backends()[backend]
    arrays = [convert(v.astype(dtype) if v.dtype.kind == "f" else v) for v in inputs.values()]
    opts = {k: convert(v.astype(dtype)) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    for reduction in REDUCTIONS:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = getattr(lossreg, name)(*arrays, **{**opts, "reduction": reduction})
            if backend == "dask":
                out = out.compute()
            assert np.all(np.isfinite(np.asarray(out)))
