"""NumPy kernels: the portable computation, written directly in NumPy with in-place updates.

The portable path pays for its generality twice on NumPy: several µs of namespace and
validation machinery per call (most of a small loss's time), and a fresh N×C array for every
step (``x - m``, then ``exp``), whose page faults cost as much as the arithmetic on large inputs.
These kernels compute the same formulas with plain NumPy calls and one reused buffer; the
results equal the portable path's to a unit or two in the last place (some float32 ones
differ there: BCE's unreduced values, cross-entropy with class weights and label smoothing).
They handle the common cases (float32/float64; for cross-entropy (N, C) scores and index targets) and return ``NotImplemented`` for everything
else, including every invalid input, so that the portable path raises its lossreg error.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .ndarray_common import FLOATS, REDUCTIONS, class_target

ndarray = np.ndarray
# The ufuncs' own reductions: the ndarray methods (x.sum(), x.max()) add a few µs of Python
# wrapping per call, which is most of the time of a small loss. Same loops, same results.
_sum, _max, _min, _all = np.add.reduce, np.maximum.reduce, np.minimum.reduce, np.logical_and.reduce


def _rows(n: int) -> Any:
    """``arange(n)``, the row indices of a gather; cached for batches of up to 65,536 rows
    (at most 32 MiB for 64 sizes), where making it is a noticeable part of the call."""
    return _small_rows(n) if n <= 1 << 16 else np.arange(n)


@functools.lru_cache(maxsize=64)
def _small_rows(n: int) -> Any:
    rows = np.arange(n)
    rows.flags.writeable = False
    return rows


def _same(input: Any, target: Any, reduction: Any) -> bool:
    """Two non-empty float32/float64 NumPy arrays of one dtype and shape, and a known reduction.

    0-d arrays are left to the portable path: their difference is a NumPy scalar, not a buffer.
    """
    return (type(input) is ndarray and type(target) is ndarray and input.dtype in FLOATS
            and target.dtype == input.dtype and input.shape == target.shape and reduction in REDUCTIONS
            and input.size > 0 and input.ndim > 0)


def _reduce(losses: Any, reduction: str) -> Any:
    if reduction == "none":
        return losses
    total = _sum(losses, axis=None)
    return total if reduction == "sum" else total / losses.size  # np.mean's sum and division


def _gather_all(buffer: Any, target: Any) -> Any:
    """``buffer[i, target[i]]`` for every row, or None if a target lies outside [0, C).

    The gather itself rejects indices from C up, so only negative ones need a pass of their own
    (an unsigned view would not do: NumPy wraps uint64 indices back to negative ones). So do
    uint64 targets: one from 2^64 - C up (a -1 "unlabelled" cast to uint64) would pick from the end.
    Told by kind and size, not by ``== np.uint64``: a big-endian '>u8' array (read from a FITS or
    HDF5 file) is not equal to the native dtype, and wraps alike.
    """
    if not len(target) or _min(target) < 0:
        return None
    if target.dtype.kind == "u" and target.dtype.itemsize >= 8 and _max(target) >= buffer.shape[1]:
        return None
    try:
        return buffer[_rows(len(target)), target]
    except IndexError:
        return None


def cross_entropy(input: Any, target: Any, /, *, weight: Any = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Any:
    target = class_target(ndarray, input, target, weight, ignore_index, reduction, label_smoothing)
    if target is None:
        return NotImplemented
    n, c = input.shape
    # No maximum is replaced: torch's NaN for a row with a +inf logit or only -inf logits comes
    # out of the arithmetic as it does in the portable path (which zeroes a -inf maximum only to
    # keep NaN out of gradients, and NumPy has none).
    buffer = input - _max(input, axis=1, keepdims=True)  # the shifted logits, then their exponentials
    # The usual case first: no weights, every target a class; "mean" then divides by n, which
    # is the exact sum of n ones up to 2^24 (float32).
    common = weight is None and not 0 <= ignore_index < c and n <= 1 << 24
    picked = _gather_all(buffer, target) if common else None
    w = active = None
    if picked is None:  # ignored or invalid targets, weights, or a huge batch
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
        picked = buffer[_rows(n), safe]
    if label_smoothing:
        # Without weights Σ_c -log p_c = C · log_sum - Σ_c (x_c - m); with them term by term, as
        # the portable path (an infinite weight times the row maximum's 0 would be NaN): the
        # shifted logits are kept past the exponentials for that.
        shifted = _sum(buffer, axis=1) if weight is None else buffer.copy()
    np.exp(buffer, out=buffer)
    log_sum = np.log(_sum(buffer, axis=1))
    losses = log_sum - picked if w is None else w * (log_sum - picked)
    if label_smoothing:
        if weight is None:
            smooth = c * log_sum - shifted
        else:
            smooth = _sum(weight.reshape(1, c) * (log_sum.reshape(n, 1) - shifted), axis=1)
        if active is not None and w is not None and weight is not None and reduction == "mean":
            # Each part over Σ w[y_n], as torch and the portable path: 0/0 + s/0 = NaN where that is 0.
            with np.errstate(invalid="ignore", divide="ignore"):
                total = _sum(w)
                zero = np.zeros_like(losses)
                return ((1.0 - label_smoothing) * (_sum(np.where(active, losses, zero)) / total)
                        + (label_smoothing / c) * (_sum(np.where(active, smooth, zero)) / total))
        losses = (1.0 - label_smoothing) * losses + (label_smoothing / c) * smooth
    if active is not None:
        losses = np.where(active, losses, np.zeros_like(losses))
    if reduction != "mean":
        return _reduce(losses, reduction)
    total = n if w is None else _sum(w)
    if total:
        return _sum(losses) / total
    with np.errstate(invalid="ignore", divide="ignore"):  # all targets ignored: 0 / 0 = NaN, as torch
        return _sum(losses) / total


def binary_cross_entropy(input: Any, target: Any, /, *, weight: Any = None, reduction: str = "mean") -> Any:
    if (type(input) is not ndarray or type(target) is not ndarray or input.dtype not in FLOATS
            or target.dtype != input.dtype or input.shape != target.shape or reduction not in REDUCTIONS
            or input.size == 0):
        return NotImplemented
    if weight is not None:
        if type(weight) is not ndarray or weight.dtype != input.dtype or weight.ndim > input.ndim or not all(
                s == 1 or s == t for s, t in zip(reversed(weight.shape), reversed(input.shape))):
            return NotImplemented
    # Both in [0, 1], as torch checks; NaN fails too (it propagates through min and max). The
    # portable path names the offending value.
    if not (input.min() >= 0 and input.max() <= 1 and target.min() >= 0 and target.max() <= 1):
        return NotImplemented
    with np.errstate(divide="ignore"):  # log(0) = -inf, clamped to -100 as torch does
        log_x = np.maximum(np.log(input), -100.0)
        log_1mx = np.maximum(np.log1p(-input), -100.0)  # log1p, as torch: 1 - x rounds a small x away
    losses = -(target * log_x + (1 - target) * log_1mx)
    if weight is not None:
        losses = losses * weight
    return _reduce(losses, reduction)


def mse_loss(input: Any, target: Any, /, *, reduction: str = "mean", weight: Any = None) -> Any:
    if weight is not None or not _same(input, target, reduction):
        return NotImplemented
    diff = input - target
    return _reduce(np.multiply(diff, diff, out=diff), reduction)


def l1_loss(input: Any, target: Any, /, *, reduction: str = "mean", weight: Any = None) -> Any:
    # |d| in place of the portable sign(d)·d (there for its gradient): the same values, one
    # array instead of three.
    if weight is not None or not _same(input, target, reduction):
        return NotImplemented
    diff = input - target
    return _reduce(np.abs(diff, out=diff), reduction)


KERNELS = {"cross_entropy": cross_entropy, "binary_cross_entropy": binary_cross_entropy,
           "mse_loss": mse_loss, "l1_loss": l1_loss}
