"""Classification losses: class scores or probabilities against labels."""

from __future__ import annotations

import math
import numbers
from typing import Any

from .. import toolkit
from ..errors import LossValueError
from ..registry import define_loss


# What CrossEntropyLoss says of a target that is neither an integer array nor probabilities.
_CE_TARGET = "integer class indices or probabilities of the input's shape"


def _class_inputs(loss: str, input: Any, target: Any, weight: Any, ignore_index: Any,
                  reduction: str) -> toolkit.ClassInputs:
    expected = _CE_TARGET if loss == "cross_entropy" else "integer class indices"
    return toolkit.class_inputs(loss, input, target, weight=weight, ignore_index=ignore_index,
                                reduction=reduction, target_expected=expected)


@define_loss(
    class_name="NLLLoss",
    aliases=("nll", "negative_log_likelihood"),
    array_options=("weight",),
    reference="torch.nn.NLLLoss",
)
def nll_loss(input: Any, target: Any, /, *, weight: Any = None, ignore_index: int = -100,
             reduction: str = "mean") -> Any:
    r"""Negative log-likelihood of log-probabilities: ``ℓ_n = -w[y_n] · x[n, y_n]``.

    $$\ell_n = -w_{y_n}\, x_{n, y_n} \qquad \text{mean: } \sum_n \ell_n \Big/ \sum_n w_{y_n}$$

    Shapes: ``input`` (C), (N, C) or (N, C, d1, ..., dK) of log-probabilities; ``target`` (),
    (N) or (N, d1, ..., dK) of class indices (and (N, 1) for (N, C) input). Targets equal to
    ``ignore_index`` contribute 0; "mean" divides by the sum of ``weight[target]`` over the rest.

    Args:
        weight: a weight per class, shape (C,), or None (all 1).
        reduction: "none" (each ℓ_n, 0 where ignored), "sum", or "mean": ``Σ_n ℓ_n / Σ_n w[y_n]`` over the
            targets not ignored (their number without ``weight``).
    """
    cls = _class_inputs("nll_loss", input, target, weight, ignore_index, reduction)
    xp = cls.xp
    return toolkit.reduce_classes(cls, -cls.weight * toolkit.take_class(xp, cls.input, cls.target), reduction)


@define_loss(
    class_name="CrossEntropyLoss",
    aliases=("ce", "softmax_cross_entropy"),
    differentiable=("input", "target"),
    array_options=("weight",),
    reference="torch.nn.CrossEntropyLoss",
    false_friends=dict.fromkeys(("categorical_crossentropy", "sparse_categorical_crossentropy"), (
        "Keras' categorical_crossentropy and sparse_categorical_crossentropy take probabilities by default "
        "(from_logits=False), the softmax output of a model (cross_entropy of probabilities is no error, "
        "another number); cross_entropy takes logits: it is Keras' with from_logits=True, and Keras' default "
        "is nll_loss(log(p), labels)")),
)
def cross_entropy(input: Any, target: Any, /, *, weight: Any = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Any:
    r"""Cross-entropy of unnormalized scores (logits): LogSoftmax followed by NLL.

    $$
    \ell_n = -(1 - \varepsilon)\, w_{y_n} \log p_{n, y_n} - \frac{\varepsilon}{C} \sum_{c} w_c \log p_{n, c}
    \qquad p_{n, c} = \frac{e^{x_{n, c}}}{\sum_k e^{x_{n, k}}}
    $$

    ``log p[n, c] = x[n, c] - m_n - log Σ_k exp(x[n, k] - m_n)`` with ``m_n = max_k x[n, k]``
    (so neither exp overflows nor a picked log-probability becomes -inf), and
    ``ℓ_n = (1 - ε) · (-w[y_n] log p[n, y_n]) + (ε / C) · Σ_c (-w_c log p[n, c])``.

    Shapes: ``input`` (C), (N, C) or (N, C, d1, ..., dK). ``target`` either class indices as for
    :func:`nll_loss` (including the source document's (N, 1)), or probabilities of the
    input's shape, smoothed as ``t (1 - ε) + ε / C``, "mean" then dividing by N·d1·...·dK and
    ``ignore_index`` unused (it must be negative, as torch requires).

    Args:
        weight: a weight per class, shape (C,), or None (all 1).
        reduction: "none" (each ℓ_n, 0 where ignored), "sum", or "mean": for class indices
            ``Σ_n ℓ_n / Σ_n w[y_n]`` over the targets not ignored (their number without ``weight``), for
            probabilities ``Σ_n ℓ_n / (N·d1·...·dK)``.
        label_smoothing: ε in [0, 1]: the target is mixed with the uniform distribution over the C classes.
    """
    name = "cross_entropy"
    toolkit.check_number(name, "label_smoothing", label_smoothing, 0.0, 1.0)
    xp = toolkit.namespace(name, input=input, target=target, weight=weight)
    if xp.isdtype(target.dtype, "real floating") and input.ndim >= 1:
        return _cross_entropy_probabilities(xp, input, target, weight, ignore_index, reduction,
                                            label_smoothing)
    cls = _class_inputs(name, input, target, weight, ignore_index, reduction)
    x = cls.input
    c = x.shape[1]
    smoothing = bool(label_smoothing and c)
    w = None if weight is None or not smoothing else toolkit.as_dtype(xp, weight, x.dtype)
    # An element's loss reads its own row of scores: on Dask one task per chunk of rows
    # (toolkit.by_rows), where its log-softmax, pick and weighting were 14 graph layers a call (18
    # smoothed). Rows too wide to merge into one task within Dask's chunk size keep their blocks.
    rows = (0, 0, 0, None) if toolkit.rows_against(xp, x, x) == (0,) else (None,) * 4
    losses, smooth = toolkit.by_rows(xp, _index_losses, x, cls.target, None if weight is None else cls.weight, w,
                                     rows=rows, smoothing=smoothing)
    if label_smoothing and not c:
        # torch's ε / C times a sum over no classes, with C = 0: NaN for every target, ignored too,
        # and for a sum or mean over no targets (ε / 0 times their sum, 0).
        out = toolkit.reduce_classes(cls._replace(active=xp.ones_like(cls.active)), losses * math.nan, reduction)
        return out if reduction == "none" else out * math.nan
    if label_smoothing:
        if weight is not None and reduction == "mean":
            # torch divides each part by Σ w[y_n] on its own: where that is 0 (every target of a
            # class weighing 0), 0/0 + s/0 is NaN, where the sum of the parts over 0 would be inf.
            parts = cls._replace(dtype=x.dtype)
            mean = ((1.0 - label_smoothing) * toolkit.reduce_classes(parts, losses, reduction)
                    + (label_smoothing / c) * toolkit.reduce_classes(parts, smooth, reduction))
            return toolkit.as_dtype(xp, mean, cls.dtype)
        losses = (1.0 - label_smoothing) * losses + (label_smoothing / c) * smooth
    return toolkit.reduce_classes(cls, losses, reduction)


def _index_losses(xp: Any, x: Any, target: Any, picked: Any, weight: Any, *,
                  smoothing: bool) -> tuple[Any, Any]:
    """:func:`cross_entropy`'s ``-w[y_n] log p[n, y_n]`` (N, d1, ...) of scores ``x`` (N, C, d1, ...)
    at safe class indices ``target``, weighted by ``picked`` (``weight[target]``, or None), and with
    ``smoothing`` the smoothing term ``Σ_c -w_c log p[n, c]`` of class weights ``weight`` (C,) or
    None (all 1), else None."""
    m, shifted, log_sum = toolkit.log_softmax_parts(xp, x)
    # -log p[n, y_n], picked from x rather than from x - m: a second use of x - m would make a
    # compiler (XLA) write it out in full instead of fusing it into the exp-sum.
    nll = log_sum - (toolkit.take_class(xp, x, target) - m)
    losses = nll if picked is None else picked * nll
    if not smoothing:
        return losses, None
    # Σ_c -w_c log p_c with every term non-negative: no cancellation at large logits. With
    # class weights, term by term as torch sums them: Σ w · log_sum - Σ w · (x - m) made
    # an infinite weight (1 / count of a class absent from the data) times the 0 of the row's
    # largest logit a NaN, where each term w_c · (-log p_c) is +inf, torch's loss.
    if weight is None:
        return losses, x.shape[1] * log_sum - xp.sum(shifted, axis=1)
    w = xp.reshape(weight, toolkit.class_shape(x))
    return losses, xp.sum(w * (xp.expand_dims(log_sum, axis=1) - shifted), axis=1)


def _cross_entropy_probabilities(xp: Any, input: Any, target: Any, weight: Any, ignore_index: Any,
                                 reduction: str, label_smoothing: float) -> Any:
    name = "cross_entropy"
    toolkit.check_floating(name, "input", input, xp)
    toolkit.check_reduction(name, reduction)
    if target.shape != input.shape:  # floats of another shape are most likely indices of the wrong dtype
        raise LossValueError(name, "target", f"probabilities of the input's shape {tuple(input.shape)}, or "
                             "class indices as an integer array", toolkit.describe(target))
    toolkit.check_number(name, "ignore_index", ignore_index, integer=True)
    if ignore_index >= 0:  # ATen's check: any negative value (-100, -1, ...) is taken, and unused
        raise LossValueError(name, "ignore_index", "a negative value (such as the default -100) with probability "
                             "targets (there is no class index to ignore)", repr(ignore_index))
    unbatched = input.ndim == 1
    x, t = (xp.expand_dims(input, axis=0), xp.expand_dims(target, axis=0)) if unbatched else (input, target)
    c = x.shape[1]
    if weight is not None:
        toolkit.check_floating(name, "weight", weight, xp)
        toolkit.check_shape(name, "weight", weight, (c,), lambda: f"a vector of one weight per class, shape ({c},)")
    dtype = toolkit.result_type(xp, x, t) if weight is None else toolkit.result_type(xp, x, t, weight)
    work = toolkit.compute_dtype(xp, dtype)
    x, t = toolkit.as_dtype(xp, x, work), toolkit.as_dtype(xp, t, work)
    w = None if weight is None else toolkit.as_dtype(xp, weight, work)
    # An element's loss reads its own row of scores and target: on Dask one task per chunk of
    # rows (toolkit.by_rows), where its log-softmax, smoothing and sum were 12 to 16 graph layers a
    # call. Rows too wide to merge into one task within Dask's chunk size keep their blocks.
    rows = (0, 0, None) if toolkit.rows_against(xp, x, x) == (0,) else (None,) * 3
    losses = toolkit.by_rows(xp, _probability_losses, x, t, w, rows=rows, label_smoothing=label_smoothing)
    if unbatched:
        losses = losses[0]
    if not c and reduction == "mean":
        losses = losses * math.nan  # torch's mean divides by N·C / C, here 0 / 0
    return toolkit.reduce(xp, losses, reduction, dtype)


def _probability_losses(xp: Any, x: Any, t: Any, weight: Any, *, label_smoothing: float) -> Any:
    """:func:`cross_entropy`'s ``Σ_c -w_c t'[n, c] log p[n, c]`` (N, d1, ...) of scores ``x`` and
    probabilities ``t`` (N, C, d1, ...), ``t' = t (1 - ε) + ε / C`` smoothed, and class weights
    ``weight`` (C,) or None (all 1)."""
    c = x.shape[1]
    if label_smoothing and c:
        t = t * (1.0 - label_smoothing) + label_smoothing / c
    if weight is not None:
        t = t * xp.reshape(weight, toolkit.class_shape(x))
    return xp.sum(t * _log_sum_minus_shifted(xp, x), axis=1)


def _log_sum_minus_shifted(xp: Any, x: Any) -> Any:
    """``-log softmax(x)`` along axis 1 of (N, C, ...) logits, as ``log Σ_k exp(x_k - m) - (x - m)``.

    The parts of :func:`toolkit.log_softmax_parts`, with ``m = floor(max)``; but the exp-sum is
    shifted by ``ceil(-max)``, which is exactly ``-m``. Written as one ``x - m`` for both uses, XLA
    computes it once and writes it out in full (a pass over the logits more, the cost of
    reading and writing (N, C)); as two different expressions of the same numbers each is fused
    into its own reduction. Same values and gradient (floor and ceil have derivative 0).
    """
    if 0 in x.shape:  # no maximum of nothing
        _, shifted, log_sum = toolkit.log_softmax_parts(xp, x)
        return xp.expand_dims(log_sum, axis=1) - shifted
    top = toolkit.stop_gradient(xp, xp.max(toolkit.dense_chunks(x), axis=1, keepdims=True))
    top = toolkit.clip(xp, top, min=float(xp.finfo(x.dtype).min))
    log_sum = xp.log(xp.sum(xp.exp(x + xp.ceil(-top)), axis=1, keepdims=True))
    return log_sum - (x - xp.floor(top))


@define_loss(
    class_name="BCELoss",
    aliases=("bce", "binary_crossentropy", "binary_cross_entropy_loss"),
    differentiable=("input", "target"),
    array_options=("weight",),
    reference="torch.nn.BCELoss",
    false_friends={"log_loss": (
        "scikit-learn's log_loss(y_true, y_prob) takes the labels first (0/1 labels passed first here are "
        "valid probabilities: no error, another number) and on (N, C) probabilities is the multi-class log "
        "loss, nll_loss(log(p), labels), where binary_cross_entropy averages N·C binary losses; for 1-D binary "
        "labels it is binary_cross_entropy(y_prob, y_true) up to its clipping at eps")},
)
def binary_cross_entropy(input: Any, target: Any, /, *, weight: Any = None, reduction: str = "mean") -> Any:
    r"""Binary cross-entropy of probabilities: ``ℓ_i = -w_i [y_i log x_i + (1 - y_i) log(1 - x_i)]``.

    $$\ell_i = -w_i \left[ y_i \log x_i + (1 - y_i) \log (1 - x_i) \right]$$

    Each log is clamped at -100, as torch does, so exact 0 and 1 give finite losses. Shapes:
    ``input`` and ``target`` (both probabilities in [0, 1], else an error, as in torch) of one
    shape, e.g. (N) or (N, 1); ``weight`` broadcasts to the input's shape.

    scikit-learn's ``log_loss(y_true, y_prob)`` is this loss only for 1-D binary labels, with the
    prediction first here (0/1 labels passed first are valid probabilities: no error, another
    value) and probabilities clipped to [eps, 1 - eps] there; on (N, C) class probabilities it is
    ``nll_loss(log(p), labels)``, where this loss of (N, C) arrays is the mean of N·C binary
    losses. So ``log_loss`` is not a name of this loss: ``lossreg.get("log_loss")`` says why.

    Args:
        weight: weights that broadcast to the input's shape, or None (all 1).
    """
    name = "binary_cross_entropy"
    xp, x, y, dtype, weights = _weighted_pointwise(name, input, target, reduction, promote=False, weight=weight)
    # Values that can be read are checked here (an error at the call); the others' masks are made
    # beside the losses, which they poison.
    bad = _check_probabilities(name, "input", input, x, xp)
    bad_target = _check_probabilities(name, "target", target, y, xp)
    bad = bad_target if bad is None else bad if bad_target is None else bad | bad_target
    w = weights.get("weight")
    # An element's loss reads its own row (and weights of one row, read whole): on Dask one task
    # per chunk of rows (toolkit.by_rows), where its operations and checks were 23 to 25 graph
    # layers a call.
    losses = toolkit.by_rows(xp, _bce_losses, x, y, w, bad, rows=toolkit.rows_against(xp, x, x, y, w, bad),
                             check_input=not toolkit.reads_values(input),
                             check_target=not toolkit.reads_values(target))
    return toolkit.reduce(xp, losses, reduction, dtype)


def _bce_losses(xp: Any, x: Any, y: Any, weight: Any, bad: Any, *, check_input: bool, check_target: bool) -> Any:
    """:func:`binary_cross_entropy`'s losses of each element, weighted by ``weight`` (or None), NaN
    where the mask ``bad`` is set (or None) and, with ``check_input`` or ``check_target``, where
    ``x`` or ``y`` is not a probability (values that could not be read where they were given)."""
    log_x, log_1mx = toolkit.safe_log(xp, x), _log1m(xp, x)
    # -(y log x + (1 - y) log(1 - x)) as torch writes it, (y - 1) log(1 - x) - y log x: each log
    # scaled by its own coefficient. The shorter y (log(1 - x) - log x) - log(1 - x) cancels
    # log(1 - x) against itself, and a confident right prediction (y = 1, x = 0.99999 in float32)
    # kept only log(1 - x)'s rounding: 1.049e-5 where the loss is 1.0e-5.
    losses = (y - 1) * log_1mx - y * log_x
    if weight is not None:
        losses = losses * weight
    for check, z in ((check_input, x), (check_target, y)):
        if check:
            outside = _not_probabilities(z)
            bad = outside if bad is None else bad | outside
    return toolkit.poison(xp, losses, bad)


def _log1m(xp: Any, x: Any) -> Any:
    """``max(log1p(-x), -100)``, as torch computes BCE's ``log(1 - x)`` (``1 - x`` would round a small
    ``x`` away: in float32 the loss of x = 1e-8 against 0 became 0), with a finite gradient at x = 1
    (the inner ``where``, as in :func:`toolkit.safe_log`).

    No clip: below 1, ``1 - x`` is at least float32's ``2^-24`` (float64's ``2^-53``), whose log
    is -16.6 (-36.7), so only x = 1 reaches the floor, and there the outer ``where`` gives it."""
    below = x < 1
    return xp.where(below, xp.log1p(-xp.where(below, x, 0.0)), -100.0)


def _check_probabilities(loss: str, name: str, input: Any, x: Any, xp: Any) -> Any:
    """:func:`toolkit.check_values` of ``x`` (the argument ``name``, ``input``, in the dtype computed
    in) against [0, 1].

    Where values may be read, two reductions (NaN propagates through min and max, so it fails
    too), read back together (one synchronisation on a GPU), stand for the mask, which is built
    only to name the offending value. Elsewhere None: the mask, the poison, is made with the
    losses (:func:`_bce_losses`), on Dask in their tasks.
    """
    if not toolkit.reads_values(input):
        return None  # checked where the losses are made (see _bce_losses)
    if not math.prod(x.shape) or bool((xp.min(x) >= 0) & (xp.max(x) <= 1)):
        return None
    return toolkit.check_values(loss, name, input, _not_probabilities(x), xp, "probabilities in [0, 1]")


def _not_probabilities(x: Any) -> Any:
    """The mask of the entries of ``x`` outside [0, 1] (NaN included)."""
    return ~((x >= 0) & (x <= 1))


def _weighted_pointwise(loss: str, input: Any, target: Any, reduction: str, labels: bool = False,
                        promote: bool = True, **weights: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
    """:func:`toolkit.pointwise_inputs` plus optional weight arrays that broadcast to the input.

    Returns ``(xp, input, target, dtype, weights)``, every array in the dtype to compute in. With
    ``promote`` a weight's dtype joins the result's, else the weights take the inputs' (as torch's
    BCE losses do: float64 weights of float32 logits give a float32 loss).
    """
    xp, x, y, dtype = toolkit.pointwise_inputs(loss, input, target, reduction, labels=labels)
    present = {k: w for k, w in weights.items() if w is not None}
    if present:
        toolkit.namespace(loss, input=input, **present)
    for k, w in present.items():
        toolkit.check_broadcasts(loss, k, w, x, xp)
        dtype = toolkit.result_type(xp, dtype, w.dtype) if promote else dtype
    work = toolkit.compute_dtype(xp, dtype)
    # Leading 1s up to the input's rank, explicitly: JAX's rank_promotion="raise" refuses implicit ones.
    present = {k: toolkit.as_dtype(xp, xp.reshape(w, (1,) * (x.ndim - w.ndim) + tuple(w.shape)), work)
               for k, w in present.items()}
    return xp, toolkit.as_dtype(xp, x, work), toolkit.as_dtype(xp, y, work), dtype, present


@define_loss(
    class_name="BCEWithLogitsLoss",
    aliases=("bce_with_logits", "sigmoid_cross_entropy", "sigmoid_binary_cross_entropy",
             "binary_crossentropy_from_logits", "binary_cross_entropy_from_logits"),
    differentiable=("input", "target"),
    array_options=("weight", "pos_weight"),
    reference="torch.nn.BCEWithLogitsLoss",
)
def binary_cross_entropy_with_logits(input: Any, target: Any, /, *, weight: Any = None, reduction: str = "mean",
                                     pos_weight: Any = None) -> Any:
    r"""Binary cross-entropy of logits: ``ℓ_i = -w_i [p_i y_i log σ(x_i) + (1 - y_i) log(1 - σ(x_i))]``.

    $$\ell_i = -w_i \left[ p_i\, y_i \log \sigma(x_i) + (1 - y_i) \log (1 - \sigma(x_i)) \right]$$

    Computed as ``ℓ = w [(1 - y) x + (1 + (p - 1) y) (max(-x, 0) + log1p(exp(-|x|)))]``, torch's
    form, which never overflows (logits of ±1e4 are fine), with the linear terms of ``x < 0``
    joined, so that the gradient of a confident negative is σ(x) to the last digit, as torch's.
    Shapes: ``input`` and ``target`` (soft targets in [0, 1] allowed) of one shape; ``weight`` and
    ``pos_weight`` broadcast to it, so a (C,) ``pos_weight`` weighs the positives of each class
    along the last axis.

    Args:
        weight: weights that broadcast to the input's shape, or None (all 1).
        pos_weight: p, the weight of the positive term, broadcasting to the input (a (C,) array weighs each
            class of the last axis), or None (1).
    """
    name = "binary_cross_entropy_with_logits"
    xp, x, y, dtype, w = _weighted_pointwise(name, input, target, reduction, promote=False, weight=weight,
                                             pos_weight=pos_weight)
    weight, pos_weight = w.get("weight"), w.get("pos_weight")
    # An element's loss reads its own row (and weights of one row, read whole): on Dask one task
    # per chunk of rows (toolkit.by_rows), where its operations were 14 to 23 graph layers a call.
    losses = toolkit.by_rows(xp, _bce_logit_losses, x, y, weight, pos_weight,
                             rows=toolkit.rows_against(xp, x, x, y, weight, pos_weight))
    return toolkit.reduce(xp, losses, reduction, dtype)


def _bce_logit_losses(xp: Any, x: Any, y: Any, weight: Any, pos_weight: Any) -> Any:
    """:func:`binary_cross_entropy_with_logits`' losses of each element."""
    # ℓ = (1 - y) x + q softplus(-x), q = 1 + (p - 1) y, with softplus(-x) = max(-x, 0) + t and
    # t = log1p(exp(-|x|)). Where x < 0, max(-x, 0) = -x joins (1 - y) x in one coefficient: as two
    # terms, their gradients 1 and -1 would cancel against t's σ(x), which a confidently right
    # negative (y = 0, x = -30) loses in full (torch's backward, σ(x) - y, keeps it). Masks, not
    # where, sign and max: the mask n = [x < 0] has no gradient, and at x = 0 the expression is
    # log1p(exp(-x)) itself, so every derivative there is σ's (gradient σ(0) - 1 = -1/2, second
    # derivative 1/4), where max or abs would split or zero the tie (a Hessian of 0 at logits of
    # exactly 0: a zero-initialised head); a where is also the slowest elementwise operation on
    # torch's CPU and a select that XLA does not fuse into the reduction. 0 · min(x, 0) is 0 with
    # no gradient but NaN at x = -inf, where torch's (1 - y) x + q softplus(-x) is -inf + inf.
    negative = xp.astype(x < 0, x.dtype)
    tail = xp.log1p(xp.exp((2 * negative - 1) * x))
    q = (pos_weight - 1) * y + 1 if pos_weight is not None else None
    if q is not None:  # q held finite where the mask is 0: an infinite pos_weight's 0 · ∞ would be NaN
        big = float(xp.finfo(q.dtype).max)
        # selected, not masked by a product: q's gradient through n · q is x · n, NaN at x = +∞
        # (∞ · 0), which made the target's and pos_weight's gradients NaN where torch's are -∞
        linear = (1 - y) - xp.where(x < 0, toolkit.maximum(xp, toolkit.minimum(xp, q, big), -big), 0.0)
    else:
        linear = (1 - y) - negative
    losses = x * linear + (tail if q is None else q * tail) + toolkit.minimum(xp, x, 0.0) * 0
    return losses if weight is None else losses * weight


@define_loss(
    class_name="SoftMarginLoss",
    aliases=("soft_margin",),
    reference="torch.nn.SoftMarginLoss",
)
def soft_margin_loss(input: Any, target: Any, /, *, reduction: str = "mean") -> Any:
    r"""Two-class logistic loss: ``ℓ_i = log(1 + exp(-y_i x_i))``, targets ``y`` usually ±1.

    $$\ell_i = \log \left( 1 + e^{-y_i x_i} \right)$$

    Shapes: ``input`` and ``target`` of one shape; the labels may be floating or integer,
    as torch takes them. Computed stably: torch evaluates
    ``log1p(exp(-y x))`` literally, which overflows to inf (and a NaN gradient) once ``-y x``
    exceeds about 88 in float32 or 709 in float64; lossreg gives the finite value there.
    """
    xp, x, y, dtype = toolkit.pointwise_inputs("soft_margin_loss", input, target, reduction, labels=True)
    # x * y, not y * x: the unreduced result takes the input's layout, as torch's (a transposed target
    # made it non-contiguous, where torch's result is contiguous and a caller's .view(-1) works).
    return toolkit.reduce(xp, -toolkit.log_sigmoid(xp, x * y), reduction, dtype)


@define_loss(
    class_name="MultiLabelSoftMarginLoss",
    aliases=("multilabel_soft_margin", "multi_label_soft_margin"),
    differentiable=("input", "target"),
    array_options=("weight",),
    reference="torch.nn.MultiLabelSoftMarginLoss",
)
def multilabel_soft_margin_loss(input: Any, target: Any, /, *, weight: Any = None, reduction: str = "mean") -> Any:
    r"""One-versus-all logistic loss, averaged over the classes (the last axis).

    $$
    \ell_n = -\frac{1}{C} \sum_c w_c \left[ y_{nc} \log \sigma(x_{nc}) + (1 - y_{nc}) \log \sigma(-x_{nc}) \right]
    $$

    ``ℓ_n = -(1/C) Σ_c w_c [y_nc log σ(x_nc) + (1 - y_nc) log σ(-x_nc)]``, then reduced over N.

    Shapes: ``input`` (C) or (N, C) (torch also allows more leading axes, and so does lossreg),
    ``target`` of the same shape with labels in {0, 1} (floating, or integer multi-hot labels,
    as torch takes them); ``weight`` broadcasts to the input,
    normally (C,). torch broadcasts a target of another shape; lossreg refuses it.

    Args:
        weight: a weight per class, broadcasting to the input (normally (C,)), or None (all 1).
    """
    name = "multilabel_soft_margin_loss"
    if getattr(input, "ndim", None) == 0:
        raise LossValueError(name, "input", "scores of shape (C) or (N, C)", "a 0-d array")
    xp, x, y, dtype, w = _weighted_pointwise(name, input, target, reduction, labels=True, weight=weight)
    cw = w.get("weight")
    # A sample's loss reads its own row (and weights of one row, read whole): on Dask one task per
    # chunk of samples (toolkit.by_rows), where its operations were 24 to 26 graph layers a call.
    # One sample (C) is read whole.
    rows = toolkit.rows_against(xp, x, x, y, cw) if x.ndim > 1 else (None, None, None)
    losses = toolkit.by_rows(xp, _multilabel_losses, x, y, cw, rows=rows)
    return toolkit.reduce(xp, losses, reduction, dtype)


def _multilabel_losses(xp: Any, x: Any, y: Any, weight: Any) -> Any:
    """:func:`multilabel_soft_margin_loss`'s losses of each sample (the classes' mean)."""
    losses = -(y * toolkit.log_sigmoid(xp, x) + (1 - y) * toolkit.log_sigmoid(xp, -x))
    if weight is not None:
        losses = losses * weight
    return xp.sum(losses, axis=-1) / x.shape[-1]


def _margin_inputs(loss: str, input: Any, target: Any, reduction: str, target_shape: str,
                   weight: Any = None) -> Any:
    """The shared checks of the two margin losses: (C) or (N, C) scores (or one score, 0-d, as
    torch takes it: C = 1), integer targets."""
    xp = toolkit.namespace(loss, input=input, target=target, weight=weight)
    toolkit.check_floating(loss, "input", input, xp)
    toolkit.check_reduction(loss, reduction)
    if input.ndim > 2 or (input.ndim and input.shape[-1] == 0):
        raise LossValueError(loss, "input", "scores of shape (C) or (N, C) with C ≥ 1, or one score (0-d)",
                             f"shape {tuple(input.shape)}")
    toolkit.check_integer(loss, "target", target, xp, f"integer {target_shape}")
    return xp


@define_loss(
    class_name="MultiMarginLoss",
    aliases=("multi_margin",),
    array_options=("weight",),
    reference="torch.nn.MultiMarginLoss",
    false_friends=dict.fromkeys(("multiclass_hinge", "multiclass_hinge_loss"), (
        "optax's multiclass_hinge_loss and scikit-learn's multi-class hinge_loss are Crammer and Singer's "
        "max_i(x_i + [i ≠ y]) - x_y, the largest violation; multi_margin_loss (torch's MultiMarginLoss, "
        "Weston and Watkins') sums the violations and divides by C")),
)
def multi_margin_loss(input: Any, target: Any, /, *, p: int = 1, margin: float = 1.0, weight: Any = None,
                      reduction: str = "mean") -> Any:
    r"""Multi-class hinge loss: ``ℓ_n = (w[y_n] / C) Σ_{i ≠ y_n} max(0, margin - x[n, y_n] + x[n, i])^p``.

    $$\ell_n = \frac{w_{y_n}}{C} \sum_{i \ne y_n} \max(0,\ \text{margin} - x_{n, y_n} + x_{n, i})^p$$

    ``p`` is 1 or 2. Shapes: ``input`` (C) or (N, C), or one score (0-d, C = 1, as torch takes
    it); ``target`` (N) of class indices in [0, C), or () where there is one sample (input (C),
    (1, C) or 0-d; "none" then gives a 0-d loss, as torch does); ``weight`` (C,). "mean" divides
    by N, whatever the weights. A term exactly at the margin has gradient 0, as in torch.

    Args:
        p: 1 or 2, the power of each hinge term.
        margin: by how much the true class's score should exceed each other score.
        weight: a weight per class, shape (C,), taken at the target's class, or None (all 1).
    """
    name = "multi_margin_loss"
    if not isinstance(p, (bool, numbers.Real)):
        toolkit.check_number(name, "p", p)  # first: `in` would ask an array or a JAX tracer for a bool
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or p not in (1, 2):
        raise LossValueError(name, "p", "1 or 2", repr(p))
    toolkit.check_number(name, "margin", margin)
    xp = _margin_inputs(name, input, target, reduction, "class indices", weight)
    unbatched = input.ndim < 2
    n, c = (1, input.shape[0] if input.ndim else 1) if unbatched else input.shape
    # torch checks only the number of indices: one sample's index may be 0-d or (1,), batched or not.
    if tuple(target.shape) not in (((), (1,)) if n == 1 else ((n,),)):
        raise LossValueError(name, "target", f"class indices of shape {'() or (1,)' if n == 1 else (n,)} for "
                             f"input of shape {tuple(input.shape)}", f"shape {tuple(target.shape)}")
    dtype = input.dtype
    if weight is not None:
        toolkit.check_floating(name, "weight", weight, xp)
        toolkit.check_shape(name, "weight", weight, (c,), lambda: f"a vector of one weight per class, shape ({c},)")
    given, target = target, toolkit.holding(name, "target", xp, target, c)
    wrong, t = _margin_targets(xp, target, n=n, c=c)
    bad = toolkit.check_values(name, "target", target, wrong, xp, lambda: f"class indices in [0, {c})", quote=given)
    work = toolkit.compute_dtype(xp, dtype)
    x = xp.reshape(toolkit.as_dtype(xp, input, work), (n, c))
    w = None if weight is None else toolkit.as_dtype(xp, weight, work)
    # A sample's loss reads its own row (and the weights): on Dask one task per chunk of samples
    # (toolkit.by_rows), where its pick, hinges and sum were 17 graph layers a call.
    losses = toolkit.by_rows(xp, _multi_margin_losses, x, t, w, rows=(0, 0, None), margin=margin, p=p)
    losses = toolkit.poison(xp, losses, None if bad is None else xp.reshape(bad, (n,)))
    # With one sample, the losses take the target's shape: () or (1,), as torch gives them.
    return toolkit.reduce(xp, losses[0] if target.ndim == 0 else losses, reduction, dtype)


def _multi_margin_losses(xp: Any, x: Any, t: Any, weight: Any, *, margin: float, p: int) -> Any:
    """:func:`multi_margin_loss`'s losses (N,) of scores ``x`` (N, C) at valid class indices ``t``."""
    n, c = x.shape
    # Same association as torch's kernel, so that a term exactly at the margin is exactly 0.
    z = margin - xp.reshape(toolkit.take_class(xp, x, t), (n, 1)) + x
    hinge = xp.where(z > 0, z, xp.zeros_like(z))  # gradient 0 at z = 0, torch's choice
    if p == 2:
        hinge = hinge * hinge
    is_target = xp.reshape(t, (n, 1)) == xp.reshape(toolkit.arange_like(xp, c, x), (1, c))
    losses = xp.sum(xp.where(is_target, 0.0, hinge), axis=1) / c
    return losses if weight is None else losses * toolkit.lookup(xp, weight, t)


@toolkit.fused
def _margin_targets(xp: Any, target: Any, *, n: int, c: int) -> tuple[Any, Any]:
    """multi_margin_loss's class indices: where they are invalid, and (N,) with those made 0 (safe
    to gather with). One compiled program on eager JAX, not seven (see :func:`toolkit.fused`)."""
    valid = (target >= 0) & (target < c)
    return ~valid, xp.reshape(xp.where(valid, target, xp.zeros_like(target)), (n,))


@toolkit.fused
def _label_lists(xp: Any, target: Any, *, n: int, c: int) -> tuple[Any, Any, Any]:
    """multilabel_margin_loss's targets (N, C): where they are invalid, which positions are
    ``listed`` (before the first -1 of their row), and the indices with every unlisted or invalid
    one made 0. One compiled program on eager JAX, not a dozen (see :func:`toolkit.fused`)."""
    wrong = (target < -1) | (target >= c)
    # Dask: chunks of the loss's (position, class) pairs are pairs of the inputs' chunks, which an
    # empty one breaks.
    t = toolkit.dense_chunks(xp.reshape(target, (n, c)))
    # listed[n, k]: position k comes before the first -1 of its row.
    listed = xp.cumulative_sum(xp.astype(t == -1, xp.int32), axis=1) == 0
    return wrong, listed, xp.where(listed & (t >= 0) & (t < c), t, xp.zeros_like(t))


@define_loss(
    class_name="MultiLabelMarginLoss",
    aliases=("multilabel_margin", "multilabel_hinge"),
    reference="torch.nn.MultiLabelMarginLoss",
)
def multilabel_margin_loss(input: Any, target: Any, /, *, reduction: str = "mean") -> Any:
    r"""Multi-label hinge loss: ``ℓ_n = (1/C) Σ_{j ∈ J_n} Σ_{i ∉ J_n} max(0, 1 - (x[n, j] - x[n, i]))``.

    $$\ell_n = \frac{1}{C} \sum_{j \in J_n} \sum_{i \notin J_n} \max(0,\ 1 - (x_{n, j} - x_{n, i}))$$

    ``J_n`` is read from ``target[n]``: the class indices before the first -1 (the rest is
    padding, but must still lie in [-1, C), as torch checks). A class listed twice counts twice,
    as in torch. Shapes: ``input`` (C) or (N, C), or one score (0-d, C = 1, as torch takes it);
    ``target`` of the same shape, integer.
    """
    name = "multilabel_margin_loss"
    xp = _margin_inputs(name, input, target, reduction, "class indices padded with -1")
    toolkit.check_same_shape(name, "target", target, "input", input)
    unbatched = input.ndim < 2
    n, c = (1, input.shape[0] if input.ndim else 1) if unbatched else input.shape
    given, target = target, toolkit.holding(name, "target", xp, target, -1, c)
    wrong, listed, t = _label_lists(xp, target, n=n, c=c)
    bad = toolkit.check_values(name, "target", target, wrong, xp,
                               lambda: f"class indices in [0, {c}) or -1 padding", quote=given)
    dtype = input.dtype
    # Dask: chunks of the pairs below are pairs of the inputs' chunks, which an empty one breaks.
    x = toolkit.dense_chunks(xp.reshape(toolkit.as_dtype(xp, input, toolkit.compute_dtype(xp, dtype)), (n, c)))
    # The pairs (listed position k, class i) make (N, K, C) arrays. Where the targets can be read,
    # K is the longest list (positions past it are padding in every row and count 0): a few
    # labels of thousands of classes, not N×C×C (16 GiB at N = C = 1024, where torch needs N×C).
    k = c
    if n * c and toolkit.reads_values(target):
        k = int(xp.max(xp.sum(xp.astype(listed, xp.int32), axis=1)))
        t, listed = t[:, :k], listed[:, :k]
    classes = xp.reshape(toolkit.arange_like(xp, c, x), (1, 1, c))
    names = (xp.reshape(t, (n, k, 1)) == classes) & xp.reshape(listed, (n, k, 1))  # position k names class i
    is_target = xp.any(names, axis=1)
    picked = toolkit.take_each(xp, x, t)  # x[n, t[n, k]]
    # Same association as torch's kernel, so that a term exactly at the margin is exactly 0.
    z = 1 - xp.reshape(picked, (n, k, 1)) + xp.reshape(x, (n, 1, c))
    counted = xp.reshape(listed, (n, k, 1)) & ~xp.reshape(is_target, (n, 1, c)) & (z > 0)
    losses = xp.sum(xp.where(counted, z, xp.zeros_like(z)), axis=(1, 2)) / c
    losses = toolkit.poison(xp, losses, None if bad is None else xp.any(xp.reshape(bad, (n, c)), axis=1))
    return toolkit.reduce(xp, losses[0] if unbatched else losses, reduction, dtype)
