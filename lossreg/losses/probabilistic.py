"""Probabilistic losses: divergences and negative log-likelihoods of distributions."""

from __future__ import annotations

import math
from typing import Any

from .. import toolkit
from ..errors import LossValueError
from ..registry import define_loss


@toolkit.fused
def _xlogx(xp: Any, t: Any) -> Any:
    """``t · log(t)`` with ``0 · log 0 = 0``: torch's ``xlogy(t, t)``, gradient included.

    torch's gradient at t = 0 is NaN (its xlogy backward computes t / t); so is this one, without
    evaluating log(0) (NumPy would warn): √(t - t) is 0 there, with derivative ∞ - ∞.
    Negative t give NaN, as in torch. Elsewhere the root is √1: a √0 in the untaken branch would
    still make a NaN in its backward (0 / 0), which torch's anomaly mode and jax_debug_nans flag.
    Fused (:func:`toolkit.fused`): one program per shape on concrete JAX arrays, not seven.
    """
    zero = t == 0
    nan_slope = xp.sqrt(xp.where(zero, t - t, 1.0))  # scalars, not *_like arrays: fewer eager JAX calls
    return xp.where(zero, nan_slope, t * xp.log(xp.where(zero, 1.0, t)))


@define_loss(
    class_name="KLDivLoss",
    aliases=("kl", "kl_divergence", "kld", "kullback_leibler_divergence"),
    differentiable=("input", "target"),
    reference="torch.nn.KLDivLoss",
)
def kl_div(input: Any, target: Any, /, *, reduction: str = "mean", log_target: bool = False) -> Any:
    r"""Kullback-Leibler divergence of ``target`` from log-probabilities ``input``.

    $$
    \ell_i = t_i \left( \log t_i - x_i \right)
    \qquad \text{or, with log\_target: } \ell_i = e^{t_i} (t_i - x_i)
    $$

    ``ℓ_i = t_i · (log t_i - x_i)`` (0 where t_i = 0, as torch's xlogy), or with
    ``log_target=True``, where ``target`` holds log-probabilities, ``ℓ_i = exp(t_i) · (t_i - x_i)``.
    Reductions: "none", "sum", "mean" (over every element, as torch; it warns that this is not the
    KL divergence, lossreg does not) and "batchmean" (the sum divided by ``input.shape[0]``,
    the mathematical KL divergence per sample; a 0-d input is not divided).

    Shapes: ``input`` and ``target`` of one shape, any number of dimensions; unequal shapes are an
    error (torch broadcasts). Negative targets give NaN and a target of 0 a NaN target gradient
    (``log_target=False``), as in torch.

    Args:
        reduction: "none", "mean" (over every element), "sum", or "batchmean": the sum divided by the batch
            size, the KL divergence proper.
        log_target: whether ``target`` holds log-probabilities rather than probabilities.
    """
    name = "kl_div"
    toolkit.check_reduction(name, reduction, (*toolkit.REDUCTIONS, "batchmean"))
    toolkit.check_flag(name, "log_target", log_target)
    xp, x, t, dtype = toolkit.pointwise_inputs(name, input, target, "none")  # reduction checked above
    # An element's loss reads its own row: of probabilities, on Dask one task per chunk of rows
    # (toolkit.by_rows), where t log t - t x was 10 graph layers a call; of log-probabilities its
    # three operations are as few as the tasks, the result taken from them and their rechunks.
    rows = (None, None) if log_target else toolkit.rows_against(xp, x, x, t)
    losses = toolkit.by_rows(xp, _kl_losses, x, t, rows=rows, log_target=log_target)
    if reduction != "batchmean":
        return toolkit.reduce(xp, losses, reduction, dtype)
    n = x.shape[0] if x.ndim else 1
    total = xp.sum(losses)
    return toolkit.as_dtype(xp, total / n if n else total * math.nan, dtype)


def _kl_losses(xp: Any, x: Any, t: Any, *, log_target: bool) -> Any:
    """:func:`kl_div`'s losses of each element."""
    return xp.exp(t) * (t - x) if log_target else _xlogx(xp, t) - t * x


@define_loss(
    class_name="PoissonNLLLoss",
    aliases=("poisson_nll", "poisson"),
    differentiable=("input", "target"),
    reference="torch.nn.PoissonNLLLoss",
)
def poisson_nll_loss(input: Any, target: Any, /, *, log_input: bool = True, full: bool = False,
                     eps: float = 1e-8, reduction: str = "mean") -> Any:
    r"""Negative log-likelihood of ``target`` under a Poisson distribution of rate ``input``.

    $$
    \ell_i = e^{x_i} - t_i x_i
    \qquad \text{or, with log\_input=False: } \ell_i = x_i - t_i \log(x_i + \varepsilon)
    $$

    ``ℓ_i = exp(x_i) - t_i x_i`` with ``log_input=True`` (``input`` is the log-rate), else
    ``ℓ_i = x_i - t_i log(x_i + eps)``. ``full=True`` adds Stirling's approximation of
    ``log(t_i!)``, ``t_i log t_i - t_i + 0.5 log(2π t_i)``, where ``t_i > 1`` (0 elsewhere).

    Shapes: ``input`` and ``target`` of one shape; unequal shapes are an error (torch
    broadcasts). As in torch, targets are not checked, and with ``full=True`` a target ≤ 0 has a
    NaN gradient.

    Args:
        log_input: whether ``input`` is the log of the rate (True) or the rate itself.
        full: add Stirling's approximation of log(t!), ``t log t - t + 0.5 log(2π t)``, where t > 1.
        eps: added to the rate under the log when ``log_input=False``, ≥ 0.
    """
    name = "poisson_nll_loss"
    toolkit.check_flag(name, "log_input", log_input)
    toolkit.check_flag(name, "full", full)
    toolkit.check_number(name, "eps", eps, 0.0)
    xp, x, t, dtype = toolkit.pointwise_inputs(name, input, target, reduction)
    # An element's loss reads its own row: with Stirling's term, on Dask one task per chunk of rows
    # (toolkit.by_rows), where its operations were 22 to 23 graph layers a call; without it they
    # are three, as few as the tasks, the result taken from them and the rechunks they may need.
    rows = toolkit.rows_against(xp, x, x, t) if full else (None, None)
    losses = toolkit.by_rows(xp, _poisson_losses, x, t, rows=rows, log_input=log_input, full=full, eps=eps)
    return toolkit.reduce(xp, losses, reduction, dtype)


def _poisson_losses(xp: Any, x: Any, t: Any, *, log_input: bool, full: bool, eps: float) -> Any:
    """:func:`poisson_nll_loss`'s losses of each element."""
    losses = xp.exp(x) - t * x if log_input else x - t * xp.log(x + eps)
    if full:
        small = t <= 1
        positive = xp.where(small, xp.ones_like(t), t)  # keeps log(0) out of the masked branch
        stirling = _xlogx(xp, t) - t + 0.5 * xp.log(2 * math.pi * positive)
        losses = losses + xp.where(small, xp.zeros_like(t), stirling)
    return losses


def _var_shape(xp: Any, loss: str, var: Any, input: Any) -> Any:
    """``var`` reshaped to broadcast against ``input``, by torch's rules, or an error."""
    if var.shape == input.shape:
        return var
    if var.shape == input.shape[:-1]:  # one variance per sample: (N, *) for input (N, *, D)
        return xp.expand_dims(var, axis=-1)
    mismatched = [(i, v) for i, v in zip(input.shape, var.shape) if i != v]
    # torch's rule: the mismatched sizes of var sum to 1, as (N, 1) for (N, D); then they must broadcast.
    if var.ndim == input.ndim and sum(v for _, v in mismatched) == 1 and all(1 in m for m in mismatched):
        return var
    raise LossValueError(loss, "var", f"the input's shape {tuple(input.shape)}, that shape without its "
                         "last axis, or with one axis of size 1", f"shape {tuple(var.shape)}")


@toolkit.fused
def _clamp_straight_through(xp: Any, v: Any, *, lo: float) -> Any:
    """``max(v, lo)`` in value, with derivative 1 everywhere, below ``lo`` too.

    torch clamps GaussianNLLLoss's ``var`` in place under ``no_grad``, so its gradient passes the
    clamp unchanged. The array API has no stop-gradient, but floor's derivative is 0 in every
    autodiff library: for ``u`` in [0, 1), ``u - ⌊u·2⁵³⌋/2⁵³`` lies below 2⁻⁵³, so it vanishes
    when added to 1 (in float32 and float64), yet has derivative 1. Fused: one program per shape
    on concrete JAX arrays, not eight (``lo`` is fixed in it, as ``eps`` is per call).
    """
    below = v < lo
    u = xp.where(below, v, xp.zeros_like(v)) / lo
    vanishing = u - xp.floor(u * 2.0**53) / 2.0**53
    return xp.where(below, lo * (1 + vanishing), v)


@define_loss(
    class_name="GaussianNLLLoss",
    aliases=("gaussian_nll", "gaussian", "normal_nll"),
    differentiable=("input", "target", "var"),
    reference="torch.nn.GaussianNLLLoss",
)
def gaussian_nll_loss(input: Any, target: Any, var: Any, /, *, full: bool = False, eps: float = 1e-6,
                      reduction: str = "mean") -> Any:
    r"""Negative log-likelihood of ``target`` under a normal distribution of mean ``input``.

    $$
    \ell_i = \frac{1}{2} \left( \log v_i + \frac{(x_i - t_i)^2}{v_i} \right) \left[ + \frac{1}{2} \log 2\pi \right]
    \qquad v_i = \max(\mathrm{var}_i, \varepsilon)
    $$

    ``ℓ_i = 0.5 (log v_i + (x_i - t_i)² / v_i)``, plus ``0.5 log(2π)`` with ``full=True``, where
    ``v = max(var, eps)``; as in torch, the gradient with respect to ``var`` passes the clamp
    (it is that of ``v``, below ``eps`` too).

    Shapes: ``input`` (N, *) or (*); ``target`` of the input's shape, or with axes of size 1 that
    broadcast to it (torch broadcasts any shapes; lossreg refuses a target that would grow the
    input); ``var`` non-negative (a negative entry is an error), of the input's shape, of that
    shape without its last axis (one variance per sample), of the same number of axes with one of
    them 1 where the input's is not (torch's rule), or a Python number (the same variance for
    every element).

    Args:
        full: add the constant 0.5 log(2π).
        eps: the floor of ``var``, for stability, ≥ 0.
    """
    name = "gaussian_nll_loss"
    toolkit.check_flag(name, "full", full)
    toolkit.check_number(name, "eps", eps, 0.0)
    scalar_var = isinstance(var, (int, float)) and not isinstance(var, bool)
    xp = toolkit.namespace(name, input=input, target=target, **({} if scalar_var else {"var": var}))
    toolkit.check_floating(name, "input", input, xp)
    toolkit.check_floating(name, "target", target, xp)
    toolkit.check_reduction(name, reduction)
    if target.ndim != input.ndim or any(t not in (i, 1) for i, t in zip(input.shape, target.shape)):
        raise LossValueError(name, "target", f"the input's shape {tuple(input.shape)}, or with axes "
                             "of size 1 that broadcast to it", f"shape {tuple(target.shape)}")
    dtype = toolkit.result_type(xp, input, target)
    bad = None
    if scalar_var:
        if not var >= 0:
            raise LossValueError(name, "var", "a non-negative variance", repr(var))
        toolkit.check_number(name, "var", var)  # an int past float64's range (10**400) is refused by name
        work = toolkit.compute_dtype(xp, dtype)
        v = None
    else:
        toolkit.check_floating(name, "var", var, xp)
        var = _var_shape(xp, name, var, input)
        dtype = toolkit.result_type(xp, dtype, var.dtype)
        work = toolkit.compute_dtype(xp, dtype)
        v = toolkit.as_dtype(xp, var, work)
        # Checked in the working dtype: torch has no comparison of its float8 dtypes ("lt_cpu").
        bad = toolkit.check_values(name, "var", v, v < 0, xp, "non-negative variances")
    x, t = toolkit.as_dtype(xp, input, work), toolkit.as_dtype(xp, target, work)
    # An element's loss reads its own row (and a target or variances of one row, read whole): on
    # Dask one task per chunk of rows (toolkit.by_rows), where its operations were 19 graph layers.
    losses = toolkit.by_rows(xp, _gaussian_losses, x, t, v, bad, rows=toolkit.rows_against(xp, x, x, t, v, bad),
                             eps=eps, full=full, var=None if v is not None else max(var, eps))
    return toolkit.reduce(xp, losses, reduction, dtype)


def _gaussian_losses(xp: Any, x: Any, t: Any, v: Any, bad: Any, *, eps: float, full: bool, var: float | None) -> Any:
    """:func:`gaussian_nll_loss`'s losses of each element, of variances ``v`` (NaN where ``bad``),
    or of the one variance ``var`` (already at least ``eps``) where ``v`` is None."""
    if v is None:
        v = xp.full(x.shape, var, dtype=x.dtype, device=toolkit.device(x))
    elif eps > 0:
        v = _clamp_straight_through(xp, v, lo=eps)
    diff = x - t
    losses = 0.5 * (xp.log(v) + diff * diff / v)
    if full:
        losses = losses + 0.5 * math.log(2 * math.pi)
    return toolkit.poison(xp, losses, bad)
