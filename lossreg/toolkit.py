"""The few helpers every loss shares: validation, reduction and gathering, in array-API terms.

Nothing here imports an array library. Every check raises a lossreg error that names the loss,
the argument, what was expected and what was given.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
from collections.abc import Iterator
from typing import Any

import array_api_compat as compat

from .errors import LossTypeError, LossValueError

REDUCTIONS = ("none", "mean", "sum")


def describe(x: Any) -> str:
    """A short account of a value for error messages: library, dtype and shape of arrays."""
    if compat.is_array_api_obj(x):
        library = type(x).__module__.split(".")[0]
        return f"{library} array of dtype {x.dtype} and shape {tuple(x.shape)}"
    return f"{type(x).__name__} {x!r}" if isinstance(x, (int, float, str, bool)) else type(x).__name__


OPTIONAL_ARRAYS = ("weight", "pos_weight")


# (types of the arrays) -> their namespace. array_namespace and the device checks cost several µs
# per call, more than a small loss itself; the namespace depends only on the types (except for
# NumPy arrays of JAX's float0 dtype, which never reach a loss), and NumPy arrays all live on the CPU.
_NAMESPACES: dict[tuple[type, ...], Any] = {}
_NUMPY_TYPES: frozenset[type] = frozenset()


def namespace(loss: str, *, optional: tuple[str, ...] = OPTIONAL_ARRAYS, **arrays: Any) -> Any:
    """The array namespace shared by ``arrays``; ``None`` is skipped for the ``optional`` ones.

    Checks that each value is an array, that all come from one library, and that all live on
    one device, so that no backend raises a confusing error (or silently copies) later.
    """
    present = {name: x for name, x in arrays.items() if x is not None or name not in optional}
    types = tuple(map(type, present.values()))
    xp = _NAMESPACES.get(types)
    if xp is None:
        xp = _namespace(loss, present)
        if all(compat.is_numpy_array(x) for x in present.values()):
            global _NUMPY_TYPES
            _NUMPY_TYPES = _NUMPY_TYPES | set(types)
        _NAMESPACES[types] = xp
    if len(present) > 1 and not _NUMPY_TYPES.issuperset(types):
        _check_devices(loss, present)
    return xp


def _namespace(loss: str, present: dict[str, Any]) -> Any:
    for name, x in present.items():
        if not compat.is_array_api_obj(x):
            raise LossTypeError(loss, name, "an array (NumPy, CuPy, torch, JAX, Dask, ...)", describe(x))
    try:
        return compat.array_namespace(*present.values())
    except TypeError:
        libraries = ", ".join(f"'{n}' from {type(x).__module__.split('.')[0]}" for n, x in present.items())
        raise LossTypeError(loss, "/".join(present), "arrays of one array library", libraries) from None


def _device_of(x: Any) -> Any:
    # compat.device asks about every library in turn; a torch tensor can be asked directly.
    return x.device if compat.is_torch_array(x) else compat.device(x)


def _check_devices(loss: str, present: dict[str, Any]) -> None:
    first_name, first = next(iter(present.items()))
    device = _device_of(first)
    for name, x in present.items():
        other = _device_of(x)
        # Traced arrays (under jax.jit or grad) report no device; they cannot be compared.
        if other != device and device is not None and other is not None:
            raise LossValueError(loss, name, f"an array on {first_name}'s device {device}", f"one on {other}")


def check_reduction(loss: str, reduction: Any, allowed: tuple[str, ...] = REDUCTIONS) -> None:
    if reduction not in allowed:
        raise LossValueError(loss, "reduction", "one of " + ", ".join(map(repr, allowed)), repr(reduction))


def check_floating(loss: str, name: str, x: Any, xp: Any) -> None:
    if not xp.isdtype(x.dtype, "real floating"):
        raise LossTypeError(loss, name, "a real floating-point array", describe(x))


def check_integer(loss: str, name: str, x: Any, xp: Any, what: str = "an integer array") -> None:
    if not xp.isdtype(x.dtype, "integral"):
        raise LossTypeError(loss, name, what, describe(x))


def check_same_shape(loss: str, name: str, x: Any, like_name: str, like: Any) -> None:
    if x.shape != like.shape:
        raise LossValueError(
            loss, name, f"the shape of '{like_name}' {tuple(like.shape)}", f"shape {tuple(x.shape)}"
        )


def check_shape(loss: str, name: str, x: Any, shape: tuple[int | None, ...], what: str) -> None:
    """``shape`` may hold ``None`` for any length; ``what`` describes the expectation in words."""
    if len(x.shape) != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape)):
        raise LossValueError(loss, name, what, f"shape {tuple(x.shape)}")


def check_number(loss: str, name: str, value: Any, lo: float = -math.inf, hi: float = math.inf, *,
                 integer: bool = False) -> None:
    """A Python scalar option within [lo, hi]."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not (lo <= value <= hi):
        kind = "an integer" if integer else "a number"
        bounds = "" if (lo, hi) == (-math.inf, math.inf) else f" in [{lo}, {hi}]"
        raise LossValueError(loss, name, kind + bounds, repr(value))


def is_lazy(x: Any) -> bool:
    """Whether reading values out of ``x`` would force a computation or fail under tracing."""
    return compat.is_lazy_array(x)


CHECK_MODES = ("auto", "sync", "poison")
_check_mode: contextvars.ContextVar[str | None] = contextvars.ContextVar("lossreg_value_checks", default=None)


@contextlib.contextmanager
def value_checks(mode: str) -> Iterator[None]:
    """How invalid values (class indices out of range, probabilities outside [0, 1]) are caught.

    "auto" (the default, or ``LOSSREG_VALUE_CHECKS``): raise on CPU arrays, poison on
    accelerators. "sync": always raise; on a GPU this reads one boolean back to the host,
    a device synchronisation per call (tens of microseconds, and it stalls queued kernels).
    "poison": never read; an invalid element makes its loss NaN. Indices are clamped before any
    gather in every mode, so no mode reads memory out of bounds. Thread- and task-local.
    """
    if mode not in CHECK_MODES:
        raise LossValueError("lossreg.value_checks", "mode", "one of " + ", ".join(map(repr, CHECK_MODES)),
                             repr(mode))
    token = _check_mode.set(mode)
    try:
        yield
    finally:
        _check_mode.reset(token)


def _on_accelerator(x: Any) -> bool:
    if compat.is_cupy_array(x):
        return True
    dev = compat.device(x)
    kind = getattr(dev, "type", None) or getattr(dev, "platform", None)  # torch / jax
    return kind not in (None, "cpu")


def check_mode() -> str:
    """The value-check mode in force: see :func:`value_checks`."""
    return _check_mode.get() or os.environ.get("LOSSREG_VALUE_CHECKS", "auto")


def _reads_values(x: Any) -> bool:
    """Whether check_values may read ``x`` (and raise) rather than poison the result."""
    if is_lazy(x):
        return False
    mode = check_mode()
    return mode == "sync" or (mode == "auto" and not _on_accelerator(x))


def check_values(loss: str, name: str, x: Any, bad: Any, xp: Any, expected: str) -> Any:
    """Guard against invalid values of ``x`` flagged by the boolean array ``bad``.

    Eager CPU arrays raise at once, quoting an offending value. Lazy arrays (Dask, JAX) cannot be
    read without forcing a computation, and reading a GPU array costs a synchronisation, so
    there (see :func:`value_checks`) the returned mask is applied with :func:`poison` instead:
    an invalid element yields NaN, never a quietly wrong number.
    """
    if not _reads_values(x):
        return bad
    if bool(xp.any(bad)):
        flat = xp.reshape(x, (-1,))
        offender = flat[int(xp.argmax(xp.astype(xp.reshape(bad, (-1,)), xp.int8)))]
        got = offender.item() if hasattr(offender, "item") else float(offender)
        raise LossValueError(loss, name, expected, f"{got!r}")
    return None


def poison(xp: Any, values: Any, bad: Any | None) -> Any:
    """NaN where ``bad`` (a mask from :func:`check_values`) is set; ``values`` unchanged if None."""
    if bad is None:
        return values
    return xp.where(bad, math.nan, values)  # a Python scalar: asarray on a device costs ~100 µs in eager JAX


def compute_dtype(xp: Any, dtype: Any) -> Any:
    """The dtype to accumulate in: float32 for half-precision inputs, as torch does."""
    return xp.float32 if xp.finfo(dtype).bits < 32 else dtype


def reduce(xp: Any, values: Any, reduction: str, dtype: Any = None) -> Any:
    """Apply a "none" / "mean" / "sum" reduction, casting the result to ``dtype`` if given.

    The mean of nothing is NaN (torch's answer), computed without a division warning.
    """
    if reduction == "sum":
        values = xp.sum(values)
    elif reduction == "mean":
        n = math.prod(values.shape)
        values = xp.mean(values) if n else xp.sum(values) * math.nan
    return values if dtype is None or values.dtype == dtype else xp.astype(values, dtype)


def take_class(xp: Any, x: Any, index: Any) -> Any:
    """``x[n, index[n, ...], ...]``: pick one entry along axis 1 of ``x`` (shape (N, C, *d)).

    ``index`` has shape (N, *d) and must already lie in [0, C). NumPy takes from the flattened
    array: three operations, several times faster than its ``take_along_axis``; other libraries
    gather along the axis.
    Dask cannot see the indices, so its ``take`` pairs every chunk of ``index`` with every chunk
    of ``x`` (quadratic in the chunks); there a one-hot ``where`` summed over the class axis costs
    one more pass over ``x`` but stays blockwise along both axes.
    """
    if not compat.is_numpy_namespace(xp) and not compat.is_dask_namespace(xp):
        # One gather along the class axis. Under jax.jit its gradient scatters straight into the
        # gradient of x; the flat form's scatters into a zeroed copy of x first, then adds it in
        # (one more write and read of the whole array). JAX takes any integer index (and has no
        # int64 unless x64 is on); torch's gather wants int64.
        if index.dtype != xp.int64 and not compat.is_jax_namespace(xp):
            index = xp.astype(index, xp.int64)
        return xp.squeeze(xp.take_along_axis(x, xp.expand_dims(index, axis=1), axis=1), axis=1)
    dev = compat.device(x)
    index = index if index.dtype == xp.int64 else xp.astype(index, xp.int64)
    if compat.is_dask_namespace(xp):
        classes = xp.reshape(xp.arange(x.shape[1], dtype=xp.int64, device=dev), class_shape(x))
        return xp.sum(xp.where(classes == xp.expand_dims(index, axis=1), x, xp.zeros_like(x)), axis=1)
    n, c = x.shape[0], x.shape[1]
    if x.ndim == 2:  # the common (N, C) case
        flat = xp.arange(0, n * c, c, dtype=xp.int64, device=dev) + xp.reshape(index, (n,))
        return xp.take(xp.reshape(x, (-1,)), flat)
    spatial = math.prod(x.shape[2:])
    index = xp.reshape(index, (n, spatial))
    rows = xp.reshape(xp.arange(n, dtype=xp.int64, device=dev), (n, 1)) * (c * spatial)
    cols = xp.reshape(xp.arange(spatial, dtype=xp.int64, device=dev), (1, spatial))
    flat = xp.reshape(rows + index * spatial + cols, (-1,))
    return xp.reshape(xp.take(xp.reshape(x, (-1,)), flat), (n, *x.shape[2:]))


def class_shape(x: Any, axis: int = 1) -> tuple[int, ...]:
    """A shape that broadcasts a (C,) vector against ``x`` along ``axis``."""
    return tuple(x.shape[axis] if i == axis else 1 for i in range(x.ndim))


def as_dtype(xp: Any, x: Any, dtype: Any) -> Any:
    """``x`` in ``dtype``, without a copy when it already is."""
    return x if x.dtype == dtype else xp.astype(x, dtype)


def pointwise_inputs(loss: str, input: Any, target: Any, reduction: str, *,
                     target_name: str = "target") -> tuple[Any, Any, Any, Any]:
    """The common preamble of losses that compare two floating arrays of one shape.

    Returns ``(xp, input, target, dtype)``: both arrays promoted to the dtype to compute in
    (float32 for half precision) and ``dtype``, the dtype of the result.
    """
    xp = namespace(loss, input=input, **{target_name: target})
    check_floating(loss, "input", input, xp)
    check_floating(loss, target_name, target, xp)
    check_same_shape(loss, target_name, target, "input", input)
    check_reduction(loss, reduction)
    dtype = xp.result_type(input, target)
    work = compute_dtype(xp, dtype)
    return xp, as_dtype(xp, input, work), as_dtype(xp, target, work), dtype


def safe_log(xp: Any, x: Any, floor: float = -100.0) -> Any:
    """``max(log(x), floor)`` whose gradient is finite at x = 0 (torch clamps BCE's logs at -100).

    The inner ``where`` keeps ``log`` away from 0, so autograd never multiplies 0 by infinity.
    """
    positive = x > 0
    floors = xp.full_like(x, floor)  # one array of the floor, used twice (not two products)
    return xp.where(positive, xp.maximum(xp.log(xp.where(positive, x, xp.ones_like(x))), floors), floors)
