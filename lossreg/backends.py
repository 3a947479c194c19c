"""How the conformance suite makes, moves and reads the arrays of each library.

Each array library is a :class:`Backend`, provided through the ``lossreg_backends`` hook like any
plugin's. This is the one place (with ``kernels/``) that knows about particular libraries; every
library is imported only when its backend is used.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Sequence
from typing import Any

import array_api_compat as compat
import numpy as np

from .hookspecs import hookimpl

FLOATS = ("float16", "bfloat16", "float32", "float64")


class Backend:
    """An array library as the conformance suite sees it. Subclass and override to add one.

    ``name`` is what ``--backend`` takes; ``module`` is imported to tell whether it is
    installed. Arrays are made from NumPy data (``asarray``) and read back (``to_numpy``);
    ``value_and_grad`` is ``None`` for libraries without automatic differentiation.
    """

    name: str = ""
    module: str = ""
    dtypes: tuple[str, ...] = ("float32", "float64")
    devices: tuple[str, ...] = ("cpu",)
    lazy = False  # results stay unevaluated, so data-dependent checks yield NaN, not errors

    def unavailable(self) -> str | None:
        """Why this backend cannot run here, or ``None`` if it can."""
        if importlib.util.find_spec(self.module) is None:
            return f"{self.module} is not installed"
        return None

    def xp(self) -> Any:
        return compat.array_namespace(self.asarray(np.zeros(1), "float64", self.devices[0]))

    def owns(self, x: Any) -> bool:
        """Whether ``x`` is an array of this library (kernels are chosen by this)."""
        return False

    def asarray(self, data: np.ndarray, dtype: str, device: str) -> Any:
        raise NotImplementedError

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def call(self, function: Callable[..., Any], arrays: Sequence[Any], options: dict[str, Any]) -> Any:
        """Run a loss; a backend may wrap this (under ``jax.jit``, say)."""
        return function(*arrays, **options)

    value_and_grad: Callable[..., tuple[Any, list[Any]]] | None = None

    def __repr__(self) -> str:
        return f"<lossreg backend {self.name}>"


class NumPyBackend(Backend):
    name = module = "numpy"
    dtypes = ("float16", "float32", "float64")

    def owns(self, x: Any) -> bool:
        return compat.is_numpy_array(x)

    def asarray(self, data: np.ndarray, dtype: str, device: str) -> Any:
        return np.asarray(data, dtype=dtype)


class ArrayAPIStrictBackend(Backend):
    name = module = "array_api_strict"
    devices = ("CPU_DEVICE", "device1", "device2")

    def owns(self, x: Any) -> bool:
        return type(x).__module__.startswith("array_api_strict")

    def asarray(self, data: np.ndarray, dtype: str, device: str) -> Any:
        import array_api_strict as xp

        return xp.asarray(data, dtype=getattr(xp, dtype), device=xp.Device(device))

    def to_numpy(self, x: Any) -> np.ndarray:
        import array_api_strict as xp

        return np.asarray(x.to_device(xp.Device("CPU_DEVICE")))


class TorchBackend(Backend):
    name = module = "torch"
    dtypes = FLOATS
    devices = ("cpu", "cuda")

    def owns(self, x: Any) -> bool:
        return compat.is_torch_array(x)

    def asarray(self, data: np.ndarray, dtype: str, device: str) -> Any:
        import torch

        return torch.asarray(np.asarray(data, dtype="float64" if dtype == "bfloat16" else dtype),
                             dtype=getattr(torch, dtype), device=device)

    def to_numpy(self, x: Any) -> np.ndarray:
        import torch

        x = x.detach().cpu()
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy()

    def value_and_grad(self, function: Callable[..., Any], arrays: Sequence[Any], wrt: Sequence[int],
                       options: dict[str, Any]) -> tuple[Any, list[Any]]:
        import torch

        leaves = [a.detach().requires_grad_(i in wrt) if i in wrt else a for i, a in enumerate(arrays)]
        value = function(*leaves, **options)
        grads = torch.autograd.grad(value.sum(), [leaves[i] for i in wrt], allow_unused=True)
        return value, [torch.zeros_like(leaves[i]) if g is None else g for i, g in zip(wrt, grads)]


class JAXBackend(Backend):
    name = module = "jax"
    dtypes = FLOATS
    lazy = True

    def unavailable(self) -> str | None:
        reason = super().unavailable()
        if reason is None:
            import jax

            jax.config.update("jax_enable_x64", True)  # float64 cases need it
        return reason

    def owns(self, x: Any) -> bool:
        return compat.is_jax_array(x)

    def asarray(self, data: np.ndarray, dtype: str, device: str) -> Any:
        import jax
        import jax.numpy as jnp

        return jax.device_put(jnp.asarray(data, dtype=getattr(jnp, dtype)), jax.devices(device)[0])

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x.astype("float32") if str(x.dtype) == "bfloat16" else x)

    def value_and_grad(self, function: Callable[..., Any], arrays: Sequence[Any], wrt: Sequence[int],
                       options: dict[str, Any]) -> tuple[Any, list[Any]]:
        import jax

        def total(*diff: Any) -> Any:
            args = list(arrays)
            for i, a in zip(wrt, diff):
                args[i] = a
            value = function(*args, **options)
            return value.sum(), value

        (_, value), grads = jax.value_and_grad(total, argnums=tuple(range(len(wrt))), has_aux=True)(
            *[arrays[i] for i in wrt])
        return value, list(grads)


class DaskBackend(Backend):
    name = module = "dask"
    lazy = True

    def owns(self, x: Any) -> bool:
        return compat.is_dask_array(x)

    def asarray(self, data: np.ndarray, dtype: str, device: str) -> Any:
        import dask.array as da

        # Two chunks along the batch axis (where there is one), so blockwise code is exercised.
        chunks = tuple(max(1, -(-s // 2)) if i == 0 else s for i, s in enumerate(data.shape)) or ()
        return da.from_array(np.asarray(data, dtype=dtype), chunks=chunks or -1)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x.compute())


class CuPyBackend(Backend):
    name = module = "cupy"
    dtypes = ("float16", "float32", "float64")
    devices = ("cuda",)

    def unavailable(self) -> str | None:
        reason = super().unavailable()
        if reason is None:
            try:
                import cupy

                cupy.cuda.runtime.getDeviceCount()
            except Exception as exc:  # CuPy imports without a GPU but cannot run
                return f"cupy cannot reach a CUDA device: {exc}"
        return reason

    def owns(self, x: Any) -> bool:
        return compat.is_cupy_array(x)

    def asarray(self, data: np.ndarray, dtype: str, device: str) -> Any:
        import cupy

        return cupy.asarray(np.asarray(data, dtype=dtype))

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.get()


BUILTIN = (NumPyBackend(), ArrayAPIStrictBackend(), TorchBackend(), JAXBackend(), DaskBackend(), CuPyBackend())


@hookimpl
def lossreg_backends() -> tuple[Backend, ...]:
    return BUILTIN


def to_numpy(x: Any) -> np.ndarray:
    """Read any registered library's array back into NumPy (used for configs and reports)."""
    from .registry import registry

    for backend in registry().backends.values():
        if backend.owns(x):
            return backend.to_numpy(x)
    return np.asarray(x)


def to_list(x: Any) -> Any:
    return to_numpy(x).tolist()
