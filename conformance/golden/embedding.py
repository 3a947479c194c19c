"""Golden cases for lossreg.losses.embedding, from torch.nn.functional in float64."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch.nn.functional as F

from generate import golden, raises

REDUCTIONS = ("none", "mean", "sum")
P_VALUES = (2.0, 1.0, 0.0, 0.5, 1.5, 3.0, math.inf, -math.inf, -1.0)


def _signs(rng: np.random.Generator, shape: tuple[int, ...], dtype: str = "float64") -> np.ndarray:
    return rng.choice([-1, 1], size=shape).astype(dtype)


def margin_ranking_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    loss = "margin_ranking_loss"
    layouts = {
        "vector": ((6,), (6,), (6,)),
        "scalar": ((), (), ()),
        "matrix": ((2, 3), (2, 3), (2, 3)),
        "broadcast": ((3, 1), (1, 4), (1, 1)),
    }
    for (layout, shapes), reduction, margin in itertools.product(layouts.items(), REDUCTIONS, (0.0, 0.5, -0.25)):
        x1, x2 = rng.normal(size=shapes[0]), rng.normal(size=shapes[1])
        yield golden(loss, F.margin_ranking_loss, f"{layout}-{reduction}-m{margin}",
                     {"input1": x1, "input2": x2, "target": _signs(rng, shapes[2])},
                     {"margin": margin, "reduction": reduction})
    x1, x2 = rng.normal(size=(5,)), rng.normal(size=(5,))
    for reduction in REDUCTIONS:
        yield golden(loss, F.margin_ranking_loss, f"int-target-{reduction}",
                     {"input1": x1, "input2": x2, "target": _signs(rng, (5,), "int64")}, {"reduction": reduction})
    # torch uses any label as given: -y (x1 - x2) + margin.
    yield golden(loss, F.margin_ranking_loss, "other-labels",
                 {"input1": x1, "input2": x2, "target": np.array([0.0, 0.5, 2.0, -3.0, 1.0])},
                 {"margin": 0.1, "reduction": "none"})
    # On the hinge (-y (x1 - x2) + margin = 0 exactly) torch's clamp_min passes the gradient.
    kink = {"input1": np.array([1.0, 2.0, 0.5, 3.0]), "input2": np.array([1.0, 1.0, 1.0, 2.5]),
            "target": np.array([1.0, -1.0, 1.0, 1.0])}
    for margin in (0.0, 0.5):
        yield golden(loss, F.margin_ranking_loss, f"on-the-hinge-m{margin}", kink, {"margin": margin, "reduction": "sum"})
    # NaN and infinite inputs, as torch's reference inputs pass them: clamp_min keeps a NaN with a
    # zero gradient, and -inf below the hinge gives 0.
    odd = {"input1": np.array([math.nan, 1.0, -math.inf, 2.0, math.inf]),
           "input2": np.array([0.5, math.nan, 1.0, math.inf, 0.0]), "target": np.array([1.0, -1.0, -1.0, 1.0, 1.0])}
    yield golden(loss, F.margin_ranking_loss, "nan-and-inf-none", odd, {"margin": 0.1, "reduction": "none"})
    for reduction in REDUCTIONS:
        yield golden(loss, F.margin_ranking_loss, f"empty-{reduction}",
                     {"input1": np.zeros((0,)), "input2": np.zeros((0,)), "target": np.zeros((0,))},
                     {"reduction": reduction})
    three = {"input1": x1[:3], "input2": x2[:3], "target": np.ones(3)}
    yield raises(loss, "ndim-mismatch", "LossValueError", {**three, "target": np.ones((3, 1))})
    yield raises(loss, "not-broadcastable", "LossValueError", {**three, "input2": x2[:2]})
    yield raises(loss, "integer-input", "LossTypeError", {**three, "input1": np.array([1, 2, 3])})
    yield raises(loss, "bad-reduction", "LossValueError", three, {"reduction": "mean_sum"})
    yield raises(loss, "margin-not-a-number", "LossValueError", three, {"margin": "1"})


def hinge_embedding_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    loss = "hinge_embedding_loss"
    layouts = {"vector": ((6,), (6,)), "matrix": ((2, 4), (2, 4)), "scalar": ((), ()), "broadcast": ((3, 1), (4,))}
    for (layout, (xs, ys)), reduction, margin in itertools.product(layouts.items(), REDUCTIONS, (1.0, 0.5, 2.0, -1.0)):
        x = np.abs(rng.normal(size=xs)) * 1.5  # distances, some on each side of the margin
        yield golden(loss, F.hinge_embedding_loss, f"{layout}-{reduction}-m{margin}",
                     {"input": x, "target": _signs(rng, ys)}, {"margin": margin, "reduction": reduction},
                     grads=["input"])
    x = rng.normal(size=(6,))
    yield golden(loss, F.hinge_embedding_loss, "int-target", {"input": x, "target": _signs(rng, (6,), "int64")},
                 {"reduction": "none"}, grads=["input"])
    # A label other than ±1 gets both terms: x + max(0, margin - x).
    yield golden(loss, F.hinge_embedding_loss, "other-labels",
                 {"input": x, "target": np.array([0.0, 2.0, -2.0, 0.5, 1.0, -1.0])}, {"reduction": "none"},
                 grads=["input"])
    # margin - x = 0 exactly: torch's clamp_min passes the gradient.
    yield golden(loss, F.hinge_embedding_loss, "on-the-hinge",
                 {"input": np.array([1.0, 0.5, 1.0, 2.0]), "target": np.array([-1, -1, 1, -1])},
                 {"reduction": "sum"}, grads=["input"])
    for reduction in REDUCTIONS:
        yield golden(loss, F.hinge_embedding_loss, f"empty-{reduction}",
                     {"input": np.zeros((0,)), "target": np.zeros((0,))}, {"reduction": reduction}, grads=["input"])
    yield raises(loss, "not-broadcastable", "LossValueError", {"input": np.ones(3), "target": np.ones(2)})
    yield raises(loss, "integer-input", "LossTypeError", {"input": np.array([1, 2]), "target": np.array([1, -1])})
    yield raises(loss, "bad-reduction", "LossValueError", {"input": np.ones(2), "target": np.ones(2)},
                 {"reduction": "avg"})


def cosine_embedding_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    loss = "cosine_embedding_loss"
    layouts = {
        "batch": ((4, 5), (4, 5), (4,)),
        "unbatched": ((5,), (5,), ()),
        "broadcast-input2": ((4, 3), (1, 3), (4,)),
        "broadcast-target": ((3, 4), (3, 4), (1,)),
    }
    for (layout, (s1, s2, st)), reduction, margin in itertools.product(layouts.items(), REDUCTIONS, (0.0, 0.3, -0.5)):
        yield golden(loss, F.cosine_embedding_loss, f"{layout}-{reduction}-m{margin}",
                     {"input1": rng.normal(size=s1), "input2": rng.normal(size=s2), "target": _signs(rng, st, "int64")},
                     {"margin": margin, "reduction": reduction}, grads=["input1", "input2"])
    x1, x2 = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    yield golden(loss, F.cosine_embedding_loss, "float-target", {"input1": x1, "input2": x2, "target": _signs(rng, (5,))},
                 {"reduction": "none"}, grads=["input1", "input2"])
    # Labels other than ±1 contribute 0.
    yield golden(loss, F.cosine_embedding_loss, "other-labels",
                 {"input1": x1, "input2": x2, "target": np.array([0, 2, -1, 1, -2])}, {"reduction": "none"},
                 grads=["input1", "input2"])
    # ε = 1e-12 on each squared norm: zero vectors give cos = 0; tiny ones are damped.
    yield golden(loss, F.cosine_embedding_loss, "zero-and-tiny-vectors",
                 {"input1": np.array([[0.0, 0.0, 0.0], [1e-7, 0.0, 0.0], [1e-7, 2e-7, 0.0], [1.0, 2.0, 3.0]]),
                  "input2": np.array([[1.0, 2.0, 3.0], [1e-7, 0.0, 0.0], [3e-7, -1e-7, 0.0], [0.0, 0.0, 0.0]]),
                  "target": np.array([1, 1, -1, -1])}, {"reduction": "none", "margin": -0.5},
                 grads=["input1", "input2"])
    # cos - margin = 0 exactly (orthogonal vectors, margin 0): torch's clamp_min passes the gradient.
    yield golden(loss, F.cosine_embedding_loss, "on-the-hinge",
                 {"input1": np.array([[1.0, 0.0], [0.0, 2.0]]), "input2": np.array([[0.0, 3.0], [1.0, 0.0]]),
                  "target": np.array([-1, -1])}, {"reduction": "sum"}, grads=["input1", "input2"])
    yield golden(loss, F.cosine_embedding_loss, "no-features",
                 {"input1": np.zeros((2, 0)), "input2": np.zeros((2, 0)), "target": np.array([1, -1])},
                 {"reduction": "none"}, grads=["input1", "input2"])
    for reduction in REDUCTIONS:
        yield golden(loss, F.cosine_embedding_loss, f"empty-{reduction}",
                     {"input1": np.zeros((0, 3)), "input2": np.zeros((0, 3)), "target": np.zeros((0,), dtype="int64")},
                     {"reduction": reduction}, grads=["input1", "input2"])
    ok = {"input1": x1, "input2": x2, "target": np.ones(5, dtype="int64")}
    yield raises(loss, "target-2d", "LossValueError", {**ok, "target": np.ones((5, 1), dtype="int64")})
    yield raises(loss, "inputs-3d", "LossValueError", {**ok, "input1": x1[None], "input2": x2[None]})
    yield raises(loss, "scalar-target-2d-inputs", "LossValueError", {**ok, "target": np.array(1)})
    yield raises(loss, "feature-mismatch", "LossValueError", {**ok, "input2": x2[:, :2]})
    yield raises(loss, "batch-mismatch", "LossValueError", {**ok, "target": np.ones(4, dtype="int64")})
    yield raises(loss, "integer-input", "LossTypeError", {**ok, "input1": np.ones((5, 3), dtype="int64")})


def _triplet_layouts(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, ...]]:
    return {
        "batch": tuple(rng.normal(size=(4, 5)) for _ in range(3)),
        "unbatched": tuple(rng.normal(size=(5,)) for _ in range(3)),
        "3d": tuple(rng.normal(size=(2, 3, 4)) for _ in range(3)),
        "scalar": tuple(rng.normal(size=()) for _ in range(3)),
        "broadcast": (rng.normal(size=(4, 3)), rng.normal(size=(1, 3)), rng.normal(size=(4, 3))),
    }


def triplet_margin_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    loss = "triplet_margin_loss"
    layouts = _triplet_layouts(rng)
    margins = itertools.cycle((1.0, 0.5, 2.5))
    for (layout, (a, p, n)), p_norm, swap, reduction in itertools.product(layouts.items(), P_VALUES, (False, True),
                                                                          REDUCTIONS):
        yield golden(loss, F.triplet_margin_loss, f"{layout}-p{p_norm}-swap{swap}-{reduction}",
                     {"anchor": a, "positive": p, "negative": n},
                     {"margin": next(margins), "p": p_norm, "swap": swap, "reduction": reduction})
    a, p, n = layouts["batch"]
    for eps, margin in itertools.product((0.0, 1e-6, 0.1, -0.05), (0.25, 1.0, 4.0)):
        yield golden(loss, F.triplet_margin_loss, f"eps{eps}-m{margin}", {"anchor": a, "positive": p, "negative": n},
                     {"eps": eps, "margin": margin, "reduction": "none"})
    yield golden(loss, F.triplet_margin_loss, "defaults", {"anchor": a, "positive": p, "negative": n})
    # positive == anchor with eps = 0: a zero difference, where torch's norm gradients are 0.
    for p_norm in (2.0, 1.0, 3.0, 0.5, math.inf, -1.0):
        yield golden(loss, F.triplet_margin_loss, f"zero-distance-p{p_norm}",
                     {"anchor": a, "positive": a.copy(), "negative": a + 0.1 * n},
                     {"eps": 0.0, "p": p_norm, "margin": 3.0, "reduction": "sum"})
    # Some coordinates equal: zero entries in the difference (gradient 0 for p < 1 and p = 1).
    q = a.copy()
    q[:, ::2] += 1e-6  # a - q + eps = 0 in these coordinates
    for p_norm in (0.5, 1.0, 1.5, 3.0):
        yield golden(loss, F.triplet_margin_loss, f"zero-entries-p{p_norm}", {"anchor": a, "positive": q, "negative": n},
                     {"p": p_norm, "margin": 5.0, "reduction": "none"}, dtypes=["float64"])
    yield golden(loss, F.triplet_margin_loss, "no-features-p2",
                 {"anchor": np.zeros((2, 0)), "positive": np.zeros((2, 0)), "negative": np.zeros((2, 0))},
                 {"reduction": "none"})
    for reduction in REDUCTIONS:
        yield golden(loss, F.triplet_margin_loss, f"empty-{reduction}",
                     {"anchor": np.zeros((0, 3)), "positive": np.zeros((0, 3)), "negative": np.zeros((0, 3))},
                     {"reduction": reduction})
    ok = {"anchor": a, "positive": p, "negative": n}
    yield raises(loss, "margin-zero", "LossValueError", ok, {"margin": 0.0})
    yield raises(loss, "margin-negative", "LossValueError", ok, {"margin": -1.0})
    yield raises(loss, "ndim-mismatch", "LossValueError", {**ok, "positive": p[0]})
    yield raises(loss, "not-broadcastable", "LossValueError", {**ok, "negative": n[:3]})
    yield raises(loss, "integer-input", "LossTypeError", {**ok, "anchor": np.ones((4, 5), dtype="int64")})
    yield raises(loss, "p-nan", "LossValueError", ok, {"p": math.nan})
    yield raises(loss, "swap-not-bool", "LossTypeError", ok, {"swap": 1})
    yield raises(loss, "inf-norm-of-nothing", "LossValueError",
                 {"anchor": np.zeros((2, 0)), "positive": np.zeros((2, 0)), "negative": np.zeros((2, 0))},
                 {"p": math.inf})


def triplet_with_distance_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    # The distance_function option cannot go into JSON: these cases use the default distance;
    # tests/test_parity_embedding.py covers custom ones.
    loss = "triplet_margin_with_distance_loss"
    layouts = _triplet_layouts(rng)
    for (layout, (a, p, n)), swap, reduction, margin in itertools.product(layouts.items(), (False, True), REDUCTIONS,
                                                                          (1.0, 0.3, 3.0)):
        yield golden(loss, F.triplet_margin_with_distance_loss, f"{layout}-swap{swap}-{reduction}-m{margin}",
                     {"anchor": a, "positive": p, "negative": n},
                     {"swap": swap, "reduction": reduction, "margin": margin})
    a, p, n = layouts["batch"]
    ok = {"anchor": a, "positive": p, "negative": n}
    yield golden(loss, F.triplet_margin_with_distance_loss, "defaults", ok)
    yield raises(loss, "margin-zero", "LossValueError", ok, {"margin": 0.0})
    yield raises(loss, "ndim-mismatch", "LossValueError", {**ok, "negative": n[0]})
    yield raises(loss, "distance-not-callable", "LossTypeError", ok, {"distance_function": "euclidean"})
    yield raises(loss, "bad-reduction", "LossValueError", ok, {"reduction": "max"})


def cases() -> Iterator[dict[str, Any]]:
    rng = np.random.default_rng(2024)
    yield from margin_ranking_cases(rng)
    yield from hinge_embedding_cases(rng)
    yield from cosine_embedding_cases(rng)
    yield from triplet_margin_cases(rng)
    yield from triplet_with_distance_cases(rng)
