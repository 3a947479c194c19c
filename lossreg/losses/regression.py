"""Regression losses: distances between predictions and real-valued targets."""

from __future__ import annotations

import math
from typing import Any

from .. import toolkit
from ..errors import LossValueError
from ..registry import define_loss


@define_loss(
    class_name="MSELoss",
    aliases=("mse", "mean_squared_error", "squared_error"),
    differentiable=("input", "target"),
    array_options=("weight",),
    reference="torch.nn.MSELoss",
    false_friends={"l2_loss": "optax's and TensorFlow's l2_loss is ½(x - y)², half of mse_loss's (x - y)²; "
                              "use 0.5 * mse_loss(x, y, reduction='none')"},
)
def mse_loss(input: Any, target: Any, /, *, reduction: str = "mean", weight: Any = None) -> Any:
    r"""Mean squared error: ``ℓ_i = w_i (x_i - y_i)²``, then reduced.

    $$\ell_i = w_i\,(x_i - y_i)^2$$

    Shapes: ``input`` and ``target`` of one shape, any number of dimensions. torch broadcasts
    unequal shapes with a warning; as the source document requires, lossreg refuses them.
    ``weight`` (as ``F.mse_loss`` takes it; ``torch.nn.MSELoss`` does not) has the input's
    shape, and "mean" is then the weighted mean ``Σ_i ℓ_i / Σ_i w_i`` (ℓ_i holds its w_i already:
    ``Σ w_i (x_i - y_i)² / Σ w_i``); None weighs each term 1.

    Args:
        reduction: "none" (each ℓ_i), "sum", or "mean": ``Σ_i ℓ_i / Σ_i w_i``, the plain mean without
            ``weight``.
        weight: per-element weights of the input's shape, or None (all 1).
    """
    name = "mse_loss"
    xp, x, y, dtype = toolkit.pointwise_inputs(name, input, target, reduction)
    diff = x - y
    return _weighted_mean(xp, name, diff * diff, input, weight, reduction, dtype)


@define_loss(
    class_name="L1Loss",
    aliases=("l1", "mae", "mean_absolute_error", "absolute_error"),
    differentiable=("input", "target"),
    array_options=("weight",),
    reference="torch.nn.L1Loss",
)
def l1_loss(input: Any, target: Any, /, *, reduction: str = "mean", weight: Any = None) -> Any:
    r"""Mean absolute error: ``ℓ_i = w_i |x_i - y_i|``, then reduced.

    $$\ell_i = w_i\,|x_i - y_i|$$

    Shapes: ``input`` and ``target`` of one shape; unequal shapes are an error (torch broadcasts).
    Less sensitive to outliers than MSE, since errors are not squared. ``weight`` as in
    :func:`mse_loss` (``F.l1_loss``'s: "mean" is ``Σ_i ℓ_i / Σ_i w_i = Σ w_i |x_i - y_i| / Σ w_i``).

    Args:
        reduction: "none" (each ℓ_i), "sum", or "mean": ``Σ_i ℓ_i / Σ_i w_i``, the plain mean without
            ``weight``.
        weight: per-element weights of the input's shape, or None (all 1).
    """
    name = "l1_loss"
    xp, x, y, dtype = toolkit.pointwise_inputs(name, input, target, reduction, take_complex=True)
    losses = toolkit.absolute(xp, x - y)
    # complex x and y: |x - y| is real, and so is the loss (float32 for complex64)
    return _weighted_mean(xp, name, losses, input, weight, reduction, toolkit.real_dtype(xp, dtype))


def _weights(xp: Any, name: str, input: Any, weight: Any, dtype: Any) -> tuple[Any, Any]:
    """``(weight in the dtype to compute in, the result's dtype)`` for ``F.mse_loss``'s,
    ``F.l1_loss``'s and ``F.huber_loss``'s per-element ``weight``: floating, of the input's shape
    (torch raises for any other, broadcastable or not), promoting the result's dtype as torch does."""
    toolkit.namespace(name, input=input, weight=weight)
    toolkit.check_floating(name, "weight", weight, xp)
    toolkit.check_same_shape(name, "weight", weight, "input", input)
    dtype = toolkit.result_type(xp, dtype, weight.dtype)
    return toolkit.as_dtype(xp, weight, toolkit.compute_dtype(xp, dtype)), dtype


def _weighted_mean(xp: Any, name: str, losses: Any, input: Any, weight: Any, reduction: str, dtype: Any) -> Any:
    """``losses`` weighted and reduced as ``F.mse_loss`` and ``F.l1_loss`` do: "mean" divides by
    the sum of the weights (0 / 0 = NaN when they sum to 0 or there are none, as torch's)."""
    if weight is None:
        return toolkit.reduce(xp, losses, reduction, dtype)
    w, dtype = _weights(xp, name, input, weight, dtype)
    work = toolkit.compute_dtype(xp, dtype)
    weighted = toolkit.as_dtype(xp, losses, work) * w
    if reduction != "mean":
        return toolkit.reduce(xp, weighted, reduction, dtype)
    return toolkit.as_dtype(xp, toolkit.divide(xp, xp.sum(weighted), xp.sum(w)), dtype)


def _huber(xp: Any, d: Any, delta: float) -> Any:
    """``0.5 d²`` where ``|d| < δ``, else ``δ (|d| - 0.5 δ)``: as ``0.5 q² + δ r`` with ``q = min(|d|, δ)``, ``r = max(|d| - δ, 0)``.

    ``r`` is ``|d| - q`` computed apart from ``q``: differentiated as ``|d| - q``, the gradient
    inside would be summed as ``δ + (q - δ)``, which loses ``q``'s digits to ``δ``'s (in float32
    at δ = 1, a residual of 1e-5 got a gradient 0.14 % off; at δ = 1e4, 1e-3 got 0.00195).

    Branch-free, so that XLA fuses it into the reduction that follows (a ``where`` is a select,
    which its CPU reduction fusion does not take, and the selected array is written out; masks
    multiplied in, or a clip of ``d``, made the jitted forward 5-15 times slower). Its gradient is
    torch's: ``d`` inside, ``±δ`` outside and at ``|d| = δ`` (``minimum`` splits a tie in halves:
    ``δ/2 + δ/2``), 0 at 0, NaN at NaN (``minimum`` propagates it), ``±δ`` at ``±∞``. Its second
    derivative is 1 inside and 0 outside, but 1/4 at ``|d| = δ`` exactly (torch's HuberLoss: 1,
    its SmoothL1Loss: 0), and 0 at ``d = 0`` where ``abs`` has slope 0 there (torch; JAX's has 1):
    torch's kernels, the default on torch tensors, are torch's own. δ = ∞ has no linear part
    (``∞ · 0`` would be NaN).
    """
    if delta == math.inf:
        return 0.5 * d * d
    q, r = _split(xp, d, delta)
    # (0.5 q) q, torch's order: 0.5 (q q) overflows for q past 1.8e19 in float32 (q² > 3.4e38).
    return (0.5 * q) * q + delta * r


def _held(threshold: float, finfo: Any) -> float:
    """A threshold (δ, β) as a dtype of ``finfo`` holds it, as torch's kernels compute with it: ∞
    past the dtype's largest number (a finite Python number there would overflow on the way, to NaN)."""
    return math.inf if threshold > float(finfo.max) else threshold


def _split(xp: Any, d: Any, delta: float) -> tuple[Any, Any]:
    """``(min(|d|, δ), max(|d| - δ, 0))``: the quadratic and linear parts' arguments of Huber and
    smooth L1, without a ``where`` (see :func:`_huber`)."""
    z = xp.abs(d)
    return toolkit.minimum(xp, z, delta), toolkit.maximum(xp, z - delta, 0.0)


@define_loss(
    class_name="SmoothL1Loss",
    aliases=("smooth_l1",),
    differentiable=("input", "target"),
    reference="torch.nn.SmoothL1Loss",
)
def smooth_l1_loss(input: Any, target: Any, /, *, reduction: str = "mean", beta: float = 1.0) -> Any:
    r"""Smooth L1: ``ℓ_i = 0.5 d_i² / β`` where ``|d_i| < β``, else ``|d_i| - 0.5 β``, with ``d = x - y``.

    $$
    \ell_i = \begin{cases} 0.5\, d_i^2 / \beta & |d_i| < \beta
    \\ |d_i| - 0.5\, \beta & \text{otherwise} \end{cases}
    \qquad d_i = x_i - y_i
    $$

    ``beta`` ≥ 0; ``beta = 0`` is exactly :func:`l1_loss`, as in torch. Shapes: ``input`` and
    ``target`` of one shape; unequal shapes are an error (torch broadcasts with a warning).

    Args:
        beta: where the quadratic part turns linear, β ≥ 0 (0 gives :func:`l1_loss`).
    """
    name = "smooth_l1_loss"
    toolkit.check_number(name, "beta", beta, 0.0)
    xp, x, y, dtype = toolkit.pointwise_inputs(name, input, target, reduction)
    diff = x - y
    if beta == 0:
        return toolkit.reduce(xp, toolkit.absolute(xp, diff), reduction, dtype)  # torch calls its l1_loss
    finfo = xp.finfo(diff.dtype)
    if beta <= 0.5 * float(finfo.smallest_normal) * float(finfo.eps):
        # 0 in the dtype, as torch's kernel holds it: L1, whose gradient at NaN is NaN there
        return toolkit.reduce(xp, toolkit.safe_abs(xp, diff), reduction, dtype)
    held = _held(beta, finfo)
    if beta < float(finfo.smallest_normal):
        # β subnormal in the dtype: the same loss in units of a power of two that
        # makes β normal (it is homogeneous: ℓ(d, β) = ℓ(sd, sβ) / s), where XLA's CPU would flush β
        # to 0 and tie min(|d|, β) at d = 0. |d| is first held below the smallest normal number,
        # so that |d| s cannot overflow; the gradient is torch's d / β.
        tiny = float(finfo.smallest_normal)
        scale = 2.0 ** math.ceil(math.log2(tiny / beta))
        z = xp.abs(diff)
        qs = toolkit.minimum(xp, toolkit.minimum(xp, z, tiny) * scale, beta * scale)
        return toolkit.reduce(xp, (0.5 * qs) * (qs / (beta * scale)) / scale + (z - qs / scale), reduction, dtype)
    # _huber(d, β) / β, as 0.5 q (q / β) + r: torch's linear part z - 0.5 β never squares β, which
    # (0.5 β) β would, overflowing past β = 2.6e19 in float32 where the loss is finite. At q = β
    # the first term is 0.5 β exactly; the gradient is _huber's divided by β (q / β inside).
    # A β past the dtype's range is ∞ there (no linear part), but its reciprocal is still held:
    # 0.5 q (q · (1/β)) is exact where q / ∞ would be 0, value and gradient.
    q, r = _split(xp, diff, held)
    inside = q * (1.0 / beta) if held == math.inf else q / held
    return toolkit.reduce(xp, (0.5 * q) * inside + r, reduction, dtype)


@define_loss(
    class_name="HuberLoss",
    aliases=("huber",),
    differentiable=("input", "target"),
    array_options=("weight",),
    reference="torch.nn.HuberLoss",
)
def huber_loss(input: Any, target: Any, /, *, reduction: str = "mean", delta: float = 1.0,
               weight: Any = None) -> Any:
    r"""Huber: ``ℓ_i = 0.5 d_i²`` where ``|d_i| < δ``, else ``δ (|d_i| - 0.5 δ)``, with ``d = x - y``.

    $$
    \ell_i = w_i \begin{cases} 0.5\, d_i^2 & |d_i| < \delta
    \\ \delta\, (|d_i| - 0.5\, \delta) & \text{otherwise} \end{cases}
    \qquad d_i = x_i - y_i
    $$

    Equals ``δ · smooth_l1_loss(beta=δ)``; ``delta`` > 0. ``weight`` (as ``F.huber_loss`` takes
    it; ``torch.nn.HuberLoss`` does not) has the input's shape and multiplies each ``ℓ_i``,
    "mean" then being the plain mean of the weighted terms. Shapes: ``input`` and ``target`` of
    one shape; unequal shapes are an error (torch broadcasts with a warning).

    Args:
        delta: where the quadratic part turns linear, δ > 0.
        weight: per-element weights of the input's shape, or None (all 1).
    """
    name = "huber_loss"
    toolkit.check_number(name, "delta", delta)
    if delta <= 0:
        raise LossValueError(name, "delta", "a number > 0", repr(delta))
    xp, x, y, dtype = toolkit.pointwise_inputs(name, input, target, reduction)
    if weight is not None:
        w, dtype = _weights(xp, name, input, weight, dtype)
        work = toolkit.compute_dtype(xp, dtype)
        x, y = toolkit.as_dtype(xp, x, work), toolkit.as_dtype(xp, y, work)
    diff = x - y
    losses = _huber(xp, diff, _held(delta, xp.finfo(diff.dtype)))
    if weight is not None:
        losses = losses * w
    return toolkit.reduce(xp, losses, reduction, dtype)
