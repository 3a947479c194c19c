"""CuPy kernels: one fused elementwise pass per loss, and CuPy's own reductions.

Checked on a GPU (an H200, conformance/results/gpu-*): every conformance case, and timed against
the bandwidth floor by ``benchmarks/gpu/run.sh``. An error while compiling or launching one
makes it return ``NotImplemented`` (recorded in ``FAILURES``), so the portable path answers.

MSE, L1 and BCE are one fused pass over both inputs: the loss of each element ("none"), or, for
"mean" and "sum", its sums over 4096 rows, then ``cupy.sum`` of the rows. BCE writes NaN where a
value is outside [0, 1], as the portable path does where it may not read values (on a GPU by
default); where it may, a NaN in the result hands the call to the portable path, which names the
value. Cross-entropy makes two passes over the logits (the row maximum, then the sum of
exponentials, fused; a third, fused, with label smoothing) and no N×C temporary. Forward only:
CuPy has no autograd.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import cupy as cp

from .. import toolkit
from .ndarray_common import FLOATS, REDUCTIONS, class_target

ndarray = cp.ndarray

_SQ, _ABS = "(x - y) * (x - y)", "fabs(x - y)"
_BCE = ("((x >= 0 && x <= 1 && y >= 0 && y <= 1) ? "
        "-(y * fmax(log(x), (T)-100) + (1 - y) * fmax(log1p(-x), (T)-100)) : (T)nan(\"\"))")


def _pointwise(expression: str, name: str) -> tuple[Any, Any]:
    """The loss of each element, and the row sums of its values (a fused map-reduce)."""
    return (cp.ElementwiseKernel("T x, T y", "T z", f"z = {expression}", f"lossreg_{name}"),
            cp.ReductionKernel("T x, T y", "T z", expression, "a + b", "z = a", "0", f"lossreg_{name}_rows"))


_sq, _abs, _bce = _pointwise(_SQ, "sq"), _pointwise(_ABS, "abs"), _pointwise(_BCE, "bce")
# A ReductionKernel gives each output value one thread block: summed to one value it ran at 420
# times the bandwidth floor on an H200. So the elements are summed in _ROWS rows (one block
# each, enough to fill the GPU), and the row sums by cupy.sum.
_ROWS = 4096
_sum_exp = cp.ReductionKernel("T x, T m", "T z", "exp(x - m)", "a + b", "z = a", "0", "lossreg_sum_exp")
_sum_shifted = cp.ReductionKernel("T x, T m, T w", "T z", "w * (x - m)", "a + b", "z = a", "0",
                                  "lossreg_sum_w_shifted")
# Σ_c w_c · -log p_c term by term, l the row's log-sum: an infinite class weight gives +inf, as
# torch's, where w_sum · l - Σ w (x - m) multiplied it by the 0 of the row maximum (NaN).
_sum_weighted_nll = cp.ReductionKernel("T x, T m, T l, T w", "T z", "w * (l - (x - m))", "a + b", "z = a", "0",
                                       "lossreg_sum_weighted_nll")


# The last error each kernel met, by loss: a failing kernel declines (the portable path answers),
# and the GPU checks read this to tell a kernel that ran from one that only declined.
FAILURES: dict[str, str] = {}


def _guarded(kernel: Callable[..., Any]) -> Callable[..., Any]:
    """A kernel is never worse than the portable path: an error declines the call."""

    @functools.wraps(kernel)
    def call(*arrays: Any, **options: Any) -> Any:
        try:
            return kernel(*arrays, **options)
        except Exception as exc:
            FAILURES[kernel.__name__] = f"{type(exc).__name__}: {exc}"
            return NotImplemented

    return call


def _pair(input: Any, target: Any, reduction: Any) -> bool:
    return (type(input) is ndarray and type(target) is ndarray and input.dtype in FLOATS
            and target.dtype == input.dtype and input.shape == target.shape and reduction in REDUCTIONS
            and input.size > 0 and input.device == target.device)


def _reduce(kernels: tuple[Any, Any], input: Any, target: Any, reduction: str) -> Any:
    elementwise, rows = kernels
    if reduction == "none":
        return elementwise(input, target)
    x, y = input.reshape(-1), target.reshape(-1)
    whole = x.size // _ROWS * _ROWS if x.size >= 256 * _ROWS else 0  # small: one pass is enough
    if whole:
        total = rows(x[:whole].reshape(_ROWS, -1), y[:whole].reshape(_ROWS, -1), axis=1).sum()
        if whole < x.size:
            total = total + elementwise(x[whole:], y[whole:]).sum()
    else:
        total = elementwise(x, y).sum()
    return total / input.dtype.type(input.size) if reduction == "mean" else total


@_guarded
def mse_loss(input: Any, target: Any, /, *, reduction: str = "mean", weight: Any = None) -> Any:
    if weight is not None or not _pair(input, target, reduction):
        return NotImplemented
    return _reduce(_sq, input, target, reduction)


@_guarded
def l1_loss(input: Any, target: Any, /, *, reduction: str = "mean", weight: Any = None) -> Any:
    if weight is not None or not _pair(input, target, reduction):
        return NotImplemented
    return _reduce(_abs, input, target, reduction)


@_guarded
def binary_cross_entropy(input: Any, target: Any, /, *, weight: Any = None, reduction: str = "mean") -> Any:
    if weight is not None or not _pair(input, target, reduction):
        return NotImplemented
    out = _reduce(_bce, input, target, reduction)
    if toolkit.reads_values(input) and bool(cp.isnan(out).any()):
        return NotImplemented  # a value outside [0, 1]: the portable path names it
    return out


@_guarded
def cross_entropy(input: Any, target: Any, /, *, weight: Any = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Any:
    target = class_target(ndarray, input, target, weight, ignore_index, reduction, label_smoothing)
    if target is None:
        return NotImplemented
    n, c = input.shape
    if weight is not None and label_smoothing and reduction == "mean":
        return NotImplemented  # torch's mean of each part over Σ w[y_n] (NaN where it is 0): the portable path's
    ignored = target == ignore_index
    valid = (target >= 0) & (target < c)
    bad = None
    if toolkit.reads_values(input):
        if not bool((valid | ignored).all()):
            return NotImplemented  # the portable path names the offending target
    else:  # as the portable path: no read of the device, NaN for the rows of invalid targets
        bad = ~(valid | ignored)
    active = valid & ~ignored
    safe = cp.where(valid, target, 0)
    w = active.astype(input.dtype) if weight is None else cp.where(active, weight[safe], 0).astype(input.dtype)
    m = input.max(axis=1, keepdims=True)
    m = cp.where(cp.isfinite(m), m, 0).astype(input.dtype)
    log_sum = cp.log(_sum_exp(input, m, axis=1))
    picked = input[cp.arange(n), safe] - m[:, 0]
    losses = w * (log_sum - picked)
    if label_smoothing:
        if weight is None:
            smooth = float(c) * log_sum - _sum_shifted(input, m, cp.ones((1, c), input.dtype), axis=1)
        else:
            smooth = _sum_weighted_nll(input, m, log_sum.reshape(n, 1), weight.reshape(1, c), axis=1)
        losses = (1.0 - label_smoothing) * losses + (label_smoothing / c) * smooth
    losses = cp.where(active, losses, 0).astype(input.dtype)
    if bad is not None:
        losses = cp.where(bad, cp.nan, losses).astype(input.dtype)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / w.sum()


KERNELS = {"mse_loss": mse_loss, "l1_loss": l1_loss, "binary_cross_entropy": binary_cross_entropy,
           "cross_entropy": cross_entropy}
