"""torch kernels: the same losses through torch's fused native operators.

torch is imported when a kernel is first called, never when the plugin loads, so that
``import lossreg`` and ``lossreg list`` stay free of torch. A kernel shares its loss's checks
(and so its errors) and must agree with the portable definition; the conformance suite runs both.
"""

from __future__ import annotations

from typing import Any

from lossreg import toolkit

from .losses import binary_focal_inputs


def binary_focal_loss_torch(input: Any, target: Any, /, *, alpha: float | None = 0.25, gamma: float = 2.0,
                            reduction: str = "mean") -> Any:
    """:func:`~lossreg_segmentation.losses.binary_focal_loss` with torch's fused ``logsigmoid`` and
    ``sigmoid``: about half the operators of the portable form, and its precision."""
    import torch
    import torch.nn.functional as F

    xp, x, t, dtype = binary_focal_inputs(input, target, alpha, gamma, reduction)
    # -(t log σ(x) + (1 - t) log σ(-x)), not binary_cross_entropy_with_logits: its (1 - t) x - log σ(x)
    # cancels to 0 where t = 0 and x ≪ 0 (4e-18 at x = -40), its gradient σ(x) - t to 0 where t = 1
    # and x ≫ 0, and it is NaN at x = -inf for t > 0 (the loss is inf there, as optax's and the formula's).
    ce = -(t * F.logsigmoid(x) + (1 - t) * F.logsigmoid(-x))
    z = t * torch.sigmoid(-x) + (1 - t) * torch.sigmoid(x)  # 1 - p_t, without cancellation
    # safe_pow: at a saturated logit z is 0, and z.pow(γ < 1)'s infinite derivative times ce = 0 is NaN.
    losses = ce if gamma == 0 else ce * toolkit.safe_pow(xp, z, gamma)
    if alpha is not None:
        losses = losses * (alpha * t + (1 - alpha) * (1 - t))
    return toolkit.reduce(xp, losses, reduction, dtype)
