"""lossreg-extras: regression, classification and contrastive losses beyond torch.nn.

Log-cosh, MAPE, MSLE and quantile (pinball) losses; poly-1 cross-entropy, generalized
cross-entropy, sparsemax loss and z-loss; NT-Xent (InfoNCE). Each is written once against the
Array API. The package also adds the ``numpy_readonly`` conformance backend, which proves that
a loss never writes into its inputs. Installing it is enough: lossreg finds it through its
``lossreg`` entry point.
"""

from __future__ import annotations

from importlib import resources
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from lossreg import Kernel, hookimpl

from .classification import generalized_cross_entropy, poly1_cross_entropy, sparsemax_loss, z_loss
from .contrastive import nt_xent_loss
from .regression import log_cosh_loss, mape_loss, msle_loss, quantile_loss

__all__ = ["generalized_cross_entropy", "log_cosh_loss", "mape_loss", "msle_loss", "nt_xent_loss",
           "poly1_cross_entropy", "quantile_loss", "sparsemax_loss", "z_loss"]
__version__ = "0.1.0"

LOSSES = [log_cosh_loss, mape_loss, msle_loss, quantile_loss, poly1_cross_entropy, generalized_cross_entropy,
          sparsemax_loss, z_loss, nt_xent_loss]


@hookimpl
def lossreg_losses() -> list:
    return LOSSES


def _log_cosh_jax(*arrays: Any, **options: Any) -> Any:
    from .jax_kernels import log_cosh_loss

    return log_cosh_loss(*arrays, **options)


def _sparsemax_jax(*arrays: Any, **options: Any) -> Any:
    from .jax_kernels import sparsemax_loss

    return sparsemax_loss(*arrays, **options)


@hookimpl
def lossreg_kernels() -> list:
    # Checked by conformance like every kernel. NT-Xent's torch kernel keeps its similarities (a
    # matmul, which torch.autocast would run in half precision) and the positive pairs they are
    # compared with in float32 inside autocast, as torch keeps its cross-entropy.
    from lossreg.kernels import jax_jit, torch_autocast

    kernels = []
    if find_spec("torch") is not None:
        kernels.append(Kernel(loss="nt_xent_loss", backend="torch", function=torch_autocast(nt_xent_loss),
                              name="torch"))
    # JAX kernels. Poly-1's optax peer is compiled as a whole; op by op, eager JAX loses to it by
    # its number of dispatches (4x at 4x5), so its kernel is the same definition under jax.jit.
    # Log-cosh's and sparsemax's state their derivatives (jax_kernels.py).
    if find_spec("jax") is None:
        return kernels
    return [*kernels,
            Kernel(loss="poly1_cross_entropy", backend="jax", function=jax_jit(poly1_cross_entropy), name="jax"),
            Kernel(loss="log_cosh_loss", backend="jax", function=_log_cosh_jax, name="jax"),
            Kernel(loss="sparsemax_loss", backend="jax", function=_sparsemax_jax, name="jax")]


@hookimpl
def lossreg_backends() -> list:
    from .backends import NumPyReadOnlyBackend

    return [NumPyReadOnlyBackend()]


@hookimpl
def lossreg_cases() -> list[Path]:
    return [Path(str(resources.files(__name__) / "cases" / "extras.json"))]
