"""NumPy kernels: the portable computation, written directly in NumPy with in-place updates.

The portable path pays for its generality twice on NumPy: several µs of namespace and
validation machinery per call (most of a small loss's time), and a fresh N×C array for every
step (``x - m``, then ``exp``), whose page faults cost as much as the arithmetic on large inputs.
These kernels do the same operations in the same order (so the results are the same bits) with
plain NumPy calls and one reused N×C buffer. They handle the common cases (float32/float64,
(N, C) scores, index targets) and return ``NotImplemented`` for everything else, including
every invalid input, so that the portable path raises its lossreg error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_REDUCTIONS = frozenset(("none", "mean", "sum"))
_FLOATS = frozenset((np.dtype(np.float32), np.dtype(np.float64)))
ndarray = np.ndarray
# The ufuncs' own reductions: the ndarray methods (x.sum(), x.max()) add a few µs of Python
# wrapping per call, which is most of the time of a small loss. Same loops, same results.
_sum, _max, _min, _all = np.add.reduce, np.maximum.reduce, np.minimum.reduce, np.logical_and.reduce


def cross_entropy(input: Any, target: Any, /, *, weight: Any = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Any:
    if (type(input) is not ndarray or type(target) is not ndarray or input.ndim != 2 or input.dtype not in _FLOATS
            or target.dtype.kind not in "iu" or reduction not in _REDUCTIONS or type(ignore_index) is not int
            or type(label_smoothing) not in (int, float) or not 0.0 <= label_smoothing <= 1.0 or 0 in input.shape):
        return NotImplemented
    n, c = input.shape
    if target.shape != (n,):
        if target.shape != (n, 1):
            return NotImplemented
        target = target.reshape(n)  # the source document's (N, 1) labels
    if weight is not None and (type(weight) is not ndarray or weight.dtype != input.dtype or weight.shape != (c,)):
        return NotImplemented
    if target.size and 0 <= _min(target) and _max(target) < c and not 0 <= ignore_index < c:
        active = safe = None  # every target counts: the usual case, in two small reductions
        w = np.ones(n, dtype=input.dtype) if weight is None else weight[target]
    else:
        ignored = target == ignore_index
        valid = (target >= 0) & (target < c)
        if not _all(valid | ignored):
            return NotImplemented  # the portable path names the offending index
        active = valid & ~ignored
        safe = np.where(valid, target, 0)
        if weight is None:
            w = active.astype(input.dtype)
        else:
            picked_w = weight[safe]
            w = np.where(active, picked_w, np.zeros_like(picked_w))
    target = target if safe is None else safe
    m = _max(input, axis=1, keepdims=True)
    if not _all(np.isfinite(m), axis=None):  # a row of ±inf has no finite maximum to subtract
        m = np.where(np.isfinite(m), m, np.zeros_like(m))
    buffer = input - m  # the shifted logits, then their exponentials, in one array
    picked = buffer[np.arange(n), target]
    if label_smoothing:
        wc = 1.0 if weight is None else weight.reshape(1, c)
        w_sum = c * 1.0 if weight is None else _sum(weight)
        weighted = _sum(wc * buffer, axis=1)
    np.exp(buffer, out=buffer)
    log_sum = np.log(_sum(buffer, axis=1))
    losses = w * (log_sum - picked)
    if label_smoothing:
        smooth = w_sum * log_sum - weighted
        losses = (1.0 - label_smoothing) * losses + (label_smoothing / c) * smooth
    if active is not None:
        losses = np.where(active, losses, np.zeros_like(losses))
    if reduction == "none":
        return losses
    if reduction == "sum":
        return _sum(losses)
    return _sum(losses) / _sum(w)  # all targets ignored: 0 / 0 = NaN, as torch


def binary_cross_entropy(input: Any, target: Any, /, *, weight: Any = None, reduction: str = "mean") -> Any:
    if (type(input) is not ndarray or type(target) is not ndarray or input.dtype not in _FLOATS
            or target.dtype != input.dtype or input.shape != target.shape or reduction not in _REDUCTIONS
            or input.size == 0):
        return NotImplemented
    if weight is not None:
        if type(weight) is not ndarray or weight.dtype != input.dtype or weight.ndim > input.ndim or not all(
                s == 1 or s == t for s, t in zip(reversed(weight.shape), reversed(input.shape))):
            return NotImplemented
    if not ((input >= 0) & (input <= 1)).all():
        return NotImplemented  # the portable path names the offending value (NaN included)
    with np.errstate(divide="ignore"):  # log(0) = -inf, clamped to -100 as torch does
        log_x = np.maximum(np.log(input), -100.0)
        log_1mx = np.maximum(np.log(1 - input), -100.0)
    losses = -(target * log_x + (1 - target) * log_1mx)
    if weight is not None:
        losses = losses * weight
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.mean()


KERNELS = {"cross_entropy": cross_entropy, "binary_cross_entropy": binary_cross_entropy}
