"""Classification losses beyond torch.nn: poly-1, generalized cross-entropy, sparsemax loss, z-loss.

Each takes logits of shape (C), (N, C) or (N, C, d1, ...) with the class axis 1, as
``torch.nn.CrossEntropyLoss`` does; those with targets take class indices and ``ignore_index``.
"""

from __future__ import annotations

import math
from typing import Any

from array_api_compat import is_dask_namespace

from lossreg import LossValueError, define_loss, toolkit


@define_loss(
    class_name="Poly1CrossEntropyLoss",
    aliases=("poly1", "poly1_loss", "poly_loss"),
    reference="Leng et al. 2022, 'PolyLoss', eq. 3 (Poly-1)",
)
def poly1_cross_entropy(input: Any, target: Any, /, *, epsilon: float = 1.0, ignore_index: int = -100,
                        reduction: str = "mean") -> Any:
    r"""Poly-1 loss: cross-entropy plus ``ε (1 - p_t)``, ``p_t`` the probability of the target class.

    ``epsilon = 0`` is cross-entropy; the paper keeps ``ε ≥ -1`` so the loss stays decreasing in
    ``p_t``. ``ignore_index``, the reductions and infinite logits are those of ``cross_entropy``
    without weights. Shapes: ``input`` (C), (N, C) or (N, C, d1, ...); ``target`` (), (N),
    (N, 1) or (N, d1, ...).

    $$\ell_n = -\log p_{n, y_n} + \varepsilon\,(1 - p_{n, y_n}), \qquad p_n = \operatorname{softmax}(x_n)$$

    Options:
        epsilon: ε, the weight of ``1 - p_t`` (≥ -1); 0 gives cross-entropy.
    """
    name = "poly1_cross_entropy"
    toolkit.check_number(name, "epsilon", epsilon, -1.0, finite=True)
    cls = toolkit.class_inputs(name, input, target, ignore_index=ignore_index, reduction=reduction)
    log_p = toolkit.take_class(cls.xp, toolkit.log_softmax(cls.xp, cls.input), cls.target)
    return toolkit.reduce_classes(cls, -log_p - epsilon * cls.xp.expm1(log_p), reduction)


@define_loss(
    class_name="GeneralizedCrossEntropyLoss",
    aliases=("gce", "gce_loss"),
    reference="Zhang & Sabuncu 2018, 'Generalized Cross Entropy Loss for Training Deep Neural "
              "Networks with Noisy Labels', eq. 6",
)
def generalized_cross_entropy(input: Any, target: Any, /, *, q: float = 0.7, ignore_index: int = -100,
                              reduction: str = "mean") -> Any:
    """Generalized cross-entropy: ``ℓ = (1 - p_t^q) / q``, robust to noisy labels.

    ``q → 0`` tends to cross-entropy, ``q = 1`` is the mean absolute error of the probabilities
    (``1 - p_t``); the paper recommends 0.7. ``ignore_index`` and reductions as ``cross_entropy``.
    Shapes: ``input`` (C), (N, C) or (N, C, d1, ...); ``target`` (), (N), (N, 1) or (N, d1, ...).

    Options:
        q: the exponent, in (0, 1]: toward 0 the loss tends to cross-entropy, 1 gives ``1 - p_t``.
    """
    name = "generalized_cross_entropy"
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 < q <= 1:  # one message for every bad q
        raise LossValueError(name, "q", "a number in (0, 1] (q → 0 is cross_entropy)", repr(q))
    cls = toolkit.class_inputs(name, input, target, ignore_index=ignore_index, reduction=reduction)
    log_p = toolkit.take_class(cls.xp, toolkit.log_softmax(cls.xp, cls.input), cls.target)
    return toolkit.reduce_classes(cls, -cls.xp.expm1(q * log_p) / q, reduction)  # expm1: exact for p_t near 1


@define_loss(
    class_name="SparsemaxLoss",
    aliases=("sparsemax",),
    reference="Martins & Astudillo 2016, 'From Softmax to Sparsemax', eq. 20",
)
def sparsemax_loss(input: Any, target: Any, /, *, ignore_index: int = -100, reduction: str = "mean") -> Any:
    """Sparsemax loss: ``ℓ = -z_t + ½ Σ_{j∈S(z)} (z_j² - τ(z)²) + ½``, the loss whose gradient is
    ``sparsemax(z) - onehot(t)``.

    ``τ`` is the sparsemax threshold and ``S(z) = {j : z_j > τ}`` its support. With the logits
    sorted in decreasing order, ``z_(1) ≥ z_(2) ≥ ...``, the support is the longest prefix with
    ``1 + k z_(k) > Σ_{i ≤ k} z_(i)`` and ``τ = (Σ_{i ≤ |S|} z_(i) - 1) / |S|`` (Martins &
    Astudillo, Prop. 1): O(C log C) time and O(C) memory per sample. Dask cannot sort along an
    axis, so there the support is found without sorting: ``j ∈ S`` iff
    ``1 + k_j z_j > Σ_{i: z_i ≥ z_j} z_i`` with ``k_j = #{i : z_i ≥ z_j}``, the same test (tied
    logits pass or fail it together either way), in O(C²) memory per sample. Logits are shifted
    by their maximum first (the loss is shift-invariant), so large logits keep their precision.
    A +inf logit gives the limit: ``max x - x_t`` (inf, or NaN for a +inf target's ∞ - ∞) with
    the gradient uniform over the +inf logits minus ``onehot(t)`` (optax's is NaN there).
    ``ignore_index`` and reductions as ``cross_entropy``. Shapes: ``input`` (C), (N, C) or
    (N, C, d1, ...); ``target`` (), (N) (or (N, 1) for (N, C) input, as ``cross_entropy``) or
    (N, d1, ...). This is optax's ``multiclass_sparsemax_loss``; optax's ``sparsemax_loss`` is the
    binary loss of scores ``s`` (N) and 0/1 labels, this loss of ``[s, 0]`` with the class ``1 - label``.
    """
    cls = toolkit.class_inputs("sparsemax_loss", input, target, ignore_index=ignore_index, reduction=reduction)
    xp, x = cls.xp, cls.input
    if 0 in x.shape:  # zeros summed from x, not made anew: torch's backward needs the graph to x
        return toolkit.reduce_classes(cls, xp.sum(x, axis=1), reduction)
    return toolkit.reduce_classes(cls, sparsemax_parts(xp, x, cls.target)[0], reduction)


def sparsemax_parts(xp: Any, x: Any, target: Any) -> tuple[Any, Any, Any]:
    """``(ℓ, z, τ)`` of :func:`sparsemax_loss` for logits ``x`` (N, C, d1, ...) and classes ``target`` in [0, C).

    ``ℓ`` (N, d1, ...) is the loss of each element, unmasked; ``z = x - ⌊max x⌋`` the shifted
    logits and ``τ`` (N, 1, d1, ...) their threshold, so that ``sparsemax(x) = max(z - τ, 0)``:
    the gradient ``∂ℓ/∂x = sparsemax(x) - onehot(target)`` without differentiating the sort (see
    the plugin's JAX kernel). ``x`` must not be empty.
    """
    m, z, _ = toolkit.log_softmax_parts(xp, x)  # z = x - ⌊max x⌋: the largest logit in [0, 1)
    # A +inf logit: z would be inf - inf, NaN. The limit as those logits grow (together) is a
    # support of the +inf logits alone, sparsemax uniform over them: z = 0 there and -inf
    # elsewhere gives that threshold, so the JAX kernel's sparsemax(x) - onehot is the limit too.
    infinite = xp.expand_dims(m, axis=1) == math.inf  # not where a NaN logit makes the maximum NaN
    is_inf = (x == math.inf) & infinite
    z = xp.where(is_inf, 0.0, xp.where(infinite, -math.inf, z))
    if is_dask_namespace(xp):
        zj, zi = xp.expand_dims(z, axis=2), xp.expand_dims(z, axis=1)  # (N, C, 1, *d), (N, 1, C, *d)
        above = zi >= zj  # [z_i ≥ z_j] at [n, j, i]
        k, cumulative = xp.sum(xp.astype(above, z.dtype), axis=2), xp.sum(xp.where(above, zi, 0.0), axis=2)
        support = 1 + k * z > cumulative
        kept = xp.where(support, z, 0.0)  # selected, not multiplied: a -inf logit times 0 is NaN
        tau = (xp.sum(kept, axis=1, keepdims=True) - 1) / xp.sum(xp.astype(support, z.dtype), axis=1, keepdims=True)
        squares = xp.sum(xp.where(support, kept * kept - tau * tau, 0.0), axis=1)
    else:
        ordered = xp.sort(z, axis=1, descending=True)
        k = xp.reshape(toolkit.arange_like(xp, x.shape[1], z, z.dtype) + 1, toolkit.class_shape(z))  # a DTensor's too
        cumulative = xp.cumulative_sum(ordered, axis=1)
        support = 1 + k * ordered > cumulative  # a prefix, at least the largest
        # τ from the support's size alone. At a tie (an entry equal to τ, in or out alike) the
        # test above is decided by rounding, and a compiler that evaluates it twice (XLA, once
        # per reduction it feeds) may decide it once each way: (sum of 3) / 2.
        # At least 1: a row of -inf logits has no support, and index -1 would take the previous
        # row's sum (and pass it its NaN gradient).
        size = toolkit.maximum(xp, xp.sum(xp.astype(support, z.dtype), axis=1), 1.0)
        last = xp.astype(size, toolkit.index_dtype("sparsemax_loss", "input", xp, x.shape[1])) - 1
        tau = xp.expand_dims((toolkit.take_class(xp, cumulative, last) - 1) / size, axis=1)
        # Selected, not multiplied by the support: a -inf logit (a masked class, never in the
        # support) times 0 is NaN, and so would be its gradient through a where on ordered².
        kept = xp.where(support, ordered, 0.0)
        squares = xp.sum(xp.where(support, kept * kept - tau * tau, 0.0), axis=1)
    losses = 0.5 * squares - toolkit.take_class(xp, z, target) + 0.5
    # There the loss is its value when the support is the largest logits alone, their mean minus
    # x_t: inf for a finite target (NaN for a +inf one, ∞ - ∞, as cross_entropy's), whose
    # gradient is the limit, uniform over the +inf logits minus onehot(t) (not NaN), as the
    # kernel's. That mean is the row's maximum, +inf, whose derivative (torch's amax, JAX's max)
    # is split evenly among the logits equal to it, the +inf ones. Under jax.jit it is the
    # shift's maximum, computed once; their sum and count were two more reductions over the
    # logits, each of an (N, C) array written out first.
    top = xp.max(toolkit.dense_chunks(x), axis=1)
    return xp.where(xp.squeeze(infinite, axis=1), top - toolkit.take_class(xp, x, target), losses), z, tau


@define_loss(
    class_name="ZLoss",
    aliases=("logit_z_loss",),
    reference="Chowdhery et al. 2022, 'PaLM', section 5 (auxiliary z-loss)",
)
def z_loss(input: Any, /, *, reduction: str = "mean") -> Any:
    """The square of the log-partition function: ``ℓ_n = (log Σ_c exp(x[n, c]))²``.

    An auxiliary loss that keeps the softmax normalizer near 1 (PaLM adds it with weight 1e-4) so
    that large-vocabulary logits do not drift. Shapes: ``input`` (C), (N, C) or (N, C, d1, ...) of
    logits; "none" gives (), (N) or (N, d1, ...).
    """
    name = "z_loss"
    xp = toolkit.namespace(name, input=input)
    toolkit.check_floating(name, "input", input, xp)
    toolkit.check_reduction(name, reduction)
    if input.ndim == 0 or input.shape[0 if input.ndim == 1 else 1] == 0:
        raise LossValueError(name, "input", "logits of shape (C), (N, C) or (N, C, d1, ...) with C ≥ 1",
                             f"shape {tuple(input.shape)}")
    unbatched = input.ndim == 1
    dtype = input.dtype
    x = toolkit.as_dtype(xp, xp.expand_dims(input, axis=0) if unbatched else input, toolkit.compute_dtype(xp, dtype))
    if x.shape[0] == 0:  # Dask cannot take the max of an empty chunk; summed from x for torch's backward
        losses = xp.sum(x, axis=1)
    else:
        z = toolkit.logsumexp(xp, x, axis=1)
        losses = z * z
    return toolkit.reduce(xp, losses[0] if unbatched else losses, reduction, dtype)
