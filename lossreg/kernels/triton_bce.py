"""Binary cross-entropy on probabilities for CUDA in Triton: torch's values, NaN for its assert.

torch's CUDA kernel checks that every input and target lies in [0, 1] with a device-side assert,
which ends the process. lossreg's default mode answers NaN there instead, without reading values
back to the host; done with torch operations, that check and the substitution it needs took 4.1
times torch's forward pass over 2^27 float32 elements on an H200 (the README's GPU section).
Here one launch reads input, target and weight once each and writes each block's sum of losses
(or each loss, for "none"); the backward launch reads them again and writes the gradient::

    ℓ = -w (t · max(log x, -100) + (1 - t) · max(log1p(-x), -100))
    d ℓ / d x = w (x - t) / max(x (1 - x), 1e-12)           (torch's, also at x = 0 and 1)

NaN wherever x or t is outside [0, 1] (or NaN), in the value and the gradient. Computed in
float32, stored in the input's dtype (float32, float16 or bfloat16; float64 stays with torch).

Only CUDA tensors are accepted, except under ``TRITON_INTERPRET=1`` (Triton's CPU interpreter),
where the tests check it against the portable definition without a GPU.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import triton
import triton.language as tl

from .torch_common import _beyond_autograd, _outside_unit

_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_BLOCK = 4096


@triton.jit
def _bce_kernel(X, T, W, OUT, GOUT, G, n, inv_count,  # type: ignore[no-untyped-def]
                HAS_WEIGHT: tl.constexpr, PER_ELEMENT: tl.constexpr, BACKWARD: tl.constexpr,
                GOUT_PER_ELEMENT: tl.constexpr, BLOCK: tl.constexpr):
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    x = tl.load(X + offsets, mask=mask, other=0.5).to(tl.float32)
    t = tl.load(T + offsets, mask=mask, other=0.5).to(tl.float32)
    if HAS_WEIGHT:
        w = tl.load(W + offsets, mask=mask, other=0.0).to(tl.float32)
    else:
        w = 1.0
    # Written so that NaN fails it too.
    bad = ~((x >= 0.0) & (x <= 1.0) & (t >= 0.0) & (t <= 1.0))
    if not BACKWARD:
        log_x = tl.maximum(tl.log(x), -100.0)
        # log1p(-x), as torch's CUDA kernel takes it: log(1 - x) rounds a small x away in float32
        # (the loss of x = 1e-8 against 0 was 0, of 1e-6 1.3 % off). Goldberg's form, from tl.log
        # alone (libdevice's log1p has no CPU interpreter to test it by): log(u) · (-x) / (u - 1),
        # u = 1 - x rounded, corrects that rounding; -x itself where u rounds to 1.
        u = 1.0 - x
        log_1mx = tl.maximum(tl.where(u == 1.0, -x, tl.log(u) * (-x / (u - 1.0))), -100.0)
        loss = tl.where(bad, float("nan"), -w * (t * log_x + (1.0 - t) * log_1mx))
        if PER_ELEMENT:
            tl.store(OUT + offsets, loss.to(OUT.dtype.element_ty), mask=mask)
        else:
            tl.store(OUT + tl.program_id(0), tl.sum(tl.where(mask, loss, 0.0), 0))
    else:
        if GOUT_PER_ELEMENT:
            g = tl.load(GOUT + offsets, mask=mask, other=0.0).to(tl.float32)
        else:
            g = tl.load(GOUT).to(tl.float32) * inv_count
        grad = g * w * (x - t) / tl.maximum(x * (1.0 - x), 1e-12)
        tl.store(G + offsets, tl.where(bad, float("nan"), grad).to(G.dtype.element_ty), mask=mask)


def _launch(x: torch.Tensor, t: torch.Tensor, w: Any, out: torch.Tensor, gout: Any, grad: Any, inv_count: float,
            *, per_element: bool, backward: bool) -> None:
    n = x.numel()
    _bce_kernel[(triton.cdiv(n, _BLOCK),)](
        x, t, x if w is None else w, out, x if gout is None else gout, x if grad is None else grad, n, inv_count,
        HAS_WEIGHT=w is not None, PER_ELEMENT=per_element, BACKWARD=backward, GOUT_PER_ELEMENT=per_element,
        BLOCK=_BLOCK, num_warps=8,
    )


def _forward(x: torch.Tensor, t: torch.Tensor, w: Any, reduction: str) -> torch.Tensor:
    if reduction == "none":
        out = torch.empty_like(x)
        _launch(x, t, w, out, None, None, 1.0, per_element=True, backward=False)
        return out
    partial = torch.empty(triton.cdiv(x.numel(), _BLOCK), dtype=torch.float32, device=x.device)
    _launch(x, t, w, partial, None, None, 1.0, per_element=False, backward=False)
    total = partial.sum()
    return (total if reduction == "sum" else total / x.numel()).to(x.dtype)


class _BinaryCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, t: torch.Tensor, w: Any, reduction: str) -> torch.Tensor:
        ctx.save_for_backward(x, t, w)
        ctx.reduction = reduction
        return _forward(x, t, w, reduction)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        x, t, w = ctx.saved_tensors
        if torch.is_grad_enabled():
            # create_graph=True (a gradient penalty): the gradient again, by torch's operator on
            # the valid values, as a function autograd can differentiate a second time.
            bad = _outside_unit(x, t)
            half = torch.full((), 0.5, dtype=torch.float32, device=x.device)
            value = torch.nn.functional.binary_cross_entropy(
                torch.where(bad, half, x.float()), torch.where(bad, half, t.float()),
                weight=None if w is None else w.float(), reduction=ctx.reduction)
            grad, = torch.autograd.grad(value, x, grad_out.to(value.dtype), create_graph=True)
            return grad.masked_fill(bad, torch.nan), None, None, None
        grad = torch.empty_like(x)
        # The incoming gradient is read on the device: no host synchronisation, graph-capturable.
        inv_count = 1.0 / x.numel() if ctx.reduction == "mean" else 1.0
        _launch(x, t, w, grad, grad_out.contiguous(), grad, inv_count, per_element=ctx.reduction == "none",
                backward=True)
        return grad, None, None, None


def binary_cross_entropy(input: torch.Tensor, target: torch.Tensor, weight: Any, reduction: str) -> Any:
    """For tensors the torch kernel has checked (one floating dtype, one shape and device, a
    known reduction, a weight that broadcasts and needs no gradient); declines anything else:
    float64, an empty input, a target that needs a gradient, a tensor subclass, torch.func's
    transforms and forward-mode dual tensors."""
    if (type(input) is not torch.Tensor or type(target) is not torch.Tensor or input.dtype not in _DTYPES
            or not (input.is_cuda or _INTERPRET) or input.numel() == 0 or target.requires_grad
            or _beyond_autograd(input)):
        return NotImplemented
    x, t = input.contiguous(), target.contiguous()
    w = None if weight is None else weight.to(input.dtype).expand(input.shape).contiguous()
    if input.requires_grad and torch.is_grad_enabled():
        return _BinaryCrossEntropy.apply(x, t, w, reduction)
    return _forward(x, t, w, reduction)
