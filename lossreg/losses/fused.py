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

import math
from typing import Any

import array_api_extra as xpx

from .. import toolkit
from ..chunked import (Inputs, TorchArguments, check_extensions, check_softcap_range, chunk_loss, mean_of_tokens,
                       prepare_call, reduce_tokens, token_weights, torch_arguments)
from ..errors import LossError, LossTypeError, LossValueError, UnsupportedError
from ..registry import define_loss, plain_number
from .classification import cross_entropy

def _coefficients(inp: Inputs, reduction: str, cotangent: Any) -> Any:
    """``d result / d ℓ_n`` (N,) in the work dtype (:func:`~lossreg.chunked.token_weights`), times the cotangent."""
    xp = inp.xp
    act = token_weights(xp, inp.active, reduction, inp.work, inp.counts)
    if cotangent is None:
        return act
    if type(cotangent) in (int, float):  # a scalar result's cotangent, as a Python number
        return act * float(cotangent)
    g = toolkit.as_dtype(xp, cotangent, inp.work)
    return act * (xp.reshape(g, (-1,)) if reduction == "none" else g)


def _options(label_smoothing: float, z_loss: float, softcap: float | None, inp: Inputs) -> dict[str, Any]:
    return {"label_smoothing": float(label_smoothing), "z_loss": float(z_loss),
            "softcap": None if softcap is None else float(softcap), "vocab": inp.chunks.vocab, "work": inp.work,
            "class_weight": inp.class_weight}


def _finish(inp: Inputs, losses: Any, reduction: str) -> Any:
    return reduce_tokens(inp.xp, losses, inp.active, inp.bad, reduction, inp.shape, inp.dtype, inp.work, inp.counts)


def _empty(xp: Any, hidden: Any, work: Any) -> Any:
    """The (0,) losses of no tokens, made from the hidden states so that autodiff finds them used."""
    return xp.sum(toolkit.as_dtype(xp, hidden, work), axis=1) * 0.0


@define_loss(
    class_name="LinearCrossEntropyLoss",
    aliases=("fused_linear_cross_entropy", "linear_ce", "cut_cross_entropy"),
    differentiable=("input", "linear_weight"),
    array_options=("linear_bias", "weight", "bias"),
    reference="torch.nn.functional.linear_cross_entropy(input, linear_weight, target)",
)
def linear_cross_entropy(input: Any, linear_weight: Any, target: Any, /, *, linear_bias: Any = None,
                         weight: Any = None, reduction: str = "mean", ignore_index: int | None = None,
                         label_smoothing: float = 0.0, options: Any = None, z_loss: float = 0.0,
                         softcap: float | None = None, chunk_size: Any = None, bias: Any = None) -> Any:
    r"""Cross-entropy of a linear layer's output, without materialising it.

    $$
    \ell_n = \mathrm{CE}(z_n, y_n) + \lambda_z\, \mathrm{lse}_n^2
    \qquad z_n = h_n W^\top + b \quad \left(\text{or } s \tanh(z_n / s)\right)
    \qquad \mathrm{lse}_n = \log \sum_c e^{z_{nc}}
    $$

    ``cross_entropy(z, target, weight, ignore_index, label_smoothing) + z_loss · mean(lse²)``,
    with ``z = input @ linear_weight.T + linear_bias`` (or ``softcap · tanh(z / softcap)``,
    Gemma 2's soft cap), ``lse_n = log Σ_c exp z_nc``; the z-loss (PaLM, Chowdhery et al. 2022)
    is counted, like the cross-entropy, only for tokens not ignored, and "mean" divides both by
    their number (by Σ w[y] with class weights ``weight``, as cross-entropy; the z-loss is then
    not defined). torch's ``F.linear_cross_entropy`` with lossreg's z-loss, soft cap and chunking.

    Shapes: ``input`` (..., D) (any leading axes, each a batch axis: (B, T, D) hidden states take
    (B, T) targets), ``linear_weight`` (C, D) as ``torch.nn.Linear`` holds it, ``target`` the
    leading shape of ``input`` (or (N, 1) for (N, D) inputs) of class indices in [0, C) or
    ``ignore_index``. "none" returns the leading shape. Computed in chunks of ``chunk_size``
    tokens (None: automatic; a pair: tokens and classes) with an online log-sum-exp, in float32
    for half-precision inputs, so that no N×C array exists.

    torch's two other forms are computed through the logits, as torch's own reference path
    (``options=None``) does: probability targets (floating, of the logits' shape: (..., C)); and
    K-dimensional outputs, a ``linear_weight`` of shape (C, d1, ..., dK, D) giving logits
    (N, C, d1, ..., dK) for an (N, D) input, with targets (N, d1, ..., dK) (or probabilities
    (N, C, d1, ..., dK)). The z-loss is defined only for the chunked form.

    Reference: ``F.linear_cross_entropy`` (torch ≥ 2.13), that is
    ``F.cross_entropy(F.linear(input, linear_weight, linear_bias), target)``; Liger-Kernel, Cut
    Cross-Entropy (arXiv:2411.09009).

    Args:
        linear_bias: the linear layer's bias, shape (C,) (or (C, d1, ..., dK)), or None.
        weight: a weight per class, shape (C,), or None, as for :func:`cross_entropy`.
        ignore_index: the class index to ignore; None means -100 for class indices and none
            for probability targets (torch's rule).
        label_smoothing: ε in [0, 1], as for :func:`cross_entropy`.
        options: torch's ``LinearCrossEntropyOptions``, or None. lossreg always chunks; its
            ``batch_chunk_size`` is taken as the tokens per chunk when ``chunk_size`` is None.
        z_loss: λ_z ≥ 0, the weight of the squared log-partition term (0: none).
        softcap: s > 0 to cap the logits at ±s through ``s · tanh(z / s)``, or None (no cap).
        chunk_size: tokens per chunk, or a pair (tokens, classes); None chooses.
        bias: lossreg's earlier name of ``linear_bias`` (give one or the other).
    """
    name = "linear_cross_entropy"
    inp = prepare_call(name, input, linear_weight, target, linear_bias=linear_bias, bias=bias, weight=weight,
                       ignore_index=ignore_index, options=options, chunk_size=chunk_size, reduction=reduction,
                       label_smoothing=label_smoothing, z_loss=z_loss, softcap=softcap)
    if inp is None:
        return _through_logits(input, linear_weight, target, torch_arguments(name, linear_bias, bias, ignore_index,
                               options, chunk_size), weight, ignore_index, reduction, label_smoothing, z_loss, softcap)
    xp = inp.xp
    opts = _options(label_smoothing, z_loss, softcap, inp)
    cw = opts.pop("class_weight")
    # Chunks asked for: on Dask one task per chunk of tokens, which runs the chunks of tokens and of
    # vocabulary asked for on its own rows (toolkit.by_rows; the weight, bias and class weights read
    # whole), where the loop recorded some 25 graph layers per chunk and vocabulary block (250-420 a
    # call at 7 tokens in chunks of 3 by 4 classes). The automatic plan is one chunk on Dask, whose
    # own blocks of tokens and vocabulary bound the logits (see chunked._plan). Hidden states split
    # along D past Dask's chunk size (rows_against gives None) would be merged into a block per
    # task holding all their chunks: op by op, the loop keeps Dask's blocks.
    by_tokens = inp.chunk_size is not None and toolkit.rows_against(xp, inp.hidden, inp.hidden) == (0,)
    rows = (0, None, None, 0, 0, None) if by_tokens else (None,) * 6
    losses = toolkit.by_rows(xp, _token_losses, inp.hidden, inp.weight, inp.bias, inp.target, inp.active, cw,
                             rows=rows, step=inp.chunks.tokens, **opts)
    if reduction != "none":  # as cross_entropy reduces them
        summed = xp.sum(losses)
        result = summed if reduction == "sum" else mean_of_tokens(xp, summed, inp.counts, inp.active)
        return toolkit.as_dtype(xp, toolkit.poison(xp, result, _any(xp, inp.bad)), inp.dtype)
    return _finish(inp, losses, reduction)


def _token_losses(xp: Any, hidden: Any, weight: Any, bias: Any, target: Any, active: Any, class_weight: Any, *,
                  step: int, **options: Any) -> Any:
    """The losses (N,) of the tokens ``hidden`` (N, D), in chunks of ``step`` tokens (``options``:
    :func:`~lossreg.chunked.chunk_loss`'s)."""
    n = hidden.shape[0]
    parts = []
    # The hidden states split once, not sliced chunk by chunk: differentiated (torch, or trainable
    # class weights, which torch's kernels hand here), each slice's gradient is an (N, D) array,
    # N / chunk of them summed, O(N² D / chunk) (N = 16,384, V = 32,000: 128 of them).
    for i, h in zip(range(0, n, step), toolkit.row_blocks(xp, hidden, step)):
        rows = slice(i, min(i + step, n))  # array-api-strict refuses stops past the end
        losses, *_ = chunk_loss(xp, h, weight, bias, target[rows], active[rows], None, grads=False,
                                class_weight=class_weight, **options)
        parts.append(losses)
    return xp.concat(parts) if parts else _empty(xp, hidden, options["work"])


def _through_logits(input: Any, linear_weight: Any, target: Any, args: TorchArguments, weight: Any,
                    ignore_index: Any, reduction: str, label_smoothing: float, z_loss: float,
                    softcap: float | None) -> Any:
    """torch's reference path: the logits (N, C, d1, ..., dK) made whole, then :func:`cross_entropy`."""
    name = "linear_cross_entropy"
    xp = toolkit.namespace(name, optional=(args.bias_name, "weight"), input=input, linear_weight=linear_weight,
                           target=target, weight=weight, **{args.bias_name: args.bias})
    toolkit.check_floating(name, "input", input, xp)
    toolkit.check_floating(name, "linear_weight", linear_weight, xp)
    check_extensions(name, z_loss, softcap)
    if z_loss:
        raise LossValueError(name, "z_loss", "0 with probability targets or a K-dimensional linear_weight "
                             "(the z-loss is defined for class indices, a (C, D) weight and no class weights)",
                             repr(z_loss))
    if input.ndim == 0:
        raise LossValueError(name, "input", "hidden states of shape (D) or (N, ..., D)", "a 0-d array")
    d = input.shape[-1]
    if linear_weight.ndim < 2 or linear_weight.shape[-1] != d:
        raise LossValueError(name, "linear_weight", f"a (C, {d}) or (C, d1, ..., dK, {d}) array for "
                             f"inputs of width {d}", f"shape {tuple(linear_weight.shape)}")
    c, out = linear_weight.shape[0], tuple(linear_weight.shape[1:-1])
    lead = tuple(input.shape[:-1])
    if out and not lead:
        raise LossValueError(name, "input", f"a batch (N, {d}) for the K-dimensional linear_weight of shape "
                             f"{tuple(linear_weight.shape)} (as torch)", f"shape {tuple(input.shape)}")
    if args.bias is not None:
        toolkit.check_floating(name, args.bias_name, args.bias, xp)
        toolkit.check_shape(name, args.bias_name, args.bias, (c, *out), f"one bias per output, shape {(c, *out)}")
    probabilities = xp.isdtype(target.dtype, "real floating")
    n = math.prod(lead)
    batch = (n,) if lead else ()
    if probabilities:
        if ignore_index is not None:
            raise LossValueError(name, "ignore_index", "None with probability targets (torch's rule: a "
                                 "distribution has no ignored class)", repr(ignore_index))
        wanted, flat = (*lead, c, *out), (*batch, c, *out)
        what = (f"probabilities of shape {wanted} (a floating target; class indices would be integers of shape "
                f"{(*lead, *out)})")
    else:
        toolkit.check_integer(name, "target", target, xp, "integer class indices or floating probabilities")
        wanted, flat = (*lead, *out), (*batch, *out)
        what = f"class indices of shape {wanted}"
    toolkit.check_shape(name, "target", target, wanted, f"{what} for an input of shape {tuple(input.shape)} and a "
                        f"linear_weight of shape {tuple(linear_weight.shape)}")
    w2 = xp.reshape(linear_weight, (math.prod(out) * c, d))
    # Unbatched hidden states as one row (n, d), n = 1: torch's forward-mode tangent of a 1-d @ 2-d
    # matmul has the shape (1, C) under the vmap gradcheck batches tangents with, so adding the
    # bias raised there (torch's own OpInfo forward-AD check, check_batched_forward_grad).
    z = xp.matmul(xp.reshape(input, (n, d)), xp.matrix_transpose(w2))
    if args.bias is not None:
        z = z + xp.reshape(args.bias, (1,) * (z.ndim - 1) + (-1,))  # of z's rank: JAX's rank_promotion="raise" refuses implicit ones
    z = xp.reshape(z, (*batch, c, *out))
    if softcap is not None:
        check_softcap_range(name, softcap, xp, z.dtype)
        z = softcap * xp.tanh(z / softcap)
    try:
        losses = cross_entropy(z, xp.reshape(target, flat), weight=weight, ignore_index=args.ignore_index,
                               reduction=reduction, label_smoothing=label_smoothing)
    except LossError as err:  # named for this loss, whose arguments the caller gave
        if isinstance(err, (LossValueError, LossTypeError)):
            raise type(err)(name, err.argument, err.expected, err.got) from None
        raise
    return xp.reshape(losses, (*lead, *out)) if reduction == "none" else losses


def _any(xp: Any, bad: Any) -> Any:
    return None if bad is None else xp.any(bad)


def linear_cross_entropy_value_and_grad(
    input: Any, linear_weight: Any, target: Any, /, *, linear_bias: Any = None, weight: Any = None,
    reduction: str = "mean", ignore_index: int | None = None, label_smoothing: float = 0.0, options: Any = None,
    z_loss: float = 0.0, softcap: float | None = None, chunk_size: Any = None, bias: Any = None,
    cotangent: Any = None,
) -> tuple[Any, tuple[Any, Any, Any]]:
    """:func:`linear_cross_entropy` and its gradients, for array libraries without autodiff.

    Returns ``(value, (d_input, d_linear_weight, d_bias))``: the gradients of ``sum(cotangent ·
    value)`` (``cotangent`` None means ones, so for "none" the gradient of the sum of the
    per-token losses; for "mean" and "sum" it may be a Python number), each of its array's shape
    and dtype (``d_bias`` is None without a bias).
    Chunk by chunk: the gradient of each chunk's logits is made, used for the three matmuls
    ``d_hidden = G W``, ``d_weight += Gᵀ h``, ``d_bias += Σ G`` and dropped, so the peak extra
    memory is a few chunks plus the gradients themselves. Same options and errors as the loss.
    """
    name = "linear_cross_entropy"
    inp = prepare_call(name, input, linear_weight, target, linear_bias=linear_bias, bias=bias, weight=weight,
                       ignore_index=ignore_index, options=options, chunk_size=chunk_size, reduction=reduction,
                       label_smoothing=label_smoothing, z_loss=z_loss, softcap=softcap)
    if inp is None:
        raise UnsupportedError(f"{name}_value_and_grad: probability targets, K-dimensional linear weights and "
                               "a linear weight of no classes, (0, D), are computed through the logits; take their "
                               "gradient with an autodiff library (torch, JAX) calling linear_cross_entropy")
    cotangent = plain_number(cotangent)
    if cotangent is not None and not (reduction != "none" and type(cotangent) in (int, float)):
        want = inp.shape if reduction == "none" else ()
        toolkit.namespace(name, input=input, cotangent=cotangent)
        toolkit.check_floating(name, "cotangent", cotangent, inp.xp)
        toolkit.check_shape(name, "cotangent", cotangent, want, f"an array of the result's shape {want}")
    return _value_and_grad_chunks(inp, reduction, _coefficients(inp, reduction, cotangent),
                               _options(label_smoothing, z_loss, softcap, inp))


def _value_and_grad_chunks(inp: Inputs, reduction: str, coef: Any, opts: dict[str, Any]) -> tuple[Any, tuple[Any, Any, Any]]:
    """``(value, (d_input, d_linear_weight, d_bias))`` of checked inputs, chunk by chunk: each
    chunk's ``coef`` (d result / d ℓ_n) scales its gradients, which the weight and bias ones are
    summed into; invalid targets on lazy arrays poison the gradients as the value."""
    xp = inp.xp
    n, d = inp.hidden.shape
    v = inp.weight.shape[0]
    step = inp.chunks.tokens
    dev = toolkit.device(inp.hidden)
    d_w = xp.zeros((v, d), dtype=inp.work, device=dev)
    d_b = xp.zeros((v,), dtype=inp.work, device=dev)
    grad_h = xp.zeros((n, d), dtype=inp.work, device=dev)
    parts = []
    for i in range(0, n, step):
        rows = slice(i, min(i + step, n))
        losses, _, dh, d_w, d_b = chunk_loss(xp, inp.hidden[rows, ...], inp.weight, inp.bias, inp.target[rows],
                                             inp.active[rows], coef[rows], d_weight=d_w, d_bias=d_b, **opts)
        parts.append(losses)
        grad_h = xpx.at(grad_h)[rows, ...].set(dh)  # in place where the library allows it: no second copy
    losses = xp.concat(parts) if parts else _empty(xp, inp.hidden, inp.work)
    value = _finish(inp, losses, reduction)
    grad_w, grad_b = d_w, d_b
    if inp.bad is not None:  # invalid targets on lazy arrays: NaN gradients as well as NaN losses
        grad_h = toolkit.poison(xp, grad_h, xp.reshape(inp.bad, (-1, 1)))
        grad_w = toolkit.poison(xp, grad_w, xp.any(inp.bad))
        grad_b = toolkit.poison(xp, grad_b, xp.any(inp.bad))
    hidden_shape = (*inp.shape, d)
    grads = (toolkit.as_dtype(xp, xp.reshape(grad_h, hidden_shape), inp.hidden.dtype),
             toolkit.as_dtype(xp, grad_w, inp.weight.dtype),
             None if inp.bias is None else toolkit.as_dtype(xp, grad_b, inp.bias.dtype))
    return value, grads
