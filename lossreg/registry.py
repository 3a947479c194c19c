"""Loss specs, their derived forms, and the registry that looks them up.

A loss is written once, as a pure function decorated with :func:`define_loss`. Everything else
is derived from that function: its spec (names, inputs, options), the dispatching functional
form (which picks a kernel when one is registered for the caller's array library), the
``torch.nn``-style class form, and the registry entry.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import inspect
import json
import numbers
import os
import sys
import threading
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, cast

import array_api_compat as compat
import numpy as np

from . import errors, toolkit
from .core import FLOATS, Backend, Case, Kernel, LossSpec, PluginInfo, load_cases, normalize
from .errors import DefinitionError, LossTypeError, LossValueError, PluginError, UnknownLossError, warn_plugin
from .toolkit import Setting

__all__ = [
    "LossSpec", "Kernel", "Loss", "define_loss", "get", "spec", "names", "from_config",
    "use_kernels", "kernels_enabled", "register_plugin", "unregister_plugin", "in_process_plugins", "reload",
    "registry", "normalize",
]


_kernels_on = Setting(True)


def read_environment() -> None:
    """Take ``LOSSREG_KERNELS`` and ``LOSSREG_VALUE_CHECKS`` from the environment.

    Done when lossreg is imported and again by :func:`reload`: setting either variable later
    takes effect at the next ``lossreg.reload()``. Reading them then, not at every call, keeps
    the call path to a global lookup and lets ``torch.compile`` trace it.
    """
    _kernels_on.default = toolkit._env_switch("LOSSREG_KERNELS", True)
    toolkit.read_environment()


read_environment()


def kernels_enabled() -> bool:
    """Kernels are on unless ``use_kernels(False)`` is in effect or ``LOSSREG_KERNELS=0``."""
    return bool(_kernels_on.get())


def use_kernels(enabled: bool = True) -> contextlib.AbstractContextManager[None]:
    """Within this block (thread-local), use registered kernels or only portable code."""
    return _kernels_on.override(bool(enabled))


class LossFunction(Protocol):
    """What :func:`define_loss` returns, as type checkers see it: the functional form, callable as the
    definition is, with its documented ``.spec`` and ``.portable`` (typed ``Callable[..., Any]``, a
    plugin's ``loss.portable(...)`` was an error to mypy: "has no attribute 'portable'")."""

    spec: LossSpec
    portable: Callable[..., Any]

    def __call__(self, *arrays: Any, **options: Any) -> Any: ...


def define_loss(
    *,
    class_name: str,
    aliases: Sequence[str] = (),
    differentiable: Sequence[str] | None = None,
    array_options: Sequence[str] = (),
    reference: str = "",
    name: str | None = None,
    replace: bool = False,
    false_friends: Mapping[str, str] | None = None,
    views: int = 1,
) -> Callable[[Callable[..., Any]], LossFunction]:
    """Declare a pure array-API function as a loss.

    Arrays are the function's positional-only parameters (before ``/``); options are its
    keyword-only ones (after ``*``), each with a default. Returns the functional form: it calls
    a registered kernel for the caller's array library when there is one (see
    :func:`use_kernels`), else the function itself, which stays reachable as ``.portable``;
    ``.spec`` is the :class:`LossSpec` as defined (its ``plugin`` is filled in only on the
    registered copy, which :func:`lossreg.spec` returns).

    ``differentiable`` names the arguments whose gradient the loss defines: arrays, and options
    that may be arrays or traced values (a learned option as a ``requires_grad`` tensor, or an
    option traced under ``jax.jit``); such options are array options, as are those named in
    ``array_options`` (e.g. ``weight``). A malformed definition (no ``/`` or no ``*``, an option
    without a default, ``*args`` or ``**kwargs``, an unknown name in ``differentiable`` or
    ``array_options``) raises :class:`~lossreg.errors.DefinitionError` naming the function and the fix.

    ``false_friends`` maps names that another library gives to a different quantity (optax's
    ``l2_loss`` is half the squared error) to what that name means there and what to call
    instead. They are not names of this loss: ``lossreg.get`` refuses them with that text.

    ``views``: the unreduced loss holds this many views of a batch of N samples, one after the
    other (``nt_xent_loss``'s 2N losses of N pairs, the first view's first), so that a weight per
    sample, as Keras's ``fit`` passes it, weighs the sample's value in every view.
    """

    if isinstance(aliases, str):  # tuple("mse") would register "m", "s" and "e"
        raise TypeError(f"define_loss: aliases must be a sequence of names, not the string {aliases!r}")
    if isinstance(views, bool) or not isinstance(views, int) or views < 1:
        raise TypeError(f"define_loss: views must be a positive int, not {views!r}")

    def decorate(function: Callable[..., Any]) -> LossFunction:
        # The default: the argument named "input", if there is one.
        wrt = tuple(p for p in inspect.signature(function).parameters if p == "input") if differentiable is None \
            else tuple(differentiable)
        check_definition(function, wrt, array_options)
        params = inspect.signature(function).parameters.values()
        options = [p.name for p in params if p.kind is p.KEYWORD_ONLY]
        spec = LossSpec(
            name=name or function.__name__,
            function=function,
            class_name=class_name,
            aliases=tuple(aliases),
            inputs=tuple(p.name for p in params if p.kind is p.POSITIONAL_ONLY),
            options={p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY},
            array_options=tuple(dict.fromkeys([*array_options, *(d for d in wrt if d in options)])),
            differentiable=wrt,
            reference=reference,
            replace=replace,
            false_friends=dict(false_friends or {}),
            views=views,
        )
        loss_name, loss_key, arity = spec.name, normalize(spec.name), len(spec.inputs)

        # The hot path of every call: a few dict and attribute lookups, nothing that torch.compile
        # cannot trace (no ContextVar, no os.environ: see read_environment).
        missing: Any = object()
        # The kernel chosen per array type, with the registry it was chosen from: held by the loss, as a
        # lookup keyed by (name, type) in the registry cost 0.1 µs of a 3 µs call (issue 13). A reload
        # starts a new pair, so that no thread mixes two registries' choices.
        known: tuple[Registry | None, dict[type, Callable[..., Any] | None]] = (None, {})

        def refused(reg: Registry) -> bool:
            """Kernels are found by the loss's name: this function's, if it was refused for a name
            another plugin's loss has, are that loss's (called directly, it computes itself)."""
            if not reg.refused:
                return False
            current = reg.specs.get(reg.index.get(loss_key, ""))
            return current is not None and current.function is not function

        def choose(array: Any) -> Callable[..., Any] | None:
            nonlocal known
            reg = registry()
            kernel = None if refused(reg) else reg.kernel_for(loss_name, array)
            by_type = known[1] if known[0] is reg else {}
            by_type[type(array)] = kernel
            known = (reg, by_type)
            return kernel

        @functools.wraps(function)
        def dispatch(*arrays: Any, **options: Any) -> Any:
            if len(arrays) < arity:  # torch.nn.functional's arrays by name too: F.ctc_loss(lp, y, input_lengths=...)
                arrays, options = _arrays_in_place(spec, arrays, options)
            try:  # free unless something raises
                if arrays:
                    if _compiling():
                        # This thread's setting only (any thread's block changes the count), and the
                        # kernel chosen afresh from the loaded tables: Dynamo guards on what it reads,
                        # and would recompile whenever another thread or loss changed it.
                        kernel = (_registry.choose_kernel(loss_name, arrays[0])  # type: ignore[union-attr]
                                  if _kernels_on.here() else None)
                        if kernel is not None and refused(_registry):  # type: ignore[arg-type]
                            kernel = None
                    elif _kernels_on.get() if _kernels_on.active else _kernels_on.default:
                        chosen = known
                        kernel = chosen[1].get(type(arrays[0]), missing) if chosen[0] is _registry else missing
                        if kernel is missing:
                            kernel = choose(arrays[0])
                    else:
                        kernel = None
                    if kernel is not None:
                        if options or len(arrays) != 2:
                            result = kernel(*arrays, **options)
                        else:  # the common call, passed as Python passes a plain one: 0.04 µs less (issue 13)
                            x, y = arrays
                            result = kernel(x, y)
                        if result is not NotImplemented:
                            return result
                if _registry is not None and _registry.superseded:
                    # A plugin took the loss over (replace=True), by this name or another of its names.
                    current = _registry.specs.get(_registry.index.get(loss_key, ""))
                    if current is not None and current.function is not function:
                        return current.function(*arrays, **options)
                return function(*arrays, **options)
            except (TypeError, ValueError) as error:
                # NumPy scalar options (np.int64 ignore_index, np.float32 margin), which torch takes
                # as numbers: the call once more with Python ones. Only here, on the way out of a
                # failed call, so that the usual call pays nothing for them.
                # Not array options: a NumPy scalar where an array is expected is refused as given.
                plain = _python_numbers({k: v for k, v in options.items() if k not in spec.array_options})
                if plain is not None:
                    plain = {**options, **plain}
                    return dispatch(*arrays, **plain)
                if isinstance(error, TypeError):
                    check_call(spec, arrays, options)  # a call that cannot bind: lossreg's error, naming it
                    _check_dtypes(spec, arrays, options)  # a dtype the library's isdtype cannot classify
                    # A string option given another object (reduction=["mean"]), which a kernel's
                    # fast-path test hashed: the portable definition refuses it with lossreg's error.
                    if any(isinstance(default, str) and not isinstance(options.get(key, default), str)
                           for key, default in spec.options.items()):
                        return function(*arrays, **options)
                raise
            except RuntimeError:
                # torch's own refusal of a sparse or nested tensor, from a kernel, which runs before
                # the definition's checks: lossreg's error, naming the argument, instead.
                _check_layouts(spec, arrays, options)
                raise
            except OverflowError as error:
                # A Python int past int64 (margin=2**70), which array libraries cannot take as a
                # scalar: as a float where the option is one (torch's answer), else lossreg's error.
                return dispatch(*arrays, **_within_range(spec, options, error))
            except (FloatingPointError, RuntimeWarning) as error:
                # NumPy under np.seterr(all="raise") (or under="warn" with warnings as errors): an
                # exp that underflows to 0 (a logit far below the largest, a masked class's -1e9;
                # in float32 a gap of 88 is enough) is how the log-sum-exp forms are meant to
                # work, not a fault, and torch computes it silently. The call once more with
                # underflow ignored, NumPy's other settings (overflow, invalid, divide) kept as
                # the user set them. Here, on the way out, so that the usual call pays nothing.
                if "underflow" not in str(error):
                    raise
                with np.errstate(under="ignore"):
                    return dispatch(*arrays, **options)

        # The signature of the call the form takes: its arrays by position or by name (as torch.nn.functional
        # takes them: gaussian_nll_loss(x, y, var=v)), not the definition's positional-only ones, which
        # functools.wraps showed: signature(...).bind refused such a call, and jax.jit(...,
        # donate_argnames="var") raised "positional-only" for an array the form takes by name.
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        own = inspect.signature(function)
        dispatch.__signature__ = own.replace(  # type: ignore[attr-defined]
            parameters=[p.replace(kind=kind) if p.kind is p.POSITIONAL_ONLY else p for p in own.parameters.values()])
        dispatch.spec = spec  # type: ignore[attr-defined]
        dispatch.portable = function  # type: ignore[attr-defined]
        return cast(LossFunction, dispatch)

    return decorate


def _check_layouts(spec: LossSpec, arrays: tuple[Any, ...], options: dict[str, Any]) -> None:
    """Raise lossreg's error for a sparse or nested torch tensor among the arrays of a failed call."""
    given = {**dict(zip(spec.inputs, arrays)), **{k: options[k] for k in spec.array_options if k in options}}
    present = [x for x in given.values() if x is not None]
    if present and all(compat.is_torch_array(x) for x in present):
        # Every array option may be None (a module whose layer has no bias passes linear_bias=None), not only
        # namespace's default weight and pos_weight: None there is absent, and torch's own error goes out.
        toolkit.namespace(spec.name, optional=tuple(spec.array_options), **given)


def _within_range(spec: LossSpec, options: dict[str, Any], error: OverflowError) -> dict[str, Any]:
    """``options`` with each Python int beyond int64 as a float, where the option's default is a
    float and the int within float64's range; any other such int raises :class:`LossValueError`.
    Raises ``error`` when no option is such an int (the overflow came from elsewhere)."""
    wide = {k: v for k, v in options.items() if type(v) is int and not toolkit.INT64_MIN <= v <= toolkit.INT64_MAX}
    if not wide:
        raise error
    for key, value in wide.items():
        if not isinstance(spec.options.get(key), float):
            raise LossValueError(spec.name, key, "an integer in [-2**63, 2**63 - 1]", repr(value)) from None
        if not -sys.float_info.max <= value <= sys.float_info.max:
            raise LossValueError(spec.name, key, "a number within float64's range (|x| < 1.8e308)",
                                 f"an int of {value.bit_length()} bits") from None
    return {**options, **{k: float(v) for k, v in wide.items()}}


def _python_numbers(options: dict[str, Any]) -> dict[str, Any] | None:
    """``options`` with each NumPy scalar number (np.float32(0.5), np.int64(-100)), also within a
    pair (``chunk_size=(np.int64(4096), 8192)``), as the Python number, or None if it holds none
    (NumPy's bools are not numbers: they stay, and are refused)."""
    def holds(v: Any) -> bool:
        return _numpy_number(v) or (isinstance(v, (list, tuple)) and any(map(_numpy_number, v)))

    def plain(v: Any) -> Any:
        return _python_number(v) if _numpy_number(v) else v

    if not any(map(holds, options.values())):
        return None
    return {k: type(v)(map(plain, v)) if isinstance(v, (list, tuple)) else plain(v) for k, v in options.items()}


def plain_number(value: Any) -> Any:
    """``value`` as the Python number if it is a NumPy scalar number (``np.float64(2.0)``), else as it is:
    NumPy scalar numbers are taken where Python numbers are (README, "Options")."""
    return _python_number(value) if _numpy_number(value) else value


def _python_number(value: Any) -> Any:
    """The Python number of a NumPy scalar number. ``.item()`` of np.longdouble and np.clongdouble
    is the NumPy scalar again (no Python type holds them): those are rounded, as torch reads them."""
    plain = value.item()
    if not _numpy_number(plain):
        return plain
    return float(plain) if isinstance(plain, numbers.Real) else complex(plain)


def _listed(array: Any) -> Any:
    """``array.tolist()`` in Python numbers. A long double array's ``tolist()`` keeps NumPy scalars
    (no Python type holds them), which JSON cannot write: rounded to float64, as a long double
    number option is read (``_python_number``)."""
    if array.dtype == np.longdouble:
        array = array.astype(np.float64)
    return array.tolist()


def _json_writable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _numpy_number(value: Any) -> bool:
    # np.timedelta64 is a NumPy integer to numbers.Number, but no number to lossreg (README): its
    # .item() is a count of its units (margin=np.timedelta64(1, "ns") was read as 1).
    return (isinstance(value, numbers.Number) and type(value) not in (int, float, complex)
            and type(value).__module__ == "numpy" and not isinstance(value, np.timedelta64))


def _check_dtypes(spec: LossSpec, arrays: tuple[Any, ...], options: dict[str, Any]) -> None:
    """Raise :class:`LossTypeError` for an array whose dtype its library's ``isdtype`` refuses to
    classify (a NumPy array of ml_dtypes' bfloat16, which ``np.asarray`` makes of a JAX one)."""
    named = {**dict(zip(spec.inputs, arrays)), **options}
    for name, x in named.items():
        # Numbers first: inside torch.compile a float option may be symbolic (dynamic=True), which
        # Dynamo cannot ask hasattr of (is_array_api_obj), and would report that instead.
        if x is None or isinstance(x, (bool, int, float, str)) or not compat.is_array_api_obj(x):
            continue
        try:
            compat.array_namespace(x).isdtype(x.dtype, ("bool", "numeric"))
        except (TypeError, ValueError):
            raise LossTypeError(spec.name, name, "an array of one of the Array API's dtypes (for NumPy's "
                                "bfloat16 from ml_dtypes: .astype(np.float32))", toolkit.describe(x)) from None


def _within_options(spec: LossSpec, kernel: Callable[..., Any]) -> Callable[..., Any]:
    """``kernel``, handing back (``NotImplemented``) a call with a keyword of its own that the loss
    does not take (a benchmark's knob, say): the portable definition then refuses it, as it would
    with kernels off, instead of the kernel quietly taking it. So too a call with an option of the
    loss that the kernel does not take (written for the common options only): the portable
    definition computes it, where the kernel would raise a TypeError. Unwrapped when it has none."""
    try:
        params = inspect.signature(kernel).parameters.values()
    except (TypeError, ValueError):  # a builtin or an extension's function: nothing to read
        return kernel
    own = tuple(p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
                and p.name not in spec.options and p.name not in spec.inputs)
    named = {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    lacks = () if any(p.kind is p.VAR_KEYWORD for p in params) else tuple(o for o in spec.options if o not in named)
    handed_back = own + lacks
    if not handed_back:
        return kernel

    @functools.wraps(kernel)
    def within(*arrays: Any, **options: Any) -> Any:
        if any(key in options for key in handed_back):
            return NotImplemented
        return kernel(*arrays, **options)

    return within


def _unknown_option(spec: LossSpec, key: str) -> LossTypeError:
    expected = "one of its options " + ", ".join(spec.options) if spec.options else "no options"
    if key in ("size_average", "reduce") and "reduction" in spec.options:  # torch's legacy pair, by keyword
        expected += (" (torch's deprecated size_average and reduce are not taken: pass "
                     "reduction='none', 'mean' or 'sum')")
    return LossTypeError(spec.name, key, expected, "an unknown option")


def _arrays_in_place(spec: LossSpec, arrays: tuple[Any, ...], named: dict[str, Any]) -> tuple[tuple[Any, ...],
                                                                                             dict[str, Any]]:
    """The call with the arrays given by name (as torch.nn.functional and torch.nn's forward take
    them) moved into place after those given by position, and ``named`` less them. A call that
    names none is returned as it is: too few arrays, which :func:`check_call` reports."""
    rest = spec.inputs[len(arrays):]
    if not any(key in named for key in spec.inputs):
        return arrays, named
    for key in spec.inputs:
        if key in named and key not in rest:
            raise LossTypeError(spec.name, key, f"each array once: {spec.name}({', '.join(spec.inputs)}, ...), "
                                "by position or by name", "it by position and by name")
        if key in rest and key not in named:
            raise LossTypeError(spec.name, key, f"each array once: {spec.name}({', '.join(spec.inputs)}, ...), "
                                "by position or by name", "no value (the arrays after it were given by name)")
    options = {key: value for key, value in named.items() if key not in rest}
    return (*arrays, *(named[key] for key in rest)), options


def check_call(spec: LossSpec, arrays: tuple[Any, ...], options: dict[str, Any]) -> None:
    """Raise :class:`LossTypeError` if the call does not fit the loss's signature (arrays by
    position or by name, options by keyword, no unknown option); return if it does."""
    inputs = spec.inputs
    for key in options:
        if key in inputs:
            raise LossTypeError(spec.name, key, f"each array once: {spec.name}({', '.join(inputs)}, ...), "
                                "by position or by name", "it by position and by name")
        if key not in spec.options:
            raise _unknown_option(spec, key)
    try:
        inspect.signature(spec.function).bind(*arrays, **options)
    except TypeError:
        # Options by position (torch.nn.functional's weight, reduction, ...): show the call with keywords.
        keywords = (f": {spec.name}({', '.join(inputs)}, {', '.join(f'{k}=...' for k in spec.options)})"
                    if len(arrays) > len(inputs) and spec.options else "")
        raise LossTypeError(spec.name, "arrays", f"{len(inputs)} arrays by position ({', '.join(inputs)}), then "
                            f"options by keyword{keywords}", f"{len(arrays)} positional arguments") from None


def check_definition(function: Callable[..., Any], differentiable: Sequence[str] = (),
                     array_options: Sequence[str] = ()) -> None:
    """Raise :class:`DefinitionError` if ``function`` is not a well-formed loss: arrays positional-only
    (before ``/``), options keyword-only (after ``*``) with defaults, no ``*args``/``**kwargs``,
    and ``differentiable`` / ``array_options`` naming its arguments / options."""
    name = getattr(function, "__name__", repr(function))
    try:
        params = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError) as exc:
        raise DefinitionError(f"define_loss: {name} has no inspectable signature ({exc})") from None
    shown = f"{name}{inspect.signature(function)}"
    arrays = [p.name for p in params if p.kind is p.POSITIONAL_ONLY]
    options = [p for p in params if p.kind is p.KEYWORD_ONLY]
    loose = [p for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]

    def fix(problem: str, how: str) -> DefinitionError:
        return DefinitionError(f"define_loss: {shown}: {problem}; {how}")

    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            raise fix(f"*{p.name} is not allowed (a loss takes a fixed set of arrays)",
                      "list the arrays before '/', e.g. def loss(input, target, /, *, reduction='mean')")
        if p.kind is p.VAR_KEYWORD:
            raise fix(f"**{p.name} is not allowed (options are declared, so that class forms, configs and "
                      "lookups know them)", "list each option after '*' with its default")
    if loose:  # '/' or '*' forgotten: show the signature with both in place
        fixed = inspect.Signature([p.replace(kind=p.POSITIONAL_ONLY if p.default is p.empty and p.kind is not p.KEYWORD_ONLY
                                             else p.KEYWORD_ONLY if p.kind is p.POSITIONAL_OR_KEYWORD else p.kind)
                                   for p in params])
        defaulted = [p.name for p in loose if p.default is not p.empty]
        plain = [p.name for p in loose if p.default is p.empty]
        problem = (f"the options {', '.join(defaulted)} are not keyword-only (the '*' is missing)" if defaulted
                   else f"the arrays {', '.join(plain)} are not positional-only (the '/' is missing)")
        raise fix(problem, f"write def {name}{fixed}")
    if not arrays:
        raise fix("it takes no arrays", f"declare them positional-only: def {name}(input, target, /, *, ...)")
    missing = [p.name for p in options if p.default is p.empty]
    if missing:
        raise fix(f"the options {', '.join(missing)} have no default",
                  "give each option a default (the class form and get() build losses from defaults)")
    option_names = [p.name for p in options]
    unknown = [d for d in differentiable if d not in arrays and d not in option_names]
    if unknown:
        raise fix(f"differentiable names {', '.join(map(repr, unknown))}, which {'is' if len(unknown) == 1 else 'are'} "
                  f"not among its arguments", f"name some of {', '.join(arrays + option_names)}")
    unknown = [a for a in array_options if a not in option_names]
    if unknown:
        raise fix(f"array_options names {', '.join(map(repr, unknown))}, which {'is' if len(unknown) == 1 else 'are'} "
                  f"not among its options", f"name some of {', '.join(option_names) or '(none)'}")


def _same(value: Any, default: Any) -> bool:
    """Whether an option's value is its default: by identity, or equal and of the same type (an
    option read back from pickle or JSON is a copy; 1 and True, 0.0 and 0 are different options)."""
    return value is default or (type(value) is type(default) and isinstance(value, (int, float, str, bool))
                                and value == default)


def _real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def listed_as_arrays(spec: LossSpec, options: dict[str, Any], arrays: Sequence[Any]) -> dict[str, Any]:
    """``options`` with each array option given as a list or tuple, or as a number where the option
    is an array or None (``pos_weight=3.0``, or a 0-d array as ``get_config`` writes it), as an array
    of the first array's library, device and dtype: the functional form takes arrays there. The
    class forms and ``lossreg.torch``'s modules (which keep such a number, see ``_is_number``) call it."""
    listed = [k for k in spec.array_options if isinstance(options.get(k), (list, tuple))
              or (_real(options.get(k)) and spec.options[k] is None)]
    if not (listed and arrays):
        return options
    xp = toolkit.namespace(spec.name, **dict(zip(spec.inputs, arrays)))
    like = arrays[0]
    dtype, device = like.dtype, toolkit.device(like)  # JAX's default for an uncommitted array, as elsewhere
    # A number as a fill on the device: an array made from a host number is a copy that waits for a
    # GPU at every call (a list has no other way there).
    return {**options, **{k: _list_as_array(xp, options[k], dtype, device) if isinstance(options[k], (list, tuple))
                          else xp.full((), float(options[k]), dtype=dtype, device=device) for k in listed}}


def _list_as_array(xp: Any, value: list[Any] | tuple[Any, ...], dtype: Any, device: Any) -> Any:
    try:
        return xp.asarray(value, dtype=dtype, device=device)
    except TypeError:
        return xp.asarray(python_numbers(value), dtype=dtype, device=device)


def python_numbers(value: list[Any] | tuple[Any, ...]) -> list[Any]:
    """A list option (checked by ``_check_listed``) in Python numbers, as ``get_config`` writes it:
    one holding 0-d arrays (``list(weights)``), which torch's ``asarray`` refuses ("len() of
    unsized object"), is read so before it is made an array."""
    return _listed(registry().to_numpy(value))


def _check_listed(loss: str, key: str, value: list[Any] | tuple[Any, ...]) -> None:
    """An array option given as a list or tuple (as ``get_config`` writes it) holds real numbers, or
    0-d arrays, in equal-length rows: the call converts it with the caller's library, whose float
    conversion reads None as NaN (NumPy) and a bool as 0 or 1 (where the functional form refuses
    bool weights), drops a complex number's imaginary part (torch), or fails with its own error (a
    string, a ragged list, an int past float64)."""
    def shape(x: Any) -> tuple[int, ...]:
        if isinstance(x, (list, tuple)):
            rows = {shape(v) for v in x}
            if len(rows) > 1:
                raise LossValueError(loss, key, "an array, or a list of numbers (nested lists of equal lengths)",
                                     f"rows of shapes {sorted(rows)}")
            return (len(x), *next(iter(rows), ()))
        # np.timedelta64 is a NumPy integer (numbers.Real), but no number to lossreg (README).
        if not (_real(x) or _real_0d(x)) or isinstance(x, np.timedelta64):
            raise LossTypeError(loss, key, "an array, or a list of numbers (nested lists of equal lengths)",
                                f"a list holding {toolkit.describe(x)}")
        if type(x) is int and not -sys.float_info.max <= x <= sys.float_info.max:  # float(x) would overflow
            raise LossValueError(loss, key, "a list of numbers within float64's range (|x| < 1.8e308)",
                                 f"a list holding an int of {x.bit_length()} bits")
        return ()
    shape(value)


def _real_0d(x: Any) -> bool:
    """A 0-d array (or NumPy scalar) of a real number, integer or floating: what the list's
    conversion takes as its number. NumPy's bools, complex numbers, strings and dates are 0-d too
    (list(mask) holds np.bool_), and would be converted as the Python bool, complex or string
    beside them is refused: a bool as 0 or 1, a complex without its imaginary part, a date as a
    count of days."""
    if getattr(x, "shape", None) != () or not compat.is_array_api_obj(x):
        return False
    try:
        return bool(compat.array_namespace(x).isdtype(x.dtype, ("integral", "real floating")))
    except (TypeError, ValueError):  # a dtype the library cannot classify (np.str_, np.datetime64)
        return False


class Loss:
    """Base of the class forms: ``MSELoss(reduction="sum")(input, target)``.

    Subclasses are derived from a :class:`LossSpec` by the registry; options are checked when
    the object is made, and array options given as lists are converted to the caller's array
    library, device and dtype at call time.
    """

    spec: LossSpec
    _dispatch: Callable[..., Any]

    def __init__(self, *args: Any, **options: Any) -> None:
        if args:  # torch.nn's classes take some by position; the class forms take every option by keyword
            raise LossTypeError(self.spec.name, "options", "options by keyword: "
                                f"{self.spec.class_name}({', '.join(f'{k}=...' for k in self.spec.options)})",
                                f"{len(args)} positional arguments")
        for key, value in options.items():
            if key not in self.spec.options:
                raise _unknown_option(self.spec, key)
            # An option whose default is a number takes a number (or None, which some losses read as
            # "off"; an array only if it is an array option): a complex or a string is refused when
            # the object is made, as torch.nn refuses it, with the error the call would raise.
            if (_real(self.spec.options[key]) and value is not None and not _real(value)
                    and (key not in self.spec.array_options or isinstance(value, (str, bytes, complex)))):
                raise LossValueError(self.spec.name, key, "a number",
                                     toolkit._given_option(value, "a Python number", toolkit.describe))
            if key in self.spec.array_options and isinstance(value, (list, tuple)):
                _check_listed(self.spec.name, key, value)
        # NumPy scalar numbers kept as Python ones: as the call takes them, and JSON for get_config.
        self.options = {**self.spec.options, **(_python_numbers(options) or options)}

    def __reduce_ex__(self, protocol: Any) -> Any:
        # A class form by name and options, not by the class object: class forms are made afresh
        # by every reload (and register_plugin), so an object made before one still pickles after
        # it. A user's subclass of one is pickled by reference to it, as any class, with its attributes.
        if type(self).__dict__.get("_made_by_lossreg"):
            return _unpickled, (self.spec.name, self.spec.plugin), dict(self.__dict__)
        return super().__reduce_ex__(protocol)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple):  # a subclass with __slots__: (its __dict__ or None, its slots)
            state, slots = state
            for key, value in (slots or {}).items():
                object.__setattr__(self, key, value)
        self.__dict__.update(state or {})

    def __call__(self, *arrays: Any, **named: Any) -> Any:
        if named:  # the arrays by name, as torch.nn's forward takes them; the options were given to the class
            unknown = next((key for key in named if key not in self.spec.inputs), None)
            if unknown is not None:
                raise LossTypeError(self.spec.name, unknown, f"the arrays ({', '.join(self.spec.inputs)}) at the call, "
                                    f"the options when the loss is made: {self.spec.class_name}({unknown}=...)",
                                    "an argument that is not one of its arrays")
            arrays, _ = _arrays_in_place(self.spec, arrays, named)
        return self._dispatch(*arrays, **listed_as_arrays(self.spec, self.options, arrays))

    def get_config(self) -> dict[str, Any]:
        """A JSON-serializable description; ``from_config`` rebuilds an equal loss from it."""
        return {"name": self.spec.name, "options": self._config_options()}

    def _config_options(self, writable: bool = True) -> dict[str, Any]:
        """The options as ``get_config`` writes them (array options as lists). One that JSON cannot
        write (a callable ``distance_function``) raises, or, with ``writable=False`` (for ``==``),
        is kept as it is; the others are then their JSON text."""
        options = {}
        for key, value in self.options.items():
            if key in self.spec.array_options and value is not None and not isinstance(value, (list, tuple)):
                value = _listed(registry().to_numpy(value))
            if key in self.spec.array_options and isinstance(value, (list, tuple)) and not _json_writable(value):
                with contextlib.suppress(TypeError, ValueError):  # NumPy numbers (list(weights)): JSON's numbers
                    value = _listed(registry().to_numpy(value))
            try:
                text = json.dumps(value)
            except (TypeError, ValueError):
                if writable:  # described, not named by type: NumPy 2 names np.bool_'s type "bool", which JSON writes
                    raise LossTypeError(self.spec.name, key, "a JSON-serializable option value for get_config",
                                        toolkit.describe(value)) from None
                options[key] = value
                continue
            options[key] = value if writable else text
        return options

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Loss:
        return from_config(config)

    def __repr__(self) -> str:
        changed = ", ".join(f"{k}={v!r}" for k, v in self.options.items() if not _same(v, self.spec.options[k]))
        return f"{self.spec.class_name}({changed})"

    def __eq__(self, other: object) -> bool:
        # By loss and options, not by class object: a reload remakes the class forms, and a loss
        # pickled before one loads as the new class. Options JSON cannot write (a callable) are
        # compared as objects, not refused.
        if not isinstance(other, Loss):
            return NotImplemented
        return other is self or (other.spec.name == self.spec.name
                                 and self._config_options(False) == other._config_options(False))

    def __hash__(self) -> int:
        # Equal losses have one name; by name only, so that a hash never reads the options (which
        # may be arrays) and stays while they are changed. Makes a loss a static argument of jax.jit.
        return hash((Loss, self.spec.name))


def _functional(spec: LossSpec) -> Callable[..., Any]:
    """A dispatching form of a spec, made afresh (also for a spec that define_loss made: the class
    form needs one that a hand-built spec, which has none, gets too); it reads only the fields
    given here."""
    return define_loss(class_name=spec.class_name, name=spec.name, differentiable=spec.differentiable,
                       array_options=spec.array_options)(spec.function)


def _malformed(spec: LossSpec) -> str:
    """What is wrong with a spec a plugin built by hand (``define_loss`` makes well-formed ones)."""
    if not (isinstance(spec.name, str) and spec.name.isidentifier()):
        return f"name {spec.name!r} is not a Python identifier"
    if not (isinstance(spec.class_name, str) and spec.class_name.isidentifier()):
        return f"class_name {spec.class_name!r} is not a Python identifier"
    aliases = spec.aliases
    if not (isinstance(aliases, (tuple, list)) and all(isinstance(a, str) and normalize(a) for a in aliases)):
        return f"aliases {spec.aliases!r} is not a tuple of names"
    friends = spec.false_friends
    if not (isinstance(friends, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in friends.items())):
        return f"false_friends {friends!r} is not a dict of names to explanations"
    own = {normalize(n) for n in spec.all_names} & {normalize(n) for n in friends}
    if own:
        return f"false_friends names {sorted(own)}, which are the loss's own names"
    if not callable(spec.function):
        return f"function {spec.function!r} is not callable"
    if not (isinstance(spec.inputs, tuple) and all(isinstance(i, str) for i in spec.inputs) and spec.inputs):
        return f"inputs {spec.inputs!r} is not a non-empty tuple of argument names"
    if not isinstance(spec.options, dict):
        return f"options {spec.options!r} is not a dict of option defaults"
    try:
        check_definition(spec.function, spec.differentiable, spec.array_options)
    except DefinitionError as exc:
        return str(exc)
    return ""


_CLASS_FORMS: dict[str, type[Loss]] = {}  # the last class form made per loss name, over registries


def signed_copy(function: Any, name: str, qualname: str, parameters: list[inspect.Parameter]) -> Any:
    """A copy of ``function`` (its code, defaults, doc and attributes, TorchScript's mark among them)
    named ``name``, under the signature of ``parameters``, which ``inspect.signature`` reads."""
    copy = types.FunctionType(function.__code__, function.__globals__, name, function.__defaults__,
                              function.__closure__)
    copy.__dict__.update(function.__dict__)
    copy.__kwdefaults__, copy.__doc__, copy.__qualname__ = function.__kwdefaults__, function.__doc__, qualname
    copy.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    return copy


def make_class(spec: LossSpec) -> type[Loss]:
    kind = inspect.Parameter
    dispatch = _functional(spec)
    # A plugin's lossreg.<name> is this form (lossreg.__getattr__ reads it here), named so that pickle
    # finds it there, as it finds the built-in lossreg.mse_loss: it named the plugin's module, whose own
    # form is another object, so pickle (a process pool, a DataLoader worker) raised "not the same object".
    dispatch.__module__, dispatch.__qualname__ = "lossreg", spec.name
    # Loss.__init__ (the same code) under the loss's options, keyword-only with their defaults: what builds
    # an object from its signature (a config system's checks, LightningCLI, help()) saw (*args, **options).
    init = signed_copy(Loss.__init__, "__init__", f"{spec.class_name}.__init__",
                       [kind("self", kind.POSITIONAL_OR_KEYWORD)]
                       + [kind(k, kind.KEYWORD_ONLY, default=v) for k, v in spec.options.items()])
    init.__module__ = "lossreg"  # the class's, where pickle and help() find MSELoss.__init__ (not lossreg.registry)
    # Loss.__call__ (the same code) under the arrays' names, as the torch module's forward and the declarations
    # in lossreg/__init__.py give them: inspect.signature(lossreg.MSELoss()) was (*arrays, **named).
    call = signed_copy(Loss.__call__, "__call__", f"{spec.class_name}.__call__",
                       [kind(k, kind.POSITIONAL_OR_KEYWORD) for k in ("self", *spec.inputs)])
    call.__module__ = "lossreg"
    return type(spec.class_name, (Loss,), {
        "spec": spec,
        "__init__": init,
        "__call__": call,
        "_dispatch": staticmethod(dispatch),
        "__module__": "lossreg",
        "__qualname__": spec.class_name,
        "__doc__": inspect.getdoc(spec.function),
        "_made_by_lossreg": True,
    })


class Registry:
    """The loaded catalogue: specs by name, their classes, kernels, cases and backends.

    Filled in by discovery (:mod:`lossreg.plugins`), which calls each plugin's hooks and hands
    their items to :meth:`add_spec`, :meth:`add_kernel`, :meth:`add_backend` and :meth:`add_cases`.
    """

    def __init__(self, pm: Any = None, plugins: dict[str, PluginInfo] | None = None) -> None:
        self.pm = pm
        self.plugins: dict[str, PluginInfo] = {} if plugins is None else plugins
        self.specs: dict[str, LossSpec] = {}
        self.classes: dict[str, type[Loss]] = {}
        self.index: dict[str, str] = {}  # normalized name -> canonical name
        self.kernels: dict[tuple[str, str], list[Kernel]] = {}
        self.backends: dict[str, Backend] = {}
        self.cases: list[Case] = []
        # Loss -> plugins whose definition of it was replaced (replace=True): their kernels and
        # cases were written for the old definition, so they are not used for the new one.
        self.superseded: dict[str, set[str]] = {}
        # Loss -> plugins whose own loss of that name was refused (the name was taken): their kernels
        # and cases name it too, but were written for their definition, not for the one registered.
        self.refused: dict[str, set[str]] = {}
        self._kernel_cache: dict[tuple[str, type], Callable[..., Any] | None] = {}

    def _fault(self, plugin: str, fault: str) -> None:
        self.plugins.setdefault(plugin, PluginInfo(plugin)).faults.append(fault)
        warn_plugin(plugin, fault)

    def _note(self, plugin: str, hook: str, item: str) -> None:
        self.plugins.setdefault(plugin, PluginInfo(plugin)).registered.setdefault(hook, []).append(item)

    def add_kernel(self, plugin: str, item: Any) -> None:
        """Register a :class:`Kernel` of ``plugin`` (a fault, reported, if it is malformed)."""
        loss, problem = self._kernel_loss(item)
        if problem:
            self._fault(plugin, f"lossreg_kernels returned {problem}; it is not used")
            return
        name = item.name or getattr(item.function, "__name__", "kernel")
        if plugin in self.superseded.get(loss, ()):
            self._note(plugin, "kernels off", f"{loss}[{item.backend}]: the loss was replaced by plugin "
                                              f"'{self.specs[loss].plugin}'")
            return
        if plugin in self.refused.get(loss, ()):
            self._note(plugin, "kernels off", f"{loss}[{item.backend}]: the plugin's own loss of this name was not "
                                              f"registered (plugin '{self.specs[loss].plugin}' has the name)")
            return
        if item.disabled:
            self._note(plugin, "kernels off", f"{loss}[{item.backend}]: {item.disabled}")
            return
        kernel = Kernel(loss, item.backend, _within_options(self.specs[loss], item.function), name, plugin)
        self.kernels.setdefault((loss, item.backend), []).append(kernel)
        self._note(plugin, "kernels", f"{kernel.loss}[{kernel.backend}]")

    def add_backend(self, plugin: str, item: Any) -> None:
        """Register a :class:`Backend` instance of ``plugin`` under its (new) name."""
        if isinstance(item, type) and issubclass(item, Backend):
            self._fault(plugin, f"lossreg_backends returned the class {item.__name__}, not an instance of it "
                                f"(return {item.__name__}())")
        elif not isinstance(item, Backend):
            self._fault(plugin, f"lossreg_backends returned {type(item).__name__}, not a Backend")
        elif not (isinstance(item.name, str) and item.name.strip()):
            self._fault(plugin, f"lossreg_backends returned a {type(item).__name__} without a name "
                                "(--backend needs one)")
        elif item.name in self.backends:
            self._fault(plugin, f"backend '{item.name}' is already provided")
        else:
            self._guard(plugin, item)
            self.backends[item.name] = item
            self._note(plugin, "backends", item.name)

    def _guard(self, plugin: str, backend: Any) -> None:
        """A backend whose availability checks raise is unavailable, with the reason, and its plugin
        at fault: not a crash of every conformance run."""
        for method in ("unavailable", "device_unavailable"):
            def guarded(*args: Any, _method: str = method) -> str | None:
                try:  # the class's method, looked up at each call (a test may patch it)
                    return getattr(type(backend), _method)(backend, *args)
                except Exception as exc:
                    fault = f"backend '{backend.name}': {_method}() raised {type(exc).__name__}: {exc}"
                    if fault not in self.plugins.setdefault(plugin, PluginInfo(plugin)).faults:
                        self._fault(plugin, fault)
                    return fault

            setattr(backend, method, guarded)

    def drop_orphan_kernels(self) -> None:
        """Kernels for a backend no plugin provides could never be chosen, nor checked."""
        for (loss, backend), kernels in list(self.kernels.items()):
            if backend not in self.backends:
                del self.kernels[(loss, backend)]
                for kernel in kernels:
                    self.plugins[kernel.plugin].registered["kernels"].remove(f"{loss}[{backend}]")
                    self._fault(kernel.plugin, f"kernel '{kernel.name}' of '{loss}' is for backend '{backend}', "
                                               f"which no plugin provides (known: {', '.join(self.backends)})")

    def add_cases(self, plugin: str, item: Any) -> None:
        """Register a :class:`Case`, or every case of a JSON case file, of ``plugin``; each case
        the suite could not check as it claims is refused and reported."""
        cases = self._read_cases(plugin, item)
        if cases is None:
            return
        source = getattr(item, "id", item)  # a Case by its id, a file by its path
        cases = self._usable_cases(plugin, self._drop_replaced(plugin, cases), source)
        self.cases.extend(cases)
        self._note(plugin, "cases", f"{len(cases)} from {source}")

    def _read_cases(self, plugin: str, item: Any) -> list[Case] | None:
        """The cases ``item`` holds (itself, or a JSON case file's), or None, its plugin at fault."""
        if not isinstance(item, (Case, str, os.PathLike)):  # a value_case dict, say: say what is wanted
            self._fault(plugin, f"lossreg_cases returned {type(item).__name__} {item!r:.60}, not a lossreg.testing.Case "
                                "or the path of a JSON case file (write value_case/error_case dicts with "
                                "write_cases, or make each a Case with Case.from_dict)")
            return None
        try:
            return [item] if isinstance(item, Case) else load_cases(os.fspath(item))
        except Exception as exc:
            self._fault(plugin, f"lossreg_cases: cannot read {item}: {type(exc).__name__}: {exc}")
            return None

    def _usable_cases(self, plugin: str, cases: list[Case], source: Any) -> list[Case]:
        """``cases``, now of ``plugin``, less those the suite could not check as they claim: each
        of those is a fault of the plugin, not silently ignored."""
        seen = {(normalize(c.loss), c.id) for c in self.cases}
        kept = []
        for case in cases:
            case.plugin = plugin
            try:
                problem = self._case_problem(case, seen)
            except Exception as exc:  # a Case made in code with fields of the wrong kinds: its plugin's fault
                problem = f"malformed: {type(exc).__name__}: {exc}"
            if problem:
                self._fault(plugin, f"lossreg_cases: case {case.id!r} of {case.loss!r} from {source} "
                                    f"is not used: {problem}")
            else:
                seen.add((normalize(case.loss), case.id))
                kept.append(case)
        return kept

    def _drop_replaced(self, plugin: str, cases: list[Case]) -> list[Case]:
        """``cases`` less those written for a definition of ``plugin`` that another plugin
        replaced, or that was refused for a name another plugin has (they would check that
        plugin's loss against answers for another), noted. Dropped before the cases are checked:
        their ids are no clash with the other plugin's cases."""
        for owners, why in ((self.superseded, "the loss was replaced"),
                            (self.refused, "the plugin's own loss of this name was not registered")):
            gone = {key: loss for key, loss in self.index.items() if plugin in owners.get(loss, ())}
            dropped = [c for c in cases if isinstance(c.loss, str) and normalize(c.loss) in gone]
            if dropped:
                losses = ", ".join(sorted({gone[normalize(c.loss)] for c in dropped}))
                self._note(plugin, "cases off", f"{len(dropped)} of {losses}: {why}")
                cases = [c for c in cases if not (isinstance(c.loss, str) and normalize(c.loss) in gone)]
        return cases

    def _case_problem(self, case: Any, seen: set[tuple[str, str]]) -> str:
        """What makes ``case`` unusable, or "" (its loss, dtypes, error and gradients must be ones
        the suite can check)."""
        key = normalize(case.loss) if isinstance(case.loss, str) else ""
        if key not in self.index:
            return f"no loss {case.loss!r} is registered"
        if (key, case.id) in seen:
            return "another case of this loss has the same id"
        spec = self.specs[self.index[key]]
        if case.dtypes is not None and not set(case.dtypes) <= set(FLOATS):
            return f"dtypes {case.dtypes!r} are not among {', '.join(FLOATS)}"
        # An input as a case file writes it, {"data": [...], "dtype": ...}: a bare list, or "values",
        # failed every run of the case as "raised AttributeError" or "raised KeyError: 'data'".
        bare = [name for name, value in case.inputs.items() if not (isinstance(value, dict) and "data" in value)]
        if bare:
            return (f"inputs {', '.join(map(repr, bare))} are not arrays as a case file gives them, "
                    '{"data": [...], "dtype": "float"}')
        for name, value in [*case.inputs.items(), *case.options.items()]:
            if isinstance(value, dict) and "data" in value:
                kind = value.get("dtype", "float")
                try:
                    kind == "float" or kind in FLOATS or np.dtype(kind)
                except TypeError:
                    return f"{name}'s dtype {kind!r} is not 'float' or a NumPy dtype name"
        if case.raises is not None:
            if not (isinstance(getattr(errors, str(case.raises), None), type)
                    and issubclass(getattr(errors, case.raises), errors.LossError)):
                return f"raises {case.raises!r}, which is not a lossreg error"
        elif case.expected is None:
            return "it has neither an expected value nor an error it raises"
        # Gradients are checked for the arrays the loss differentiates; one of another name (a
        # misspelt array, an option) could never be.
        unknown = [g for g in case.grads if g not in spec.inputs]
        if unknown:
            return (f"gradients of {', '.join(map(repr, unknown))}, which is not one of its arrays "
                    f"({', '.join(spec.inputs)}): the suite could never check it")
        # Arrays are passed by the loss's own names: one of another name would be silently left out.
        unknown = [name for name in case.inputs if name not in spec.inputs]
        if unknown:
            return (f"inputs {', '.join(map(repr, unknown))}, which is not one of its arrays "
                    f"({', '.join(spec.inputs)}): the suite would leave it out of the call")
        return ""

    def to_numpy(self, x: Any) -> Any:
        """Read an array of any registered backend back into NumPy (for configs and reports)."""
        for backend in self.backends.values():
            if backend.owns(x):
                return backend.to_numpy(x)
        return np.asarray(x)

    def _kernel_loss(self, item: Any) -> tuple[str, str]:
        """``(canonical name of the loss, "")`` for a well-formed kernel, else ``("", what is wrong)``."""
        if not isinstance(item, Kernel):
            return "", f"{type(item).__name__} {item!r:.60}, not a lossreg.Kernel"
        if not (isinstance(item.loss, str) and isinstance(item.backend, str)):
            return "", f"a Kernel whose loss {item.loss!r} or backend {item.backend!r} is not a name"
        if not callable(item.function):
            return "", f"a Kernel of '{item.loss}' whose function {item.function!r:.60} is not callable"
        if normalize(item.loss) not in self.index:
            return "", f"a Kernel of '{item.loss}', which is not a registered loss"
        spec = self.specs[self.index[normalize(item.loss)]]
        try:  # called with the loss's arrays: a kernel that cannot take them would fail every call
            inspect.signature(item.function).bind(*spec.inputs)
        except TypeError as exc:
            return "", (f"a Kernel of '{spec.name}' whose function {getattr(item.function, '__name__', '?')} does "
                        f"not take the loss's arrays ({', '.join(spec.inputs)}): {exc}")
        except ValueError:  # a builtin or an extension's function: nothing to read
            pass
        return spec.name, ""

    def add_spec(self, plugin: str, item: Any) -> None:
        """Register a loss of ``plugin`` (made with ``define_loss``) under all its names."""
        new = getattr(item, "spec", item)
        if not isinstance(new, LossSpec):
            self._fault(plugin, f"lossreg_losses returned {type(item).__name__}, not a loss defined with define_loss")
            return
        problem = _malformed(new)
        if problem:
            self._fault(plugin, f"lossreg_losses returned a malformed spec {getattr(new, 'name', '?')!r}: {problem}")
            return
        keys = {normalize(n): n for n in new.all_names}
        owners = {self.index[k] for k in keys if k in self.index}
        if owners == {new.name} and self.specs[new.name].plugin == plugin and self.specs[new.name].function is new.function:
            # Not a clash with itself (nor, with replace=True, a take-over of itself that would drop its own kernels).
            self._fault(plugin, f"lossreg_losses returned loss '{new.name}' more than once; it is registered once")
            return
        if owners and not new.replace and all(self.specs[o].replace and self.specs[o].plugin != plugin
                                              for o in owners):
            # Taken over by a plugin that loaded first (entry points load in name order): the same
            # outcome as if this one had loaded first, not a fault of this plugin.
            for owner in owners:
                self.superseded.setdefault(owner, set()).add(plugin)
                self._note(plugin, "replaced by others", f"{new.name} (by {self.specs[owner].plugin})")
            return
        if owners and not new.replace:
            taken = "; ".join(f"'{n}' is a name of '{self.index[k]}' of plugin '{self.specs[self.index[k]].plugin}'"
                              for k, n in keys.items() if k in self.index)
            self._fault(plugin, f"loss '{new.name}' not registered: {taken}; define it with replace=True "
                                "to take over")
            self._refuse(plugin, owners)
            return
        rivals = sorted({self.specs[o].plugin for o in owners
                         if self.specs[o].replace and self.specs[o].plugin != plugin})
        if rivals:
            # Two take-overs of one loss: the winner would be whichever entry point loads first.
            # Not chosen silently: the later one is refused, a fault naming both plugins.
            self._fault(plugin, f"loss '{new.name}' not registered: plugin '{rivals[0]}' also takes over "
                                f"{', '.join(repr(o) for o in sorted(owners))} with replace=True; two plugins cannot "
                                "both replace one loss (uninstall or block one)")
            self._refuse(plugin, owners)
            return
        for owner in owners:  # replace: the old spec goes entirely, and with it its plugin's kernels and cases
            old = self.specs.pop(owner)
            self.classes.pop(owner, None)
            # Its other names follow: taking over "mse" takes over the loss, so that get("mse_loss")
            # and lossreg.mse_loss do not go on computing (or lose) what was replaced.
            self.index = {k: new.name if v == owner else v for k, v in self.index.items()}
            superseded = self.superseded.pop(owner, set()) | {old.plugin}
            self.superseded[new.name] = self.superseded.get(new.name, set()) | superseded
            self._note(plugin, "replaced", f"{owner} (of {old.plugin})")
        spec = LossSpec(**{**new.__dict__, "plugin": plugin})
        self.specs[spec.name] = spec
        self.index.update(dict.fromkeys(keys, spec.name))
        self._note(plugin, "losses", spec.name)

    def _refuse(self, plugin: str, owners: set[str]) -> None:
        """Note that a loss of ``plugin`` was refused for the names of ``owners``: its kernels and cases
        name the loss as the owner's are named, and would otherwise be run for another plugin's loss
        (a kernel computing the refused loss in its place). A clash within one plugin stays its own."""
        for owner in owners:
            if self.specs[owner].plugin != plugin:
                self.refused.setdefault(owner, set()).add(plugin)

    def lookup(self, name: str) -> LossSpec:
        """The spec of the loss called ``name`` (any of its names, normalized), or an
        :class:`UnknownLossError` that says what is close, a false friend, or a broken plugin."""
        if not isinstance(name, str):
            raise LossTypeError("lossreg.get", "name", "a loss name (str)", type(name).__name__)
        key = normalize(name)
        if key not in self.index:
            raise self._unknown(name, key)
        return self.specs[self.index[key]]

    def _unknown(self, name: str, key: str) -> UnknownLossError:
        """The error for ``name`` (normalized: ``key``), which no loss has."""
        for spec in self.specs.values():
            for friend, meaning in spec.false_friends.items():
                if normalize(friend) == key:
                    return UnknownLossError(f"no loss named {name!r}, on purpose: {meaning} (lossreg's closest "
                                            f"is '{spec.name}', see its docs)")
        note = self._broken_plugins(key)
        return UnknownLossError(f"no loss named {name!r}; {self._closest(key)}" + (f"; {note}" if note else ""))

    def _closest(self, key: str) -> str:
        """The registered names close to ``key``, as the error's hint."""
        shown = {normalize(n): n for s in self.specs.values() for n in s.all_names}
        close = difflib.get_close_matches(key, list(shown), n=5, cutoff=0.6)
        if not close and len(key) >= 3:  # a word of longer names ("hinge" of hinge_embedding): too
            close = sorted((k for k in shown if key in k), key=len)[:5]  # short a part of each for difflib
        if not close:
            return "no registered name is close (`lossreg list` shows them all)"
        return f"closest: {', '.join(shown[k] for k in close)}"

    def _broken_plugins(self, key: str) -> str:
        """The plugins that did not load, those whose name or fault mentions ``key`` if any: the loss
        may be missing because of them, which says more than what is close."""
        broken = [f"plugin '{info.name}' {info.status}: {info.faults[0] if info.faults else info.status}"
                  for info in self.plugins.values() if info.status in ("failed", "missing")]
        related = [b for b in broken if key in normalize(b) or any(
            normalize(part) in key for part in b.split("'")[1:2] if len(part) > 2)]
        return "; ".join(related or broken)

    def loss_class(self, name: str) -> type[Loss]:
        """The class form of the loss called ``name``: the one made before, by this registry or an
        earlier one, while its spec is unchanged (so that after a reload, objects made before are
        still instances of ``lossreg.<ClassName>``)."""
        spec = self.lookup(name)
        if spec.name not in self.classes:
            made = _CLASS_FORMS.get(spec.name)
            if made is None or made.spec != spec:
                made = make_class(spec)
            made.spec = spec  # an equal spec, this registry's own
            # Racing threads all get the first one made, and it is the one the next reload keeps.
            kept = _CLASS_FORMS[spec.name] = self.classes.setdefault(spec.name, made)
            return kept
        return self.classes[spec.name]

    def kernel_for(self, loss: str, array: Any) -> Callable[..., Any] | None:
        """The kernel to use for ``loss`` on arrays like ``array``, cached per array type."""
        key = (loss, type(array))
        try:
            return self._kernel_cache[key]
        except KeyError:
            pass
        chosen = self.choose_kernel(loss, array)
        self._kernel_cache[key] = chosen
        return chosen

    def choose_kernel(self, loss: str, array: Any) -> Callable[..., Any] | None:
        """The kernel to use for ``loss`` on arrays like ``array``: the most recently registered
        one whose backend owns the array (uncached: see :meth:`kernel_for`)."""
        for backend in self.backends.values():
            kernels = self.kernels.get((loss, backend.name))
            if kernels and backend.owns(array):
                return kernels[-1].function
        return None


# Discovery (lossreg.plugins, a layer above) installs the function that builds a loaded registry.
_loader: Callable[[list[tuple[str, Any]]], Registry] | None = None


def set_loader(loader: Callable[[list[tuple[str, Any]]], Registry]) -> None:
    """Install the function that loads plugins into a new :class:`Registry` (done by lossreg.plugins)."""
    global _loader
    _loader = loader


def _load(extra: list[tuple[str, Any]]) -> Registry:
    if _loader is None:  # importing lossreg imports discovery, which installs it
        raise PluginError("no plugin loader is installed; import lossreg (not only lossreg.registry)")
    return _loader(extra)


class ForkSafeLock:
    """A lock (``threading.Lock``, or what ``make`` makes) that the child of a fork gets anew: one
    held by another thread at the fork would be held in the child for ever, by a thread the child
    does not have."""

    def __init__(self, make: Callable[[], Any] = threading.Lock) -> None:
        self._make = make
        self._lock = make()
        if hasattr(os, "register_at_fork"):  # POSIX
            os.register_at_fork(after_in_child=self._renew)

    def _renew(self) -> None:
        self._lock = self._make()

    def __enter__(self) -> Any:
        return self._lock.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._lock.__exit__(*exc)


# Reentrant, so that a plugin asking for the registry while loading is told, not deadlocked.
_lock = ForkSafeLock(threading.RLock)
_building = False
_registry: Registry | None = None
_extra: list[tuple[str, Any]] = []


def _forked() -> None:  # a fork while another thread loaded plugins: the child loads them itself
    global _building
    _building = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def registry() -> Registry:
    """The registry, loading plugins on first use (once, from whichever thread comes first)."""
    global _registry, _building
    if _registry is None:
        with _lock:
            if _building:  # only the loading thread gets here: the others wait on the lock
                raise PluginError("a plugin used the lossreg registry (get, spec, names, a class form, ...) while "
                                  "plugins were loading; look losses up when they are called, not at import")
            if _registry is None:
                _building = True
                try:
                    _registry = _load(list(_extra))
                finally:
                    _building = False
    return _registry


def _compiling() -> bool:
    """Whether torch.compile is tracing the call; if so, the registry is loaded first.

    Marked like :func:`lossreg.toolkit.torch_compiling`, so that Dynamo runs it (loading
    plugins: locks, imports, entry points) instead of tracing it, and guards on nothing it
    reads. A loss first called inside a compiled region thus still compiles with
    ``fullgraph=True``, and eager and compiled calls alternate without recompiling.

    Asked at every call with kernels on, so it reads the flag behind
    ``torch.compiler.is_compiling()`` itself: one attribute, where that function (and
    ``torch.jit.is_scripting()``, which it asks first and which is False in any Python code)
    cost 0.2 µs of a 3 µs tiny cross-entropy.
    """
    compiler = _torch_compiler or _find_torch_compiler()
    if compiler is None or not compiler._is_compiling_flag:
        return False
    toolkit.torch_compiling()  # quiets Dynamo's notes on array-api-compat's caches, once
    registry()
    return True


_compiling._dynamo_marked_constant = True  # type: ignore[attr-defined]

# torch.compiler once torch is imported (found by _compiling, which Dynamo does not trace).
_torch_compiler: Any = None


class _PublicFlag:
    """Stands for ``torch.compiler`` in a torch without ``_is_compiling_flag``: the public question."""

    def __init__(self, compiler: Any) -> None:
        self._compiler = compiler

    @property
    def _is_compiling_flag(self) -> bool:
        return bool(self._compiler.is_compiling())


def _find_torch_compiler() -> Any:
    global _torch_compiler
    compiler = getattr(sys.modules.get("torch"), "compiler", None)
    if compiler is None or not hasattr(compiler, "is_compiling"):  # no torch, or torch half imported
        return None
    _torch_compiler = compiler if hasattr(compiler, "_is_compiling_flag") else _PublicFlag(compiler)
    return _torch_compiler


def reload() -> Registry:
    """Forget the loaded plugins and load them again (after installing one, say); reads the
    environment again (:func:`read_environment`)."""
    global _registry
    with _lock:
        _registry = None
    read_environment()
    return registry()


def register_plugin(plugin: Any, name: str | None = None) -> None:
    """Register an in-process plugin object or module (as an entry point would) and reload."""
    name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
    # The very object registered already (an installed package's module, which its entry point
    # loaded): pluggy refused it with its own ValueError, listing every plugin object it held, and
    # a failed plugin of that name was left in `lossreg plugins`.
    loaded = registry().pm.get_name(plugin)
    if loaded is not None or any(p is plugin for _, p in _extra):
        loaded = loaded or next(n for n, p in _extra if p is plugin)
        info = registry().plugins.get(loaded)
        if loaded.startswith("lossreg:"):  # the built-in catalogue's modules: see plugins.make_manager
            loaded, how = "lossreg", "the built-in catalogue"
        else:
            how = "by its entry point" if info is not None and info.entry_point else "by register_plugin"
        raise PluginError(f"{getattr(plugin, '__name__', plugin)!s} is already registered, as plugin '{loaded}' "
                          f"({how}); its losses are there: it is not registered twice")
    if any(n == name for n, _ in _extra) or name in registry().plugins:
        raise PluginError(f"a plugin named '{name}' is already registered; give this one another name")
    _extra.append((name, plugin))
    reload()


def in_process_plugins() -> list[tuple[str, Any]]:
    """The plugins registered in this process with :func:`register_plugin`, as (name, plugin), in
    their order (what a worker process of the conformance suite registers again)."""
    return list(_extra)


def unregister_plugin(name: str) -> None:
    _extra[:] = [(n, p) for n, p in _extra if n != name]
    reload()


def spec(name: str) -> LossSpec:
    """The spec of the loss registered under ``name`` (any of its names or aliases)."""
    return registry().lookup(name)


def get(name: str, **options: Any) -> Loss:
    """The class form of a loss, configured: ``get("mse", reduction="sum")(input, target)``."""
    return registry().loss_class(name)(**options)


def _unpickled(name: str, plugin: str = "") -> Loss:
    """A class form read back by pickle (see ``Loss.__reduce_ex__``), from this process's registry."""
    try:
        return registry().loss_class(name)()
    except UnknownLossError as error:
        raise UnknownLossError(f"a pickled loss '{name}' (of plugin '{plugin}') cannot be read back: {error}. "
                               f"{IN_PROCESS_ONLY}") from None


# Why a process may not know a loss that another one has (a spawned worker, say).
IN_PROCESS_ONLY = ("A plugin registered in-process (lossreg.register_plugin) is known only in the process "
                   "that registered it: register it in each new process too (in a DataLoader's worker_init_fn, "
                   "a Pool's initializer), or install it as a package, whose entry point every process loads")


def by_class_name(module: str, name: str) -> LossSpec:
    """The spec of the loss whose class form is named ``name``, for a module's ``__getattr__``
    (``lossreg.MSELoss``, ``lossreg.torch.MSELoss``, ``lossreg.keras.MSELoss``); else module's
    AttributeError, saying why a class name may be unknown here (a pickled class form of an
    in-process plugin, read back in a worker)."""
    if not name.startswith("__"):
        for spec_ in registry().specs.values():
            if name == spec_.class_name:
                return spec_
    why = f" (no loss registered in this process has that class name. {IN_PROCESS_ONLY})" if name[:1].isupper() else ""
    raise AttributeError(f"module {module!r} has no attribute {name!r}{why}")


def names() -> list[str]:
    """The canonical names of every registered loss, sorted."""
    return sorted(registry().specs)


def from_config(config: dict[str, Any]) -> Loss:
    """Rebuild a loss from ``Loss.get_config()`` output (a dict, as ``json.loads`` gives it back)."""
    options = config.get("options", {}) if isinstance(config, dict) else None
    # The options a dict of names too: None or a list there was Python's "argument after ** must be
    # a mapping", and a number for a name its "keywords must be strings", naming neither the config.
    if ("name" not in (config if isinstance(config, dict) else {}) or not isinstance(options, dict)
            or not all(isinstance(k, str) for k in options)):
        raise LossValueError("lossreg.from_config", "config", "a dict with 'name' and 'options' (a dict of the "
                             "options by name)", repr(config))
    # Any other key is refused, not dropped: a lossreg.keras loss's get_config() (Keras's config)
    # holds its options beside its Keras name and dtype, and was rebuilt with the default options.
    other = [k for k in config if k not in ("name", "options")]
    if other:
        raise LossValueError("lossreg.from_config", "config", "a dict with 'name' and 'options' only (a Keras "
                             "loss's get_config() is rebuilt by its class's from_config; its lossreg_config() "
                             "here)", f"the keys {', '.join(map(repr, config))}")
    return get(config["name"], **options)


class _RegistryModule(types.ModuleType):
    """This module, callable: ``lossreg.registry`` is the module and ``lossreg.registry()`` the loaded
    registry, so the function no longer hides the submodule of the same name."""

    def __call__(self) -> Registry:
        return registry()


sys.modules[__name__].__class__ = _RegistryModule
