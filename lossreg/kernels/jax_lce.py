"""JAX kernel of linear_cross_entropy: ``jax.custom_vjp`` over a ``lax.scan`` of token chunks.

The portable definition, traced by ``jax.grad``, would keep every chunk's logits for the backward
pass (a Python loop unrolls into one program holding them all). Here the chunks are the steps of
one ``lax.scan``, each running the portable chunk (``lossreg.chunked.chunk_loss``, written
once in array-API terms, with ``jax.numpy`` as its namespace), and the gradient is a custom VJP.
The weight and bias gradients are the scan's carry, which XLA keeps in the output's buffer; each
chunk adds its ``Gᵀ h`` into it by blocks of rows in a ``fori_loop`` (made whole, that product
would be a V×D temporary: 1/8 of the logits at D/N = 1/8). Two splits of the work:

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
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from .. import chunked, toolkit
from ..chunked import chunk_loss, reduce_tokens, token_weights
from ..errors import UnsupportedError


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
    weight_rows: int = 1  # rows of the weight gradient per block (chunked.WEIGHT_GRAD_ELEMENTS // D)


def _padded(x: Any, step: int, fill: Any) -> Any:
    """(N, ...) -> (ceil(N / step), step, ...), padded with ``fill``."""
    n = x.shape[0]
    k = -(-n // step) if n else 0
    pad = k * step - n
    if pad:
        x = jnp.concatenate([x, jnp.full((pad, *x.shape[1:]), fill, dtype=x.dtype)])
    return x.reshape(k, step, *x.shape[1:])


def _placed(x: Any) -> Any:
    """``x``'s sharding on a mesh with explicit axes, else None (JAX's default).

    In JAX's explicit sharding mode a product summed over a sharded axis (the weight gradient
    ``gᵀ h`` over tokens split across devices) must be told where its result goes; the weight
    gradient's accumulator says."""
    sharding = jax.typeof(x).sharding
    return sharding if getattr(sharding.mesh, "explicit_axes", ()) else None


def _replicated_beside(h: Any) -> Any:
    """Replicated on ``h``'s mesh where that has explicit axes, else None: the place of the weight
    gradient's accumulators. Zeros made inside ``jit`` sit on the context mesh, and tokens placed
    on ``jax.make_mesh``'s explicit axes need none (no ``jax.set_mesh``): there the zeros would
    be on no mesh, and adding the tokens' products into them a sharding error."""
    placed = _placed(h)
    return None if placed is None else NamedSharding(placed.mesh, P())


def _weight_grad_adder(rows: int, spread: bool = False) -> Any:
    """``add(xp, d_weight, start, g, h)``: ``d_weight[start : start + B'] += gᵀ h`` by blocks of
    ``rows`` in a ``fori_loop``, written in place into the accumulator. The blocks of a Python loop
    (``chunked.add_weight_grad``) would be scheduled side by side by XLA, and one product of the
    whole chunk would be a temporary of the weight's size."""

    def add(xp: Any, d_weight: Any, start: int, g: Any, h: Any) -> Any:
        width = g.shape[1]
        step = min(rows, width)
        per = _spread_rows(width, step) if spread and width == d_weight.shape[0] else 0
        if per:
            return _add_spread(d_weight, g, h, per)
        full = width // step

        def block(i: Any, acc: Any) -> Any:
            j = start + i * step
            part = jnp.matmul(lax.dynamic_slice_in_dim(g, i * step, step, axis=1).T, h, out_sharding=_placed(acc))
            return lax.dynamic_update_slice_in_dim(acc, lax.dynamic_slice_in_dim(acc, j, step) + part, j, 0)

        d_weight = block(0, d_weight) if full == 1 else lax.fori_loop(0, full, block, d_weight)
        if full * step < width:  # the last, shorter block
            j = start + full * step
            part = jnp.matmul(g[:, full * step:].T, h, out_sharding=_placed(d_weight))
            d_weight = lax.dynamic_update_slice_in_dim(d_weight, d_weight[j:start + width] + part, j, 0)
        return d_weight

    return add


# A weight split over the vocabulary (a tensor-parallel head) is split into contiguous runs of
# rows, one per device; blocks of contiguous rows taken at a traced offset cross those runs, and
# XLA's partitioner then gathers the whole weight gradient (and the chunk's logits) on every
# device. Blocks of rows spread evenly over the vocabulary (rows i, i + k, i + 2k, ...) are a
# slice of the other axis of a (V / k, k, D) view, so each device keeps its own rows. The view
# needs k to divide V, and the rows of a block (V / k) to divide among the devices: their count
# is taken a multiple of the largest power of two dividing V (up to SPREAD_ALIGN). Only in a scan
# of several chunks: with one, XLA copied the (V / k, k, D) view (a temporary of the weight's size).
SPREAD_ALIGN = 64


def _spread_rows(width: int, step: int) -> int:
    """The rows of each spread block (a divisor of ``width`` of at most ``step``, a multiple of
    ``width``'s power of two up to SPREAD_ALIGN and at least a quarter of ``step``), or 0: contiguous blocks."""
    if step >= width:
        return 0
    align = min(width & -width, SPREAD_ALIGN, 1 << (step.bit_length() - 1))
    for per in range(step - step % align, max(step // 4, 1) - 1, -align):
        if per and width % per == 0:
            return per
    return 0


def _add_spread(d_weight: Any, g: Any, h: Any, per: int) -> Any:
    """``d_weight += gᵀ h`` by ``width // per`` blocks of ``per`` rows, block ``i`` the rows
    ``i, i + k, ...`` (k blocks): a dynamic index of the unsplit middle axis of a (per, k, D) view."""
    v, d = d_weight.shape
    k = v // per
    g3 = g.reshape(g.shape[0], per, k)

    def block(i: Any, acc: Any) -> Any:
        part = jnp.matmul(lax.dynamic_index_in_dim(g3, i, axis=2, keepdims=False).T, h, out_sharding=_placed(acc))
        return acc.at[:, i].add(part)

    return lax.fori_loop(0, k, block, d_weight.reshape(per, k, d)).reshape(v, d)


def _zero(dtype: Any, *arrays: Any) -> Any:
    """A scalar zero that varies over the ``shard_map`` axes any of ``arrays`` varies over.

    A scan's carry must have the type of what its body returns; inside ``shard_map`` that type
    says which mesh axes a value varies over, and the weight gradient summed over this device's
    tokens varies over the axes the tokens are split on, where fresh zeros vary over none.
    ``zeros_like`` keeps the axes of its argument and a sum takes the union (outside
    ``shard_map``, or before JAX had these types, it is just zero; XLA folds the additions away).
    """
    z = jnp.zeros((), dtype)
    for a in arrays:
        if a is not None:
            z = z + jnp.zeros_like(a, dtype=dtype, shape=())
    return z


def _scan(meta: _Meta, h: Any, w: Any, b: Any, t: Any, act: Any, bad: Any, cw: Any, coef: Any,
          lse: Any = None, remat: bool = False) -> tuple[Any, ...]:
    """Per-token losses and lse (N,) and, with ``coef``, the gradients (work dtype; d_hidden NaN
    where ``bad``, set inside the scan so that its output is the result's buffer). ``remat``: each
    chunk under ``jax.checkpoint``, so that autodiff of the scan keeps its inputs, not its logits."""
    n, d = h.shape
    v = w.shape[0]
    step, vocab = meta.chunks
    step = max(1, min(step, n))  # a few tokens: one chunk of their size, not a padded full one
    opts = {"label_smoothing": meta.ls, "z_loss": meta.zl, "softcap": meta.cap, "vocab": vocab, "work": meta.work,
            "class_weight": cw}
    xs = {"h": _padded(h, step, 0), "t": _padded(t, step, 0), "act": _padded(act, step, False)}
    grads = coef is not None
    if grads:
        xs["coef"] = _padded(coef, step, 0)
        if bad is not None:
            xs["bad"] = _padded(bad, step, False)
    if lse is not None:
        xs["lse"] = _padded(lse, step, 0)
    # The accumulators are the scan's carry, which XLA keeps in the output's buffer.
    init: Any = ()
    if grads:
        zero = _zero(meta.work, h, w, b, t, cw, coef)
        where = _replicated_beside(h)
        init = (jnp.zeros((v, d), meta.work, out_sharding=where) + zero,
                jnp.zeros((v,), meta.work, out_sharding=where) + zero)

    def body(carry: Any, x: Any) -> tuple[Any, Any]:
        d_w, d_b = carry if grads else (None, None)
        losses, l_out, dh, d_w, d_b = chunk_loss(jnp, x["h"], w, b, x["t"], x["act"], x.get("coef"), lse=x.get("lse"),
                                                 grads=grads, d_weight=d_w, d_bias=d_b,
                                                 add_weight=_weight_grad_adder(meta.weight_rows, n > step), **opts)
        if losses is None:
            losses = jnp.zeros(x["h"].shape[:1], meta.work)
        if not grads:
            return carry, (losses, l_out)
        if "bad" in x:  # invalid targets were poisoned in the value: so are the gradients
            dh = toolkit.poison(jnp, dh, x["bad"][:, None])  # no NaN constant (jax_debug_nans)
        return (d_w, d_b), (losses, l_out, dh)

    carry: Any
    carry, out = lax.scan(jax.checkpoint(body) if remat else body, init, xs)
    losses, l_out = out[0].reshape(-1)[:n], out[1].reshape(-1)[:n]
    if not grads:
        return losses, l_out
    d_w, d_b = carry
    if bad is not None:  # as the portable gradient: any invalid target poisons the weight's and bias's
        anybad = jnp.any(bad)
        d_w, d_b = toolkit.poison(jnp, d_w, anybad), toolkit.poison(jnp, d_b, anybad)
    return losses, l_out, out[2].reshape(-1, d)[:n], d_w, d_b


def _base_coef(meta: _Meta, act: Any, counts: Any) -> Any:
    return token_weights(jnp, act, meta.reduction, meta.work, counts)


def _reduce(meta: _Meta, losses: Any, act: Any, bad: Any, counts: Any) -> Any:
    return reduce_tokens(jnp, losses, act, bad, meta.reduction, meta.shape, meta.dtype, meta.work, counts)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _lce(meta: _Meta, h: Any, w: Any, b: Any, t: Any, act: Any, bad: Any, cw: Any, counts: Any) -> Any:
    losses, _ = _scan(meta, h, w, b, t, act, bad, cw, None)
    return _reduce(meta, losses, act, bad, counts)


def _lce_fwd(meta: _Meta, h: Any, w: Any, b: Any, t: Any, act: Any, bad: Any, cw: Any,
             counts: Any) -> tuple[Any, Any]:
    inputs = (h, w, b, t, act, bad, cw, counts)
    if meta.reduction == "none" or meta.recompute:
        losses, lse = _scan(meta, h, w, b, t, act, bad, cw, None)
        return _reduce(meta, losses, act, bad, counts), (False, inputs, lse)
    losses, _, d_h, d_w, d_b = _scan(meta, h, w, b, t, act, bad, cw, _base_coef(meta, act, counts))
    return _reduce(meta, losses, act, bad, counts), (True, inputs, (d_h, d_w, d_b))


def _class_weight_grads(meta: _Meta, h: Any, w: Any, b: Any, t: Any, act: Any, bad: Any, cw: Any, counts: Any,
                        g: Any) -> tuple[Any, Any]:
    """The cotangents of the class weights and of ``counts`` (w[y] of each token, made from the
    class weights outside :func:`_lce`, so autodiff carries this one to them too): autodiff of the
    loss as a function of those two alone, by a second pass over the chunks, each recomputed rather
    than kept. Under ``jax.jit`` XLA drops it when the class weights' gradient is not used."""
    def loss(cw: Any, counts: Any) -> Any:
        return _reduce(meta, _scan(meta, h, w, b, t, act, bad, cw, None, remat=True)[0], act, bad, counts)

    return jax.vjp(loss, cw, counts)[1](g)


def _lce_bwd(meta: _Meta, res: Any, g: Any) -> tuple[Any, ...]:
    early, inputs, saved = res
    h, w, b, t, act, bad, cw, counts = inputs
    if early:
        d_h, d_w, d_b = saved
        # The cotangent comes in the loss's dtype (half precision for half inputs), the gradients
        # in the work dtype: cast it, as the other branch does, or JAX's strict dtype promotion
        # (jax_numpy_dtype_promotion="strict") refuses float16 times float32.
        scale = g.astype(meta.work)
        d_h, d_w, d_b = d_h * scale, d_w * scale, d_b * scale
    else:
        coef = _base_coef(meta, act, counts) * (g.reshape(-1) if meta.reduction == "none" else g).astype(meta.work)
        _, _, d_h, d_w, d_b = _scan(meta, h, w, b, t, act, bad, cw, coef,
                                    saved if meta.chunks[1] < w.shape[0] else None)
    # The class weights are differentiated as the portable definition differentiates them (torch
    # refuses to): through the loss and through the mean's denominator Σ w[y] (``counts``).
    d_cw, d_counts = (None, None) if cw is None else _class_weight_grads(meta, h, w, b, t, act, bad, cw, counts, g)
    return (d_h.astype(h.dtype), d_w.astype(w.dtype), None if b is None else d_b.astype(b.dtype), None, None, None,
            d_cw, d_counts)


_lce.defvjp(_lce_fwd, _lce_bwd)


def _lce_shared(meta: _Meta, h: Any, w: Any, b: Any, t: Any, act: Any, bad: Any, cw: Any, counts: Any) -> Any:
    """:func:`_lce` with its floating arguments varying over the same ``shard_map`` axes (see
    :func:`_zero`): a custom VJP must return each gradient with its argument's type, and the
    gradient of a replicated weight, summed over this device's tokens, varies over the tokens'
    axes. Made alike here, outside the custom VJP, autodiff sums it over them (outside
    ``shard_map`` the additions are of zero, which XLA folds away)."""
    arrays = (h, w, b, t, act, cw)
    h, w, b, cw = (None if x is None else x + _zero(x.dtype, *arrays) for x in (h, w, b, cw))
    return _lce(meta, h, w, b, t, act, bad, cw, counts)


# Compiled once per (options, shapes): eager callers would otherwise trace the scan on every call.
_lce_compiled = jax.jit(_lce_shared, static_argnums=(0,))


def linear_cross_entropy(input: Any, linear_weight: Any, target: Any, /, *, linear_bias: Any = None,
                         weight: Any = None, reduction: str = "mean", ignore_index: int | None = None,
                         label_smoothing: float = 0.0, options: Any = None, z_loss: float = 0.0,
                         softcap: float | None = None, chunk_size: Any = None, bias: Any = None,
                         recompute: bool = False) -> Any:
    """The kernel: the portable checks (JAX arrays are lazy: invalid targets give NaN), then
    :func:`_lce`. Calls that go through the logits (probability targets, K-dimensional weights)
    are handed back to the portable definition."""
    inp = chunked.prepare_call("linear_cross_entropy", input, linear_weight, target, linear_bias=linear_bias,
                               bias=bias, weight=weight, ignore_index=ignore_index, options=options,
                               chunk_size=chunk_size, reduction=reduction, label_smoothing=label_smoothing,
                               z_loss=z_loss, softcap=softcap)
    if inp is None:
        return NotImplemented
    # XLA schedules an unrolled loop of vocabulary blocks side by side (2.3 times the logits
    # measured): the automatic plan keeps the whole vocabulary, 16 tokens at a time past 2^18.
    tokens, vocab = inp.chunks if inp.chunk_size is not None else \
        chunked.plan_chunks(inp.hidden.shape[0], inp.weight.shape[0], split_vocab=False)
    if tokens < inp.hidden.shape[0] and toolkit.sharded_explicitly(inp.hidden, 0):
        # Tokens split over a mesh of explicit axes: JAX wants a scan's axis whole on every
        # device, and more than one chunk is a scan over the tokens. The portable loop runs.
        return NotImplemented
    meta = _Meta(reduction, inp.shape, inp.dtype, inp.work, (tokens, vocab), float(label_smoothing),
                 float(z_loss), None if softcap is None else float(softcap), bool(recompute),
                 max(1, chunked.WEIGHT_GRAD_ELEMENTS // max(inp.hidden.shape[1], 1)))
    try:
        return _lce_compiled(meta, inp.hidden, inp.weight, inp.bias, inp.target, inp.active, inp.bad,
                             inp.class_weight, inp.counts)
    except (TypeError, NotImplementedError) as exc:  # JAX's own words for a custom_vjp under jvp name neither
        # the loss nor the way out. Under an outer grad or vjp (the gradient of a jvp), the jvp
        # meets the custom VJP's linearization, whose primitive has no derivative rule.
        if "forward-mode" not in str(exc) and "'custom_lin'" not in str(exc):
            raise
        raise UnsupportedError("linear_cross_entropy: the JAX kernel gives first derivatives by reverse mode "
                               "only (no jax.jvp, jacfwd or linearize; jax.hessian works); "
                               "lossreg.use_kernels(False) differentiates the portable definition in every mode"
                               ) from exc


KERNELS = {"linear_cross_entropy": linear_cross_entropy}
