# mypy: disable-error-code="no-untyped-def"
# (Triton reads a kernel's parameter annotations, tl.constexpr among them: the @triton.jit kernels stay unannotated.)
"""Triton row kernel for linear_cross_entropy on CUDA: one chunk's logits into losses and gradient.

Checked on an H200 by every conformance case and by ``benchmarks/gpu/bench_lce_gpu.py`` (against
torch before timing it); ``LOSSREG_LCE_TRITON=0`` switches it off. The torch kernel (``torch_lce``) makes each chunk's logits with
one matmul (tensor cores, in the input dtype) and hands the (B, V) block to :func:`rows`, which
replaces the five elementwise passes of the torch code by one program per row:

- sweep 1: soft cap, running maximum and sum of exponentials (online softmax), the target's
  logit and the sum of the logits (label smoothing); the loss and log-sum-exp of the row;
- sweep 2 (when a gradient is wanted): ``g = c (1 + 2ζ lse) p - c (1 - ε)[col = y] - c ε / V``,
  times ``1 - tanh²`` under the soft cap, written over the logits in place;

so the logits are read twice and the gradient written once, all in float32 registers, and no
other (B, V) array is made. ``c`` is d result / d loss of the row (0 for ignored tokens).
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl


@triton.jit
def _tanh(x):
    # tanh from exp, stable for both signs: Triton's own tanh moved between releases.
    e = tl.exp(-2.0 * tl.abs(x))
    t = (1.0 - e) / (1.0 + e)
    return tl.where(x >= 0, t, -t)


@triton.jit
def _rows_kernel(Z, stride_z, T, ACT, COEF, LOSS, LSE, n_cols, ls, zl, cap,
                 HAS_CAP: tl.constexpr, WRITE_GRAD: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    z_row = Z + row * stride_z
    y = tl.load(T + row).to(tl.int64)
    active = tl.load(ACT + row) != 0
    m = -float("inf")
    d = 0.0
    zsum = 0.0
    picked = 0.0
    for start in range(0, n_cols, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        mask = cols < n_cols
        z = tl.load(z_row + cols, mask=mask, other=0.0).to(tl.float32)
        if HAS_CAP:
            z = cap * _tanh(z / cap)
        zm = tl.where(mask, z, -float("inf"))
        m_new = tl.maximum(m, tl.max(zm, 0))
        # Shifted by 0 while every logit so far is -inf (classes masked by a -inf bias):
        # -inf - -inf would make d NaN.
        shift = tl.where(m_new == -float("inf"), 0.0, m_new)
        d = d * tl.exp(m - shift) + tl.sum(tl.exp(zm - shift), 0)
        m = m_new
        zsum += tl.sum(tl.where(mask, z, 0.0), 0)
        picked += tl.sum(tl.where(cols == y, z, 0.0), 0)
    lse = tl.where(m == -float("inf"), 0.0, m) + tl.log(d)
    # Without smoothing the mean logit is not taken: 0 · ∞ would be NaN where a logit is -inf.
    smooth = tl.where(ls != 0.0, ls * (lse - zsum / n_cols), 0.0)
    loss = (1.0 - ls) * (lse - picked) + smooth + zl * lse * lse
    tl.store(LOSS + row, tl.where(active, loss, 0.0))
    tl.store(LSE + row, lse)
    if WRITE_GRAD:
        c = tl.load(COEF + row).to(tl.float32)
        a = c * (1.0 + 2.0 * zl * lse)
        for start in range(0, n_cols, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            mask = cols < n_cols
            u = tl.load(z_row + cols, mask=mask, other=0.0).to(tl.float32)
            z = u
            if HAS_CAP:
                z = cap * _tanh(u / cap)
            g = a * tl.exp(z - lse) - c * ls / n_cols - tl.where(cols == y, c * (1.0 - ls), 0.0)
            if HAS_CAP:
                th = z / cap
                g = g * (1.0 - th * th)
            tl.store(z_row + cols, g.to(Z.dtype.element_ty), mask=mask)


def rows(z: torch.Tensor, t: torch.Tensor, act: torch.Tensor, coef: torch.Tensor | None, ls: float, zl: float,
         cap: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(losses, lse)`` of the rows of the (B, V) logits ``z`` (before the soft cap); with ``coef``
    the gradient of each row's logits (before the cap) is written over ``z``."""
    b, v = z.shape
    losses = torch.empty(b, dtype=torch.float32, device=z.device)
    lse = torch.empty(b, dtype=torch.float32, device=z.device)
    if b == 0:
        return losses, lse
    block = min(triton.next_power_of_2(v), 8192)
    _rows_kernel[(b,)](z, z.stride(0), t, act.to(torch.int8), losses if coef is None else coef, losses, lse, v,
                       float(ls), float(zl), float(cap or 1.0), HAS_CAP=cap is not None, WRITE_GRAD=coef is not None,
                       BLOCK=block, num_warps=16 if block >= 4096 else 8)
    return losses, lse


def usable() -> bool:
    return torch.cuda.is_available()


__all__: list[Any] = ["rows", "usable"]
