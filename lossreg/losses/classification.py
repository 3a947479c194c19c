"""Classification losses: class scores or probabilities against labels."""

from __future__ import annotations

from typing import Any, NamedTuple

import array_api_extra as xpx
from array_api_compat import device

from .. import _xp
from ..errors import LossValueError
from ..registry import define_loss


class _Classes(NamedTuple):
    """Inputs of an index-target loss, normalized to ``input (N, C, *d)``, ``target (N, *d)``."""

    xp: Any
    input: Any
    target: Any  # integer class indices, clamped into [0, C) so that gathering is always safe
    active: Any  # bool: counts towards the loss (neither ignored nor invalid)
    weight: Any  # per-element weight w[target], 0 where inactive
    bad: Any  # bool mask of invalid indices on lazy arrays (poisoned to NaN), else None
    dtype: Any  # the dtype of the result
    unbatched: bool


def _class_inputs(loss: str, input: Any, target: Any, weight: Any, ignore_index: Any,
                  reduction: str) -> _Classes:
    xp = _xp.namespace(loss, input=input, target=target, weight=weight)
    _xp.check_floating(loss, "input", input, xp)
    _xp.check_reduction(loss, reduction)
    _xp.check_number(loss, "ignore_index", ignore_index, integer=True)
    if input.ndim == 0:
        raise LossValueError(loss, "input", "scores of shape (C), (N, C) or (N, C, d1, ...)", "a 0-d array")
    _xp.check_integer(loss, "target", target, xp, "integer class indices (or, for cross_entropy, "
                      "probabilities of the input's shape)")
    unbatched = input.ndim == 1
    if unbatched:
        input, target = xp.expand_dims(input, axis=0), xp.expand_dims(target, axis=0)
    if input.ndim == 2 and target.shape == (input.shape[0], 1):
        target = xp.reshape(target, (input.shape[0],))  # the source document's (N, 1) labels
    n, c = input.shape[0], input.shape[1]
    expected = (n, *input.shape[2:])
    if tuple(target.shape) != expected:
        wanted = "()" if unbatched else f"{expected}" + (f" or ({n}, 1)" if input.ndim == 2 else "")
        raise LossValueError(loss, "target", f"class indices of shape {wanted} for input of shape "
                                 f"{tuple(input.shape[1:] if unbatched else input.shape)}",
                                 f"shape {tuple(target.shape) if not unbatched else tuple(target.shape[1:])}")
    if weight is not None:
        _xp.check_floating(loss, "weight", weight, xp)
        _xp.check_shape(loss, "weight", weight, (c,), f"a vector of one weight per class, shape ({c},)")
    ignored = target == ignore_index
    valid = (target >= 0) & (target < c)
    bad = _xp.check_values(loss, "target", target, ~valid & ~ignored, xp,
                           f"class indices in [0, {c}) or ignore_index={ignore_index}")
    active = valid & ~ignored
    safe = xp.where(valid, target, xp.zeros_like(target))
    dtype = input.dtype if weight is None else xp.result_type(input, weight)
    work = _xp.compute_dtype(xp, dtype)
    input = _xp.as_dtype(xp, input, work)
    if weight is None:
        w = xp.astype(active, work)
    else:
        picked_w = xp.reshape(xp.take(_xp.as_dtype(xp, weight, work), xp.reshape(safe, (-1,))), safe.shape)
        w = xp.where(active, picked_w, xp.zeros_like(picked_w))
    return _Classes(xp, input, safe, active, w, bad, dtype, unbatched)


def _reduce_weighted(cls: _Classes, losses: Any, reduction: str) -> Any:
    """torch's reduction of index-target losses: "mean" divides by the sum of the weights."""
    xp = cls.xp
    losses = _xp.poison(xp, losses, cls.bad)
    if reduction == "none":
        out = losses[0] if cls.unbatched else losses
    elif reduction == "sum":
        out = xp.sum(losses)
    else:  # all targets ignored gives 0 / 0 = NaN, torch's choice
        out = xp.sum(losses) / xp.sum(cls.weight)
    return _xp.as_dtype(xp, out, cls.dtype)


@define_loss(
    class_name="NLLLoss",
    aliases=("nll", "negative_log_likelihood"),
    array_options=("weight",),
    reference="torch.nn.NLLLoss",
)
def nll_loss(input: Any, target: Any, /, *, weight: Any = None, ignore_index: int = -100,
             reduction: str = "mean") -> Any:
    """Negative log-likelihood of log-probabilities: ``ℓ_n = -w[y_n] · x[n, y_n]``.

    Shapes: ``input`` (C), (N, C) or (N, C, d1, ..., dK) of log-probabilities; ``target`` (),
    (N) or (N, d1, ..., dK) of class indices (and (N, 1) for (N, C) input). Targets equal to
    ``ignore_index`` contribute 0; "mean" divides by the sum of ``weight[target]`` over the rest.
    """
    cls = _class_inputs("nll_loss", input, target, weight, ignore_index, reduction)
    xp = cls.xp
    picked = _xp.take_class(xp, cls.input, cls.target)
    losses = xp.where(cls.active, -cls.weight * picked, xp.zeros_like(picked))
    return _reduce_weighted(cls, losses, reduction)


@define_loss(
    class_name="CrossEntropyLoss",
    aliases=("ce", "categorical_cross_entropy", "softmax_cross_entropy", "sparse_categorical_cross_entropy"),
    differentiable=("input", "target"),
    array_options=("weight",),
    reference="torch.nn.CrossEntropyLoss",
)
def cross_entropy(input: Any, target: Any, /, *, weight: Any = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Any:
    """Cross-entropy of unnormalized scores (logits): LogSoftmax followed by NLL.

    ``log p[n, c] = x[n, c] - m_n - log Σ_k exp(x[n, k] - m_n)`` with ``m_n = max_k x[n, k]``
    (so neither exp overflows nor a picked log-probability becomes -inf), and
    ``ℓ_n = (1 - ε) · (-w[y_n] log p[n, y_n]) + (ε / C) · Σ_c (-w_c log p[n, c])``.

    Shapes: ``input`` (C), (N, C) or (N, C, d1, ..., dK). ``target`` either class indices as for
    :func:`nll_loss` (including the source document's (N, 1)), or probabilities of the
    input's shape, smoothed as ``t (1 - ε) + ε / C``, "mean" then dividing by N·d1·...·dK and
    ``ignore_index`` not allowed.
    """
    name = "cross_entropy"
    _xp.check_number(name, "label_smoothing", label_smoothing, 0.0, 1.0)
    xp = _xp.namespace(name, input=input, target=target, weight=weight)
    if xp.isdtype(target.dtype, "real floating") and input.ndim >= 1:
        return _cross_entropy_probabilities(xp, input, target, weight, ignore_index, reduction,
                                            label_smoothing)
    cls = _class_inputs(name, input, target, weight, ignore_index, reduction)
    x = cls.input
    shifted, log_sum = _log_softmax_parts(xp, x)
    nll = log_sum - _xp.take_class(xp, shifted, cls.target)  # -log p[n, y_n]
    losses = cls.weight * nll
    if label_smoothing:
        c = x.shape[1]
        w = 1.0 if weight is None else xp.reshape(_xp.as_dtype(xp, weight, x.dtype), _xp.class_shape(x))
        # Σ_c -w_c log p_c with every term non-negative: no cancellation at large logits.
        w_sum = c * 1.0 if weight is None else xp.sum(w)
        smooth = w_sum * log_sum - xp.sum(w * shifted, axis=1)
        losses = (1.0 - label_smoothing) * losses + (label_smoothing / c) * smooth
    losses = xp.where(cls.active, losses, xp.zeros_like(losses))
    return _reduce_weighted(cls, losses, reduction)


def _log_softmax_parts(xp: Any, x: Any) -> tuple[Any, Any]:
    """``(x - m, log Σ exp(x - m))`` along axis 1, so that ``log p = shifted - log_sum``."""
    if 0 in x.shape:  # nothing to reduce; Dask cannot take the max of an empty chunk
        return x, xp.zeros((x.shape[0], *x.shape[2:]), dtype=x.dtype, device=device(x))
    m = xp.max(x, axis=1, keepdims=True)
    # A row of -inf (or +inf) has no finite maximum; subtracting it would make NaN of -inf - -inf.
    m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))
    shifted = x - m
    return shifted, xp.log(xp.sum(xp.exp(shifted), axis=1))


def _cross_entropy_probabilities(xp: Any, input: Any, target: Any, weight: Any, ignore_index: Any,
                                 reduction: str, label_smoothing: float) -> Any:
    name = "cross_entropy"
    _xp.check_floating(name, "input", input, xp)
    _xp.check_reduction(name, reduction)
    _xp.check_same_shape(name, "target", target, "input", input)
    if ignore_index != -100:
        raise LossValueError(name, "ignore_index", "the default -100 with probability targets "
                                 "(there is no class index to ignore)", repr(ignore_index))
    unbatched = input.ndim == 1
    x, t = (xp.expand_dims(input, axis=0), xp.expand_dims(target, axis=0)) if unbatched else (input, target)
    c = x.shape[1]
    if weight is not None:
        _xp.check_floating(name, "weight", weight, xp)
        _xp.check_shape(name, "weight", weight, (c,), f"a vector of one weight per class, shape ({c},)")
    dtype = xp.result_type(x, t) if weight is None else xp.result_type(x, t, weight)
    work = _xp.compute_dtype(xp, dtype)
    x, t = _xp.as_dtype(xp, x, work), _xp.as_dtype(xp, t, work)
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + label_smoothing / c
    if weight is not None:
        t = t * xp.reshape(_xp.as_dtype(xp, weight, work), _xp.class_shape(x))
    shifted, log_sum = _log_softmax_parts(xp, x)
    losses = xp.sum(t * (xpx.expand_dims(log_sum, axis=(1,), xp=xp) - shifted), axis=1)
    if unbatched:
        losses = losses[0]
    return _xp.reduce(xp, losses, reduction, dtype)


@define_loss(
    class_name="BCELoss",
    aliases=("bce", "binary_crossentropy", "binary_cross_entropy_loss", "log_loss"),
    differentiable=("input", "target"),
    array_options=("weight",),
    reference="torch.nn.BCELoss",
)
def binary_cross_entropy(input: Any, target: Any, /, *, weight: Any = None, reduction: str = "mean") -> Any:
    """Binary cross-entropy of probabilities: ``ℓ_i = -w_i [y_i log x_i + (1 - y_i) log(1 - x_i)]``.

    Each log is clamped at -100, as torch does, so exact 0 and 1 give finite losses. Shapes:
    ``input`` (probabilities in [0, 1], else an error) and ``target`` of one shape, e.g. (N) or
    (N, 1); ``weight`` broadcasts to the input's shape.
    """
    name = "binary_cross_entropy"
    xp, x, y, dtype = _xp.pointwise_inputs(name, input, target, reduction)
    bad = _xp.check_values(name, "input", input, ~((x >= 0) & (x <= 1)), xp, "probabilities in [0, 1]")
    losses = -(y * _xp.safe_log(xp, x) + (1 - y) * _xp.safe_log(xp, 1 - x))
    if weight is not None:
        _xp.namespace(name, input=input, weight=weight)
        _xp.check_floating(name, "weight", weight, xp)
        try:
            fits = xpx.broadcast_shapes(weight.shape, x.shape) == tuple(x.shape)
        except ValueError:
            fits = False
        if not fits:
            raise LossValueError(name, "weight", f"a shape that broadcasts to the input's {tuple(x.shape)}",
                                     f"shape {tuple(weight.shape)}")
        dtype = xp.result_type(dtype, weight.dtype)
        losses = losses * _xp.as_dtype(xp, weight, losses.dtype)
    return _xp.reduce(xp, _xp.poison(xp, losses, bad), reduction, dtype)
