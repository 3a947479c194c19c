"""Array-API building blocks the losses of this package share (no array library is imported).

Input checking comes from ``lossreg.toolkit``, so errors read like lossreg's own: they name the
loss, the argument, what was expected and what was given.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from lossreg import toolkit
from lossreg.errors import LossValueError


def unit_interval(loss: str, name: str, original: Any, x: Any, xp: Any) -> Any:
    """``x`` after checking that ``original`` lies in [0, 1]; lazy arrays get NaN where it does not."""
    bad = toolkit.check_values(loss, name, original, ~((x >= 0) & (x <= 1)), xp, "values in [0, 1]")
    return toolkit.poison(xp, x, bad)


def flat_samples(xp: Any, x: Any) -> Any:
    """``(N, d1, ...)`` as ``(N, d1·...)``, so that a sample's statistics are sums over axis 1."""
    return xp.reshape(x, (x.shape[0], math.prod(x.shape[1:])))


def sigmoids(xp: Any, x: Any) -> tuple[Any, Any, Any, Any]:
    """``(log σ(x), log σ(-x), σ(x), σ(-x))`` without overflow and with exact gradients.

    Each branch of the ``where`` is analytic on its own side of 0 and exp only ever sees
    ``-|x|``, so no exp overflows and autograd never meets ``inf · 0``; at ``x = 0`` the
    ``x >= 0`` branch gives the true derivative (``abs`` would give 0 there).
    """
    pos = x >= 0
    e = xp.exp(-xp.where(pos, x, -x))  # exp(-|x|), in (0, 1]
    soft = xp.log1p(e)
    log_p, log_q = xp.where(pos, -soft, x - soft), xp.where(pos, -x - soft, -soft)
    p, q = xp.where(pos, 1 / (1 + e), e / (1 + e)), xp.where(pos, e / (1 + e), 1 / (1 + e))
    return log_p, log_q, p, q


def power(xp: Any, z: Any, gamma: float) -> Any:
    """``z ** gamma`` for ``z >= 0`` whose gradient at ``z = 0`` is 0 rather than ``0 · inf``."""
    if gamma == 0:
        return xp.ones_like(z)
    positive = z > 0
    return xp.where(positive, xp.where(positive, z, xp.ones_like(z)) ** gamma, xp.zeros_like(z))


def log_softmax(xp: Any, x: Any) -> Any:
    """Log-probabilities along axis 1 by max subtraction: no overflow at logits of ±1e4."""
    if 0 in x.shape:  # nothing to reduce; Dask cannot take the max of an empty chunk
        return x
    m = xp.max(x, axis=1, keepdims=True)
    m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))  # a row of ±inf has no finite maximum
    shifted = x - m
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))


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
