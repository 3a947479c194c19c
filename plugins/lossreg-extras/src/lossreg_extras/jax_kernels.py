"""JAX kernels of the extras; imported on a kernel's first call (registering one imports no JAX).

Checked by the conformance suite against the golden cases, on ``jax`` (values) and ``jax_jit``
(values and gradients), like every kernel.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from lossreg import toolkit
from lossreg.kernels import jax_jit

from . import classification, regression
from .regression import log_cosh


@jax.custom_jvp
def _log_cosh(d: Any) -> Any:
    return log_cosh(jnp, d)


@_log_cosh.defjvp
def _log_cosh_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> tuple[Any, Any]:
    # The derivative, tanh(d), said once: differentiated through its min, max, expm1, exp and log1p,
    # JAX keeps three (N, ...) residuals for the backward pass where one is needed (1.3x optax's
    # forward+grad at 2048x8192 under jit).
    (d,), (t,) = primals, tangents
    return _log_cosh(d), jnp.tanh(d) * t


def _log_cosh_loss(input: Any, target: Any, /, *, reduction: str = "mean") -> Any:
    """:func:`lossreg_extras.log_cosh_loss` with its derivative given: ``tanh(x - y)``."""
    xp, x, y, dtype = toolkit.pointwise_inputs("log_cosh_loss", input, target, reduction)
    return toolkit.reduce(xp, _log_cosh(x - y), reduction, dtype)


# Compiled whole for eager calls, as the catalogue's JAX kernels (lossreg.kernels.jax): op by op,
# the custom derivative's dispatch alone costs eager JAX more than optax's whole compiled call.
log_cosh_loss = jax_jit(regression.log_cosh_loss, _log_cosh_loss)


@jax.custom_jvp
def _sparsemax_losses(x: Any, target: Any) -> Any:
    return classification.sparsemax_parts(jnp, x, target)[0]


@_sparsemax_losses.defjvp
def _sparsemax_losses_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> tuple[Any, Any]:
    # ∂ℓ/∂x = sparsemax(x) - onehot(target), said once. Differentiated through the sort, JAX
    # sorts (value, index) pairs to carry the permutation back and scatters through it: 1.2x
    # optax's forward+grad at 2048x8192 under jit, whose projection states its derivative too.
    (x, target), (dx, _) = primals, tangents
    losses, z, tau = classification.sparsemax_parts(jnp, x, target)
    return losses, jnp.sum(jnp.maximum(z - tau, 0.0) * dx, axis=1) - toolkit.take_class(jnp, dx, target)


def _sparsemax_loss(input: Any, target: Any, /, *, ignore_index: int = -100, reduction: str = "mean") -> Any:
    """:func:`lossreg_extras.sparsemax_loss` with its derivative given: ``sparsemax(x) - onehot(target)``."""
    cls = toolkit.class_inputs("sparsemax_loss", input, target, ignore_index=ignore_index, reduction=reduction)
    if 0 in cls.input.shape:
        return classification.sparsemax_loss.portable(input, target, ignore_index=ignore_index, reduction=reduction)
    return toolkit.reduce_classes(cls, _sparsemax_losses(cls.input, cls.target), reduction)


sparsemax_loss = jax_jit(classification.sparsemax_loss, _sparsemax_loss)
