"""torch kernels: delegate to ``torch.nn.functional`` where it computes exactly the portable loss.

Each kernel takes the portable signature and returns ``NotImplemented`` for anything it does not
handle exactly as the portable definition does: mixed dtypes, shapes torch would broadcast
(lossreg refuses them), option values lossreg rejects, and any error torch raises (so that the
portable path raises its precise lossreg error). Half precision is computed in float32 and cast
back, as the portable path does.

Invalid values (class indices out of range, probabilities outside [0, 1]) follow
:func:`lossreg.toolkit.reads_values`. Where values may be read (eager CPU tensors, and CUDA in
the "sync" mode) torch's own check raises on the CPU (the kernel then declines, so that the
portable path raises lossreg's error), and on CUDA they are checked on the host before the
native call, since torch would report them with a device-side assert that poisons the CUDA
context. Elsewhere (CUDA in the default mode, ``torch.compile``, ``torch.func`` transforms,
``meta`` tensors) nothing is read: invalid entries are replaced by harmless ones before the
native call and the result is poisoned with NaN in the graph, as the portable path does, so
no host synchronisation happens and the call can be captured in a CUDA graph.

Inside a ``torch.autocast`` region, the losses torch runs in float32 there (its autocast "fp32"
lists, CPU and CUDA: every torch.nn loss lossreg shares but GaussianNLLLoss and
MultiLabelSoftMarginLoss) are run as torch runs them: half-precision tensors cast to float32,
the float32 result returned. For the losses without a torch kernel, this adaptation is their
torch kernel: the portable definition, called as autocast would call it.

torch is imported only when this module is (the kernels hook imports it lazily).
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.checkpoint

from .. import losses as catalogue
from .. import toolkit
from . import _TORCH_AUTOCAST_ONLY, BCE_TRITON_SWITCH, CE_TRITON_SWITCH, switched_on
from .torch_common import (_ENUM, _FLOAT, _INDEX, _autocasting, _class_args, _differentiated, _func_wrapped,
                           _outside_unit, _poison)

Tensor = torch.Tensor
# Typed Any: its stubs say str for the reduction, which the ATen operators take as an int.
_nn: Any = torch._C._nn
# torch.nn.functional's own Python preamble (argument checks, broadcast_tensors) costs several µs
# per call; these kernels check their arguments themselves, so they call the ATen operators
# directly, except for Tensor subclasses, which may override them through __torch_function__.
_HALF = frozenset((torch.float16, torch.bfloat16))
# For _common: bound once, so that a call pays no module lookups.
_FAST = frozenset((torch.float32, torch.float64))
_COMPLEX = frozenset((torch.complex64, torch.complex128))  # the complex dtypes l1_loss takes
_INT64 = torch.int64
# False in eager code, folded to True by Dynamo (torch.compiler.is_compiling also calls
# torch.jit.is_scripting: twice the cost). Non-strict export and make_fx trace fake tensors,
# which the fast path's ``type(...) is Tensor`` already turns away.
_dynamo_compiling = torch.compiler.is_dynamo_compiling
_mode = toolkit._check_mode  # the value-check setting, read as toolkit.reads_values reads it
# Exceptions torch raises through a kernel's call as signals, not refusals: the kernels' fallbacks
# (``except Exception``: the portable path decides) let them pass. Non-reentrant activation
# checkpointing stops its recomputation at the last saved tensor by raising this one; swallowed, the
# portable path would recompute on and trip checkpoint's own assertion.
_SIGNALS: tuple[type[BaseException], ...] = tuple(
    t for t in (getattr(torch.utils.checkpoint, "_StopRecomputationError", None),) if t is not None)


def _common(input: Any, target: Any, ignore_index: Any) -> bool:
    """The common call of an index-target loss, told from Python facts and tensor attributes alone.

    Two plain CPU tensors, (N, C) float32/float64 input and int64 classes, eager code, values
    readable (not "poison"), and no weight (which the caller tests): nothing is read or computed
    here, since torch's own checks then are lossreg's. A class out of range, a target that is not
    (N,), an unknown reduction make torch raise, and the caller's general path decides (it takes
    (N, 1) labels, and declines the rest so that the portable path raises lossreg's error). Under Dynamo (which
    folds ``_dynamo_compiling()`` to True) and on fake or meta tensors the general path runs.
    torch.func transforms may pass: they run torch's check on the real values, and on an
    invalid class the general path poisons, as it would have. Only a 2-d input passes: the
    case whose torch checks (any target but (N,) refused) were compared with lossreg's.
    """
    return (type(input) is Tensor and type(target) is Tensor and type(ignore_index) is int
            and target.dtype is _INT64 and input.dtype in _FAST and input.is_cpu and target.is_cpu
            and input.ndim == 2 and not _dynamo_compiling()
            and (_mode.get() if _mode.active else _mode.default) != "poison")


def _pair(reduction: Any, *tensors: Any) -> bool:
    """A known reduction, and floating tensors of one dtype, shape and device (:func:`_alike`)."""
    return reduction in _ENUM and _alike(*tensors)


def _alike(*xs: Any) -> bool:
    """Floating tensors of one dtype, shape and device. The device is compared because torch lets
    a 0-d CPU tensor join tensors on any device."""
    first = xs[0]
    return (isinstance(first, Tensor) and first.dtype in _FLOAT
            and all(isinstance(x, Tensor) and x.dtype is first.dtype and x.shape == first.shape
                    and x.device == first.device for x in xs))


def _fits(w: Any, input: Tensor) -> bool:
    """``w`` is a floating tensor on the input's device that broadcasts to the input's shape, and
    needs no gradient (torch's BCE kernels refuse a weight that requires one; the portable path
    differentiates it, a ``nn.Parameter`` weight trains)."""
    if not isinstance(w, Tensor) or w.dtype not in _FLOAT or w.device != input.device or _differentiated(w):
        return False
    shape, full = w.shape, input.shape
    return len(shape) <= len(full) and all(s == 1 or s == t for s, t in zip(reversed(shape), reversed(full)))


def _like(w: Any, input: Tensor) -> Any:
    """A weight in the input's dtype, as torch's BCE losses take it (None stays None)."""
    return w if w is None or w.dtype is input.dtype else w.to(input.dtype)


def _plain(*xs: Any) -> bool:
    return all(x is None or type(x) is Tensor for x in xs)


def _float(x: Any) -> Any:
    return None if x is None else x.float()


def _pointwise(aten: Any, functional: Any, input: Any, target: Any, reduction: str, **option: float) -> Any:
    """torch's pointwise loss on two tensors that passed :func:`_pair`: the ATen operator
    ``aten``, or ``functional`` for Tensor subclasses (which may override it through
    ``__torch_function__``); half precision computed in float32, as the portable path does."""
    try:
        if input.dtype in _HALF:
            return aten(input.float(), target.float(), _ENUM[reduction], *option.values()).to(input.dtype)
        if type(input) is Tensor and type(target) is Tensor:
            return aten(input, target, _ENUM[reduction], *option.values())
        return functional(input, target, reduction=reduction, **option)
    except _SIGNALS:
        raise
    except Exception:  # e.g. tensors on two devices: the portable path says so precisely
        return NotImplemented


def mse_loss(input: Any, target: Any, /, *, reduction: str = "mean", weight: Any = None) -> Any:
    """torch's own, without ``weight`` (``F.mse_loss`` computes a weighted one op by op, as the
    portable definition does, but for autocast: see :func:`_composed_under_autocast`)."""
    if weight is not None:
        return _composed_under_autocast(F.mse_loss, input, target, reduction, weight)
    if not _pair(reduction, input, target):
        return NotImplemented
    return _pointwise(_nn.mse_loss, F.mse_loss, input, target, reduction)


def l1_loss(input: Any, target: Any, /, *, reduction: str = "mean", weight: Any = None) -> Any:
    """torch's own, without ``weight``; also on complex64 or complex128 input and target of one
    dtype, which torch's takes (its loss is the real ``|x - y|``, as the portable definition's)."""
    if weight is not None:
        return _composed_under_autocast(F.l1_loss, input, target, reduction, weight)
    if not _pair(reduction, input, target) and not (reduction in _ENUM and _complex_pair(input, target)):
        return NotImplemented
    return _pointwise(_nn.l1_loss, F.l1_loss, input, target, reduction)


def _complex_pair(input: Any, target: Any) -> bool:
    """Complex tensors of one dtype (complex64 or complex128: complex32 is refused by the portable
    path), shape and device."""
    return (isinstance(input, Tensor) and input.dtype in _COMPLEX and isinstance(target, Tensor)
            and target.dtype is input.dtype and target.shape == input.shape and target.device == input.device)


def _composed_under_autocast(functional: Any, input: Any, target: Any, reduction: str, weight: Any) -> Any:
    """A weighted MSE or L1 loss inside ``torch.autocast``: ``functional`` itself, which composes it
    of ordinary operations (not the autocast-listed ``mse_loss``, ``l1_loss``), each of which
    autocast then runs as it does (the CPU keeps the half dtype; CUDA runs ``pow`` and ``sum`` in
    float32). Outside autocast, or with arguments torch would refuse, the portable definition."""
    if not (_pair(reduction, input, target) and isinstance(weight, Tensor) and weight.dtype is input.dtype
            and weight.shape == input.shape and weight.device == input.device
            and _autocasting(input.device.type)):
        return NotImplemented
    return functional(input, target, reduction=reduction, weight=weight)


def _threshold(value: Any) -> bool:
    """A finite Python number ≥ 0: the only thresholds handed to torch (NaN fails the comparison);
    anything else is the portable path's to refuse or to compute."""
    return type(value) in (int, float) and 0 <= value < math.inf


def smooth_l1_loss(input: Any, target: Any, /, *, reduction: str = "mean", beta: float = 1.0) -> Any:
    """torch's own, for its second derivatives too: 1/β inside, at d = 0 included (the portable
    formula's ``abs`` has slope 0 there on torch), and 0 at ``|d| = β``."""
    if not (_pair(reduction, input, target) and _threshold(beta)):
        return NotImplemented
    if beta == 0:  # as F.smooth_l1_loss: ATen's smooth_l1 would divide by β = 0 in its gradient
        return l1_loss(input, target, reduction=reduction)
    return _pointwise(_nn.smooth_l1_loss, F.smooth_l1_loss, input, target, reduction, beta=beta)


def huber_loss(input: Any, target: Any, /, *, reduction: str = "mean", delta: float = 1.0,
               weight: Any = None) -> Any:
    """torch's own, as :func:`smooth_l1_loss`; with ``weight`` as ``F.huber_loss`` computes it,
    ATen's unreduced loss times the weights (so its second derivatives are torch's too)."""
    if not (_pair(reduction, input, target) and _threshold(delta) and delta > 0):
        return NotImplemented
    if weight is None:
        return _pointwise(_nn.huber_loss, F.huber_loss, input, target, reduction, delta=delta)
    if (type(weight) is not Tensor or not _plain(input, target) or input.dtype not in _FAST
            or weight.dtype is not input.dtype or weight.shape != input.shape or weight.device != input.device):
        return NotImplemented  # half precision, promotion, subclasses, refusals: the portable path
    losses = _pointwise(_nn.huber_loss, F.huber_loss, input, target, "none", delta=delta)
    if losses is NotImplemented:
        return NotImplemented
    weighted = losses * weight
    return weighted if reduction == "none" else weighted.sum() if reduction == "sum" else weighted.mean()


def binary_cross_entropy(input: Any, target: Any, /, *, weight: Any = None, reduction: str = "mean") -> Any:
    # torch's own answer everywhere, including its gradient at exactly 0 and 1 ((x - t) divided by
    # max(x (1 - x), 1e-12)), which the portable definition does not share (see the README).
    if (weight is None and type(input) is Tensor and type(target) is Tensor and input.dtype in _FAST
            and target.dtype is input.dtype and input.is_cpu and target.is_cpu and input.shape == target.shape
            and not _dynamo_compiling() and (_mode.get() if _mode.active else _mode.default) != "poison"):
        # The common call, as in _common: torch's range check is lossreg's (and raises on NaN).
        try:
            return _nn.binary_cross_entropy(input, target, None, _ENUM[reduction])
        except _SIGNALS:
            raise
        except Exception:  # out of range, or an unknown reduction: the general path decides
            pass
    if not _pair(reduction, input, target) or (weight is not None and not _fits(weight, input)):
        return NotImplemented
    weight = _like(weight, input)
    bad = None
    reads = toolkit.reads_values(input)
    if input.is_cuda and not reads and not _dynamo_compiling():
        # Eager CUDA code: the check, the NaN and the loss in one pass (compiled code keeps the
        # operations below, which Inductor fuses itself).
        triton_bce = _triton(BCE_TRITON_SWITCH)
        if triton_bce is not None:
            result = triton_bce(input, target, weight, reduction)
            if result is not NotImplemented:
                return result
    if not reads:  # both are checked by torch (a device-side assert on CUDA), so both are replaced
        bad = _outside_unit(input, target)
        middle = torch.full((), 0.5, dtype=input.dtype, device=input.device)
        input, target = torch.where(bad, middle, input), torch.where(bad, middle.to(target.dtype), target)
    elif input.is_cuda and input.numel() and bool(_outside_unit(input, target).any()):
        return NotImplemented  # "sync" mode: the portable path names the offending value
    try:
        if weight is not None:
            weight = weight.expand(input.shape)
        if input.dtype in _HALF:
            out = _nn.binary_cross_entropy(input.float(), target.float(), _float(weight),
                                           _ENUM[reduction]).to(input.dtype)
        elif _plain(input, target, weight):
            out = _nn.binary_cross_entropy(input, target, weight, _ENUM[reduction])
        else:
            out = F.binary_cross_entropy(input, target, weight=weight, reduction=reduction)
    except _SIGNALS:
        raise
    except Exception:  # on CPU: values outside [0, 1] (NaN included)
        return NotImplemented
    return _poison(out, bad, reduction)


def binary_cross_entropy_with_logits(input: Any, target: Any, /, *, weight: Any = None, reduction: str = "mean",
                                     pos_weight: Any = None) -> Any:
    if (not _pair(reduction, input, target) or (weight is not None and not _fits(weight, input))
            or (pos_weight is not None and not _fits(pos_weight, input))):
        return NotImplemented
    weight, pos_weight = _like(weight, input), _like(pos_weight, input)
    try:
        if input.dtype in _HALF:
            return torch.binary_cross_entropy_with_logits(input.float(), target.float(), _float(weight),
                                                          _float(pos_weight), _ENUM[reduction]).to(input.dtype)
        if _plain(input, target, weight, pos_weight):
            return torch.binary_cross_entropy_with_logits(input, target, weight, pos_weight, _ENUM[reduction])
        return F.binary_cross_entropy_with_logits(input, target, weight=weight, reduction=reduction,
                                                  pos_weight=pos_weight)
    except _SIGNALS:
        raise
    except Exception:
        return NotImplemented


def nll_loss(input: Any, target: Any, /, *, weight: Any = None, ignore_index: int = -100,
             reduction: str = "mean") -> Any:
    """The common call (:func:`_common`) straight to torch's operator; the rest as autocast runs it."""
    if weight is None and _common(input, target, ignore_index):
        try:
            return _nn.nll_loss_nd(input, target, None, _ENUM[reduction], ignore_index)
        except _SIGNALS:
            raise
        except Exception:  # torch refused: the general path decides (see _common)
            pass
    return _NLL_LOSS(input, target, weight=weight, ignore_index=ignore_index, reduction=reduction)


def _nll_loss(input: Any, target: Any, /, *, weight: Any = None, ignore_index: int = -100,
              reduction: str = "mean") -> Any:
    if getattr(input, "ndim", None) == 4 and not input.is_contiguous():
        # torch's 2-d NLL backward raises "grad_input must be contiguous" for a dense input in another
        # layout (channels_last, NHWC permuted to NCHW): a contiguous copy, same value, has the gradient.
        input = input.contiguous()
    args = _class_args(input, target, weight, ignore_index, reduction)
    if args is None:
        return NotImplemented
    index, bad = args
    try:
        if input.dtype in _HALF:
            out = _nn.nll_loss_nd(input.float(), index, _float(weight), _ENUM[reduction],
                                  ignore_index).to(input.dtype)
        elif _plain(input, weight):
            out = _nn.nll_loss_nd(input, index, weight, _ENUM[reduction], ignore_index)
        else:
            out = F.nll_loss(input, index, weight=weight, ignore_index=ignore_index, reduction=reduction)
    except _SIGNALS:
        raise
    except Exception:  # on CPU: a class index out of range
        return NotImplemented
    return _poison(out, bad, reduction)


def cross_entropy(input: Any, target: Any, /, *, weight: Any = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Any:
    """The common call (:func:`_common`) straight to torch's operator; the rest as autocast runs it."""
    # _common's test, written out: the call of it was 0.05 µs of a 3 µs call on 4×5 logits (issue 13).
    # The range is tested here: torch refuses label_smoothing > 1 but takes negative and NaN values.
    if (weight is None and type(label_smoothing) is float and 0.0 <= label_smoothing <= 1.0
            and type(input) is Tensor and type(target) is Tensor and type(ignore_index) is int
            and target.dtype is _INT64 and input.dtype in _FAST and input.is_cpu and target.is_cpu
            and input.ndim == 2 and not _dynamo_compiling()
            and (_mode.get() if _mode.active else _mode.default) != "poison"):
        try:
            return _nn.cross_entropy_loss(input, target, None, _ENUM[reduction], ignore_index, label_smoothing)
        except _SIGNALS:
            raise
        except Exception:  # torch refused: the general path decides (see _common)
            pass
    return _CROSS_ENTROPY(input, target, weight=weight, ignore_index=ignore_index, reduction=reduction,
                          label_smoothing=label_smoothing)


def _cross_entropy(input: Any, target: Any, /, *, weight: Any = None, ignore_index: int = -100,
                   reduction: str = "mean", label_smoothing: float = 0.0) -> Any:
    if type(label_smoothing) not in (int, float) or not 0.0 <= label_smoothing <= 1.0:
        return NotImplemented
    bad = None
    if isinstance(target, Tensor) and target.dtype in _FLOAT:  # probabilities of the input's shape
        if (type(ignore_index) is not int or ignore_index >= 0  # torch takes any negative one there
                or not _pair(reduction, input, target) or input.ndim == 0
                or (weight is not None and (not isinstance(weight, Tensor) or weight.dtype is not input.dtype
                                            or weight.shape != input.shape[input.ndim > 1:][:1]
                                            or weight.device != input.device or _differentiated(weight)))):
            return NotImplemented
        index = target
    else:
        args = _class_args(input, target, weight, ignore_index, reduction)
        if args is None:
            return NotImplemented
        index, bad = args
        # The Triton kernel in eager CUDA code, for logits large enough to repay its host time;
        # compiled code keeps torch's operator, which Inductor fuses itself (and a Triton launch
        # inside a compiled graph would be opaque to it).
        if (not torch.compiler.is_compiling() and input.is_cuda
                and input.numel() >= (TRITON_CE_MIN_FLOAT32 if input.dtype is torch.float32 else TRITON_CE_MIN_HALF)):
            triton_ce = _triton()
            if triton_ce is not None:
                result = triton_ce(input, index, weight=weight, ignore_index=ignore_index, reduction=reduction,
                                   label_smoothing=label_smoothing)
                if result is not NotImplemented:
                    return _poison(result, bad, reduction)
    try:
        if input.dtype in _HALF:
            t = index.float() if index.dtype in _HALF else index
            out = _nn.cross_entropy_loss(input.float(), t, _float(weight), _ENUM[reduction], ignore_index,
                                         float(label_smoothing)).to(input.dtype)
        elif _plain(input, index, weight):
            out = _nn.cross_entropy_loss(input, index, weight, _ENUM[reduction], ignore_index,
                                         float(label_smoothing))
        else:
            out = F.cross_entropy(input, index, weight=weight, ignore_index=ignore_index, reduction=reduction,
                                  label_smoothing=label_smoothing)
    except _SIGNALS:
        raise
    except Exception:  # on CPU: a class index out of range
        return NotImplemented
    return _poison(out, bad, reduction)


def _lengths_ok(x: Any, n: int, unbatched: bool, device: Any) -> bool:
    return (isinstance(x, Tensor) and x.dtype in _INDEX and x.device == device
            and (tuple(x.shape) == (n,) or (unbatched and x.ndim == 0)))


def _as_lengths(x: Any, device: Any) -> Any:
    """A list or tuple of ints (as F.ctc_loss takes them) as a tensor; anything else unchanged (also
    a list holding an int past int64, which torch.tensor refuses with its own error: the portable
    path names it)."""
    if isinstance(x, (list, tuple)) and all(type(v) is int and toolkit.INT64_MIN <= v <= toolkit.INT64_MAX
                                            for v in x):
        return torch.tensor(x, dtype=torch.int64, device=device)
    return x


def ctc_loss(log_probs: Any, targets: Any, input_lengths: Any, target_lengths: Any, /, *, blank: int = 0,
             reduction: str = "mean", zero_infinity: bool = False) -> Any:
    # Differentiated in float64 whatever the input's dtype: torch's float32 CTC gradient loses up
    # to ~10 % of an element where exp(log_probs) and the posteriors nearly cancel (the regression
    # case fuzz-0fca803065), which the portable path, and so this kernel, must not. Its values
    # are as accurate as the portable ones, so a forward pass alone runs in the input's dtype.
    targets, input_lengths, target_lengths = (toolkit.beside(log_probs, x)  # cuDNN's CPU targets and lengths
                                              for x in (targets, input_lengths, target_lengths))
    if (not isinstance(targets, Tensor) or log_probs.dtype not in _FLOAT or log_probs.ndim not in (2, 3)
            or reduction not in _ENUM or type(zero_infinity) is not bool or type(blank) is not int
            or targets.dtype not in _INDEX or targets.device != log_probs.device or not log_probs.numel()
            or _func_wrapped(log_probs)):
        return NotImplemented
    unbatched = log_probs.ndim == 2
    t_max, c = log_probs.shape[0], log_probs.shape[-1]
    n = 1 if unbatched else log_probs.shape[1]
    dev = log_probs.device
    input_lengths, target_lengths = _as_lengths(input_lengths, dev), _as_lengths(target_lengths, dev)
    if (not 0 <= blank < c or targets.ndim not in (1, 2) or (targets.ndim == 2 and targets.shape[0] != n)
            or not _lengths_ok(input_lengths, n, unbatched, dev) or not _lengths_ok(target_lengths, n, unbatched, dev)):
        return NotImplemented
    il, tl = input_lengths.reshape(n).long(), target_lengths.reshape(n).long()
    if unbatched and targets.ndim == 1:  # one sequence's labels, padded or not: the padded form's row
        targets = targets.reshape(1, -1)
    labels, width = targets.long(), targets.shape[-1]
    if not all(toolkit.reads_values(x) for x in (log_probs, targets, input_lengths, target_lengths)):
        # Values that must not be read ("poison", CUDA in "auto"): lengths clamped and bad samples
        # poisoned in the graph, as the portable path does, but through torch's CTC. Traced
        # tensors are the portable path's: torch's CTC has an output shape that depends on the
        # target lengths, which breaks torch.compile's graph (fullgraph=True fails) and has no
        # fake or meta form; and torch.func may batch the targets or lengths alone. So are
        # concatenated targets (each sample's span is found from the lengths).
        if targets.ndim != 2 or any(toolkit.traced(x) for x in (log_probs, targets, il, tl)):
            return NotImplemented
        bad = (il < 0) | (il > t_max) | (tl < 0) | (tl > width)
        il, tl = il.clamp(0, t_max), tl.clamp(0, width)
        if width:
            active = torch.arange(width, device=dev) < tl.unsqueeze(1)
            wrong = active & ((labels < 0) | (labels >= c) | (labels == blank))
            bad = bad | wrong.any(dim=1)
            labels = torch.where(active & ~wrong, labels, (blank + 1) % c)
        return _ctc(log_probs, labels, il, tl, blank, reduction, zero_infinity, unbatched, bad)
    if targets.ndim == 2 and width:  # only the first target_lengths[i] labels of row i count
        labels = torch.where(torch.arange(width, device=dev) < tl.unsqueeze(1), labels, (blank + 1) % c)
    # Every value the checks need, read in one synchronisation: the lengths' ranges, the total
    # length, the labels' range, and whether a label is blank.
    stats = [*torch.aminmax(il), *torch.aminmax(tl), tl.sum()]
    if labels.numel():
        stats += [*torch.aminmax(labels), (labels == blank).any()]
    got = torch.stack([x.long() for x in stats]).tolist()
    il_lo, il_hi, tl_lo, tl_hi, total = got[:5]
    if (il_lo < 0 or il_hi > t_max or tl_lo < 0 or (tl_hi > width if targets.ndim == 2 else total != width)
            or (labels.numel() and (got[5] < 0 or got[6] >= c or got[7]))):
        return NotImplemented  # the portable path names the offending argument and value
    return _ctc(log_probs, labels, il, tl, blank, reduction, zero_infinity, unbatched, None)


def _ctc(log_probs: Tensor, labels: Tensor, il: Tensor, tl: Tensor, blank: int, reduction: str,
         zero_infinity: bool, unbatched: bool, bad: Tensor | None) -> Any:
    """torch's CTC of checked (or clamped) arguments, NaN for the samples ``bad`` flags."""
    # torch.jit.trace records the cast whether or not this call differentiates: its graph cannot
    # ask, the run that differentiates it may come later (traced under no_grad, or by its own
    # check_trace, which retraces under no_grad: the two graphs differed, a TracingCheckError).
    if torch.jit.is_tracing() or (log_probs.requires_grad and torch.is_grad_enabled()):
        lp = log_probs.double()
    else:
        lp = log_probs.float() if log_probs.dtype in _HALF else log_probs
    if unbatched:
        lp, labels = lp.unsqueeze(1), labels.reshape(1, -1) if labels.ndim == 2 else labels
    try:
        out = _poison(torch.ctc_loss(lp, labels, il, tl, blank, _ENUM[reduction], zero_infinity), bad, reduction)
    except _SIGNALS:
        raise
    except Exception:
        return NotImplemented
    if unbatched and reduction == "none":
        out = out.reshape(())
    return out.to(log_probs.dtype)


_TRITON: dict[str, Any] = {}
# Logits (half precision, float32) from which the Triton cross-entropy beats torch's operator on
# an H200 (benchmarks/gpu/ce_crossover.py; the README's GPU section): below, its ~0.4 ms of host
# time per call dominates. Half precision pays sooner: torch's operator computes it in a float32
# copy, which the Triton kernel never makes.
TRITON_CE_MIN_HALF, TRITON_CE_MIN_FLOAT32 = 1 << 26, 1 << 27


# The Triton kernel behind each switch: (module of lossreg.kernels, function).
TRITON_KERNELS = {CE_TRITON_SWITCH: ("triton_ce", "cross_entropy_index"),
                  BCE_TRITON_SWITCH: ("triton_bce", "binary_cross_entropy")}


def _triton(switch: str = CE_TRITON_SWITCH) -> Any:
    """The Triton kernel behind ``switch`` (see ``TRITON_KERNELS``) when Triton and a CUDA device
    are present and the switch is on (read at the first call on CUDA), else None.

    Imported on first use, not with this module: importing Triton is slow, and the modules share
    their checks through ``torch_common``, so none imports another at import time.
    """
    if switch not in _TRITON:
        found: Any = None
        if torch.cuda.is_available() and switched_on(switch):
            module, function = TRITON_KERNELS[switch]
            try:
                found = getattr(importlib.import_module(f"{__package__}.{module}"), function)
            except Exception:  # Triton missing or broken: the native kernel serves
                found = None
        _TRITON[switch] = found
    return _TRITON[switch]


def _as_autocast_runs_it(loss: str, kernel: Any) -> Any:
    """``kernel`` (the portable definition when None), run inside ``torch.autocast`` as torch runs
    its own ``loss`` there: floating half-precision arguments cast to float32, autocast off for
    the call, the float32 result returned (a result rounded to bfloat16 first would lose 8 bits)."""
    portable = getattr(catalogue, loss).portable
    run = kernel or portable

    # Weighted MSE and L1: torch composes them of other operations, which autocast runs as it does.
    composed = loss in ("mse_loss", "l1_loss")

    def autocast_aware(*arrays: Any, **options: Any) -> Any:
        try:
            x = arrays[0]
            if (isinstance(x, Tensor) and x.dtype in _HALF and _autocasting(x.device.type)
                    and not (composed and options.get("weight") is not None)):
                wide, wide_options = _in_float32(arrays, options)
                with torch.autocast(x.device.type, enabled=False):
                    out = run(*wide, **wide_options)
                    return portable(*wide, **wide_options) if out is NotImplemented else out
            out = run(*arrays, **options)
        except RuntimeError as error:
            return _with_normal_copies(autocast_aware, portable, arrays, options, error)
        # Declined: the dispatch's portable call would meet the same inference tensor.
        return _with_normal_copies(portable, portable, arrays, options) if out is NotImplemented else out

    autocast_aware.__name__ = loss
    return autocast_aware


def _inference_copies(arrays: tuple[Any, ...], options: dict[str, Any]) -> Any:
    """``(arrays, options)`` with each tensor made under ``torch.inference_mode`` (a target, a
    teacher's soft labels, a class weight) replaced by its copy, a normal tensor, where autograd
    records the call (grad mode on, beside a tensor that requires grad); else None.

    Autograd cannot save an inference tensor for the backward pass: torch's losses raise
    "Inference tensors cannot be saved for backward" (the ``x - t`` of MSE saves nothing of ``t``,
    but ``t * log x`` of BCE, KL, Poisson, the soft-margin losses saves it). No gradient flows into
    such a tensor (it cannot require grad), so its copy, the workaround torch's message gives,
    gives the same value and gradients. Not under Dynamo, whose traced tensors are fake ones."""
    # Nothing to copy where nothing is recorded; and inside inference_mode (with enable_grad within
    # it) a copy would be an inference tensor too.
    if _dynamo_compiling() or not torch.is_grad_enabled() or torch.is_inference_mode_enabled():
        return None
    tensors = [a for a in (*arrays, *options.values()) if isinstance(a, Tensor)]
    if not any(a.is_inference() for a in tensors) or not any(a.requires_grad for a in tensors):
        return None

    def normal(a: Any) -> Any:
        return a.clone() if isinstance(a, Tensor) and a.is_inference() else a

    return tuple(map(normal, arrays)), {k: normal(v) for k, v in options.items()}


def _saving_inference_tensors(loss: str, kernel: Any) -> Any:
    """``kernel``, given :func:`_with_normal_copies` where autograd had to save an inference tensor."""
    portable = getattr(catalogue, loss).portable

    def run(*arrays: Any, **options: Any) -> Any:
        try:
            out = kernel(*arrays, **options)
        except RuntimeError as error:
            return _with_normal_copies(run, portable, arrays, options, error)
        return _with_normal_copies(portable, portable, arrays, options) if out is NotImplemented else out

    run.__name__ = loss
    return run


def _with_normal_copies(call: Any, portable: Any, arrays: tuple[Any, ...], options: dict[str, Any],
                        error: RuntimeError | None = None) -> Any:
    """``call`` (then ``portable``, should it decline) with :func:`_inference_copies`' copies, for
    a call that raised ``error`` or (without one) declined. With nothing to copy, ``error`` is
    raised again, or the decline stands. Asked only on the way out of such a call: the usual call
    has no inference tensor, and the scan costs 0.4 µs of a 6 µs call."""
    copied = _inference_copies(arrays, options)
    if copied is None:
        if error is not None:
            raise error
        return NotImplemented
    out = call(*copied[0], **copied[1])
    return portable(*copied[0], **copied[1]) if out is NotImplemented else out


def in_float32_under_autocast(loss: Any) -> Any:
    """The kernel :func:`lossreg.kernels.torch_autocast` gives ``loss`` (a ``define_loss`` form)."""
    portable = loss.portable

    def kernel(*arrays: Any, **options: Any) -> Any:
        x = arrays[0]
        if not (isinstance(x, Tensor) and _autocasting(x.device.type)):
            return portable(*arrays, **options)  # as the built-in losses' autocast kernels do
        arrays, options = _in_float32(arrays, options)
        with torch.autocast(x.device.type, enabled=False):
            return portable(*arrays, **options)

    kernel.__name__ = loss.spec.name
    return kernel


def _to_float32(a: Any) -> Any:
    return a.float() if isinstance(a, Tensor) and a.dtype in _HALF else a


def _in_float32(arrays: tuple[Any, ...], options: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A call's half-precision tensors, arguments and options alike, in float32."""
    return tuple(map(_to_float32, arrays)), {k: _to_float32(v) for k, v in options.items()}


def multi_margin_loss(input: Any, target: Any, /, *, p: int = 1, margin: float = 1.0, weight: Any = None,
                      reduction: str = "mean") -> Any:
    """torch's own for the common eager call: (N, C) float32/float64 scores, int64 classes (N,),
    an optional weight (C,) of the input's dtype that needs no gradient. torch's kernel keeps
    nothing of the input's size (forward+backward: the gradient alone), where the portable
    definition holds several (N, C) temporaries and saves its masks for the backward pass (4.5
    times torch's peak at N·C = 2^24). Anything else, and any refusal of torch's (a class out of
    range), goes to the portable path and its lossreg error; so do torch.func's transforms, under
    which the portable definition has the forward mode and second derivatives torch's kernel lacks.
    CPU tensors only: on CUDA torch signals a class out of range with a device-side assert, which
    ends the process."""
    # _dynamo_compiling() first: Dynamo folds it to True, and traces none of the rest.
    if (_dynamo_compiling() or type(input) is not Tensor or type(target) is not Tensor or input.dtype not in _FAST
            or input.ndim != 2 or 0 in input.shape or target.dtype is not _INT64 or target.shape != input.shape[:1]
            or target.device != input.device or not input.is_cpu or reduction not in _ENUM
            or type(p) is not int or p not in (1, 2) or type(margin) not in (int, float)
            or not -math.inf < margin < math.inf or not toolkit.reads_values(input) or not toolkit.reads_values(target)
            or _func_wrapped(input)):
        return NotImplemented
    if weight is not None and (type(weight) is not Tensor or weight.dtype is not input.dtype or _differentiated(weight)
                               or weight.shape != input.shape[1:] or weight.device != input.device):
        return NotImplemented
    try:
        return _nn.multi_margin_loss(input, target, p, margin, weight, _ENUM[reduction])
    except _SIGNALS:
        raise
    except Exception:  # a class out of range: the portable path names it
        return NotImplemented


def _half_in_float32(kernel: Any) -> Any:
    """``kernel``, computing half precision in float32 and rounding the result back, as the
    portable definitions do (a sum of many half-precision terms would lose most of its digits)."""
    def run(*arrays: Any, **options: Any) -> Any:
        x = arrays[0]
        # Mixed with another floating dtype, the call is the portable path's, which promotes as torch.
        if not (isinstance(x, Tensor) and x.dtype in _HALF) or any(
                isinstance(a, Tensor) and a.is_floating_point() and a.dtype is not x.dtype
                for a in (*arrays, *options.values())):
            return kernel(*arrays, **options)
        arrays, options = _in_float32(arrays, options)
        out = kernel(*arrays, **options)
        return out if out is NotImplemented else out.to(x.dtype)

    run.__name__ = kernel.__name__
    return run


@_half_in_float32
def soft_margin_loss(input: Any, target: Any, /, *, reduction: str = "mean") -> Any:
    """The portable definition's stable ``log(1 + exp(-y·x))`` in one fused operation,
    ``softplus(-y·x)``: a threshold of 50 keeps softplus's linear branch where log1p(e^-z) is
    below float64's rounding. (torch's own evaluates log1p(exp(-y·x)), which overflows to inf
    past -y·x ≈ 88 in float32; the portable definition, and this, give the finite value.)"""
    if not (_pair(reduction, input, target) and _plain(input, target)):
        return NotImplemented
    return toolkit.reduce(torch, F.softplus(-(input * target), 1.0, 50.0), reduction)


@_half_in_float32
def margin_ranking_loss(input1: Any, input2: Any, target: Any, /, *, margin: float = 0.0,
                        reduction: str = "mean") -> Any:
    """torch's own, ``clamp_min(-y·(x1 - x2) + margin, 0)``, for three tensors of one shape and
    float dtype (lossreg refuses the broadcasts torch makes) and a finite margin."""
    if not (_pair(reduction, input1, input2, target) and _plain(input1, input2, target)
            and type(margin) in (int, float) and -math.inf < margin < math.inf):
        return NotImplemented
    return toolkit.reduce(torch, (-target * (input1 - input2) + margin).clamp_min(0), reduction)


@_half_in_float32
def multilabel_soft_margin_loss(input: Any, target: Any, /, *, weight: Any = None, reduction: str = "mean") -> Any:
    """torch's composition, ``-(y·logsigmoid(x) + (1 - y)·logsigmoid(-x))`` averaged over the last
    axis, with torch's fused ``logsigmoid``. Inside autocast, whose lists do not hold this loss,
    the portable definition runs, as it did before this kernel."""
    if not (_pair(reduction, input, target) and _plain(input, target) and input.ndim
            and (weight is None or (_fits(weight, input) and weight.dtype is input.dtype))
            and not _autocasting(input.device.type)):
        return NotImplemented
    losses = -(target * F.logsigmoid(input) + (1 - target) * F.logsigmoid(-input))
    if weight is not None:
        losses = losses * weight
    return toolkit.reduce(torch, losses.sum(-1) / input.shape[-1], reduction)


_KERNELS = {
    "mse_loss": mse_loss,
    "l1_loss": l1_loss,
    "smooth_l1_loss": smooth_l1_loss,
    "huber_loss": huber_loss,
    "binary_cross_entropy": binary_cross_entropy,
    "binary_cross_entropy_with_logits": binary_cross_entropy_with_logits,
    "nll_loss": _nll_loss,
    "cross_entropy": _cross_entropy,
    "ctc_loss": ctc_loss,
    "multi_margin_loss": multi_margin_loss,
    "soft_margin_loss": soft_margin_loss,
    "margin_ranking_loss": margin_ranking_loss,
}
KERNELS = {loss: _as_autocast_runs_it(loss, _KERNELS.get(loss)) for loss in (*_KERNELS, *_TORCH_AUTOCAST_ONLY)}
# Autocast runs it in half precision (not autocast_aware), but it saves its target as the others do.
KERNELS["multilabel_soft_margin_loss"] = _saving_inference_tensors("multilabel_soft_margin_loss",
                                                                   multilabel_soft_margin_loss)
# Their common call (plain float32/float64 tensors, which autocast leaves as they are) first, so that
# a call of a few µs on tiny inputs passes through one Python function, not two: 0.25 µs (issue 13).
_NLL_LOSS, _CROSS_ENTROPY = KERNELS["nll_loss"], KERNELS["cross_entropy"]
KERNELS["nll_loss"], KERNELS["cross_entropy"] = nll_loss, cross_entropy
