"""Regression losses beyond torch.nn, as Keras 3 has them: log-cosh, MAPE, MSLE, quantile (pinball)."""

from __future__ import annotations

import math
from typing import Any

from lossreg import define_loss, toolkit


def _at_least(xp: Any, x: Any, lo: float) -> Any:
    """``max(x, lo)`` (NaN stays NaN), as ``where``: compat's torch ``clip`` cannot take a
    symbolic bound under ``torch.compile(dynamic=True)``. A bound past the largest number of
    ``x``'s dtype is ∞ there, as NumPy and JAX round it: torch's ``where`` refused the Python number
    ("value cannot be converted to type float without overflow", eps=1e300 on float32 tensors)."""
    if lo > float(xp.finfo(x.dtype).max):
        lo = math.inf
    return xp.where(x < lo, lo, x)


@define_loss(
    class_name="LogCoshLoss",
    aliases=("log_cosh", "logcosh"),
    differentiable=("input", "target"),
    reference="keras.losses.log_cosh",
)
def log_cosh_loss(input: Any, target: Any, /, *, reduction: str = "mean") -> Any:
    """Log-cosh error: ``ℓ_i = log cosh(x_i - y_i)``, then reduced.

    About ``d²/2`` for small errors and ``|d| - log 2`` for large ones: smooth like MSE, robust
    like L1. Computed so that it neither overflows nor loses the small errors (see :func:`log_cosh`).
    Shapes: ``input`` and ``target`` of one shape (unequal shapes are an error).
    Keras' ``log_cosh`` averages over the last axis; here the reduction decides.
    """
    xp, x, y, dtype = toolkit.pointwise_inputs("log_cosh_loss", input, target, reduction)
    return toolkit.reduce(xp, log_cosh(xp, x - y), reduction, dtype)


def log_cosh(xp: Any, d: Any) -> Any:
    """``log cosh(d)`` elementwise; its derivative is ``tanh(d)``.

    As ``log1p(u² eᶜ / 2)`` with ``c = min(|d|, 40)`` and ``u = expm1(-c)`` (``cosh c - 1 =
    -expm1(c) expm1(-c) / 2``, a product of two precise factors), plus ``max(|d| - 40, 0)``, where
    ``log cosh`` is ``|d| - log 2`` to the last bit. Value and gradient are within 3 ulp of
    mpmath's and of ``tanh`` from 1e-30 up. The usual ``|d| + log1p(expm1(-2|d|) / 2)`` (optax's
    and Keras' forms likewise) cancels near 0: its two terms are ``±|d|`` for a result of ``d²/2``
    (0 in float32 below 1e-7, its gradient 40% off there). No ``where`` on the result, which would
    keep XLA's CPU reduction fusion from taking it (twice the time under ``jax.jit``).
    """
    a = xp.where(d >= 0, d, -d)  # |d|, each side analytic, so the gradient at 0 is tanh(0) = 0
    c = toolkit.minimum(xp, a, 40.0)
    u = xp.expm1(-c)
    # The excess as a max, not a - c: its gradient is then 0 below 40, not 1 - 1 (which rounds).
    return toolkit.maximum(xp, a - 40.0, 0.0) + xp.log1p((u * u) * (0.5 * xp.exp(c)))


@define_loss(
    class_name="MAPELoss",
    aliases=("mape", "mean_absolute_percentage_error"),
    reference="keras.losses.mean_absolute_percentage_error",
)
def mape_loss(input: Any, target: Any, /, *, eps: float = 1e-7, reduction: str = "mean") -> Any:
    """Absolute percentage error: ``ℓ_i = 100 · |x_i - y_i| / max(|y_i|, ε)``, then reduced.

    ``eps`` (Keras' ``epsilon()``) keeps targets at 0 finite. Shapes: ``input`` and ``target`` of
    one shape. The gradient at ``x = y`` is 0, as L1's.

    Options:
        eps: ε ≥ 0, the smallest ``|y_i|`` divided by (Keras' ``epsilon()``, 1e-7).
    """
    name = "mape_loss"
    toolkit.check_number(name, "eps", eps, 0.0, finite=True)
    xp, x, y, dtype = toolkit.pointwise_inputs(name, input, target, reduction)
    d = x - y
    a = xp.where(d > 0, d, xp.where(d < 0, -d, d * d))  # |d|, gradient 0 at d = 0, no boolean mask (vmap, meta)
    return toolkit.reduce(xp, 100 * a / _at_least(xp, xp.abs(y), eps), reduction, dtype)


@define_loss(
    class_name="MSLELoss",
    aliases=("msle", "mean_squared_logarithmic_error"),
    differentiable=("input", "target"),
    reference="keras.losses.mean_squared_logarithmic_error",
)
def msle_loss(input: Any, target: Any, /, *, eps: float = 1e-7, reduction: str = "mean") -> Any:
    """Squared logarithmic error: ``ℓ_i = (log(1 + max(x_i, ε)) - log(1 + max(y_i, ε)))²``.

    For non-negative quantities (counts, prices) where relative errors matter; values below
    ``eps`` count as ``eps``, as in Keras, so negative predictions cost like 0 and get no gradient.
    Shapes: ``input`` and ``target`` of one shape.

    Options:
        eps: ε ≥ 0, the smallest value taken for ``x_i`` and ``y_i`` (Keras' ``epsilon()``, 1e-7).
    """
    name = "msle_loss"
    toolkit.check_number(name, "eps", eps, 0.0, finite=True)
    xp, x, y, dtype = toolkit.pointwise_inputs(name, input, target, reduction)
    d = xp.log1p(_at_least(xp, x, eps)) - xp.log1p(_at_least(xp, y, eps))
    return toolkit.reduce(xp, d * d, reduction, dtype)


@define_loss(
    class_name="QuantileLoss",
    aliases=("pinball_loss", "pinball"),
    reference="Koenker & Bassett 1978, 'Regression Quantiles'; sklearn.metrics.mean_pinball_loss",
)
def quantile_loss(input: Any, target: Any, /, *, quantile: float = 0.5, reduction: str = "mean") -> Any:
    """Pinball loss of a predicted ``quantile`` q: ``ℓ_i = max(q d_i, (q - 1) d_i)``, ``d_i = y_i - x_i``.

    Minimized in expectation by the q-quantile of the target; q = ½ is half the L1 loss. At
    ``x = y`` the gradient is that of the ``y ≥ x`` side, ``-q``. Shapes: ``input`` and ``target``
    of one shape.

    Options:
        quantile: q in [0, 1], the quantile predicted: under-predictions cost q, over-predictions 1 - q.
    """
    name = "quantile_loss"
    toolkit.check_number(name, "quantile", quantile, 0.0, 1.0)
    xp, x, y, dtype = toolkit.pointwise_inputs(name, input, target, reduction)
    d = y - x
    return toolkit.reduce(xp, xp.where(d >= 0, quantile * d, (quantile - 1) * d), reduction, dtype)
