"""Cross-entropy for CUDA in Triton: online softmax, and the gradient written in the same launch.

One program per row. The first sweep over the row keeps a running maximum and a running sum of
exponentials (the online softmax), plus the picked logit and, with label smoothing, the weighted
sum of the logits; the loss of the row follows. When a gradient is wanted, a second sweep over
the same row (still in L2 for rows up to a few hundred KB) writes ``d loss / d logits`` at once,
so the backward pass only rescales it by the incoming gradient (and skips even that when it is
1). The logits are thus read about once (forward) and the gradient written once, and no N×C
temporary other than the gradient itself is made: the extra peak memory is the logits' size.

Gradient of row n (active: target not ignored), with ε the smoothing, w the class weights
(1 without weight), y the target and p the softmax::

    d ℓ_n / d x_c = (1 - ε) w_y (p_c - [c = y]) + (ε / C) (Σ_k w_k · p_c - w_c)

times 1 / Σ_active w_y for "mean". Computed in float32, stored in the input's dtype (float32,
float16 or bfloat16; float64 is left to torch's native kernel).

Only CUDA tensors are accepted, except under ``TRITON_INTERPRET=1`` (Triton's CPU interpreter),
which the tests use to check this kernel against the portable definition without a GPU.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import triton
import triton.language as tl

from .torch_common import _class_args, _poison

_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


# Triton reads a kernel's parameter annotations (tl.constexpr = compile-time constant): the
# pointers and scalars stay unannotated so that Triton specialises them itself.
@triton.jit
def _ce_kernel(X, stride_x, T, W, WSUM, SCALE, LOSS, G, stride_g, n_cols, ignore_index, eps,  # type: ignore[no-untyped-def]
               HAS_WEIGHT: tl.constexpr, SMOOTH: tl.constexpr, HAS_SCALE: tl.constexpr,
               WRITE_GRAD: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    x_row = X + row * stride_x
    y = tl.load(T + row)
    active = y != ignore_index
    y_safe = tl.where(active, y, 0)

    m = -float("inf")
    d = 0.0
    wx = 0.0  # Σ_c w_c x_c, for the smoothing term
    for start in range(0, n_cols, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        mask = cols < n_cols
        x = tl.load(x_row + cols, mask=mask, other=-float("inf")).to(tl.float32)
        m_new = tl.maximum(m, tl.max(x, 0))
        d = d * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new), 0)
        m = m_new
        if SMOOTH:
            if HAS_WEIGHT:
                w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
                wx += tl.sum(tl.where(mask, w * x, 0.0), 0)
            else:
                wx += tl.sum(tl.where(mask, x, 0.0), 0)
    lse = m + tl.log(d)

    x_y = tl.load(x_row + y_safe).to(tl.float32)
    if HAS_WEIGHT:
        w_y = tl.load(W + y_safe).to(tl.float32)
    else:
        w_y = 1.0
    if SMOOTH:
        if HAS_WEIGHT:
            w_sum = tl.load(WSUM).to(tl.float32)
        else:
            w_sum = n_cols * 1.0
        loss = (1.0 - eps) * w_y * (lse - x_y) + (eps / n_cols) * (w_sum * lse - wx)
    else:
        w_sum = 0.0
        loss = w_y * (lse - x_y)
    tl.store(LOSS + row, tl.where(active, loss, 0.0))

    if WRITE_GRAD:
        scale = 1.0
        if HAS_SCALE:
            scale = tl.load(SCALE)
        g_row = G + row * stride_g
        a = (1.0 - eps) * w_y + (eps / n_cols) * w_sum  # coefficient of p_c
        if not SMOOTH:
            a = w_y
        for start in range(0, n_cols, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            mask = cols < n_cols
            x = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
            g = a * tl.exp(x - lse)
            g = tl.where(cols == y_safe, g - (1.0 - eps) * w_y, g)
            if SMOOTH:
                if HAS_WEIGHT:
                    w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
                    g = g - (eps / n_cols) * w
                else:
                    g = g - eps / n_cols
            g = tl.where(active, g * scale, 0.0)
            tl.store(g_row + cols, g.to(G.dtype.element_ty), mask=mask)


def _launch(input: torch.Tensor, index: torch.Tensor, weight: Any, ignore_index: int, reduction: str,
            eps: float, want_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    n, c = input.shape
    active = index != ignore_index
    wsum = scale = None
    if weight is not None:
        wsum = weight.float().sum().reshape(1)
    if reduction == "mean":
        if weight is None:
            denom = active.sum(dtype=torch.float32)
        else:
            denom = (weight.float()[index.clamp(0, c - 1)] * active).sum()
        scale = (1.0 / denom).reshape(1)
    losses = torch.empty(n, dtype=torch.float32, device=input.device)
    grad = torch.empty_like(input) if want_grad else None
    block = min(triton.next_power_of_2(c), 8192 if input.element_size() >= 4 else 16384)
    warps = 4 if block <= 2048 else (8 if block <= 8192 else 16)
    dummy = losses  # any pointer for absent arguments; never read
    _ce_kernel[(n,)](
        input, input.stride(0), index, dummy if weight is None else weight, dummy if wsum is None else wsum,
        dummy if scale is None else scale, losses, dummy if grad is None else grad,
        0 if grad is None else grad.stride(0), c, ignore_index, float(eps),
        HAS_WEIGHT=weight is not None, SMOOTH=bool(eps), HAS_SCALE=scale is not None,
        WRITE_GRAD=want_grad, BLOCK=block, num_warps=warps,
    )
    if reduction == "none":
        out = losses
    elif reduction == "sum":
        out = losses.sum()
    else:  # all targets ignored: 0 / 0 = NaN, as torch
        assert scale is not None  # made above for reduction="mean"
        out = losses.sum() * scale[0]
    return out.to(input.dtype), grad


class _CrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, input: torch.Tensor, index: torch.Tensor, weight: Any, ignore_index: int,
                reduction: str, eps: float) -> torch.Tensor:
        out, grad = _launch(input, index, weight, ignore_index, reduction, eps, want_grad=True)
        ctx.save_for_backward(grad)
        ctx.reduction = reduction
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        (grad,) = ctx.saved_tensors
        # Always rescaled: asking whether grad_out is 1 would read it on the host (a synchronisation,
        # and not allowed while capturing a CUDA graph).
        grad = grad * (grad_out[:, None] if ctx.reduction == "none" else grad_out)
        return grad, None, None, None, None, None


def cross_entropy_index(input: torch.Tensor, index: torch.Tensor, *, weight: Any, ignore_index: int,
                        reduction: str, label_smoothing: float) -> Any:
    """The Triton path for validated index targets (int64, in range or ignored); may decline."""
    if (input.ndim != 2 or input.dtype not in _DTYPES or not (input.is_cuda or _INTERPRET)
            or input.stride(1) != 1 or 0 in input.shape or not index.is_contiguous()
            or (weight is not None and not weight.is_contiguous())):
        return NotImplemented
    if input.requires_grad and torch.is_grad_enabled():
        return _CrossEntropy.apply(input, index, weight, ignore_index, reduction, float(label_smoothing))
    return _launch(input, index, weight, ignore_index, reduction, label_smoothing, want_grad=False)[0]


def cross_entropy(input: Any, target: Any, /, *, weight: Any = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Any:
    """The registered kernel: the full portable signature, declining what it does not handle."""
    if (not isinstance(input, torch.Tensor) or type(label_smoothing) not in (int, float)
            or not 0.0 <= label_smoothing <= 1.0 or not isinstance(target, torch.Tensor)
            or target.dtype.is_floating_point or not (input.is_cuda or _INTERPRET)):
        return NotImplemented
    args = _class_args(input, target, weight, ignore_index, reduction)
    if args is None:
        return NotImplemented
    index, bad = args
    if _INTERPRET and not input.is_cuda and bad is None and index.numel():
        c = input.shape[1] if input.ndim == 2 else 0
        if bool(((index != ignore_index) & ((index < 0) | (index >= c))).any()):
            return NotImplemented  # on CUDA _class_args has checked this
    result = cross_entropy_index(input, index, weight=weight, ignore_index=ignore_index, reduction=reduction,
                                 label_smoothing=label_smoothing)
    return result if result is NotImplemented else _poison(result, bad, reduction)
