"""torch kernel of linear_cross_entropy: two custom operators that never hold the logits.

The arguments are checked by the portable preamble (``lossreg.chunked.prepare_call``: the
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

The chunked work runs inside two ``torch.library.custom_op`` operators,
``lossreg::linear_cross_entropy`` (the loss, and the forward-time gradients) and
``lossreg::linear_cross_entropy_backward`` (the recomputing backward), with fake (shape-only),
autograd and vmap registrations. torch.compile sees each as one opaque call, so the loop over
chunks, which depends on N, is never traced: under ``dynamic=True`` one graph serves every batch
size, and a compiled training step holds no N×V array. torch.func's ``grad``, ``vjp`` and
``functional_call`` use the same operators (through an ``autograd.Function`` with
``setup_context``: torch 2.13's ``register_autograd`` lacks one, which torch.func requires);
``vmap`` runs them once per problem of the batch. The operators' gradient formula is not
differentiable itself, so where more than a first derivative by reverse mode may be asked for, the
portable definition answers (holding the logits, as torch's composite ``F.linear_cross_entropy``
does there): the kernel declines calls under torch.func's forward mode (``jvp``, ``jacfwd``,
``hessian``), nested ``grad``, a ``grad`` beneath which eager autograd records (an outer
``backward()`` of the gradient it makes), and forward-mode dual tensors, and an eager
``backward(create_graph=True)`` (a gradient penalty, ``gradgradcheck``) recomputes the gradients by
differentiating the portable definition on the saved inputs, so that they can be differentiated again
(under ``torch.func.vmap`` the batched gradients cannot be recomputed so: lossreg's UnsupportedError).

When no gradient is wanted, only the loss is computed. Half-precision inputs are computed in
float32 on the CPU (each chunk of hidden states and the weight cast once per call); on CUDA the
matmuls run in the input dtype (tensor cores, float32 accumulation inside), their results are
read in float32, and the gradients are accumulated in float32. Inside ``torch.autocast`` the
inputs are cast as ``F.linear`` would take them there and the result is float32, as autocast's
cross-entropy (:func:`_as_autocast_casts`), the operators running with autocast off (eager and
compiled alike).
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable
from typing import Any

import torch
import torch.autograd.forward_ad as _forward_ad
from array_api_compat import array_namespace
from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters as _interpreters

from .. import losses as catalogue
from ..chunked import plan_chunks, prepare_call, reduce_tokens, smoothing_weights, token_weights, torch_arguments
from ..errors import UnsupportedError
from ..losses.fused import _through_logits
from . import LCE_TRITON_SWITCH, switched_on
from .torch_common import _autocasting, _dual

Tensor = torch.Tensor
_HALF = (torch.float16, torch.bfloat16)
# Logits per chunk when chunk_size is None: 2^23 (32 MiB in float32: 256 tokens at V=32000, 1/16
# of the logits at N=4096) on the CPU; 2^26 on CUDA: 512 tokens at V=128256, where on an H200
# (N=8192, D=4096, bfloat16, Triton rows) 256 tokens took 1.19 times torch's unfused time and 512
# took 0.96, each with 0.096 of the logits' size in extra memory (1024: 0.92, 0.16; README).
_PORTABLE = catalogue.linear_cross_entropy.spec.function  # type: ignore[attr-defined]
_GRAD, _JVP = torch._C._functorch.TransformType.Grad, torch._C._functorch.TransformType.Jvp
_FUNCTIONALIZE = torch._C._functorch.TransformType.Functionalize
CPU_CHUNK_ELEMENTS = 2**23
CUDA_CHUNK_ELEMENTS = 2**26


def _logits(h: Tensor, w: Tensor, b: Tensor | None, softcap: float | None) -> Tensor:
    """One block of soft-capped logits, float32 (or float64), a fresh array that may be overwritten."""
    z = torch.mm(h, w.t()) if b is None else torch.addmm(b, h, w.t())
    z = z.float() if z.dtype in _HALF else z
    if softcap is not None:
        z = z.div_(softcap).tanh_().mul_(softcap)
    return z


# The gradients an operator call makes (``needs``, a bit mask): those of the inputs that require
# one, so that a frozen head (LoRA) costs no V×D array and matmul, frozen states (a linear probe)
# no N×V×D matmul.
HIDDEN, WEIGHT, BIAS = 1, 2, 4
ALL = HIDDEN | WEIGHT | BIAS


def _chunk(h: Tensor, w: Tensor, b: Tensor | None, t: Tensor, act: Tensor, coef: Tensor | None, ls: float,
           zl: float, cap: float | None, vocab: int, lse: Tensor | None,
           acc: tuple[Tensor | None, Tensor | None, Tensor | None] | None,
           cw: Tensor | None = None, wy: Tensor | None = None) -> tuple[Tensor | None, Tensor]:
    """Losses and lse of one chunk; with ``acc = (d_hidden rows, d_weight, d_bias)`` adds the
    gradients (each None that is not wanted), ``coef`` being d result / d loss per token (the formulas of ``chunked.chunk_loss``);
    ``cw`` (V,) the class weights, if any, and ``wy`` (B,) the target's weight of each token.

    Each block of logits is one array, turned in place into exponentials and then into its
    gradient: without a soft cap no other chunk-sized array exists (with one, its derivative)."""
    v = w.shape[0]
    blocks = [(j, min(j + vocab, v)) for j in range(0, v, vocab)]
    one = len(blocks) == 1
    w_total = None if cw is None else cw.sum()  # W = Σ_c w_c
    if one and cw is None and h.is_cuda and h.dtype != torch.float64 and _triton_rows() is not None:
        z = torch.mm(h, w.t()) if b is None else torch.addmm(b, h, w.t())
        rows: tuple[Tensor, Tensor] = _triton_rows()(z, t, act, None if acc is None else coef, ls, zl, cap)
        if acc is not None:
            d_h, d_w, d_b = acc
            if d_h is not None:
                d_h.copy_(torch.mm(z, w))
            if d_w is not None and z.dtype == d_w.dtype:
                d_w.addmm_(z.t(), h)  # accumulated inside the matmul: no temporary of d_weight's size
            elif d_w is not None:
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
        # The smoothing's sum over the finite class weights, the infinite ones added at the end
        # (chunked.smoothing_weights: no inf - inf, no 0 · inf, torch's +inf).
        sw, beyond = (None, None) if cw is None or not ls else smoothing_weights(torch, cw)
        m: Any = None
        s: Any = None
        picked: Any = None
        zsum: Any = None
        anchor: Any = None
        for j, k in blocks:
            z = _logits(h, w[j:k], None if b is None else b[j:k], cap)
            inside = (tc >= j) & (tc < k)
            pick = torch.where(inside.squeeze(1), z.gather(1, (tc - j).clamp_(0, k - j - 1)).squeeze(1), 0.0)
            picked = pick if picked is None else picked + pick
            if one and acc is not None and cap is not None:
                deriv = _cap_derivative(z, cap)
            mj = z.amax(1)
            m_new = mj if m is None else torch.maximum(m, mj)  # -inf while every block so far is
            shift = torch.where(m_new == -torch.inf, 0.0, m_new)  # a row of -inf: no -inf - -inf
            z.sub_(shift.unsqueeze(1))
            if ls:
                # Σ_c w_c (z_c - a), a the first block's shift, for torch's Σ_c w_c (lse - z_c) =
                # W (lse - a) - Σ_c w_c (z_c - a): no overflow where Σ_c w_c z_c would (chunked._forward).
                anchor = shift if anchor is None else anchor
                zs = z.sum(1) if sw is None else torch.mv(z, sw[j:k])
                zs = zs + (shift - anchor) * ((k - j) if sw is None else sw[j:k].sum())
                zsum = zs if zsum is None else zsum + zs
            e = z.exp_()
            s = e.sum(1) if s is None else s * (m - shift).exp() + e.sum(1)  # not from a 0 for -inf: no underflow
            m = m_new
            if one:
                exp = e  # exp(z - m), kept for the gradient
            del z, e
        lse = shift + s.log()
        losses = (1.0 - ls) * (lse - picked) if wy is None else (1.0 - ls) * wy * (lse - picked)
        if ls:
            losses = losses + (ls * ((lse - anchor) - zsum / v) if sw is None
                               else (ls / v) * (sw.sum() * (lse - anchor) - zsum + beyond))
        if zl:
            losses = losses + zl * lse * lse
        losses = torch.where(act, losses, 0.0)
        if one and exp is not None:
            scale = (1.0 / s).unsqueeze(1)  # exp(z - m) / s = softmax
    if acc is None:
        return losses, lse
    assert coef is not None and lse is not None
    d_h, d_w, d_b = acc
    # The target's column is a p - coef ((1 - ε) w_y + (ε / V) w_y), its subtracted part formed as
    # ``a``'s terms are: with one class (p = 1, W = w_y: a constant loss) exactly 0, torch's
    # gradient, not a rounding residue that d_weight multiplies by the hidden states.
    if cw is None:
        base = (1.0 - ls) + (ls / v) * v
        a = (coef * (base + 2.0 * zl * lse)).unsqueeze(1)
        on_target = (coef * ((1.0 - ls) + (ls / v) * 1.0)).unsqueeze(1)
    else:  # no z-loss with class weights (refused by the preamble)
        assert wy is not None and w_total is not None
        # Without smoothing, no (ε / V) W term: 0 · inf, an infinite class weight's, is NaN for every token.
        a = (coef * ((1.0 - ls) * wy + (ls / v) * w_total) if ls else coef * wy).unsqueeze(1)
        on_target = (coef * ((1.0 - ls) * wy + (ls / v) * wy) if ls else coef * wy).unsqueeze(1)
    for j, k in blocks:
        if exp is not None:
            g = exp.mul_(a * scale)
            exp = None
        else:
            z = _logits(h, w[j:k], None if b is None else b[j:k], cap)
            deriv = None if cap is None else _cap_derivative(z, cap)
            g = z.sub_(lse.unsqueeze(1)).exp_().mul_(a)
            del z
        inside = (tc >= j) & (tc < k)
        col = (tc - j).clamp_(0, k - j - 1)
        picked = g.gather(1, col)  # the target's a p, before the smoothing's part is taken from every column
        if ls and cw is None:
            g.sub_((coef * (ls / v)).unsqueeze(1))
        elif ls and cw is not None:
            g.addr_(coef, cw[j:k], alpha=-ls / v)  # - (ε / V) coef_n w_c, in place
        g.scatter_(1, col, torch.where(inside, picked - on_target, g.gather(1, col)))
        if deriv is not None:
            g.mul_(deriv)
            deriv = None
        gw = g.to(w.dtype) if w.dtype in _HALF else g
        if d_h is None:
            pass  # frozen hidden states (a linear probe): no N×V×D matmul for them
        elif j == 0:
            d_h.copy_(torch.mm(gw, w[j:k]))
        elif gw.dtype == d_h.dtype:
            d_h.addmm_(gw, w[j:k])
        else:  # half-precision matmuls (CUDA), float32 sums
            d_h.add_(torch.mm(gw, w[j:k]))
        if d_w is None:
            pass  # a frozen head (LoRA, a tied embedding kept fixed): no V×D array, no matmul
        elif gw.dtype == d_w.dtype:
            d_w[j:k].addmm_(gw.t(), h)  # accumulated inside the matmul: no temporary of d_weight's size
        else:
            d_w[j:k].add_(torch.mm(gw.t(), h))
        if d_b is not None:
            d_b[j:k].add_(g.sum(0))
        del g, gw
    return losses, lse


def _triton_rows() -> Any:
    """triton_lce.rows when Triton imports, unless LOSSREG_LCE_TRITON=0; else None (looked up once)."""
    if not _TRITON:
        if switched_on(LCE_TRITON_SWITCH) and importlib.util.find_spec("triton") is not None:
            from .triton_lce import rows

            _TRITON.append(rows)
        else:
            _TRITON.append(None)
    return _TRITON[0]


_TRITON: list[Any] = []


def _cap_derivative(z: Tensor, cap: float) -> Tensor:
    """d softcap·tanh(u/softcap) / du = 1 - (z/softcap)², from the capped logits z."""
    return (z / cap).square_().neg_().add_(1.0)


# --- the chunked computation, on real tensors ---------------------------------------------------------


def _work(h: Tensor, w: Tensor, b: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
    """The (hidden, weight, bias) to compute with: float32 copies of half inputs on the CPU."""
    if _in_place_dtype(h, w, b):
        return h, w, b
    work = torch.float64 if torch.float64 in (h.dtype, w.dtype, None if b is None else b.dtype) else torch.float32
    return h.to(work), w.to(work), None if b is None else b.to(work)


def _in_place_dtype(h: Tensor, w: Tensor, b: Tensor | None) -> bool:
    """Half precision on CUDA, one dtype: the matmuls run in it (tensor cores)."""
    return h.is_cuda and h.dtype in _HALF and w.dtype == h.dtype and (b is None or b.dtype == h.dtype)


def _promoted(a: torch.dtype, b: torch.dtype) -> torch.dtype:
    """``torch.promote_types``, which refuses a float8 dtype beside another floating one ("Promotion
    for Float8 Types is not supported"): those promote as the portable definition promotes them
    (toolkit.result_type), to the wider, and to float32 below 32 bits."""
    if a != b and a.is_floating_point and b.is_floating_point and 1 in (a.itemsize, b.itemsize):
        wider = max(a, b, key=lambda d: d.itemsize)
        return wider if wider.itemsize >= 4 else torch.float32
    return torch.promote_types(a, b)


def _dtypes(h: Tensor, w: Tensor, b: Tensor | None,
            out_dtype: torch.dtype | None = None) -> tuple[torch.dtype, torch.dtype, torch.dtype]:
    """(accumulation, d_weight accumulation, result) dtypes: float64 if any input is, else float32;
    half-precision d_weight on CUDA is summed in its dtype inside each addmm (float32 within a
    matmul, rounded between chunks, as Liger-Kernel does): a float32 copy would be V×D×4 bytes, as
    large as the logits at N=8192, D=4096. The result: ``out_dtype``, else the inputs' promoted."""
    acc = torch.float64 if torch.float64 in (h.dtype, w.dtype, None if b is None else b.dtype) else torch.float32
    out = _promoted(h.dtype, w.dtype) if b is None else _promoted(_promoted(h.dtype, w.dtype), b.dtype)
    out = out if out_dtype is None else out_dtype
    return acc, (w.dtype if _in_place_dtype(h, w, b) else acc), out


def _plan(n: int, v: int, tokens: int, vocab: int, cuda: bool) -> tuple[int, int]:
    """(tokens, vocabulary entries) per chunk, from the op's ``tokens``/``vocab`` (0: automatic).

    Planned here, on the concrete shapes, so that a compiled graph does not depend on them. One
    chunk-sized array at a time here (the portable code holds several), so larger automatic
    chunks: each chunk reads the whole weight again, and on a CPU 256 tokens at V=32000 beat
    torch's unfused time where 64 took 1.7 times as long (benchmarks/bench_lce.py, README)."""
    if tokens == 0:
        return tuple(plan_chunks(n, v, None, budget=CUDA_CHUNK_ELEMENTS if cuda else CPU_CHUNK_ELEMENTS))  # type: ignore[return-value]
    return tuple(plan_chunks(n, v, tokens if vocab == 0 else (tokens, vocab)))  # type: ignore[return-value]


def _sweep(h: Tensor, w: Tensor, b: Tensor | None, t: Tensor, act: Tensor, opts: tuple[int, int, float, float, float | None],
           coef: Tensor | None, lse: Tensor | None = None, cw: Tensor | None = None,
           wy: Tensor | None = None, needs: int = ALL
           ) -> tuple[Tensor, Tensor, tuple[Tensor | None, Tensor | None, Tensor | None] | None]:
    """Every chunk of tokens: per-token losses and lse (N,), and the gradients when ``coef`` is given
    (from the saved ``lse`` when given, recomputing the logits: the Cut Cross-Entropy backward),
    those ``needs`` names (:data:`HIDDEN` | :data:`WEIGHT` | :data:`BIAS`; the others None);
    ``cw`` (V,) class weights and ``wy`` (N,) each token's ``cw[target]``, or both None."""
    tokens, vocab, ls, zl, cap = opts
    acc, w_acc, _ = _dtypes(h, w, b)
    h, w, b = _work(h, w, b)
    if cw is not None and wy is not None:  # in the dtype the logits are read in (float32 for half on CUDA)
        cw, wy = cw.to(acc), wy.to(acc)
    n, d = h.shape
    step, vocab = _plan(n, w.shape[0], tokens, vocab, h.is_cuda)
    losses = torch.zeros(n, dtype=acc, device=h.device)
    lse_out = torch.empty(n, dtype=acc, device=h.device)
    full = None
    if coef is not None:
        full = (torch.empty(n, d, dtype=acc, device=h.device) if needs & HIDDEN else None,
                torch.zeros(w.shape, dtype=w_acc, device=h.device) if needs & WEIGHT else None,
                torch.zeros(b.shape, dtype=acc, device=h.device) if b is not None and needs & BIAS else None)
    reuse = lse is not None and vocab < w.shape[0]  # one block: the logits are made once anyway
    for i in range(0, n, step):
        sl = slice(i, i + step)
        li, si = _chunk(h[sl], w, b, t[sl], act[sl], None if coef is None else coef[sl], ls, zl, cap, vocab,
                        lse[sl] if lse is not None and reuse else None,
                        None if full is None else (None if full[0] is None else full[0][sl], full[1], full[2]), cw,
                        None if wy is None else wy[sl])
        if li is not None:
            losses[sl] = li
        lse_out[sl] = si
    return losses, lse_out, full


def _base_coef(act: Tensor, reduction: str, dtype: torch.dtype, wy: Tensor | None) -> Tensor:
    """d result / d loss_n: 1 for active tokens ("sum", "none"), 1/count ("mean"; count: Σ w[y]
    with class weights), else 0."""
    return token_weights(array_namespace(act), act, reduction, dtype, wy)


def _reduce(losses: Tensor, act: Tensor, bad: Tensor | None, reduction: str, dtype: torch.dtype,
            wy: Tensor | None) -> Tensor:
    return reduce_tokens(array_namespace(losses), losses, act, bad, reduction, tuple(losses.shape), dtype, losses.dtype,
                         wy)


# --- the operators: one opaque call each for torch.compile ---------------------------------------------
#
# Dynamo and AOTAutograd see ``lossreg::linear_cross_entropy`` (forward, with the forward-time
# gradients when asked) and ``lossreg::linear_cross_entropy_backward`` (the recomputing backward)
# as single nodes of known output shapes (the fake implementations), so the chunk loop, which
# depends on N, is never traced: one graph serves every batch size, and no N×V array appears in it.
# Their arguments are what the computation needs (the portable preamble's flattened, checked
# tensors) and hashable constants; ``tokens``/``vocab`` 0 means "plan from the shapes".

_Outputs = tuple[Tensor, Tensor, Tensor, Tensor, Tensor]
_INPUTS = 17  # of the forward operator: autograd's formula returns a gradient (or None) for each


@torch.library.custom_op("lossreg::linear_cross_entropy", mutates_args=())
def _forward_op(h: Tensor, w: Tensor, b: Tensor | None, t: Tensor, act: Tensor, bad: Tensor | None,
                cw: Tensor | None, wy: Tensor | None, reduction: str, tokens: int, vocab: int, ls: float, zl: float,
                cap: float | None, early: bool, needs: int, out_dtype: torch.dtype | None) -> _Outputs:
    """``(result, lse (N,), d_hidden, d_weight, d_bias)``: the gradients of the "mean"/"sum" result
    when ``early`` (Liger-style, made in the forward pass), those ``needs`` names; else (and
    without a bias) empty.
    ``cw``/``wy``: the class weights and each token's weight of its target (not differentiated,
    as torch's), or None. ``out_dtype``: the result's dtype when not the inputs' (float32 under
    torch.autocast, whose cross-entropy returns it)."""
    acc, _, out = _dtypes(h, w, b, out_dtype)
    coef = _base_coef(act, reduction, acc, wy) if early else None
    losses, lse, full = _sweep(h, w, b, t, act, (tokens, vocab, ls, zl, cap), coef, None, cw, wy, needs)
    result = _reduce(losses, act, bad, reduction, out, wy)
    if full is None:
        return result, lse, *(h.new_empty(0, dtype=acc) for _ in range(3))  # type: ignore[return-value]
    return (result, lse, *(h.new_empty(0, dtype=acc) if x is None else x for x in full))  # type: ignore[return-value]


@_forward_op.register_fake
def _forward_fake(h: Tensor, w: Tensor, b: Tensor | None, t: Tensor, act: Tensor, bad: Tensor | None,
                  cw: Tensor | None, wy: Tensor | None, reduction: str, tokens: int, vocab: int, ls: float, zl: float,
                  cap: float | None, early: bool, needs: int, out_dtype: torch.dtype | None) -> _Outputs:
    acc, w_acc, out = _dtypes(h, w, b, out_dtype)
    n = h.shape[0]
    result = h.new_empty((n,) if reduction == "none" else (), dtype=out)
    lse = h.new_empty((n,), dtype=acc)
    if not early:
        return result, lse, h.new_empty(0, dtype=acc), h.new_empty(0, dtype=acc), h.new_empty(0, dtype=acc)
    return (result, lse, h.new_empty(h.shape if needs & HIDDEN else 0, dtype=acc),
            w.new_empty(w.shape if needs & WEIGHT else 0, dtype=w_acc),
            h.new_empty(b.shape[0] if b is not None and needs & BIAS else 0, dtype=acc))


@torch.library.custom_op("lossreg::linear_cross_entropy_backward", mutates_args=())
def _backward_op(h: Tensor, w: Tensor, b: Tensor | None, t: Tensor, act: Tensor, cw: Tensor | None,
                 wy: Tensor | None, coef: Tensor, lse: Tensor, tokens: int, vocab: int, ls: float, zl: float,
                 cap: float | None, needs: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(d_hidden, d_weight, d_bias)`` of ``Σ coef_n ℓ_n`` in the inputs' dtypes (empty where
    ``needs`` does not name them, or without a bias), each chunk's logits made again from the
    saved log-sum-exp (Cut Cross-Entropy)."""
    _, _, full = _sweep(h, w, b, t, act, (tokens, vocab, ls, zl, cap), coef, lse, cw, wy, needs)
    assert full is not None
    return tuple(h.new_empty(0) if x is None else x.to(y.dtype)  # type: ignore[return-value]
                 for x, y in zip(full, (h, w, h if b is None else b)))


@_backward_op.register_fake
def _backward_fake(h: Tensor, w: Tensor, b: Tensor | None, t: Tensor, act: Tensor, cw: Tensor | None,
                   wy: Tensor | None, coef: Tensor, lse: Tensor, tokens: int, vocab: int, ls: float, zl: float,
                   cap: float | None, needs: int) -> tuple[Tensor, Tensor, Tensor]:
    return (h.new_empty(h.shape if needs & HIDDEN else 0), w.new_empty(w.shape if needs & WEIGHT else 0),
            h.new_empty(0) if b is None or not needs & BIAS else b.new_empty(b.shape))


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: _Outputs) -> None:
    h, w, b, t, act, bad, cw, wy, reduction, *opts, early, needs, _ = inputs
    _, lse, d_h, d_w, d_b = output
    ctx.mark_non_differentiable(lse, d_h, d_w, d_b)
    ctx.set_materialize_grads(False)  # else autograd passes zeros of d_weight's size for the extra outputs
    ctx.early, ctx.reduction, ctx.opts, ctx.needs = early, reduction, tuple(opts), needs
    # Eager autograd tracks the inputs: a backward pass with grad mode on is create_graph=True (_recomputed).
    ctx.tracked = not torch._C._are_functorch_transforms_active() and \
        any(x is not None and x.requires_grad for x in (h, w, b))
    # Under torch.func.vmap alone, eager autograd records beneath when an input requires grad (grad mode is
    # off here, but this runs only where it was on), and may ask for a graph of the gradient
    # (create_graph=True), which the batched backward cannot recompute (see _backward). Under a grad
    # transform, a call eager autograd records beneath was declined (_beyond_reverse).
    ctx.beneath = (torch._C._are_functorch_transforms_active() and all(i.key() != _GRAD for i in _interpreters())
                   and any(x is not None and _base(x).requires_grad for x in (h, w, b)))
    ctx.dtypes = (h.dtype, w.dtype, None if b is None else b.dtype)
    ctx.early_grads = None
    ctx.held = early and _plain(d_h, d_w)
    if ctx.held:
        # Eager: the first backward pass scales these in place (_backward), so they are held
        # here, outside autograd's saved tensors (whose version check would refuse a second
        # pass); a second pass (retain_graph=True) recomputes them from the saved inputs.
        ctx.early_grads = (d_h, d_w, d_b)
        ctx.save_for_backward(h, w, b, t, act, bad, cw, wy, lse)
    elif early:
        ctx.save_for_backward(d_h, d_w, d_b, bad)
    else:
        ctx.save_for_backward(h, w, b, t, act, bad, cw, wy, lse)


def _backward(ctx: Any, grad: Tensor | None, *unused: Any) -> tuple[Tensor | None, ...]:
    """Gradients of hidden, weight and bias (the other inputs: None)."""
    saved, needs = ctx.saved_tensors, ctx.needs
    if grad is None:  # the result was not used
        return (None,) * _INPUTS
    if ctx.tracked and torch.is_grad_enabled() and _plain(grad, *(x for x in saved if x is not None)):
        return _recomputed(ctx, grad, saved)  # eager backward(create_graph=True)
    if ctx.beneath and torch.is_grad_enabled():
        # Eager backward(create_graph=True) of a call under vmap: the gradients below would be
        # constants to autograd (an unused input, or a second derivative of zero with allow_unused).
        raise UnsupportedError("linear_cross_entropy: under torch.func.vmap the torch kernel's gradient is not "
                               "differentiable again (backward(create_graph=True)); call the loss outside vmap, "
                               "or lossreg.use_kernels(False) differentiates it to any order")
    _refuse_second_order(grad, *saved)
    # torch's legacy vmap (``jacobian(vectorize=True)``, ``autograd.grad(is_grads_batched=True)``)
    # batches ``grad`` inside a plain Tensor: scaled out of place, and not detached below (legacy
    # vmap has no rule for detach; its fallback runs the backward operator once per cotangent).
    legacy = torch._C._functorch.is_legacy_batchedtensor(grad)
    if legacy and ctx.early_grads is not None:
        (d_h, d_w, d_b), bad = ctx.early_grads, saved[5]
        d_h, d_w, d_b = d_h * grad, d_w * grad, d_b * grad
    elif ctx.early_grads is not None and _plain(grad):
        # Eager, the first pass: scaled in place, as a copy would hold the gradients twice
        # (d_weight is V×D), and let go of; a second pass recomputes them (below).
        (d_h, d_w, d_b), bad, ctx.early_grads = ctx.early_grads, saved[5], None
        d_h, d_w, d_b = d_h.mul_(grad), d_w.mul_(grad), d_b.mul_(grad)
    elif ctx.early and not ctx.held:
        # Traced (compiled: Inductor may reuse the buffers) or under torch.func (grad may be batched).
        d_h, d_w, d_b, bad = saved
        d_h, d_w, d_b = d_h * grad, d_w * grad, d_b * grad
    else:
        h, w, b, t, act, bad, cw, wy, lse = saved
        g = grad.reshape(-1) if ctx.reduction == "none" else grad
        coef = _base_coef(act, ctx.reduction, lse.dtype, wy) * g.to(lse.dtype)
        if not torch._C._are_functorch_transforms_active():  # only those autograd asks for now (traced: ALL)
            needs &= sum(bit for bit, asked in zip((HIDDEN, WEIGHT, BIAS), ctx.needs_input_grad) if asked)
        # Detached: torch.func's grad levels would otherwise ask the operator for a formula of its own.
        d_h, d_w, d_b = torch.ops.lossreg.linear_cross_entropy_backward(
            *(None if x is None else x if legacy else x.detach() for x in (h, w, b, t, act, cw, wy, coef, lse)),
            *ctx.opts, needs)
    # Each gradient not asked for (or of no bias) came as an empty tensor: None to autograd.
    d_h, d_w, d_b = (x.to(dtype) if dtype is not None and needs & bit else None
                     for x, dtype, bit in zip((d_h, d_w, d_b), ctx.dtypes, (HIDDEN, WEIGHT, BIAS)))
    if bad is not None and d_h is not None:  # invalid targets were poisoned in the value: so are the gradients
        d_h = torch.where(bad.unsqueeze(1), torch.nan, d_h)
    return (d_h, d_w, d_b) + (None,) * (_INPUTS - 3)


def _recomputed(ctx: Any, grad: Tensor, saved: tuple[Any, ...]) -> tuple[Tensor | None, ...]:
    """The gradients of an eager ``backward(create_graph=True)``, as autograd's of the portable
    definition at the saved inputs (the ignored tokens given the target -1, ignored), so that
    autograd can differentiate them again. It holds the logits, as torch's own does there."""
    h, w, b, t, act, bad, cw, *_ = saved
    ctx.early_grads = None
    _, _, ls, z, cap = ctx.opts
    asked = [x if x is not None and wanted else None for x, wanted in zip((h, w, b), ctx.needs_input_grad)]
    value = _PORTABLE(h, w, torch.where(act, t, -1), linear_bias=b, weight=cw, reduction=ctx.reduction,
                      ignore_index=-1, label_smoothing=ls, z_loss=z, softcap=cap)
    cotangent = grad.reshape(value.shape).to(value.dtype)
    found = iter(torch.autograd.grad(value, [x for x in asked if x is not None], cotangent, create_graph=True,
                                     allow_unused=True))
    grads = [None if x is None else next(found) for x in asked]
    if bad is not None and grads[0] is not None:
        grads[0] = torch.where(bad.unsqueeze(1), torch.nan, grads[0])
    return (*grads, *(None,) * (_INPUTS - 3))


def _refuse_second_order(*tensors: Tensor | None) -> None:
    """Under torch.func the formula is not differentiable itself (the gradients are made by the
    operators, outside autograd): the call declines nested ``grad`` (:func:`_beyond_reverse`), and
    should one reach here, differentiating again would silently give zero, so it raises instead."""
    if torch._C._are_functorch_transforms_active() and any(_grad_layers(x) > 1 for x in tensors if x is not None):
        raise UnsupportedError("linear_cross_entropy: the torch kernel's operators give first derivatives only, "
                               "and this nested torch.func transform did not reach the portable definition; "
                               "lossreg.use_kernels(False) differentiates it to any order")


def _beyond_reverse(*tensors: Any) -> bool:
    """Whether more than a first derivative by reverse mode may be asked of this call (eager):
    torch.func's forward mode (``jvp``, ``jacfwd``, ``hessian``) or nested ``grad`` is around it,
    eager autograd records beneath a ``grad`` around it (:func:`_eager_autograd_beneath`), or one
    of ``tensors`` is a forward-mode dual tensor. The kernel declines those calls, and
    those under ``torch.func.functionalize`` too: it has no rule for the ``autograd.Function``
    that carries the operators under torch.func (torch's "NYI: Functionalize rule for
    custom_function_call", where F.linear_cross_entropy functionalizes)."""
    if torch.compiler.is_compiling():
        return False
    if torch._C._are_functorch_transforms_active():
        interpreters = _interpreters()
        kinds = [i.key() for i in interpreters]
        if _JVP in kinds or _FUNCTIONALIZE in kinds or kinds.count(_GRAD) > 1:
            return True
        if _GRAD in kinds and _eager_autograd_beneath(interpreters, tensors):
            return True
    return any(isinstance(x, Tensor) and _dual(x) for x in tensors)


def _eager_autograd_beneath(interpreters: Any, tensors: tuple[Any, ...]) -> bool:
    """Whether eager autograd records beneath torch.func's ``grad`` (or ``vjp``) around this call: it was
    on outside the transform, and a tensor of the call requires grad beneath torch.func's wrappers (one
    the function closes over, or the transformed input made from one). The gradient torch.func computes
    is then itself differentiated by eager autograd (a MAML inner step by ``torch.func.grad`` and an
    outer ``backward()``), which the operators' formula, made outside autograd, cannot serve: the outer
    gradient was disconnected (torch's "element 0 of tensors does not require grad"), or silently
    lacked this loss's part where other terms reached the outer inputs."""
    grads = [i for i in interpreters if i.key() == _GRAD]
    # Grad mode as eager autograd has it: on entering the outermost grad transform (vmap keeps it).
    eager = min(grads, key=lambda i: i.level()).prev_grad_mode() if grads else torch.is_grad_enabled()
    return bool(eager) and any(isinstance(x, Tensor) and _base(x).requires_grad for x in tensors)


def _base(x: Tensor) -> Tensor:
    """``x`` beneath torch.func's wrappers: the tensor eager autograd sees."""
    f = torch._C._functorch
    while f.is_functorch_wrapped_tensor(x):
        x = f.get_unwrapped(x)
    return x


def _grad_layers(x: Tensor) -> int:
    """How many torch.func grad transforms track ``x`` (vmap's batching layers not counted)."""
    f = torch._C._functorch
    layers = 0
    while f.is_functorch_wrapped_tensor(x):
        layers += f.is_gradtrackingtensor(x)
        x = f.get_unwrapped(x)
    return layers


def _plain(*tensors: Tensor) -> bool:
    """Real eager tensors: not fake, functional or batched (torch.compile, torch.func)."""
    return not torch._C._are_functorch_transforms_active() and all(type(x) is Tensor for x in tensors)


_forward_op.register_autograd(_backward, setup_context=_setup_context)


class _UnderTransforms(torch.autograd.Function):
    """The forward operator with the same autograd formula, for torch.func's transforms.

    torch 2.13's ``register_autograd`` wraps the formula in an ``autograd.Function`` without a
    ``setup_context``, which torch.func refuses (pytorch/pytorch#168393, #170834). This class has
    one, and its vmap rule is generated from the operators' own (:func:`_one_at_a_time`)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(*args: Any) -> Any:
        return torch.ops.lossreg.linear_cross_entropy(*args)

    setup_context = staticmethod(_setup_context)
    backward = staticmethod(_backward)

    @staticmethod
    def jvp(ctx: Any, *tangents: Any) -> Any:
        # Forward mode has no formula here, and the call declines it (_beyond_reverse): should a
        # tangent reach here anyway, lossreg's error, not torch's "you must implement the jvp function".
        raise UnsupportedError("linear_cross_entropy: the torch kernel's operators give first derivatives by "
                               "reverse mode only, and this forward-mode call did not reach the portable "
                               "definition; lossreg.use_kernels(False) differentiates it in every mode")


def _one_at_a_time(op: Any) -> Callable[..., Any]:
    """A vmap rule that runs ``op`` on each problem of the batch in turn and stacks the results:
    each problem is still chunked (no N×V array), at the cost of one call per problem."""

    def rule(info: Any, in_dims: tuple[Any, ...], *args: Any) -> tuple[tuple[Tensor, ...], tuple[int, ...]]:
        outs = [op(*(a if d is None else a.select(d, i) for a, d in zip(args, in_dims)))
                for i in range(info.batch_size)]
        stacked = tuple(torch.stack(parts) for parts in zip(*outs))
        return stacked, (0,) * len(stacked)

    return rule


torch.library.register_vmap("lossreg::linear_cross_entropy", _one_at_a_time(torch.ops.lossreg.linear_cross_entropy))
torch.library.register_vmap("lossreg::linear_cross_entropy_backward",
                            _one_at_a_time(torch.ops.lossreg.linear_cross_entropy_backward))


_INT64_MAX = 2**63 - 1


def _chunk_args(chunk_size: Any) -> tuple[int, int]:
    """chunk_size (None, tokens, or a pair; checked by the preamble) as the operators' two ints.

    A size past int64's range, which the operators' int arguments cannot hold (torch raised its
    "Expected a value of type 'int'" where the portable definition computes), is int64's largest:
    the same one chunk, as any size beyond the tokens or the vocabulary."""
    if chunk_size is None:
        return 0, 0
    if isinstance(chunk_size, int):
        return min(chunk_size, _INT64_MAX), 0
    return min(int(chunk_size[0]), _INT64_MAX), min(int(chunk_size[1]), _INT64_MAX)


def linear_cross_entropy(input: Any, linear_weight: Any, target: Any, /, *, linear_bias: Any = None,
                         weight: Any = None, reduction: str = "mean", ignore_index: int | None = None,
                         label_smoothing: float = 0.0, options: Any = None, z_loss: float = 0.0,
                         softcap: float | None = None, chunk_size: Any = None, bias: Any = None,
                         recompute: bool = False) -> Any:
    """The kernel: the portable checks, then the ``lossreg::linear_cross_entropy`` operator
    (``recompute``: the Cut Cross-Entropy split for "mean" and "sum" too, for the benchmark).
    Calls that go through the logits (probability targets, K-dimensional weights) are handed back
    to the portable definition, as are trainable class weights: the operator holds them constant
    (torch refuses them), where the portable definition differentiates them."""
    # (While torch.jit.trace or torch.export records, whatever the grad mode: the graph cannot ask,
    # the run that trains the weights may come later, and check_trace retraces under no_grad.)
    if isinstance(weight, torch.Tensor) and weight.requires_grad and (
            torch.is_grad_enabled() or torch.jit.is_tracing() or torch.compiler.is_exporting()):
        return NotImplemented
    if _beyond_reverse(input, linear_weight, linear_bias, bias, weight):
        return NotImplemented
    if (torch.jit.is_tracing() or torch.compiler.is_exporting()) and torch.onnx.is_in_onnx_export():
        # ONNX has no lossreg operator (both exporters refused it): the logits, then cross_entropy, as
        # torch.nn's LinearCrossEntropyLoss exports; not the portable chunk loop, whose Python range over
        # the tokens fixed the batch size of the model. The z-loss is the chunked form's only. (Read
        # only while tracing or exporting, which every ONNX export is: it costs an import lookup.)
        if z_loss:
            return NotImplemented
        return _through_logits(input, linear_weight, target, torch_arguments(
            "linear_cross_entropy", linear_bias, bias, ignore_index, options, chunk_size), weight, ignore_index,
            reduction, label_smoothing, z_loss, softcap)
    inp = prepare_call("linear_cross_entropy", input, linear_weight, target, linear_bias=linear_bias, bias=bias,
                       weight=weight, ignore_index=ignore_index, options=options, chunk_size=chunk_size,
                       reduction=reduction, label_smoothing=label_smoothing, z_loss=z_loss, softcap=softcap,
                       poison=torch.compiler.is_compiling())
    if inp is None:
        return NotImplemented
    device = inp.hidden.device.type
    autocast = _autocasting(device)
    hidden, lw, lb, out_dtype = _as_autocast_casts(inp.hidden, inp.weight, inp.bias) if autocast else \
        (inp.hidden, inp.weight, inp.bias, None)
    needs = sum(bit for bit, x in ((HIDDEN, hidden), (WEIGHT, lw), (BIAS, lb))
                if x is not None and x.requires_grad) if torch.is_grad_enabled() else 0
    if torch._C._are_functorch_transforms_active():
        needs = needs and ALL  # which level asks for which gradient is torch.func's business: all of them
    grads = needs != 0
    if torch.jit.is_tracing() or torch.compiler.is_exporting():
        # A traced program keeps these arguments, but which inputs require grad is known only when
        # it runs (hidden states passed in, a head unfrozen after export): the forward pass makes
        # no gradient, and the backward pass makes those autograd asks for then.
        needs, grads = ALL, False
    cw, wy = (None, None) if inp.class_weight is None else (inp.class_weight.detach(), inp.counts.detach())
    if grads and not torch.compiler.is_compiling():
        # A bias or class weights made under torch.inference_mode: autograd cannot save them for the
        # backward pass, where torch's F.linear saves no bias. Copies, normal tensors, as the other
        # torch kernels take such weights (a copy of the hidden states or the layer would be large:
        # those raise torch's "Inference tensors cannot be saved for backward", as torch's do).
        lb, cw = (x.clone() if x is not None and x.is_inference() else x for x in (lb, cw))
    # The preamble's targets are int32 or int64 (toolkit.holding casts narrower labels), as the
    # chunks' gather by target - offset needs.
    args = (hidden, lw, lb, inp.target, inp.active, inp.bad, cw, wy, reduction,
            *_chunk_args(inp.chunk_size),
            float(label_smoothing), float(z_loss), None if softcap is None else float(softcap),
            grads and not recompute and reduction != "none", needs, out_dtype)
    # Autocast off inside: the operators' matmuls would follow it in eager code only (a compiled
    # graph runs its custom operators with autocast off), and the backward pass runs outside it.
    with torch.autocast(hidden.device.type, enabled=False) if autocast else contextlib.nullcontext():
        # Also inside torch.autograd.forward_ad's dual levels (a private counter, read defensively):
        # the operator alone would drop the tangents of inputs that do not require grad (an answer
        # of zero), where this raises.
        if torch._C._are_functorch_transforms_active() or getattr(_forward_ad, "_current_level", -1) >= 0:
            result = _UnderTransforms.apply(*args)[0]
        else:
            result = torch.ops.lossreg.linear_cross_entropy(*args)[0]
    return result.reshape(inp.shape) if reduction == "none" else result


def _as_autocast_casts(h: Tensor, w: Tensor, b: Tensor | None
                       ) -> tuple[Tensor, Tensor, Tensor | None, torch.dtype | None]:
    """(hidden, weight, bias, result dtype) as ``torch.autocast`` (enabled) would hand them to
    ``F.linear`` and take ``cross_entropy``'s result: the floating inputs but float64 cast to its
    lower precision (differentiably, as autocast casts) and a float32 result (None with a float64
    input: the inputs' dtype)."""
    low = torch.get_autocast_dtype(h.device.type)

    def cast(x: Tensor | None) -> Tensor | None:
        return x if x is None or x.dtype == torch.float64 else x.to(low)

    h2, w2, b2 = cast(h), cast(w), cast(b)
    assert h2 is not None and w2 is not None
    wide = torch.float64 in (h2.dtype, w2.dtype, None if b2 is None else b2.dtype)
    return h2, w2, b2, None if wide else torch.float32


KERNELS = {"linear_cross_entropy": linear_cross_entropy}
