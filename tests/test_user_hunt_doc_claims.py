"""What lossreg says of itself, checked as a user who believes every sentence of it.

Pinned here:

- the formula each built-in loss prints in its docstring (``help(lossreg.<loss>)``), evaluated
  by hand in NumPy float64, is the loss, for every reduction and the options the docstring names
  (weights, ``delta``/``beta``, ``log_input``/``full``, ``log_target``, label smoothing, ``p``,
  ``swap``, ...), and torch 2.13 computes the same number where the docstring says "as torch";
- a ``reduction`` that is not a string (``["mean"]``, an array) is lossreg's ``LossValueError``
  naming the loss and the argument, as the README promises for bad input, on the paths with a
  kernel too (whose fast-path tests used to hash it: a bare ``TypeError: unhashable type``) and
  on the portable path (a two-element array: a bare "truth value ... is ambiguous");
- a class form given a NumPy scalar for an array option (``BCEWithLogitsLoss(pos_weight=neg / pos)``
  with NumPy counts: a np.float64) computes as the functional form does, and ``get_config`` /
  ``from_config`` round-trip a 0-d array option (JSON writes it as a number): both were refused at
  the call, "argument 'pos_weight' expected an array ..., got float";
- the documented differences from torch this hunt found undocumented, now in the README:
  integer targets of ``GaussianNLLLoss`` are refused (torch promotes them), and
  ``label_smoothing`` outside [0, 1] is refused (torch silently ignores a negative one);
- the README's "torch broadcasts them" of unequal input/target shapes holds for every pointwise
  loss it lists but ``BCELoss`` and ``BCEWithLogitsLoss``, which torch refuses too (now said);
- ``TripletMarginWithDistanceLoss``'s ``distance_function`` receives the arrays in the dtype
  the loss computes in (promoted together, half precision as float32), as its docstring says;
- the README's figures of the chunk plans of ``linear_cross_entropy`` at its reference shape
  (N=4096, D=512, V=32000: 128 tokens per chunk for the portable form, 256 for torch on a CPU,
  2048-row weight-gradient blocks, 16 tokens with the whole vocabulary past 2^18 entries on JAX)
  and the memory arithmetic it derives from them (500 MiB of logits, 62.5 MiB of V×D, d_weight
  1/8 and both gradients 0.14 of the logits).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

import lossreg

torch = pytest.importorskip("torch")
F = torch.nn.functional

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
PROSE = " ".join(README.split())  # the README's sentences, whatever their line breaks
REDUCTIONS = ("none", "mean", "sum")


def _reduced(losses, reduction, mean=None):
    return {"none": losses, "sum": losses.sum(), "mean": losses.mean() if mean is None else mean}[reduction]


def _check(got, expected):
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64),
                               rtol=1e-10, atol=1e-13)


def _torch(fn, *arrays, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kl_div's "mean" warning
        tensors = [torch.as_tensor(a) if isinstance(a, np.ndarray) else a for a in arrays]
        opts = {k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
        return fn(*tensors, **opts).numpy()


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _log_softmax(x):
    z = x - x.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


RNG = np.random.default_rng(20261202)
X, Y = RNG.normal(size=(4, 3)), RNG.normal(size=(4, 3))
W_ELEMENT = RNG.uniform(0.1, 2.0, size=(4, 3))
W_CLASS = RNG.uniform(0.1, 2.0, size=3)


# --- the printed formulas, by hand ----------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_formulas_by_hand(reduction):
    # mse_loss / l1_loss: ℓ = w (x - y)² / w |x - y|; "mean" with weight is Σ w ℓ / Σ w
    for fn, torch_fn, term in ((lossreg.mse_loss, F.mse_loss, (X - Y) ** 2),
                               (lossreg.l1_loss, F.l1_loss, np.abs(X - Y))):
        hand = _reduced(term * W_ELEMENT, reduction, (term * W_ELEMENT).sum() / W_ELEMENT.sum())
        _check(fn(X, Y, weight=W_ELEMENT, reduction=reduction), hand)
        _check(_torch(torch_fn, X, Y, weight=W_ELEMENT, reduction=reduction), hand)
        _check(fn(X, Y, reduction=reduction), _reduced(term, reduction))
    d = X - Y
    for delta in (0.25, 1.0, 3.0):
        # huber_loss: 0.5 d² inside, δ (|d| - 0.5 δ) outside; weight multiplies, "mean" is the plain mean
        huber = np.where(np.abs(d) < delta, 0.5 * d * d, delta * (np.abs(d) - 0.5 * delta))
        _check(lossreg.huber_loss(X, Y, delta=delta, weight=W_ELEMENT, reduction=reduction),
               _reduced(huber * W_ELEMENT, reduction))
        _check(_torch(F.huber_loss, X, Y, delta=delta, weight=W_ELEMENT, reduction=reduction),
               _reduced(huber * W_ELEMENT, reduction))
        # smooth_l1_loss: 0.5 d² / β inside, |d| - 0.5 β outside; huber = δ · smooth_l1(beta=δ)
        smooth = np.where(np.abs(d) < delta, 0.5 * d * d / delta, np.abs(d) - 0.5 * delta)
        _check(lossreg.smooth_l1_loss(X, Y, beta=delta, reduction=reduction), _reduced(smooth, reduction))
        _check(lossreg.huber_loss(X, Y, delta=delta, reduction=reduction),
               delta * np.asarray(lossreg.smooth_l1_loss(X, Y, beta=delta, reduction=reduction)))
    # "beta = 0 is exactly l1_loss, as in torch"
    _check(lossreg.smooth_l1_loss(X, Y, beta=0.0, reduction=reduction), lossreg.l1_loss(X, Y, reduction=reduction))
    _check(_torch(F.smooth_l1_loss, X, Y, beta=0.0, reduction=reduction), lossreg.l1_loss(X, Y, reduction=reduction))


@pytest.mark.parametrize("reduction", (*REDUCTIONS, "batchmean"))
def test_kl_div_formulas_by_hand(reduction):
    log_p = _log_softmax(X)
    t = RNG.dirichlet(np.ones(3), size=4)
    t[0, 0] = 0.0  # "0 where t_i = 0, as torch's xlogy"
    plain = np.where(t == 0, 0.0, t * np.log(np.where(t == 0, 1.0, t))) - t * log_p
    log_t = np.log(t + 0.1)
    with_log = np.exp(log_t) * (log_t - log_p)
    for losses, options in ((plain, {}), (with_log, {"log_target": True})):
        target = log_t if options else t
        hand = losses.sum() / 4 if reduction == "batchmean" else _reduced(losses, reduction)
        _check(lossreg.kl_div(log_p, target, reduction=reduction, **options), hand)
        _check(_torch(F.kl_div, log_p, target, reduction=reduction, **options), hand)
    # "a 0-d input is not divided"
    if reduction == "batchmean":
        _check(lossreg.kl_div(np.asarray(-1.0), np.asarray(0.5), reduction=reduction), 0.5 * (math.log(0.5) + 1.0))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("log_input", (True, False))
@pytest.mark.parametrize("full", (False, True))
def test_poisson_nll_formula_by_hand(reduction, log_input, full):
    x = X[0] if log_input else np.abs(X[0])
    t = np.array([0.0, 1.0, 5.5])  # Stirling's term only where t > 1
    losses = np.exp(x) - t * x if log_input else x - t * np.log(x + 1e-8)
    if full:
        safe = np.where(t > 1, t, 1.0)
        losses = losses + np.where(t > 1, safe * np.log(safe) - safe + 0.5 * np.log(2 * np.pi * safe), 0.0)
    options = {"log_input": log_input, "full": full, "reduction": reduction}
    _check(lossreg.poisson_nll_loss(x, t, **options), _reduced(losses, reduction))
    _check(_torch(F.poisson_nll_loss, x, t, **options), _reduced(losses, reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("full", (False, True))
def test_gaussian_nll_formula_by_hand(reduction, full):
    var = RNG.uniform(0.0, 1.0, size=(4, 3))
    var[0, 0] = 1e-9  # below eps = 1e-6: v = max(var, eps)
    v = np.maximum(var, 1e-6)
    losses = 0.5 * (np.log(v) + (X - Y) ** 2 / v) + (0.5 * math.log(2 * math.pi) if full else 0.0)
    _check(lossreg.gaussian_nll_loss(X, Y, var, full=full, reduction=reduction), _reduced(losses, reduction))
    _check(_torch(F.gaussian_nll_loss, X, Y, var, full=full, reduction=reduction), _reduced(losses, reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_formulas_by_hand(reduction):
    p = RNG.uniform(size=(4, 3))
    p[0, 0], p[0, 1] = 0.0, 1.0  # "each log is clamped at -100, as torch does"
    y = RNG.uniform(size=(4, 3))
    with np.errstate(divide="ignore"):
        bce = -W_CLASS * (y * np.maximum(np.log(p), -100) + (1 - y) * np.maximum(np.log1p(-p), -100))
    _check(lossreg.binary_cross_entropy(p, y, weight=W_CLASS, reduction=reduction), _reduced(bce, reduction))
    _check(_torch(F.binary_cross_entropy, p, y, weight=W_CLASS, reduction=reduction), _reduced(bce, reduction))
    pos = RNG.uniform(0.5, 3.0, size=3)
    logits = -W_CLASS * (pos * y * np.log(_sigmoid(X)) + (1 - y) * np.log(1 - _sigmoid(X)))
    _check(lossreg.binary_cross_entropy_with_logits(X, y, weight=W_CLASS, pos_weight=pos, reduction=reduction),
           _reduced(logits, reduction))
    labels = np.sign(Y)
    _check(lossreg.soft_margin_loss(X, labels, reduction=reduction),
           _reduced(np.log(1 + np.exp(-labels * X)), reduction))
    multi_hot = (y > 0.5) * 1.0
    mlsm = -(W_CLASS * (multi_hot * np.log(_sigmoid(X)) + (1 - multi_hot) * np.log(_sigmoid(-X)))).sum(-1) / 3
    _check(lossreg.multilabel_soft_margin_loss(X, multi_hot, weight=W_CLASS, reduction=reduction),
           _reduced(mlsm, reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("eps", (0.0, 0.3))
@pytest.mark.parametrize("weighted", (False, True))
def test_cross_entropy_and_nll_formulas_by_hand(reduction, eps, weighted):
    x = RNG.normal(size=(5, 3))
    y = np.array([0, 2, 1, 1, 2])
    w = W_CLASS if weighted else np.ones(3)
    log_p = _log_softmax(x)
    rows = np.arange(5)
    # ℓ_n = -(1 - ε) w[y_n] log p[n, y_n] - (ε / C) Σ_c w_c log p[n, c]; "mean" divides by Σ w[y_n]
    ce = -(1 - eps) * w[y] * log_p[rows, y] - (eps / 3) * (w * log_p).sum(axis=1)
    options = {"weight": w if weighted else None, "label_smoothing": eps, "reduction": reduction}
    _check(lossreg.cross_entropy(x, y, **options), _reduced(ce, reduction, ce.sum() / w[y].sum()))
    # probability targets, smoothed as t (1 - ε) + ε / C, "mean" dividing by N
    t = RNG.dirichlet(np.ones(3), size=5)
    smoothed = -((t * (1 - eps) + eps / 3) * w * log_p).sum(axis=1)
    _check(lossreg.cross_entropy(x, t, **options), _reduced(smoothed, reduction, smoothed.sum() / 5))
    _check(_torch(F.cross_entropy, x, t, **options), _reduced(smoothed, reduction, smoothed.sum() / 5))
    # nll_loss: ℓ_n = -w[y_n] x[n, y_n], ignored targets contribute 0, "mean" over Σ w of the rest
    ignored = y.copy()
    ignored[1] = -100
    kept = ignored != -100
    nll = np.where(kept, -w[np.where(kept, ignored, 0)] * log_p[rows, np.where(kept, ignored, 0)], 0.0)
    _check(lossreg.nll_loss(log_p, ignored, weight=options["weight"], reduction=reduction),
           _reduced(nll, reduction, nll.sum() / w[ignored[kept]].sum()))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_margin_formulas_by_hand(reduction):
    x = RNG.normal(size=(5, 4))
    y = np.array([0, 3, 1, 1, 2])
    rows = np.arange(5)
    w = RNG.uniform(0.1, 2.0, size=4)
    for p in (1, 2):
        for margin in (0.5, 2.0):
            # ℓ_n = (w[y_n] / C) Σ_{i ≠ y_n} max(0, margin - x[n, y_n] + x[n, i])^p; "mean" divides by N
            hinge = np.maximum(0.0, margin - x[rows, y][:, None] + x) ** p
            hinge[rows, y] = 0.0
            _check(lossreg.multi_margin_loss(x, y, p=p, margin=margin, weight=w, reduction=reduction),
                   _reduced(w[y] / 4 * hinge.sum(axis=1), reduction))
    # J_n: the indices before the first -1 (a class listed twice counts twice)
    targets = np.array([[3, 0, -1, 1], [0, 0, -1, -1], [1, 2, 3, 0], [-1, 2, 1, 0], [2, -1, 0, 0]])
    losses = []
    for n in range(5):
        listed = list(targets[n][:list(targets[n]).index(-1)] if -1 in targets[n] else targets[n])
        losses.append(sum(max(0.0, 1 - (x[n, j] - x[n, i])) for j in listed for i in range(4) if i not in listed) / 4)
    _check(lossreg.multilabel_margin_loss(x, targets, reduction=reduction), _reduced(np.array(losses), reduction))
    _check(_torch(F.multilabel_margin_loss, x, targets, reduction=reduction), _reduced(np.array(losses), reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_embedding_formulas_by_hand(reduction):
    a, b = RNG.normal(size=5), RNG.normal(size=5)
    labels = np.array([1.0, -1.0, 1.0, -1.0, 0.5])  # "other values than ±1 are used as given"
    for margin in (0.0, 0.7):
        _check(lossreg.margin_ranking_loss(a, b, labels, margin=margin, reduction=reduction),
               _reduced(np.maximum(0.0, -labels * (a - b) + margin), reduction))
    # hinge_embedding_loss: a label neither 1 nor -1 gets both terms
    labels = np.array([1.0, -1.0, 1.0, -1.0, 0.0])
    both = np.where(labels != -1, a, 0.0) + np.where(labels != 1, np.maximum(0.0, 1.5 - a), 0.0)
    _check(lossreg.hinge_embedding_loss(a, labels, margin=1.5, reduction=reduction), _reduced(both, reduction))
    _check(_torch(F.hinge_embedding_loss, a, labels, margin=1.5, reduction=reduction), _reduced(both, reduction))
    # cosine_embedding_loss: ε = 1e-12 rounded to float32 added to each squared norm, a zero vector gives
    # cos = 0, a label neither 1 nor -1 contributes 0
    u, v = RNG.normal(size=(5, 3)), RNG.normal(size=(5, 3))
    u[4] = 0.0
    eps = float(np.float32(1e-12))
    cos = (u * v).sum(1) / np.sqrt(((u * u).sum(1) + eps) * ((v * v).sum(1) + eps))
    hand = np.where(labels == 1, 1 - cos, 0.0) + np.where(labels == -1, np.maximum(0.0, cos - 0.2), 0.0)
    _check(lossreg.cosine_embedding_loss(u, v, labels, margin=0.2, reduction=reduction), _reduced(hand, reduction))
    _check(_torch(F.cosine_embedding_loss, u, v, labels, margin=0.2, reduction=reduction), _reduced(hand, reduction))


@pytest.mark.parametrize("p", (0, 0.5, 1, 2, 3, -1, math.inf, -math.inf))
@pytest.mark.parametrize("swap", (False, True))
def test_triplet_formula_by_hand(p, swap):
    anchor, positive, negative = RNG.normal(size=(3, 5, 4))

    def distance(u, v):  # ‖u - v + eps‖_p over the last axis; p = 0 counts the non-zeros
        z = np.abs(u - v + 1e-6)
        if p == 0:
            return (z != 0).sum(-1) * 1.0
        if math.isinf(p):
            return z.max(-1) if p > 0 else z.min(-1)
        return (z ** p).sum(-1) ** (1 / p)

    to_negative = np.minimum(distance(anchor, negative), distance(positive, negative)) if swap else \
        distance(anchor, negative)
    hand = np.maximum(0.0, 1.0 + distance(anchor, positive) - to_negative)
    for reduction in REDUCTIONS:
        _check(lossreg.triplet_margin_loss(anchor, positive, negative, p=p, swap=swap, reduction=reduction),
               _reduced(hand, reduction))
        _check(_torch(F.triplet_margin_loss, anchor, positive, negative, p=p, swap=swap, reduction=reduction),
               _reduced(hand, reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_linear_cross_entropy_formula_by_hand(reduction):
    n, d, c = 6, 5, 7
    h, w, b = RNG.normal(size=(n, d)), RNG.normal(size=(c, d)), RNG.normal(size=c)
    y = RNG.integers(0, c, size=n)
    y[1] = -100  # ignore_index=None is -100 for class indices
    kept = y != -100
    for z_loss in (0.0, 0.1):
        for softcap in (None, 2.0):
            z = h @ w.T + b
            z = z if softcap is None else softcap * np.tanh(z / softcap)
            lse = np.log(np.exp(z).sum(axis=1))
            ce = lse - z[np.arange(n), np.where(kept, y, 0)]
            losses = np.where(kept, ce + z_loss * lse ** 2, 0.0)  # both counted for kept tokens only
            got = lossreg.linear_cross_entropy(h, w, y, linear_bias=b, reduction=reduction, z_loss=z_loss,
                                               softcap=softcap)
            _check(got, _reduced(losses, reduction, losses.sum() / kept.sum()))


# --- a reduction that is not a string ----------------------------------------------------------

def _cases(make):
    x = make(np.full((2, 3), 0.5))
    labels = make(np.array([0, 2]))
    return {
        "mse_loss": (x, x), "l1_loss": (x, x), "huber_loss": (x, x), "kl_div": (x, x),
        "binary_cross_entropy": (x, x), "binary_cross_entropy_with_logits": (x, x),
        "cross_entropy": (x, labels), "nll_loss": (x, labels), "multi_margin_loss": (x, labels),
        "linear_cross_entropy": (x, make(np.ones((4, 3))), labels),
        "ctc_loss": (make(np.log(np.full((3, 1, 2), 0.5))), make(np.array([[1]])), make(np.array([3])),
                     make(np.array([1]))),
    }


@pytest.mark.parametrize("library", ("numpy", "torch"))
@pytest.mark.parametrize("reduction", (["mean"], {"mean": 1}, np.array([1.0]), np.array([1.0, 2.0])),
                         ids=("list", "dict", "array1", "array2"))
def test_a_reduction_that_is_not_a_string_is_a_lossreg_error(library, reduction):
    make = np.asarray if library == "numpy" else torch.as_tensor
    for name, arrays in _cases(make).items():
        with pytest.raises(lossreg.LossValueError) as info:
            getattr(lossreg, name)(*arrays, reduction=reduction)
        assert info.value.loss == name and info.value.argument == "reduction", str(info.value)


# --- differences from torch, documented -------------------------------------------------------

def test_integer_targets_of_gaussian_nll_are_refused_where_torch_promotes_them():
    x = np.array([0.5, 1.5, 2.5])
    target = np.array([0, 1, 3])
    assert np.isfinite(F.gaussian_nll_loss(torch.as_tensor(x), torch.as_tensor(target), torch.ones(3)).item())
    with pytest.raises(lossreg.LossTypeError, match="gaussian_nll_loss: argument 'target'"):
        lossreg.gaussian_nll_loss(x, target, np.ones(3))
    assert "`PoissonNLLLoss` and `GaussianNLLLoss` (torch promotes them" in PROSE


def test_a_negative_label_smoothing_is_refused_where_torch_silently_ignores_it():
    x, y = np.array([[0.2, 1.0, -0.5]]), np.array([1])
    tx, ty = torch.as_tensor(x), torch.as_tensor(y)
    assert F.cross_entropy(tx, ty, label_smoothing=-0.1).item() == F.cross_entropy(tx, ty).item()
    with pytest.raises(lossreg.LossValueError, match="label_smoothing"):
        lossreg.cross_entropy(x, y, label_smoothing=-0.1)
    assert "`label_smoothing` in [0, 1] (torch silently ignores a negative one" in PROSE


@pytest.mark.parametrize("name", ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div",
                                  "poisson_nll_loss", "soft_margin_loss", "multilabel_soft_margin_loss",
                                  "binary_cross_entropy", "binary_cross_entropy_with_logits"))
def test_unequal_shapes_are_refused_where_torch_broadcasts_them_but_for_the_bce_losses(name):
    x, t = np.full((3, 4), 0.5), np.full(4, 0.25)
    with pytest.raises(lossreg.LossValueError):
        getattr(lossreg, name)(x, t)
    refused_by_torch = name.startswith("binary_cross_entropy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if refused_by_torch:
            with pytest.raises((ValueError, RuntimeError)):
                getattr(F, name)(torch.as_tensor(x), torch.as_tensor(t))
        else:
            assert torch.isfinite(getattr(F, name)(torch.as_tensor(x), torch.as_tensor(t)))  # broadcast to (3, 4)
    assert "(but for `BCELoss` and `BCEWithLogitsLoss`, which torch refuses too)" in PROSE


def test_the_distance_function_receives_the_inputs_in_the_dtype_computed_in():
    seen = []

    def distance(u, v):
        seen.append((u.dtype, v.dtype))
        return torch.linalg.vector_norm(u - v, dim=-1)

    a32, p64 = torch.randn(3, 4), torch.randn(3, 4, dtype=torch.float64)
    lossreg.triplet_margin_with_distance_loss(a32, p64, a32, distance_function=distance)
    assert set(seen) == {(torch.float64, torch.float64)}
    seen.clear()
    half = torch.randn(3, 4, dtype=torch.float16)
    lossreg.triplet_margin_with_distance_loss(half, half, half, distance_function=distance)
    assert set(seen) == {(torch.float32, torch.float32)}
    assert "promoted together" in lossreg.triplet_margin_with_distance_loss.__doc__


# --- the README's figures for linear_cross_entropy at its reference shape ----------------------

def test_the_readme_chunk_plans_at_the_reference_shape():
    from lossreg import chunked
    from lossreg.kernels import torch_lce

    n, d, v = 4096, 512, 32000
    assert "(2^22 logits per chunk: 128 tokens here)" in PROSE
    assert chunked.CHUNK_ELEMENTS == 2**22 and chunked.plan_chunks(n, v) == (128, v)
    assert "**256 (the default on CPU)**" in PROSE
    assert torch_lce._plan(n, v, 0, 0, cuda=False) == (256, v)
    assert "blocks of 2^20 entries" in PROSE and "2048 rows here" in PROSE
    assert chunked.WEIGHT_GRAD_ELEMENTS == 2**20 and chunked.WEIGHT_GRAD_ELEMENTS // d == 2048
    # "beyond 2^18 entries it takes 16 tokens at a time with the whole vocabulary" (JAX: no vocabulary split)
    assert chunked.plan_chunks(n, 2**18, split_vocab=False) == (16, 2**18)
    assert chunked.plan_chunks(n, 2**18 + 1, split_vocab=False) == (16, 2**18 + 1)
    # "when one chunk of 16 tokens would exceed the budget, of vocabulary"
    assert chunked.plan_chunks(n, 2**18 + 1) == (16, 2**18)
    # the arithmetic: logits 500 MiB, V×D 62.5 MiB, d_weight D/N = 1/8 and with d_hidden 0.14 of the logits
    mib = 2**20
    assert n * v * 4 / mib == 500 and v * d * 4 / mib == 62.5
    assert d / n == 1 / 8 and round(d / n + d / v, 2) == 0.14
    assert "the logits are 500 MiB" in PROSE and "(V×D, 62.5 MiB here)" in PROSE
    assert "D/N of the logits (1/8 here)" in PROSE and "they are 0.14 of the logits" in PROSE


# --- class forms: a scalar array option, and its get_config round trip -------------------------

def test_a_class_form_takes_a_numpy_scalar_pos_weight_as_the_functional_form_does():
    # pos_weight = negatives / positives, computed with NumPy, is a np.float64
    x = RNG.normal(size=(4, 3))
    y = (RNG.uniform(size=(4, 3)) > 0.7) * 1.0
    ratio = (y == 0).sum() / (y == 1).sum()
    expected = F.binary_cross_entropy_with_logits(torch.as_tensor(x), torch.as_tensor(y),
                                                  pos_weight=torch.tensor(ratio, dtype=torch.float64)).item()
    _check(lossreg.binary_cross_entropy_with_logits(x, y, pos_weight=ratio), expected)
    _check(lossreg.BCEWithLogitsLoss(pos_weight=ratio)(x, y), expected)
    _check(lossreg.BCELoss(weight=np.float64(2.0))(_sigmoid(x), y), 2 * lossreg.binary_cross_entropy(_sigmoid(x), y))


@pytest.mark.parametrize("make", (np.asarray, torch.as_tensor), ids=("numpy", "torch"))
def test_get_config_round_trips_a_0d_array_option(make):
    import json

    x = RNG.normal(size=(4, 3))
    y = (RNG.uniform(size=(4, 3)) > 0.5) * 1.0
    loss = lossreg.BCEWithLogitsLoss(pos_weight=make(3.0))
    restored = lossreg.from_config(json.loads(json.dumps(loss.get_config())))
    assert restored == loss
    expected = loss(make(x), make(y))
    _check(expected, F.binary_cross_entropy_with_logits(torch.as_tensor(x), torch.as_tensor(y),
                                                        pos_weight=torch.tensor(3.0, dtype=torch.float64)))
    for array in (np.asarray, torch.as_tensor):  # the restored loss makes its 0-d array in the caller's library
        _check(restored(array(x), array(y)), expected)
