"""kl_div, poisson_nll_loss and gaussian_nll_loss against torch.nn.functional: random inputs, every option, errors."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from parity import check_parity

import lossreg

REDUCTIONS = ("none", "mean", "sum")
SHAPES = ((), (4,), (3, 5), (2, 3, 2), (0,), (0, 3))
SEEDS = range(20)


def _kl(input, target, **options):
    with warnings.catch_warnings():  # torch warns that "mean" is not the KL divergence
        warnings.simplefilter("ignore", UserWarning)
        return F.kl_div(input, target, **options)


def _kl_inputs(seed: int, shape: tuple[int, ...], log_target: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.log(rng.uniform(0.01, 1.0, size=shape))
    if log_target:
        return {"input": x, "target": rng.normal(scale=2.0, size=shape)}
    t = rng.uniform(0.0, 1.0, size=shape)
    return {"input": x, "target": np.where(rng.uniform(size=shape) < 0.3, 0.0, t)}  # exact zeros: 0·log 0


@pytest.mark.parametrize(("log_target", "reduction"),
                         list(itertools.product((False, True), (*REDUCTIONS, "batchmean"))))
def test_kl_div_matches_torch(log_target, reduction):
    for seed, shape in itertools.product(SEEDS, SHAPES):
        check_parity("kl_div", _kl, _kl_inputs(seed, shape, log_target),
                     {"reduction": reduction, "log_target": log_target})


def test_kl_div_negative_targets_are_nan_as_in_torch():
    x, t = np.log(np.array([0.2, 0.3, 0.5])), np.array([0.5, -0.2, 0.0])
    with np.errstate(invalid="ignore"):
        check_parity("kl_div", _kl, {"input": x, "target": t}, {"reduction": "none"})
    assert torch.isnan(lossreg.kl_div(torch.tensor(x), torch.tensor(t), reduction="none")[1])


def _poisson_inputs(seed: int, shape: tuple[int, ...], log_input: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape) if log_input else rng.uniform(0.0, 4.0, size=shape)
    # Counts (0, 1 and above, Stirling's term off and on), and on odd seeds real-valued targets.
    t = rng.poisson(1.5, size=shape).astype("float64") if seed % 2 == 0 else rng.uniform(0.0, 4.0, size=shape)
    return {"input": x, "target": t}


@pytest.mark.parametrize(("log_input", "full", "eps", "reduction"),
                         list(itertools.product((True, False), (False, True), (1e-8, 0.25), REDUCTIONS)))
def test_poisson_nll_matches_torch(log_input, full, eps, reduction):
    for seed, shape in itertools.product(SEEDS, SHAPES):
        check_parity("poisson_nll_loss", F.poisson_nll_loss, _poisson_inputs(seed, shape, log_input),
                     {"log_input": log_input, "full": full, "eps": eps, "reduction": reduction})


# (input shape, target shape, var shape): every kind of var shape torch accepts.
GAUSSIAN_LAYOUTS = (
    ((4, 3), (4, 3), (4, 3)), ((4, 3), (4, 3), (4,)), ((4, 3), (4, 3), (4, 1)), ((4, 3), (4, 3), (1, 3)),
    ((4, 3), (4, 1), (4, 3)), ((4, 3), (1, 3), (4,)), ((2, 3, 2), (2, 3, 2), (2, 3)), ((2, 3, 2), (2, 3, 2), (2, 1, 2)),
    ((5,), (5,), (5,)), ((5,), (5,), (1,)), ((5,), (5,), ()), ((), (), ()), ((0, 3), (0, 3), (0,)), ((4, 0), (4, 0), (4, 1)),
)


@pytest.mark.parametrize(("full", "eps", "reduction"), list(itertools.product((False, True), (1e-6, 0.3), REDUCTIONS)))
def test_gaussian_nll_matches_torch(full, eps, reduction):
    for seed, (x_shape, t_shape, v_shape) in itertools.product(SEEDS, GAUSSIAN_LAYOUTS):
        rng = np.random.default_rng(seed)
        var = rng.uniform(0.0, 2.0, size=v_shape)
        # Some variances below eps, exactly 0 and exactly eps: clamped, the gradient passing the clamp.
        var = np.where(rng.uniform(size=v_shape) < 0.3, rng.choice([0.0, eps / 10, eps], size=v_shape), var)
        inputs = {"input": rng.normal(size=x_shape), "target": rng.normal(size=t_shape), "var": var}
        check_parity("gaussian_nll_loss", F.gaussian_nll_loss, inputs, {"full": full, "eps": eps, "reduction": reduction})


@pytest.mark.parametrize("var", (0.0, 1e-9, 0.5, 2.0))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gaussian_nll_python_number_var(var, reduction):
    rng = np.random.default_rng(7)
    x, t = torch.tensor(rng.normal(size=(4, 3)), requires_grad=True), torch.tensor(rng.normal(size=(4, 3)))
    ours = lossreg.gaussian_nll_loss(x, t, var, reduction=reduction)
    want = F.gaussian_nll_loss(x, t, var, reduction=reduction)
    torch.testing.assert_close(ours, want, rtol=1e-12, atol=0)
    torch.testing.assert_close(torch.autograd.grad(ours.sum(), x)[0], torch.autograd.grad(want.sum(), x)[0])
    np.testing.assert_allclose(lossreg.GaussianNLLLoss(reduction=reduction)(x.detach().numpy(), t.numpy(), var),
                               want.detach().numpy(), rtol=1e-12)


def test_gaussian_var_gradient_passes_the_clamp():
    x, t = torch.tensor([0.5, 0.0], dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    var = torch.tensor([0.0, 1e-9], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(lossreg.gaussian_nll_loss(x, t, var, reduction="sum"), var)
    eps = 1e-6
    np.testing.assert_allclose(grad.numpy(), [0.5 / eps - 0.5 * 0.25 / eps**2, 0.5 / eps], rtol=1e-12)


def test_names_and_class_forms():
    assert {lossreg.spec(n).name for n in ("kl", "KLDivLoss", "kl-divergence", "kld")} == {"kl_div"}
    assert {lossreg.spec(n).name for n in ("poisson", "PoissonNLLLoss", "poisson_nll")} == {"poisson_nll_loss"}
    assert {lossreg.spec(n).name for n in ("gaussian_nll", "GaussianNLLLoss", "gaussian")} == {"gaussian_nll_loss"}
    crit = lossreg.get("kld", reduction="batchmean", log_target=True)
    assert lossreg.from_config(crit.get_config()) == crit
    x, t = _kl_inputs(1, (3, 4), True).values()
    np.testing.assert_allclose(crit(x, t), _kl(torch.tensor(x), torch.tensor(t), reduction="batchmean", log_target=True))


X, Y = np.zeros((4, 3)), np.ones((4, 3))
BAD = {
    "kl shape mismatch": (lambda: lossreg.kl_div(X, Y[:, :1]), lossreg.LossValueError,
                          "kl_div: argument 'target' expected the shape of 'input' (4, 3), got shape (4, 1)"),
    "kl bad reduction": (lambda: lossreg.kl_div(X, Y, reduction="batch_mean"), lossreg.LossValueError,
                         "kl_div: argument 'reduction' expected one of 'none', 'mean', 'sum', 'batchmean', got 'batch_mean'"),
    "kl log_target": (lambda: lossreg.kl_div(X, Y, log_target="yes"), lossreg.LossTypeError,
                      "kl_div: argument 'log_target' expected True or False, got str 'yes'"),
    "kl integer target": (lambda: lossreg.kl_div(X, np.ones((4, 3), dtype=int)), lossreg.LossTypeError,
                          "kl_div: argument 'target' expected a real floating-point array"),
    "poisson integer input": (lambda: lossreg.poisson_nll_loss(np.zeros(3, dtype=int), np.zeros(3)),
                              lossreg.LossTypeError, "poisson_nll_loss: argument 'input' expected a real floating-point"),
    "poisson shape mismatch": (lambda: lossreg.poisson_nll_loss(X, Y.T), lossreg.LossValueError,
                               "poisson_nll_loss: argument 'target' expected the shape of 'input' (4, 3), got shape (3, 4)"),
    "poisson negative eps": (lambda: lossreg.poisson_nll_loss(X, Y, eps=-1.0), lossreg.LossValueError,
                             "poisson_nll_loss: argument 'eps' expected a number in [0.0, inf], got -1.0"),
    "poisson full": (lambda: lossreg.poisson_nll_loss(X, Y, full=1), lossreg.LossTypeError,
                     "poisson_nll_loss: argument 'full' expected True or False, got int 1"),
    "poisson bad reduction": (lambda: lossreg.poisson_nll_loss(X, Y, reduction="batchmean"), lossreg.LossValueError,
                              "poisson_nll_loss: argument 'reduction' expected one of 'none', 'mean', 'sum'"),
    "gaussian negative var": (lambda: lossreg.gaussian_nll_loss(X, Y, np.array([1.0, -0.5, 2.0, 1.0])),
                              lossreg.LossValueError, "gaussian_nll_loss: argument 'var' expected non-negative variances, got -0.5"),
    "gaussian negative number var": (lambda: lossreg.gaussian_nll_loss(X, Y, -1.0), lossreg.LossValueError,
                                     "gaussian_nll_loss: argument 'var' expected a non-negative variance, got -1.0"),
    "gaussian var shape": (lambda: lossreg.gaussian_nll_loss(X, Y, np.ones((1, 1))), lossreg.LossValueError,
                           "gaussian_nll_loss: argument 'var' expected the input's shape (4, 3), that shape without its "
                           "last axis, or with one axis of size 1, got shape (1, 1)"),
    "gaussian 0-d var for a batch": (lambda: lossreg.gaussian_nll_loss(X, Y, np.array(1.0)), lossreg.LossValueError,
                                     "argument 'var' expected the input's shape (4, 3)"),
    "gaussian target shape": (lambda: lossreg.gaussian_nll_loss(X[:, :1], Y, np.ones((4, 1))), lossreg.LossValueError,
                              "gaussian_nll_loss: argument 'target' expected the input's shape (4, 1), or with axes of "
                              "size 1 that broadcast to it, got shape (4, 3)"),
    "gaussian integer var": (lambda: lossreg.gaussian_nll_loss(X, Y, np.ones((4, 3), dtype=int)), lossreg.LossTypeError,
                             "gaussian_nll_loss: argument 'var' expected a real floating-point array"),
    "gaussian list var": (lambda: lossreg.gaussian_nll_loss(X, Y, [1.0, 2.0]), lossreg.LossTypeError,
                          "gaussian_nll_loss: argument 'var' expected an array"),
    "gaussian negative eps": (lambda: lossreg.gaussian_nll_loss(X, Y, Y, eps=-1e-6), lossreg.LossValueError,
                              "gaussian_nll_loss: argument 'eps' expected a number in [0.0, inf], got -1e-06"),
    "gaussian bad reduction": (lambda: lossreg.gaussian_nll_loss(X, Y, Y, reduction="batchmean"), lossreg.LossValueError,
                               "gaussian_nll_loss: argument 'reduction' expected one of 'none', 'mean', 'sum'"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_is_reported(case):
    call, error, text = BAD[case]
    with pytest.raises(error) as info:
        call()
    assert text in str(info.value)


def test_lazy_arrays_turn_negative_var_into_nan():
    da = pytest.importorskip("dask.array")
    var = da.from_array(np.array([1.0, -0.5, 2.0, 1.0]), chunks=2)
    got = lossreg.gaussian_nll_loss(da.from_array(X, chunks=2), da.from_array(Y, chunks=2), var, reduction="none").compute()
    assert np.isnan(got[1]).all() and np.isfinite(got[[0, 2, 3]]).all()
