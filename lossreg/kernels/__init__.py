"""Optional faster paths, each for one array library, registered through ``lossreg_kernels``.

A kernel must agree with the portable definition; the conformance suite runs both. Kernels are
used automatically for their library and can be switched off with ``LOSSREG_KERNELS=0`` or
``lossreg.use_kernels(False)``.

Registering a kernel must not import its library: a kernel is only ever called with that
library's arrays, so the module holding it is imported on the first call (or at once, when the
library is already imported, to spare the per-call indirection).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from typing import Any

from ..hookspecs import hookimpl
from ..registry import Kernel
from ..toolkit import _env_switch

_CUPY_LOSSES = ("mse_loss", "l1_loss", "binary_cross_entropy", "cross_entropy")  # checked on a GPU: kernels/cupy.py
CUPY_SWITCH = "LOSSREG_CUPY_KERNELS"  # =1: lossreg's CuPy kernels, not the portable path, on CuPy arrays
CE_TRITON_SWITCH = "LOSSREG_CE_TRITON"  # =0: torch's own cross-entropy on CUDA at every size, not Triton
BCE_TRITON_SWITCH = "LOSSREG_BCE_TRITON"  # =0: binary_cross_entropy's in-graph checks on CUDA in torch operations
LCE_TRITON_SWITCH = "LOSSREG_LCE_TRITON"  # =0: linear_cross_entropy's chunks on CUDA in torch operations
# A kernel that passed conformance on a GPU but missed its speed target there stays off until it
# meets it, and says why (the README's GPU section has the figures); "=1" switches it on.
OFF_UNTIL_FAST = {
    CUPY_SWITCH: "the CuPy kernels missed their target on an H200 (1.7-8.1x the bandwidth floor, target 1.3x)",
}
_NUMPY_LOSSES = ("cross_entropy", "binary_cross_entropy", "mse_loss", "l1_loss")
# Losses whose JAX peers (optax, jax.nn, Keras) are compiled functions: run under jax.jit (see kernels/jax.py).
_JAX_LOSSES = ("cross_entropy", "binary_cross_entropy_with_logits", "kl_div", "triplet_margin_loss")
# The other losses of torch's autocast float32 lists: their torch kernel is the portable definition,
# run as torch.autocast runs torch's losses (kernels/torch.py).
_TORCH_AUTOCAST_ONLY = ("kl_div", "poisson_nll_loss", "soft_margin_loss",
                        "multilabel_margin_loss", "hinge_embedding_loss", "margin_ranking_loss",
                        "cosine_embedding_loss", "triplet_margin_loss")
_TORCH_LOSSES = ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy",
                 "binary_cross_entropy_with_logits", "nll_loss", "cross_entropy", "ctc_loss", "multi_margin_loss",
                 "multilabel_soft_margin_loss", *_TORCH_AUTOCAST_ONLY)


def _deferred(load: Callable[[], Callable[..., Any]], name: str) -> Callable[..., Any]:
    """A kernel that calls ``load()`` (which imports its library) on its first call, then what it returned."""
    real: list[Callable[..., Any]] = []

    def load_once() -> None:
        if not real:
            real.append(load())

    # Dynamo (torch.compile) runs it, outside the trace, and guards on nothing it reads: a first
    # call traced by torch.compile must not guard on `real` being empty (a recompilation on the
    # second call, when it is not).
    load_once._dynamo_marked_constant = True  # type: ignore[attr-defined]

    def kernel(*arrays: Any, **options: Any) -> Any:
        load_once()
        return real[0](*arrays, **options)

    kernel.__name__ = name
    return kernel


def _import(module: str) -> Any:
    """``module``, imported. The torch kernels' modules by ``import`` statements: a kernel's first
    call may be traced by torch.compile (lossreg used before torch was imported), and Dynamo runs
    an import statement where it refuses ``importlib.import_module`` (``fullgraph=True`` failed)."""
    if module == f"{__name__}.torch":
        import lossreg.kernels.torch as torch_kernels

        return torch_kernels
    if module == f"{__name__}.torch_lce":
        import lossreg.kernels.torch_lce as torch_lce_kernel

        return torch_lce_kernel
    return importlib.import_module(module)


def _lazy(module: str, loss: str) -> Callable[..., Any]:
    """The kernel ``KERNELS[loss]`` of ``module``, imported on first use."""
    return _deferred(lambda: _import(module).KERNELS[loss], loss)


def _kernel(library: str, module: str, loss: str) -> Callable[..., Any]:
    if library in sys.modules:  # already paid for: bind the function itself
        return importlib.import_module(module).KERNELS[loss]
    return _lazy(module, loss)


def jax_jit(loss: Callable[..., Any], definition: Callable[..., Any] | None = None) -> Callable[..., Any]:
    """A JAX kernel for a loss made with ``define_loss``: its portable definition under ``jax.jit``.

    For a plugin whose loss has a compiled JAX peer (a ``jax.nn`` or optax function), which op by
    op eager JAX loses to by its number of dispatches; see :mod:`lossreg.kernels.jax`. JAX is
    imported on the first call, so registering it imports nothing::

        Kernel(loss="poly1_cross_entropy", backend="jax", function=jax_jit(poly1_cross_entropy), name="jax")

    ``definition``, when given, is compiled instead of the portable one: a JAX form of the loss
    with its signature (one that states its derivative through ``jax.custom_jvp``, say).
    """
    return _deferred(lambda: importlib.import_module(f"{__name__}.jax").compiled(loss, definition),
                     loss.spec.name)  # type: ignore[attr-defined]


def torch_autocast(loss: Callable[..., Any]) -> Callable[..., Any]:
    """A torch kernel for a loss made with ``define_loss`` that half precision would spoil inside
    ``torch.autocast`` (a softmax over similarities, a difference of nearly equal terms): there it
    runs as torch runs its own ``cross_entropy``, half-precision arguments cast to float32 and the
    portable definition called with autocast off (which would otherwise take a ``matmul`` to half
    precision, float32 arguments included), and gives the float32 loss. Outside autocast it is
    the portable definition, as called (and checked so by the conformance suite). torch is
    imported on the first call::

        Kernel(loss="nt_xent_loss", backend="torch", function=torch_autocast(nt_xent_loss), name="torch")
    """
    return _deferred(lambda: _import(f"{__name__}.torch").in_float32_under_autocast(loss),
                     loss.spec.name)  # type: ignore[attr-defined]


def switched_on(switch: str) -> bool:
    """Whether a family of kernels is on: its environment variable (read as ``LOSSREG_KERNELS`` is:
    1, true, yes, on / 0, false, no, off; anything else warns), else on unless ``OFF_UNTIL_FAST``."""
    return _env_switch(switch, switch not in OFF_UNTIL_FAST)


def _off(switch: str) -> str:
    if switched_on(switch):
        return ""
    if os.environ.get(switch, "").strip():  # set, and not on: off as written, or a typo (warned) for the default
        return f"switched off by {switch}={os.environ[switch]}"
    return f"off by default: {OFF_UNTIL_FAST[switch]}; {switch}=1 switches it on"


def _triton_ce(*arrays: Any, **options: Any) -> Any:
    """The Triton cross-entropy (CUDA only): declines when Triton or CUDA is missing."""
    if "ok" not in _triton_ce.__dict__:
        _triton_ce.ok = _triton_usable()  # type: ignore[attr-defined]
    if not _triton_ce.ok:  # type: ignore[attr-defined]
        return NotImplemented
    from .triton_ce import cross_entropy

    return cross_entropy(*arrays, **options)


def _triton_usable() -> bool:
    if importlib.util.find_spec("triton") is None:
        return False
    import torch

    return torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET", "0") == "1"


@hookimpl
def lossreg_kernels() -> list[Kernel]:
    kernels = [Kernel(loss, "numpy", _kernel("numpy", f"{__name__}.numpy", loss), name="numpy")
               for loss in _NUMPY_LOSSES]
    if importlib.util.find_spec("cupy") is not None:
        why = _off(CUPY_SWITCH)
        kernels += [Kernel(loss, "cupy", _lazy(f"{__name__}.cupy", loss) if why else _kernel("cupy", f"{__name__}.cupy", loss),
                           name="cupy", disabled=why) for loss in _CUPY_LOSSES]
    if importlib.util.find_spec("torch") is not None:
        # Triton first: the dispatcher takes the last kernel of a loss, and the torch one already
        # uses Triton on CUDA; the separate entry lets the conformance suite check it on its own.
        if importlib.util.find_spec("triton") is not None:
            kernels.append(Kernel("cross_entropy", "torch", _triton_ce, name="triton", disabled=_off(CE_TRITON_SWITCH)))
        kernels += [Kernel(loss, "torch", _kernel("torch", f"{__name__}.torch", loss), name="torch")
                    for loss in _TORCH_LOSSES]
        kernels.append(Kernel("linear_cross_entropy", "torch", _kernel("torch", f"{__name__}.torch_lce",
                                                                       "linear_cross_entropy"), name="torch"))
    if importlib.util.find_spec("jax") is not None:
        kernels += [Kernel(loss, "jax", _kernel("jax", f"{__name__}.jax", loss), name="jax") for loss in _JAX_LOSSES]
        kernels.append(Kernel("linear_cross_entropy", "jax", _kernel("jax", f"{__name__}.jax_lce",
                                                                     "linear_cross_entropy"), name="jax"))
        kernels.append(Kernel("ctc_loss", "jax", _kernel("jax", f"{__name__}.jax_ctc", "ctc_loss"), name="jax"))
    if importlib.util.find_spec("dask") is not None:
        kernels.append(Kernel("ctc_loss", "dask", _kernel("dask", f"{__name__}.dask_ctc", "ctc_loss"), name="dask"))
    return kernels
