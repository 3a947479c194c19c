"""torch kernel of the extras; imported on its first call (registering it imports no torch).

Inside ``torch.autocast`` torch runs ``matmul`` in the half-precision dtype, float32 arguments
included, and NT-Xent's similarities are a matmul: run op by op there, its loss would come from
bfloat16 similarities (8 bits) next to its float32 positive pairs. Its kernel runs the portable
definition with autocast off, so the loss is the one computed outside autocast: float32 arithmetic
for float32 and half-precision embeddings alike, in the embeddings' dtype. Elsewhere it declines.
"""

from __future__ import annotations

from typing import Any

import torch

from lossreg.kernels.torch_common import _autocasting

from .contrastive import nt_xent_loss as _nt_xent_loss


def nt_xent_loss(input: Any, positive: Any, /, *, temperature: float = 0.5, reduction: str = "mean") -> Any:
    """:func:`lossreg_extras.nt_xent_loss` with autocast off inside a ``torch.autocast`` region."""
    device = input.device.type if isinstance(input, torch.Tensor) else None
    if device is None or not _autocasting(device):
        return NotImplemented  # the portable definition, as called
    with torch.autocast(device, enabled=False):
        return _nt_xent_loss.portable(  # type: ignore[attr-defined]
            input, positive, temperature=temperature, reduction=reduction)
