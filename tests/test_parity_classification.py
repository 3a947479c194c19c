"""Parity of the classification losses with torch.nn.functional: random inputs, every option.

Values and the gradients of ``sum(loss)`` are compared in float64 through ``check_parity``
(torch tensors and NumPy arrays), many seeds per option combination, plus the errors that bad
input raises.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from parity import check_parity

import lossreg
from lossreg.errors import LossTypeError, LossValueError

SEEDS = range(20)
REDUCTIONS = ("none", "mean", "sum")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Any:
    """Thousands of tiny torch calls: with several threads on a busy machine they spin ~7× slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _rng(*key: Any) -> np.random.Generator:
    """A generator per (test, option combination, seed), so failures reproduce on their own."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


# --- cross_entropy / nll_loss -----------------------------------------------------------------

C = 5
LAYOUTS = {"unbatched": (C,), "batch": (6, C), "3d": (3, C, 4), "4d": (2, C, 2, 3)}


def _index_target(rng: np.random.Generator, shape: tuple[int, ...], ignore: int | None) -> np.ndarray:
    """Class indices for scores of ``shape``; about a quarter ``ignore``, but never all of them."""
    t_shape = () if len(shape) == 1 else (shape[0], *shape[2:])
    t = rng.integers(0, C, size=t_shape)
    if ignore is not None and t.ndim:
        t = np.where(rng.uniform(size=t_shape) < 0.25, ignore, t)
        first = (0,) * t.ndim
        t[first] = (ignore + 1) % C if 0 <= ignore < C else 0  # keep one target: a mean of nothing is NaN
    return t


# ignore_index: default -100 (with -100 targets), inside [0, C), outside above and below.
IGNORES = {"default": (None, -100), "inside": (2, 2), "above": (C + 2, C + 2), "below": (-1, -1)}


def _class_options(reduction: str, weight: np.ndarray | None, ignore_option: int | None) -> dict[str, Any]:
    options: dict[str, Any] = {"reduction": reduction}
    if weight is not None:
        options["weight"] = weight
    if ignore_option is not None:
        options["ignore_index"] = ignore_option
    return options


# An unbatched target may draw ignore_index itself: "mean" is then 0 / 0 = NaN, as in torch.
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("ignore", IGNORES)
def test_cross_entropy_index_targets(layout: str, reduction: str, weighted: bool, smoothing: float,
                                     ignore: str) -> None:
    option, value = IGNORES[ignore]
    for seed in SEEDS:
        rng = _rng("ce", layout, reduction, weighted, smoothing, ignore, seed)
        x = rng.normal(scale=2.0, size=LAYOUTS[layout])
        t = _index_target(rng, LAYOUTS[layout], value if layout != "unbatched" else None)
        options = _class_options(reduction, rng.uniform(0.2, 2.0, size=C) if weighted else None, option)
        if smoothing:
            options["label_smoothing"] = smoothing
        check_parity("cross_entropy", F.cross_entropy, {"input": x, "target": t}, options)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.25, 1.0])
def test_cross_entropy_probability_targets(layout: str, reduction: str, weighted: bool, smoothing: float) -> None:
    shape = LAYOUTS[layout]
    for seed in SEEDS:
        rng = _rng("ce-probs", layout, reduction, weighted, smoothing, seed)
        x = rng.normal(scale=2.0, size=shape)
        p = rng.dirichlet(np.ones(C), size=int(np.prod(shape)) // C)  # rows of probabilities
        p = p.reshape(shape) if len(shape) == 1 else np.moveaxis(p.reshape((shape[0], *shape[2:], C)), -1, 1)
        options = _class_options(reduction, rng.uniform(0.2, 2.0, size=C) if weighted else None, None)
        options["label_smoothing"] = smoothing
        check_parity("cross_entropy", F.cross_entropy, {"input": x, "target": p}, options)


def _reshaped(reference: Any) -> Any:
    """torch refuses the source document's (N, 1) labels; lossreg reads them as (N,)."""
    return lambda input, target, **options: reference(input, target.reshape(-1), **options)


@pytest.mark.parametrize("loss, reference", [("cross_entropy", F.cross_entropy), ("nll_loss", F.nll_loss)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_n1_targets(loss: str, reference: Any, reduction: str, weighted: bool) -> None:
    for seed in SEEDS:
        rng = _rng("n1", loss, reduction, weighted, seed)
        x, t = rng.normal(size=(6, C)), _index_target(rng, (6, C), 3).reshape(6, 1)
        options = _class_options(reduction, rng.uniform(0.2, 2.0, size=C) if weighted else None, 3)
        check_parity(loss, _reshaped(reference), {"input": x, "target": t}, options)


# An unbatched target may draw ignore_index itself: "mean" is then 0 / 0 = NaN, as in torch.
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore", IGNORES)
def test_nll_loss(layout: str, reduction: str, weighted: bool, ignore: str) -> None:
    option, value = IGNORES[ignore]
    for seed in SEEDS:
        rng = _rng("nll", layout, reduction, weighted, ignore, seed)
        x = torch.log_softmax(torch.from_numpy(rng.normal(size=LAYOUTS[layout])), dim=0 if layout == "unbatched" else 1)
        t = _index_target(rng, LAYOUTS[layout], value if layout != "unbatched" else None)
        options = _class_options(reduction, rng.uniform(0.2, 2.0, size=C) if weighted else None, option)
        check_parity("nll_loss", F.nll_loss, {"input": x.numpy(), "target": t}, options)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # NumPy's 0 / 0
@pytest.mark.parametrize("loss, reference", [("cross_entropy", F.cross_entropy), ("nll_loss", F.nll_loss)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_all_targets_ignored(loss: str, reference: Any, reduction: str) -> None:
    rng = _rng("all-ignored", loss, reduction)
    check_parity(loss, reference, {"input": rng.normal(size=(3, C)), "target": np.full(3, -100)},
                 {"reduction": reduction}, grads=reduction != "mean")  # "mean" is 0 / 0 = NaN, as in torch


# --- binary_cross_entropy ---------------------------------------------------------------------

BCE_SHAPES = {"scalar": (), "vector": (6,), "column": (6, 1), "matrix": (4, 3), "3d": (2, 3, 4)}


def _broadcast_weights(shape: tuple[int, ...]) -> dict[str, tuple[int, ...] | None]:
    """Weight shapes that broadcast to ``shape``: none, full, scalar, the last axis, a column."""
    shapes: dict[str, tuple[int, ...] | None] = {"none": None, "full": shape, "scalar": ()}
    if len(shape) >= 1:
        shapes["last-axis"] = shape[-1:]
    if len(shape) >= 2:
        shapes["column"] = (*shape[:-1], 1)
    return shapes


BCE_COMBOS = [(s, w) for s in BCE_SHAPES for w in _broadcast_weights(BCE_SHAPES[s])]


@pytest.mark.parametrize("shape, weight", BCE_COMBOS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("soft", [False, True])
def test_binary_cross_entropy(shape: str, weight: str, reduction: str, soft: bool) -> None:
    dims = BCE_SHAPES[shape]
    w_shape = _broadcast_weights(dims)[weight]
    for seed in SEEDS:
        rng = _rng("bce", shape, weight, reduction, soft, seed)
        p = rng.uniform(0.01, 0.99, size=dims)
        y = rng.uniform(size=dims) if soft else rng.integers(0, 2, size=dims).astype("float64")
        options: dict[str, Any] = {"reduction": reduction}
        if w_shape is not None:
            options["weight"] = rng.uniform(0.2, 2.0, size=w_shape)
        check_parity("binary_cross_entropy", F.binary_cross_entropy, {"input": p, "target": y}, options)


# --- binary_cross_entropy_with_logits ---------------------------------------------------------


@pytest.mark.parametrize("shape, weight, pos_weight",
                         [(s, w, pw) for s, w in BCE_COMBOS for pw in _broadcast_weights(BCE_SHAPES[s])])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits(shape: str, weight: str, pos_weight: str, reduction: str) -> None:
    dims = BCE_SHAPES[shape]
    shapes = _broadcast_weights(dims)
    for seed in SEEDS:
        rng = _rng("bce-logits", shape, weight, pos_weight, reduction, seed)
        x, y = rng.normal(scale=3.0, size=dims), rng.uniform(size=dims)
        options: dict[str, Any] = {"reduction": reduction}
        if shapes[weight] is not None:
            options["weight"] = rng.uniform(0.2, 2.0, size=shapes[weight])
        if shapes[pos_weight] is not None:
            options["pos_weight"] = rng.uniform(0.2, 4.0, size=shapes[pos_weight])
        check_parity("binary_cross_entropy_with_logits", F.binary_cross_entropy_with_logits,
                     {"input": x, "target": y}, options)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_extremes(reduction: str) -> None:
    x = np.array([1e4, -1e4, 1e4, -1e4, 0.0, 0.0, 800.0, -800.0])
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.3, 0.5, 0.5])
    for pos_weight in (None, np.array(3.0)):
        options = {"reduction": reduction} if pos_weight is None else {"reduction": reduction, "pos_weight": pos_weight}
        check_parity("binary_cross_entropy_with_logits", F.binary_cross_entropy_with_logits,
                     {"input": x, "target": y}, options)
    got = lossreg.binary_cross_entropy_with_logits(torch.tensor(x, dtype=torch.float32),
                                                   torch.tensor(y, dtype=torch.float32), reduction="none")
    assert torch.isfinite(got).all()


# --- soft_margin_loss -------------------------------------------------------------------------


def _soft_margin_reference(input: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """torch's value and input gradient; torch does not differentiate the target, so its
    gradient comes from autograd through torch's own formula log1p(exp(-y x))."""
    value = F.soft_margin_loss(input, target.detach(), reduction=reduction)
    if not target.requires_grad:
        return value
    surrogate = torch.log1p(torch.exp(-input.detach() * target))
    surrogate = {"none": surrogate, "mean": surrogate.mean(), "sum": surrogate.sum()}[reduction]
    return value + (surrogate - surrogate.detach())


@pytest.mark.parametrize("shape", BCE_SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("targets", ["sign", "real"])
def test_soft_margin(shape: str, reduction: str, targets: str) -> None:
    dims = BCE_SHAPES[shape]
    for seed in SEEDS:
        rng = _rng("soft-margin", shape, reduction, targets, seed)
        x = rng.normal(scale=3.0, size=dims)
        y = rng.choice([-1.0, 1.0], size=dims) if targets == "sign" else rng.uniform(-2.0, 2.0, size=dims)
        check_parity("soft_margin_loss", _soft_margin_reference, {"input": x, "target": y}, {"reduction": reduction})


def test_soft_margin_large_margins_are_finite() -> None:
    """A deliberate difference: torch's log1p(exp(-y x)) overflows to inf; lossreg does not."""
    x = torch.tensor([-1e4, 1e4, -100.0, 100.0], dtype=torch.float32, requires_grad=True)
    y = torch.tensor([1.0, -1.0, 1.0, 1.0])
    assert torch.isinf(F.soft_margin_loss(x, y, reduction="none")[:3]).all()
    got = lossreg.soft_margin_loss(x, y, reduction="none")
    torch.testing.assert_close(got, torch.tensor([1e4, 1e4, 100.0, 0.0]))
    (grad,) = torch.autograd.grad(got.sum(), [x])
    torch.testing.assert_close(grad, torch.tensor([-1.0, 1.0, -1.0, 0.0]))


# --- multilabel_soft_margin_loss --------------------------------------------------------------

MLSM_SHAPES = {"unbatched": (C,), "batch": (6, C), "3d": (2, 3, C)}
MLSM_COMBOS = [(s, w) for s in MLSM_SHAPES for w in _broadcast_weights(MLSM_SHAPES[s])]


@pytest.mark.parametrize("shape, weight", MLSM_COMBOS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("soft", [False, True])
def test_multilabel_soft_margin(shape: str, weight: str, reduction: str, soft: bool) -> None:
    dims = MLSM_SHAPES[shape]
    w_shape = _broadcast_weights(dims)[weight]
    for seed in SEEDS:
        rng = _rng("mlsm", shape, weight, reduction, soft, seed)
        x = rng.normal(scale=3.0, size=dims)
        y = rng.uniform(size=dims) if soft else rng.integers(0, 2, size=dims).astype("float64")
        options: dict[str, Any] = {"reduction": reduction}
        if w_shape is not None:
            options["weight"] = rng.uniform(0.2, 2.0, size=w_shape)
        check_parity("multilabel_soft_margin_loss", F.multilabel_soft_margin_loss, {"input": x, "target": y}, options)


def test_multilabel_soft_margin_extremes() -> None:
    x = np.array([[1e4, -1e4, 0.0, 800.0], [-1e4, 1e4, -800.0, 0.0]])
    y = np.array([[0.0, 1.0, 0.5, 0.0], [1.0, 1.0, 0.0, 1.0]])
    check_parity("multilabel_soft_margin_loss", F.multilabel_soft_margin_loss, {"input": x, "target": y},
                 {"reduction": "none"})


# --- multi_margin_loss ------------------------------------------------------------------------


@pytest.mark.parametrize("unbatched", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("margin", [1.0, 0.3, 0.0, -0.5, 2.5])
@pytest.mark.parametrize("weighted", [False, True])
def test_multi_margin(unbatched: bool, reduction: str, p: int, margin: float, weighted: bool) -> None:
    for seed in SEEDS:
        rng = _rng("multi-margin", unbatched, reduction, p, margin, weighted, seed)
        x = rng.normal(size=(C,) if unbatched else (7, C))
        t = rng.integers(0, C, size=() if unbatched else (7,))
        options: dict[str, Any] = {"reduction": reduction, "p": p, "margin": margin}
        if weighted:
            options["weight"] = rng.uniform(0.2, 2.0, size=C)
        check_parity("multi_margin_loss", F.multi_margin_loss, {"input": x, "target": t}, options)


@pytest.mark.parametrize("p", [1, 2])
def test_multi_margin_ties(p: int) -> None:
    """margin - x[y] + x[i] exactly 0: no loss, and gradient 0, as in torch."""
    x = np.array([[1.5, 0.5, 0.25, 0.5], [0.0, 1.0, 0.0, 2.0], [0.5, 0.5, 0.5, 0.5]])
    check_parity("multi_margin_loss", F.multi_margin_loss, {"input": x, "target": np.array([0, 1, 2])},
                 {"p": p, "reduction": "sum"})
    check_parity("multi_margin_loss", F.multi_margin_loss, {"input": x, "target": np.array([0, 1, 2])},
                 {"p": p, "margin": 0.0, "reduction": "none"})


# --- multilabel_margin_loss -------------------------------------------------------------------


def _label_lists(rng: np.random.Generator, n: int, c: int) -> np.ndarray:
    """Rows of class indices (sometimes repeated), then -1 and random padding in [-1, C)."""
    rows = []
    for _ in range(n):
        k = int(rng.integers(0, c + 1))
        listed = rng.permutation(c)[:k] if rng.uniform() < 0.7 else rng.integers(0, c, size=k)
        row = np.concatenate([listed, rng.integers(-1, c, size=c - k)])
        if k < c:
            row[k] = -1
        rows.append(row)
    return np.array(rows, dtype="int64")


@pytest.mark.parametrize("unbatched", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("c", [1, 2, 6])
def test_multilabel_margin(unbatched: bool, reduction: str, c: int) -> None:
    for seed in SEEDS:
        rng = _rng("multilabel-margin", unbatched, reduction, c, seed)
        n = 1 if unbatched else 8
        x, t = rng.normal(size=(n, c)), _label_lists(rng, n, c)
        if unbatched:
            x, t = x[0], t[0]
        check_parity("multilabel_margin_loss", F.multilabel_margin_loss, {"input": x, "target": t},
                     {"reduction": reduction})


def test_multilabel_margin_special_rows() -> None:
    x = np.array([[2.0, 1.0, 1.0, 0.5], [0.0, 1.0, 0.25, 2.0], [0.3, -0.2, 1.1, 0.0], [0.3, -0.2, 1.1, 0.0],
                  [0.3, -0.2, 1.1, 0.0]])
    t = np.array([[0, -1, 3, 3],  # a tie: 1 - (x[0] - x[1]) = 0
                  [3, 1, -1, 0],  # a tie: 1 - (x[1] - x[0]) = 0
                  [-1, -1, -1, -1],  # no targets at all
                  [2, -1, 0, 1],  # padding in the middle: only class 2 counts
                  [1, 1, 2, 0]])  # a class listed twice counts twice
    for reduction in REDUCTIONS:
        check_parity("multilabel_margin_loss", F.multilabel_margin_loss, {"input": x, "target": t},
                     {"reduction": reduction})


# --- class forms and names --------------------------------------------------------------------


@pytest.mark.parametrize("alias, name", [
    ("bce_with_logits", "binary_cross_entropy_with_logits"), ("BCEWithLogitsLoss", "binary_cross_entropy_with_logits"),
    ("sigmoid_cross_entropy", "binary_cross_entropy_with_logits"),
    ("binary_crossentropy_from_logits", "binary_cross_entropy_with_logits"),
    ("soft_margin", "soft_margin_loss"), ("SoftMarginLoss", "soft_margin_loss"),
    ("multilabel_soft_margin", "multilabel_soft_margin_loss"), ("MultiLabelSoftMarginLoss", "multilabel_soft_margin_loss"),
    ("multi_margin", "multi_margin_loss"), ("MultiMarginLoss", "multi_margin_loss"),
    ("multilabel_margin", "multilabel_margin_loss"), ("MultiLabelMarginLoss", "multilabel_margin_loss"),
])
def test_names(alias: str, name: str) -> None:
    assert lossreg.spec(alias).name == name


def test_class_form_with_listed_options() -> None:
    x, y = torch.randn(4, 3, dtype=torch.float64), torch.rand(4, 3, dtype=torch.float64)
    crit = lossreg.get("BCEWithLogitsLoss", pos_weight=[1.0, 2.0, 3.0], reduction="sum")
    want = F.binary_cross_entropy_with_logits(x, y, pos_weight=torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64),
                                              reduction="sum")
    torch.testing.assert_close(crit(x, y), want)
    assert lossreg.from_config(crit.get_config()) == crit
    t = torch.tensor([0, 2, 1, 2])
    crit = lossreg.get("multi_margin", p=2, margin=0.5, weight=[0.5, 1.0, 2.0])
    torch.testing.assert_close(crit(x, t), F.multi_margin_loss(x, t, p=2, margin=0.5,
                                                               weight=torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)))


# --- errors -----------------------------------------------------------------------------------

x34, y34 = np.zeros((3, 4)), np.zeros((3, 4))
i34 = np.zeros((3, 4), dtype="int64")
ERRORS = [
    # (loss, inputs, options, exception, message pattern)
    ("cross_entropy", (x34, np.array([0, 4, 1])), {}, LossValueError, r"cross_entropy: argument 'target' expected class indices in \[0, 4\).*got 4"),
    ("cross_entropy", (x34, np.array([0, 1])), {}, LossValueError, r"argument 'target' expected class indices of shape \(3,\)"),
    # Scores laid out (N, T, C), as Keras and JAX code has them: the error says where torch wants the classes.
    ("cross_entropy", (np.zeros((8, 7, 5)), np.zeros((8, 7), dtype="int64")), {}, LossValueError, r"argument 'target' expected class indices of shape \(8, 5\) for input of shape \(8, 7, 5\) \(the classes are axis 1: move a last class axis there first\), got shape \(8, 7\)"),
    ("nll_loss", (np.zeros((8, 7, 5)), np.zeros((8, 6), dtype="int64")), {}, LossValueError, r"for input of shape \(8, 7, 5\), got shape \(8, 6\)"),
    ("cross_entropy", (x34, np.array([0, 1, 2])), {"weight": np.ones(5)}, LossValueError, r"argument 'weight' expected .*shape \(4,\)"),
    ("cross_entropy", (x34, np.array([0, 1, 2])), {"label_smoothing": -0.1}, LossValueError, r"'label_smoothing' expected a number in \[0.0, 1.0\]"),
    ("cross_entropy", (x34, np.full((3, 4), 0.25)), {"ignore_index": 1}, LossValueError, r"'ignore_index' expected a negative value \(such as the default -100\)"),
    ("cross_entropy", (i34, np.array([0, 1, 2])), {}, LossTypeError, r"'input' expected a real floating-point array"),
    ("cross_entropy", (x34, np.array([0.0, 1.0, 2.0])), {}, LossValueError, r"'target' expected probabilities of the input's shape \(3, 4\), or class indices as an integer array, got \w+ array of dtype \S*float64 and shape \(3,\)"),
    ("cross_entropy", (x34, np.array([0, 1, 2])), {"reduction": "avg"}, LossValueError, r"'reduction' expected one of 'none', 'mean', 'sum', got 'avg'"),
    ("nll_loss", (x34, np.array([0, 1, 2.0])), {}, LossTypeError, r"nll_loss: argument 'target' expected integer class indices"),
    ("nll_loss", (x34, np.array([0, -1, 2])), {}, LossValueError, r"nll_loss: argument 'target' expected class indices in \[0, 4\) or ignore_index=-100, got -1"),
    ("binary_cross_entropy", (np.array([0.5, 1.5]), np.array([0.0, 1.0])), {}, LossValueError, r"'input' expected probabilities in \[0, 1\], got 1.5"),
    ("binary_cross_entropy", (np.full((3, 4), 0.5), y34), {"weight": np.ones(3)}, LossValueError, r"'weight' expected a shape that broadcasts"),
    ("binary_cross_entropy", (np.full(3, 0.5), np.zeros((3, 1))), {}, LossValueError, r"'target' expected the shape of 'input' \(3,\)"),
    ("binary_cross_entropy_with_logits", (x34, np.zeros(4)), {}, LossValueError, r"binary_cross_entropy_with_logits: argument 'target' expected the shape of 'input' \(3, 4\), got shape \(4,\)"),
    ("binary_cross_entropy_with_logits", (i34, y34), {}, LossTypeError, r"argument 'input' expected a real floating-point array, got \w+ array of dtype \S*int64"),
    ("binary_cross_entropy_with_logits", (x34, i34), {}, LossTypeError, r"argument 'target' expected a real floating-point array"),
    ("binary_cross_entropy_with_logits", (x34, y34), {"pos_weight": np.ones(3)}, LossValueError, r"argument 'pos_weight' expected a shape that broadcasts to the input's \(3, 4\), got shape \(3,\)"),
    ("binary_cross_entropy_with_logits", (x34, y34), {"pos_weight": np.ones((2, 3, 4))}, LossValueError, r"argument 'pos_weight' expected a shape that broadcasts"),
    ("binary_cross_entropy_with_logits", (x34, y34), {"weight": np.ones(5)}, LossValueError, r"argument 'weight' expected a shape that broadcasts"),
    ("binary_cross_entropy_with_logits", (x34, y34), {"pos_weight": np.ones(4, dtype="int64")}, LossTypeError, r"argument 'pos_weight' expected a real floating-point array"),
    ("binary_cross_entropy_with_logits", (x34, y34), {"reduction": "batchmean"}, LossValueError, r"argument 'reduction' expected one of"),
    ("soft_margin_loss", (np.zeros(3), np.ones((3, 1))), {}, LossValueError, r"soft_margin_loss: argument 'target' expected the shape of 'input' \(3,\)"),
    ("soft_margin_loss", (np.zeros(3, dtype="int64"), np.ones(3)), {}, LossTypeError, r"soft_margin_loss: argument 'input' expected a real floating-point array"),
    ("soft_margin_loss", (np.zeros(3), np.ones(3)), {"reduction": "avg"}, LossValueError, r"soft_margin_loss: argument 'reduction'"),
    ("multilabel_soft_margin_loss", (x34, np.zeros(4)), {}, LossValueError, r"multilabel_soft_margin_loss: argument 'target' expected the shape of 'input'"),
    ("multilabel_soft_margin_loss", (np.array(0.5), np.array(1.0)), {}, LossValueError, r"argument 'input' expected scores of shape \(C\) or \(N, C\), got a 0-d array"),
    ("multilabel_soft_margin_loss", (x34, y34), {"weight": np.ones(5)}, LossValueError, r"multilabel_soft_margin_loss: argument 'weight' expected a shape that broadcasts"),
    # Integer labels are taken (as torch takes them), booleans not (torch neither).
    ("multilabel_soft_margin_loss", (x34, i34 > 0), {}, LossTypeError, r"argument 'target' expected labels as a real floating-point or integer array"),
    ("multi_margin_loss", (x34, np.array([0, 4, 1])), {}, LossValueError, r"multi_margin_loss: argument 'target' expected class indices in \[0, 4\), got 4"),
    ("multi_margin_loss", (x34, np.array([0, -1, 1])), {}, LossValueError, r"expected class indices in \[0, 4\), got -1"),
    ("multi_margin_loss", (x34[0], np.array(9)), {}, LossValueError, r"expected class indices in \[0, 4\), got 9"),
    ("multi_margin_loss", (x34, np.array([0, 1, 2])), {"p": 3}, LossValueError, r"multi_margin_loss: argument 'p' expected 1 or 2, got 3"),
    ("multi_margin_loss", (x34, np.array([0, 1, 2])), {"p": True}, LossValueError, r"argument 'p' expected 1 or 2, got True"),
    ("multi_margin_loss", (x34, np.array([0, 1, 2])), {"margin": "1"}, LossValueError, r"argument 'margin' expected a number"),
    ("multi_margin_loss", (x34, np.array([0, 1, 2])), {"weight": np.ones(3)}, LossValueError, r"argument 'weight' expected a vector of one weight per class, shape \(4,\), got shape \(3,\)"),
    ("multi_margin_loss", (x34, np.array([0, 1, 2])), {"weight": np.ones((1, 4))}, LossValueError, r"argument 'weight' expected a vector"),
    ("multi_margin_loss", (x34, np.array([0, 1, 2])), {"reduction": "batchmean"}, LossValueError, r"argument 'reduction'"),
    ("multi_margin_loss", (x34, np.array([0, 1])), {}, LossValueError, r"argument 'target' expected class indices of shape \(3,\) for input of shape \(3, 4\), got shape \(2,\)"),
    ("multi_margin_loss", (x34, np.array([[0], [1], [2]])), {}, LossValueError, r"argument 'target' expected class indices of shape \(3,\)"),
    ("multi_margin_loss", (x34, np.zeros(3)), {}, LossTypeError, r"argument 'target' expected integer class indices"),
    ("multi_margin_loss", (i34, np.array([0, 1, 2])), {}, LossTypeError, r"argument 'input' expected a real floating-point array"),
    ("multi_margin_loss", (np.zeros((2, 4, 3)), np.zeros((2, 3), dtype="int64")), {}, LossValueError, r"argument 'input' expected scores of shape \(C\) or \(N, C\)"),
    ("multilabel_margin_loss", (x34, np.array([[0, 4, -1, 0]] * 3)), {}, LossValueError, r"multilabel_margin_loss: argument 'target' expected class indices in \[0, 4\) or -1 padding, got 4"),
    ("multilabel_margin_loss", (x34, np.array([[0, -2, 1, 0]] * 3)), {}, LossValueError, r"or -1 padding, got -2"),
    ("multilabel_margin_loss", (x34, np.array([[0, -1, 9, 0]] * 3)), {}, LossValueError, r"or -1 padding, got 9"),
    ("multilabel_margin_loss", (x34, np.zeros((3, 2), dtype="int64")), {}, LossValueError, r"argument 'target' expected the shape of 'input' \(3, 4\)"),
    ("multilabel_margin_loss", (x34, y34), {}, LossTypeError, r"argument 'target' expected integer class indices padded with -1"),
    ("multilabel_margin_loss", (i34, i34), {}, LossTypeError, r"argument 'input' expected a real floating-point array"),
    ("multilabel_margin_loss", (x34, i34), {"reduction": "elementwise_mean"}, LossValueError, r"argument 'reduction'"),
    ("multilabel_margin_loss", (np.zeros((2, 3, 4)), np.zeros((2, 3, 4), dtype="int64")), {}, LossValueError, r"expected scores of shape \(C\) or \(N, C\)"),
]


@pytest.mark.parametrize("loss, inputs, options, error, message", ERRORS,
                         ids=[f"{e[0]}-{i}" for i, e in enumerate(ERRORS)])
@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_errors(loss: str, inputs: tuple[np.ndarray, ...], options: dict[str, Any], error: type, message: str,
                library: str) -> None:
    convert = (lambda a: torch.from_numpy(np.array(a))) if library == "torch" else np.asarray
    arrays = [convert(a) for a in inputs]
    options = {k: convert(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    fn = lossreg.spec(loss).function
    with pytest.raises(error, match=message):
        fn(*arrays, **options)


@pytest.mark.parametrize("loss", ["multi_margin_loss", "multilabel_margin_loss"])
def test_lazy_out_of_range_targets_poison(loss: str) -> None:
    """Dask cannot raise on values without computing: an invalid target gives NaN, never a number."""
    da = pytest.importorskip("dask.array")
    x = da.from_array(np.zeros((2, 4)), chunks=1)
    t = np.array([0, 7]) if loss == "multi_margin_loss" else np.array([[0, -1, 0, 0], [7, -1, 0, 0]])
    out = np.asarray(lossreg.spec(loss).function(x, da.from_array(t, chunks=1), reduction="none").compute())
    assert np.isfinite(out[0]) and np.isnan(out[1])

