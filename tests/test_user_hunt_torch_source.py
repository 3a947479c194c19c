"""lossreg read line by line against torch's own implementations of its losses.

A PyTorch developer's review: each detail below was read in torch 2.13's ``torch/nn/functional.py``,
its decompositions (``torch/_decomp/decompositions.py``, ``torch/_refs``) or ATen's ``Loss*.cpp``,
then compared with lossreg, values and gradients, on torch tensors (the default path and the
portable definition, ``use_kernels(False)``) and, for the portable definition in float64, on
NumPy and JAX. What this file pins:

- ``F.mse_loss`` / ``F.l1_loss`` with a per-element ``weight`` compute "mean" as
  ``sum(w ℓ) / sum(w)``, one plain division: where the weights sum to 0 the gradients are
  torch's (NaN, or ±inf where they cancel), not 0. The same division, ATen's ``total_weight``,
  for ``nll_loss`` and ``cross_entropy`` whose active class weights sum to 0, on torch tensors
  whichever path computes them (``toolkit.divide``).
- ``smooth_l1_loss``'s linear part is ATen's ``z - 0.5 β``: it never squares β, so a large β
  (past 2.6e19 in float32) gives torch's finite loss and gradient, not inf, on NumPy, JAX and
  the portable torch path.
- ``binary_cross_entropy`` takes ``log1p(-x)`` for ``log(1 - x)``, as ATen's kernel and torch's
  decomposition do: ``1 - x`` rounded a small probability away (float32: the loss of 1e-8
  against 0 was 0), on NumPy (its kernel), JAX and the portable torch path.
- ``cross_entropy`` of probability targets takes any negative ``ignore_index`` (ATen checks
  ``ignore_index < 0``; ``CrossEntropyLoss(ignore_index=-1)`` with mixup labels) and refuses a
  non-negative one with a lossreg error, as torch refuses it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lossreg
import lossreg.torch

DTYPES = [torch.float32, torch.float64]


def _value_and_grads(fn, arrays, differentiable):
    arrays = [a.detach().clone().requires_grad_(i in differentiable) for i, a in enumerate(arrays)]
    out = fn(*arrays)
    grads = torch.autograd.grad(out.sum(), [arrays[i] for i in differentiable], allow_unused=True)
    return out.detach(), grads


def _assert_same(got, want):
    (value, grads), (want_value, want_grads) = got, want
    assert value.dtype == want_value.dtype and value.shape == want_value.shape
    torch.testing.assert_close(value, want_value, equal_nan=True)
    for g, w in zip(grads, want_grads):
        torch.testing.assert_close(g, w, equal_nan=True)


# --- weighted means over a zero total weight: torch's plain division --------------------------------

ZERO_SUMS = {
    "all weights 0": [0.0, 0.0, 0.0],
    "weights that cancel": [1.0, 0.0, -1.0],
}


@pytest.mark.parametrize("kernels", [True, False], ids=["default", "portable"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("weights", ZERO_SUMS)
@pytest.mark.parametrize("loss", ["mse_loss", "l1_loss"])
def test_weighted_mean_over_a_zero_weight_sum_has_torchs_gradients(loss, weights, dtype, kernels):
    """torch: ``torch.sum(w ℓ) / torch.sum(w)``; the gradient of ``x / 0`` is ±inf, times a weight
    of 0 NaN."""
    x = torch.tensor([0.5, 1.0, 2.0], dtype=dtype)
    y = torch.tensor([0.0, 1.5, 1.0], dtype=dtype)
    w = torch.tensor(ZERO_SUMS[weights], dtype=dtype)
    want = _value_and_grads(lambda a, b, c: getattr(F, loss)(a, b, weight=c), [x, y, w], (0, 1, 2))
    with lossreg.use_kernels(kernels):
        got = _value_and_grads(lambda a, b, c: getattr(lossreg, loss)(a, b, weight=c), [x, y, w], (0, 1, 2))
    _assert_same(got, want)


CLASS_ZERO_SUMS = {  # (targets, class weights): the active weights sum to 0
    "active targets of weight 0": ([0, 1, -100], [0.0, 0.0, 1.0, 1.0]),
    "weights that cancel": ([0, 1, -100], [1.0, -1.0, 1.0, 1.0]),
    "every target ignored": ([-100, -100, -100], [1.0, 2.0, 3.0, 4.0]),
}


# (loss, options): label smoothing adds torch's smoothing term over the same total weight. Not
# pinned: weights that cancel with label smoothing (torch's row gradient is NaN throughout, the
# portable definition's ±inf where a class's own weight decides the sign).
CLASS_LOSSES = [("nll_loss", {}), ("cross_entropy", {}), ("cross_entropy", {"label_smoothing": 0.2})]


@pytest.mark.parametrize("kernels", [True, False], ids=["default", "portable"])
@pytest.mark.parametrize(("loss", "options", "case"), [
    pytest.param(loss, options, case, id=f"{loss}-{options}-{case}") for loss, options in CLASS_LOSSES
    for case in CLASS_ZERO_SUMS if not (options and case == "weights that cancel")])
def test_class_weighted_mean_over_a_zero_total_weight_has_torchs_gradients(loss, options, case, kernels):
    """ATen: ``total_weight = Σ w[y_n]`` over the active targets, ``grad / total_weight``."""
    y, weight = CLASS_ZERO_SUMS[case]
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    w = torch.tensor(weight, dtype=torch.float64)
    want = _value_and_grads(lambda a: getattr(F, loss)(a, torch.tensor(y), weight=w, **options), [x], (0,))
    with lossreg.use_kernels(kernels):
        got = _value_and_grads(lambda a: getattr(lossreg, loss)(a, torch.tensor(y), weight=w, **options), [x], (0,))
    _assert_same(got, want)


# --- smooth L1: torch's order of operations, z - 0.5 β outside -------------------------------------

# (dtype, β, residuals): ATen's smooth_l1 is ``z < β ? 0.5 z² / β : z - 0.5 β``; its linear part
# never squares β, so it stays finite for any β whose losses are finite.
LARGE_BETAS = [("float32", 1e20, [2e20, -5e20, 1e19, 3e38]), ("float64", 1e160, [2e160, -3e160, 1e150, 1e308])]


@pytest.mark.parametrize(("dtype", "beta", "residuals"), LARGE_BETAS, ids=["float32", "float64"])
def test_smooth_l1_linear_part_does_not_square_beta(dtype, beta, residuals):
    jax = pytest.importorskip("jax")
    d = np.array(residuals, dtype=dtype)
    want_value, (want_grad,) = _value_and_grads(
        lambda a: F.smooth_l1_loss(a, torch.zeros_like(a), beta=beta, reduction="none"), [torch.from_numpy(d)], (0,))
    assert torch.isfinite(want_value).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumPy warns of an overflow in the square
        got = lossreg.smooth_l1_loss(d, np.zeros_like(d), beta=beta, reduction="none")
    np.testing.assert_allclose(got, want_value.numpy(), rtol=1e-6)
    with lossreg.use_kernels(False):
        value, (grad,) = _value_and_grads(
            lambda a: lossreg.smooth_l1_loss(a, torch.zeros_like(a), beta=beta, reduction="none"),
            [torch.from_numpy(d)], (0,))
    _assert_same((value, (grad,)), (want_value, (want_grad,)))
    with jax.enable_x64(True):
        jd = jax.numpy.asarray(d)
        jax_value = lossreg.smooth_l1_loss(jd, jax.numpy.zeros_like(jd), beta=beta, reduction="none")
        jax_grad = jax.grad(lambda a: lossreg.smooth_l1_loss(a, jax.numpy.zeros_like(a), beta=beta,
                                                             reduction="sum"))(jd)
    np.testing.assert_allclose(np.asarray(jax_value), want_value.numpy(), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(jax_grad), want_grad.numpy(), rtol=1e-6)


# --- BCE: log1p(-x), not log(1 - x) -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bce_of_a_small_probability_takes_log1p_as_torch(dtype):
    """ATen's CPU kernel and torch's decomposition (``torch/_decomp/decompositions.py``) compute
    ``(y - 1) max(log1p(-x), -100) - y max(log x, -100)``: ``1 - x`` rounds away a small ``x``
    (in float32 the loss of x = 1e-8 against 0 became 0, of 1e-5 0.14 % too large)."""
    jax = pytest.importorskip("jax")
    x = np.array([1e-8, 3e-8, 1e-5, 2.5e-4, 1e-12, 1e-13], dtype=dtype)
    y = np.array([0.0, 0.0, 0.0, 0.5, 0.0, 0.25], dtype=dtype)
    want = F.binary_cross_entropy(torch.from_numpy(x), torch.from_numpy(y), reduction="none").numpy()
    rtol = 1e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(lossreg.binary_cross_entropy(x, y, reduction="none"), want, rtol=rtol)
    with lossreg.use_kernels(False):
        got = lossreg.binary_cross_entropy(torch.from_numpy(x), torch.from_numpy(y), reduction="none")
    np.testing.assert_allclose(got.numpy(), want, rtol=rtol)
    with jax.enable_x64(True):
        got = lossreg.binary_cross_entropy(jax.numpy.asarray(x), jax.numpy.asarray(y), reduction="none")
    np.testing.assert_allclose(np.asarray(got), want, rtol=rtol)


# --- cross-entropy of probabilities: any negative ignore_index, as ATen checks ----------------------


@pytest.mark.parametrize("ignore_index", [-1, -100, -7])
@pytest.mark.parametrize("kernels", [True, False], ids=["default", "portable"])
def test_probability_targets_take_any_negative_ignore_index(ignore_index, kernels):
    """ATen's ``cross_entropy_loss``: ``TORCH_CHECK(ignore_index < 0, "ignore_index is not supported
    for floating point target")``. A ``CrossEntropyLoss(ignore_index=-1)`` (a common setting) fed
    soft labels (mixup) works in torch and must work here."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, dtype=torch.float64, generator=g)
    p = torch.softmax(torch.randn(3, 4, dtype=torch.float64, generator=g), 1)
    options = {"ignore_index": ignore_index, "label_smoothing": 0.1}
    want = _value_and_grads(lambda a, b: F.cross_entropy(a, b, **options), [x, p], (0, 1))
    with lossreg.use_kernels(kernels):
        got = _value_and_grads(lambda a, b: lossreg.cross_entropy(a, b, **options), [x, p], (0, 1))
        module = lossreg.torch.CrossEntropyLoss(ignore_index=ignore_index)
        torch.testing.assert_close(module(x, p), torch.nn.CrossEntropyLoss(ignore_index=ignore_index)(x, p))
    _assert_same(got, want)
    np.testing.assert_allclose(lossreg.cross_entropy(x.numpy(), p.numpy(), **options), want[0].numpy(), rtol=1e-12)


@pytest.mark.parametrize("ignore_index", [0, 3, 10])
def test_probability_targets_refuse_a_non_negative_ignore_index_as_torch(ignore_index):
    x, p = torch.zeros(2, 4), torch.full((2, 4), 0.25)
    with pytest.raises(RuntimeError, match="ignore_index is not supported"):
        F.cross_entropy(x, p, ignore_index=ignore_index)
    with pytest.raises(lossreg.LossValueError, match="cross_entropy: argument 'ignore_index'.*negative.*got "
                                                     f"{ignore_index}"):
        lossreg.cross_entropy(x, p, ignore_index=ignore_index)


# --- F.huber_loss(weight=...): ATen's huber_loss times the weights, second derivatives included ------


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_weighted_huber_on_torch_tensors_has_torchs_second_derivatives(reduction):
    """torch 2.13's ``F.huber_loss`` with ``weight`` multiplies ATen's unreduced ``huber_loss`` by
    the weights; its Hessian is ATen's double backward: ``w`` at a residual of 0, 0 at ``|d| = δ``
    (the portable formula gives 0 and ``w / 4`` there, see the README), as without weights."""
    x = torch.tensor([0.0, 1.0, -1.0, 0.3, 2.0, -3.0], dtype=torch.float64)
    y = torch.zeros(6, dtype=torch.float64)
    w = torch.tensor([1.0, 2.0, 3.0, 0.5, 4.0, 0.0], dtype=torch.float64)

    def loss(fn):
        return lambda a, b, c: fn(a, b, weight=c, reduction=reduction, delta=1.0).sum()

    want = torch.autograd.functional.hessian(loss(F.huber_loss), (x, y, w))
    got = torch.autograd.functional.hessian(loss(lossreg.huber_loss), (x, y, w))
    for row_got, row_want in zip(got, want):
        for g, h in zip(row_got, row_want):
            torch.testing.assert_close(g, h)
    _assert_same(_value_and_grads(lambda a, b, c: lossreg.huber_loss(a, b, weight=c, reduction=reduction),
                                  [x, y, w], (0, 1, 2)),
                 _value_and_grads(lambda a, b, c: F.huber_loss(a, b, weight=c, reduction=reduction),
                                  [x, y, w], (0, 1, 2)))
