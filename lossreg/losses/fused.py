"""Fused losses: a linear layer and the loss of its output, computed without that output.

A language model's last layer maps N hidden states of width D to V vocabulary scores, and the
(N, V) logits (with their gradient) are the largest arrays of training at large V: 2.1 GB each
at N=8192, V=128256 in bfloat16. :func:`linear_cross_entropy` computes
``cross_entropy(hidden @ weight.T + bias, target)`` in chunks of tokens (and of vocabulary where
one chunk of tokens over the whole vocabulary would not fit the budget), with an online
log-sum-exp, so that no N×V array exists. The same chunks give the gradients of ``hidden``,
``weight`` and ``bias`` without the logits (:func:`linear_cross_entropy_value_and_grad`), which
the torch and JAX kernels wrap in ``torch.autograd.Function`` and ``jax.custom_vjp``.

Ideas from Liger-Kernel's fused linear cross-entropy (gradients during the forward pass) and
Apple's Cut Cross-Entropy (Wijmans et al. 2024, arXiv:2411.09009: logits recomputed blockwise
in the backward pass from the saved log-sum-exp); the code is lossreg's own.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import array_api_extra as xpx
from array_api_compat import device

from .. import toolkit
from ..errors import LossTypeError, LossValueError
from ..registry import define_loss

# Logits per chunk when chunk_size is None: 2^22 (16 MiB in float32). The torch kernel holds one
# such array at a time, the portable code and XLA two to four; on the reference size (N=4096,
# V=32000: 128 tokens per chunk) that keeps the extra memory at 1/32 to 1/8 of the logits. Larger
# chunks are faster on CPUs (each chunk reads the whole weight again): see the README's table.
CHUNK_ELEMENTS = 2**22
# Fewest tokens per chunk before the vocabulary is split too: below this a matmul is mostly
# overhead, and splitting the vocabulary costs one more pass (the online log-sum-exp first).
MIN_TOKENS = 16


class Chunks(NamedTuple):
    """How the work is cut: ``tokens`` rows per chunk, ``vocab`` columns per block."""

    tokens: int
    vocab: int


def plan_chunks(n: int, v: int, chunk_size: Any = None) -> Chunks:
    """The chunking of an (n, v) problem: ``chunk_size`` is None (automatic), a number of tokens
    per chunk (the whole vocabulary at once), or a pair (tokens, vocabulary entries)."""
    if chunk_size is None:
        tokens = CHUNK_ELEMENTS // max(v, 1)
        if tokens >= MIN_TOKENS:
            return Chunks(max(1, min(n, tokens // MIN_TOKENS * MIN_TOKENS)), max(v, 1))
        return Chunks(max(1, min(n, MIN_TOKENS)), max(1, CHUNK_ELEMENTS // MIN_TOKENS))
    if isinstance(chunk_size, int):
        return Chunks(max(1, min(n, chunk_size)), max(v, 1))
    tokens, vocab = chunk_size
    return Chunks(max(1, min(n, tokens)), max(1, min(v, vocab)))


class Inputs(NamedTuple):
    """The checked inputs, flattened: hidden (N, D), target (N,) clamped into [0, V)."""

    xp: Any
    hidden: Any
    weight: Any
    bias: Any
    target: Any
    active: Any  # bool (N,): counts towards the loss
    bad: Any  # bool (N,) of invalid targets on lazy arrays (poisoned to NaN), else None
    dtype: Any  # of the result
    work: Any  # to compute in (float32 for half precision)
    shape: tuple[int, ...]  # of the per-token losses ("none")
    chunks: Chunks


def _check_chunk_size(name: str, chunk_size: Any) -> None:
    def positive(k: Any) -> bool:
        return isinstance(k, int) and not isinstance(k, bool) and k >= 1

    ok = chunk_size is None or positive(chunk_size) or (
        isinstance(chunk_size, (tuple, list)) and len(chunk_size) == 2 and all(map(positive, chunk_size)))
    if not ok:
        raise LossValueError(name, "chunk_size", "None, a positive number of tokens, or a pair (tokens, "
                             "vocabulary entries) of positive integers", repr(chunk_size))


def prepare_inputs(name: str, hidden: Any, weight: Any, target: Any, bias: Any, ignore_index: Any, reduction: str,
            label_smoothing: Any, z_loss: Any, softcap: Any, chunk_size: Any, *, poison: bool = False) -> Inputs:
    """The checked, flattened inputs. ``poison``: flag invalid targets (NaN results) without reading
    them, for callers being traced (a torch kernel under torch.compile)."""
    xp = toolkit.namespace(name, optional=("bias",), hidden=hidden, weight=weight, target=target, bias=bias)
    toolkit.check_floating(name, "hidden", hidden, xp)
    toolkit.check_floating(name, "weight", weight, xp)
    toolkit.check_reduction(name, reduction)
    toolkit.check_number(name, "ignore_index", ignore_index, integer=True)
    toolkit.check_number(name, "label_smoothing", label_smoothing, 0.0, 1.0)
    toolkit.check_number(name, "z_loss", z_loss, 0.0)
    if softcap is not None:
        toolkit.check_number(name, "softcap", softcap, 0.0)
        if softcap == 0:
            raise LossValueError(name, "softcap", "None or a positive number", repr(softcap))
    _check_chunk_size(name, chunk_size)
    if hidden.ndim == 0:
        raise LossValueError(name, "hidden", "hidden states of shape (D) or (N, ..., D)", "a 0-d array")
    d = hidden.shape[-1]
    if weight.ndim != 2 or weight.shape[1] != d or weight.shape[0] == 0:
        raise LossValueError(name, "weight", f"a (V, {d}) matrix (torch.nn.Linear's weight) with V ≥ 1 for hidden "
                             f"states of width {d}", f"shape {tuple(weight.shape)}")
    v = weight.shape[0]
    dtype = xp.result_type(hidden, weight)
    if bias is not None:
        toolkit.check_floating(name, "bias", bias, xp)
        toolkit.check_shape(name, "bias", bias, (v,), f"a vector of one bias per vocabulary entry, shape ({v},)")
        dtype = xp.result_type(dtype, bias)
    toolkit.check_integer(name, "target", target, xp, "integer class indices")
    lead = tuple(hidden.shape[:-1])
    n = math.prod(lead)
    shape = lead
    if tuple(target.shape) != lead:
        if not (len(lead) == 1 and tuple(target.shape) == (lead[0], 1)):  # the (N, 1) labels cross_entropy takes
            wanted = f"{lead}" + (f" or ({lead[0]}, 1)" if len(lead) == 1 else "")
            raise LossValueError(name, "target", f"class indices of shape {wanted} for hidden states of shape "
                                 f"{tuple(hidden.shape)}", f"shape {tuple(target.shape)}")
    t = xp.reshape(target, (n,))
    ignored = t == ignore_index
    valid = (t >= 0) & (t < v)
    if poison:
        bad = ~valid & ~ignored
    else:
        bad = toolkit.check_values(name, "target", target, xp.reshape(~valid & ~ignored, target.shape), xp,
                                   f"class indices in [0, {v}) or ignore_index={ignore_index}")
        if bad is not None:
            bad = xp.reshape(bad, (n,))
    work = toolkit.compute_dtype(xp, dtype)
    return Inputs(xp, xp.reshape(hidden, (n, d)), weight, bias, xp.where(valid, t, xp.zeros_like(t)),
                   valid & ~ignored, bad, dtype, work, shape, plan_chunks(n, v, chunk_size))


def _coefficients(inp: Inputs, reduction: str, cotangent: Any) -> Any:
    """``d result / d ℓ_n`` (N,) in the work dtype: 0 for inactive tokens, 1/count for "mean"
    (0 everywhere when every token is ignored: torch's zero gradient beside its NaN value)."""
    xp = inp.xp
    act = xp.astype(inp.active, inp.work)
    if reduction == "mean":
        count = xp.sum(act)
        act = act / xp.where(count > 0, count, xp.ones_like(count))
    if cotangent is None:
        return act
    g = toolkit.as_dtype(xp, cotangent, inp.work)
    return act * (xp.reshape(g, (-1,)) if reduction == "none" else g)


def _logits(xp: Any, h: Any, w: Any, b: Any, softcap: float | None, work: Any) -> tuple[Any, Any]:
    """``(softcap · tanh(u / softcap), tanh(u / softcap))`` with ``u = h @ w.T + b``, or ``(u, None)``."""
    u = xp.matmul(toolkit.as_dtype(xp, h, work), xp.matrix_transpose(toolkit.as_dtype(xp, w, work)))
    if b is not None:
        u = u + toolkit.as_dtype(xp, b, work)
    if softcap is None:
        return u, None
    th = xp.tanh(u / softcap)
    return softcap * th, th


def chunk_loss(xp: Any, h: Any, weight: Any, bias: Any, t: Any, active: Any, coef: Any, *, label_smoothing: float,
               z_loss: float, softcap: float | None, vocab: int, work: Any, lse: Any = None,
               grads: bool = True) -> tuple[Any, Any, Any, list[Any], list[Any]]:
    """One chunk of tokens: ``(losses, lse, d_hidden, d_weight blocks, d_bias blocks)``.

    ``h`` (B, D), ``t`` (B,) in [0, V), ``active`` and ``coef`` (B,) (``coef`` = d result /
    d ℓ_n). With z = the (soft-capped) logits, lse_n = log Σ_c exp z_nc, ε the smoothing and
    ζ the z-loss weight,

        ℓ_n = (1 - ε)(lse_n - z_{n,y_n}) + ε (lse_n - Σ_c z_nc / V) + ζ lse_n²
        ∂ℓ_n/∂z_nc = (1 + 2ζ lse_n) p_nc - (1 - ε)[c = y_n] - ε / V,   p = softmax(z)

    times ``1 - tanh²`` under the soft cap. The vocabulary goes by blocks of ``vocab``: a first
    pass keeps a running maximum and sum of exponentials (unless ``lse`` is given, as in the
    backward pass that recomputes the logits), a second recomputes each block for its gradient;
    with one block the logits are computed once. ``grads=False``: losses and lse only.
    """
    v = weight.shape[0]
    dev = device(h)
    blocks = [(j, min(j + vocab, v)) for j in range(0, v, vocab)]
    tcol = xp.reshape(t, (-1, 1))
    kept: list[tuple[Any, Any]] = []  # the one block's logits, reused by the gradient
    picked = zsum = None
    if lse is None or len(blocks) == 1:
        m = s = None
        for j, k in blocks:
            z, th = _logits(xp, h, weight[j:k, ...], None if bias is None else bias[j:k], softcap, work)
            hit = xp.reshape(xp.arange(j, k, device=dev), (1, -1)) == tcol
            pick = xp.sum(xp.where(hit, z, xp.zeros_like(z)), axis=1)
            picked = pick if picked is None else picked + pick
            if label_smoothing:
                zs = xp.sum(z, axis=1)
                zsum = zs if zsum is None else zsum + zs
            mj = xp.max(z, axis=1)
            if m is None:
                m = xp.where(mj == -math.inf, xp.zeros_like(mj), mj)  # a row of -inf: no -inf - -inf
                e = xp.exp(z - xp.reshape(m, (-1, 1)))
                s = xp.sum(e, axis=1)
            else:
                m_new = xp.maximum(m, mj)
                e = xp.exp(z - xp.reshape(m_new, (-1, 1)))
                s = s * xp.exp(m - m_new) + xp.sum(e, axis=1)
                m = m_new
            if len(blocks) == 1:
                kept.append((z, th))
                kept.append((e, s))
        lse = m + xp.log(s)
    losses = None
    if picked is not None:
        losses = (1.0 - label_smoothing) * (lse - picked)
        if label_smoothing:
            losses = losses + label_smoothing * (lse - zsum / v)
        if z_loss:
            losses = losses + z_loss * lse * lse
        losses = xp.where(active, losses, xp.zeros_like(losses))
    if not grads:
        return losses, lse, None, [], []
    a = xp.reshape(coef * (1.0 + 2.0 * z_loss * lse), (-1, 1))
    on_target = xp.reshape(coef * (1.0 - label_smoothing), (-1, 1))
    uniform = xp.reshape(coef * (label_smoothing / v), (-1, 1))
    d_h = None
    d_w: list[Any] = []
    d_b: list[Any] = []
    hw = toolkit.as_dtype(xp, h, work)
    for j, k in blocks:
        if kept:
            (z, th), (e, s) = kept
            kept.clear()  # drop each chunk-sized array as soon as it is used: eager libraries free it
            p = e * xp.reshape(1.0 / s, (-1, 1))
            del e
        else:
            z, th = _logits(xp, h, weight[j:k, ...], None if bias is None else bias[j:k], softcap, work)
            p = xp.exp(z - xp.reshape(lse, (-1, 1)))
        del z
        g = a * p
        del p
        if label_smoothing:
            g = g - uniform
        hit = xp.reshape(xp.arange(j, k, device=dev), (1, -1)) == tcol
        g = xp.where(hit, g - on_target, g)
        if th is not None:
            g = g * (1.0 - th * th)
        wj = toolkit.as_dtype(xp, weight[j:k, ...], work)
        dh = xp.matmul(g, wj)
        d_h = dh if d_h is None else d_h + dh
        d_w.append(xp.matmul(xp.matrix_transpose(g), hw))
        d_b.append(xp.sum(g, axis=0))
    return losses, lse, d_h, d_w, d_b


def _options(label_smoothing: float, z_loss: float, softcap: float | None, inp: Inputs) -> dict[str, Any]:
    return {"label_smoothing": float(label_smoothing), "z_loss": float(z_loss),
            "softcap": None if softcap is None else float(softcap), "vocab": inp.chunks.vocab, "work": inp.work}


def _finish(inp: Inputs, losses: Any, reduction: str) -> Any:
    """Poison invalid targets, reduce as cross_entropy does ("mean" over active tokens)."""
    xp = inp.xp
    losses = toolkit.poison(xp, losses, inp.bad)
    if reduction == "none":
        out = xp.reshape(losses, inp.shape)
    elif reduction == "sum":
        out = xp.sum(losses)
    else:  # every target ignored: 0 / 0 = NaN, as torch
        out = xp.sum(losses) / xp.sum(xp.astype(inp.active, inp.work))
    return toolkit.as_dtype(xp, out, inp.dtype)


def _empty(inp: Inputs) -> Any:
    """The (0,) losses of no tokens, made from the hidden states so that autodiff finds them used."""
    xp = inp.xp
    return xp.sum(toolkit.as_dtype(xp, inp.hidden, inp.work), axis=1) * 0.0


@define_loss(
    class_name="LinearCrossEntropyLoss",
    aliases=("fused_linear_cross_entropy", "linear_ce", "cut_cross_entropy"),
    differentiable=("hidden", "weight"),
    array_options=("bias",),
    reference="torch.nn.functional.cross_entropy(torch.nn.functional.linear(hidden, weight, bias), target)",
)
def linear_cross_entropy(hidden: Any, weight: Any, target: Any, /, *, bias: Any = None, ignore_index: int = -100,
                         label_smoothing: float = 0.0, reduction: str = "mean", z_loss: float = 0.0,
                         softcap: float | None = None, chunk_size: Any = None) -> Any:
    r"""Cross-entropy of a linear layer's output, without materialising it:

    $$
    \ell_n = \mathrm{CE}(z_n, y_n) + \lambda_z\, \mathrm{lse}_n^2
    \qquad z_n = h_n W^\top + b \quad \left(\text{or } s \tanh(z_n / s)\right)
    \qquad \mathrm{lse}_n = \log \sum_c e^{z_{nc}}
    $$

    ``cross_entropy(z, target, ignore_index, label_smoothing) + z_loss · mean(lse²)``, with
    ``z = hidden @ weight.T + bias`` (or ``softcap · tanh(z / softcap)``, Gemma 2's soft cap),
    ``lse_n = log Σ_c exp z_nc``; the z-loss (PaLM, Chowdhery et al. 2022) is counted, like the
    cross-entropy, only for tokens not ignored, and "mean" divides both by their number.

    Shapes: ``hidden`` (..., D) (any leading axes, each a batch axis: (B, T, D) hidden states
    take (B, T) targets), ``weight`` (V, D) as ``torch.nn.Linear`` holds it, ``target`` the
    leading shape of ``hidden`` (or (N, 1) for (N, D) hidden states) of class indices in
    [0, V) or ``ignore_index``; ``bias`` an optional (V,) option. "none" returns the leading
    shape. Computed in chunks of ``chunk_size`` tokens (None: automatic; a pair: tokens and
    vocabulary entries) with an online log-sum-exp, in float32 for half-precision inputs.
    Reference: ``F.cross_entropy(F.linear(hidden, weight, bias), target)``; Liger-Kernel,
    Cut Cross-Entropy (arXiv:2411.09009).

    Args:
        bias: the linear layer's bias, shape (V,), or None.
        label_smoothing: ε in [0, 1], as for :func:`cross_entropy`.
        z_loss: λ_z ≥ 0, the weight of the squared log-partition term (0: none).
        softcap: s > 0 to cap the logits at ±s through ``s · tanh(z / s)``, or None (no cap).
        chunk_size: tokens per chunk, or a pair (tokens, vocabulary entries); None chooses.
    """
    inp = prepare_inputs("linear_cross_entropy", hidden, weight, target, bias, ignore_index, reduction, label_smoothing,
                  z_loss, softcap, chunk_size)
    xp = inp.xp
    opts = _options(label_smoothing, z_loss, softcap, inp)
    n, step = inp.hidden.shape[0], inp.chunks.tokens
    parts = []
    for i in range(0, n, step):
        rows = slice(i, min(i + step, n))  # array-api-strict refuses stops past the end
        act = inp.active[rows]
        losses, *_ = chunk_loss(xp, inp.hidden[rows, ...], inp.weight, inp.bias, inp.target[rows], act,
                                None, grads=False, **opts)
        parts.append(losses if reduction == "none" else xp.sum(losses, keepdims=True))
    losses = xp.concat(parts) if parts else _empty(inp)
    if reduction != "none":  # the per-chunk sums, then as cross_entropy reduces them
        summed = xp.sum(losses)
        if reduction == "sum":
            return toolkit.as_dtype(xp, toolkit.poison(xp, summed, _any(xp, inp.bad)), inp.dtype)
        mean = summed / xp.sum(xp.astype(inp.active, inp.work))
        return toolkit.as_dtype(xp, toolkit.poison(xp, mean, _any(xp, inp.bad)), inp.dtype)
    return _finish(inp, losses, reduction)


def _any(xp: Any, bad: Any) -> Any:
    return None if bad is None else xp.any(bad)


def linear_cross_entropy_value_and_grad(
    hidden: Any, weight: Any, target: Any, /, *, bias: Any = None, ignore_index: int = -100,
    label_smoothing: float = 0.0, reduction: str = "mean", z_loss: float = 0.0, softcap: float | None = None,
    chunk_size: Any = None, cotangent: Any = None,
) -> tuple[Any, tuple[Any, Any, Any]]:
    """:func:`linear_cross_entropy` and its gradients, for array libraries without autodiff.

    Returns ``(value, (d_hidden, d_weight, d_bias))``: the gradients of ``sum(cotangent ·
    value)`` (``cotangent`` None means ones, so for "none" the gradient of the sum of the
    per-token losses), each of its array's shape and dtype (``d_bias`` is None without a bias).
    Chunk by chunk: the gradient of each chunk's logits is made, used for the three matmuls
    ``d_hidden = G W``, ``d_weight += Gᵀ h``, ``d_bias += Σ G`` and dropped, so the peak extra
    memory is a few chunks plus the gradients themselves. Same options and errors as the loss.
    """
    name = "linear_cross_entropy"
    inp = prepare_inputs(name, hidden, weight, target, bias, ignore_index, reduction, label_smoothing, z_loss, softcap,
                  chunk_size)
    if cotangent is not None:
        want = inp.shape if reduction == "none" else ()
        toolkit.namespace(name, hidden=hidden, cotangent=cotangent)
        toolkit.check_floating(name, "cotangent", cotangent, inp.xp)
        toolkit.check_shape(name, "cotangent", cotangent, want, f"an array of the result's shape {want}")
    return value_and_grad_flat(inp, reduction, _coefficients(inp, reduction, cotangent),
                               _options(label_smoothing, z_loss, softcap, inp))


def value_and_grad_flat(inp: Inputs, reduction: str, coef: Any, opts: dict[str, Any]) -> tuple[Any, tuple[Any, Any, Any]]:
    xp = inp.xp
    n, d = inp.hidden.shape
    v = inp.weight.shape[0]
    step, vocab = inp.chunks
    dev = device(inp.hidden)
    blocks = list(range(0, v, vocab))
    d_w = [xp.zeros((min(j + vocab, v) - j, d), dtype=inp.work, device=dev) for j in blocks]
    d_b = [xp.zeros((min(j + vocab, v) - j,), dtype=inp.work, device=dev) for j in blocks]
    parts, d_h = [], []
    for i in range(0, n, step):
        rows = slice(i, min(i + step, n))
        losses, _, dh, dws, dbs = chunk_loss(xp, inp.hidden[rows, ...], inp.weight, inp.bias,
                                             inp.target[rows], inp.active[rows], coef[rows],
                                             **opts)
        parts.append(losses)
        d_h.append(dh)
        # In place where the library allows it (NumPy, torch), so d_weight is not held twice.
        d_w = [xpx.at(acc)[...].add(x) for acc, x in zip(d_w, dws)]
        d_b = [xpx.at(acc)[...].add(x) for acc, x in zip(d_b, dbs)]
    losses = xp.concat(parts) if parts else _empty(inp)
    value = _finish(inp, losses, reduction)
    grad_h = xp.concat(d_h) if d_h else xp.zeros((0, d), dtype=inp.work, device=dev)
    if inp.bad is not None:  # invalid targets on lazy arrays: NaN gradients as well as NaN losses
        grad_h = toolkit.poison(xp, grad_h, xp.reshape(inp.bad, (-1, 1)))
    grad_w = d_w[0] if len(d_w) == 1 else xp.concat(d_w)
    grad_b = d_b[0] if len(d_b) == 1 else xp.concat(d_b)
    if inp.bad is not None:
        grad_w = toolkit.poison(xp, grad_w, xp.any(inp.bad))
        grad_b = toolkit.poison(xp, grad_b, xp.any(inp.bad))
    hidden_shape = (*inp.shape, d)
    grads = (toolkit.as_dtype(xp, xp.reshape(grad_h, hidden_shape), inp.hidden.dtype),
             toolkit.as_dtype(xp, grad_w, inp.weight.dtype),
             None if inp.bias is None else toolkit.as_dtype(xp, grad_b, inp.bias.dtype))
    return value, grads
