"""Extreme values: each case is compared with torch.nn (values, and gradients where both define them).

Logits of ±1e4 and -inf in non-target classes, probabilities exactly 0 and 1, subnormal inputs,
NaN and inf inputs (NaN propagates, as in torch), empty batches (NaN for "mean", 0 for "sum"),
all targets ignored. Where lossreg deliberately differs from torch the test says so and checks
lossreg's own answer.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from fuzz_regressions import compare
from strategies import BUILT_IN, Example, make_good

import lossreg

NAMES = BUILT_IN
BIG = 1e4
TINY = 5e-324 * 2**20  # subnormal in float64


def _marked(names: list[str], xfail: dict[str, str]) -> list:
    """``names`` as parameters, those in ``xfail`` marked strictly with the bug they show."""
    return [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=xfail[n])) if n in xfail else n
            for n in names]


def _cmp(name: str, inputs: dict, grads: bool = True, **options) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about empty inputs and target sizes
        compare(name, Example(inputs, options), grads=grads)


# --- huge and infinite logits --------------------------------------------------------------------

LOGITS = np.array([[BIG, -BIG, 0.0], [-BIG, BIG, BIG], [BIG, BIG, -BIG], [-BIG, -BIG, -BIG]])
TARGETS = np.array([1, 0, 2, 0])


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_logits_of_1e4(reduction: str, smoothing: float, weighted: bool) -> None:
    options = {"reduction": reduction, "label_smoothing": smoothing}
    if weighted:
        options["weight"] = np.array([0.5, 2.0, 1.0])
    _cmp("cross_entropy", {"input": LOGITS, "target": TARGETS}, **options)
    _cmp("cross_entropy", {"input": LOGITS, "target": np.full((4, 3), 1 / 3)}, **options)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_cross_entropy_minus_inf_in_non_target_classes(reduction: str) -> None:
    x = np.array([[0.5, -np.inf, 1.0], [-np.inf, 2.0, -np.inf], [3.0, 1.0, -np.inf]])
    _cmp("cross_entropy", {"input": x, "target": np.array([0, 1, 1])}, reduction=reduction)
    _cmp("cross_entropy", {"input": x, "target": np.array([2, 1, -100])}, reduction=reduction,
         weight=np.array([1.0, 2.0, 3.0]))
    _cmp("nll_loss", {"input": x, "target": np.array([0, 1, 1])}, reduction=reduction)


def test_cross_entropy_minus_inf_with_label_smoothing_is_inf_as_in_torch() -> None:
    x = np.array([[0.5, -np.inf, 1.0], [0.0, 2.0, 1.0]])
    _cmp("cross_entropy", {"input": x, "target": np.array([0, 1])}, grads=False, reduction="none",
         label_smoothing=0.1)


@pytest.mark.parametrize("name", ["binary_cross_entropy_with_logits", "soft_margin_loss",
                                  "multilabel_soft_margin_loss"])
def test_logit_losses_at_1e4(name: str) -> None:
    target = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    if name == "soft_margin_loss":
        # torch computes log(1 + exp(-y x)) directly, which overflows to inf beyond |x| ≈ 709;
        # lossreg's stable form gives the exact answer, |x| (a deliberate difference).
        got = lossreg.soft_margin_loss(LOGITS, 2 * target - 1, reduction="none")
        want = np.where((2 * target - 1) * LOGITS < 0, np.abs(LOGITS), np.log1p(np.exp(-np.abs(LOGITS))))
        np.testing.assert_allclose(got, want, rtol=1e-12)
        return
    for reduction in ("none", "mean", "sum"):
        _cmp(name, {"input": LOGITS, "target": target}, reduction=reduction)
    if name == "binary_cross_entropy_with_logits":
        _cmp(name, {"input": LOGITS, "target": target}, pos_weight=np.array([0.5, 3.0, 1.0]))


# --- probabilities exactly 0 and 1 ----------------------------------------------------------------

P01 = np.array([0.0, 1.0, 0.0, 1.0, 0.5, 1.0])
Y01 = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.3])


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bce_probabilities_exactly_0_and_1(reduction: str) -> None:
    """Each log is clamped at -100, as torch does: a confident wrong answer costs 100, not inf."""
    _cmp("binary_cross_entropy", {"input": P01, "target": Y01}, grads=False, reduction=reduction)
    _cmp("binary_cross_entropy", {"input": P01, "target": Y01}, grads=False, reduction=reduction,
         weight=np.linspace(0.5, 2.0, 6))


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_bce_gradient_at_exactly_0_and_1_is_torchs_on_torch_tensors(reduction: str, dtype: str) -> None:
    """torch's gradient there, (x - t) / max(x (1 - x), 1e-12) (e.g. -8e11 for x=0, t=0.8), from the torch kernel."""
    ex = Example({"input": P01, "target": Y01}, {"reduction": reduction}, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compare("binary_cross_entropy", ex, kernels=True, numpy=False)
        compare("binary_cross_entropy", Example({"input": P01, "target": Y01},
                                                {"reduction": reduction, "weight": np.linspace(0.5, 2.0, 6)}, dtype=dtype),
                kernels=True, numpy=False)


def test_bce_gradient_at_exactly_0_and_1_portable_definition() -> None:
    """The portable definition (every other library, and torch with kernels off) differentiates the
    clamped logs: (1 - t) / (1 - x) = 0.2 at x=0, t=0.8, and -t / x = -0.3 at x=1, t=0.3, where
    torch gives ±(t - x) · 1e12 (a documented difference)."""
    import torch

    x = torch.tensor([0.0, 1.0], dtype=torch.float64, requires_grad=True)
    lossreg.spec("binary_cross_entropy").function(x, torch.tensor([0.8, 0.3], dtype=torch.float64),
                                                  reduction="sum").backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.2, -0.3])


def test_kl_div_target_exactly_0() -> None:
    x = np.log(np.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]]))
    t = np.array([[0.0, 0.4, 0.6], [1.0, 0.0, 0.0]])
    for reduction in ("none", "batchmean", "sum"):
        _cmp("kl_div", {"input": x, "target": t}, reduction=reduction)
        _cmp("kl_div", {"input": x, "target": np.log(t + 1e-300) * (t > 0) - np.inf * (t == 0)},
             reduction=reduction, log_target=True, grads=False)


def test_poisson_zero_and_one_targets() -> None:
    for full in (False, True):
        _cmp("poisson_nll_loss", {"input": np.array([0.0, 1.0, 2.0, 0.0]), "target": np.array([0.0, 1.0, 2.0, 5.0])},
             log_input=False, full=full, reduction="none")
        _cmp("poisson_nll_loss", {"input": np.array([-BIG, 0.0, 3.0]), "target": np.array([0.0, 1.0, 2.0])},
             full=full, reduction="none")


def test_gaussian_nll_zero_variance_is_clamped_to_eps() -> None:
    _cmp("gaussian_nll_loss", {"input": np.array([0.0, 1.0, 2.0]), "target": np.array([0.0, 1.5, 2.0]),
                               "var": np.array([0.0, 0.0, 1.0])}, reduction="none")


# --- subnormal, NaN and inf inputs ------------------------------------------------------------------


def _scaled(name: str, factor: float) -> dict:
    ex = make_good(name)
    return {k: v * factor if k != "var" and np.asarray(v).dtype.kind == "f" and not _probabilities(name, k) else v
            for k, v in ex.inputs.items()}


def _probabilities(name: str, arg: str) -> bool:
    return (name, arg) in {("binary_cross_entropy", "target"),
                           ("binary_cross_entropy_with_logits", "target"), ("kl_div", "target"),
                           ("multilabel_soft_margin_loss", "target"), ("soft_margin_loss", "target"),
                           ("hinge_embedding_loss", "target"), ("margin_ranking_loss", "target"),
                           ("cosine_embedding_loss", "target"), ("poisson_nll_loss", "target"),
                           ("ctc_loss", "log_probs"), ("nll_loss", "input"), ("kl_div", "input")}


SUBNORMAL_GRAD_XFAIL = {
    "binary_cross_entropy": "binary_cross_entropy's gradient where log(x) is clamped at -100 (x < e^-100, "
                            "subnormal x included): torch returns (x - t) / max(x (1 - x), 1e-12) (about -t·1e12), "
                            "the portable definition 0 for the clamped log term (torch tensors get torch's through "
                            "the kernel: test_bce_subnormal_inputs_on_torch_tensors_get_torchs_gradient)",
}


@pytest.mark.parametrize("name", _marked(NAMES, SUBNORMAL_GRAD_XFAIL))
def test_subnormal_inputs(name: str) -> None:
    inputs = _scaled(name, TINY)
    assert any(0 < abs(v).min() < np.finfo("float64").tiny for v in inputs.values()
               if np.asarray(v).dtype.kind == "f" and np.asarray(v).size) or name in ("ctc_loss", "nll_loss",
                                                                                     "kl_div")
    _cmp(name, inputs, grads=False, reduction="none")
    _cmp(name, inputs, reduction="none")
    _cmp(name, inputs, reduction="sum")


def test_bce_subnormal_inputs_on_torch_tensors_get_torchs_gradient() -> None:
    """The difference above is the portable definition's: on torch tensors the kernel gives torch's."""
    inputs = _scaled("binary_cross_entropy", TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for reduction in ("none", "sum"):
            compare("binary_cross_entropy", Example(inputs, {"reduction": reduction}), kernels=True, numpy=False)


NAN_DIFFERS = {"binary_cross_entropy": "NaN is not a probability: lossreg raises (test_bad_input)"}
NAN_XFAIL: dict[str, str] = {}  # the triplet losses propagate NaN, as torch does


def _poisoned(name: str, value: float) -> dict:
    ex = make_good(name)
    arg = next(k for k, v in ex.inputs.items() if np.asarray(v).dtype.kind == "f")
    x = np.array(ex.inputs[arg], dtype="float64")
    x.reshape(-1)[1] = value
    return {**ex.inputs, arg: x}


INF_XFAIL: dict[str, str] = {}  # cross_entropy with a +inf logit gives NaN, as torch does


@pytest.mark.parametrize("name", _marked(NAMES, INF_XFAIL))
def test_plus_inf_inputs(name: str) -> None:
    """Infinite inputs give torch's answer (inf, NaN or a finite limit)."""
    if name in NAN_DIFFERS:
        return
    for reduction in ("none", "sum", "mean"):
        _cmp(name, _poisoned(name, math.inf), grads=False, reduction=reduction)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("value", [-math.inf])
def test_minus_inf_inputs(name: str, value: float) -> None:
    """Infinite inputs give torch's answer (inf, NaN or a finite limit)."""
    if name in NAN_DIFFERS:
        return
    for reduction in ("none", "sum", "mean"):
        _cmp(name, _poisoned(name, value), grads=False, reduction=reduction)


@pytest.mark.parametrize("name", _marked(NAMES, NAN_XFAIL))
def test_nan_inputs(name: str) -> None:
    value = math.nan
    """NaN propagates to the loss as in torch, elementwise for "none"."""
    if name in NAN_DIFFERS:
        with pytest.raises(lossreg.LossValueError):
            lossreg.spec(name).function(*_poisoned(name, value).values())
        return
    for reduction in ("none", "sum", "mean"):
        _cmp(name, _poisoned(name, value), grads=False, reduction=reduction)


# --- empty batches and ignored targets ----------------------------------------------------------------

EMPTY_DIFFERS = {
    # torch's own answers that lossreg does not copy (documented in the README):
    "multi_margin_loss": "torch's mean over an empty batch returns uninitialised memory (e.g. 4.6e-310)",
    "multilabel_margin_loss": "torch's mean over an empty batch returns uninitialised memory (0, 1e-153, ...)",
    "ctc_loss": "torch refuses an empty batch; lossreg too (log_probs must be non-empty)",
}


# Inputs without a batch axis, kept whole in an empty batch (a weight's rows are vocabulary entries).
NO_BATCH_AXIS = {"linear_cross_entropy": ("linear_weight",)}


def _empty(name: str) -> dict:
    keep = NO_BATCH_AXIS.get(name, ())
    return {k: np.asarray(v) if k in keep else np.asarray(v)[:0] for k, v in make_good(name).inputs.items()}


@pytest.mark.parametrize("name", [n for n in NAMES if n != "ctc_loss"])
@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_empty_batch(name: str, reduction: str) -> None:
    _cmp(name, _empty(name), reduction=reduction)
    got = lossreg.spec(name).function(*_empty(name).values(), reduction=reduction)
    if reduction == "none":
        assert np.asarray(got).size == 0
    else:
        assert float(got) == 0.0


@pytest.mark.parametrize("name", [n for n in NAMES if n not in EMPTY_DIFFERS])
def test_empty_batch_mean(name: str) -> None:
    _cmp(name, _empty(name), reduction="mean")
    assert math.isnan(float(lossreg.spec(name).function(*_empty(name).values(), reduction="mean")))


@pytest.mark.parametrize("name", ["nll_loss", "cross_entropy"])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_no_classes_in_an_empty_batch_with_class_weights(name: str, reduction: str) -> None:
    """(0, 0) scores and an empty weight, as torch's own module error inputs pass them."""
    _cmp(name, {"input": np.zeros((0, 0)), "target": np.zeros(0, dtype="int64")}, weight=np.zeros(0),
         reduction=reduction)


@pytest.mark.parametrize(("name", "target"), [("multi_margin_loss", np.zeros(0, dtype="int64")),
                                              ("multilabel_margin_loss", np.zeros((0, 3), dtype="int64"))])
def test_margin_losses_empty_batch_mean_is_nan_where_torch_reads_garbage(name: str, target: np.ndarray) -> None:
    fn = lossreg.spec(name).function
    assert math.isnan(float(fn(np.zeros((0, 3)), target)))
    assert float(fn(np.zeros((0, 3)), target, reduction="sum")) == 0.0


def test_ctc_empty_batch_is_refused_as_in_torch() -> None:
    with pytest.raises(lossreg.LossValueError):
        lossreg.ctc_loss(np.zeros((5, 0, 3)), np.zeros((0, 2), dtype="int64"), np.zeros(0, dtype="int64"),
                         np.zeros(0, dtype="int64"))


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_all_targets_ignored(name: str, reduction: str, weighted: bool, smoothing: float) -> None:
    if name == "nll_loss" and smoothing:
        return
    options = {"reduction": reduction, "ignore_index": 1}
    if weighted:
        options["weight"] = np.array([0.5, 2.0, 1.0])
    if smoothing:
        options["label_smoothing"] = smoothing
    x = make_good(name).inputs["input"]
    for t in (np.ones(4, dtype="int64"), np.ones((4, 1), dtype="int64")[:, 0]):
        _cmp(name, {"input": x, "target": t}, **options)
    # K-dimensional: (N, C, d) with every target ignored
    _cmp(name, {"input": np.stack([x, x], axis=-1), "target": np.ones((4, 2), dtype="int64")}, **options)
    got = lossreg.spec(name).function(x, np.ones(4, dtype="int64"), **options)
    if reduction == "mean":
        assert math.isnan(float(got))


def test_ctc_impossible_alignment_value() -> None:
    """Too few frames: the loss is inf (0 with zero_infinity), as in torch."""
    lp = np.log(np.full((2, 1, 3), 1 / 3))
    inputs = {"log_probs": lp, "targets": np.array([[1, 1]]), "input_lengths": np.array([2]),
              "target_lengths": np.array([2])}
    _cmp("ctc_loss", inputs, grads=False, reduction="none")
    _cmp("ctc_loss", inputs, reduction="sum", zero_infinity=True)


@pytest.mark.xfail(strict=True, reason="ctc_loss's gradient of an infinite loss (impossible alignment, "
                   "zero_infinity=False): torch gives NaN, lossreg a finite exp(log_probs)")
def test_ctc_impossible_alignment_gradient() -> None:
    lp = np.log(np.full((2, 1, 3), 1 / 3))
    _cmp("ctc_loss", {"log_probs": lp, "targets": np.array([[1, 1]]), "input_lengths": np.array([2]),
                      "target_lengths": np.array([2])}, reduction="sum")
