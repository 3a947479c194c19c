"""Cross-entropy for CUDA in Triton: an online softmax forward, and a backward from its log-sum-exp.

One program per row. The forward launch sweeps the row once, keeping a running maximum and a
running sum of exponentials (the online softmax) and, with label smoothing, the weighted sum of
the logits; it stores the row's loss and log-sum-exp. The backward launch sweeps the row again and
writes ``d loss / d logits`` times the incoming gradient, read on the device. The logits are thus
read twice and the gradient written once, the least an unfused cross-entropy can move, and no N×C
temporary other than the gradient itself is made. (Measured on an H200 at 8192×128256 bfloat16,
the earlier split, the gradient written in the forward pass and rescaled in the backward one,
took 4.9 ms forward and backward against torch's 4.8 ms; see the README's GPU section.)

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

from .torch_common import _beyond_autograd, _class_args, _poison

_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


# Triton reads a kernel's parameter annotations (tl.constexpr = compile-time constant): the
# pointers and scalars stay unannotated so that Triton specialises them itself.
@triton.jit
def _ce_kernel(X, stride_x, T, W, WSUM, SCALE, LOSS, LSE, GOUT, G, stride_g, n_cols, ignore_index, eps,  # type: ignore[no-untyped-def]
               HAS_WEIGHT: tl.constexpr, SMOOTH: tl.constexpr, HAS_SCALE: tl.constexpr,
               BACKWARD: tl.constexpr, GOUT_PER_ROW: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    x_row = X + row * stride_x
    y = tl.load(T + row)
    active = y != ignore_index
    y_safe = tl.where(active, y, 0)
    if HAS_WEIGHT:
        w_y = tl.load(W + y_safe).to(tl.float32)
    else:
        w_y = 1.0
    if SMOOTH:
        if HAS_WEIGHT:
            w_sum = tl.load(WSUM).to(tl.float32)
        else:
            w_sum = n_cols * 1.0
    else:
        w_sum = 0.0

    if not BACKWARD:
        m = -float("inf")
        d = 0.0
        wx = 0.0  # Σ_c w_c x_c, for the smoothing term
        for start in range(0, n_cols, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            mask = cols < n_cols
            x = tl.load(x_row + cols, mask=mask, other=-float("inf")).to(tl.float32)
            m_new = tl.maximum(m, tl.max(x, 0))
            # Shifted by 0 while every logit so far is -inf: -inf - -inf would make d NaN.
            shift = tl.where(m_new == -float("inf"), 0.0, m_new)
            d = d * tl.exp(m - shift) + tl.sum(tl.exp(x - shift), 0)
            m = m_new
            if SMOOTH:
                if HAS_WEIGHT:
                    w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
                    wx += tl.sum(tl.where(mask, w * x, 0.0), 0)
                else:
                    wx += tl.sum(tl.where(mask, x, 0.0), 0)
        lse = tl.where(m == -float("inf"), 0.0, m) + tl.log(d)
        x_y = tl.load(x_row + y_safe).to(tl.float32)
        if SMOOTH:
            loss = (1.0 - eps) * w_y * (lse - x_y) + (eps / n_cols) * (w_sum * lse - wx)
        else:
            loss = w_y * (lse - x_y)
        tl.store(LOSS + row, tl.where(active, loss, 0.0))
        tl.store(LSE + row, lse)
    else:
        # d loss / d logits from the saved log-sum-exp, times d result / d loss, read on the device
        # (no host synchronisation, so the backward pass can be captured in a CUDA graph).
        lse = tl.load(LSE + row)
        if GOUT_PER_ROW:
            scale = tl.load(GOUT + row).to(tl.float32)
        else:
            scale = tl.load(GOUT).to(tl.float32)
        if HAS_SCALE:
            scale = scale * tl.load(SCALE)
        g_row = G + row * stride_g
        if SMOOTH:
            a = (1.0 - eps) * w_y + (eps / n_cols) * w_sum  # coefficient of p_c
        else:
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


def _block(input: torch.Tensor) -> tuple[int, int]:
    c = input.shape[1]
    block = min(triton.next_power_of_2(c), 8192 if input.element_size() >= 4 else 16384)
    return block, 4 if block <= 2048 else (8 if block <= 8192 else 16)


def _forward(input: torch.Tensor, index: torch.Tensor, weight: Any, ignore_index: int, reduction: str,
             eps: float) -> tuple[torch.Tensor, torch.Tensor, Any, Any]:
    """(result, per-row log-sum-exp, Σ w, 1 / the mean's denominator): one read of the logits."""
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
    lse = torch.empty(n, dtype=torch.float32, device=input.device)
    block, warps = _block(input)
    dummy = losses  # any pointer for absent arguments; never read
    _ce_kernel[(n,)](
        input, input.stride(0), index, dummy if weight is None else weight, dummy if wsum is None else wsum,
        dummy if scale is None else scale, losses, lse, dummy, dummy, 0, c, ignore_index, float(eps),
        HAS_WEIGHT=weight is not None, SMOOTH=bool(eps), HAS_SCALE=scale is not None,
        BACKWARD=False, GOUT_PER_ROW=False, BLOCK=block, num_warps=warps,
    )
    if reduction == "none":
        out = losses
    elif reduction == "sum":
        out = losses.sum()
    else:  # all targets ignored: 0 / 0 = NaN, as torch
        assert scale is not None  # made above for reduction="mean"
        out = losses.sum() * scale[0]
    return out.to(input.dtype), lse, wsum, scale


def _backward(input: torch.Tensor, index: torch.Tensor, weight: Any, wsum: Any, scale: Any, lse: torch.Tensor,
              grad_out: torch.Tensor, ignore_index: int, eps: float) -> torch.Tensor:
    """d result / d logits: one read of the logits and one write of the gradient."""
    n, c = input.shape
    grad = torch.empty_like(input)
    block, warps = _block(input)
    dummy = lse
    _ce_kernel[(n,)](
        input, input.stride(0), index, dummy if weight is None else weight, dummy if wsum is None else wsum,
        dummy if scale is None else scale, dummy, lse, grad_out.contiguous(), grad, grad.stride(0), c,
        ignore_index, float(eps), HAS_WEIGHT=weight is not None, SMOOTH=bool(eps), HAS_SCALE=scale is not None,
        BACKWARD=True, GOUT_PER_ROW=grad_out.ndim == 1, BLOCK=block, num_warps=warps,
    )
    return grad


class _CrossEntropy(torch.autograd.Function):
    """Forward: the losses and each row's log-sum-exp (one read of the logits). Backward: the
    gradient from them (one read, one write), as Cut Cross-Entropy splits it. Writing the gradient
    in the forward pass instead (Liger-Kernel) costs a second read there and a rescaling pass over
    the whole gradient in the backward one, unless it is rescaled in place, which a second
    backward pass (retain_graph=True) would then see."""

    @staticmethod
    def forward(ctx: Any, input: torch.Tensor, index: torch.Tensor, weight: Any, ignore_index: int,
                reduction: str, eps: float) -> torch.Tensor:
        out, lse, wsum, scale = _forward(input, index, weight, ignore_index, reduction, eps)
        ctx.save_for_backward(input, index, lse, weight, wsum, scale)
        ctx.ignore_index, ctx.eps, ctx.reduction = ignore_index, eps, reduction
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        input, index, lse, weight, wsum, scale = ctx.saved_tensors
        if torch.is_grad_enabled():
            # create_graph=True (a gradient penalty): the gradient again, by torch's operator,
            # as a function autograd can differentiate a second time; the launch's is not.
            value = torch.nn.functional.cross_entropy(input.float(), index, weight=None if weight is None else
                                                      weight.float(), ignore_index=ctx.ignore_index,
                                                      reduction=ctx.reduction, label_smoothing=ctx.eps)
            grad, = torch.autograd.grad(value, input, grad_out.to(value.dtype), create_graph=True)
            return grad, None, None, None, None, None
        grad = _backward(input, index, weight, wsum, scale, lse, grad_out, ctx.ignore_index, ctx.eps)
        return grad, None, None, None, None, None


def cross_entropy_index(input: torch.Tensor, index: torch.Tensor, *, weight: Any, ignore_index: int,
                        reduction: str, label_smoothing: float) -> Any:
    """The Triton path for validated index targets (int64, in range or ignored); may decline."""
    if (input.ndim != 2 or input.dtype not in _DTYPES or not (input.is_cuda or _INTERPRET)
            or input.stride(1) != 1 or 0 in input.shape or not index.is_contiguous()
            or (weight is not None and not weight.is_contiguous()) or _beyond_autograd(input)):
        return NotImplemented
    if input.requires_grad and torch.is_grad_enabled():
        return _CrossEntropy.apply(input, index, weight, ignore_index, reduction, float(label_smoothing))
    return _forward(input, index, weight, ignore_index, reduction, label_smoothing)[0]


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
