"""torch kernel of linear_cross_entropy: a ``torch.autograd.Function`` that never holds the logits.

The arguments are checked by the portable preamble (``lossreg.losses.fused.prepare_inputs``: the
same errors, the same chunking). Then, per chunk of tokens, the logits are made by one ``addmm``
and turned into their gradient in place (``exp``, scale, subtract at the target, soft-cap
derivative), which feeds ``d_hidden = G W``, ``d_weight += Gᵀ h`` and ``d_bias += Σ G`` and is
dropped. Two ways to split the work between forward and backward, both here, measured in
``benchmarks/bench_lce.py``:

- forward-time gradients (as Liger-Kernel does): the forward pass computes the loss and the three
  gradients, scaled as "mean" or "sum" ask; the backward pass multiplies them by the incoming
  scalar. Three matmuls in all (the logits once), the fastest; used for "mean" and "sum" when a
  gradient is wanted.
- recomputed in the backward pass (as Cut Cross-Entropy does): the forward pass keeps only the
  per-token log-sum-exp; the backward pass makes each chunk's logits again. Four matmuls, but the
  gradients are not held between the passes and the incoming gradient may differ per token: used
  for "none", and with ``recompute=True`` for "mean" and "sum".

When no gradient is wanted, only the loss is computed. Half-precision inputs are computed in
float32 on the CPU (each chunk of hidden states and the weight cast once per call); on CUDA the
matmuls run in the input dtype (tensor cores, float32 accumulation inside), their results are
read in float32, and the gradients are accumulated in float32.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any, NamedTuple

import torch
from array_api_compat import array_namespace

from ..chunked import MIN_TOKENS, prepare_inputs, reduce_tokens, token_weights

Tensor = torch.Tensor
_HALF = (torch.float16, torch.bfloat16)
# Logits per chunk when chunk_size is None: 2^23 (32 MiB in float32: 256 tokens at V=32000, 1/16
# of the logits at N=4096) on the CPU; 2^25 on CUDA (unmeasured: no GPU where this was written).
CPU_CHUNK_ELEMENTS = 2**23
CUDA_CHUNK_ELEMENTS = 2**25


def _logits(h: Tensor, w: Tensor, b: Tensor | None, softcap: float | None) -> Tensor:
    """One block of soft-capped logits, float32 (or float64), a fresh array that may be overwritten."""
    z = torch.mm(h, w.t()) if b is None else torch.addmm(b, h, w.t())
    z = z.float() if z.dtype in _HALF else z
    if softcap is not None:
        z = z.div_(softcap).tanh_().mul_(softcap)
    return z


def _chunk(h: Tensor, w: Tensor, b: Tensor | None, t: Tensor, act: Tensor, coef: Tensor | None, ls: float,
           zl: float, cap: float | None, vocab: int, lse: Tensor | None,
           acc: tuple[Tensor, Tensor, Tensor | None] | None) -> tuple[Tensor | None, Tensor]:
    """Losses and lse of one chunk; with ``acc = (d_hidden rows, d_weight, d_bias)`` adds the
    gradients, ``coef`` being d result / d loss per token (the formulas of ``fused.chunk_loss``).

    Each block of logits is one array, turned in place into exponentials and then into its
    gradient: without a soft cap no other chunk-sized array exists (with one, its derivative)."""
    v = w.shape[0]
    blocks = [(j, min(j + vocab, v)) for j in range(0, v, vocab)]
    one = len(blocks) == 1
    if one and h.is_cuda and h.dtype != torch.float64 and _triton_rows() is not None:  # opt-in, unverified
        z = torch.mm(h, w.t()) if b is None else torch.addmm(b, h, w.t())
        rows: tuple[Tensor, Tensor] = _triton_rows()(z, t, act, None if acc is None else coef, ls, zl, cap)
        if acc is not None:
            d_h, d_w, d_b = acc
            d_h.copy_(torch.mm(z, w))
            d_w.add_(torch.mm(z.t(), h))
            if d_b is not None:
                d_b.add_(z.sum(0, dtype=d_b.dtype))
        return rows
    tc = t.unsqueeze(1)
    losses: Any = None
    exp: Any = None
    deriv: Any = None
    scale: Any = None
    if lse is None or one:
        m: Any = None
        s: Any = None
        picked: Any = None
        zsum: Any = None
        for j, k in blocks:
            z = _logits(h, w[j:k], None if b is None else b[j:k], cap)
            inside = (tc >= j) & (tc < k)
            pick = torch.where(inside.squeeze(1), z.gather(1, (tc - j).clamp_(0, k - j - 1)).squeeze(1), 0.0)
            picked = pick if picked is None else picked + pick
            if ls:
                zsum = z.sum(1) if zsum is None else zsum + z.sum(1)
            if one and acc is not None and cap is not None:
                deriv = _cap_derivative(z, cap)
            mj = z.amax(1)
            m_new = mj if m is None else torch.maximum(m, mj)
            m_new = torch.where(m_new == -torch.inf, 0.0, m_new)  # a row of -inf: no -inf - -inf
            e = z.sub_(m_new.unsqueeze(1)).exp_()
            s = e.sum(1) if s is None else s * (m - m_new).exp() + e.sum(1)
            m = m_new
            if one:
                exp = e  # exp(z - m), kept for the gradient
            del z, e
        lse = m + s.log()
        losses = (1.0 - ls) * (lse - picked)
        if ls:
            losses = losses + ls * (lse - zsum / v)
        if zl:
            losses = losses + zl * lse * lse
        losses = torch.where(act, losses, 0.0)
        if one and exp is not None:
            scale = (1.0 / s).unsqueeze(1)  # exp(z - m) / s = softmax
    if acc is None:
        return losses, lse
    assert coef is not None and lse is not None
    d_h, d_w, d_b = acc
    a = (coef * (1.0 + 2.0 * zl * lse)).unsqueeze(1)
    on_target = (coef * (ls - 1.0)).unsqueeze(1)
    for j, k in blocks:
        if exp is not None:
            g = exp.mul_(a * scale)
            exp = None
        else:
            z = _logits(h, w[j:k], None if b is None else b[j:k], cap)
            deriv = None if cap is None else _cap_derivative(z, cap)
            g = z.sub_(lse.unsqueeze(1)).exp_().mul_(a)
            del z
        if ls:
            g.sub_((coef * (ls / v)).unsqueeze(1))
        inside = (tc >= j) & (tc < k)
        g.scatter_add_(1, (tc - j).clamp_(0, k - j - 1), torch.where(inside, on_target, 0.0))
        if deriv is not None:
            g.mul_(deriv)
            deriv = None
        gw = g.to(w.dtype) if w.dtype in _HALF else g
        if j == 0:
            d_h.copy_(torch.mm(gw, w[j:k]))
        elif gw.dtype == d_h.dtype:
            d_h.addmm_(gw, w[j:k])
        else:  # half-precision matmuls (CUDA), float32 sums
            d_h.add_(torch.mm(gw, w[j:k]))
        if gw.dtype == d_w.dtype:
            d_w[j:k].addmm_(gw.t(), h)  # accumulated inside the matmul: no temporary of d_weight's size
        else:
            d_w[j:k].add_(torch.mm(gw.t(), h))
        if d_b is not None:
            d_b[j:k].add_(g.sum(0))
        del g, gw
    return losses, lse


def _triton_rows() -> Any:
    """triton_lce.rows when LOSSREG_LCE_TRITON=1 and Triton imports, else None (looked up once)."""
    if not _TRITON:
        if os.environ.get("LOSSREG_LCE_TRITON", "0") == "1" and importlib.util.find_spec("triton") is not None:
            from .triton_lce import rows

            _TRITON.append(rows)
        else:
            _TRITON.append(None)
    return _TRITON[0]


_TRITON: list[Any] = []


def _cap_derivative(z: Tensor, cap: float) -> Tensor:
    """d softcap·tanh(u/softcap) / du = 1 - (z/softcap)², from the capped logits z."""
    return (z / cap).square_().neg_().add_(1.0)


class _Meta(NamedTuple):
    """What the autograd Function needs besides the tensors (hashable constants, for torch.compile)."""

    reduction: str
    shape: tuple[int, ...]  # of the per-token losses
    dtype: torch.dtype  # of the result
    chunks: tuple[int, int]
    ls: float
    zl: float
    cap: float | None
    recompute: bool


def _work(h: Tensor, w: Tensor, b: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
    """The (hidden, weight, bias) to compute with: float32 copies of half inputs on the CPU."""
    if h.is_cuda and h.dtype in _HALF and w.dtype == h.dtype and (b is None or b.dtype == h.dtype):
        return h, w, b
    work = torch.float64 if torch.float64 in (h.dtype, w.dtype, None if b is None else b.dtype) else torch.float32
    return h.to(work), w.to(work), None if b is None else b.to(work)


def _sweep(h: Tensor, w: Tensor, b: Tensor | None, t: Tensor, act: Tensor, meta: _Meta, coef: Tensor | None,
           lse: Tensor | None = None) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor | None] | None]:
    """Every chunk of tokens: per-token losses and lse (N,), and the gradients when ``coef`` is given
    (from the saved ``lse`` when given, recomputing the logits: the Cut Cross-Entropy backward)."""
    h, w, b = _work(h, w, b)
    n, d = h.shape
    step, vocab = meta.chunks
    acc = torch.float64 if h.dtype == torch.float64 else torch.float32
    losses = torch.zeros(n, dtype=acc, device=h.device)
    lse_out = torch.empty(n, dtype=acc, device=h.device)
    full = None
    if coef is not None:
        # Half precision on CUDA: d_weight summed in the weight's dtype inside each addmm (float32
        # within a matmul, rounded between chunks, as Liger-Kernel does); a float32 copy would be
        # V×D×4 bytes, as large as the logits at N=8192, D=4096.
        w_acc = w.dtype if w.dtype in _HALF else acc
        full = (torch.empty(n, d, dtype=acc, device=h.device), torch.zeros(w.shape, dtype=w_acc, device=h.device),
                None if b is None else torch.zeros(b.shape, dtype=acc, device=h.device))
    reuse = lse is not None and vocab < w.shape[0]  # one block: the logits are made once anyway
    # Under torch.compile(dynamic=True) N is symbolic: a loop over its chunks would make the graph
    # depend on N, so one chunk takes every token (no saving there; static shapes keep the chunks).
    symbolic = isinstance(n, torch.SymInt)
    for i in ([0] if symbolic else range(0, n, step)):
        sl = slice(0, None) if symbolic else slice(i, i + step)
        li, si = _chunk(h[sl], w, b, t[sl], act[sl], None if coef is None else coef[sl], meta.ls, meta.zl, meta.cap,
                        vocab, lse[sl] if lse is not None and reuse else None, None if full is None else (full[0][sl], full[1], full[2]))
        if li is not None:
            losses[sl] = li
        lse_out[sl] = si
    return losses, lse_out, full


def _base_coef(act: Tensor, reduction: str, dtype: torch.dtype) -> Tensor:
    """d result / d loss_n: 1 for active tokens ("sum", "none"), 1/count ("mean"), else 0."""
    return token_weights(array_namespace(act), act, reduction, dtype)


def _reduce(losses: Tensor, act: Tensor, bad: Tensor | None, meta: _Meta) -> Tensor:
    return reduce_tokens(array_namespace(losses), losses, act, bad, meta.reduction, meta.shape, meta.dtype, losses.dtype)


class _LinearCrossEntropy(torch.autograd.Function):
    """Value and gradients of linear_cross_entropy; hidden (N, D), weight and bias are differentiable."""

    @staticmethod
    def forward(ctx: Any, h: Tensor, w: Tensor, b: Tensor | None, t: Tensor, act: Tensor, bad: Tensor | None,
                meta: _Meta) -> Tensor:
        grads = any(ctx.needs_input_grad[:3])
        early = grads and not meta.recompute and meta.reduction != "none"
        acc = torch.float64 if torch.float64 in (h.dtype, w.dtype) else torch.float32
        coef = _base_coef(act, meta.reduction, acc) if early else None
        losses, lse, full = _sweep(h, w, b, t, act, meta, coef)
        ctx.meta, ctx.early, ctx.used = meta, early, False
        ctx.dtypes = (h.dtype, w.dtype, None if b is None else b.dtype)
        if early:
            assert full is not None
            ctx.save_for_backward(full[0], full[1], full[2], bad)
        elif grads:
            ctx.save_for_backward(h, w, b, t, act, bad, lse)
        return _reduce(losses, act, bad, meta)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Any, ...]:
        meta = ctx.meta
        if ctx.early:
            if ctx.used:
                raise RuntimeError("linear_cross_entropy: a second backward pass through one forward pass needs "
                                   "recompute=True (the gradients made in the forward pass were scaled in place)")
            ctx.used = True
            d_h, d_w, d_b, bad = ctx.saved_tensors
            # Scaled in place: a copy would hold the gradients twice (d_weight is V×D).
            d_h, d_w = d_h.mul_(grad_out), d_w.mul_(grad_out)
            d_b = None if d_b is None else d_b.mul_(grad_out)
        else:
            h, w, b, t, act, bad, lse = ctx.saved_tensors
            g = grad_out.reshape(-1) if meta.reduction == "none" else grad_out
            coef = _base_coef(act, meta.reduction, lse.dtype) * g.to(lse.dtype)
            _, _, full = _sweep(h, w, b, t, act, meta, coef, lse)
            assert full is not None
            d_h, d_w, d_b = full
        if bad is not None:  # invalid targets were poisoned in the value: so are the gradients
            d_h = torch.where(bad.unsqueeze(1), torch.nan, d_h)
        dh_t, dw_t, db_t = ctx.dtypes
        return (d_h.to(dh_t), d_w.to(dw_t), None if d_b is None else d_b.to(db_t), None, None, None, None)


def linear_cross_entropy(hidden: Any, weight: Any, target: Any, /, *, bias: Any = None, ignore_index: int = -100,
                         label_smoothing: float = 0.0, reduction: str = "mean", z_loss: float = 0.0,
                         softcap: float | None = None, chunk_size: Any = None, recompute: bool = False) -> Any:
    """The kernel: the portable checks, then :class:`_LinearCrossEntropy` (``recompute``: the Cut
    Cross-Entropy split for "mean" and "sum" too, for the benchmark)."""
    if torch._C._are_functorch_transforms_active():
        return NotImplemented  # torch.func (vmap, grad, ...): the portable path, differentiated op by op
    if chunk_size is None and isinstance(hidden, Tensor) and getattr(weight, "ndim", 0) == 2 and weight.shape[0]:
        # One chunk-sized array at a time here (the portable code holds several), so larger chunks:
        # each chunk reads the whole weight again, and on a CPU 256 tokens at V=32000 beat torch's
        # unfused time where 64 took 1.7 times as long (benchmarks/bench_lce.py, README).
        budget = CUDA_CHUNK_ELEMENTS if hidden.is_cuda else CPU_CHUNK_ELEMENTS
        tokens = budget // weight.shape[0] // MIN_TOKENS * MIN_TOKENS
        if tokens >= MIN_TOKENS:  # else the portable plan, which splits the vocabulary too
            chunk_size = tokens
    inp = prepare_inputs("linear_cross_entropy", hidden, weight, target, bias, ignore_index, reduction,
                         label_smoothing, z_loss, softcap, chunk_size, poison=torch.compiler.is_compiling())
    meta = _Meta(reduction, inp.shape, inp.dtype, (inp.chunks.tokens, inp.chunks.vocab), float(label_smoothing), float(z_loss),
                 None if softcap is None else float(softcap), bool(recompute))
    return _LinearCrossEntropy.apply(inp.hidden, inp.weight, inp.bias, inp.target, inp.active, inp.bad, meta)


KERNELS = {"linear_cross_entropy": linear_cross_entropy}
