"""What the torch kernels and the Triton cross-entropy share: argument checks and in-graph poison.

A module of its own so that ``torch.py`` (which loads ``triton_ce.py`` on first CUDA use) and
``triton_ce.py`` both import it, and neither imports the other at import time: no cycle, and no
half-initialised module whichever is imported first.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.autograd.forward_ad as _forward_ad

from .. import toolkit

Tensor = torch.Tensor
_ENUM = {"none": 0, "mean": 1, "sum": 2}
_FLOAT = frozenset((torch.float16, torch.bfloat16, torch.float32, torch.float64))
_INDEX = frozenset((torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8))
# Read once: torch.amp.is_autocast_available raises nothing but is untraceable by Dynamo before
# torch 2.13 (a graph break, an error under fullgraph=True), where a constant set is traced.
_AUTOCAST_DEVICES = frozenset(d for d in ("cpu", "cuda", "xpu", "mps", "hpu", "mtia", "maia", "xla", "ipu",
                                         torch._C._get_privateuse1_backend_name())
                              if torch.amp.is_autocast_available(d))


def _autocasting(device: str) -> bool:
    """Whether ``torch.autocast`` is on for the device type ``device``; asked only of the types
    autocast knows (torch raises for any other, "meta" say)."""
    return device in _AUTOCAST_DEVICES and torch.is_autocast_enabled(device)


def _differentiated(w: Tensor) -> bool:
    """Whether a derivative with respect to ``w`` (a class or element weight) may be asked for:
    it requires grad, ``torch.func.jvp`` or ``jacfwd`` wraps it, or it is a forward-mode dual
    tensor. torch's kernels refuse the first and silently drop the others' tangent (0 where
    lossreg's reverse mode and the portable path give the derivative), so they decline all three."""
    if w.requires_grad:
        return True
    if torch.compiler.is_compiling():  # Dynamo's graphs carry no forward-mode tangents
        return False
    functorch = torch._C._functorch
    # Beneath torch.func.vmap's batching too (a weight per member of an ensemble): grad's and jvp's
    # wrappers may lie below it, and a dual tensor's tangent is on the tensor it batches.
    while functorch.is_functorch_wrapped_tensor(w):
        if functorch.is_gradtrackingtensor(w):
            return True
        w = functorch.get_unwrapped(w)
    return _dual(w)


def _dual(x: Tensor) -> bool:
    """Whether ``x`` carries a forward-mode tangent (``torch.autograd.forward_ad``), looked for
    beneath torch.func's wrappers: ``unpack_dual`` has no batching rule, and raised torch's
    "Batching rule not implemented for aten::_unpack_dual" on a tensor ``torch.func.vmap``
    batches inside a dual level (``torch.func.jvp``, ``jacfwd`` and ``hessian`` open one)."""
    if _forward_ad._current_level < 0:
        return False
    functorch = torch._C._functorch
    while functorch.is_functorch_wrapped_tensor(x):
        x = functorch.get_unwrapped(x)
    return _forward_ad.unpack_dual(x).tangent is not None


def _func_wrapped(x: Tensor) -> bool:
    """Whether torch.func's transforms (grad, jacfwd, hessian, jvp, vmap) wrap ``x`` in eager mode.
    Kernels whose native op has a first derivative only (CTC, multi-margin) decline there, so
    that forward mode and second derivatives get the portable definition's, which has both."""
    return not torch.compiler.is_compiling() and bool(torch._C._functorch.is_functorch_wrapped_tensor(x))


def _beyond_autograd(x: Tensor) -> bool:
    """Whether ``x`` is seen by more than reverse-mode autograd, which the Triton kernels'
    ``autograd.Function``s serve alone: torch.func's transforms (which refuse a Function without
    ``setup_context``) or a forward-mode dual level (whose tangents a Function without ``jvp``
    drops). The portable path or torch's operator answers there."""
    return _func_wrapped(x) or _forward_ad._current_level >= 0


def _poison(out: Tensor, bad: Tensor | None, reduction: str) -> Tensor:
    """NaN where ``bad`` (elementwise for "none", anywhere for "mean" and "sum"), in the graph."""
    if bad is None:
        return out
    # masked_fill, not where with a filled constant: one launch fewer, which on CUDA is host time.
    return out.masked_fill(bad if reduction == "none" else bad.any(), math.nan)


def _outside_unit(x: Tensor, t: Tensor) -> Tensor:
    """Where BCE's probabilities or targets leave [0, 1], NaN included: what torch's CUDA operator
    asserts on (both, on the device)."""
    return ~((x >= 0) & (x <= 1) & (t >= 0) & (t <= 1))


def _class_args(input: Any, target: Any, weight: Any, ignore_index: Any, reduction: Any) -> Any:
    """``(index, bad)`` to hand to torch for an index-target loss, or None to decline.

    ``index`` is the target as int64; ``bad`` is None where torch's own check (or the host check
    on CUDA) guards the indices, else the mask of invalid ones, which ``index`` then ignores
    and the caller poisons.
    """
    if (not isinstance(target, Tensor) or reduction not in _ENUM or type(ignore_index) is not int
            or input.dtype not in _FLOAT or target.device != input.device):
        return None
    ndim = input.ndim
    if ndim == 0 or (weight is not None and (not isinstance(weight, Tensor) or weight.dtype is not input.dtype
                                              or weight.shape != input.shape[ndim > 1:][:1]
                                              or weight.device != input.device or _differentiated(weight))):
        return None
    if target.dtype is not torch.int64:
        if target.dtype not in _INDEX:
            return None
        target = target.long()
    shape = target.shape
    if ndim == 2:
        if shape != input.shape[:1]:
            if shape != (input.shape[0], 1):
                return None
            target = target.reshape(input.shape[0])  # the source document's (N, 1) labels
    elif shape != input.shape[:1] + input.shape[2:] if ndim > 1 else shape != ():
        return None
    c = input.shape[ndim > 1]
    if not toolkit.reads_values(target):
        # An invalid class becomes ignore_index, and is told by the change: five launches in all,
        # each host time on CUDA (the mask itself took six).
        index = torch.where((target >= 0) & (target < c), target, ignore_index)
        return index, index != target
    if input.is_cuda and target.numel():  # "sync" mode on CUDA, where torch would assert on the device
        if bool(((target != ignore_index) & ((target < 0) | (target >= c))).any()):
            return None  # out-of-range classes: the portable path raises
    return target, None
