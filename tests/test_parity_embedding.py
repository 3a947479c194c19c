"""Embedding and ranking losses against torch.nn.functional: random inputs, every option, errors."""

from __future__ import annotations

import itertools
import math

import array_api_compat
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from parity import check_parity

import lossreg
from lossreg.errors import LossTypeError, LossValueError

REDUCTIONS = ("none", "mean", "sum")
SEEDS = range(8)
P_VALUES = (2.0, 1.0, 0.0, 0.5, 1.5, 3.0, math.inf, -math.inf, -1.0)


def _values(rng: np.random.Generator, shape: tuple[int, ...], grid: bool) -> np.ndarray:
    """Normal values, or (grid) halves, on which hinges and ties are hit exactly."""
    return rng.integers(-4, 5, size=shape) / 2 if grid else rng.normal(size=shape)


def _labels(rng: np.random.Generator, shape: tuple[int, ...], kind: str) -> np.ndarray:
    if kind == "other":  # torch computes a value for any label; so does lossreg
        return rng.choice([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0], size=shape)
    signs = rng.choice([-1, 1], size=shape)
    return signs if kind == "int" else signs.astype("float64")


RANKING_SHAPES = (((7,), (7,), (7,)), ((), (), ()), ((3, 4), (3, 4), (3, 4)), ((3, 1), (1, 4), (1, 1)),
                  ((0,), (0,), (0,)))


@pytest.mark.parametrize(("reduction", "margin", "kind"),
                         list(itertools.product(REDUCTIONS, (0.0, 0.5, -0.3, 2.0), ("float", "int", "other"))))
def test_margin_ranking_matches_torch(reduction, margin, kind):
    for seed, shapes in itertools.product(SEEDS, RANKING_SHAPES):
        rng = np.random.default_rng(seed)
        grid = seed % 2 == 1
        inputs = {"input1": _values(rng, shapes[0], grid), "input2": _values(rng, shapes[1], grid),
                  "target": _labels(rng, shapes[2], kind)}
        check_parity("margin_ranking_loss", F.margin_ranking_loss, inputs, {"margin": margin, "reduction": reduction})


HINGE_SHAPES = (((6,), (6,)), ((), ()), ((2, 3, 2), (2, 3, 2)), ((3, 1), (4,)), ((0,), (0,)))


@pytest.mark.parametrize(("reduction", "margin", "kind"),
                         list(itertools.product(REDUCTIONS, (1.0, 0.5, 0.0, -1.0, 2.0), ("float", "int", "other"))))
def test_hinge_embedding_matches_torch(reduction, margin, kind):
    for seed, (xs, ys) in itertools.product(SEEDS, HINGE_SHAPES):
        rng = np.random.default_rng(seed)
        x = np.abs(_values(rng, xs, seed % 2 == 1)) * 1.5
        check_parity("hinge_embedding_loss", F.hinge_embedding_loss, {"input": x, "target": _labels(rng, ys, kind)},
                     {"margin": margin, "reduction": reduction})


COSINE_LAYOUTS = (((5, 4), (5, 4), (5,)), ((4,), (4,), ()), ((3, 6), (1, 6), (3,)), ((3, 2), (3, 2), (1,)),
                  ((2, 0), (2, 0), (2,)), ((0, 3), (0, 3), (0,)))


@pytest.mark.parametrize(("reduction", "margin", "kind"),
                         list(itertools.product(REDUCTIONS, (0.0, 0.5, -0.5, 1.0), ("float", "int", "other"))))
def test_cosine_embedding_matches_torch(reduction, margin, kind):
    for seed, (s1, s2, st) in itertools.product(SEEDS, COSINE_LAYOUTS):
        rng = np.random.default_rng(seed)
        inputs = {"input1": _values(rng, s1, seed % 3 == 1), "input2": _values(rng, s2, seed % 3 == 1),
                  "target": _labels(rng, st, kind)}
        check_parity("cosine_embedding_loss", F.cosine_embedding_loss, inputs, {"margin": margin, "reduction": reduction})


def test_cosine_zero_and_tiny_vectors():
    # torch adds float32(1e-12) to each squared norm; zero vectors give cos = 0.
    x1 = np.array([[0.0, 0.0, 0.0], [1e-7, 0.0, 0.0], [1e-7, 2e-7, 0.0], [1.0, 2.0, 3.0], [1e-5, 1e-6, 0.0]])
    x2 = np.array([[1.0, 2.0, 3.0], [1e-7, 0.0, 0.0], [3e-7, -1e-7, 0.0], [0.0, 0.0, 0.0], [0.0, 1e-6, 1e-6]])
    for target in ([1, 1, -1, -1, 1], [-1, -1, 1, 1, -1]):
        check_parity("cosine_embedding_loss", F.cosine_embedding_loss,
                     {"input1": x1, "input2": x2, "target": np.array(target)}, {"margin": -0.5, "reduction": "none"})


TRIPLET_SHAPES = ((4, 5), (5,), (2, 3, 4), ())


def _triplet(seed: int, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    if seed % 4 == 3:  # broadcasting positive, as torch allows
        pos_shape = (1,) * len(shape[:-1]) + shape[-1:] if shape else ()
        return {"anchor": rng.normal(size=shape), "positive": rng.normal(size=pos_shape),
                "negative": rng.normal(size=shape)}
    grid = seed % 4 == 1
    return {k: _values(rng, shape, grid) for k in ("anchor", "positive", "negative")}


@pytest.mark.parametrize(("p", "swap", "reduction"), list(itertools.product(P_VALUES, (False, True), REDUCTIONS)))
def test_triplet_margin_matches_torch(p, swap, reduction):
    for seed, shape in itertools.product(SEEDS, TRIPLET_SHAPES):
        margin = (1.0, 0.5, 3.0)[seed % 3]
        check_parity("triplet_margin_loss", F.triplet_margin_loss, _triplet(seed, shape),
                     {"p": p, "swap": swap, "reduction": reduction, "margin": margin})


@pytest.mark.parametrize(("eps", "p"), list(itertools.product((0.0, 1e-6, 0.1, -0.05), (2.0, 1.0, 3.0, math.inf))))
def test_triplet_margin_eps_matches_torch(eps, p):
    for seed in SEEDS:
        check_parity("triplet_margin_loss", F.triplet_margin_loss, _triplet(seed, (4, 5)),
                     {"eps": eps, "p": p, "margin": 2.0, "reduction": "none"})


@pytest.mark.parametrize("p", (2.0, 1.0, 0.5, 1.5, 3.0, math.inf, -math.inf, -1.0, 0.0))
def test_triplet_margin_zero_differences(p):
    """Zero distances and zero entries: torch's norm gradients are 0 there, not NaN."""
    rng = np.random.default_rng(7)
    a, n = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    same = {"anchor": a, "positive": a.copy(), "negative": a + 0.1 * n}
    check_parity("triplet_margin_loss", F.triplet_margin_loss, same, {"eps": 0.0, "p": p, "margin": 3.0})
    some = a.copy()
    some[:, ::2] += 1e-6  # a - positive + eps is 0 in these coordinates
    check_parity("triplet_margin_loss", F.triplet_margin_loss, {"anchor": a, "positive": some, "negative": n},
                 {"p": p, "margin": 5.0, "reduction": "none"})


@pytest.mark.parametrize("swap", (False, True))
def test_triplet_margin_at_p_0_counts_nan_and_infinite_entries_as_torch(swap):
    """p = 0 is the count of non-zero entries: torch counts NaN and ±∞ among them, so a row
    holding NaN has a finite distance (the other norms' are NaN)."""
    rng = np.random.default_rng(3)
    a, pos, neg = rng.normal(size=(3, 4, 5))
    a[0, 1], pos[1, 2], neg[2, 0], a[2, 3] = math.nan, math.inf, -math.inf, math.nan
    check_parity("triplet_margin_loss", F.triplet_margin_loss, {"anchor": a, "positive": pos, "negative": neg},
                 {"p": 0.0, "swap": swap, "margin": 2.0, "reduction": "none"})



@pytest.mark.parametrize("p", (-1.0, -0.5, -2.5))
def test_triplet_margin_at_negative_p_is_nan_for_a_row_holding_nan_as_torch(p):
    """At p < 0 a zero entry's power is ∞ (the norm 0): a NaN entry is not one, its power is NaN
    and so is its row's distance, as torch's (counted as a zero, it made the distance 0)."""
    rng = np.random.default_rng(4)
    a, pos, neg = rng.normal(size=(3, 4, 5))
    a[0, 1], neg[2, 3], pos[3, 0] = math.nan, math.nan, 0.0
    check_parity("triplet_margin_loss", F.triplet_margin_loss, {"anchor": a, "positive": pos, "negative": neg},
                 {"p": p, "margin": 2.0, "reduction": "none"})

def _l1(x, y):
    xp = array_api_compat.array_namespace(x, y)
    return xp.sum(xp.abs(x - y), axis=-1)


def _cosine_distance(x, y):
    xp = array_api_compat.array_namespace(x, y)
    dot = xp.sum(x * y, axis=-1)
    return 1 - dot / (xp.sqrt(xp.sum(x * x, axis=-1)) * xp.sqrt(xp.sum(y * y, axis=-1)))


def _squared(x, y):
    xp = array_api_compat.array_namespace(x, y)
    return xp.sum((x - y) ** 2, axis=-1)


@pytest.mark.parametrize(("distance", "swap", "reduction"),
                         list(itertools.product((None, _l1, _cosine_distance, _squared), (False, True), REDUCTIONS)))
def test_triplet_with_distance_matches_torch(distance, swap, reduction):
    for seed, shape in itertools.product(SEEDS, TRIPLET_SHAPES[:3]):
        margin = (1.0, 0.3, 2.0)[seed % 3]
        check_parity("triplet_margin_with_distance_loss", F.triplet_margin_with_distance_loss, _triplet(seed, shape),
                     {"distance_function": distance, "swap": swap, "reduction": reduction, "margin": margin})


def test_triplet_with_default_distance_is_triplet_margin():
    inputs = _triplet(5, (6, 3))
    for swap in (False, True):
        np.testing.assert_allclose(lossreg.triplet_margin_with_distance_loss(*inputs.values(), swap=swap, margin=0.7),
                                   lossreg.triplet_margin_loss(*inputs.values(), swap=swap, margin=0.7), rtol=1e-15)


def test_names_and_class_forms():
    for name, alias in (("margin_ranking_loss", "ranking"), ("margin_ranking_loss", "MarginRankingLoss"),
                        ("hinge_embedding_loss", "hinge-embedding"), ("cosine_embedding_loss", "cosine_embedding"),
                        ("triplet_margin_loss", "triplet"), ("triplet_margin_loss", "TripletMarginLoss"),
                        ("triplet_margin_with_distance_loss", "triplet_with_distance")):
        assert lossreg.spec(alias).name == name
    crit = lossreg.get("triplet", margin=0.5, p=1.0, swap=True)
    assert lossreg.from_config(crit.get_config()) == crit
    inputs = _triplet(2, (4, 3))
    want = F.triplet_margin_loss(*(torch.from_numpy(v) for v in inputs.values()), margin=0.5, p=1.0, swap=True)
    np.testing.assert_allclose(crit(*inputs.values()), want.numpy(), rtol=1e-12)


def test_callable_distance_cannot_go_into_a_config():
    crit = lossreg.get("TripletMarginWithDistanceLoss", distance_function=_l1, margin=2.0)
    inputs = _triplet(3, (4, 3))
    want = F.triplet_margin_with_distance_loss(*(torch.from_numpy(v) for v in inputs.values()), distance_function=_l1,
                                               margin=2.0)
    np.testing.assert_allclose(crit(*inputs.values()), want.numpy(), rtol=1e-12)
    with pytest.raises(LossTypeError, match="distance_function"):
        crit.get_config()
    plain = lossreg.get("triplet_margin_with_distance_loss", margin=2.0)
    assert lossreg.from_config(plain.get_config()) == plain


def _as_library(library: str, x: np.ndarray):
    if library == "torch":
        return torch.from_numpy(x)
    if library == "dask":
        return pytest.importorskip("dask.array").from_array(x)
    module = {"jax": "jax.numpy", "array_api_strict": "array_api_strict"}.get(library, library)
    return pytest.importorskip(module).asarray(x)


LIBRARIES = ("numpy", "torch", "jax", "dask", "array_api_strict")


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("returned", ["a Python number", "a NumPy array", "complex distances"])
def test_a_distance_function_returning_no_real_array_of_the_inputs_library_is_refused(library, returned):
    # torch's clamp_min raises for each; NumPy, JAX and Dask would broadcast the number or the foreign
    # array into a loss, and torch's and array-api-strict's operators failed with their own TypeError.
    distance = {"a Python number": lambda x, y: 1.0, "a NumPy array": lambda x, y: np.ones(4),
                "complex distances": lambda x, y: _squared(x, y) * (1 + 1j)}[returned]
    inputs = [_as_library(library, v) for v in _triplet(0, (4, 3)).values()]
    if library == "numpy" and returned == "a NumPy array":
        pytest.skip("an array of the inputs' library")
    with pytest.raises(LossTypeError) as info:
        lossreg.triplet_margin_with_distance_loss(*inputs, distance_function=distance)
    assert info.value.argument == "distance_function" and "real distances" in info.value.expected, info.value


@pytest.mark.parametrize("library", LIBRARIES)
def test_integer_distances_are_taken_as_torch_promotes_them(library):
    # Counts, such as a Hamming distance: torch adds them to the margin as numbers; array-api-strict
    # refused a float margin plus an integer array.
    def hamming(x, y):
        xp = array_api_compat.array_namespace(x, y)
        return xp.sum(xp.astype(x > y, xp.int64), axis=-1)

    inputs = _triplet(0, (4, 3))
    want = F.triplet_margin_with_distance_loss(*(torch.from_numpy(v) for v in inputs.values()),
                                               distance_function=hamming)
    got = lossreg.triplet_margin_with_distance_loss(*(_as_library(library, v) for v in inputs.values()),
                                                    distance_function=hamming)
    np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-6)


def test_half_precision_is_computed_in_float32():
    rng = np.random.default_rng(0)
    a, p, n = (torch.from_numpy(rng.normal(size=(4, 8))).half() for _ in range(3))
    got = lossreg.triplet_margin_loss(a, p, n, reduction="none")
    assert got.dtype == torch.float16
    want = F.triplet_margin_loss(a.float(), p.float(), n.float(), reduction="none").half()
    np.testing.assert_allclose(got.float().numpy(), want.float().numpy(), rtol=1e-3)
    x1, x2 = torch.from_numpy(rng.normal(size=(4, 8))).half(), torch.from_numpy(rng.normal(size=(4, 8))).half()
    y = torch.tensor([1, -1, 1, -1])
    got = lossreg.cosine_embedding_loss(x1, x2, y, reduction="none")
    assert got.dtype == torch.float16
    np.testing.assert_allclose(got.float().numpy(), F.cosine_embedding_loss(x1.float(), x2.float(), y,
                                                                            reduction="none").numpy(), atol=2e-3)


@pytest.mark.parametrize(("call", "error", "argument"), [
    (lambda: lossreg.margin_ranking_loss(np.ones(3), np.ones(3), np.ones((3, 1))), LossValueError, "target"),
    (lambda: lossreg.margin_ranking_loss(np.ones(3), np.ones(2), np.ones(3)), LossValueError, "input1/input2/target"),
    (lambda: lossreg.margin_ranking_loss(np.ones(3), np.ones(3), np.ones(3, dtype=bool)), LossTypeError, "target"),
    (lambda: lossreg.margin_ranking_loss(np.ones(3), np.ones(3), np.ones(3), margin=None), LossValueError, "margin"),
    (lambda: lossreg.hinge_embedding_loss(np.arange(3), np.ones(3)), LossTypeError, "input"),
    (lambda: lossreg.hinge_embedding_loss(np.ones(3), np.ones(3), reduction="batchmean"), LossValueError, "reduction"),
    (lambda: lossreg.cosine_embedding_loss(np.ones((2, 3)), np.ones((2, 3)), np.ones(())), LossValueError, "input1"),
    (lambda: lossreg.cosine_embedding_loss(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 1))), LossValueError, "target"),
    (lambda: lossreg.cosine_embedding_loss(np.ones((2, 3)), np.ones((2, 4)), np.ones(2)), LossValueError, "input1/input2"),
    (lambda: lossreg.cosine_embedding_loss(np.ones((2, 3)), np.ones((2, 3)), np.ones(3)), LossValueError, "target"),
    (lambda: lossreg.triplet_margin_loss(np.ones(3), np.ones(3), np.ones(3), margin=0.0), LossValueError, "margin"),
    (lambda: lossreg.triplet_margin_loss(np.ones(3), np.ones((1, 3)), np.ones(3)), LossValueError, "positive"),
    (lambda: lossreg.triplet_margin_loss(np.ones(3), np.ones(3), np.ones(3), swap="yes"), LossTypeError, "swap"),
    (lambda: lossreg.triplet_margin_loss(np.ones(3), np.ones(3), np.ones(3), p=math.nan), LossValueError, "p"),
    (lambda: lossreg.triplet_margin_loss(np.ones((2, 0)), np.ones((2, 0)), np.ones((2, 0)), p=-1.0), LossValueError, "p"),
    (lambda: lossreg.triplet_margin_with_distance_loss(np.ones(3), np.ones(3), np.ones(3), distance_function=2),
     LossTypeError, "distance_function"),
    (lambda: lossreg.triplet_margin_with_distance_loss(np.ones(3), np.ones(3), np.ones(3), margin=-1), LossValueError,
     "margin"),
    (lambda: lossreg.triplet_margin_loss(np.ones(3), torch.ones(3), np.ones(3)), LossTypeError, "anchor/positive/negative"),
])
def test_errors_name_the_argument(call, error, argument):
    with pytest.raises(error) as info:
        call()
    assert info.value.argument == argument
