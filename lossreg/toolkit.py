"""The public toolkit for loss authors: checks, reductions and the numerics every family shares.

Everything here is written once against the Array API (no array library is imported) and is what
the built-in catalogue itself uses; plugins use the same functions, so their errors and their
edge cases (infinite logits, ignored targets, half precision) are lossreg's.

Argument convention (one rule per kind of function):

- **Checks** (``check_*``, ``namespace``, ``pointwise_inputs``, ``class_inputs``) raise a
  :class:`~lossreg.LossValueError` / :class:`~lossreg.LossTypeError` naming the loss, the argument,
  what was expected and what was given. They take what the message names first:
  ``(loss, argument, value, ...)``, then the namespace ``xp`` when they need one.
- **Computations** (``reduce``, ``take_class``, ``log_softmax``, ``logsumexp``, ``log_sigmoid``,
  ``safe_log``, ``safe_pow``, ...) take the namespace first, then arrays, then options:
  ``(xp, x, ..., *, axis=...)``, as ``xp`` is the first thing a formula needs.
- Axes follow torch's class axis: ``axis=1`` for ``(N, C, d1, ...)`` scores.

A loss usually reads::

    xp, x, y, dtype = toolkit.pointwise_inputs("my_loss", input, target, reduction)
    return toolkit.reduce(xp, formula(x, y), reduction, dtype)

or, with class indices::

    cls = toolkit.class_inputs("my_loss", input, target, weight=weight, ignore_index=ignore_index,
                               reduction=reduction)
    log_p = toolkit.take_class(cls.xp, toolkit.log_softmax(cls.xp, cls.input), cls.target)
    return toolkit.reduce_classes(cls, -cls.weight * log_p, reduction)
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import math
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import array_api_compat as compat

from .errors import LossTypeError, LossValueError

__all__ = [
    # checks
    "namespace", "describe", "check_reduction", "check_floating", "check_integer", "check_shape",
    "check_same_shape", "check_number", "check_flag", "check_broadcasts", "pointwise_inputs", "class_inputs",
    "ClassInputs", "class_targets", "check_index_option",
    # invalid values, and arrays whose values cannot be read (tracers, meta tensors, lazy arrays)
    "check_values", "poison", "value_checks", "check_mode", "is_lazy", "traced", "reads_values",
    "torch_compiling", "read_environment", "Setting",
    # dtypes and reductions
    "result_type", "compute_dtype", "real_dtype", "as_dtype", "index_dtype", "holding", "device", "reduce", "reduce_classes",
    "take_class", "take_each", "take_rows", "take_along", "take_within", "gathers_along_axis", "class_shape",
    # placement on a JAX mesh of explicit axes; setup as one compiled program on eager JAX
    "placed_like", "whole", "arange_like", "fused",
    # a function of each row, or reducing the last axis, as one task per block on Dask
    "along_rows", "by_rows", "rows_against", "over_last_axis",
    # numerics
    "log_softmax", "log_softmax_parts", "logsumexp", "log_sigmoid", "safe_log", "safe_pow", "safe_abs", "absolute",
    "sign", "stop_gradient", "zero_with_gradient",
    "minimum", "maximum", "clip", "dense_chunks", "divide", "beside",
    "REDUCTIONS", "OPTIONAL_ARRAYS", "CHECK_MODES",
]

REDUCTIONS = ("none", "mean", "sum")
STANDARD = "2024.12"  # the Array API version lossreg is written against
# The integers an array library takes as a scalar: int64's (torch: "Overflow when unpacking long long").
INT64_MIN, INT64_MAX = -2**63, 2**63 - 1


def _library(x: Any) -> str:
    """The array library of ``x`` as its users name it: "jax" for a concrete JAX array too, whose
    class lives in ``jaxlib`` (a traced one's in ``jax``)."""
    name = type(x).__module__.split(".")[0]
    return "jax" if name == "jaxlib" else name


def describe(x: Any) -> str:
    """A short account of a value for error messages: library, dtype and shape of arrays."""
    if compat.is_array_api_obj(x):
        if compat.is_numpy_array(x) and not x.shape and type(x).__name__ != "ndarray":  # np.float32(2.0)
            return f"NumPy scalar {x!r}"
        return f"{_library(x)} array of dtype {x.dtype} and shape {tuple(x.shape)}"
    return f"{type(x).__name__} {x!r}" if isinstance(x, (int, float, str, bool)) else type(x).__name__


OPTIONAL_ARRAYS = ("weight", "pos_weight")


# (types of the arrays) -> their namespace. array_namespace and the device checks cost several µs
# per call, more than a small loss itself; the namespace depends only on the types (except for
# NumPy arrays of JAX's float0 dtype, which never reach a loss), and NumPy arrays all live on the CPU.
_NAMESPACES: dict[tuple[type, ...], Any] = {}
_NUMPY_TYPES: frozenset[type] = frozenset()
# Argument types of a Dask call: its arrays may have unknown sizes (NaN in the shape) or masked chunks.
_DASK_TYPES: frozenset[tuple[type, ...]] = frozenset()
# Argument types of a torch call: a sparse or nested tensor has a dense one's class (or a subclass).
_LAYOUT_TYPES: frozenset[tuple[type, ...]] = frozenset()


def namespace(loss: str, *, optional: tuple[str, ...] = OPTIONAL_ARRAYS, **arrays: Any) -> Any:
    """The array namespace shared by ``arrays``; ``None`` is skipped for the ``optional`` ones.

    Checks that each value is an array, that all come from one library, and that all live on
    one device, so that no backend raises a confusing error (or silently copies) later.
    """
    present = {name: x for name, x in arrays.items() if x is not None or name not in optional}
    if torch_compiling():  # no cache (see torch_compiling); traced once per compilation anyway
        xp = _namespace(loss, present)
        _check_dense(loss, present, xp)
        if len(present) > 1:
            _check_devices(loss, present)
        return xp
    types = tuple(map(type, present.values()))
    xp = _NAMESPACES.get(types)
    if xp is None:
        xp = _namespace(loss, present)
        if all(compat.is_numpy_array(x) for x in present.values()):
            global _NUMPY_TYPES
            _NUMPY_TYPES = _NUMPY_TYPES | set(types)
        if compat.is_dask_namespace(xp):
            global _DASK_TYPES
            _DASK_TYPES = _DASK_TYPES | {types}
        if compat.is_torch_namespace(xp):
            global _LAYOUT_TYPES
            _LAYOUT_TYPES = _LAYOUT_TYPES | {types}
        _NAMESPACES[types] = xp
    if types in _LAYOUT_TYPES:
        _check_dense(loss, present, xp)
    if len(present) > 1 and not _NUMPY_TYPES.issuperset(types):
        _check_devices(loss, present)
    if types in _DASK_TYPES:
        _check_dask(loss, present)
    if getattr(xp, "__array_api_version__", STANDARD) < STANDARD:  # read per call: array-api-strict's can change
        name, x = next(iter(present.items()))
        raise LossTypeError(loss, name, f"arrays of the Array API standard {STANDARD} or later (lossreg uses its "
                            "Python scalars in where/minimum/maximum and take_along_axis; for array-api-strict: "
                            f"set_array_api_strict_flags(api_version='{STANDARD}'))",
                            f"{type(x).__module__.split('.')[0]} arrays of standard {xp.__array_api_version__}")
    return xp


def _check_dense(loss: str, present: dict[str, Any], xp: Any) -> None:
    """Refuse torch's sparse and nested tensors. torch's own losses refuse most of them, and where
    the portable arithmetic goes through, the answer can be wrong (the mean of a jagged nested
    tensor is not the mean of its values). A kernel that hands one to torch runs before this check,
    and where torch takes it the answer is torch's."""
    strided = getattr(xp, "strided", None)
    if strided is None:  # not torch's namespace (a caller's own array_namespace); nothing to check
        return
    for name, x in present.items():
        if x.layout is not strided or x.is_nested:
            kind = "nested" if x.is_nested else str(x.layout).removeprefix("torch.")
            fix = "its values, x.values(), or x.to_padded_tensor(...)" if x.is_nested else "x.to_dense()"
            raise LossTypeError(loss, name, f"a dense (strided) tensor: pass {fix}",
                                f"a torch {kind} tensor of dtype {x.dtype}")


def _check_dask(loss: str, present: dict[str, Any]) -> None:
    """Dask arrays, per call (their type says neither): a shape with an unknown size (NaN: after
    boolean indexing, say) cannot be checked against the others, and "mean" would divide by NaN;
    masked chunks (``dask.array.ma``) would give NumPy masked arrays' silently wrong loss, and
    ``np.matrix`` chunks (``da.from_array(np.asmatrix(x))``) multiply as matrices: ``d * d`` is each
    block's matrix product, a wrong loss of the right shape. An axis of length 1 held in several
    chunks (one row picked by a boolean mask, then ``compute_chunk_sizes()``: (0, 1, 0)) is taken by
    Dask's arithmetic as one to broadcast beside an array holding it in one chunk, which pairs the
    blocks wrongly (a silently wrong mean, a wrong shape, or a bare error when computed); one of
    length 0 in several chunks (no row picked) makes Dask's sums fail when computed. NumPy's
    timedelta64 is an integer to array-api-compat's Dask ``isdtype`` (not to NumPy's), so durations
    were taken as class indices, labels or CTC lengths. All are refused rather than answered,
    without computing anything (``_meta`` is an empty chunk)."""
    for name, x in present.items():
        if any(math.isnan(s) for s in x.shape):
            raise LossValueError(loss, name, "an array of known shape (on a Dask array with unknown chunk sizes, "
                                 "call .compute_chunk_sizes() first)", f"shape {tuple(x.shape)}")
        split = [i for i, (size, chunks) in enumerate(zip(x.shape, x.chunks)) if size <= 1 and len(chunks) > 1]
        if split:
            raise LossValueError(loss, name, "an axis of length 0 or 1 in one chunk (Dask pairs the blocks of one held "
                                 "in several wrongly beside arrays that hold it in one, and its reductions fail on "
                                 "an empty one): pass lossreg.toolkit.dense_chunks(x)",
                                 f"chunks {x.chunks[split[0]]} along axis {split[0]} of shape {tuple(x.shape)}")
        if _is_matrix(getattr(x, "_meta", None)):
            raise LossTypeError(loss, name, "a plain array, not a Dask array of NumPy matrix chunks (they keep two "
                                "axes through indexing and reductions, and * multiplies them as matrices): "
                                "pass x.map_blocks(np.asarray)",
                                f"dask array of matrix chunks of dtype {x.dtype} and shape {tuple(x.shape)}")
        if x.dtype.kind == "m":
            raise LossTypeError(loss, name, "a numeric array, not NumPy timedelta64 durations (not a number type of "
                                "the standard, as on NumPy): pass x.astype(np.int64), or x / np.timedelta64(1, unit)",
                                describe(x))
        if _is_masked(getattr(x, "_meta", None)):
            raise LossTypeError(loss, name, "a plain array, not a Dask array of NumPy masked chunks (their sums "
                                "skip masked entries while a mean's count keeps them): pass da.ma.filled(x, value), "
                                "or da.ma.getdata(x) with a 0 weight where da.ma.getmaskarray(x) is set",
                                f"dask array of masked chunks of dtype {x.dtype} and shape {tuple(x.shape)}")


def torch_compiling() -> bool:
    """Whether ``torch.compile`` (Dynamo) is tracing the caller.

    Dynamo runs a function so marked (the mark is what ``torch.compiler.assume_constant_result``
    sets; lossreg does not import torch) instead of tracing it, and keeps its answer as a
    constant of the graph. Traced code must not read lossreg's caches: Dynamo would guard on
    their contents and recompile whenever an unrelated call filled them.
    """
    torch = sys.modules.get("torch")
    if torch is None or not torch.compiler.is_compiling():
        return False
    if not _QUIETED:
        _quiet_dynamo()
    return True


torch_compiling._dynamo_marked_constant = True  # type: ignore[attr-defined]
_QUIETED: list[bool] = []


def _quiet_dynamo() -> None:
    """Tell Dynamo that array-api-compat's ``lru_cache``d type tests may be traced through.

    They are pure functions of a type, so tracing through the cache is exact; without this,
    Dynamo warns once per call site (a dozen warnings for a user's first compiled loss). This
    uses the registration torch itself makes for einops; if it moves, the warnings come back.
    """
    _QUIETED.append(True)
    try:
        from array_api_compat.common import _helpers
        from torch._dynamo.utils import allow_lru_cache_wrapper_trace_without_warning, is_lru_cache_wrapped_function
    except ImportError:
        return
    for value in vars(_helpers).values():
        if is_lru_cache_wrapped_function(value):
            allow_lru_cache_wrapper_trace_without_warning(value)


def _namespace(loss: str, present: dict[str, Any]) -> Any:
    for name, x in present.items():
        if not compat.is_array_api_obj(x):
            if _is_matrix(x):  # not an array to array-api-compat: "expected an array (NumPy, ...)" misled
                raise LossTypeError(loss, name, "a plain array, not a NumPy matrix (it keeps two axes through "
                                    "indexing and reductions): pass np.asarray(x)",
                                    f"numpy matrix of dtype {x.dtype} and shape {tuple(x.shape)}")
            raise LossTypeError(loss, name, AN_ARRAY, describe(x))
        if _is_masked(x):
            # NumPy's sums skip masked entries while the mean's count keeps them: a silently wrong loss.
            raise LossTypeError(loss, name, "a plain array, not a NumPy masked array (pass x.filled(value), or "
                                "x.data with a 0 weight where x.mask is set)",
                                f"numpy MaskedArray of dtype {x.dtype} and shape {tuple(x.shape)}")
    try:
        return compat.array_namespace(*present.values())
    except TypeError:
        libraries = ", ".join(f"'{n}' from {_library(x)}" for n, x in present.items())
        raise LossTypeError(loss, "/".join(present), "arrays of one array library", libraries) from None


def _is_matrix(x: Any) -> bool:
    """A NumPy ``np.matrix`` (NumPy is only looked up if it is already imported)."""
    np = sys.modules.get("numpy")
    return np is not None and isinstance(x, np.matrix)


def _is_masked(x: Any) -> bool:
    """A NumPy masked array (``numpy.ma`` is only looked up if it is already imported)."""
    ma = sys.modules.get("numpy.ma")
    return ma is not None and isinstance(x, ma.MaskedArray)


def _device_of(x: Any) -> Any:
    # compat.device asks about every library in turn; a torch tensor can be asked directly.
    return x.device if compat.is_torch_array(x) else compat.device(x)


def _placement(x: Any) -> Any:
    """What must be equal for two arrays to meet: their device, or None when anything goes.

    A JAX array is placed on a set of devices, however it is split over them (``P(None, "b")``
    log-probabilities meet ``P("b")`` targets), and JAX moves an uncommitted array (made by
    ``jnp.asarray``, say) to the others, as ``jax.jit`` does: only committed device sets count.
    """
    device = _device_of(x)
    if device is None or not compat.is_jax_array(x):  # traced arrays (jax.jit, grad) report no device
        return device
    return frozenset(x.devices()) if x.committed else None


def _check_devices(loss: str, present: dict[str, Any]) -> None:
    # A plain loop: torch.compile (Dynamo) cannot trace an assignment expression in a comprehension.
    first: Any = None
    for name, x in present.items():
        where = _placement(x)
        if where is None:
            continue
        if first is None:
            first = (name, x, where)
        elif where != first[2]:
            raise LossValueError(loss, name, f"an array on {first[0]}'s device {_device_of(first[1])}",
                                 f"one on {_device_of(x)}")


def device(x: Any) -> Any:
    """The device to make new arrays on that meet ``x`` (``device=`` of ``xp.arange``, ``xp.zeros``, ...).

    ``array_api_compat.device(x)``, except for a JAX array split over several devices: its
    sharding fits only arrays of its own shape, so new arrays go to JAX's default device (None),
    from which JAX moves them next to ``x`` when they meet. So too for an uncommitted JAX array
    (``jnp.asarray``'s): an array made with ``device=`` is committed there, and would clash with
    another argument committed to another device, which ``x`` itself meets (JAX moves it, and the
    device check lets it pass); one made on the default device is uncommitted, as ``x`` is.
    """
    dev = compat.device(x)
    if dev is not None and compat.is_jax_array(x) and (len(x.devices()) > 1 or not x.committed):
        return None
    return dev


def check_reduction(loss: str, reduction: Any, allowed: tuple[str, ...] = REDUCTIONS) -> None:
    """``reduction`` is one of ``allowed`` ("none", "mean", "sum" by default)."""
    if not isinstance(reduction, str) or reduction not in allowed:  # an array's `in` would be elementwise
        raise LossValueError(loss, "reduction", "one of " + ", ".join(map(repr, allowed)), repr(reduction))


FLOATING = "a real floating-point array"  # what check_floating's error expects (lossreg.keras reads it)
# ... and what it expects where complex numbers are taken too (l1_loss's, as torch's; lossreg.keras reads it)
FLOATING_OR_COMPLEX = "a real floating-point array, or a complex64 or complex128 one"
LABELS = "labels as a real floating-point or integer array"  # what pointwise_inputs' labels refuse (booleans)
AN_ARRAY = "an array (NumPy, CuPy, torch, JAX, Dask, ...)"  # what an argument that is no array is told


def not_an_array(loss: str, name: str, value: Any) -> LossTypeError:
    """The error for an array option its library cannot make an array of (the adapters convert
    them): one of strings, objects or dates (it has a dtype) is told the dtype wanted, anything
    else (a string, a dict) that an array is."""
    return LossTypeError(loss, name, FLOATING if getattr(value, "dtype", None) is not None else AN_ARRAY,
                         describe(value))


def check_floating(loss: str, name: str, x: Any, xp: Any, take_complex: bool = False) -> bool:
    """``x`` has a real floating dtype or, where ``take_complex``, a complex one of single or double
    precision (then True is returned). torch's complex32 is refused: half precision is computed in
    float32, and a cast of complex numbers to it would drop their imaginary parts."""
    if not xp.isdtype(x.dtype, "real floating"):
        if take_complex and xp.isdtype(x.dtype, "complex floating") and xp.finfo(x.dtype).bits >= 32:
            return True
        raise LossTypeError(loss, name, FLOATING_OR_COMPLEX if take_complex else FLOATING, describe(x))
    return False


def check_integer(loss: str, name: str, x: Any, xp: Any, what: str = "an integer array") -> None:
    """``x`` has an integer dtype; ``what`` says what was expected, in words."""
    if not xp.isdtype(x.dtype, "integral"):
        raise LossTypeError(loss, name, what, describe(x))


def check_same_shape(loss: str, name: str, x: Any, like_name: str, like: Any) -> None:
    """``x`` (the argument ``name``) has the shape of ``like`` (the argument ``like_name``): no broadcasting."""
    if x.shape != like.shape:
        raise LossValueError(
            loss, name, f"the shape of '{like_name}' {tuple(like.shape)}", f"shape {tuple(x.shape)}"
        )


def check_shape(loss: str, name: str, x: Any, shape: tuple[int | None, ...], what: str | Callable[[], str]) -> None:
    """``shape`` may hold ``None`` for any length; ``what`` describes the expectation in words, or
    is a function making the words, called only to raise (see :func:`check_values`)."""
    if len(x.shape) != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape)):
        raise LossValueError(loss, name, what if isinstance(what, str) else what(), f"shape {tuple(x.shape)}")


def check_flag(loss: str, name: str, value: Any) -> None:
    """A bool option: anything else is a :class:`~lossreg.LossTypeError`, as torch's argument
    parser raises a TypeError (``1`` and ``"yes"`` are not taken for True)."""
    if not isinstance(value, bool):
        raise LossTypeError(loss, name, "True or False", _given_option(value, "True or False", describe))


def check_number(loss: str, name: str, value: Any, lo: float = -math.inf, hi: float = math.inf, *,
                 integer: bool = False, arrays: bool = False, finite: bool = False) -> Any:
    """A Python scalar option within [lo, hi] (and not ±inf with ``finite``: an option such as an
    epsilon or an exponent that would make every value NaN, 0 or inf). Returns the option to
    compute with: ``value`` itself, but for an array whose value cannot be read (below).

    With ``arrays=True`` (for an option the loss declares differentiable or an array option), a
    0-d real array is accepted too: a learned option (a ``requires_grad`` tensor) or a value
    traced under ``jax.jit``. Its range is checked where its value can be read without a sync or
    a trace (see :func:`check_values`); elsewhere (JAX, Dask, CUDA, a trace) a floating one is
    returned NaN where it is out of range, so that a loss computed with the returned option is NaN
    rather than quietly computed from a value it does not take.
    """
    if arrays and compat.is_array_api_obj(value):
        xp = compat.array_namespace(value)
        if value.ndim != 0 or not xp.isdtype(value.dtype, "integral" if integer else ("integral", "real floating")):
            kind = "an integer" if integer else "a number"
            raise LossValueError(loss, name, f"{kind} or a 0-d {'integer' if integer else 'real'} array", describe(value))
        if (lo, hi) == (-math.inf, math.inf) and not finite:
            return value
        bad = ~((value >= lo) & (value <= hi))
        if finite:
            bad = bad | xp.isinf(value)
        bad = check_values(loss, name, value, bad, xp, f"a {'finite ' if finite else ''}value in [{lo}, {hi}]")
        return poison(xp, value, bad) if xp.isdtype(value.dtype, "real floating") else value
    kinds = (int,) if integer else (int, float)
    if integer:  # what an array library takes as an integer scalar (torch: "Overflow when unpacking long long")
        lo, hi = max(lo, INT64_MIN), min(hi, INT64_MAX)
    elif type(value) is int and not -sys.float_info.max <= value <= sys.float_info.max:
        raise LossValueError(loss, name, "a number within float64's range (|x| < 1.8e308)",
                             f"an int of {value.bit_length()} bits")
    if isinstance(value, bool) or not isinstance(value, kinds) or not (lo <= value <= hi):
        kind = "an integer" if integer else "a finite number" if finite else "a number"
        bounds = "" if (lo, hi) == (-math.inf, math.inf) else f" in [{_bound_text(lo)}, {_bound_text(hi)}]"
        raise LossValueError(loss, name, kind + bounds, _given_option(value, "a Python number"))
    if finite and not -math.inf < value < math.inf:  # comparisons, not math.isinf: torch.compile traces them
        raise LossValueError(loss, name, "a finite number" + ("" if lo == -math.inf else f" ≥ {lo}")
                             + ("" if hi == math.inf else f" ≤ {hi}"), repr(value))
    return value


def _given_option(value: Any, wanted: str, plain: Callable[[Any], str] = repr) -> str:
    """What a non-array option was given, for its error (``plain(value)``): a value traced by a JAX
    transformation (a schedule's value passed into a jitted step) says so, where JAX's own repr,
    ``JitTracer(~float32[])``, did not say what to pass."""
    jax = sys.modules.get("jax")
    if jax is not None and isinstance(value, jax.core.Tracer):
        return (f"{describe(value)} traced by a JAX transformation (jax.jit, grad, vmap): this option is static, "
                f"pass {wanted} (a closure constant, or a static argument of jax.jit)")
    if compat.is_array_api_obj(value) and getattr(value, "ndim", None) == 0:
        # A 0-d array (jnp.float32(0.1), optax-style) may well be in range: "expected a number in
        # [0.0, 1.0], got Array(0.1)" read as a wrong value; the kind is what is wrong.
        return f"{plain(value)}, a 0-d array: this option is static, pass {wanted}"
    return plain(value)


def _bound_text(bound: float) -> str:
    return {INT64_MIN: "-2**63", INT64_MAX: "2**63 - 1"}.get(bound, str(bound))  # type: ignore[call-overload]


def is_lazy(x: Any) -> bool:
    """Whether reading values out of ``x`` would force a computation or fail under tracing."""
    return compat.is_lazy_array(x)


class Setting:
    """A process-wide setting with thread-local overrides, cheap to read and visible to tracers.

    ``torch.compile`` cannot trace ``ContextVar.get``, but it reads module globals and the
    attributes of objects and of a ``threading.local`` (and guards on them). So an override is
    kept in a per-thread stack, consulted only while ``active`` (a count over all threads) says
    one is in force: with none, reading the setting is one attribute lookup. Overrides are
    thread-local, not asyncio-task-local: tasks sharing a thread share them.
    """

    def __init__(self, default: Any) -> None:
        self.default = default
        self.active = 0
        self._local = threading.local()
        self._lock = threading.Lock()

    def get(self) -> Any:
        if torch_compiling() or self.active:  # traced code counts no block (see override)
            return self.here()
        return self.default

    def here(self) -> Any:
        """The value in force in this thread, read without ``active``: what traced code reads, as
        Dynamo guards on what it reads, and ``active`` changes whenever any thread opens a block."""
        stack = getattr(self._local, "stack", None)
        return stack[-1][0] if stack else self.default

    @contextlib.contextmanager
    def override(self, value: Any) -> Iterator[None]:
        stack = self._local.__dict__.setdefault("stack", [])
        entry = [value]  # its own entry, removed by identity: blocks may end out of order (a
        stack.append(entry)  # generator closed, or an asyncio task left, inside another's block)
        # A block opened in a function torch.compile traces changes this thread's stack only, which
        # is all traced code reads (here()): Dynamo cannot enter the lock (under fullgraph=True the
        # block was its "Unsupported context manager"), and it would guard on a count changed there
        # and write it back after the graph, as a constant, over other threads' blocks.
        counted = not torch_compiling()
        if counted:
            with self._lock:
                self.active += 1
        try:
            yield
        finally:
            if counted:
                with self._lock:
                    self.active -= 1
            for i in range(len(stack) - 1, -1, -1):
                if stack[i] is entry:
                    del stack[i]
                    break


CHECK_MODES = ("auto", "sync", "poison")
_check_mode = Setting("auto")


def read_environment() -> None:
    """Take ``LOSSREG_VALUE_CHECKS`` from the environment: at import and at ``lossreg.reload()``.

    Read then rather than at every call: a call costs a global lookup, and traced code (which
    cannot see ``os.environ``) follows the setting too.
    """
    raw = os.environ.get("LOSSREG_VALUE_CHECKS", "auto")
    mode = raw.strip().lower() or "auto"
    if mode not in CHECK_MODES:  # a typo must not switch the checks off: say so, keep the default
        import warnings

        warnings.warn(f"LOSSREG_VALUE_CHECKS={raw!r} is not one of {', '.join(CHECK_MODES)}; using 'auto'",
                      UserWarning, stacklevel=2)
        mode = "auto"
    _check_mode.default = mode


def _env_switch(name: str, default: bool) -> bool:
    """An on/off environment variable: 1, true, yes, on / 0, false, no, off (any case); unset or
    empty is ``default``, and anything else warns, naming the variable, and is ``default`` too."""
    raw = os.environ.get(name, "")
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    if value:
        import warnings

        warnings.warn(f"{name}={raw!r} is not one of 1, true, yes, on / 0, false, no, off; "
                      f"using the default ({'on' if default else 'off'})", UserWarning, stacklevel=3)
    return default


def _env_seconds(name: str, default: float) -> float:
    """A number of seconds from the environment (0 or more; ``inf`` is never); unset or empty is
    ``default``, and anything else warns, naming the variable, and is ``default`` too."""
    raw = os.environ.get(name, "")
    if not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value >= 0:  # not a number, NaN or negative
        import warnings

        warnings.warn(f"{name}={raw!r} is not a number of seconds (0 or more); using the default ({default})",
                      UserWarning, stacklevel=3)
        return default
    return value


read_environment()


@contextlib.contextmanager
def value_checks(mode: str) -> Iterator[None]:
    """How invalid values (class indices out of range, probabilities outside [0, 1]) are caught.

    "auto" (the default, or ``LOSSREG_VALUE_CHECKS`` as it was at import or at the last
    ``lossreg.reload()``): raise on CPU arrays, poison on accelerators. "sync": raise wherever
    values can be read; on a GPU this reads one boolean back to the host, a device
    synchronisation per call (tens of microseconds, it stalls queued kernels, and it is not
    allowed in a CUDA graph). "poison": never read; an invalid element makes its loss NaN.
    Arrays that hold no values to read (under ``torch.compile``, ``torch.func`` transforms,
    ``jax.jit``, on ``meta`` tensors, lazy Dask arrays) are always poisoned, whatever the mode.
    Indices are clamped before any gather in every mode, so no mode reads memory out of bounds.
    Thread-local.
    """
    if mode not in CHECK_MODES:
        raise LossValueError("lossreg.value_checks", "mode", "one of " + ", ".join(map(repr, CHECK_MODES)),
                             repr(mode))
    with _check_mode.override(mode):
        yield


def _on_accelerator(x: Any) -> bool:
    if compat.is_cupy_array(x):
        return True
    dev = _device_of(x)
    kind = getattr(dev, "type", None) or getattr(dev, "platform", None)  # torch / jax
    return kind not in (None, "cpu")


def check_mode() -> str:
    """The value-check mode in force: see :func:`value_checks`."""
    return str(_check_mode.get())


def traced(x: Any) -> bool:
    """Whether ``x`` holds no values that could be read now: a tracer, a meta or lazy array.

    torch: inside ``torch.compile`` (Dynamo, fake tensors), under ``torch.func.vmap`` (batched
    tensors, alone or inside grad's wrappers), while ``make_fx`` records a graph (``torch.func.linearize``)
    and on ``meta`` tensors; ``grad``, ``vjp`` and ``jvp`` alone wrap tensors whose values can be
    read, as torch's kernels do. Other libraries: lazy arrays (JAX under ``jit``, Dask).
    """
    if compat.is_torch_array(x):
        return _torch_traced(sys.modules["torch"], x) or bool(x.is_meta)  # torch is loaded: x is its tensor
    return is_lazy(x)


def _torch_traced(torch: Any, x: Any) -> bool:
    if torch.compiler.is_compiling():
        return True
    if torch._C._get_dispatch_mode(torch._C._TorchDispatchModeKey.PROXY) is not None:
        # make_fx records the call (torch.func.linearize traces its jvp so) on real tensors, and
        # refuses to read one: a value check's bool() raised its "trying to get value out of a
        # tracing tensor" where torch's kernels, which check inside the operator, answer.
        return True
    functorch = torch._C._functorch
    if functorch.is_functorch_wrapped_tensor(x):
        # torch.func's grad, vjp and jvp run eagerly: their wrappers hold values that can be read
        # (torch's own kernels read them and raise). vmap's batching, below or alone, cannot be.
        while functorch.is_gradtrackingtensor(x):
            x = functorch.get_unwrapped(x)
        if functorch.is_functorch_wrapped_tensor(x):
            return True
    # A plain Tensor is never fake (FakeTensor is a subclass): the isinstance test is skipped.
    return type(x) is not torch.Tensor and _is_fake(x)


def _is_dtensor(x: Any) -> bool:
    """A torch ``DTensor`` (``torch.distributed.tensor`` is only looked up if torch has loaded it)."""
    dtensor = sys.modules.get("torch.distributed.tensor")
    return dtensor is not None and isinstance(x, dtensor.DTensor)


def _is_fake(x: Any) -> bool:
    fake = sys.modules.get("torch._subclasses.fake_tensor")
    return fake is not None and isinstance(x, fake.FakeTensor)


def reads_values(x: Any) -> bool:
    """Whether a check of ``x``'s values may read them (and raise) rather than poison the result.

    False for :func:`traced` arrays; else by the mode: "sync" reads, "poison" does not, "auto"
    reads on the CPU only. Kernels use it to choose between a host check and an in-graph one.
    """
    if compat.is_torch_array(x):  # the common case, on the hot path of the torch kernels: one device lookup
        # Traced first: compiled code then reads no mode (Dynamo would guard on it).
        torch = sys.modules["torch"]
        if _torch_traced(torch, x) or x.is_meta:
            return False
        if type(x) is not torch.Tensor and _is_dtensor(x):
            # Each rank holds a part: bool() or int() of a DTensor's reduction reads the rank's own
            # part, so the ranks would decide apart (one raises, the other waits in its next
            # collective: a hang). The in-graph check poisons the result on every rank alike.
            return False
        mode = _check_mode.get() if _check_mode.active else _check_mode.default
        return mode == "sync" or (mode == "auto" and x.is_cpu)
    mode = _check_mode.get() if _check_mode.active else _check_mode.default
    if mode == "poison":
        return False
    if compat.is_jax_array(x):
        # array-api-compat calls every JAX array lazy (it may be a tracer). A concrete one is read
        # in "sync" mode only: "auto" leaves eager calls to the compiled kernels, which cannot.
        return mode == "sync" and _jax_value_known(x)
    if is_lazy(x):
        return False
    return mode == "sync" or (mode == "auto" and not _on_accelerator(x))


def _jax_value_known(x: Any) -> bool:
    """Whether the values of the JAX array ``x`` can be read now: a concrete array, or a tracer of
    ``jax.grad``, ``jax.value_and_grad`` or ``jax.jvp`` called outside ``jit`` (they run each
    operation at once, on known values: its ``to_concrete_value``), not one of ``jit``, ``vmap`` or
    ``eval_shape``, which stand for values not computed yet."""
    if not isinstance(x, sys.modules["jax"].core.Tracer):
        return True
    concrete = getattr(x, "to_concrete_value", None)
    return concrete is not None and concrete() is not None


def check_values(loss: str, name: str, x: Any, bad: Any, xp: Any, expected: str | Callable[[], str], *,
                 quote: Any = None) -> Any:
    """Guard against invalid values of ``x`` flagged by the boolean array ``bad``.

    Eager CPU arrays raise at once, quoting an offending value. Lazy and traced arrays cannot be
    read, and reading a GPU array costs a synchronisation, so there (see :func:`value_checks`)
    the returned mask is applied with :func:`poison` instead: an invalid element yields NaN,
    never a quietly wrong number. A mask that cannot be read (computed from another, traced
    array: ``torch.func.vmap`` over the lengths of plain targets, say) is returned too.

    ``expected`` may be a function making the message, called only to raise: a message quoting
    a size (``lambda: f"class indices in [0, {c})"``) formatted before the call would, under
    ``torch.compile(dynamic=True)``, make the size a constant of the graph, compiled again for
    every other number of classes.

    ``quote``, an array of ``x``'s size (read flattened), is where the offending value is read
    from: the user's own array where ``x`` is a copy of it made to compute with (:func:`holding`'s
    index dtype, whose largest number stands for every uint64 label past it; a cast to int64, in
    which such a length is negative), so that the error quotes the number the user holds.
    """
    if not (reads_values(x) and reads_values(bad)):
        return bad
    if bool(xp.any(bad)):
        flat = xp.reshape(x if quote is None else quote, (-1,))
        offender = flat[int(xp.argmax(xp.astype(xp.reshape(bad, (-1,)), xp.int8)))]
        # array-api-strict has no .item(): an index is quoted as the integer it is, not as a float
        got = (offender.item() if hasattr(offender, "item")
               else int(offender) if xp.isdtype(offender.dtype, "integral") else float(offender))
        raise LossValueError(loss, name, expected if isinstance(expected, str) else expected(), f"{got!r}")
    return None


def poison(xp: Any, values: Any, bad: Any | None) -> Any:
    """NaN where ``bad`` (a mask from :func:`check_values`) is set; ``values`` unchanged if None."""
    if bad is None:
        return values
    if compat.is_jax_array(values):
        # A NaN added only where bad is set, √-1 (√-0 = -0 elsewhere, and x + -0 is x): a NaN
        # constant in an untaken branch trips jax_debug_nans, which checks every operation when
        # jit is off. An addition, not a where: on a mesh of explicit axes JAX places a sum of a
        # batch-split array and a replicated one (a mask from targets the user did not split),
        # where it refuses a select between them.
        return values + _nan_where(xp, bad, dtype=values.dtype)
    # A Python scalar, not an array made from one: that would be a host-to-device copy (a
    # synchronisation on CUDA, and not allowed while capturing a CUDA graph).
    return xp.where(bad, math.nan, values)


def result_type(xp: Any, *arrays_and_dtypes: Any) -> Any:
    """``xp.result_type`` of arrays and dtypes, answered from the dtypes where that is enough.

    array-api-compat answers torch's half-precision dtypes, which the standard's promotion table
    leaves out, with ``torch.result_type`` on tensors, a call torch.compile cannot put in a graph:
    every loss on bfloat16 input broke ``fullgraph=True``. Equal dtypes promote to themselves, and
    distinct floating ones as torch, JAX and NumPy agree: to the widest, float16 with bfloat16 to
    float32. Anything else goes to ``xp.result_type``. A NumPy dtype of the other byte order
    (``'>f8'``, read from a file) is that dtype in the native order, as NumPy's arithmetic returns it.
    """
    dtypes: list[Any] = []
    for a in arrays_and_dtypes:
        dtype = getattr(a, "dtype", a)
        if getattr(dtype, "isnative", True) is False:  # else '>f2' and '<f2' would "promote" to float32
            dtype = dtype.newbyteorder("=")
        if dtype not in dtypes:
            dtypes.append(dtype)
    if len(dtypes) == 1:
        return dtypes[0]
    if all(xp.isdtype(d, "real floating") for d in dtypes):
        widest = max(dtypes, key=lambda d: xp.finfo(d).bits)
        return widest if xp.finfo(widest).bits >= 32 else xp.float32
    return xp.result_type(*dtypes)


def compute_dtype(xp: Any, dtype: Any) -> Any:
    """The dtype to accumulate in: float32 for half-precision inputs, as torch does."""
    return xp.float32 if xp.finfo(dtype).bits < 32 else dtype


def real_dtype(xp: Any, dtype: Any) -> Any:
    """The real floating dtype of ``dtype``'s precision: float32 for complex64, float64 for
    complex128 (what ``abs`` of such an array has, and a distance between two), a real one itself.
    The standard's ``finfo(dtype).dtype``, which array-api-compat's torch gives as a name."""
    if not xp.isdtype(dtype, "complex floating"):
        return dtype
    real = xp.finfo(dtype).dtype
    return getattr(xp, real) if isinstance(real, str) else real


def index_dtype(loss: str, name: str, xp: Any, size: int, shape: tuple[int, ...] | None = None) -> Any:
    """The integer dtype for indices up to ``size`` (the largest one the loss computes, e.g. the
    entries of an array): int64, except on JAX without x64, whose indices are int32 (asking it
    for int64 warns and truncates).

    Indices too large for int32 there raise rather than wrap around; ``shape``, that of the
    argument ``name``, is then named in the error. A symbolic size (``jax.export`` with a
    polymorphic shape), which cannot be compared, is not checked.
    """
    if not compat.is_jax_namespace(xp):
        return xp.int64
    dtype = xp.__array_namespace_info__().default_dtypes()["indexing"]
    if isinstance(size, int) and size > xp.iinfo(dtype).max:
        of = "" if shape is None else f" (shape {tuple(shape)})"
        raise LossValueError(loss, name, f"indices of at most {xp.iinfo(dtype).max}, JAX's {dtype} "
                             "(enable jax_enable_x64 for int64 ones)", f"indices up to {size}{of}")
    return dtype


def check_index_option(loss: str, name: str, value: int, xp: Any) -> None:
    """An integer option compared with class indices (``ignore_index``) within the index dtype:
    past JAX's int32 (without x64) it would be refused as if the target held it."""
    dtype = index_dtype(loss, name, xp, 0)
    info = xp.iinfo(dtype)
    if not info.min <= value <= info.max:
        way_out = " (enable jax_enable_x64 for int64 ones)" if compat.is_jax_namespace(xp) else ""
        raise LossValueError(loss, name, f"an integer in [{info.min}, {info.max}], the range of {dtype} "
                             f"indices{way_out}", repr(value))


def holding(loss: str, name: str, xp: Any, x: Any, *values: int) -> Any:
    """Integer ``x`` (the argument ``name``) in a dtype that also holds each of ``values``, and
    that every library indexes with.

    A comparison converts a Python int to the array's dtype: JAX wraps it (a uint8 target compared
    with ignore_index -100 compares with 156, so class 156 would count as ignored), array-api-strict
    raises, and int8 cannot say that 200 is below 255 classes. torch's ``index_select`` (``take``
    of class weights) takes int32 and int64 indices only, so a uint8 label map is cast even where
    its ignore_index of 255 fits. Such arrays are cast to the index dtype; the usual int32 and
    int64 ones are returned as they are. An unsigned value past the index dtype (uint64's from
    2**63; uint32's from 2**31 on JAX without x64) would wrap to a negative one: a -100 or -1
    marker cast to uint64 would read -100 or -1 again (an ignored target, the end of a
    multilabel list), where uint32's 2**32 - 100 is refused. It is made the index dtype's largest
    instead, past every class, as the number it holds is (read after the cast: torch cannot compare
    uint64 tensors).
    """
    info = xp.iinfo(x.dtype)
    if x.dtype in (xp.int32, xp.int64) and all(info.min <= v <= info.max for v in values):
        return x
    dtype = index_dtype(loss, name, xp, max(abs(v) for v in values), tuple(x.shape))
    held = xp.astype(x, dtype)
    if xp.isdtype(x.dtype, "unsigned integer") and info.max > xp.iinfo(dtype).max:
        held = xp.where(held < 0, xp.iinfo(dtype).max, held)
    return held


def minimum(xp: Any, x: Any, bound: float) -> Any:
    """``min(x, bound)`` elementwise for a Python number ``bound``; NaN propagates, gradient included.

    Unlike ``clip`` (torch's ``clamp`` masks a NaN's gradient to 0) and ``where`` (a select, which
    XLA's CPU reduction fusion does not take). On torch the bound is made a 0-d tensor here:
    array-api-compat converts a number through ``result_type``, which ``torch.compile`` cannot trace.
    """
    return xp.minimum(x, _bound(x, bound))


def maximum(xp: Any, x: Any, bound: float) -> Any:
    """``max(x, bound)`` elementwise for a Python number ``bound``, as :func:`minimum`."""
    return xp.maximum(x, _bound(x, bound))


def _bound(x: Any, bound: float) -> Any:
    return x.new_full((), bound) if compat.is_torch_array(x) else bound


def clip(xp: Any, x: Any, min: float | None = None, max: float | None = None) -> Any:
    """``xp.clip(x, min=min, max=max)`` for Python-number bounds, elementwise on every library.

    array-api-compat's Dask ``clip`` broadcasts each bound to the whole result in a single chunk
    (as large as ``x``, which then is rechunked to ``x``'s chunks): on data larger than memory
    that one chunk does not fit. Dask's own ``clip`` works chunk by chunk.
    """
    if compat.is_dask_namespace(xp):
        return x.clip(min, max)
    if (compat.is_torch_array(x) and x.is_floating_point() and (min is not None or max is not None)
            and not (_is_nan(min) or _is_nan(max))):
        # array-api-compat's torch clip asks math.isnan of each bound, which torch.compile cannot
        # trace for a symbolic float (a float option, or a default argument such as safe_log's
        # floor, under dynamic=True): a graph break, refused under fullgraph=True.
        return x.clamp(min, max)
    return xp.clip(x, min=min, max=max)


def _is_nan(bound: float | None) -> bool:
    # `bound != bound` rather than math.isnan: a comparison of a symbolic float is traceable.
    return bound is not None and bound != bound


Rows = tuple[int | None, ...]


def fused(function: Callable[..., Any] | None = None, *,
          rows: Rows | Callable[..., Rows | None] | None = None) -> Any:
    """``function(xp, *arrays, **options)``, run on concrete JAX arrays as one compiled program, and
    with ``rows`` on Dask arrays as one task per chunk of rows.

    For setup computed from small index arrays (masks, gather indices, transition tables), and
    helpers of a few float operations a loss calls on each new shape (CTC's frame, a clamp): eager
    JAX compiles each operation as its own program for every new shape and dtype (~10 ms apiece
    on a CPU), and such setup is tens of operations, more time than the loss; under ``jax.jit``
    it is one. ``function`` must be pure: no value checks (they read values; under ``jit`` they
    would poison instead of raise) and nothing read back to Python. ``arrays`` are arrays or None;
    ``options`` are hashable and fixed for each program (a dtype, a device, a size). Every other
    library's arrays, and traced JAX arrays (``jit``, ``vmap``, ``grad``), run ``function`` as it
    is. Integer and boolean setup gives the same values either way; float helpers are the same
    operations compiled by the same XLA (bitwise equal on every conformance case), but a fusion
    may round differently where one would reassociate (a p-norm did, by float32 ulps: not fused).

    With ``rows`` (``@fused(rows=(0, None, ...))``: each array's batch axis, or None for an array
    every row reads whole; or a function of the options giving them, or None where the function
    is not one of rows), Dask arrays run ``function`` as :func:`by_rows` does, one task per chunk
    of rows (CTC's setup was some seventy graph layers).
    """
    if function is None:
        return functools.partial(fused, rows=rows)
    # Its options (keyword-only parameters) and xp are static: a program per value, in jax.jit's
    # own cache (bounded), as every eager operation is compiled per shape in JAX's.
    static = [p.name for p in inspect.signature(function).parameters.values() if p.kind is p.KEYWORD_ONLY]
    program: list[Any] = []

    def run(xp: Any, *arrays: Any, **options: Any) -> Any:
        if rows is not None and compat.is_dask_namespace(xp):
            axes = rows(**options) if callable(rows) else rows
            if axes is not None and _in_rows(xp, arrays, axes):
                return by_rows(xp, run, *arrays, rows=axes, **options)
        if not (compat.is_jax_namespace(xp) and all(a is None or _concrete_jax(a) for a in arrays)):
            return function(xp, *arrays, **options)
        if not program:
            import jax  # JAX arrays: JAX is imported already

            program.append(jax.jit(function, static_argnums=0, static_argnames=static))
        return program[0](xp, *arrays, **options)

    return functools.wraps(function)(run)


def by_rows(xp: Any, function: Callable[..., Any], *arrays: Any, rows: Rows, **options: Any) -> Any:
    """``function(xp, *arrays, **options)`` (an array or a tuple of arrays and Nones), for a
    ``function`` whose results' rows each depend only on the same row of every array: ``rows``
    gives each array's batch axis, or None for an array that every row reads whole (or for None).

    On Dask it is one task per chunk of rows, ``function`` run there on the blocks' own library
    (NumPy, CuPy), every other axis merged into one chunk: Dask records each operation as a graph
    layer, built (metadata, tokens) and then scheduled per call. Each result is split by the rows
    along the axis whose length is the rows' count (found by running ``function`` on zeros of no
    row and of one, where the graph is built); a result without one, the same in every task, is
    the first task's. The same operations on the same rows: the same values. Anything
    else (no Dask array, a 0-d one, rows in chunks of unknown size, arrays of different numbers
    of rows, as one row broadcast against many) runs ``function`` as it is; :func:`along_rows` is
    the one-result form.
    """
    if not _in_rows(xp, arrays, rows):
        return function(xp, *arrays, **options)
    batched = [(x, a) for x, a in zip(arrays, rows) if x is not None and a is not None]
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    first = batched[0][0]
    # The rows split where any batched array's chunks split them (as Dask's own blockwise would
    # rechunk them), so that results meet the arrays they came from without a rechunk.
    ends = sorted({end for x, a in batched for end in itertools.accumulate(x.chunks[a])})
    chunks = tuple(b - a for a, b in zip([0] + ends, ends) if b > a) or (0,)
    # Every batched array in those chunks of rows, its other axes (and each array read whole) in
    # one chunk: a task's blocks are then its rows' whole arrays.
    held = [None if x is None else x.rechunk({j: chunks if j == a else -1 for j in range(x.ndim)})
            for x, a in zip(arrays, rows)]
    # The results' shapes and batch axes, from the function run on zeros of no row and of one (an
    # array read whole is zeros of its shape, never written). Run here, where the graph is built:
    # a row of CTC's log-probabilities is T x C, and probes of one and two rows held three (206 MiB
    # at T, C = 1000, 8000 where the graph without them took 23), of none and one, one (114).
    # Every function of rows takes no row: boolean indexing leaves Dask chunks of none.
    bxp = compat.array_namespace(first._meta)

    def probe(n: int) -> Any:
        return function(bxp, *(None if x is None else bxp.zeros(
            tuple(n if j == a else size for j, size in enumerate(x.shape)), dtype=x.dtype)
            for x, a in zip(arrays, rows)), **options)

    with _quiet_zeros(bxp):
        empty, one = probe(0), probe(1)
    single = not isinstance(empty, tuple)
    name = f"{function.__name__.strip('_')}-{tokenize(_named(function), options, *held)}"
    task = functools.partial(_rows_block, function=function, **options)
    layer: dict[Any, Any] = {(name, i): (task, *(
        None if x is None else (x.name, *(i if j == a else 0 for j in range(x.ndim))) for x, a in zip(held, rows)))
        for i in range(len(chunks))}
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[x for x in held if x is not None])
    results = [None if small is None else _rows_result(graph, name, k, single, chunks, small, large, first._meta,
                                                       function.__qualname__)
               for k, (small, large) in enumerate(zip(*((empty,), (one,)) if single else (empty, one)))]
    return results[0] if single else tuple(results)


def _named(function: Callable[..., Any]) -> Any:
    """What stands for ``function`` in :func:`by_rows`' task keys: its module and qualified name
    where they find this very function (a module's own, as every loss's), else the function itself,
    which Dask tokenizes with its code and the values it closes over (~25 µs more). Dask takes
    tasks of one key for one computation: two closures of one ``def`` (a plugin's ``scaled(k)``) or
    a function redefined in ``__main__`` (a notebook's cell run again) would share their keys."""
    module = sys.modules.get(function.__module__) if function.__module__ != "__main__" else None
    found: Any = module
    for part in function.__qualname__.split("."):
        found = getattr(found, part, None)
    return (function.__module__, function.__qualname__) if found is function else function


def _quiet_zeros(bxp: Any) -> Any:
    """Where :func:`by_rows` probes its function: NumPy's floating-point warnings off, as its
    zeros are no caller's data (GaussianNLLLoss's log and quotient of a variance of 0 at
    ``eps=0`` warned where the graph was built, and raised under ``np.seterr(all="raise")``).
    ``np.errstate`` is thread-local; CuPy does not warn."""
    if not compat.is_numpy_namespace(bxp):
        return contextlib.nullcontext()
    import numpy as np  # NumPy blocks: NumPy is imported already

    return np.errstate(all="ignore")


def rows_against(xp: Any, x: Any, *arrays: Any) -> Rows:
    """:func:`by_rows`' ``rows`` for ``arrays`` that broadcast against ``x``, whose rows are its
    first axis: 0 for an array with those rows, None (read whole: every row reads the same) for one
    of fewer axes or of one row broadcast to them, and for None; all None for a 0-d ``x`` (no rows).

    Off Dask, where the rows are not read, all None without comparing sizes: under
    ``torch.compile(dynamic=True)`` a comparison of sizes is a guard on them. All None too where an
    array split along another axis would be merged into tasks past Dask's ``array.chunk-size``
    (an elementwise loss of wide rows in chunks of columns): op by op, it keeps its blocks."""
    if not compat.is_dask_namespace(xp) or any(_merged_past_limit(a) for a in arrays if a is not None):
        return (None,) * len(arrays)
    return tuple(None if a is None or not x.ndim or a.ndim != x.ndim or a.shape[0] != x.shape[0] else 0
                 for a in arrays)


def _merged_past_limit(x: Any) -> bool:
    """Whether a Dask array split along an axis past its first would, its other axes merged into
    one chunk (:func:`by_rows`' tasks), have blocks larger than Dask's ``array.chunk-size``."""
    if x.ndim < 2 or all(len(c) == 1 for c in x.chunks[1:]):
        return False
    return max(x.chunks[0], default=0) * math.prod(x.shape[1:]) * x.dtype.itemsize > _dask_chunk_bytes()


def _dask_chunk_bytes() -> int:
    """Dask's ``array.chunk-size``: the most a block :func:`by_rows` merges may hold."""
    import dask  # a Dask namespace: Dask is imported already
    from dask.utils import parse_bytes

    return int(parse_bytes(dask.config.get("array.chunk-size")))


def _in_rows(xp: Any, arrays: tuple[Any, ...], rows: Rows) -> bool:
    """Whether :func:`by_rows` runs ``arrays`` as tasks: Dask arrays with rows, as many in each,
    none 0-d (no rows) or in chunks of unknown size (boolean indexing: they cannot be paired), and
    each array read whole within Dask's chunk size."""
    if not compat.is_dask_namespace(xp):
        return False
    batched = [(x, a) for x, a in zip(arrays, rows) if x is not None and a is not None]
    # An array read whole is merged into one chunk for every task, and probed at its full size where
    # the graph is built: past Dask's own chunk size (an LM head split by vocabulary, out of core)
    # it is run op by op, keeping its blocks.
    split_whole = any(math.prod(x.numblocks) > 1 and x.nbytes > _dask_chunk_bytes() for x, a in zip(arrays, rows)
                      if a is None and hasattr(x, "numblocks"))
    # Rows of one length: an array of one row broadcast against many has no block for each of
    # theirs, and row i would not read its own row of it.
    return (bool(batched) and not split_whole
            and all(x.ndim and not any(map(math.isnan, x.chunks[a])) for x, a in batched)
            and len({x.shape[a] for x, a in batched}) == 1)


def _rows_result(graph: Any, name: str, k: int, single: bool, chunks: tuple[int, ...], small: Any, large: Any,
                 meta: Any, function: str) -> Any:
    """:func:`by_rows`' result ``k`` as a Dask array, from its tasks' ``graph`` (each task named
    ``(name, i)``), split along the axis where its probe of no row (``small``) and of one
    (``large``) differ, or the first task's where they do not."""
    import dask.array as da  # a Dask namespace: Dask is imported already
    from dask.highlevelgraph import HighLevelGraph

    along = [j for j in range(small.ndim) if small.shape[j] != large.shape[j]]
    if len(along) > 1 or along and (small.shape[along[0]], large.shape[along[0]]) != (0, 1):
        raise ValueError(f"{function}'s result {k} is not split by the rows: shape {small.shape} of no row, "
                         f"{large.shape} of one")
    part = f"{name}-{k}"
    if along:
        out_chunks = tuple(chunks if j == along[0] else (size,) for j, size in enumerate(small.shape))
        picks = {(part, *(i if j == along[0] else 0 for j in range(small.ndim))): (_rows_part, (name, i), k, single)
                 for i in range(len(chunks))}
    else:  # the same in every task: the first one's
        out_chunks = tuple((size,) for size in small.shape)
        picks = {(part, *(0,) * small.ndim): (_rows_part, (name, 0), k, single)}
    layers: dict[str, Any] = {**graph.layers, part: picks}
    dependencies = {**graph.dependencies, part: {name}}
    return da.Array(HighLevelGraph(layers, dependencies), part, out_chunks,
                    meta=da.utils.meta_from_array(meta, ndim=small.ndim, dtype=small.dtype))


def _rows_part(results: Any, k: int, single: bool) -> Any:
    """Result ``k`` of one task of :func:`by_rows`."""
    return results if single else results[k]


def _concrete_jax(x: Any) -> bool:
    """A JAX array with values (not a tracer of ``jit``, ``vmap`` or ``grad``)."""
    return compat.is_jax_array(x) and not isinstance(x, sys.modules["jax"].core.Tracer)


@fused
def _nan_where(xp: Any, bad: Any, *, dtype: Any) -> Any:
    """NaN where the mask ``bad`` is set, -0 elsewhere, in ``dtype`` (see :func:`poison`): one
    compiled program on eager JAX, not three."""
    return xp.sqrt(-xp.astype(bad, dtype))


def dense_chunks(x: Any, axis: int | None = None) -> Any:
    """A Dask array ``x`` rechunked without its empty chunks (along ``axis``, or every axis), on
    which some of Dask's own reductions (``max``, ``min``) fail when computed: boolean indexing,
    then ``compute_chunk_sizes()``, leaves them. An axis that is all empty (no row picked) is cut
    to its first chunk. Anything else (another library's array, chunks of unknown size) is
    returned as it is."""
    if not compat.is_dask_array(x):
        return x
    axes = [i for i, sizes in enumerate(x.chunks) if (axis is None or i == axis % x.ndim) and 0 in sizes
            and len(sizes) > 1 and not any(math.isnan(c) for c in sizes)]
    # Dask's rechunk leaves an array with no elements as it is: its first block along an empty
    # axis is the same (empty) array in one chunk.
    empty = tuple(slice(0, 1) if i in axes and not sum(x.chunks[i]) else slice(None) for i in range(x.ndim))
    x = x.blocks[empty] if any(s != slice(None) for s in empty) else x
    drop = {i: tuple(c for c in x.chunks[i] if c) for i in axes if sum(x.chunks[i])}
    return x.rechunk(drop) if drop else x


def beside(reference: Any, x: Any) -> Any:
    """``x`` moved to ``reference``'s device where torch itself would take it as it is: a CPU
    tensor beside a tensor on another device (torch's ctc_loss moves CPU targets to the
    log-probabilities' device, cuDNN's form). Anything else is returned unchanged, for the
    device check that follows to judge."""
    if (compat.is_torch_array(x) and compat.is_torch_array(reference) and x.device.type == "cpu"
            and reference.device.type != "cpu"):
        return x.to(reference.device)
    return x


def reduce(xp: Any, values: Any, reduction: str, dtype: Any = None) -> Any:
    """Apply a "none" / "mean" / "sum" reduction, casting the result to ``dtype`` if given.

    The mean of nothing is NaN (torch's answer), computed without a division warning. The mean
    is the sum divided by the count, as torch, NumPy and JAX compute it; spelled so, its gradient
    is a broadcast view of the scalar on torch, where ``mean``'s backward writes out an array of
    the input's size (a pass over it in every loss's backward).
    """
    if reduction == "sum":
        values = xp.sum(values)
    elif reduction == "mean":
        n = math.prod(values.shape)
        values = xp.sum(values) / n if n else xp.sum(values) * math.nan
    return values if dtype is None else as_dtype(xp, values, dtype)


def gathers_along_axis(xp: Any) -> bool:
    """Whether picking entries of ``xp``'s arrays by index should gather along the axis.

    NumPy takes from the flattened array instead (several times faster than its
    ``take_along_axis``); Dask picks within each block (see :func:`take_class`). Everywhere else
    a gather along the axis is the better program: its gradient scatters straight into a zeroed
    array of ``x``'s shape, which the other gradients of ``x`` are added to in place (the flat
    form's is a view of a flat array, added out of place: on torch a pass and an allocation more,
    the portable cross-entropy's backward 1.7× torch's at 2048×8192 instead of 1.4×), and on
    arrays sharded with JAX's explicit axes a flattening reshape of a sharded axis is an error.
    """
    return not (compat.is_numpy_namespace(xp) or compat.is_dask_namespace(xp))


def take_along(xp: Any, x: Any, index: Any, axis: int) -> Any:
    """``xp.take_along_axis`` with an index dtype every library takes (JAX: any integer, as it has
    no int64 unless x64 is on; others: int64, which torch's gather wants).

    Along an axis sharded over devices in JAX's explicit sharding mode a gather is an error (its
    result's placement is ambiguous), so there the entries are picked by a mask summed over the
    axis: exact (each sum is the entry plus zeros), and the sum's placement is JAX's to infer.
    """
    if sharded_explicitly(x, axis):
        rows, index = xp.moveaxis(x, axis, -1), xp.moveaxis(index, axis, -1)  # (..., C), (..., K)
        named = xp.expand_dims(index, axis=-1) == xp.arange(x.shape[axis], dtype=index.dtype)  # (..., K, C)
        picked = xp.sum(xp.where(named, xp.expand_dims(rows, axis=-2), 0.0), axis=-1)
        return xp.moveaxis(picked, -1, axis)
    if index.dtype != xp.int64 and not compat.is_jax_namespace(xp):
        index = xp.astype(index, xp.int64)
    axis %= x.ndim
    elsewhere = slice(None, axis), slice(axis + 1, None)
    if compat.is_torch_array(x) and all(x.shape[s] == index.shape[s] for s in elsewhere):
        # torch's gather, which is take_along_axis where no axis broadcasts: array-api-compat's
        # take_along_dim broadcasts, which under torch.compile(dynamic=True) fixes the batch size
        # (one graph per size).
        return x.gather(axis, index)
    return xp.take_along_axis(x, index, axis=axis)


def take_within(xp: Any, x: Any, index: Any, axis: int) -> Any:
    """``xp.take(x, index, axis=axis)`` for an ``index`` whose entries all lie in [0, x.shape[axis]).

    JAX's take defaults to "fill": it wraps negative indices and checks every index against the
    bounds, some six operations an entry in the compiled program (setup tables, computed on
    every call under ``jax.jit``); here its gather clips, which in range changes nothing.
    """
    if compat.is_jax_namespace(xp):
        return xp.take(x, index, axis=axis, mode="clip")
    return xp.take(x, index, axis=axis)


def lookup(xp: Any, table: Any, index: Any) -> Any:
    """``table[index]``: entries of the 1-d ``table`` (class weights, say) picked by an integer
    array ``index`` of any shape (the result's), whose entries lie in [0, len(table)).

    On a JAX mesh of explicit axes, where the index is split over devices and the table whole,
    JAX asks where the gathered result goes: it is placed as the index is.
    """
    if _on_explicit_mesh(index):
        return table.at[index].get(out_sharding=index.aval.sharding)
    if compat.is_dask_array(index):
        # One task per block of the index, each with the whole table (class weights: small). Dask's
        # take from a Dask index is two layers that pair every chunk of the index with every
        # chunk of the table, and the flattening reshapes two more.
        import dask.array as da  # a Dask array: Dask is imported already

        axes = _LETTERS[:index.ndim]
        meta = table._meta if compat.is_dask_array(table) else table[:0]
        return da.blockwise(_lookup_block, axes, index, axes, table, "z", concatenate=True, dtype=table.dtype,
                            meta=meta)
    if index.ndim == 1:
        return xp.take(table, index)
    if math.prod(index.shape) == 0:  # Dask cannot flatten an empty index split in chunks
        return xp.reshape(table[:0], index.shape)
    return xp.reshape(xp.take(table, xp.reshape(index, (-1,))), index.shape)


def placed_like(xp: Any, x: Any, like: Any) -> Any:
    """``x`` ready to meet arrays placed as ``like`` in a ``where`` or a ``concat``.

    On a JAX mesh of explicit axes both refuse operands placed differently: a mask made from
    targets the user did not split, picking among values of a batch-split input; two views of a
    batch of which only one is split. There ``x`` is joined with a zero array of ``like``'s shape
    (or-ed with False, or +0 subtracted, which keeps -0 and every other value), and JAX places
    the result as the two joined; on every other array ``x`` itself, at no cost.
    """
    if not (_on_explicit_mesh(like) or _on_explicit_mesh(x)):
        return x
    if x.dtype == xp.bool:
        return xp.logical_or(x, xp.zeros_like(like, dtype=xp.bool))
    return x - xp.zeros_like(like, dtype=x.dtype)


def arange_like(xp: Any, n: int, like: Any, dtype: Any = None) -> Any:
    """``xp.arange(n, dtype=dtype)`` made to meet ``like``: on its device, and where ``like`` is a
    torch ``DTensor`` (tensor parallelism, FSDP2), a DTensor replicated over its mesh, since
    torch refuses to mix a plain tensor with one ("got mixed torch.Tensor and DTensor")."""
    out = xp.arange(n, dtype=dtype, device=device(like))
    if not _is_dtensor(like):
        return out
    dtensor, mesh = sys.modules["torch.distributed.tensor"], like.device_mesh
    return dtensor.DTensor.from_local(out, mesh, [dtensor.Replicate()] * mesh.ndim, run_check=False)


def whole(xp: Any, x: Any, axis: int | None = None) -> Any:
    """``x`` gathered whole onto every device, where it lies split over a JAX mesh of explicit axes;
    with ``axis``, only that axis gathered (the others stay split).

    There JAX refuses a product that would split one mesh axis over two axes of its result, as
    the similarities ``z @ z.T`` of batch-split rows would; with the second factor whole the
    result is split by rows, the all-gather a mesh of automatic axes inserts on its own. It also
    refuses to slice a split axis into pieces smaller than its parts (one frame of a sequence
    split over time). Every other array is returned as it is.
    """
    if not (sharded_explicitly(x, axis) if axis is not None else _on_explicit_mesh(x)):
        return x
    import jax  # an array on a JAX mesh: JAX is imported already

    spec = jax.sharding.PartitionSpec()
    if axis is not None:
        kept = list(x.aval.sharding.spec) + [None] * (x.ndim - len(x.aval.sharding.spec))
        kept[axis % x.ndim] = None
        spec = jax.sharding.PartitionSpec(*kept)
    return jax.sharding.reshard(x, x.aval.sharding.update(spec=spec))


def _on_explicit_mesh(x: Any) -> bool:
    sharding: Any = getattr(getattr(x, "aval", None), "sharding", None)
    return bool(getattr(getattr(sharding, "mesh", None), "explicit_axes", ()))


def sharded_explicitly(x: Any, axis: int) -> bool:
    """Whether ``axis`` of the JAX array or tracer ``x`` is split over a mesh axis of explicit type."""
    return bool(_explicit_names(x, axis))


def explicit_parts(x: Any, axis: int) -> int:
    """Into how many parts mesh axes of explicit type split ``axis`` of the JAX array or tracer
    ``x`` (1 for any other array): JAX slices such an axis only in multiples of that."""
    names = _explicit_names(x, axis)
    return math.prod(x.aval.sharding.mesh.shape[name] for name in names) if names else 1


def _explicit_names(x: Any, axis: int) -> tuple[str, ...]:
    sharding: Any = getattr(getattr(x, "aval", None), "sharding", None)
    explicit = getattr(getattr(sharding, "mesh", None), "explicit_axes", ())
    if not explicit or not x.ndim:
        return ()
    axis %= x.ndim
    names = sharding.spec[axis] if axis < len(sharding.spec) else None
    names = (names,) if isinstance(names, str) else names or ()
    return tuple(name for name in names if name in explicit)


def take_class(xp: Any, x: Any, index: Any) -> Any:
    """``x[n, index[n, ...], ...]``: pick one entry along axis 1 of ``x`` (shape (N, C, *d)).

    ``index`` has shape (N, *d) and must already lie in [0, C). NumPy takes from the flattened
    array: three operations, several times faster than its ``take_along_axis``; other libraries
    gather along the axis (see :func:`gathers_along_axis`), and Dask picks within each block of
    ``x`` (see :func:`_dask_pick`).
    """
    n, c = x.shape[0], x.shape[1]
    dev = device(x)
    if not c:  # no classes (torch takes C = 0 where every target is ignored): nothing to pick, and 0s to mask,
        # as a sum over the empty axis rather than new zeros: those would cut the loss from the input's
        # autograd graph (torch: "element 0 of tensors does not require grad" at backward)
        return xp.sum(x, axis=1)
    if gathers_along_axis(xp):
        picked = take_along(xp, x, xp.expand_dims(index, axis=1), axis=1)
        # "+ 0" reduces a DTensor's gather from logits sharded along the classes (tensor parallelism)
        # while it still has the gather's shape: torch (2.13) cannot reduce that partial result
        # once squeezed ("IndexError: too many indices"). Elsewhere it is one pass over N entries.
        return xp.squeeze(picked + 0, axis=1)
    if compat.is_dask_namespace(xp):
        return _dask_pick(x, index, 1, drop=True)
    index = index if index.dtype == xp.int64 else xp.astype(index, xp.int64)
    if x.ndim == 2:  # the common (N, C) case: take_each's take without its four reshapes (~15 µs)
        rows = xp.arange(0, n * c, max(c, 1), dtype=xp.int64, device=dev)
        return xp.take(xp.reshape(x, (-1,)), rows + index)
    spatial = math.prod(x.shape[2:])
    index = xp.reshape(index, (n, spatial))
    rows = xp.reshape(xp.arange(n, dtype=xp.int64, device=dev), (n, 1)) * (c * spatial)
    cols = xp.reshape(xp.arange(spatial, dtype=xp.int64, device=dev), (1, spatial))
    flat = xp.reshape(rows + index * spatial + cols, (-1,))
    return xp.reshape(xp.take(xp.reshape(x, (-1,)), flat), (n, *x.shape[2:]))


def take_each(xp: Any, x: Any, index: Any) -> Any:
    """``x[n, index[n, k]]``: from each row of ``x`` (shape (N, C)) the entries that ``index``
    (shape (N, K), integers in [0, C)) names; shape (N, K).

    NumPy takes from the flattened array; other libraries gather along the axis (see
    :func:`gathers_along_axis`); Dask picks within each block of ``x`` (see :func:`_dask_pick`).
    """
    if gathers_along_axis(xp):
        return take_along(xp, x, index, axis=1)
    if compat.is_dask_namespace(xp):
        return _dask_pick(x, index, 1)
    n, c = x.shape
    k = index.shape[1]
    dev = device(x)
    index = index if index.dtype == xp.int64 else xp.astype(index, xp.int64)
    # A step of at least 1: with no classes (C = 0) only an empty batch gets here.
    rows = xp.reshape(xp.arange(0, n * c, max(c, 1), dtype=xp.int64, device=dev), (n, 1))
    return xp.reshape(xp.take(xp.reshape(x, (-1,)), xp.reshape(rows + index, (-1,))), (n, k))


def take_rows(xp: Any, x: Any, index: Any) -> Any:
    """``x[t, n, index[n, k]]``: from each row ``x[t, n]`` (``x`` of shape (T, N, C)) the entries
    that ``index`` (shape (N, K), integers in [0, C)) names for row n; shape (T, N, K).

    One take from the flattened array (under ``jax.jit`` a gather along the class axis was no
    faster, value and gradient, at T, N, C = 200, 16, 128), or that gather where ``x`` or ``index``
    is sharded with JAX's explicit axes (a flattening reshape of a sharded axis is an error there:
    the flat indices of split labels are split too). Dask picks
    within each block of ``x`` (see :func:`_dask_pick`).
    """
    t, n, c = x.shape
    k = index.shape[1]
    if compat.is_jax_namespace(xp) and (any(sharded_explicitly(x, axis) for axis in range(3))
                                        or any(sharded_explicitly(index, axis) for axis in range(2))):
        return take_along(xp, x, xp.broadcast_to(xp.reshape(index, (1, n, k)), (t, n, k)), axis=2)
    if compat.is_dask_namespace(xp):
        return _dask_pick(x, index, 2, missing=0)
    if compat.is_jax_namespace(xp):
        return _jax_take_rows()(x, index)
    return _flat_take_rows(xp, x, index)


def _flat_take_rows(xp: Any, x: Any, index: Any) -> Any:
    """:func:`take_rows` as one take from the flattened array (on JAX the derivative's form: its
    transpose, the gradient, is a scatter of single entries)."""
    t, n, c = x.shape
    flat = _flat_rows(xp, index, t=t, c=c, dev=device(x))
    return xp.reshape(take_within(xp, xp.reshape(x, (-1,)), flat, axis=0), (t, n, index.shape[1]))


@functools.cache
def _jax_take_rows() -> Any:
    """:func:`take_rows` on JAX: the value taken as columns of the (T, N·C) array, N·K indices
    for all T frames, where the flat take computes T·N·K of them (an add each under jax.jit, in
    every forward program: 390,000 at T, N, K = 200, 16, 121); the derivative is the flat take's
    (:func:`_flat_take_rows`), whose transpose scatters single entries, where a gradient of
    the columns' take scatters columns (10× slower at that size). The same entries either way."""
    import jax  # a JAX array: JAX is imported already
    import jax.numpy as jnp

    @jax.custom_jvp
    def take(x: Any, index: Any) -> Any:
        t, n, c = x.shape
        k = index.shape[1]
        columns = jnp.reshape(index + jnp.reshape(jnp.arange(n, dtype=index.dtype) * c, (n, 1)), (-1,))
        return jnp.reshape(take_within(jnp, jnp.reshape(x, (t, n * c)), columns, axis=1), (t, n, k))

    @take.defjvp
    def _(primals: Any, tangents: Any) -> Any:
        (x, index), (dx, _) = primals, tangents
        return take(x, index), _flat_take_rows(jnp, dx, index)

    # One program on eager JAX (kernels off), not one per operation; inlined under jax.jit.
    return jax.jit(take)


# Index letters of Dask's blockwise: one per axis ("z" is kept for the class axis).
_LETTERS = "abcdefghijklmnopqrstuvwxy"


def _dask_pick(x: Any, index: Any, axis: int, *, drop: bool = False, missing: int | None = None) -> Any:
    """Entries of the Dask array ``x`` picked along ``axis`` by the integer Dask array ``index``
    (each in [0, C)), as one task per block of ``x``: a take within the block. ``index`` has
    ``x``'s axes but for ``missing`` (an axis it is broadcast along: take_rows' frames), and
    along ``axis`` the picks (K of them), or with ``drop`` no such axis (one pick, the axis gone).

    Dask cannot see the indices: its ``take`` pairs every chunk of the index with every chunk of
    ``x`` (a graph quadratic in the chunks), and a one-hot mask summed over the classes is
    eight layers or more (take_rows' product with it, thirty), each built, tokenized and then
    scheduled per call. Here a class axis held in one chunk is one layer; one split in chunks
    (a vocabulary, say) is picked block by block, each block's entries (0 for an index in
    another block) summed over the blocks: exact, an entry plus zeros, and no task holds more
    than a block of ``x``.
    """
    import dask.array as da  # a Dask array: Dask is imported already

    letters = _LETTERS[:x.ndim]
    x_axes = letters[:axis] + "z" + letters[axis + 1:]
    out = letters[:axis] + ("" if drop else "k") + letters[axis + 1:]
    index_axes = "".join(a for i, a in enumerate(out) if i != missing)
    options = dict(axis=axis, drop=drop, missing=missing, dtype=x.dtype, meta=x._meta, concatenate=True)
    if len(x.chunks[axis]) == 1:
        return da.blockwise(_pick_block, out, x, x_axes, index, index_axes, **options)
    classes = da.arange(x.shape[axis], chunks=(x.chunks[axis],), dtype="int64")
    parts = da.blockwise(_pick_block, out + "z", x, x_axes, index, index_axes, classes, "z", adjust_chunks={"z": 1},
                         **options)
    return da.sum(parts, axis=-1, dtype=x.dtype)


def _pick_block(x: Any, index: Any, classes: Any = None, *, axis: int, drop: bool, missing: int | None) -> Any:
    """One task of :func:`_dask_pick`, on NumPy (or CuPy) blocks; ``classes``: the class numbers
    of ``x``'s block when the class axis is split (then a trailing axis of one is added)."""
    xp = compat.array_namespace(x, index)
    if drop:
        index = xp.expand_dims(index, axis=axis)
    elif missing is not None:
        index = xp.expand_dims(index, axis=missing)
    index = xp.broadcast_to(index, tuple(x.shape[i] if i != axis else index.shape[i] for i in range(x.ndim)))
    if classes is None:
        picked = xp.take_along_axis(x, index, axis=axis)
    elif not x.shape[axis]:  # an empty block of classes (boolean indexing leaves them): no entry of it is picked
        picked = xp.zeros(index.shape, dtype=x.dtype)
    else:
        local = xp.astype(index, classes.dtype) - classes[0]  # a uint8 index would wrap below the block
        here = (local >= 0) & (local < x.shape[axis])
        picked = xp.where(here, xp.take_along_axis(x, xp.where(here, local, 0), axis=axis), 0)
    if drop:
        picked = xp.squeeze(picked, axis=axis)
    return picked if classes is None else xp.expand_dims(picked, axis=-1)


def _lookup_block(index: Any, table: Any) -> Any:
    """One task of :func:`lookup` on Dask: ``table[index]`` for a NumPy (or CuPy) block."""
    xp = compat.array_namespace(index, table)
    return xp.reshape(xp.take(table, xp.reshape(index, (-1,))), index.shape)


def along_rows(xp: Any, function: Callable[..., Any], *arrays: Any, **options: Any) -> Any:
    """``function(xp, *arrays, **options)``, for a ``function`` whose result, shaped like
    ``arrays[0]``, has rows (axis 0) that each depend only on the same row of every array of two
    axes or more; 1-D arrays are read whole by every row. ``options`` are fixed (no arrays).

    On Dask it is one task per chunk of rows, ``function`` run there on the blocks' own library
    (NumPy, CuPy), every other axis merged into one chunk: Dask records each of the function's
    operations as a graph layer, built (metadata, tokens) and then scheduled per call, and a loop
    records them again at every step (CTC's frame: twenty layers, here one). The same operations
    on the same blocks: the same values. Anything else (no Dask array) runs ``function`` as it is.
    """
    if not compat.is_dask_namespace(xp):
        return function(xp, *arrays, **options)
    import dask.array as da  # a Dask namespace: Dask is imported already

    # One index per axis: the rows share "n", every other axis its own (merged, so concatenated).
    operands: list[Any] = []
    for i, x in enumerate(arrays):
        if x.ndim == 1:
            operands += [x.rechunk(-1), (f"{i}.0",)]
        else:
            others = range(1, x.ndim)
            operands += [x.rechunk({j: -1 for j in others}), ("n",) + tuple(f"{i}.{j}" for j in others)]
    first = arrays[0]
    return da.blockwise(_rows_block, operands[1], *operands, function=function, concatenate=True,
                        dtype=first.dtype, meta=first._meta, **options)


def over_last_axis(xp: Any, function: Callable[..., Any], x: Any, **options: Any) -> Any:
    """``function(xp, x, **options)``, for a ``function`` that reduces ``x``'s last axis: its result
    has ``x``'s shape without that axis, each entry read from ``x``'s entries at the same index.

    On Dask it is one task per block, the last axis merged into one chunk, ``function`` run there on
    the block's own library (see :func:`along_rows`: a p-norm with its guards was up to twelve
    layers, here one). Anything else runs ``function`` as it is.
    """
    if not compat.is_dask_namespace(xp):
        return function(xp, x, **options)
    import dask.array as da  # a Dask namespace: Dask is imported already

    leading = tuple(f"{i}" for i in range(x.ndim - 1))
    return da.blockwise(_rows_block, leading, x.rechunk({x.ndim - 1: -1}), leading + ("last",), function=function,
                        concatenate=True, dtype=x.dtype, meta=da.utils.meta_from_array(x, ndim=x.ndim - 1), **options)


def _rows_block(*blocks: Any, function: Callable[..., Any], **options: Any) -> Any:
    """One task of :func:`along_rows`, :func:`over_last_axis` or :func:`by_rows`: ``function`` on
    NumPy (or CuPy) blocks (None where :func:`by_rows` was given None)."""
    return function(compat.array_namespace(*(b for b in blocks if b is not None)), *blocks, **options)


@fused
def _flat_rows(xp: Any, index: Any, *, t: int, c: int, dev: Any) -> Any:
    """:func:`take_rows`' indices into the flattened (T, N, C) array, (T·N·K): one compiled
    program on eager JAX, not nine."""
    n, k = index.shape
    flat = (xp.reshape(xp.arange(t, dtype=index.dtype, device=dev), (t, 1, 1)) * (n * c)
            + xp.reshape(xp.arange(n, dtype=index.dtype, device=dev), (1, n, 1)) * c
            + xp.reshape(index, (1, n, k)))
    return xp.reshape(flat, (-1,))


def class_shape(x: Any, axis: int = 1) -> tuple[int, ...]:
    """A shape that broadcasts a (C,) vector against ``x`` along ``axis``."""
    return tuple(x.shape[axis] if i == axis else 1 for i in range(x.ndim))


def as_dtype(xp: Any, x: Any, dtype: Any) -> Any:
    """``x`` in ``dtype``, without a copy when it already is (a big-endian NumPy dtype, such as an
    input's read from a file, is taken as the native one: results are in NumPy's native order)."""
    if getattr(dtype, "isnative", True) is False:
        dtype = dtype.newbyteorder("=")
    return x if x.dtype == dtype else xp.astype(x, dtype)


def pointwise_inputs(loss: str, input: Any, target: Any, reduction: str, *, target_name: str = "target",
                     labels: bool = False, take_complex: bool = False) -> tuple[Any, Any, Any, Any]:
    """The common preamble of losses that compare two floating arrays of one shape.

    Returns ``(xp, input, target, dtype)``: both arrays promoted to the dtype to compute in
    (float32 for half precision) and ``dtype``, the dtype of the result. ``labels``: the target
    holds labels (0/1 or ±1), which may also come as integers, exact in any floating dtype; they
    take the input's dtype, as torch does. ``take_complex``: complex64 and complex128 arrays are taken
    too (with each other and with real ones, promoted as torch, NumPy and the standard promote a
    real and a complex dtype: float64 with complex64 is complex128); ``dtype`` is then complex.
    """
    xp = namespace(loss, input=input, **{target_name: target})
    check_floating(loss, "input", input, xp, take_complex)
    as_labels = labels and xp.isdtype(target.dtype, "integral")
    if labels and not as_labels and not xp.isdtype(target.dtype, "real floating"):
        raise LossTypeError(loss, target_name, LABELS, describe(target))
    if not as_labels:
        check_floating(loss, target_name, target, xp, take_complex)
    check_same_shape(loss, target_name, target, "input", input)
    check_reduction(loss, reduction)
    dtype = result_type(xp, input) if as_labels else result_type(xp, input, target)
    work = compute_dtype(xp, dtype)
    return xp, as_dtype(xp, input, work), as_dtype(xp, target, work), dtype


def safe_log(xp: Any, x: Any, floor: float = -100.0) -> Any:
    """``max(log(x), floor)`` whose gradient is finite at x = 0 (torch clamps BCE's logs at -100).

    The ``where`` keeps ``log`` away from 0, so autograd never multiplies 0 by infinity. It puts
    the dtype's smallest positive number there, whose log is below the floor (-103.3 in float32,
    -744.4 in float64), so the clip gives the floor: one ``where`` (a pass over x, and one in the
    backward) rather than a second one for the value at 0. A floor below that log takes the second
    ``where``, and so does JAX: XLA flushes subnormal numbers to 0 (on CPU at least), so there the log
    of the stand-in is -inf and its discarded gradient 0 / 0, a NaN that ``jax_debug_nans`` with jit
    disabled reports inside the loss (under ``jit`` XLA fuses the two ``where`` into one pass).
    """
    positive = x > 0
    finfo = xp.finfo(x.dtype)
    tiny = float(finfo.smallest_normal) * float(finfo.eps)  # the smallest subnormal number
    # Python scalars, not arrays of them: each *_like array is one more pass over x in eager code.
    # That of a dtype wider than a Python float (NumPy's longdouble, 3.6e-4951) is 0.0 as one: it has
    # no log, and takes the second where.
    if tiny > 0.0 and floor >= math.log(tiny) and not compat.is_jax_namespace(xp):
        return clip(xp, xp.log(xp.where(positive, x, tiny)), min=floor)
    return xp.where(positive, clip(xp, xp.log(xp.where(positive, x, 1.0)), min=floor), floor)


def check_broadcasts(loss: str, name: str, w: Any, x: Any, xp: Any) -> None:
    """``w`` is a floating array that broadcasts to ``x``'s shape without enlarging the result."""
    check_floating(loss, name, w, xp)
    fits = w.ndim <= x.ndim and all(a in (1, b) for a, b in zip(w.shape[::-1], x.shape[::-1]))
    if not fits:
        raise LossValueError(loss, name, f"a shape that broadcasts to the input's {tuple(x.shape)}",
                             f"shape {tuple(w.shape)}")


def safe_pow(xp: Any, z: Any, exponent: float) -> Any:
    """``z ** exponent`` for ``z >= 0`` whose gradient at ``z = 0`` is 0 rather than ``0 · inf``.

    ``exponent = 0`` gives ones (``0 ** 0 = 1``, with a zero gradient), as the focal losses need.
    """
    if exponent == 0:
        return xp.ones_like(z)
    positive = z > 0
    return xp.where(positive, xp.where(positive, z, xp.ones_like(z)) ** exponent, xp.zeros_like(z))


def sign(xp: Any, x: Any) -> Any:
    """``sign(x)``: -1, 0 or 1, NaN at NaN; made of ``where`` only but on JAX and Dask (their own
    ``sign``): array-api-compat's torch ``sign`` writes NaN through a boolean mask, which
    ``torch.func.vmap`` and meta tensors cannot run."""
    if compat.is_dask_namespace(xp) or compat.is_jax_namespace(xp):
        # Dask does not differentiate (nor vmap): its sign is one graph layer where the wheres
        # below are eight, each built and scheduled per call (it gives 0 at -0, the wheres -0).
        # JAX's is one primitive with the wheres' values (-0 at -0 too) and a zero derivative JAX
        # knows, batched by vmap: the wheres were seven equations in every program under jit (a
        # triplet distance's norm three times over), and seven compiled operations per new shape
        # in eager code.
        return xp.sign(x)
    # x · 0 keeps ±0 and NaN with a zero gradient; ∞ is put aside first, as ∞ · 0 would warn on
    # NumPy where the result is not taken.
    return xp.where(x > 0, 1.0, xp.where(x < 0, -1.0, xp.where(xp.isinf(x), 0.0, x) * 0))


def safe_abs(xp: Any, x: Any) -> Any:
    """``|x|`` with torch's gradient on every library, ``sign(x)``: 0 at ``x = 0`` (JAX's ``abs``
    gives 1 there), NaN at NaN."""
    if compat.is_dask_namespace(xp):
        return xp.abs(x)  # the same values; the product with sign is there for the gradient (see sign)
    return sign(xp, x) * x


def absolute(xp: Any, x: Any) -> Any:
    """``|x|`` with torch's derivative, ``sign(x)``: 0 at ``x = 0``, as ``abs`` has on torch. At
    NaN the derivative is the library's (torch's 0, JAX's -1); :func:`safe_abs` gives NaN there,
    at the cost of three ``where``s.

    JAX's ``abs`` has slope 1 at 0 (and -1 at NaN): there a mask of the non-zeros, which has no
    derivative, is multiplied in (arithmetic rather than a ``where``, which XLA does not fuse
    into the reduction that follows). Elsewhere ``abs`` alone: torch's is torch's, and NumPy, CuPy,
    Dask and array-api-strict do not differentiate, while the mask would cost two passes over
    ``x`` more in eager code.
    """
    a = xp.abs(x)
    # a.dtype: that of a complex x is real (a complex mask would make |x| complex again)
    return a * xp.astype(x != 0, a.dtype) if compat.is_jax_namespace(xp) else a


def unstack(xp: Any, x: Any) -> tuple[Any, ...]:
    """``x``'s slices along axis 0, made in one operation: ``xp.unstack(x, axis=0)``, torch's
    ``unbind(0)`` on torch tensors (array-api-compat's unstack is a ``moveaxis`` and an iteration,
    and ``torch.func.vmap`` has no batching rule for ``moveaxis``).

    For a loop over the slices where ``x[i, ...]`` one at a time would be differentiated: each
    such index's gradient is an array of ``x``'s whole shape in torch and eager JAX, n of them
    summed, where unstack's gradient is one stack.
    """
    if compat.is_torch_array(x):
        return tuple(x.unbind(0))
    return tuple(xp.unstack(x, axis=0))


def row_blocks(xp: Any, x: Any, step: int) -> tuple[Any, ...]:
    """``x``'s rows in blocks of ``step`` (the last one shorter), made in one operation where the
    library differentiates: torch's ``split``, JAX's ``jnp.split``; slices elsewhere.

    For a loop over the blocks where ``x[i:i + step, ...]`` one at a time would be differentiated:
    each slice's gradient is an array of ``x``'s whole shape in torch and eager JAX, n / step of
    them summed, where a split's gradient is one concatenation.
    """
    n = x.shape[0]
    if compat.is_torch_array(x):
        return tuple(x.split(step, 0))
    if compat.is_jax_array(x):
        import jax.numpy as jnp  # a JAX array: JAX is imported already

        return tuple(jnp.split(x, list(range(step, n, step)), axis=0))
    return tuple(x[i:min(i + step, n), ...] for i in range(0, n, step))  # array-api-strict refuses stops past the end


def stop_gradient(xp: Any, x: Any) -> Any:
    """``x``'s value, a constant to automatic differentiation: torch's ``detach``, JAX's
    ``lax.stop_gradient``; arrays of the libraries that do not differentiate are returned as they are.

    For a quantity whose derivative is zero or cancels, such as the maximum a log-sum-exp is
    shifted by. Differentiated, it adds nothing but costs passes over the input: torch's backward
    of a maximum builds a mask of where it lies and counts it, even under a ``floor`` whose
    derivative is 0 (JAX skips the derivative of what only a ``floor`` uses).
    """
    if compat.is_torch_array(x):
        return x.detach()
    if compat.is_jax_array(x):
        import jax  # a JAX array: JAX is imported already

        return jax.lax.stop_gradient(x)
    return x


def zero_with_gradient(xp: Any, x: Any) -> Any:
    """0 in value, with ``x``'s derivative where ``x`` is finite (0 elsewhere): the portable
    ``where(isfinite(x), x - stop_gradient(x), 0)``, which adds a term to what is differentiated
    and nothing to the value (CTC's ``Σ exp(log_probs)``, which gives torch's gradient).

    On JAX the zero is stated with its derivative (``jax.custom_jvp``), so that a program that
    only needs the value never computes ``x``: ``x - x`` is computed in full by XLA, which does
    not take it for 0 (it is NaN for an infinite ``x``), a pass of ``exp`` over CTC's whole
    ``log_probs`` in every forward call under ``jax.jit``.
    """
    if compat.is_jax_array(x):
        return _jax_zero_with_gradient()(x)
    return xp.where(xp.isfinite(x), x - stop_gradient(xp, x), 0.0)


@functools.cache
def _jax_zero_with_gradient() -> Any:
    import jax  # called on a JAX array: JAX is imported already
    import jax.numpy as jnp

    def zeros(x: Any) -> Any:
        # A select that XLA folds to 0 (x is never computed for it), not zeros_like: that one does
        # not depend on x, so under jax.vmap it is unbatched where the derivative is batched, and
        # JAX (0.10) fails to differentiate such a rule inside a vmapped jit ("broadcast_in_dim
        # broadcast_dimensions must have length equal to operand ndim"): grad of vmap(ctc_loss).
        return jnp.where(False, x, jnp.zeros((), x.dtype))

    @jax.custom_jvp
    def zero(x: Any) -> Any:
        return zeros(x)

    @zero.defjvp
    def _(primals: Any, tangents: Any) -> Any:
        (x,), (t,) = primals, tangents
        return zeros(x), jnp.where(jnp.isfinite(x), t, jnp.zeros_like(t))

    return zero


def log_sigmoid(xp: Any, x: Any) -> Any:
    """``log σ(x) = -log(1 + exp(-x))``, as torch's ``logsigmoid``: ``-(max(-x, 0) + log1p(exp(-|x|)))``.

    No exp overflows at any ``|x|``. ``where`` stands in for max and abs so that the gradient at
    ``x = 0`` is ``σ(0) = 1/2`` on every library (max and abs each split the tie their own way).
    ``log(1 - σ(x)) = log_sigmoid(-x)``.
    """
    nonnegative = x >= 0
    return -(xp.where(nonnegative, 0.0, -x) + xp.log1p(xp.exp(xp.where(nonnegative, -x, x))))


def log_softmax_parts(xp: Any, x: Any, *, axis: int = 1) -> tuple[Any, Any, Any]:
    """``(m, x - m, log Σ exp(x - m))`` along ``axis``: the parts of a stable log-softmax.

    ``m`` is the maximum rounded down to an integer (reduced along ``axis``, as is the log-sum);
    ``log p = (x - m) - log_sum`` and ``log Σ exp(x) = m + log_sum``. Keeping the parts apart
    lets a caller subtract before adding, so a log-probability of logits near ±1e4 keeps its
    precision, and pick one class (from ``x``, then subtract ``m``) before adding. A row whose
    maximum is -inf is shifted by the lowest finite number (its log-sum is -inf, not NaN); a +inf
    logit makes its row NaN, as torch's ``log_softmax`` and ``cross_entropy`` do.

    Why ``floor``: each ``exp(x - m)`` is still at most e and the largest at least 1, and floor
    has derivative 0 on every library, so autodiff never differentiates through the maximum.
    That derivative is zero anyway (softmax is shift-invariant), but computed it costs two more
    passes over ``x`` (a mask of where the maximum is, and its count): the floor halves the
    gradient's time under ``jax.jit``. torch's autograd runs the maximum's backward even under
    the floor (with a zero gradient), so the maximum is also :func:`stop_gradient`'s.
    Shapes: ``x`` (N, C, d1, ...) for ``axis=1``; ``m`` and the log-sum (N, d1, ...).
    """
    if 0 in x.shape:  # nothing to reduce; Dask cannot take the max of an empty chunk
        # 0s as a sum over the axis (of nothing where it is empty), not new zeros: a loss of C = 0
        # classes made of those is cut from the input's autograd graph, and its backward raises
        # where torch's runs
        zeros = xp.sum(x, axis=axis)
        return zeros, x, zeros
    # A clip rather than a where on -inf: one operation (each costs tens of µs in eager JAX).
    top = stop_gradient(xp, xp.max(dense_chunks(x), axis=axis, keepdims=True))
    m = xp.floor(clip(xp, top, min=float(xp.finfo(x.dtype).min)))
    shifted = x - m
    return xp.squeeze(m, axis=axis), shifted, xp.log(xp.sum(xp.exp(shifted), axis=axis))


def log_softmax(xp: Any, x: Any, *, axis: int = 1) -> Any:
    """Log-probabilities along ``axis`` by max subtraction, as torch's ``log_softmax``.

    No overflow at logits of ±1e4; a -inf logit gets log-probability -inf; a +inf logit makes
    its row NaN, as in torch. Shape: that of ``x``.
    """
    _, shifted, log_sum = log_softmax_parts(xp, x, axis=axis)
    return shifted - xp.expand_dims(log_sum, axis=axis)


def logsumexp(xp: Any, x: Any, *, axis: int = 1, keepdims: bool = False) -> Any:
    """``log Σ exp(x)`` along ``axis``, as torch's ``logsumexp``: stable at any magnitude.

    An infinite maximum is not subtracted, so a +inf entry gives +inf and a row of -inf gives -inf.
    """
    if 0 in x.shape:
        return xp.log(xp.sum(xp.exp(x), axis=axis, keepdims=keepdims))
    m = stop_gradient(xp, xp.max(dense_chunks(x), axis=axis, keepdims=True))  # its derivative cancels
    m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))
    out = m + xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True))
    return out if keepdims else xp.squeeze(out, axis=axis)


class ClassInputs(NamedTuple):
    """The inputs of a class-index loss, checked and normalized by :func:`class_inputs`.

    ``input`` has shape (N, C, d1, ...) in the dtype to compute in; ``target`` (N, d1, ...)
    holds class indices clamped into [0, C), so that gathering with :func:`take_class` is always
    safe; ``active`` marks the elements that count (neither ignored nor invalid); ``weight`` is
    ``weight[target]`` there and 0 elsewhere (1 without class weights); ``bad`` marks invalid
    indices to poison (lazy and accelerator arrays, see :func:`check_values`), else ``None``;
    ``dtype`` is the result's dtype; ``unbatched`` says the input was (C) and the target ().
    """

    xp: Any
    input: Any
    target: Any
    active: Any
    weight: Any
    bad: Any
    dtype: Any
    unbatched: bool


def class_inputs(loss: str, input: Any, target: Any, *, weight: Any = None, ignore_index: Any = -100,
                 reduction: str = "mean", target_expected: str = "integer class indices") -> ClassInputs:
    """The checks and normalization of ``torch.nn.CrossEntropyLoss``'s class-index form.

    Shapes: ``input`` (C), (N, C) or (N, C, d1, ...) of scores; ``target`` (), (N) or (N, d1, ...)
    of class indices, and (N, 1) for (N, C) input (the source document's labels, which torch
    rejects); ``weight`` None or (C,). A target equal to ``ignore_index`` (which may lie outside
    [0, C)) does not count; any other index outside [0, C) is an error (or NaN, see
    :func:`check_values`). ``target_expected`` words the error for a non-integer target.
    Reduce the per-element losses with :func:`reduce_classes`.
    """
    xp = namespace(loss, input=input, target=target, weight=weight)
    check_floating(loss, "input", input, xp)
    check_reduction(loss, reduction)
    check_number(loss, "ignore_index", ignore_index, integer=True)
    if input.ndim == 0:
        raise LossValueError(loss, "input", "scores of shape (C), (N, C) or (N, C, d1, ...)", "a 0-d array")
    check_integer(loss, "target", target, xp, target_expected)
    unbatched = input.ndim == 1
    if unbatched:
        input, target = xp.expand_dims(input, axis=0), xp.expand_dims(target, axis=0)
    if input.ndim == 2 and target.shape == (input.shape[0], 1):
        target = xp.reshape(target, (input.shape[0],))  # the source document's (N, 1) labels
    n, c = input.shape[0], input.shape[1]
    expected = (n, *input.shape[2:])
    if tuple(target.shape) != expected:
        # One f-string: Dynamo cannot concatenate two with symbolic sizes (dynamic shapes).
        wanted = "()" if unbatched else f"{expected} or ({n}, 1)" if input.ndim == 2 else f"{expected}"
        # Keras and JAX users' (N, d1, ..., C) scores: torch's classes are axis 1, which the
        # shapes alone do not say.
        last = input.ndim > 2 and tuple(target.shape) == tuple(input.shape[:-1])
        hint = " (the classes are axis 1: move a last class axis there first)" if last else ""
        raise LossValueError(loss, "target", f"class indices of shape {wanted} for input of shape "
                             f"{tuple(input.shape[1:] if unbatched else input.shape)}{hint}",
                             f"shape {tuple(target.shape) if not unbatched else tuple(target.shape[1:])}")
    if weight is not None:
        check_floating(loss, "weight", weight, xp)
        check_shape(loss, "weight", weight, (c,), lambda: f"a vector of one weight per class, shape ({c},)")
    safe, active, bad = class_targets(loss, xp, target, ignore_index, c)
    # Class weights take the input's dtype: torch refuses weights of another one, and a float64
    # weight built by NumPy must not turn a float32 loss into a float64 computation.
    dtype = input.dtype
    work = compute_dtype(xp, dtype)
    input = as_dtype(xp, input, work)
    if weight is None or not c:  # (no classes: every target is ignored, and nothing to take from)
        w = xp.astype(active, work)
    else:
        picked = lookup(xp, as_dtype(xp, weight, work), safe)
        w = xp.where(active, picked, 0.0)
    return ClassInputs(xp, input, safe, active, w, bad, dtype, unbatched)


def class_targets(loss: str, xp: Any, target: Any, ignore_index: int, c: int, *,
                  read: bool = True) -> tuple[Any, Any, Any]:
    """Integer class indices ``target`` against ``c`` classes and ``ignore_index``: ``(safe,
    active, bad)``, the indices with every one outside [0, C) made 0 (safe to gather with),
    whether each counts (a class, not ignored), and :func:`check_values`' mask of the invalid
    ones, or with ``read=False`` (a caller being traced) that mask unread.
    """
    check_index_option(loss, "ignore_index", ignore_index, xp)
    given, target = target, holding(loss, "target", xp, target, ignore_index, c)
    safe, active, wrong = _class_masks(xp, target, ignore_index=ignore_index, c=c)
    bad = (check_values(loss, "target", target, wrong, xp,
                        lambda: f"class indices in [0, {c}) or ignore_index={ignore_index}", quote=given)
           if read else wrong)
    return safe, active, bad


@fused(rows=(0,))
def _class_masks(xp: Any, target: Any, *, ignore_index: int, c: int) -> tuple[Any, Any, Any]:
    """:func:`class_targets`' ``(safe, active, wrong)``: one compiled program on eager JAX, not six,
    and one task per chunk of targets on Dask, not eight layers."""
    # Each mask built once, Python scalars rather than *_like arrays: in eager JAX every
    # operation is a dispatch of tens of µs, more than a small loss itself.
    kept = target != ignore_index
    valid = (target >= 0) & (target < c)
    return xp.where(valid, target, 0), valid & kept, ~valid & kept


def reduce_classes(cls: ClassInputs, losses: Any, reduction: str) -> Any:
    """torch's reduction of class-index losses, of shape (N, d1, ...).

    Inactive elements (ignored or invalid targets) count 0; invalid ones are poisoned where
    :func:`check_values` could not raise. "mean" divides by the sum of the active weights: with
    every target ignored that is 0 / 0, NaN as in torch (computed without NumPy's division
    warning; JAX, which does not warn, divides plainly, so its gradient is torch's too where
    the active weights sum to 0). The result is in ``cls.dtype``; "none" of an unbatched input
    has shape ().
    """
    xp = cls.xp
    losses = poison(xp, xp.where(cls.active, losses, 0.0), cls.bad)
    if reduction == "none":
        out = losses[0] if cls.unbatched else losses
    elif reduction == "sum":
        out = xp.sum(losses)
    else:
        out = divide(xp, xp.sum(losses), xp.sum(cls.weight))
    return as_dtype(xp, out, cls.dtype)


def divide(xp: Any, total: Any, count: Any) -> Any:
    """``total / count`` for a weighted mean, IEEE's answer where ``count`` is 0 (torch's: NaN for
    0 / 0, every target ignored or every weight 0; ±inf else), without NumPy's division warning."""
    if compat.is_jax_namespace(xp) or compat.is_torch_namespace(xp):
        # Neither warns, and plain, the gradient is torch's where the count is 0 (torch divides
        # plainly: F.mse_loss's sum(w ℓ) / sum(w), ATen's total_weight): ±inf, NaN times a 0
        # weight; the guarded form below gives 0. On JAX it also keeps XLA from fusing the final
        # sums into the division: two more small fusions, cross_entropy 1.1-1.4x optax's forward
        # at 256x1000 under jax.jit.
        return total / count
    if compat.is_dask_namespace(xp):
        # One graph layer, not the nine of the guarded form below (each built per call): each
        # block divides plainly, as torch does, with NumPy's division warnings off there.
        import dask.array as da  # a Dask array: Dask is imported already

        return da.core.elemwise(_divide_quietly, total, count)
    nothing = count == 0
    # Python scalars where they can be (each 0-d operation costs µs in eager code); the NaN not
    # made from total, whose gradient would then be 0 · NaN.
    over_zero = xp.where(total > 0, math.inf, xp.where(total < 0, -math.inf, xp.full_like(total, math.nan)))
    # [()]: NumPy's where gives a 0-d array where the division gave a scalar (as the sum does).
    return xp.where(nothing, over_zero, total / xp.where(nothing, 1.0, count))[()]


def _divide_quietly(total: Any, count: Any) -> Any:
    """``total / count`` of NumPy (or CuPy) blocks, IEEE's answer without NumPy's warnings (a
    module function, not a closure: Dask names the task by it, without pickling it per call)."""
    if compat.is_numpy_array(total) or compat.is_numpy_array(count):
        import numpy as np  # a NumPy array: NumPy is imported already

        with np.errstate(divide="ignore", invalid="ignore"):
            return total / count
    return total / count

