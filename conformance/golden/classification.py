"""Golden cases for lossreg.losses.classification, from torch.nn.functional in float64."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch.nn.functional as F

from generate import golden, raises

REDUCTIONS = ("none", "mean", "sum")


def _ce_n1(input: Any, target: Any, **options: Any) -> Any:
    """torch refuses (N, 1) targets; the source document allows them, meaning (N,)."""
    return F.cross_entropy(input, target.reshape(-1), **options)


def _nll_n1(input: Any, target: Any, **options: Any) -> Any:
    return F.nll_loss(input, target.reshape(-1), **options)


def _index_layouts(rng: np.random.Generator, c: int) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    yield "unbatched", rng.normal(size=(c,)), np.array(2)
    yield "batch", rng.normal(size=(4, c)), rng.integers(0, c, size=(4,))
    yield "3d", rng.normal(size=(2, c, 3)), rng.integers(0, c, size=(2, 3))
    yield "4d", rng.normal(size=(2, c, 2, 2)), rng.integers(0, c, size=(2, 2, 2))


def cross_entropy_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    c = 5
    weight = rng.uniform(0.2, 2.0, size=(c,))
    for layout, x, t in _index_layouts(rng, c):
        for reduction in REDUCTIONS:
            for smoothing in (0.0, 0.1, 1.0):
                for w_name, w in (("", None), ("-weight", weight)):
                    options: dict[str, Any] = {"reduction": reduction}
                    if smoothing:
                        options["label_smoothing"] = smoothing
                    if w is not None:
                        options["weight"] = w
                    yield golden("cross_entropy", F.cross_entropy, f"{layout}-{reduction}-ls{smoothing}{w_name}",
                                 {"input": x, "target": t}, options)
    # ignore_index, inside and outside [0, C), with weights and smoothing.
    x, t = rng.normal(size=(6, c)), np.array([0, 3, 1, 3, 4, 3])
    for reduction in REDUCTIONS:
        yield golden("cross_entropy", F.cross_entropy, f"ignore-3-{reduction}", {"input": x, "target": t},
                     {"reduction": reduction, "ignore_index": 3, "weight": weight, "label_smoothing": 0.2})
        t_neg = np.array([0, -100, 1, -100, 4, 2])
        yield golden("cross_entropy", F.cross_entropy, f"ignore-default-{reduction}", {"input": x, "target": t_neg},
                     {"reduction": reduction})
        yield golden("cross_entropy", F.cross_entropy, f"all-ignored-{reduction}",
                     {"input": x[:3], "target": np.array([-100, -100, -100])}, {"reduction": reduction})
    # The source document's (N, 1) targets, and its example's shapes: N=3, C=5, labels [1, 0, 4].
    x = np.array([[0.3367, 0.1288, 0.2345, 0.2303, -1.1229], [-0.1863, 2.2082, -0.6380, 0.4617, 0.2674],
                  [0.5349, 0.8094, 1.1103, -1.6898, -0.9890]])
    yield golden("cross_entropy", F.cross_entropy, "document-shapes", {"input": x, "target": np.array([1, 0, 4])},
                 source="document, 交叉熵损失 example (its logits are random; these are fixed)")
    for reduction in REDUCTIONS:
        yield golden("cross_entropy", _ce_n1, f"document-n1-target-{reduction}",
                     {"input": x, "target": np.array([[1], [0], [4]])}, {"reduction": reduction},
                     source="document: y may have shape (N, 1); torch rejects it, lossreg reads it as (N,)")
    # Extremes: ±1e4 logits (no overflow), -inf in non-target classes, an empty batch.
    big = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0], [3.0, 2.0, 1e4]])
    yield golden("cross_entropy", F.cross_entropy, "logits-1e4", {"input": big, "target": np.array([1, 1, 0])},
                 {"reduction": "none"}, dtypes=["float32", "float64"])
    neg_inf = np.array([[2.0, -np.inf, 0.5], [-np.inf, 1.0, -np.inf]])
    yield golden("cross_entropy", F.cross_entropy, "minus-inf-non-target",
                 {"input": neg_inf, "target": np.array([0, 1])}, {"reduction": "none"})
    for reduction in REDUCTIONS:
        yield golden("cross_entropy", F.cross_entropy, f"empty-batch-{reduction}",
                     {"input": np.zeros((0, 4)), "target": np.zeros((0,), dtype="int64")}, {"reduction": reduction})
    # Probability targets.
    for layout, shape in (("unbatched", (c,)), ("batch", (4, c)), ("3d", (2, c, 3))):
        x = rng.normal(size=shape)
        p = rng.dirichlet(np.ones(c), size=int(np.prod(shape)) // c).reshape((-1, c))
        p = np.moveaxis(p.reshape((shape[0], *shape[2:], c)), -1, 1) if len(shape) > 1 else p.reshape(shape)
        for reduction in REDUCTIONS:
            for smoothing in (0.0, 0.25):
                for w_name, w in (("", None), ("-weight", weight)):
                    options = {"reduction": reduction, "label_smoothing": smoothing}
                    if w is not None:
                        options["weight"] = w
                    yield golden("cross_entropy", F.cross_entropy, f"probs-{layout}-{reduction}-ls{smoothing}{w_name}",
                                 {"input": x, "target": p}, options)
    x = rng.normal(size=(3, c))
    yield raises("cross_entropy", "index-out-of-range", "LossValueError", {"input": x, "target": np.array([0, 5, 1])})
    yield raises("cross_entropy", "negative-index", "LossValueError", {"input": x, "target": np.array([0, -1, 1])})
    yield raises("cross_entropy", "float-indices", "LossValueError", {"input": x, "target": np.array([0.0, 1.0, 2.0])})
    yield raises("cross_entropy", "target-shape", "LossValueError", {"input": x, "target": np.array([0, 1])})
    yield raises("cross_entropy", "weight-length", "LossValueError", {"input": x, "target": np.array([0, 1, 2])},
                 {"weight": np.ones(4)})
    yield raises("cross_entropy", "smoothing-above-1", "LossValueError", {"input": x, "target": np.array([0, 1, 2])},
                 {"label_smoothing": 1.5})
    yield raises("cross_entropy", "probs-with-ignore-index", "LossValueError",
                 {"input": x, "target": np.full((3, c), 0.2)}, {"ignore_index": 1})
    yield raises("cross_entropy", "integer-input", "LossTypeError",
                 {"input": np.zeros((3, c), dtype="int64"), "target": np.array([0, 1, 2])})


def nll_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    c = 4
    weight = rng.uniform(0.2, 2.0, size=(c,))
    for layout, x, t in _index_layouts(rng, c):
        logp = x - np.log(np.exp(x).sum(axis=0 if x.ndim == 1 else 1, keepdims=True))
        for reduction in REDUCTIONS:
            for w_name, w in (("", None), ("-weight", weight)):
                options: dict[str, Any] = {"reduction": reduction}
                if w is not None:
                    options["weight"] = w
                yield golden("nll_loss", F.nll_loss, f"{layout}-{reduction}{w_name}", {"input": logp, "target": t},
                             options)
    x = rng.normal(size=(5, c))
    for reduction in REDUCTIONS:
        yield golden("nll_loss", F.nll_loss, f"ignore-2-{reduction}", {"input": x, "target": np.array([0, 2, 1, 2, 3])},
                     {"reduction": reduction, "ignore_index": 2, "weight": weight})
        yield golden("nll_loss", F.nll_loss, f"ignore-outside-{reduction}",
                     {"input": x, "target": np.array([0, 7, 1, 7, 3])}, {"reduction": reduction, "ignore_index": 7})
        yield golden("nll_loss", F.nll_loss, f"all-ignored-{reduction}", {"input": x[:2], "target": np.array([-100, -100])},
                     {"reduction": reduction})
        yield golden("nll_loss", _nll_n1, f"n1-target-{reduction}", {"input": x, "target": np.array([[0], [2], [1], [3], [3]])},
                     {"reduction": reduction}, source="the source document's (N, 1) labels, as for CrossEntropyLoss")
    yield raises("nll_loss", "index-out-of-range", "LossValueError", {"input": x, "target": np.array([0, 4, 1, 2, 3])})
    yield raises("nll_loss", "float-target", "LossTypeError", {"input": x, "target": np.zeros((5,))})


def bce_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    doc = {"input": np.array([0.1, 0.2, 0.8, 0.9]), "target": np.array([0.0, 0.0, 1.0, 1.0])}
    for shape_name, shape in (("vector", (6,)), ("column", (6, 1)), ("matrix", (2, 3)), ("scalar", ())):
        p = rng.uniform(0.02, 0.98, size=shape)
        y = rng.uniform(0.0, 1.0, size=shape)  # soft targets, as torch allows
        for reduction in REDUCTIONS:
            yield golden("binary_cross_entropy", F.binary_cross_entropy, f"{shape_name}-{reduction}",
                         {"input": p, "target": y}, {"reduction": reduction})
    p, y = rng.uniform(0.02, 0.98, size=(2, 3)), rng.integers(0, 2, size=(2, 3)).astype("float64")
    for w_name, w in (("full", rng.uniform(0.5, 2, size=(2, 3))), ("row", rng.uniform(0.5, 2, size=(3,))),
                      ("column", rng.uniform(0.5, 2, size=(2, 1))), ("scalar", np.array(0.7))):
        for reduction in REDUCTIONS:
            yield golden("binary_cross_entropy", F.binary_cross_entropy, f"weight-{w_name}-{reduction}",
                         {"input": p, "target": y}, {"weight": w, "reduction": reduction})
    # Exact 0 and 1: each log is clamped at -100. torch's gradient there comes from its formula
    # (x - y) / max(x (1 - x), 1e-12), which is not the derivative; values only.
    exact = {"input": np.array([0.0, 1.0, 0.0, 1.0, 0.5]), "target": np.array([0.0, 1.0, 1.0, 0.0, 1.0])}
    for reduction in REDUCTIONS:
        yield golden("binary_cross_entropy", F.binary_cross_entropy, f"exact-0-1-{reduction}", exact,
                     {"reduction": reduction}, grads=False)
    yield golden("binary_cross_entropy", F.binary_cross_entropy, "document-example-1d", doc,
                 source="document, 二元交叉熵损失 example (prints no output; torch gives 0.1643)")
    yield golden("binary_cross_entropy", F.binary_cross_entropy, "document-example-column",
                 {k: v.reshape(4, -1) for k, v in doc.items()}, source="document, second BCE example, .reshape(4, -1)")
    yield raises("binary_cross_entropy", "probability-above-1", "LossValueError",
                 {"input": np.array([0.5, 1.5]), "target": np.array([0.0, 1.0])})
    yield raises("binary_cross_entropy", "negative-probability", "LossValueError",
                 {"input": np.array([-0.1, 0.5]), "target": np.array([0.0, 1.0])})
    yield raises("binary_cross_entropy", "shape-n-vs-n1", "LossValueError",
                 {"input": np.array([0.5, 0.5]), "target": np.array([[0.0], [1.0]])})
    yield raises("binary_cross_entropy", "weight-not-broadcastable", "LossValueError",
                 {"input": np.full((2, 3), 0.5), "target": np.zeros((2, 3))}, {"weight": np.ones((4,))})


def cases() -> Iterator[dict[str, Any]]:
    rng = np.random.default_rng(1126)
    yield from cross_entropy_cases(rng)
    yield from nll_cases(rng)
    yield from bce_cases(rng)
