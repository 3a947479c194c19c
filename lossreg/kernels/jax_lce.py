"""JAX kernel of linear_cross_entropy: ``jax.custom_vjp`` over a ``lax.scan`` of token chunks.

The portable definition, traced by ``jax.grad``, would keep every chunk's logits for the backward
pass (a Python loop unrolls into one program holding them all). Here the chunks are the steps of
one ``lax.scan``, each running the portable chunk (``lossreg.losses.fused.chunk_loss``, written
once in array-API terms, with ``jax.numpy`` as its namespace), and the gradient is a custom VJP:

- "mean" and "sum": the forward pass of ``jax.grad`` computes the gradients of hidden, weight and
  bias along with the loss (Liger-Kernel's split; the logits are made once) and the backward
  pass scales them by the incoming scalar;
- "none": the forward pass keeps the per-token log-sum-exp, the backward pass makes each chunk's
  logits again with the incoming per-token gradient (Cut Cross-Entropy's split).

Without a gradient only the loss is computed. Works under ``jax.jit`` (the chunking is static)
and ``jax.vmap`` of the caller's function is left to JAX's custom_vjp batching rules.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from ..chunked import chunk_loss, prepare_inputs


class _Meta(NamedTuple):
    reduction: str
    shape: tuple[int, ...]
    dtype: Any
    work: Any
    chunks: tuple[int, int]
    ls: float
    zl: float
    cap: float | None
    recompute: bool = False


def _padded(x: Any, step: int, fill: Any) -> Any:
    """(N, ...) -> (ceil(N / step), step, ...), padded with ``fill``."""
    n = x.shape[0]
    k = -(-n // step) if n else 0
    pad = k * step - n
    if pad:
        x = jnp.concatenate([x, jnp.full((pad, *x.shape[1:]), fill, dtype=x.dtype)])
    return x.reshape(k, step, *x.shape[1:])


def _scan(meta: _Meta, h: Any, w: Any, b: Any, t: Any, act: Any, coef: Any, lse: Any = None) -> tuple[Any, ...]:
    """Per-token losses and lse (N,) and, with ``coef``, the gradients (work dtype)."""
    n, d = h.shape
    step, vocab = meta.chunks
    step = max(1, min(step, n))  # a few tokens: one chunk of their size, not a padded full one
    opts = {"label_smoothing": meta.ls, "z_loss": meta.zl, "softcap": meta.cap, "vocab": vocab, "work": meta.work}
    xs = [_padded(h, step, 0), _padded(t, step, 0), _padded(act, step, False)]
    grads = coef is not None
    if grads:
        xs.append(_padded(coef, step, 0))
    if lse is not None:
        xs.append(_padded(lse, step, 0))
    blocks = [(j, min(j + vocab, w.shape[0])) for j in range(0, w.shape[0], vocab)]
    init: Any = ([jnp.zeros((k - j, d), meta.work) for j, k in blocks],
            [jnp.zeros((k - j,), meta.work) for j, k in blocks]) if grads else ()

    def body(carry: Any, x: Any) -> tuple[Any, Any]:
        hc, tc, ac = x[:3]
        cc = x[3] if grads else None
        lc = x[4] if lse is not None else None
        losses, l_out, dh, dws, dbs = chunk_loss(jnp, hc, w, b, tc, ac, cc, lse=lc, grads=grads, **opts)
        if losses is None:
            losses = jnp.zeros(hc.shape[:1], meta.work)
        if not grads:
            return carry, (losses, l_out)
        d_w, d_b = carry
        carry = ([a + g for a, g in zip(d_w, dws)], [a + g for a, g in zip(d_b, dbs)])
        return carry, (losses, l_out, dh)

    carry: Any
    carry, out = lax.scan(body, init, tuple(xs))
    losses, l_out = out[0].reshape(-1)[:n], out[1].reshape(-1)[:n]
    if not grads:
        return losses, l_out
    d_h = out[2].reshape(-1, d)[:n]
    d_w, d_b = carry
    d_w = d_w[0] if len(d_w) == 1 else jnp.concatenate(d_w)
    d_b = d_b[0] if len(d_b) == 1 else jnp.concatenate(d_b)
    return losses, l_out, d_h, d_w, d_b


def _base_coef(meta: _Meta, act: Any) -> Any:
    c = act.astype(meta.work)
    if meta.reduction == "mean":
        count = c.sum()
        c = c / jnp.where(count > 0, count, 1.0)
    return c


def _reduce(meta: _Meta, losses: Any, act: Any, bad: Any) -> Any:
    if bad is not None:
        losses = jnp.where(bad, jnp.nan, losses)
    if meta.reduction == "none":
        out = losses.reshape(meta.shape)
    elif meta.reduction == "sum":
        out = losses.sum()
    else:  # every target ignored: 0 / 0 = NaN, as torch
        out = losses.sum() / act.astype(meta.work).sum()
    return out.astype(meta.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _lce(meta: _Meta, h: Any, w: Any, b: Any, t: Any, act: Any, bad: Any) -> Any:
    losses, _ = _scan(meta, h, w, b, t, act, None)
    return _reduce(meta, losses, act, bad)


def _lce_fwd(meta: _Meta, h: Any, w: Any, b: Any, t: Any, act: Any, bad: Any) -> tuple[Any, Any]:
    if meta.reduction == "none" or meta.recompute:
        losses, lse = _scan(meta, h, w, b, t, act, None)
        return _reduce(meta, losses, act, bad), (False, (h, w, b, t, act, bad, lse))
    losses, _, d_h, d_w, d_b = _scan(meta, h, w, b, t, act, _base_coef(meta, act))
    return _reduce(meta, losses, act, bad), (True, (h, w, b, bad, d_h, d_w, d_b))


def _lce_bwd(meta: _Meta, res: Any, g: Any) -> tuple[Any, ...]:
    early, saved = res
    if early:
        h, w, b, bad, d_h, d_w, d_b = saved
        d_h, d_w, d_b = d_h * g, d_w * g, d_b * g
    else:
        h, w, b, t, act, bad, lse = saved
        coef = _base_coef(meta, act) * (g.reshape(-1) if meta.reduction == "none" else g).astype(meta.work)
        _, _, d_h, d_w, d_b = _scan(meta, h, w, b, t, act, coef, lse if meta.chunks[1] < w.shape[0] else None)
    if bad is not None:  # invalid targets were poisoned in the value: so are the gradients
        d_h = jnp.where(bad[:, None], jnp.nan, d_h)
    return (d_h.astype(h.dtype), d_w.astype(w.dtype), None if b is None else d_b.astype(b.dtype), None, None, None)


_lce.defvjp(_lce_fwd, _lce_bwd)
# Compiled once per (options, shapes): eager callers would otherwise trace the scan on every call.
_lce_compiled = jax.jit(_lce, static_argnums=(0,))


def linear_cross_entropy(hidden: Any, weight: Any, target: Any, /, *, bias: Any = None, ignore_index: int = -100,
                         label_smoothing: float = 0.0, reduction: str = "mean", z_loss: float = 0.0,
                         softcap: float | None = None, chunk_size: Any = None, recompute: bool = False) -> Any:
    """The kernel: the portable checks (JAX arrays are lazy: invalid targets give NaN), then :func:`_lce`."""
    inp = prepare_inputs("linear_cross_entropy", hidden, weight, target, bias, ignore_index, reduction,
                         label_smoothing, z_loss, softcap, chunk_size)
    meta = _Meta(reduction, inp.shape, inp.dtype, inp.work, (inp.chunks.tokens, inp.chunks.vocab), float(label_smoothing),
                 float(z_loss), None if softcap is None else float(softcap), bool(recompute))
    return _lce_compiled(meta, inp.hidden, inp.weight, inp.bias, inp.target, inp.active, inp.bad)


KERNELS = {"linear_cross_entropy": linear_cross_entropy}
