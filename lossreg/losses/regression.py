"""Regression losses: distances between predictions and real-valued targets."""

from __future__ import annotations

from typing import Any

from .. import _xp
from ..registry import define_loss


@define_loss(
    class_name="MSELoss",
    aliases=("mse", "mean_squared_error", "l2_loss", "squared_error"),
    differentiable=("input", "target"),
    reference="torch.nn.MSELoss",
)
def mse_loss(input: Any, target: Any, /, *, reduction: str = "mean") -> Any:
    """Mean squared error: ``ℓ_i = (x_i - y_i)²``, then reduced.

    Shapes: ``input`` and ``target`` of one shape, any number of dimensions. torch broadcasts
    unequal shapes with a warning; as the source document requires, lossreg refuses them.
    """
    xp, x, y, dtype = _xp.pointwise_inputs("mse_loss", input, target, reduction)
    diff = x - y
    return _xp.reduce(xp, diff * diff, reduction, dtype)


@define_loss(
    class_name="L1Loss",
    aliases=("l1", "mae", "mean_absolute_error", "absolute_error"),
    differentiable=("input", "target"),
    reference="torch.nn.L1Loss",
)
def l1_loss(input: Any, target: Any, /, *, reduction: str = "mean") -> Any:
    """Mean absolute error: ``ℓ_i = |x_i - y_i|``, then reduced.

    Shapes: ``input`` and ``target`` of one shape; unequal shapes are an error (torch broadcasts).
    Less sensitive to outliers than MSE, since errors are not squared.
    """
    xp, x, y, dtype = _xp.pointwise_inputs("l1_loss", input, target, reduction)
    diff = x - y
    # sign(d)·d is |d| with torch's gradient everywhere: 0 at d = 0 and NaN at NaN, on every library.
    return _xp.reduce(xp, xp.sign(diff) * diff, reduction, dtype)
