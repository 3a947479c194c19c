"""Embedding and ranking losses: margins between pairs and triplets of representations."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .. import toolkit
from ..errors import LossTypeError, LossValueError
from ..registry import define_loss


@toolkit.fused
def _clamp_min0(xp: Any, z: Any) -> Any:
    """``max(z, 0)`` as torch's ``clamp_min``: the gradient passes where z ≥ 0 (at 0 too), and a
    NaN stays NaN with a zero gradient: there ``z - z`` (NaN, of gradient 1 - 1 = 0) is taken.
    Fused (:func:`toolkit.fused`): on concrete JAX arrays its five operations are one compiled
    program per shape; traced and on other libraries, the same operations as written."""
    return xp.where(z >= 0, z, xp.where(z < 0, 0.0, z - z))


def _labels(loss: str, name: str, target: Any, xp: Any) -> Any:
    """Labels of ±1 may come as integers or floats; torch accepts any value and so does lossreg.

    Unsigned labels are widened to hold the -1 they are compared with.
    """
    if not xp.isdtype(target.dtype, ("integral", "real floating")):
        raise LossTypeError(loss, name, "a real-valued array of labels 1 or -1", toolkit.describe(target))
    return toolkit.holding(loss, name, xp, target, -1) if xp.isdtype(target.dtype, "integral") else target


def _check_positive_margin(loss: str, margin: Any) -> None:
    toolkit.check_number(loss, "margin", margin)
    if not margin > 0:  # torch raises for margin <= 0
        raise LossValueError(loss, "margin", "a number greater than 0", repr(margin))


def _broadcast(loss: str, **shapes: tuple[int, ...]) -> tuple[int, ...]:
    """The shape that arrays of ``shapes`` broadcast to, as in torch; an error if they do not.

    Sizes are compared, never hashed: under ``torch.compile(dynamic=True)`` a size is symbolic,
    and putting it in a set would fix it to its first value (a recompilation per batch size).
    """
    ndim = max(len(s) for s in shapes.values())
    out: list[Any] = []
    for sizes in zip(*((1,) * (ndim - len(s)) + tuple(s) for s in shapes.values())):
        known = [d for d in sizes if d is not None and d != 1]  # None: a Dask size not yet known
        if any(d != known[0] for d in known[1:]):
            given = ", ".join(f"'{k}' {tuple(s)}" for k, s in shapes.items())
            raise LossValueError(loss, "/".join(shapes), "shapes that broadcast together", given)
        out.append(known[0] if known else (None if None in sizes else 1))
    return tuple(out)


def _same_ndim(loss: str, **arrays: Any) -> None:
    (first, x), *rest = arrays.items()
    for name, y in rest:
        if y.ndim != x.ndim:
            raise LossValueError(loss, name, f"as many dimensions as '{first}' ({x.ndim})",
                                 f"{y.ndim} dimensions (shape {tuple(y.shape)})")


def _floats(loss: str, xp: Any, take_complex: bool = False, **arrays: Any) -> tuple[Any, Any, list[Any], bool]:
    """``(dtype, work, arrays, complex)``: the result dtype, the dtype to compute in, the cast
    arrays, and whether they are complex (``take_complex``: complex64 and complex128 arrays are
    taken; the result dtype is then the real one of their precision, as distances are real)."""
    complex_numbers = False
    for name, x in arrays.items():
        complex_numbers = toolkit.check_floating(loss, name, x, xp, take_complex) or complex_numbers
    dtype = toolkit.result_type(xp, *arrays.values())
    work = toolkit.compute_dtype(xp, dtype)
    return toolkit.real_dtype(xp, dtype), work, [toolkit.as_dtype(xp, x, work) for x in arrays.values()], complex_numbers


@define_loss(
    class_name="MarginRankingLoss",
    aliases=("margin_ranking", "ranking", "ranking_loss"),
    differentiable=("input1", "input2", "target"),
    reference="torch.nn.MarginRankingLoss",
    false_friends=dict.fromkeys(("hinge", "hinge_loss"), (
        "scikit-learn's hinge_loss and Keras' hinge are mean(max(0, 1 - y f)) of a decision function f and "
        "labels y = ±1, which is margin_ranking_loss(f, zeros_like(f), y, margin=1.0); hinge_embedding_loss "
        "(torch's HingeEmbeddingLoss) is another quantity, and scikit-learn's multi-class hinge_loss is "
        "Crammer and Singer's (see 'multiclass_hinge')")),
)
def margin_ranking_loss(input1: Any, input2: Any, target: Any, /, *, margin: float = 0.0,
                        reduction: str = "mean") -> Any:
    r"""Margin ranking loss: ``ℓ_i = max(0, -y_i · (x1_i - x2_i) + margin)``.

    $$\ell_i = \max\left(0,\ -y_i \left( x^{(1)}_i - x^{(2)}_i \right) + \text{margin} \right)$$

    ``y = 1`` asks for ``x1`` to rank above ``x2``, ``y = -1`` for the opposite. Shapes: the
    three arrays have one number of dimensions and broadcast together, as in torch (usually all
    (N) or all ()). Labels may be integers or floats; other values than ±1 are used as given.

    Args:
        margin: by how much the higher-ranked input should exceed the other.
    """
    name = "margin_ranking_loss"
    xp = toolkit.namespace(name, input1=input1, input2=input2, target=target)
    # The labels multiply: they are cast from the array as given, the numbers it holds. _labels'
    # copy, made for comparisons with -1, holds the index dtype's largest number for every unsigned
    # one past it (a -1 cast to uint64 counted 2**63 - 1, to uint32 on JAX without x64 2**31 - 1:
    # half the loss of the number held).
    given, target = target, _labels(name, "target", target, xp)
    toolkit.check_number(name, "margin", margin)
    toolkit.check_reduction(name, reduction)
    _same_ndim(name, input1=input1, input2=input2, target=target)
    _broadcast(name, input1=input1.shape, input2=input2.shape, target=target.shape)
    floats = {"input1": input1, "input2": input2}
    if xp.isdtype(target.dtype, "real floating"):
        floats["target"] = target  # a floating target takes part in type promotion, as in torch
    dtype, work, (x1, x2, *_), _ = _floats(name, xp, **floats)
    y = toolkit.as_dtype(xp, given, work)
    # An element's loss reads its own row: on Dask one task per chunk of rows (toolkit.by_rows),
    # where its operations were 9 graph layers a call.
    losses = toolkit.by_rows(xp, _ranking_losses, x1, x2, y, rows=_broadcast_rows(xp, x1, x2, y), margin=margin)
    return toolkit.reduce(xp, losses, reduction, dtype)


def _ranking_losses(xp: Any, x1: Any, x2: Any, y: Any, *, margin: float) -> Any:
    """:func:`margin_ranking_loss`'s losses of each element."""
    return _clamp_min0(xp, -y * (x1 - x2) + margin)


def _broadcast_rows(xp: Any, *arrays: Any) -> toolkit.Rows:
    """:func:`toolkit.rows_against`'s rows of ``arrays`` that broadcast together, against the first
    of them with the result's rows (the most axes, and the most rows among those): every row of
    the result then reads its own row of each array with as many, and the others whole."""
    ndim = max(a.ndim for a in arrays)
    widest = [a for a in arrays if a.ndim == ndim]
    rows = toolkit.rows_against(xp, widest[0], *arrays)
    if all(r is None for r in rows):
        # Off Dask, sizes are not compared (a guard on them under torch.compile(dynamic=True)).
        return rows
    return toolkit.rows_against(xp, max(widest, key=lambda a: a.shape[0]), *arrays)


@define_loss(
    class_name="HingeEmbeddingLoss",
    aliases=("hinge_embedding",),
    reference="torch.nn.HingeEmbeddingLoss",
)
def hinge_embedding_loss(input: Any, target: Any, /, *, margin: float = 1.0, reduction: str = "mean") -> Any:
    r"""Hinge embedding loss: ``ℓ_i = x_i`` where ``y_i = 1``, ``max(0, margin - x_i)`` where ``y_i = -1``.

    $$\ell_i = \begin{cases} x_i & y_i = 1 \\ \max(0,\ \text{margin} - x_i) & y_i = -1 \end{cases}$$

    ``input`` is typically a distance between two embeddings. As torch computes it, a label
    that is neither 1 nor -1 gets both terms, ``x_i + max(0, margin - x_i)``. Shapes: ``input``
    and ``target`` broadcast together (usually both (*)); labels may be integers or floats.
    The result has the input's dtype.

    Args:
        margin: the distance beyond which dissimilar pairs (target -1) cost nothing.
    """
    name = "hinge_embedding_loss"
    xp = toolkit.namespace(name, input=input, target=target)
    toolkit.check_floating(name, "input", input, xp)
    target = _labels(name, "target", target, xp)
    toolkit.check_number(name, "margin", margin)
    toolkit.check_reduction(name, reduction)
    _broadcast(name, input=input.shape, target=target.shape)
    dtype = input.dtype
    x = toolkit.as_dtype(xp, input, toolkit.compute_dtype(xp, dtype))
    # An element's loss reads its own row: on Dask one task per chunk of rows (toolkit.by_rows),
    # where its operations were 12 graph layers a call.
    losses = toolkit.by_rows(xp, _hinge_losses, x, target, rows=_broadcast_rows(xp, x, target), margin=margin)
    return toolkit.reduce(xp, losses, reduction, dtype)


def _hinge_losses(xp: Any, x: Any, target: Any, *, margin: float) -> Any:
    """:func:`hinge_embedding_loss`'s losses of each element."""
    zero = xp.zeros_like(x)
    return (xp.where(toolkit.placed_like(xp, target != 1, x), _clamp_min0(xp, margin - x), zero)
            + xp.where(toolkit.placed_like(xp, target != -1, x), x, zero))


@define_loss(
    class_name="CosineEmbeddingLoss",
    aliases=("cosine_embedding",),
    differentiable=("input1", "input2"),
    reference="torch.nn.CosineEmbeddingLoss",
)
def cosine_embedding_loss(input1: Any, input2: Any, target: Any, /, *, margin: float = 0.0,
                          reduction: str = "mean") -> Any:
    r"""Cosine embedding loss: ``1 - cos(x1_i, x2_i)`` where ``y_i = 1``, ``max(0, cos - margin)`` where ``y_i = -1``.

    $$
    \ell_i = \begin{cases} 1 - \cos(x^{(1)}_i, x^{(2)}_i) & y_i = 1
    \\ \max\left(0,\ \cos(x^{(1)}_i, x^{(2)}_i) - \text{margin}\right) & y_i = -1 \end{cases}
    $$

    ``cos = Σ_d x1·x2 / sqrt((Σ_d x1² + ε) · (Σ_d x2² + ε))``: as in torch, ε = 1e-12 (rounded
    to float32) is added to each squared norm, so zero vectors give cos = 0. A label that is
    neither 1 nor -1 contributes 0. Shapes: ``input1``, ``input2`` (N, D) with ``target`` (N), or (D) with
    ``target`` (); as in torch, the inputs may broadcast, e.g. (1, D) against (N, D).

    Args:
        margin: the cosine below which dissimilar pairs (target -1) cost nothing, in [-1, 1].
    """
    name = "cosine_embedding_loss"
    xp = toolkit.namespace(name, input1=input1, input2=input2, target=target)
    target = _labels(name, "target", target, xp)
    toolkit.check_number(name, "margin", margin)
    toolkit.check_reduction(name, reduction)
    if target.ndim not in (0, 1):
        raise LossValueError(name, "target", "labels of shape (N) or ()", f"shape {tuple(target.shape)}")
    wanted = "(N, D) for target (N)" if target.ndim else "(D) for target ()"
    for key, x in (("input1", input1), ("input2", input2)):
        if x.ndim != target.ndim + 1:
            raise LossValueError(name, key, f"embeddings of shape {wanted}", f"shape {tuple(x.shape)}")
    rows = _broadcast(name, input1=input1.shape, input2=input2.shape)[:-1]
    labels, pairs = (target.shape[0], rows[0]) if rows else (1, 1)
    if labels is not None and pairs is not None and labels != 1 and pairs != 1 and labels != pairs:
        raise LossValueError(name, "target", f"one label per row of input1/input2, shape ({rows[0]})",
                             f"shape {tuple(target.shape)}")
    dtype, _, (x1, x2), _ = _floats(name, xp, input1=input1, input2=input2)
    # A pair's loss reads its own rows: on Dask one task per chunk of pairs (toolkit.by_rows), where
    # its products, sums, cosine and cases were 27 graph layers a call. One pair (D) is read whole,
    # and so are embeddings wider than Dask's chunk size in chunks of D (rows_against gives None):
    # merged, a task's block would hold all their chunks; op by op, Dask's sums keep its blocks.
    paired = target.ndim and toolkit.rows_against(xp, x1, x1, x2) == (0, 0)
    pairs_rows = (0, 0, 0) if paired else (None, None, None)
    losses = toolkit.by_rows(xp, _cosine_losses, x1, x2, target, rows=pairs_rows, margin=margin)
    return toolkit.reduce(xp, losses, reduction, dtype)


def _cosine_losses(xp: Any, x1: Any, x2: Any, target: Any, *, margin: float) -> Any:
    """:func:`cosine_embedding_loss`'s losses of each pair."""
    eps = 9.999999960041972e-13  # torch's `constexpr float EPSILON = 1e-12`, read as a double
    prod = xp.sum(x1 * x2, axis=-1)
    cos = prod / xp.sqrt((xp.sum(x1 * x1, axis=-1) + eps) * (xp.sum(x2 * x2, axis=-1) + eps))
    zero = xp.zeros_like(cos)
    return (xp.where(toolkit.placed_like(xp, target == 1, cos), 1 - cos, zero)
            + xp.where(toolkit.placed_like(xp, target == -1, cos), _clamp_min0(xp, cos - margin), zero))


def _norm(xp: Any, d: Any, *, p: float) -> Any:
    """``‖d‖_p`` over the last axis with torch's gradients (0 where the norm or an entry is 0)."""
    if p == 0:
        # The count of non-zeros, NaN among them as torch counts it (sign(d)² made a NaN of its
        # row), with a zero gradient: d · 0 keeps the graph, taken at the zeros only (no ∞ · 0).
        nonzero = d != 0
        return xp.sum(xp.where(nonzero, 1.0, xp.where(nonzero, 0.0, d) * 0), axis=-1)
    if d.shape[-1] == 1:
        # |d| for every p: d^p would overflow past |d| = 1.8e19 at p = 2 in float32 (torch's CPU
        # accumulates a float32 norm in float64, so its distance of 3e38 is finite)
        return xp.sum(toolkit.safe_abs(xp, d), axis=-1)
    if p == 2:
        s = xp.sum(d * d, axis=-1)
    else:
        a = toolkit.safe_abs(xp, d)
        if p == 1:
            return xp.sum(a, axis=-1)
        if not -math.inf < p < math.inf:  # comparisons, not math.isinf: torch.compile traces a symbolic p
            a = toolkit.dense_chunks(a)
            return xp.max(a, axis=-1) if p > 0 else xp.min(a, axis=-1)
        nonzero = a != 0  # a is |d| or NaN: NaN too, its power NaN (filled as a zero, ∞ at p < 0 made the norm 0)
        # The fills are Python numbers, not *_like arrays: the same values (in a's dtype, as the
        # standard's where promotes a scalar), one operation fewer each, under jit and in eager code.
        s = xp.sum(xp.where(nonzero, xp.where(nonzero, a, 1.0) ** p, 0.0 if p > 0 else math.inf), axis=-1)
    # Inner where: no infinite derivative of s^(1/p) at s = 0 to multiply by 0.
    positive = ~(s <= 0)  # NaN counts as positive, so that it propagates
    safe = xp.where(positive, s, 1.0)
    return xp.where(positive, xp.sqrt(safe) if p == 2 else safe ** (1 / p), 0.0)


def _pairwise_distance(xp: Any, x1: Any, x2: Any, p: float = 2.0, eps: float = 1e-6, negated: bool = False,
                       moduli: bool = False) -> Any:
    """torch's ``pairwise_distance``: ``‖x1 - x2 + eps‖_p`` over the last axis (a 0-d pair: |x1 - x2 + eps|).

    ``negated`` computes the same norm of ``(x2 - x1) - eps``, exactly the negated difference, so
    the same values and gradients; see :func:`triplet_margin_loss` for why. ``moduli``: complex
    arrays, whose difference's norm is that of its moduli ``|d|`` (eps added to the real part,
    as torch adds it); ``abs``'s gradient, ``sgn(d)`` (0 at 0), carries torch's to ``d``.
    """
    d = x2 - x1 - eps if negated else x1 - x2 + eps
    if moduli:
        d = xp.abs(d)
    # Each distance reads its own row: on Dask one task per block, not the norm's guards layer by
    # layer (see toolkit.over_last_axis).
    return toolkit.over_last_axis(xp, _norm, xp.reshape(d, (1,)) if d.ndim == 0 else d, p=p)


def _triplet_inputs(name: str, anchor: Any, positive: Any, negative: Any, margin: Any, swap: Any,
                    reduction: str) -> tuple[Any, Any, list[Any], bool]:
    xp = toolkit.namespace(name, anchor=anchor, positive=positive, negative=negative)
    _check_positive_margin(name, margin)
    toolkit.check_flag(name, "swap", swap)
    toolkit.check_reduction(name, reduction)
    _same_ndim(name, anchor=anchor, positive=positive, negative=negative)
    _broadcast(name, anchor=anchor.shape, positive=positive.shape, negative=negative.shape)
    # complex embeddings too, as torch takes them: their distances, and so the loss, are real
    dtype, _, arrays, moduli = _floats(name, xp, True, anchor=anchor, positive=positive, negative=negative)
    return xp, dtype, arrays, moduli


def _triplet(xp: Any, distance: Callable[[Any, Any], Any], a: Any, p: Any, n: Any, margin: float,
             swap: bool, negative_distance: Callable[[Any, Any], Any] | None = None) -> Any:
    d_pos, d_neg = distance(a, p), (negative_distance or distance)(a, n)
    if swap:  # Balntas et al.: the positive may be the closer "anchor" of the negative
        d_neg = xp.minimum(d_neg, distance(p, n))
    return _clamp_min0(xp, margin + d_pos - d_neg)


def _triplet_losses(xp: Any, a: Any, pos: Any, neg: Any, *, p: float, eps: float, margin: float, swap: bool,
                    moduli: bool, negated: bool) -> Any:
    """The losses of triplets at ``pairwise_distance(p, eps)``; ``negated``: d(a, n) as the norm of
    (n - a) - eps (see :func:`triplet_margin_loss`)."""
    return _triplet(xp, lambda x, y: _pairwise_distance(xp, x, y, p, eps, moduli=moduli), a, pos, neg, margin, swap,
                    lambda x, y: _pairwise_distance(xp, x, y, p, eps, negated=negated, moduli=moduli))


def _triplets_by_rows(xp: Any, a: Any, pos: Any, neg: Any, **options: Any) -> Any:
    """:func:`_triplet_losses`, on Dask one task per chunk of triplets (``toolkit.by_rows``; a
    triplet reads its own rows): its distances, swap and clamp were 13 to 17 graph layers a call.
    Embeddings of one axis are a single triplet, and read whole."""
    rows = (0, 0, 0) if a.ndim > 1 else (None, None, None)
    return toolkit.by_rows(xp, _triplet_losses, a, pos, neg, rows=rows, **options)


def _distances(loss: str, xp: Any, d: Any, like: Any, real: Any, own: list[Any]) -> Any:
    """What a caller's ``distance_function`` returned for arrays such as ``like``, checked: an array of
    their library, as torch's ``clamp_min`` wants a tensor. A Python number or another library's array
    would otherwise be broadcast into a loss by NumPy, JAX and Dask, and fail inside torch's and
    array-api-strict's own operators. Integer and bool distances (counts) take the library's default
    floating dtype, as torch's ``margin + d`` promotes them (a Python float and an integer tensor:
    torch's default dtype; NumPy's and JAX's own rule alike); complex ones have no order to clamp
    (torch refuses them too). Distances not in ``real`` (the inputs' computing dtype, or the real one
    of complex inputs' precision) are noted in ``own``: the loss is then in the distances' dtype."""
    try:
        same = toolkit.namespace(loss, distance_function=d) is xp
    except LossTypeError:  # not an array at all
        same = False
    if not same or xp.isdtype(d.dtype, "complex floating"):
        raise LossTypeError(loss, "distance_function", f"a function returning real distances as an array of the "
                            f"inputs' library ({toolkit.describe(like)})", f"one returning {toolkit.describe(d)}")
    if not xp.isdtype(d.dtype, "real floating"):
        d = toolkit.as_dtype(xp, d, xp.__array_namespace_info__().default_dtypes(
            device=toolkit.device(d))["real floating"])
        own.append(d.dtype)
    elif d.dtype != real:
        own.append(d.dtype)
    return d


@define_loss(
    class_name="TripletMarginLoss",
    aliases=("triplet", "triplet_margin"),
    differentiable=("anchor", "positive", "negative"),
    reference="torch.nn.TripletMarginLoss",
)
def triplet_margin_loss(anchor: Any, positive: Any, negative: Any, /, *, margin: float = 1.0, p: float = 2.0,
                        eps: float = 1e-6, swap: bool = False, reduction: str = "mean") -> Any:
    r"""Triplet margin loss: ``ℓ_i = max(0, margin + d(a_i, p_i) - d(a_i, n_i))``.

    $$
    \ell_i = \max\left(0,\ \text{margin} + d(a_i, p_i) - d(a_i, n_i)\right)
    \qquad d(u, v) = \lVert u - v + \epsilon \rVert_p
    $$

    ``d(x, y) = ‖x - y + eps‖_p`` over the last axis (torch's ``pairwise_distance``; any p,
    including 0 (count of non-zeros), ±inf and negative values). With ``swap``, ``d(a, n)``
    becomes ``min(d(a, n), d(p, n))``. ``margin`` must be > 0. Shapes: (N, D) or (D) (any
    number of dimensions, the last one the embedding), one number of dimensions for all three,
    broadcasting as in torch. Complex embeddings (complex64, complex128) are taken, as torch takes
    them: ``d`` is the norm of the moduli ``|x - y + eps|`` (eps added to the real part), real, and
    so is the loss (float32 or float64).

    Args:
        margin: by how much the negative should be farther from the anchor than the positive.
        p: the degree of the norm of the pairwise distance.
        eps: added to the difference before the norm, as torch's ``pairwise_distance``.
        swap: use the positive–negative distance when it is smaller than the anchor–negative one (Balntas et
            al., 2016).
    """
    name = "triplet_margin_loss"
    toolkit.check_number(name, "p", p)
    toolkit.check_number(name, "eps", eps)
    xp, dtype, (a, pos, neg), moduli = _triplet_inputs(name, anchor, positive, negative, margin, swap, reduction)
    features = _broadcast(name, anchor=anchor.shape, positive=positive.shape, negative=negative.shape)[-1:]
    if features == (0,) and (p < 0 or p == math.inf):
        raise LossValueError(name, "p", "a norm that exists for empty vectors (p ≥ 0, finite)", repr(p))
    # d(a, n) as the norm of (n - a) - eps: the same numbers as (a - n) + eps, negated. Spelt
    # like d(a, p), both would add one broadcast eps, which XLA then writes out in full as an
    # (N, D) array shared by the two reductions (2.5x optax's time at 2048x8192 under jit).
    losses = _triplets_by_rows(xp, a, pos, neg, p=p, eps=eps, margin=margin, swap=swap, moduli=moduli, negated=True)
    return toolkit.reduce(xp, losses, reduction, dtype)


@define_loss(
    class_name="TripletMarginWithDistanceLoss",
    aliases=("triplet_with_distance", "triplet_margin_with_distance"),
    differentiable=("anchor", "positive", "negative"),
    reference="torch.nn.TripletMarginWithDistanceLoss",
)
def triplet_margin_with_distance_loss(anchor: Any, positive: Any, negative: Any, /, *,
                                      distance_function: Callable[[Any, Any], Any] | None = None,
                                      margin: float = 1.0, swap: bool = False, reduction: str = "mean") -> Any:
    r"""Triplet margin loss with any distance: ``ℓ_i = max(0, margin + d(a_i, p_i) - d(a_i, n_i))``.

    $$\ell_i = \max\left(0,\ \text{margin} + d(a_i, p_i) - d(a_i, n_i)\right)$$

    ``distance_function(x, y)`` takes two arrays of the caller's library and returns their
    distances (one per row); ``None`` means ``‖x - y + 1e-6‖_2`` over the last axis, torch's
    ``pairwise_distance``. It receives the inputs in the dtype the loss computes in: promoted together
    (float32 and float64 arrays both as float64; torch passes them as given), half precision as float32.
    The loss is in the inputs' dtype where the distances come back in that one, else in theirs, as
    torch's ``margin + d`` promotes: float32 distances of float64 inputs give a float32 loss, integer
    (or bool) ones the library's default floating dtype (torch's ``get_default_dtype()``). With
    ``swap``, ``d(a, n)`` becomes ``min(d(a, n), d(p, n))``. ``margin`` must be > 0.
    Complex embeddings are taken as by :func:`triplet_margin_loss` (a distance function gets them
    as they are, and returns real distances). A callable option cannot go into JSON, so
    ``get_config`` refuses a loss that holds one. Shapes: as for :func:`triplet_margin_loss`.

    Args:
        distance_function: a function of two arrays giving their distances along the last axis; None: the
            Euclidean pairwise distance.
        margin: by how much the negative should be farther from the anchor than the positive.
        swap: use the positive–negative distance when it is smaller than the anchor–negative one (Balntas et
            al., 2016).
    """
    name = "triplet_margin_with_distance_loss"
    if distance_function is not None and not callable(distance_function):
        raise LossTypeError(name, "distance_function", "a callable (x, y) -> distances, or None",
                            toolkit.describe(distance_function))
    xp, dtype, (a, pos, neg), moduli = _triplet_inputs(name, anchor, positive, negative, margin, swap, reduction)
    own: list[Any] = []  # the dtypes of distances returned in another than the one computed in
    if distance_function is None:  # torch's pairwise_distance: p = 2, eps = 1e-6
        losses = _triplets_by_rows(xp, a, pos, neg, p=2.0, eps=1e-6, margin=margin, swap=swap, moduli=moduli,
                                    negated=False)
    else:
        real = dtype if moduli else a.dtype
        distance = lambda x, y: _distances(name, xp, distance_function(x, y), x, real, own)  # noqa: E731
        losses = _triplet(xp, distance, a, pos, neg, margin, swap)
    # torch's loss is in the dtype of margin + d(a, p) - d(a, n): float32 distances of float64
    # inputs give a float32 loss. Distances in the dtype computed in give the inputs' (half precision
    # is computed in float32 and returned in its own dtype, as by every loss).
    return toolkit.reduce(xp, losses, reduction, losses.dtype if own else dtype)
