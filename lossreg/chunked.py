"""Chunked linear layer + softmax cross-entropy, in array-API terms: the shared core of
``lossreg.losses.fused.linear_cross_entropy`` and of its torch and JAX kernels.

It sits with the toolkit, below the catalogue and the kernels (which may import the catalogue,
never the other way), so that each of them reaches it without going through the others:
the argument checks (:func:`prepare_inputs`, the same errors for every path), the chunking plan
(:func:`plan_chunks`) and the computation of one chunk of tokens (:func:`chunk_loss`, the loss
and, from the same logits, their gradient's three matmuls).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import array_api_extra as xpx
from array_api_compat import array_namespace, is_dask_namespace, is_jax_namespace, is_numpy_namespace

from . import toolkit
from .errors import LossTypeError, LossValueError, UnsupportedError

# Logits per chunk when chunk_size is None: 2^22 (16 MiB in float32). The torch kernel holds one
# such array at a time, the portable code and XLA two to four; on the reference size (N=4096,
# V=32000: 128 tokens per chunk) that keeps the extra memory at 1/32 to 1/8 of the logits. Larger
# chunks are faster on CPUs (each chunk reads the whole weight again): see the README's table.
CHUNK_ELEMENTS = 2**22
# Fewest tokens per chunk before the vocabulary is split too: below this a matmul is mostly
# overhead, and splitting the vocabulary costs one more pass (the online log-sum-exp first).
MIN_TOKENS = 16
# Entries of one block of the weight gradient's product (2^20: 4 MiB in float32; 2048 rows at
# D=512), added into the accumulator before the next block is made.
WEIGHT_GRAD_ELEMENTS = 2**20


class Chunks(NamedTuple):
    """How the work is cut: ``tokens`` rows per chunk, ``vocab`` columns per block."""

    tokens: int
    vocab: int


def plan_chunks(n: int, v: int, chunk_size: Any = None, *, budget: int = CHUNK_ELEMENTS,
                split_vocab: bool = True) -> Chunks:
    """The chunking of an (n, v) problem: ``chunk_size`` is None (automatic), a number of tokens
    per chunk (the whole vocabulary at once), or a pair (tokens, vocabulary entries).

    The automatic plan takes whole vocabulary rows, as many as ``budget`` logits hold, in
    multiples of ``MIN_TOKENS``; past ``budget / MIN_TOKENS`` entries it splits the vocabulary
    into blocks of that size, or (``split_vocab`` False: XLA runs the blocks side by side, see
    the JAX kernel) keeps ``MIN_TOKENS`` tokens with the whole vocabulary.
    """
    v = max(v, 1)
    if chunk_size is None:
        tokens = budget // v
        if tokens >= MIN_TOKENS:
            return Chunks(tokens // MIN_TOKENS * MIN_TOKENS, v)
        return Chunks(MIN_TOKENS, max(1, budget // MIN_TOKENS) if split_vocab else v)
    # Not clamped to n: the plan must not depend on the number of tokens, which torch.compile
    # may trace as a symbol (a chunk larger than n is just one chunk).
    if isinstance(chunk_size, int):
        return Chunks(chunk_size, v)
    tokens, vocab = chunk_size
    return Chunks(tokens, max(1, min(v, vocab)))


class Inputs(NamedTuple):
    """The checked inputs, flattened: hidden (N, D), target (N,) clamped into [0, V)."""

    xp: Any
    hidden: Any
    weight: Any
    bias: Any
    target: Any
    active: Any  # bool (N,): counts towards the loss
    counts: Any  # (N,) work dtype: what each token counts for in "mean" (active, times w[y] with class weights)
    class_weight: Any  # (V,) work dtype, or None
    ignore_index: int
    bad: Any  # bool (N,) of invalid targets on lazy arrays (poisoned to NaN), else None
    dtype: Any  # of the result
    work: Any  # to compute in (float32 for half precision)
    shape: tuple[int, ...]  # of the per-token losses ("none")
    chunks: Chunks
    chunk_size: Any  # as asked (None: automatic), for kernels with plans of their own


_MISSING = object()


class TorchArguments(NamedTuple):
    """torch's keywords resolved: the bias (``linear_bias`` or lossreg's ``bias``), the ignored
    index (None: -100, torch's default for class indices) and the tokens per chunk (``chunk_size``,
    else ``options.batch_chunk_size``)."""

    bias: Any
    bias_name: str  # as the caller spelt it, for the errors
    ignore_index: Any
    chunk_size: Any


def torch_arguments(name: str, linear_bias: Any, bias: Any, ignore_index: Any, options: Any,
                    chunk_size: Any) -> TorchArguments:
    """The keywords of ``torch.nn.functional.linear_cross_entropy`` in lossreg's terms.

    ``options`` is torch's ``LinearCrossEntropyOptions``: lossreg always chunks, so of its fields
    only ``batch_chunk_size`` means something here (tokens per chunk, unless ``chunk_size`` says)."""
    if linear_bias is not None and bias is not None:
        raise LossValueError(name, "bias", "either linear_bias (torch's name) or bias (lossreg's), not both",
                             "both")
    if options is not None:
        tokens = getattr(options, "batch_chunk_size", _MISSING)
        if tokens is _MISSING:
            raise LossTypeError(name, "options", "None or a torch.nn.LinearCrossEntropyOptions",
                                type(options).__name__)
        if chunk_size is None and tokens is not None:
            chunk_size = tokens
    named = ("bias", bias) if linear_bias is None else ("linear_bias", linear_bias)
    return TorchArguments(named[1], named[0], -100 if ignore_index is None else ignore_index, chunk_size)


def takes_logits(linear_weight: Any, target: Any) -> bool:
    """Whether a call goes through the logits, as torch's reference path: with a K-dimensional
    ``linear_weight`` (C, d1, ..., dK, D) or probability (floating) targets. The chunked
    computation (and its kernels) takes class indices and a (C, D) weight with C ≥ 1 (the logits
    of no classes are nothing to chunk: cross_entropy's answer for C = 0 is torch's)."""
    if getattr(linear_weight, "ndim", 2) != 2 or getattr(linear_weight, "shape", (1,))[0] == 0:
        return True
    dtype = getattr(target, "dtype", None)
    if dtype is None:  # not an array: the chunked path's checks say so
        return False
    # Read from the dtype itself where it can be: array_namespace is an lru_cache, which
    # torch.compile warns about on every trace.
    kind = getattr(dtype, "kind", None)  # NumPy's dtypes, which JAX, CuPy and Dask use
    if isinstance(kind, str) and kind != "V":  # "V": ml_dtypes' bfloat16 (JAX's), which isdtype knows
        return kind == "f"
    floating = getattr(dtype, "is_floating_point", None)  # torch's
    if isinstance(floating, bool):
        return floating
    return bool(array_namespace(target).isdtype(dtype, "real floating"))


def _check_chunk_size(name: str, chunk_size: Any) -> None:
    def positive(k: Any) -> bool:
        return isinstance(k, int) and not isinstance(k, bool) and k >= 1

    ok = chunk_size is None or positive(chunk_size) or (
        isinstance(chunk_size, (tuple, list)) and len(chunk_size) == 2 and all(map(positive, chunk_size)))
    if not ok:
        raise LossValueError(name, "chunk_size", "None, a positive number of tokens, or a pair (tokens, "
                             "vocabulary entries) of positive integers", repr(chunk_size))


def check_extensions(name: str, z_loss: Any, softcap: Any) -> None:
    """lossreg's options beyond torch's: the z-loss weight (≥ 0) and the soft cap (None or > 0,
    finite: ∞ · tanh(z / ∞) is NaN; no cap is None)."""
    toolkit.check_number(name, "z_loss", z_loss, 0.0)
    if softcap is not None:
        # One expectation for every refused cap: check_number's own ("a finite number in [0.0,
        # inf]", "a finite number ≥ 0.0") would say that 0, which is refused too, is taken.
        expected = "None or a positive finite number"
        try:
            toolkit.check_number(name, "softcap", softcap, 0.0, finite=True)
        except LossValueError as e:
            raise LossValueError(name, "softcap", expected, e.got) from None
        if softcap == 0:
            raise LossValueError(name, "softcap", expected, repr(softcap))


def check_softcap_range(name: str, softcap: Any, xp: Any, dtype: Any) -> None:
    """A soft cap beyond the largest number of the dtype its logits are computed in (1e39 on
    float32 arrays) is ∞ there, and ``∞ · tanh(z / ∞)`` is NaN: refused, as ``softcap=inf`` is,
    rather than a NaN loss."""
    if softcap is not None and softcap > float(xp.finfo(dtype).max):
        raise LossValueError(name, "softcap", f"None or a positive number at most {dtype}'s largest, "
                             f"{float(xp.finfo(dtype).max):.6g} (beyond it the cap is inf there, and "
                             "inf * tanh(z / inf) is NaN)", repr(softcap))


def _tokens(name: str, argument: str, xp: Any, x: Any, shape: tuple[int, ...]) -> Any:
    """``x`` with its leading axes merged into one of tokens. JAX's explicit sharding mode refuses
    merging an axis split over devices after one that is not ((B, T) split over T, the sequence
    parallelism of long contexts): that is lossreg's UnsupportedError saying what works, not
    JAX's error from deep inside the loss (its class is private, so it is told by name)."""
    try:
        return xp.reshape(x, shape)
    except Exception as exc:
        if type(exc).__name__ != "ShardingTypeError":
            raise
        raise UnsupportedError(
            f"{name}: argument '{argument}' of shape {tuple(x.shape)} is split over devices on an axis that JAX's "
            "explicit sharding mode cannot merge into the tokens' axis (a sequence axis split while the batch axis "
            "is not); split the batch axis (with or without the sequence axis), or compute the logits and call "
            "cross_entropy on them") from exc


def prepare_inputs(name: str, hidden: Any, weight: Any, target: Any, bias: Any, ignore_index: Any, reduction: str,
            label_smoothing: Any, z_loss: Any, softcap: Any, chunk_size: Any, *, poison: bool = False,
            bias_name: str = "bias", class_weight: Any = None) -> Inputs:
    """The checked, flattened inputs. ``poison``: flag invalid targets (NaN results) without reading
    them, for callers being traced (a torch kernel under torch.compile)."""
    xp = toolkit.namespace(name, optional=(bias_name, "weight"), input=hidden, linear_weight=weight, target=target,
                           weight=class_weight, **{bias_name: bias})
    toolkit.check_floating(name, "input", hidden, xp)
    toolkit.check_floating(name, "linear_weight", weight, xp)
    toolkit.check_reduction(name, reduction)
    toolkit.check_number(name, "ignore_index", ignore_index, integer=True)
    toolkit.check_number(name, "label_smoothing", label_smoothing, 0.0, 1.0)
    check_extensions(name, z_loss, softcap)
    _check_chunk_size(name, chunk_size)
    if hidden.ndim == 0:
        raise LossValueError(name, "input", "hidden states of shape (D) or (N, ..., D)", "a 0-d array")
    d = hidden.shape[-1]
    if weight.ndim != 2 or weight.shape[1] != d:  # (no classes, (0, d), go through the logits: takes_logits)
        raise LossValueError(name, "linear_weight", f"a (V, {d}) matrix (torch.nn.Linear's weight) "
                             f"for hidden states of width {d}", f"shape {tuple(weight.shape)}")
    v = weight.shape[0]
    dtype = toolkit.result_type(xp, hidden, weight)
    if bias is not None:
        toolkit.check_floating(name, bias_name, bias, xp)
        toolkit.check_shape(name, bias_name, bias, (v,), f"a vector of one bias per vocabulary entry, shape ({v},)")
        dtype = toolkit.result_type(xp, dtype, bias)
    toolkit.check_integer(name, "target", target, xp, "integer class indices")
    lead = tuple(hidden.shape[:-1])
    n = math.prod(lead)
    shape = lead
    if tuple(target.shape) != lead:
        if not (len(lead) == 1 and tuple(target.shape) == (lead[0], 1)):  # the (N, 1) labels cross_entropy takes
            wanted = f"{lead}" + (f" or ({lead[0]}, 1)" if len(lead) == 1 else "")
            raise LossValueError(name, "target", f"class indices of shape {wanted} for hidden states of shape "
                                 f"{tuple(hidden.shape)}", f"shape {tuple(target.shape)}")
    t, active, bad = toolkit.class_targets(name, xp, _tokens(name, "target", xp, target, (n,)), ignore_index, v,
                                           read=not poison)
    work = toolkit.compute_dtype(xp, dtype)
    check_softcap_range(name, softcap, xp, work)
    counts = xp.astype(active, work)
    if class_weight is not None:  # as cross_entropy takes them: cast to the input's dtype, not promoting it
        toolkit.check_floating(name, "weight", class_weight, xp)
        toolkit.check_shape(name, "weight", class_weight, (v,), f"a weight per class, shape ({v},)")
        if z_loss:
            raise LossValueError(name, "z_loss", "0 with class weights (the z-loss is defined without them)",
                                 repr(z_loss))
        class_weight = toolkit.as_dtype(xp, class_weight, work)
        counts = counts * toolkit.lookup(xp, class_weight, t)
    return Inputs(xp, _tokens(name, "input", xp, hidden, (n, d)), weight, bias, t, active, counts, class_weight,
                  ignore_index, bad, dtype, work, shape, _plan(name, xp, hidden, n, v, chunk_size), chunk_size)


def _plan(name: str, xp: Any, hidden: Any, n: int, v: int, chunk_size: Any) -> Chunks:
    """:func:`plan_chunks` for ``hidden``'s library.

    On Dask, whose own blocks (the hidden states' token chunks by the weight's vocabulary chunks)
    bound the logits each task holds, one chunk of the whole problem: the graph of
    ``cross_entropy(h @ w.T, t)``, where chunks of MIN_TOKENS would add ~60 tasks per 128 tokens.
    With the tokens split over a JAX mesh of explicit axes, chunks in multiples of the parts,
    which JAX slices a split axis in: the automatic plan's rounded up, any other refused.
    """
    if chunk_size is None and is_dask_namespace(xp):
        return Chunks(max(n, 1), max(v, 1))
    if is_jax_namespace(xp) and not isinstance(n, int):
        # jax.export's symbolic size: the chunks (a Python loop, or the kernel's scan) are planned
        # from the number of tokens, which JAX cannot compare or iterate over (its bare
        # InconclusiveDimensionOperation or TypeError from inside the loss). torch.compile's
        # symbolic sizes are ints to this test only when they are not symbolic either, and
        # guards answer their comparisons: they go on.
        raise UnsupportedError(
            f"{name}: argument 'input' of shape {tuple(hidden.shape)} has a symbolic number of tokens "
            "(jax.export with a symbolic shape); lossreg plans its chunks from that number: export it at a "
            "fixed size, or compute the logits and call cross_entropy on them, which exports at any size")
    plan = plan_chunks(n, v, chunk_size)
    parts = toolkit.explicit_parts(hidden, 0) if hidden.ndim == 2 else 1
    # parts first: under torch.compile, n is a symbol and `plan.tokens < n` a guard on the batch size.
    if parts > 1 and plan.tokens < n and plan.tokens % parts:
        if chunk_size is not None:
            raise LossValueError(name, "chunk_size", f"chunks of tokens in multiples of {parts}, the devices the "
                                 "tokens are split over on a JAX mesh of explicit axes", repr(chunk_size))
        plan = Chunks(-(-plan.tokens // parts) * parts, plan.vocab)
    return plan


def prepare_call(name: str, input: Any, linear_weight: Any, target: Any, *, linear_bias: Any, bias: Any,
                 weight: Any, ignore_index: Any, options: Any, chunk_size: Any, reduction: str,
                 label_smoothing: Any, z_loss: Any, softcap: Any, poison: bool = False) -> Inputs | None:
    """The chunked form's checked inputs from ``linear_cross_entropy``'s keywords (torch's and
    lossreg's), or None for a call that goes through the logits (:func:`takes_logits`)."""
    if takes_logits(linear_weight, target):
        return None
    given = torch_arguments(name, linear_bias, bias, ignore_index, options, chunk_size)
    return prepare_inputs(name, input, linear_weight, target, given.bias, given.ignore_index, reduction,
                          label_smoothing, z_loss, softcap, given.chunk_size, poison=poison, bias_name=given.bias_name,
                          class_weight=weight)


def token_weights(xp: Any, active: Any, reduction: str, work: Any, counts: Any = None) -> Any:
    """``d result / d ℓ_n`` (N,) in ``work``: 1 for the tokens not ignored (``active``), over the
    mean's denominator for "mean" (the sum of ``counts``, what each token counts for: w[y] with
    class weights, else 1); 0 for the others (for all when every token is ignored: torch's zero
    gradient beside its NaN mean). Tokens kept whose class weights sum to 0 divide by that 0:
    torch's NaN gradient, on them alone. Shared by the portable gradient and the torch and JAX kernels."""
    c = xp.astype(active, work)
    if reduction != "mean":
        return c
    total = xp.sum(c if counts is None else xp.astype(counts, work))
    return xp.where(active, c / xp.where(xp.any(active), total, xp.ones_like(total)), 0.0)


def reduce_tokens(xp: Any, losses: Any, active: Any, bad: Any, reduction: str, shape: tuple[int, ...], dtype: Any,
                  work: Any, counts: Any = None) -> Any:
    """The per-token losses (N,) poisoned where ``bad`` (NaN), reduced as ``cross_entropy`` does:
    "none" in ``shape``, "sum", or "mean": divided by the sum of ``counts`` (w[y] of the active
    tokens with class weights, else their number: 0 / 0 = NaN when every token is ignored, as
    torch), in ``dtype``. Shared by the portable gradient and the torch and JAX kernels."""
    losses = toolkit.poison(xp, losses, bad)
    if reduction == "none":
        # Not reshaped to the shape they have (the torch kernel's call): that reshape is a view, and
        # autograd marks a view made inside a custom operator as such and refuses in-place changes
        # of the result (``losses.mul_(mask)``), which torch's F.linear_cross_entropy takes.
        out = losses if tuple(losses.shape) == tuple(shape) else xp.reshape(losses, shape)
    elif reduction == "sum":
        out = xp.sum(losses)
    else:
        out = mean_of_tokens(xp, xp.sum(losses), xp.astype(active if counts is None else counts, work), active)
    return toolkit.as_dtype(xp, out, dtype)


def mean_of_tokens(xp: Any, summed: Any, counts: Any, active: Any = None) -> Any:
    """``summed / Σ counts``, cross_entropy's mean as torch divides it: NaN when no token counts
    (every one ignored, or every w[y] 0) even where label smoothing made ``summed`` non-zero, since
    torch divides its two parts apart (0 / 0 + s / 0); without NumPy's division warning. Its
    gradient is torch's: 0 when every token is ignored, NaN when the ``active`` ones weigh 0."""
    total = xp.sum(counts)
    none = xp.all(counts == 0)
    # Made 0 from itself, not replaced: the gradient stays torch's NaN where the kept tokens weigh 0.
    # summed - summed, not summed * 0.0: under torch.func.jvp a 0-d float32 tensor times a Python
    # float has a float64 tangent (the float counts as a 0-d float64 tensor there), and the jvp and
    # jacfwd of a float32 "mean" were float64.
    kept = xp.where(none, summed - summed, summed)
    if is_jax_namespace(xp):
        # JAX does not warn, and IEEE gives the answers with no NaN or inf constant in an untaken
        # branch, which jax_debug_nans (jit off) would flag.
        return kept / total
    # Every token ignored: torch's zero gradient, from a division by 1 in the branch not taken.
    ignored = none if active is None else ~xp.any(active)
    mean = xp.where(ignored, math.nan, toolkit.divide(xp, kept, xp.where(ignored, 1.0, total)))
    return mean[()] if is_numpy_namespace(xp) else mean  # the NumPy scalar toolkit.divide gives


def _logits(xp: Any, h: Any, weight: Any, bias: Any, j: int, k: int, softcap: float | None,
            work: Any) -> tuple[Any, Any]:
    """The logits of vocabulary entries [j, k): ``(softcap · tanh(u / softcap), tanh(u / softcap))``
    with ``u = h @ w.T + b`` (w, b: those rows of the weight and bias), or ``(u, None)``."""
    w, b = weight[j:k, ...], None if bias is None else bias[j:k]
    u = xp.matmul(toolkit.as_dtype(xp, h, work), xp.matrix_transpose(toolkit.as_dtype(xp, w, work)))
    if b is not None:
        # Of u's rank: JAX's rank_promotion="raise" refuses an implicit promotion.
        u = u + toolkit.as_dtype(xp, xp.reshape(b, (1,) * (u.ndim - b.ndim) + tuple(b.shape)), work)
    if softcap is None:
        return u, None
    th = xp.tanh(u / softcap)
    return softcap * th, th


def _forward(xp: Any, h: Any, weight: Any, bias: Any, tcol: Any, blocks: list[tuple[int, int]], cw: Any, *,
             softcap: float | None, work: Any, w_total: Any) -> tuple[Any, Any, Any, list[tuple[Any, Any]]]:
    """The first pass of :func:`chunk_loss` over the vocabulary blocks: ``(lse, z[y], Σ_c w_c (lse -
    z_c), kept)``, the sum None where ``w_total`` (W, the classes' total weight) is None, without
    label smoothing; ``kept`` holds the logits and exponentials of a single block, which the
    gradient reuses (empty with several blocks).

    The sum is torch's, of non-negative terms: it is kept as ``Σ_c w_c (z_c - a)``, ``a`` the first
    block's shift, and taken from ``W (lse - a)`` at the end, where ``W lse - Σ_c w_c z_c`` would
    overflow (logits within a factor V of the largest float: inf - inf) or cancel (logits far
    from 0 in float32).

    Each block is one call of :func:`_online_block`, on eager JAX one compiled program per shape
    (its block of the weight, bias, class weights and targets sliced here: the offset of a block
    is not one more program): a block's work is the same arrays of one block as op by op, where
    a program of the whole chunk might hold every block's logits at once."""
    v = weight.shape[0]
    kept: list[tuple[Any, Any]] = []
    picked = zsum = m = s = anchor = shift = None
    for j, k in blocks:
        whole = (j, k) == (0, v)
        w = weight if whole else weight[j:k, ...]
        b = bias if whole or bias is None else bias[j:k]
        c = cw if whole or cw is None else cw[j:k]
        tj = tcol if j == 0 else tcol - j  # the targets as indices into this block
        picked, zsum, m, s, anchor, shift, z, th, e = _online_block(
            xp, h, w, b, tj, c, picked, zsum, m, s, anchor, softcap=softcap, work=work,
            weighted=w_total is not None, keep=len(blocks) == 1)
        if len(blocks) == 1:
            kept += [(z, th), (e, s)]
    lse = shift + xp.log(s)
    spread = None if zsum is None else w_total * (lse - anchor) - zsum
    return lse, picked, spread, kept


@toolkit.fused
def _online_block(xp: Any, h: Any, w: Any, b: Any, tj: Any, cw: Any, picked: Any, zsum: Any, m: Any, s: Any,
                  anchor: Any, *, softcap: float | None, work: Any, weighted: bool, keep: bool) -> tuple[Any, ...]:
    """One vocabulary block of :func:`_forward`: its running ``(z[y], Σ_c w_c (z_c - a), max, Σ exp,
    a)`` updated by the block of weight rows ``w`` (bias ``b``, class weights ``cw``, targets ``tj``
    counted from the block's first row), each None before the first block (``zsum`` and the anchor
    ``a`` None unless ``weighted``), then the block's shift and, with ``keep``, its ``(z, tanh,
    exp)`` (else None)."""
    z, th = _logits(xp, h, w, b, 0, w.shape[0], softcap, work)
    pick = xp.sum(xp.where(toolkit.placed_like(xp, _targets_in(xp, tj, 0, w.shape[0], toolkit.device(h)), z), z,
                           xp.zeros_like(z)), axis=1)
    picked = pick if picked is None else picked + pick
    # A constant to autodiff, as toolkit.logsumexp's maximum: lse does not depend on the shift
    # (its derivative cancels), and differentiated, the maximum's backward multiplies its
    # gradient by a 0/1 mask: where an infinite class weight makes that gradient inf - inf,
    # NaN · 0 made the whole row of logits' gradients NaN (torch's: ±inf but at the target).
    mj = toolkit.stop_gradient(xp, xp.max(toolkit.dense_chunks(z), axis=1))
    # m: the running maximum, -inf while every block so far is; shift: m, or 0 there (no
    # -inf - -inf). Rescaling by exp(m - shift), not from a 0 standing in for -inf, keeps
    # a block of -inf followed by logits below -88 (float32) from underflowing to lse = -inf.
    m_new = mj if m is None else xp.maximum(m, mj)
    shift = xp.where(m_new == -math.inf, xp.zeros_like(m_new), m_new)
    shifted = z - xp.reshape(shift, (-1, 1))
    if weighted:
        block_w = w.shape[0] if cw is None else xp.sum(cw)
        anchor = shift if anchor is None else anchor
        # Σ_c w_c (z_c - a) = Σ_c w_c (z_c - shift) + (shift - a) Σ_c w_c: each part at most the
        # logits' spread times the block's weight, as torch's Σ_c w_c (lse - z_c) is.
        zs = xp.sum(shifted if cw is None else shifted * xp.reshape(cw, (1, -1)), axis=1)
        zs = zs + (shift - anchor) * block_w
        zsum = zs if zsum is None else zsum + zs
    e = xp.exp(shifted)
    s = xp.sum(e, axis=1) if m is None else s * xp.exp(m - shift) + xp.sum(e, axis=1)
    return (picked, zsum, m_new, s, anchor, shift) + ((z, th, e) if keep else (None, None, None))


def smoothing_weights(xp: Any, cw: Any) -> tuple[Any, Any]:
    """The class weights ``cw`` (V,) as label smoothing's sum takes them: ``(finite, beyond)``, the
    weights with each infinite (or NaN) one made 0, and the sum of those (0 when none is).

    Torch's smoothing term Σ_c w_c (lse - z_c) is +inf for a weight of +inf (lse > z_c), but the
    streamed form W (lse - a) - Σ_c w_c (z_c - a) is inf - inf and multiplies the weight by the
    0 of the largest logit: NaN. Taken over the finite weights, plus ``beyond`` (±inf, or NaN for
    mixed signs, torch's answer but where that class takes all the probability, lse = z_c: NaN
    there). O(V), once per chunk: no work of the logits' size is added."""
    finite = xp.isfinite(cw)
    return xp.where(finite, cw, xp.zeros_like(cw)), xp.sum(xp.where(finite, xp.zeros_like(cw), cw))


def _targets_in(xp: Any, tcol: Any, j: int, k: int, dev: Any) -> Any:
    """(B, k - j): where each token's target (``tcol``, (B, 1)) is vocabulary entry j, j + 1, ..."""
    return xp.reshape(xp.arange(j, k, device=dev), (1, -1)) == tcol


def add_weight_grad(xp: Any, d_weight: Any, start: int, g: Any, h: Any) -> Any:
    """``d_weight[start : start + B'] += gᵀ h`` for ``g`` (B, B') and ``h`` (B, D), by blocks of
    :data:`WEIGHT_GRAD_ELEMENTS`: the product of a whole chunk would be a temporary of the weight's
    size (V×D, 1/8 of the logits at D/N = 1/8), each block is small. In place where the library
    allows it (NumPy, torch, array-api-strict); the JAX kernel passes a loop of its own, since
    XLA would schedule the blocks of a Python loop side by side."""
    rows = max(1, WEIGHT_GRAD_ELEMENTS // max(h.shape[1], 1))
    width = g.shape[1]
    for j in range(0, width, rows):
        k = min(j + rows, width)
        part = xp.matmul(xp.matrix_transpose(g if (j, k) == (0, width) else g[:, j:k]), h)
        d_weight = xpx.at(d_weight)[start + j:start + k, ...].add(part)
    return d_weight


def _blocks(v: int, vocab: int) -> list[tuple[int, int]]:
    """The vocabulary blocks [j, k) of ``vocab`` entries (the last one shorter) of a vocabulary of ``v``."""
    return [(j, min(j + vocab, v)) for j in range(0, v, vocab)]


def _class_totals(xp: Any, t: Any, cw: Any, v: int) -> tuple[Any, Any]:
    """``(w[y_n], W)``: each token's class weight and their total (1.0 and V without class weights)."""
    return (1.0 if cw is None else toolkit.lookup(xp, cw, t)), (v if cw is None else xp.sum(cw))


def _forward_losses(xp: Any, h: Any, weight: Any, bias: Any, tcol: Any, active: Any, cw: Any, wy: Any, w_total: Any,
                    blocks: list[tuple[int, int]], *, label_smoothing: float, z_loss: float, softcap: float | None,
                    work: Any) -> tuple[Any, Any, list[tuple[Any, Any]]]:
    """``(losses, lse, kept)`` of one chunk of tokens (targets ``tcol`` (B, 1)): :func:`_forward`
    and :func:`chunk_loss`'s formula of ℓ_n, 0 for the tokens not ``active``."""
    v = weight.shape[0]
    spread_w, beyond = (cw, None) if cw is None or not label_smoothing else smoothing_weights(xp, cw)
    lse, picked, spread, kept = _forward(xp, h, weight, bias, tcol, blocks, spread_w, softcap=softcap,
                                         work=work, w_total=(None if not label_smoothing else
                                                             w_total if beyond is None else xp.sum(spread_w)))
    losses = (1.0 - label_smoothing) * wy * (lse - picked)
    if label_smoothing:
        losses = losses + (label_smoothing / v) * (spread if beyond is None else spread + beyond)
    if z_loss:
        losses = losses + z_loss * lse * lse
    losses = xp.where(toolkit.placed_like(xp, active, losses), losses, xp.zeros_like(losses))
    return losses, lse, kept


def _chunk_losses(xp: Any, h: Any, weight: Any, bias: Any, t: Any, active: Any, cw: Any, *, label_smoothing: float,
                  z_loss: float, softcap: float | None, vocab: int, work: Any) -> tuple[Any, Any]:
    """``(losses, lse)`` of one chunk of tokens, ``t`` (B,) its targets: :func:`chunk_loss` without gradients."""
    v = weight.shape[0]
    wy, w_total = _class_totals(xp, t, cw, v)
    losses, lse, _ = _forward_losses(xp, h, weight, bias, xp.reshape(t, (-1, 1)), active, cw, wy, w_total,
                                     _blocks(v, vocab), label_smoothing=label_smoothing, z_loss=z_loss,
                                     softcap=softcap, work=work)
    return losses, lse


# A chunk of a single vocabulary block as one program on eager JAX: it holds that block's arrays,
# as op by op (with several blocks, a program of the chunk might hold them all at once). Not
# bitwise the values op by op: within a fusion XLA contracts a product and a sum into one FMA (as
# under jax.jit): a few ulps of the chunk's largest loss; the conformance tolerances are far wider.
_whole_chunk_losses = toolkit.fused(_chunk_losses)


def chunk_loss(xp: Any, h: Any, weight: Any, bias: Any, t: Any, active: Any, coef: Any, *, label_smoothing: float,
               z_loss: float, softcap: float | None, vocab: int, work: Any, lse: Any = None,
               grads: bool = True, d_weight: Any = None, d_bias: Any = None,
               add_weight: Callable[..., Any] = add_weight_grad,
               class_weight: Any = None) -> tuple[Any, Any, Any, Any, Any]:
    """One chunk of tokens: ``(losses, lse, d_hidden, d_weight, d_bias)``.

    ``h`` (B, D), ``t`` (B,) in [0, V), ``active`` and ``coef`` (B,) (``coef`` = d result /
    d ℓ_n). With z = the (soft-capped) logits, lse_n = log Σ_c exp z_nc, ε the smoothing,
    ζ the z-loss weight and w the class weights (all 1 without; then W = Σ_c w_c = V),

        ℓ_n = (1 - ε) w_{y_n} (lse_n - z_{n,y_n}) + (ε / V) (W lse_n - Σ_c w_c z_nc) + ζ lse_n²
        ∂ℓ_n/∂z_nc = ((1 - ε) w_{y_n} + ε W / V + 2ζ lse_n) p_nc - (1 - ε) w_{y_n} [c = y_n] - ε w_c / V

    with p = softmax(z) (torch's cross-entropy with class weights and smoothing); under the soft
    cap, the gradient of the raw logits is that times ``1 - tanh²``. The vocabulary goes by blocks of ``vocab``: a first
    pass keeps a running maximum and sum of exponentials (unless ``lse`` is given, as in the
    backward pass that recomputes the logits), a second recomputes each block for its gradient;
    with one block the logits are computed once. ``grads=False``: losses and lse only. With
    gradients, this chunk's ``Gᵀ h`` and ``Σ G`` are added into the accumulators ``d_weight``
    (V, D) and ``d_bias`` (V,) (work dtype) through ``add_weight`` (:func:`add_weight_grad`), and
    they are returned.
    """
    v = weight.shape[0]
    blocks = _blocks(v, vocab)
    if not grads and (lse is None or len(blocks) == 1):
        # On eager JAX a chunk of one block is one compiled program per shape and options, where
        # its operations were some forty (each compiled per shape); with several blocks, each block is.
        forward = _whole_chunk_losses if len(blocks) == 1 else _chunk_losses
        losses, lse = forward(xp, h, weight, bias, t, active, class_weight, label_smoothing=label_smoothing,
                              z_loss=z_loss, softcap=softcap, vocab=vocab, work=work)
        return losses, lse, None, d_weight, d_bias
    tcol = xp.reshape(t, (-1, 1))
    cw = class_weight
    wy, w_total = _class_totals(xp, t, cw, v)
    losses = None
    kept: list[tuple[Any, Any]] = []  # a single block's logits and exponentials, reused by the gradient
    if lse is None or len(blocks) == 1:
        losses, lse, kept = _forward_losses(xp, h, weight, bias, tcol, active, cw, wy, w_total, blocks,
                                            label_smoothing=label_smoothing, z_loss=z_loss, softcap=softcap,
                                            work=work)
    if not grads:
        return losses, lse, None, d_weight, d_bias
    # ∂ℓ/∂z = a p - coef ((1 - ε) w_y [c = y] + (ε / V) w_c). On the target the subtracted part
    # is formed as ``a``'s first two terms are, so that with one class (p = 1 and W = w_y: the
    # loss is constant) the gradient is exactly 0, torch's, not a rounding residue that the
    # weight gradient multiplies by the hidden states (1e282 for hidden states of 1e300).
    # Without smoothing its terms are left out, not multiplied by 0: an infinite class weight (W =
    # inf) would make 0 · inf = NaN the gradient of every token, where torch's is finite for the
    # tokens of finite weight.
    uniform_y = (label_smoothing / v) * (1.0 if cw is None else wy) if label_smoothing else 0.0
    scale = (1.0 - label_smoothing) * wy + ((label_smoothing / v) * w_total if label_smoothing else 0.0)
    if z_loss:  # not 0 · lse, which is NaN for an infinite lse
        scale = scale + 2.0 * z_loss * lse
    a = xp.reshape(coef * scale, (-1, 1))
    on_target = xp.reshape(coef * ((1.0 - label_smoothing) * wy + uniform_y), (-1, 1))
    uniform = xp.reshape(coef * (label_smoothing / v), (-1, 1))
    d_h = None
    hw = toolkit.as_dtype(xp, h, work)
    dev = toolkit.device(h)
    for j, k in blocks:
        if kept:
            (z, th), (e, s) = kept
            kept.clear()  # drop each chunk-sized array as soon as it is used: eager libraries free it
            p = e * xp.reshape(1.0 / s, (-1, 1))
            del e
        else:
            z, th = _logits(xp, h, weight, bias, j, k, softcap, work)
            p = xp.exp(z - xp.reshape(lse, (-1, 1)))
        del z
        g = a * p
        del p
        off_target: Any = 0.0
        if label_smoothing:
            off_target = uniform if cw is None else uniform * xp.reshape(cw[j:k], (1, -1))
        g = g - xp.where(toolkit.placed_like(xp, _targets_in(xp, tcol, j, k, dev), g), on_target, off_target)
        if th is not None:
            g = g * (1.0 - th * th)
        wj = toolkit.as_dtype(xp, weight[j:k, ...], work)
        dh = xp.matmul(g, wj)
        d_h = dh if d_h is None else d_h + dh
        d_weight = add_weight(xp, d_weight, j, g, hw)
        d_bias = xpx.at(d_bias)[j:k].add(xp.sum(g, axis=0))
    return losses, lse, d_h, d_weight, d_bias
