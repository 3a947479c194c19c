"""huber_loss and smooth_l1_loss against torch.nn.functional: random inputs, every option, errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch.nn.functional as F
from parity import check_parity

import lossreg

REDUCTIONS = ("none", "mean", "sum")
SHAPES = ((), (4,), (3, 5), (2, 3, 2), (0,))
SEEDS = range(20)


def _pair(seed: int, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    if seed % 2:  # on a grid of halves: ties (d = 0) and |d| exactly at the threshold happen
        return {"input": rng.integers(-6, 7, size=shape) / 2, "target": rng.integers(-6, 7, size=shape) / 2}
    return {"input": 2 * rng.normal(size=shape), "target": rng.normal(size=shape)}


@pytest.mark.parametrize(("beta", "reduction"), list(itertools.product((0.0, 0.5, 1.0, 2.5, math.inf), REDUCTIONS)))
def test_smooth_l1_matches_torch(beta, reduction):
    for seed, shape in itertools.product(SEEDS, SHAPES):
        check_parity("smooth_l1_loss", F.smooth_l1_loss, _pair(seed, shape), {"reduction": reduction, "beta": beta})


@pytest.mark.parametrize(("delta", "reduction", "weighted"),
                         list(itertools.product((0.5, 1.0, 2.5, math.inf), REDUCTIONS, (False, True))))
def test_huber_matches_torch(delta, reduction, weighted):
    for seed, shape in itertools.product(SEEDS, SHAPES):
        options = {"reduction": reduction, "delta": delta}
        if weighted:
            options["weight"] = np.random.default_rng(seed + 1000).uniform(0.0, 2.0, size=shape)
        check_parity("huber_loss", F.huber_loss, _pair(seed, shape), options)


# d = x - y at 0, inside, at the threshold (1.0 here), outside, at ±inf and NaN: the branch-free
# form 0.5 q² + δ (|d| - q), q = min(|d|, δ), must give torch's value and gradient at each.
EDGES = (0.0, 0.25, -0.25, 1.0, -1.0, 2.5, -2.5, math.inf, -math.inf, math.nan)


@pytest.mark.parametrize(("loss", "reference", "option"), [("huber_loss", F.huber_loss, "delta"),
                                                           ("smooth_l1_loss", F.smooth_l1_loss, "beta")])
@pytest.mark.parametrize("threshold", (0.5, 1.0))
def test_value_and_gradient_at_zero_the_threshold_the_infinities_and_nan_are_torchs(loss, reference, option, threshold):
    import jax
    import torch

    options = {option: threshold, "reduction": "none"}
    x = torch.tensor(EDGES, dtype=torch.float32, requires_grad=True)
    y = torch.zeros(len(EDGES), dtype=torch.float32)
    want = reference(x, y, **options)
    (want_grad,) = torch.autograd.grad(want.sum(), x)
    x2 = x.detach().clone().requires_grad_(True)
    got = getattr(lossreg, loss)(x2, y, **options)
    (got_grad,) = torch.autograd.grad(got.sum(), x2)
    torch.testing.assert_close(got, want, equal_nan=True)
    torch.testing.assert_close(got_grad, want_grad, equal_nan=True)
    xj, yj = jax.numpy.asarray(x.detach().numpy()), jax.numpy.asarray(y.numpy())
    np.testing.assert_allclose(getattr(lossreg, loss)(xj, yj, **options), want.detach().numpy(), rtol=1e-6)
    jax_grad = jax.grad(lambda a: getattr(lossreg, loss)(a, yj, **options).sum())(xj)
    np.testing.assert_allclose(jax_grad, want_grad.numpy(), rtol=1e-6)


def test_defaults_match_torch():
    for seed in SEEDS:
        check_parity("smooth_l1_loss", F.smooth_l1_loss, _pair(seed, (3, 4)))
        check_parity("huber_loss", F.huber_loss, _pair(seed, (3, 4)))


@pytest.mark.parametrize("delta", (0.3, 1.0, 4.0))
def test_huber_is_delta_times_smooth_l1(delta):
    x, y = _pair(3, (50,)).values()
    np.testing.assert_allclose(lossreg.huber_loss(x, y, delta=delta, reduction="none"),
                               delta * lossreg.smooth_l1_loss(x, y, beta=delta, reduction="none"), rtol=1e-12)


def test_beta_zero_is_l1_exactly():
    x, y = _pair(5, (40,)).values()
    assert np.array_equal(lossreg.smooth_l1_loss(x, y, beta=0.0, reduction="none"), lossreg.l1_loss(x, y, reduction="none"))


def test_names_and_class_forms():
    x, y = _pair(0, (6,)).values()
    assert lossreg.get("huber").spec.name == lossreg.get("HuberLoss").spec.name == "huber_loss"
    assert lossreg.get("smooth-l1").spec.name == lossreg.get("SmoothL1Loss").spec.name == "smooth_l1_loss"
    assert np.allclose(lossreg.get("huber", delta=0.5)(x, y), lossreg.huber_loss(x, y, delta=0.5))
    assert lossreg.from_config(lossreg.SmoothL1Loss(beta=0.2).get_config()) == lossreg.SmoothL1Loss(beta=0.2)


X, Y = np.zeros((4, 3)), np.ones((4, 3))
BAD = {
    "huber zero delta": (lambda: lossreg.huber_loss(X, Y, delta=0), lossreg.LossValueError,
                         "huber_loss: argument 'delta' expected a number > 0, got 0"),
    "huber negative delta": (lambda: lossreg.huber_loss(X, Y, delta=-1.0), lossreg.LossValueError,
                             "huber_loss: argument 'delta' expected a number > 0, got -1.0"),
    "huber nan delta": (lambda: lossreg.huber_loss(X, Y, delta=math.nan), lossreg.LossValueError,
                        "huber_loss: argument 'delta' expected a number, got nan"),
    "smooth_l1 negative beta": (lambda: lossreg.smooth_l1_loss(X, Y, beta=-0.1), lossreg.LossValueError,
                                "smooth_l1_loss: argument 'beta' expected a number in [0.0, inf], got -0.1"),
    "smooth_l1 string beta": (lambda: lossreg.smooth_l1_loss(X, Y, beta="1"), lossreg.LossValueError,
                              "smooth_l1_loss: argument 'beta' expected a number"),
    "huber shape mismatch": (lambda: lossreg.huber_loss(X, Y[:, :1]), lossreg.LossValueError,
                             "huber_loss: argument 'target' expected the shape of 'input' (4, 3), got shape (4, 1)"),
    "smooth_l1 integer input": (lambda: lossreg.smooth_l1_loss(np.zeros(3, dtype=int), np.zeros(3)),
                                lossreg.LossTypeError, "smooth_l1_loss: argument 'input' expected a real floating-point"),
    "smooth_l1 bad reduction": (lambda: lossreg.smooth_l1_loss(X, Y, reduction="avg"), lossreg.LossValueError,
                                "smooth_l1_loss: argument 'reduction' expected one of 'none', 'mean', 'sum', got 'avg'"),
    "huber weight shape": (lambda: lossreg.huber_loss(X, Y, weight=np.ones(3)), lossreg.LossValueError,
                           "huber_loss: argument 'weight' expected the shape of 'input' (4, 3), got shape (3,)"),
    "huber integer weight": (lambda: lossreg.huber_loss(X, Y, weight=np.ones((4, 3), dtype=int)), lossreg.LossTypeError,
                             "huber_loss: argument 'weight' expected a real floating-point array"),
    "huber list weight": (lambda: lossreg.huber_loss(X, Y, weight=1.0), lossreg.LossTypeError,
                          "huber_loss: argument 'weight' expected an array"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_is_reported(case):
    call, error, text = BAD[case]
    with pytest.raises(error) as info:
        call()
    assert text in str(info.value)
