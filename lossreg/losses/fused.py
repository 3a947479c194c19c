"""Fused losses: a linear layer and the loss of its output, computed without that output.

A language model's last layer maps N hidden states of width D to V vocabulary scores, and the
(N, V) logits (with their gradient) are the largest arrays of training at large V: 2.1 GB each
at N=8192, V=128256 in bfloat16. :func:`linear_cross_entropy` computes
``cross_entropy(hidden @ weight.T + bias, target)`` in chunks of tokens (and of vocabulary where
one chunk of tokens over the whole vocabulary would not fit the budget), with an online
log-sum-exp, so that no N×V array exists. The same chunks give the gradients of ``hidden``,
``weight`` and ``bias`` without the logits (:func:`linear_cross_entropy_value_and_grad`), which
the torch and JAX kernels wrap in ``torch.library`` custom operators and ``jax.custom_vjp``.

Ideas from Liger-Kernel's fused linear cross-entropy (gradients during the forward pass) and
Apple's Cut Cross-Entropy (Wijmans et al. 2024, arXiv:2411.09009: logits recomputed blockwise
in the backward pass from the saved log-sum-exp); the code is lossreg's own.
"""

from __future__ import annotations

from typing import Any

import array_api_extra as xpx
from array_api_compat import device

from .. import toolkit
from ..chunked import Inputs, chunk_loss, prepare_inputs
from ..registry import define_loss

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
