"""Array-API building blocks the losses of this package share (no array library is imported).

Input checking comes from ``lossreg.toolkit``, so errors read like lossreg's own: they name the
loss, the argument, what was expected and what was given.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from lossreg import toolkit
from lossreg.errors import LossValueError


def shifted_logsumexp(xp: Any, x: Any, axis: int = 1) -> tuple[Any, Any, Any]:
    """``(m, x - m, log Σ exp(x - m))`` along ``axis`` (kept, length 1), ``m`` the maximum.

    ``log Σ exp(x) = m + lse``; keeping the parts apart lets callers subtract before adding, so
    that a log-probability of logits near ±1e4 keeps its precision.
    """
    m = xp.max(x, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))  # a row of ±inf has no finite maximum
    shifted = x - m
    return m, shifted, xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))


def log_softmax(xp: Any, x: Any) -> Any:
    """Log-probabilities along axis 1."""
    if 0 in x.shape:  # nothing to reduce; Dask cannot take the max of an empty chunk
        return x
    _, shifted, lse = shifted_logsumexp(xp, x)
    return shifted - lse


class Classes(NamedTuple):
    """Class-index inputs normalized to ``input (N, C, *d)`` and ``target (N, *d)``."""

    xp: Any
    input: Any  # in the dtype to compute in
    target: Any  # clamped into [0, C), so that gathering is always safe
    active: Any  # neither ignored nor invalid
    weight: Any  # per-element weight, 0 where inactive
    bad: Any  # invalid indices of lazy arrays (poisoned to NaN), else None
    dtype: Any  # of the result
    unbatched: bool


def class_inputs(loss: str, input: Any, target: Any, ignore_index: Any, reduction: str,
                 weight: Any = None) -> Classes:
    """Check logits ``(C)``, ``(N, C)`` or ``(N, C, d1, ...)`` against class indices, as cross_entropy does."""
    xp = toolkit.namespace(loss, input=input, target=target, weight=weight)
    toolkit.check_floating(loss, "input", input, xp)
    toolkit.check_reduction(loss, reduction)
    toolkit.check_number(loss, "ignore_index", ignore_index, integer=True)
    if input.ndim == 0:
        raise LossValueError(loss, "input", "scores of shape (C), (N, C) or (N, C, d1, ...)", "a 0-d array")
    toolkit.check_integer(loss, "target", target, xp, "integer class indices")
    unbatched = input.ndim == 1
    if unbatched:
        input, target = xp.expand_dims(input, axis=0), xp.expand_dims(target, axis=0)
    n, c = input.shape[0], input.shape[1]
    expected = (n, *input.shape[2:])
    if tuple(target.shape) != expected:
        shown = tuple(target.shape[1:]) if unbatched else tuple(target.shape)
        wanted = "()" if unbatched else str(expected)
        raise LossValueError(loss, "target", f"class indices of shape {wanted}", f"shape {shown}")
    if weight is not None:
        toolkit.check_floating(loss, "weight", weight, xp)
        toolkit.check_shape(loss, "weight", weight, (c,), f"a vector of one weight per class, shape ({c},)")
    ignored = target == ignore_index
    valid = (target >= 0) & (target < c)
    bad = toolkit.check_values(loss, "target", target, ~valid & ~ignored, xp,
                           f"class indices in [0, {c}) or ignore_index={ignore_index}")
    active = valid & ~ignored
    safe = xp.where(valid, target, xp.zeros_like(target))
    dtype = input.dtype if weight is None else xp.result_type(input, weight)
    work = toolkit.compute_dtype(xp, dtype)
    if weight is None:
        w = xp.astype(active, work)
    else:
        picked = xp.reshape(xp.take(toolkit.as_dtype(xp, weight, work), xp.reshape(safe, (-1,))), safe.shape)
        w = xp.where(active, picked, xp.zeros_like(picked))
    return Classes(xp, toolkit.as_dtype(xp, input, work), safe, active, w, bad, dtype, unbatched)


def reduce_classes(cls: Classes, losses: Any, reduction: str) -> Any:
    """torch's reduction of index-target losses: "mean" divides by the sum of the active weights."""
    xp = cls.xp
    losses = toolkit.poison(xp, xp.where(cls.active, losses, xp.zeros_like(losses)), cls.bad)
    if reduction == "none":
        out = losses[0] if cls.unbatched else losses
    elif reduction == "sum":
        out = xp.sum(losses)
    else:  # every target ignored gives 0 / 0 = NaN, as torch's cross_entropy does
        out = xp.sum(losses) / xp.sum(cls.weight)
    return toolkit.as_dtype(xp, out, cls.dtype)
