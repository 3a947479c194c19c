"""JAX kernels: the portable definition itself, compiled as one program per shape by ``jax.jit``.

Called eagerly, every array-API operation on JAX arrays is its own dispatch (tens of µs) and,
for each new shape, its own compilation; ``jax.nn`` and optax functions are compiled as a whole,
so on small inputs the portable code loses to them by its number of operations, not by what it
computes. These kernels run the unchanged portable definition under ``jax.jit``: arrays (and
array options such as ``weight``) are traced, the other options are static, and the first call
per shape and options compiles one fused program instead of one per operation. Under an outer
``jit``, ``grad`` or ``vmap`` the call is inlined into the caller's trace.

The argument checks run while tracing, so bad shapes, dtypes and options raise the same lossreg
errors; the device check, which traced arrays cannot answer, runs before. A call the kernel
cannot compile (a non-hashable option value, an array of another library), or should not (an
eager call with yet another value of a number option, see ``FLOAT_VALUES``), is handed back to
the portable path with ``NotImplemented``.

jax is imported only when this module is (the kernels hook imports it lazily).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import jax

from .. import losses as catalogue
from .. import toolkit
from . import _JAX_LOSSES

# Programs per set of options that differ only in their real-valued numbers (label_smoothing,
# margin): those are static, so each value is a program compiled for it. A value that changes at
# every eager call (a label-smoothing schedule) would compile at every call (optax's eager
# functions compile nothing per value) and keep every program: past this many values, a new one
# called eagerly runs the portable code op by op, which takes numbers as arguments and compiles
# nothing per value. Under jax.jit (the jax_jit conformance backend too) the kernel is always used.
FLOAT_VALUES = 8
_TRACING_ERRORS = (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
                   jax.errors.TracerIntegerConversionError, jax.errors.TracerArrayConversionError)


def compiled(loss: str | Callable[..., Any], definition: Callable[..., Any] | None = None) -> Callable[..., Any]:
    """The kernel of ``loss``: its portable definition under ``jax.jit``, one program per static options.

    ``loss`` is a catalogue name or a loss made with ``define_loss`` (a plugin's; see
    :func:`lossreg.kernels.jax_jit`). ``definition``, when given, is compiled instead: a JAX
    form of the loss with its signature (one that states a derivative, say).
    """
    loss_spec = getattr(catalogue, loss).spec if isinstance(loss, str) else loss.spec  # type: ignore[attr-defined]
    name: str = loss_spec.name
    function, names, array_options = definition or loss_spec.function, loss_spec.inputs, loss_spec.array_options
    programs: dict[tuple[tuple[str, type, Any], ...], Any] = {}
    float_values: dict[tuple[tuple[str, type, Any], ...], int] = {}  # programs per options but their floats

    def kernel(*arrays: Any, **options: Any) -> Any:
        if not all(isinstance(a, jax.Array) for a in arrays):
            return NotImplemented
        if toolkit.reads_values(arrays[0]):  # value_checks("sync") on concrete arrays: checked op by op
            return NotImplemented
        # Only array options are traced: another option given as an array is the portable path's
        # to refuse, naming the array the caller passed rather than a tracer.
        traced = {k: v for k, v in options.items() if k in array_options and isinstance(v, jax.Array)}
        # Each value with its type: 1, 1.0, True and np.int64(1) are equal keys, and the program
        # compiled for one (its options fixed, and checked, when it was traced) would answer for another.
        static = tuple(sorted((k, type(v), v) for k, v in options.items() if k not in traced))
        try:
            program = programs.get(static)
        except TypeError:  # an unhashable option value (a list of weights, say)
            return NotImplemented
        if program is None:
            # Eager calls only (an eager jax.grad's too, which runs and compiles each program it
            # meets): under an outer jit a new program is inlined, and compiles nothing of its own.
            if any(_fractional(v) for _, _, v in static) and all(map(toolkit._jax_value_known, arrays)):
                others = tuple((k, t, None if _fractional(v) else v) for k, t, v in static)
                if float_values.get(others, 0) >= FLOAT_VALUES:
                    return NotImplemented
                float_values[others] = float_values.get(others, 0) + 1
            fixed = {k: v for k, _, v in static}

            def run(arrays: tuple[Any, ...], traced: dict[str, Any]) -> Any:
                return function(*arrays, **fixed, **traced)

            program = programs[static] = jax.jit(run)
        if len(arrays) + len(traced) > 1:  # traced arrays report no device: check them here
            present: dict[str, Any] = {**dict(zip(names, arrays)), **traced}
            toolkit.namespace(name, **present)
        try:
            return program(arrays, traced)
        except _TRACING_ERRORS:  # the portable code reads a value here: run it op by op
            return NotImplemented

    kernel.__name__ = name
    kernel.__doc__ = f"{name} under jax.jit (see lossreg.kernels.jax)."
    return kernel


def _fractional(value: Any) -> bool:
    """A real number that is not an integer (nor a bool): 0.1, np.float32(0.5)."""
    return isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral)


KERNELS = {loss: compiled(loss) for loss in _JAX_LOSSES}
