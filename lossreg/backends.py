"""How the conformance suite makes, moves and reads the arrays of each library.

Each array library is a :class:`Backend`, provided through the ``lossreg_backends`` hook like any
plugin's. This is the one place (with ``kernels/``) that knows about particular libraries; every
library is imported only when its backend is used.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import array_api_compat as compat
import numpy as np

from .core import FLOATS, Backend, _version
from .hookspecs import hookimpl

__all__ = ["Backend", "FLOATS", "NumPyBackend", "ArrayAPIStrictBackend", "TorchBackend", "JAXBackend",
           "JAXJitBackend", "DaskBackend", "CuPyBackend", "BUILTIN", "to_numpy"]


def _split_device(device: str) -> tuple[str, int | None]:
    kind, _, index = device.partition(":")
    return kind, int(index) if index else None


class NumPyBackend(Backend):
    name = module = short = "numpy"
    dtypes = ("float16", "float32", "float64")

    def owns(self, x: Any) -> bool:
        return compat.is_numpy_array(x)

    def asarray(self, data: np.ndarray, dtype: str, device: str) -> Any:
        return np.asarray(data, dtype=dtype)


class ArrayAPIStrictBackend(Backend):
    """array-api-strict, the standard's referee, with its fake devices (``device1``, ``device2``)."""

    name = module = "array_api_strict"
    short = "strict"
    devices = ("CPU_DEVICE", "device1", "device2")

    def device_unavailable(self, device: str) -> str | None:
        return None if device in self.devices else \
            f"array_api_strict has no device {device!r} (it has {', '.join(self.devices)})"

    def owns(self, x: Any) -> bool:
        return type(x).__module__.startswith("array_api_strict")

    def asarray(self, data: np.ndarray, dtype: str, device: str) -> Any:
        import array_api_strict as xp

        return xp.asarray(data, dtype=getattr(xp, dtype), device=xp.Device(device))

    def to_numpy(self, x: Any) -> np.ndarray:
        import array_api_strict as xp

        return np.asarray(x.to_device(xp.Device("CPU_DEVICE")))


class TorchBackend(Backend):
    """PyTorch on any device it can allocate on: ``cpu``, ``cuda``, ``cuda:1``, ``mps`` ..."""

    name = module = short = "torch"
    dtypes = FLOATS
    devices = ("cpu", "cuda")

    def device_unavailable(self, device: str) -> str | None:
        import torch

        try:
            dev = torch.device(device)
        except RuntimeError as exc:
            return f"torch does not know the device {device!r}: {exc}"
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
                return f"torch {torch.__version__} ({build}) sees no CUDA device"
            if dev.index is not None and dev.index >= torch.cuda.device_count():
                return f"torch sees {torch.cuda.device_count()} CUDA device(s), not {device!r}"
        try:
            torch.empty(1, device=dev)
        except Exception as exc:
            return f"torch cannot allocate on {device!r}: {type(exc).__name__}: {exc}"
        return None

    def device_name(self, device: str) -> str | None:
        import torch

        dev = torch.device(device)
        if dev.type == "cuda" and torch.cuda.is_available():
            return torch.cuda.get_device_name(dev)
        return None

    def versions(self) -> dict[str, str]:
        found = super().versions()
        if "torch" in sys.modules:
            import torch

            found["torch.cuda"] = str(torch.version.cuda)
        return found

    def owns(self, x: Any) -> bool:
        return compat.is_torch_array(x)

    def asarray(self, data: np.ndarray, dtype: str, device: str) -> Any:
        import torch

        # NumPy has no bfloat16: hand torch the float64 data and let it round once, to nearest.
        data = np.asarray(data, dtype="float64" if dtype == "bfloat16" else dtype)
        return torch.asarray(data, dtype=getattr(torch, dtype), device=device)

    def to_numpy(self, x: Any) -> np.ndarray:
        import torch

        x = x.detach().cpu()
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy()

    def value_and_grad(self, function: Callable[..., Any], arrays: Sequence[Any], wrt: Sequence[int],
                       options: dict[str, Any]) -> tuple[Any, list[Any]]:
        import torch

        leaves = [a.detach().requires_grad_(True) if i in wrt else a for i, a in enumerate(arrays)]
        value = function(*leaves, **options)
        grads = torch.autograd.grad(value.sum(), [leaves[i] for i in wrt], allow_unused=True)
        return value, [torch.zeros_like(leaves[i]) if g is None else g for i, g in zip(wrt, grads)]


# XLA's CPU compiler takes 0.05 s or more per program, and eager JAX compiles every operation anew
# for each shape: the suite's hundreds of small, differently shaped cases spend most of their time
# compiling. Skipping LLVM's optimizations cuts that by about a third; the programs run slower,
# which tiny arrays do not notice, and compute values within the suite's tolerances.
# LOSSREG_JAX_FAST_COMPILE=0 keeps JAX's defaults.
_FAST_COMPILE = ("--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true")
# XLA's legacy CPU emitters compile one-operation programs twice as fast again (an eager JAX
# conformance run: 197 CPU-s instead of 292), but not a whole loss unrolled under jit: with jaxlib
# 0.10 one batch-4 CTC under jit grew past 20 GB of memory with them (0.6 GB without). So only a
# run that compiles no whole unrolled loss takes them: eager JAX without the jax_jit backend (whose
# jitted kernels are single fused programs without Python loops).
_EAGER_ONLY = ("--xla_cpu_use_fusion_emitters=false",)


def fast_jax_compile_flags(current: str = "", eager_only: bool = False) -> str:
    """``XLA_FLAGS`` with lossreg's fast-compile flags added to ``current`` (the caller's own win)."""
    extra = [flag for flag in _FAST_COMPILE + _EAGER_ONLY * eager_only if flag.partition("=")[0] not in current]
    return " ".join([current, *extra]).strip()


def use_fast_jax_compile(eager_only: bool = False) -> bool:
    """Set ``XLA_FLAGS`` for fast XLA compiles in this process, if JAX is not imported yet (the
    flags are read once, when JAX starts) and ``LOSSREG_JAX_FAST_COMPILE`` is not ``0``;
    ``eager_only``: this process will not compile whole losses under ``jax.jit`` (no jax_jit
    backend), so the compiler may be faster still at the cost of memory on large programs.

    Process-wide, so lossreg never calls it on import or lookup: only ``lossreg conformance``
    (its own process), the conformance run's worker processes, and a test suite that asks (lossreg's
    own conftest.py). Returns whether the flags were set.
    """
    if os.environ.get("LOSSREG_JAX_FAST_COMPILE", "1") == "0" or "jax" in sys.modules:
        return False
    os.environ["XLA_FLAGS"] = fast_jax_compile_flags(os.environ.get("XLA_FLAGS", ""), eager_only)
    return True


_KEEP_BYTES = 2560 * 2**20  # torch, JAX and Dask imported take 0.4 GB; a run's workers grew past 1.5 GB


def _resident_bytes() -> int:
    """This process's resident memory (Linux); elsewhere "too much", so that caches are dropped."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return sys.maxsize


@contextlib.contextmanager
def _x64() -> Iterator[None]:
    import jax

    # Thread-local and undone on exit, unlike jax.config.update. Matmuls at full float32
    # precision: on GPUs JAX's default rounds their inputs to TF32 (torch's default does not),
    # a choice a user makes for the whole program; the reference is the float32 product.
    with jax.enable_x64(True), jax.default_matmul_precision("highest"):
        yield


class JAXBackend(Backend):
    """JAX, eager: each operation runs (and compiles, once per shape and dtype) as it is called.

    Values only: gradients are checked by ``jax_jit``, which differentiates under ``jax.jit``
    (the stricter test of the code, with the same primitives). Eager differentiation compiles
    every forward and backward operation of every differently shaped case anew, five times the
    cost of the rest of a JAX run, to test again what ``jax_jit`` tests.
    """

    name = module = short = "jax"
    dtypes = FLOATS
    devices = ("cpu", "cuda")
    lazy = True

    @property
    def values_only(self) -> str:
        return "" if self.value_and_grad is not None else \
            "eager JAX checks values only; the jax_jit backend checks JAX's gradients (under jax.jit)"

    def scope(self) -> contextlib.AbstractContextManager[None]:
        """float64 (``jax_enable_x64``) and float32 matmuls at full precision within the block only:
        a run never changes the caller's JAX."""
        return _x64()

    def device_unavailable(self, device: str) -> str | None:
        import jax

        kind, index = _split_device(device)
        try:
            found = jax.devices(kind)
        except RuntimeError as exc:
            return f"jax {jax.__version__} has no {kind} device: {exc}".split("\n")[0]
        if (index or 0) >= len(found):
            return f"jax sees {len(found)} {kind} device(s), not {device!r}"
        return None

    def device_name(self, device: str) -> str | None:
        kind, _ = _split_device(device)
        return None if kind == "cpu" else self._device(device).device_kind

    def versions(self) -> dict[str, str]:
        return {"jax": _version("jax"), "jaxlib": _version("jaxlib"), "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")}

    def _device(self, device: str) -> Any:
        import jax

        kind, index = _split_device(device)
        return jax.devices(kind)[index or 0]

    def owns(self, x: Any) -> bool:
        return compat.is_jax_array(x)

    def asarray(self, data: np.ndarray, dtype: str, device: str) -> Any:
        import jax
        import jax.numpy as jnp

        if dtype != "bfloat16":  # NumPy's cast of float64 to ml_dtypes' bfloat16 rounds twice, JAX's once
            # Cast by NumPy: jnp.asarray casts float64 data to float32 (or int64 to int32) in a
            # program compiled for each new shape, one per float32 input of the suite's cases.
            data = np.asarray(data, dtype=dtype)
        with self.scope():
            return jax.device_put(jnp.asarray(data, dtype=getattr(jnp, dtype)), self._device(device))

    def call(self, function: Callable[..., Any], arrays: Sequence[Any], options: dict[str, Any]) -> Any:
        with self.scope():
            return function(*arrays, **options)

    def release(self) -> None:
        import jax

        # Each case's shapes compile new programs, kept for the life of the process: over the
        # whole suite they grow to many GB (CTC alone, 1.3 GB under jit). They are dropped only
        # once the process holds more than _KEEP_BYTES (2.5 GB), though: until then the next loss
        # (or the next slice of this one) reuses them, and eager JAX's one-operation programs (add,
        # exp, sum of a (3, 4) float32 array ...) are mostly the same from one loss to the next.
        if _resident_bytes() < _KEEP_BYTES:
            return
        _jitted.cache_clear()
        jax.clear_caches()

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x.astype("float32") if str(x.dtype) == "bfloat16" else x)


def _summed(function: Callable[..., Any], arrays: Sequence[Any], wrt: Sequence[int],
            options: dict[str, Any]) -> Callable[..., tuple[Any, Any]]:
    """``diff -> (sum(loss), loss)`` with the arrays at ``wrt`` replaced by ``diff``."""

    def total(diff: Sequence[Any]) -> tuple[Any, Any]:
        args = list(arrays)
        for i, a in zip(wrt, diff):
            args[i] = a
        value = function(*args, **options)
        return value.sum(), value

    return total


class JAXJitBackend(JAXBackend):
    """JAX under ``jax.jit``, values and gradients (``jax.value_and_grad`` inside the jit): arrays
    (array options too) are traced, other options static.

    Compiled functions are kept per (loss, static options, differentiated inputs) until
    :meth:`release`, so cases that differ only in their data compile nothing.
    """

    name = "jax_jit"
    short = "jit"
    kernels_of = "jax"

    def call(self, function: Callable[..., Any], arrays: Sequence[Any], options: dict[str, Any]) -> Any:
        static, traced = _split_options(options)
        with self.scope():
            return _jitted(function, static, None)(list(arrays), traced)

    def value_and_grad(self, function: Callable[..., Any], arrays: Sequence[Any], wrt: Sequence[int],
                       options: dict[str, Any]) -> tuple[Any, list[Any]]:
        static, traced = _split_options(options)
        with self.scope():
            value, grads = _jitted(function, static, tuple(wrt))(list(arrays), traced)
        return value, list(grads)


class _Static:
    """A static option value, hashable by its JSON form when the value itself is not hashable."""

    def __init__(self, value: Any) -> None:
        self.value = value
        try:
            self.key: Any = (type(value), hash(value), value)
        except TypeError:
            self.key = ("json", json.dumps(value, sort_keys=True, default=repr))

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Static) and self.key == other.key


def _split_options(options: dict[str, Any]) -> tuple[tuple[tuple[str, _Static], ...], dict[str, Any]]:
    traced = {k: v for k, v in options.items() if compat.is_jax_array(v)}
    static = tuple(sorted((k, _Static(v)) for k, v in options.items() if k not in traced))
    return static, traced


@functools.lru_cache(maxsize=1024)
def _jitted(function: Callable[..., Any], static: tuple[tuple[str, _Static], ...],
            wrt: tuple[int, ...] | None) -> Callable[..., Any]:
    import jax

    fixed = {k: v.value for k, v in static}

    def forward(arrays: list[Any], traced: dict[str, Any]) -> Any:
        return function(*arrays, **fixed, **traced)

    def forward_and_grad(arrays: list[Any], traced: dict[str, Any]) -> tuple[Any, list[Any]]:
        assert wrt is not None
        total = _summed(function, arrays, wrt, {**fixed, **traced})
        (_, value), grads = jax.value_and_grad(total, has_aux=True)([arrays[i] for i in wrt])
        return value, grads

    return jax.jit(forward if wrt is None else forward_and_grad)


def _refuse_compute(*args: Any, **kwargs: Any) -> Any:
    """A Dask scheduler that fails: a loss must build its graph without computing anything."""
    raise AssertionError("the loss computed a Dask graph during the call; it must only build one")


class DaskBackend(Backend):
    """Dask arrays of NumPy chunks, each input split in two along ``split_axes`` (default: the
    batch axis), so that blockwise code and reductions across chunks are exercised.

    The loss is called with a scheduler that refuses to run, so any compute (``bool()``,
    ``float()``, ``.compute()``) during the call fails the case; results are computed afterwards
    in this thread (tiny graphs run fastest there), by Dask's plainest executor (``_computed``).
    """

    name = module = short = "dask"
    dtypes = ("float16", "float32", "float64")
    lazy = True

    # The NumPy data of the last arrays made, by their Dask name (a token of the data and the
    # chunks, so a name always stands for the same values): the suite reads each input of a
    # float32 case back to compute its float64 answer, and a compute per input, however small a
    # graph, costs a millisecond (a twentieth of a run).
    _MADE = 64

    def __init__(self, split_axes: Sequence[int] = (0,), name: str | None = None, short: str | None = None) -> None:
        self.split_axes = tuple(split_axes)
        if name:
            self.name = name
        if short:
            self.short = short

    def owns(self, x: Any) -> bool:
        return compat.is_dask_array(x)

    def asarray(self, data: np.ndarray, dtype: str, device: str) -> Any:
        import dask.array as da

        chunks = tuple(max(1, -(-s // 2)) if i in self.split_axes else s for i, s in enumerate(data.shape))
        data = np.asarray(data, dtype=dtype)
        x = da.from_array(data, chunks=chunks or -1)
        made = self._made()
        made[x.name] = data
        while len(made) > self._MADE:
            del made[next(iter(made))]
        return x

    def _made(self) -> dict[str, np.ndarray]:
        # Made on first use, so that a subclass with its own __init__ has it too.
        made: dict[str, np.ndarray] = self.__dict__.setdefault("_made_arrays", {})
        return made

    def call(self, function: Callable[..., Any], arrays: Sequence[Any], options: dict[str, Any]) -> Any:
        import dask

        with dask.config.set(scheduler=_refuse_compute):
            result = function(*arrays, **options)
        if not compat.is_dask_array(result):
            raise AssertionError(f"returned {type(result).__module__}.{type(result).__name__}, not a lazy Dask array")
        return result

    def to_numpy(self, x: Any) -> np.ndarray:
        made = self._made().get(x.name)
        if made is not None:  # an array made by asarray, read back as it was made (a copy: the caller's own)
            return made.copy()
        return np.asarray(_computed(x))


def _computed(x: Any) -> Any:
    """A Dask array's value: its graph run as it was built (no optimization) by Dask's plainest
    executor, ``dask.core.get``, and put together by the array's own finalizer (Dask's collection
    protocol). The tasks ``compute(scheduler="sync", optimize_graph=False)`` runs, in Dask's order
    (``dask.order``) as there, in half the time on the suite's small graphs: the synchronous
    scheduler's futures, callbacks and expressions cost about 2 ms a read."""
    import dask.core  # a Dask array: Dask is imported already

    finalize, extra = x.__dask_postcompute__()
    return finalize(dask.core.get(dict(x.__dask_graph__()), x.__dask_keys__()), *extra)


class CuPyBackend(Backend):
    """CuPy on a CUDA device: ``cuda`` (the current one) or ``cuda:N``."""

    name = module = short = "cupy"
    dtypes = ("float16", "float32", "float64")
    devices = ("cuda",)

    def unavailable(self) -> str | None:
        reason = super().unavailable()
        if reason is None:
            try:
                import cupy

                if cupy.cuda.runtime.getDeviceCount() < 1:
                    return "cupy sees no CUDA device"
            except Exception as exc:  # CuPy imports without a GPU or driver, but cannot run
                return f"cupy cannot reach a CUDA device: {type(exc).__name__}: {exc}".split("\n")[0]
        return reason

    def device_unavailable(self, device: str) -> str | None:
        kind, index = _split_device(device)
        if kind != "cuda":
            return f"cupy has no device {device!r} (it has cuda, cuda:N)"
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
        return None if (index or 0) < count else f"cupy sees {count} CUDA device(s), not {device!r}"

    def device_name(self, device: str) -> str | None:
        import cupy

        index = self._index(device)
        name = cupy.cuda.runtime.getDeviceProperties(index)["name"]
        return name.decode() if isinstance(name, bytes) else str(name)

    def versions(self) -> dict[str, str]:
        found = super().versions()
        if "cupy" in sys.modules:
            import cupy

            try:
                found["cuda runtime"] = str(cupy.cuda.runtime.runtimeGetVersion())
            except Exception:  # no driver: nothing more to report
                pass
        return found

    @staticmethod
    def _index(device: str) -> int:
        import cupy

        _, index = _split_device(device)
        return cupy.cuda.runtime.getDevice() if index is None else index

    def owns(self, x: Any) -> bool:
        return compat.is_cupy_array(x)

    def asarray(self, data: np.ndarray, dtype: str, device: str) -> Any:
        import cupy

        with cupy.cuda.Device(self._index(device)):
            return cupy.asarray(np.asarray(data, dtype=dtype))

    def to_numpy(self, x: Any) -> np.ndarray:
        import cupy

        return cupy.asnumpy(x)


BUILTIN = (NumPyBackend(), ArrayAPIStrictBackend(), TorchBackend(), JAXBackend(), JAXJitBackend(), DaskBackend(),
           CuPyBackend())


@hookimpl
def lossreg_backends() -> tuple[Backend, ...]:
    return BUILTIN


def to_numpy(x: Any) -> np.ndarray:
    """Read any registered library's array back into NumPy (used for configs and reports)."""
    from .registry import registry

    return registry().to_numpy(x)

