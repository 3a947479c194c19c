"""Segmentation and class-imbalance losses, each one pure array-API function.

Overlap losses (Dice, Tversky, generalized Dice) compare per-sample probability maps with
target masks; focal losses down-weight the examples a model already gets right.
"""

from __future__ import annotations

import math
from typing import Any

from lossreg import LossValueError, define_loss, toolkit


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


def _overlap_inputs(loss: str, input: Any, target: Any, reduction: str, smooth: Any) -> tuple[Any, Any, Any, Any]:
    """Probabilities and targets of one shape ``(N, d1, ...)``, flattened to ``(N, M)``."""
    xp, x, y, dtype = toolkit.pointwise_inputs(loss, input, target, reduction)
    toolkit.check_number(loss, "smooth", smooth, 0.0, finite=True)
    if input.ndim == 0:
        raise LossValueError(loss, "input", "a batch of shape (N, d1, ...), at least 1-d", "a 0-d array")
    x = unit_interval(loss, "input", input, x, xp)
    y = unit_interval(loss, "target", target, y, xp)
    return xp, flat_samples(xp, x), flat_samples(xp, y), dtype


@define_loss(
    class_name="DiceLoss",
    aliases=("dice", "soft_dice_loss"),
    differentiable=("input", "target"),
    reference="Milletari et al. 2016 (V-Net), eq. 1, with the linear denominator of keras.losses.Dice",
)
def dice_loss(input: Any, target: Any, /, *, smooth: float = 1.0, reduction: str = "mean") -> Any:
    """Soft Dice loss of each sample: ``ℓ_n = 1 - (2 Σ x y + s) / (Σ x + Σ y + s)``.

    Shapes: ``input`` (probabilities in [0, 1]) and ``target`` (masks or soft labels in [0, 1])
    of one shape ``(N, d1, ...)``; sums run over every axis but the batch axis, so "none" gives
    shape ``(N,)``. ``smooth`` (s ≥ 0, as MONAI's ``smooth_nr = smooth_dr``) keeps empty masks
    finite: a sample with empty prediction and target has loss 0.

    Peers: MONAI's ``DiceLoss`` scores each (sample, channel) pair and averages them, where this
    pools a sample's channels: the two agree for one channel, and for ``C`` channels on inputs
    reshaped to ``(N·C, ...)``, given a spatial axis (on ``(N, C)`` MONAI scores the whole batch as
    one sample). Keras' ``Dice`` scores the whole batch as one sample (``axis=None``)
    and adds its epsilon to the denominator only (``smooth=0`` here).

    Options:
        smooth: s ≥ 0, added to the numerator and the denominator.
    """
    xp, x, y, dtype = _overlap_inputs("dice_loss", input, target, reduction, smooth)
    overlap = xp.sum(x * y, axis=1)
    total = xp.sum(x, axis=1) + xp.sum(y, axis=1)
    return toolkit.reduce(xp, 1 - (2 * overlap + smooth) / (total + smooth), reduction, dtype)


@define_loss(
    class_name="TverskyLoss",
    aliases=("tversky",),
    differentiable=("input", "target"),
    reference="Salehi et al. 2017, 'Tversky loss function for image segmentation', eq. 3",
)
def tversky_loss(input: Any, target: Any, /, *, alpha: float = 0.5, beta: float = 0.5, smooth: float = 1.0,
                 reduction: str = "mean") -> Any:
    """Tversky loss of each sample: ``ℓ_n = 1 - (TP + s) / (TP + α FP + β FN + s)``.

    ``TP = Σ x y``, ``FP = Σ x (1 - y)``, ``FN = Σ (1 - x) y`` over every axis but the batch
    axis. α weighs false positives, β false negatives (β > α favours recall); α = β = ½ with
    s = 0 is the Dice loss. ``smooth`` as in :func:`dice_loss`.

    Shapes: as :func:`dice_loss`, ``input`` and ``target`` of one shape ``(N, d1, ...)``, values in
    [0, 1]; "none" gives ``(N,)``.

    Peers: MONAI's ``TverskyLoss`` as for :func:`dice_loss` (per channel). Keras' ``Tversky``
    multiplies its ``alpha`` with ``Σ y (1 - x)``, the false negatives: its ``alpha`` is ``beta``
    here, and its ``beta`` is ``alpha``; as its ``Dice``, it adds its epsilon to the denominator
    only (``smooth=0`` here).

    Options:
        alpha: α ≥ 0, the weight of the false positives.
        beta: β ≥ 0, the weight of the false negatives.
        smooth: s ≥ 0, added to the numerator and the denominator.
    """
    name = "tversky_loss"
    toolkit.check_number(name, "alpha", alpha, 0.0, finite=True)
    toolkit.check_number(name, "beta", beta, 0.0, finite=True)
    xp, x, y, dtype = _overlap_inputs(name, input, target, reduction, smooth)
    tp = xp.sum(x * y, axis=1)
    fp = xp.sum(x * (1 - y), axis=1)
    fn = xp.sum((1 - x) * y, axis=1)
    return toolkit.reduce(xp, 1 - (tp + smooth) / (tp + alpha * fp + beta * fn + smooth), reduction, dtype)


@define_loss(
    class_name="GeneralizedDiceLoss",
    aliases=("generalized_dice", "gdl"),
    differentiable=("input",),
    reference="Sudre et al. 2017, 'Generalised Dice overlap as a deep learning loss function', eq. 2",
)
def generalized_dice_loss(input: Any, target: Any, /, *, smooth: float = 1e-5, reduction: str = "mean") -> Any:
    r"""Generalized Dice loss: Dice summed over classes, each weighted by its inverse squared volume.

    ``ℓ_n = 1 - (2 Σ_c w_c Σ x_c y_c + s) / (Σ_c w_c Σ (x_c + y_c) + s)`` with
    ``w_c = 1 / (Σ y_c)²``; a class absent from a sample's target (or whose weight would overflow)
    gets that sample's largest finite weight, as MONAI's ``GeneralizedDiceLoss`` does. Shapes:
    ``input`` (class probabilities, e.g. a softmax) and ``target`` (one-hot or soft labels) of one shape
    ``(N, C, d1, ...)``, values in [0, 1]; "none" gives ``(N,)``. The weights depend on the target
    only; the loss is declared differentiable in ``input`` alone (the target is a label), though a
    target that requires grad gets its true gradient, weights included (MONAI's raises there).

    $$\ell_n = 1 - \frac{2 \sum_c w_c \sum_j x_{ncj}\, y_{ncj} + s}{\sum_c w_c \sum_j (x_{ncj} + y_{ncj}) + s},
      \qquad w_c = \Big(\sum_j y_{ncj}\Big)^{-2}$$

    Options:
        smooth: s ≥ 0, added to the numerator and the denominator.
    """
    name = "generalized_dice_loss"
    xp, x, y, dtype = toolkit.pointwise_inputs(name, input, target, reduction)
    toolkit.check_number(name, "smooth", smooth, 0.0, finite=True)
    if input.ndim < 2 or input.shape[1] == 0:
        raise LossValueError(name, "input", "class probabilities of shape (N, C, d1, ...) with C ≥ 1",
                             f"shape {tuple(input.shape)}")
    x = unit_interval(name, "input", input, x, xp)
    y = unit_interval(name, "target", target, y, xp)
    shape = (x.shape[0], x.shape[1], math.prod(x.shape[2:]))
    x, y = xp.reshape(x, shape), xp.reshape(y, shape)
    volume = xp.sum(y, axis=2)  # (N, C)
    # A class whose weight overflows (a soft target's volume below 1 / √max, ~5.4e-20 in float32)
    # counts as absent, as MONAI's isinf finds it: an infinite weight made the loss inf / inf. The
    # weight is (1 / v)², not 1 / v²: v² of a volume below ~1e-19 is subnormal in float32, which XLA
    # flushes to 0 (an infinite weight, a NaN loss on JAX, where torch and MONAI keep the class).
    inv = 1 / xp.where(volume > 0, volume, xp.ones_like(volume))
    present = (volume > 0) & (inv < math.sqrt(float(xp.finfo(volume.dtype).max)))
    w = xp.where(present, inv, xp.zeros_like(volume)) ** 2
    if w.shape[0] != 0:  # Dask cannot take the max over axis 1 of an empty batch; no row to fill then
        w = xp.where(present, w, xp.max(toolkit.dense_chunks(w), axis=1, keepdims=True))
    overlap = xp.sum(w * xp.sum(x * y, axis=2), axis=1)
    total = xp.sum(w * (xp.sum(x, axis=2) + volume), axis=1)
    return toolkit.reduce(xp, 1 - (2 * overlap + smooth) / (total + smooth), reduction, dtype)


def binary_focal_inputs(input: Any, target: Any, alpha: Any, gamma: Any, reduction: str) -> tuple[Any, Any, Any, Any]:
    """The checks of :func:`binary_focal_loss`, shared with its torch kernel."""
    name = "binary_focal_loss"
    if alpha is not None:
        toolkit.check_number(name, "alpha", alpha, 0.0, 1.0)
    toolkit.check_number(name, "gamma", gamma, 0.0, finite=True)
    xp, x, t, dtype = toolkit.pointwise_inputs(name, input, target, reduction)
    return xp, x, unit_interval(name, "target", target, t, xp), dtype


@define_loss(
    class_name="BinaryFocalLoss",
    aliases=("sigmoid_focal_loss",),
    differentiable=("input", "target"),
    false_friends={"binary_focal_crossentropy": (
        "Keras' binary_focal_crossentropy takes probabilities and weighs no class by default; "
        "binary_focal_loss takes logits and weighs by alpha: Keras' with from_logits=True, "
        "apply_class_balancing=True")},
    reference="Lin et al. 2017, 'Focal Loss for Dense Object Detection', eq. 5; torchvision.ops.sigmoid_focal_loss",
)
def binary_focal_loss(input: Any, target: Any, /, *, alpha: float | None = 0.25, gamma: float = 2.0,
                      reduction: str = "mean") -> Any:
    """Focal loss of logits against binary (or soft) targets: ``ℓ = -α_t (1 - p_t)^γ log p_t``.

    ``p = σ(x)``, ``p_t = p y + (1 - p)(1 - y)``, ``α_t = α y + (1 - α)(1 - y)``; ``alpha=None``
    drops the α weighting (torchvision's ``alpha=-1``), ``gamma=0`` gives BCE with logits.
    Shapes: ``input`` (logits) and ``target`` (in [0, 1]) of one shape. As torchvision's
    ``sigmoid_focal_loss`` (whose default reduction is "none"; here "mean", as every lossreg loss)
    and MONAI's ``FocalLoss`` (but MONAI's "sum" first averages over the spatial axes, d1·...
    times smaller, and on ``(N, C)`` inputs is the mean). Keras' ``BinaryFocalCrossentropy`` takes
    probabilities and no α by default: it is this loss with ``from_logits=True,
    apply_class_balancing=True``. Its name is therefore not one of this loss's (``lossreg.get``
    refuses it and says why).

    Options:
        alpha: α in [0, 1], the weight of the positives (1 - α of the negatives), or None for none.
        gamma: γ ≥ 0, the focusing exponent; 0 gives BCE with logits.
    """
    xp, x, t, dtype = binary_focal_inputs(input, target, alpha, gamma, reduction)
    log_p, log_q, p, q = sigmoids(xp, x)
    ce = -(t * log_p + (1 - t) * log_q)
    losses = toolkit.safe_pow(xp, t * q + (1 - t) * p, gamma) * ce  # 1 - p_t, without cancellation
    if alpha is not None:
        losses = (alpha * t + (1 - alpha) * (1 - t)) * losses
    return toolkit.reduce(xp, losses, reduction, dtype)


@define_loss(
    class_name="FocalLoss",
    aliases=("categorical_focal_loss", "sparse_categorical_focal_loss", "softmax_focal_loss"),
    array_options=("weight",),
    reference="Lin et al. 2017, 'Focal Loss for Dense Object Detection', eq. 5, on softmax probabilities",
)
def focal_loss(input: Any, target: Any, /, *, gamma: float = 2.0, weight: Any = None, ignore_index: int = -100,
               reduction: str = "mean") -> Any:
    """Focal loss of logits against class indices: ``ℓ_n = -w[y_n] (1 - p_n)^γ log p_n``.

    ``p_n = softmax(x_n)[y_n]``. ``weight`` (one per class, the α_t of the paper), ``ignore_index``
    and the reductions are those of ``cross_entropy`` ("mean" divides by the summed weights of the
    counted targets), so ``gamma=0`` is exactly cross-entropy (infinite logits included). Shapes:
    ``input`` (C), (N, C) or (N, C, d1, ...); ``target`` (), (N), (N, 1) or (N, d1, ...).

    Peers: Keras' ``CategoricalFocalCrossentropy`` takes one-hot targets and an ``alpha`` (0.25 by
    default) for every class alike, ``weight = [α] * C`` here, and its "mean" divides by the batch
    ("sum" / N here). MONAI's ``FocalLoss(use_softmax=True)`` averages over the one-hot entries,
    classes included: its "mean" is this one's divided by ``C`` without weights; with its ``weight``
    or ``alpha`` (``weight = [1 - α, α, ..., α]`` here) it is still "sum" / (N·C·d1·...), where this
    one's "mean" divides by the summed weights of the targets.

    Options:
        gamma: γ ≥ 0, the focusing exponent; 0 gives cross-entropy.
        reduction: "none" (each ℓ_n, 0 where ignored), "sum", or "mean": ``Σ_n ℓ_n / Σ_n w[y_n]`` over the
            targets not ignored (their number without ``weight``), as :func:`cross_entropy`'s.
    """
    name = "focal_loss"
    toolkit.check_number(name, "gamma", gamma, 0.0, finite=True)
    cls = toolkit.class_inputs(name, input, target, weight=weight, ignore_index=ignore_index, reduction=reduction)
    xp = cls.xp
    log_p = toolkit.take_class(xp, toolkit.log_softmax(xp, cls.input), cls.target)
    losses = -cls.weight * toolkit.safe_pow(xp, -xp.expm1(log_p), gamma) * log_p  # -expm1: 1 - p without cancellation
    return toolkit.reduce_classes(cls, losses, reduction)


LOSSES = [dice_loss, tversky_loss, generalized_dice_loss, binary_focal_loss, focal_loss]
