"""Golden cases for lossreg.losses.classification, from torch.nn.functional in float64."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
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
    yield raises("binary_cross_entropy", "target-above-1", "LossValueError",
                 {"input": np.array([0.3, 0.6]), "target": np.array([1.5, 0.0])})
    yield raises("binary_cross_entropy", "negative-target", "LossValueError",
                 {"input": np.array([0.3, 0.6]), "target": np.array([0.0, -0.5])})
    yield raises("binary_cross_entropy", "shape-n-vs-n1", "LossValueError",
                 {"input": np.array([0.5, 0.5]), "target": np.array([[0.0], [1.0]])})
    yield raises("binary_cross_entropy", "weight-not-broadcastable", "LossValueError",
                 {"input": np.full((2, 3), 0.5), "target": np.zeros((2, 3))}, {"weight": np.ones((4,))})


def _reduced(values: Any, reduction: str) -> Any:
    return {"none": values, "mean": values.mean(), "sum": values.sum()}[reduction]


def _soft_margin_stable(input: Any, target: Any, reduction: str = "mean") -> Any:
    """log(1 + exp(-y x)) without overflow; torch's own formula gives inf once -y x > 709."""
    return _reduced(torch.logaddexp(torch.zeros_like(input), -input * target), reduction)


def _empty_sum(reference: Any) -> Any:
    """torch's multi(label)_margin_loss leave the "sum" of an empty batch uninitialized; it is 0."""
    return lambda input, target, **options: reference(input, target, **{**options, "reduction": "none"}).sum()


def _bf16(x: np.ndarray) -> np.ndarray:
    """``x`` rounded to bfloat16 values, so that every run dtype holds the inputs exactly.

    σ(x) - y cancels where the soft target y is near σ(x); rounding x and y to bfloat16 there
    moves the gradient by more than bfloat16's tolerance, whatever the implementation.
    """
    return torch.from_numpy(np.asarray(x, dtype="float64")).to(torch.bfloat16).double().numpy()


def bce_with_logits_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    name, ref = "binary_cross_entropy_with_logits", F.binary_cross_entropy_with_logits
    for shape_name, shape in (("scalar", ()), ("vector", (6,)), ("column", (6, 1)), ("matrix", (3, 4)),
                              ("3d", (2, 3, 4))):
        x, y = _bf16(rng.normal(scale=2.0, size=shape)), _bf16(rng.uniform(0.0, 1.0, size=shape))  # soft targets
        for reduction in REDUCTIONS:
            yield golden(name, ref, f"{shape_name}-{reduction}", {"input": x, "target": y}, {"reduction": reduction})
    x, y = rng.normal(scale=2.0, size=(3, 4)), rng.integers(0, 2, size=(3, 4)).astype("float64")
    shapes = {"full": (3, 4), "row": (4,), "row-2d": (1, 4), "column": (3, 1), "scalar": ()}
    for w_name, shape in shapes.items():
        w = rng.uniform(0.5, 2.0, size=shape)
        for reduction in REDUCTIONS:
            yield golden(name, ref, f"weight-{w_name}-{reduction}", {"input": x, "target": y},
                         {"weight": w, "reduction": reduction})
            yield golden(name, ref, f"pos-weight-{w_name}-{reduction}", {"input": x, "target": y},
                         {"pos_weight": w, "reduction": reduction})
    w, pw = _bf16(rng.uniform(0.5, 2.0, size=(3, 1))), _bf16(rng.uniform(0.5, 3.0, size=(4,)))
    for reduction in REDUCTIONS:
        yield golden(name, ref, f"weight-and-pos-weight-{reduction}", {"input": x, "target": y},
                     {"weight": w, "pos_weight": pw, "reduction": reduction})
    # pos_weight weighs the class (last) axis of K-dimensional input, with soft targets.
    x3, y3 = _bf16(rng.normal(size=(2, 3, 4))), _bf16(rng.uniform(size=(2, 3, 4)))
    for reduction in REDUCTIONS:
        yield golden(name, ref, f"3d-pos-weight-class-axis-{reduction}", {"input": x3, "target": y3},
                     {"pos_weight": pw, "weight": _bf16(rng.uniform(0.5, 2.0, size=(3, 1))), "reduction": reduction})
    # Logits of ±1e4 (exp would overflow) and exact 0 (where max(-x, 0) has its kink).
    big = np.array([1e4, -1e4, 1e4, -1e4, 0.0, 0.0, 30.0, -30.0])
    big_y = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.25, 0.75])
    for reduction in REDUCTIONS:
        yield golden(name, ref, f"logits-1e4-{reduction}", {"input": big, "target": big_y},
                     {"reduction": reduction}, dtypes=["float32", "float64"])
        yield golden(name, ref, f"logits-1e4-pos-weight-{reduction}", {"input": big, "target": big_y},
                     {"reduction": reduction, "pos_weight": np.array(2.5)}, dtypes=["float32", "float64"])
    yield golden(name, ref, "zero-logits", {"input": np.zeros(4), "target": np.array([0.0, 1.0, 0.5, 1.0])},
                 {"reduction": "none", "pos_weight": np.array([1.0, 2.0, 3.0, 0.5])})
    for reduction in REDUCTIONS:
        yield golden(name, ref, f"empty-batch-{reduction}", {"input": np.zeros((0, 3)), "target": np.zeros((0, 3))},
                     {"reduction": reduction, "pos_weight": np.ones(3)})
    x, y = rng.normal(size=(3, 4)), np.zeros((3, 4))
    yield raises(name, "shape-mismatch", "LossValueError", {"input": x, "target": np.zeros((4,))})
    yield raises(name, "shape-n-vs-n1", "LossValueError", {"input": x[0], "target": np.zeros((4, 1))})
    yield raises(name, "integer-input", "LossTypeError", {"input": np.zeros((3, 4), dtype="int64"), "target": y})
    yield raises(name, "integer-target", "LossTypeError", {"input": x, "target": np.zeros((3, 4), dtype="int64")})
    yield raises(name, "bad-reduction", "LossValueError", {"input": x, "target": y}, {"reduction": "batchmean"})
    yield raises(name, "weight-wrong-length", "LossValueError", {"input": x, "target": y}, {"weight": np.ones(5)})
    yield raises(name, "pos-weight-wrong-length", "LossValueError", {"input": x, "target": y},
                 {"pos_weight": np.ones(3)})
    yield raises(name, "pos-weight-enlarges-result", "LossValueError", {"input": x, "target": y},
                 {"pos_weight": np.ones((2, 3, 4))})
    yield raises(name, "integer-pos-weight", "LossTypeError", {"input": x, "target": y},
                 {"pos_weight": np.ones(4, dtype="int64")})


def soft_margin_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    name, ref = "soft_margin_loss", F.soft_margin_loss
    for shape_name, shape in (("scalar", ()), ("vector", (6,)), ("matrix", (3, 4)), ("3d", (2, 3, 2))):
        x, y = rng.normal(scale=2.0, size=shape), rng.choice([-1.0, 1.0], size=shape)
        for reduction in REDUCTIONS:
            yield golden(name, ref, f"{shape_name}-{reduction}", {"input": x, "target": y}, {"reduction": reduction},
                         grads=["input"])  # torch does not differentiate the target
    x, y = rng.normal(size=(5,)), rng.uniform(-1.0, 1.0, size=(5,))
    yield golden(name, ref, "real-valued-targets", {"input": x, "target": y}, {"reduction": "sum"}, grads=["input"])
    yield golden(name, ref, "zero-margin", {"input": np.array([0.0, 0.0, 2.0]), "target": np.array([1.0, -1.0, 0.0])},
                 {"reduction": "none"}, grads=["input"])
    # Large margins: torch's log1p(exp(-y x)) is inf (and its gradient NaN) beyond -y x ≈ 709;
    # lossreg is stable, so the reference is the stable formula, equal to torch where torch is finite.
    big = {"input": np.array([1e4, -1e4, 1e4, -1e4, 50.0, -50.0]),
           "target": np.array([1.0, 1.0, -1.0, -1.0, -1.0, 1.0])}
    for reduction in REDUCTIONS:
        yield golden(name, _soft_margin_stable, f"margin-1e4-{reduction}", big, {"reduction": reduction},
                     dtypes=["float32", "float64"], source="stable formula: torch overflows to inf here")
    x = rng.normal(size=(3,))
    yield raises(name, "shape-mismatch", "LossValueError", {"input": x, "target": np.ones((3, 1))})
    yield raises(name, "integer-input", "LossTypeError", {"input": np.zeros(3, dtype="int64"), "target": np.ones(3)})
    # Integer ±1 labels, as torch takes them (exact in every floating dtype).
    yield golden(name, ref, "integer-labels", {"input": x, "target": np.array([1, -1, 1])}, {"reduction": "none"},
                 grads=["input"])
    yield raises(name, "bad-reduction", "LossValueError", {"input": x, "target": np.ones(3)}, {"reduction": "avg"})


def multilabel_soft_margin_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    name, ref = "multilabel_soft_margin_loss", F.multilabel_soft_margin_loss
    c = 4
    for layout, shape in (("unbatched", (c,)), ("batch", (3, c)), ("3d", (2, 3, c))):
        x, y = rng.normal(scale=2.0, size=shape), rng.integers(0, 2, size=shape).astype("float64")
        weights = {"": None, "-weight": rng.uniform(0.5, 2.0, size=(c,))}
        if len(shape) > 1:
            weights["-weight-full"] = rng.uniform(0.5, 2.0, size=shape)
            weights["-weight-column"] = rng.uniform(0.5, 2.0, size=(*shape[:-1], 1))
        for reduction in REDUCTIONS:
            for w_name, w in weights.items():
                options: dict[str, Any] = {"reduction": reduction}
                if w is not None:
                    options["weight"] = w
                yield golden(name, ref, f"{layout}-{reduction}{w_name}", {"input": x, "target": y}, options)
    x, y = rng.normal(size=(3, c)), rng.uniform(size=(3, c))
    yield golden(name, ref, "soft-targets", {"input": x, "target": y}, {"reduction": "none"})
    big = np.array([[1e4, -1e4, 0.0, 1e4], [-1e4, 1e4, 20.0, -1e4]])
    big_y = np.array([[1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.5]])
    for reduction in REDUCTIONS:
        yield golden(name, ref, f"logits-1e4-{reduction}", {"input": big, "target": big_y}, {"reduction": reduction},
                     dtypes=["float32", "float64"])
    for reduction in REDUCTIONS:
        yield golden(name, ref, f"empty-batch-{reduction}", {"input": np.zeros((0, c)), "target": np.zeros((0, c))},
                     {"reduction": reduction})
    yield raises(name, "shape-mismatch", "LossValueError", {"input": x, "target": np.zeros((c,))})
    yield raises(name, "integer-input", "LossTypeError",
                 {"input": np.zeros((3, c), dtype="int64"), "target": np.zeros((3, c))})
    # Multi-hot labels as integers, as torch's own tests pass them (booleans: torch refuses them too).
    hot = rng.integers(0, 2, size=(3, c))
    yield golden(name, ref, "integer-multi-hot", {"input": x, "target": hot}, {"weight": rng.uniform(0.5, 2.0, size=(c,))})
    yield raises(name, "bool-target", "LossTypeError", {"input": x, "target": hot.astype(bool)})
    yield raises(name, "0d-input", "LossValueError", {"input": np.array(0.5), "target": np.array(1.0)})
    yield raises(name, "bad-reduction", "LossValueError", {"input": x, "target": y}, {"reduction": "mean_sum"})
    yield raises(name, "weight-wrong-length", "LossValueError", {"input": x, "target": y}, {"weight": np.ones(c + 1)})


def multi_margin_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    name, ref = "multi_margin_loss", F.multi_margin_loss
    c = 5
    weight = rng.uniform(0.5, 2.0, size=(c,))
    layouts = (("unbatched", rng.normal(size=(c,)), np.array(3)),
               ("batch", rng.normal(size=(6, c)), rng.integers(0, c, size=(6,))),
               ("batch-of-1", rng.normal(size=(1, c)), np.array([0])))
    for layout, x, t in layouts:
        for reduction in REDUCTIONS:
            for p in (1, 2):
                for margin in (1.0, 0.5):
                    for w_name, w in (("", None), ("-weight", weight)):
                        options: dict[str, Any] = {"reduction": reduction, "p": p, "margin": margin}
                        if w is not None:
                            options["weight"] = w
                        yield golden(name, ref, f"{layout}-{reduction}-p{p}-m{margin}{w_name}",
                                     {"input": x, "target": t}, options)
    # Ties at the margin: margin - x[y] + x[i] is exactly 0 (gradient 0, as torch), or just above.
    ties = np.array([[1.5, 0.5, 0.25, 0.5], [0.0, 1.0, 0.0, 2.0], [2.0, 1.0, 1.0, 1.0]])
    for p in (1, 2):
        for reduction in REDUCTIONS:
            yield golden(name, ref, f"ties-p{p}-{reduction}", {"input": ties, "target": np.array([0, 1, 3])},
                         {"p": p, "reduction": reduction})
    yield golden(name, ref, "margin-0", {"input": ties, "target": np.array([0, 1, 2])},
                 {"margin": 0.0, "reduction": "none"})
    yield golden(name, ref, "negative-margin", {"input": ties, "target": np.array([0, 1, 2])},
                 {"margin": -0.75, "p": 2, "weight": np.array([0.5, 1.0, 2.0, 3.0]), "reduction": "none"})
    yield golden(name, ref, "one-class", {"input": np.array([[0.3], [-2.0]]), "target": np.array([0, 0])},
                 {"reduction": "none"})
    for reduction in ("none", "sum"):  # torch's "sum" of an empty batch is uninitialized memory
        yield golden(name, _empty_sum(ref) if reduction == "sum" else ref, f"empty-batch-{reduction}",
                     {"input": np.zeros((0, c)), "target": np.zeros((0,), dtype="int64")}, {"reduction": reduction})
    x, t = rng.normal(size=(3, c)), np.array([0, 4, 2])
    yield raises(name, "class-out-of-range", "LossValueError", {"input": x, "target": np.array([0, c, 2])})
    yield raises(name, "negative-class", "LossValueError", {"input": x, "target": np.array([0, -1, 2])})
    yield raises(name, "unbatched-out-of-range", "LossValueError", {"input": x[0], "target": np.array(c)})
    yield raises(name, "p-3", "LossValueError", {"input": x, "target": t}, {"p": 3})
    yield raises(name, "p-0", "LossValueError", {"input": x, "target": t}, {"p": 0})
    yield raises(name, "bad-reduction", "LossValueError", {"input": x, "target": t}, {"reduction": "batchmean"})
    yield raises(name, "weight-wrong-length", "LossValueError", {"input": x, "target": t}, {"weight": np.ones(c - 1)})
    yield raises(name, "weight-2d", "LossValueError", {"input": x, "target": t}, {"weight": np.ones((1, c))})
    yield raises(name, "integer-input", "LossTypeError", {"input": np.zeros((3, c), dtype="int64"), "target": t})
    yield raises(name, "float-target", "LossTypeError", {"input": x, "target": np.zeros(3)})
    yield raises(name, "target-length", "LossValueError", {"input": x, "target": np.array([0, 1])})
    yield raises(name, "target-n1", "LossValueError", {"input": x, "target": t.reshape(3, 1)})
    yield raises(name, "3d-input", "LossValueError",
                 {"input": np.zeros((2, c, 2)), "target": np.zeros((2, 2), dtype="int64")})
    # Forms torch's own tests use: one score (0-d, C = 1) with a 0-d target; an unbatched target as (1,).
    for reduction in REDUCTIONS:
        yield golden(name, ref, f"0d-input-{reduction}", {"input": np.array(1.25), "target": np.array(0)},
                     {"reduction": reduction})
        yield golden(name, ref, f"unbatched-target-1-{reduction}",
                     {"input": np.array([-0.5, 1.5, 0.25, 2.0]), "target": np.array([1])}, {"p": 2, "reduction": reduction})


def _label_lists(rng: np.random.Generator, n: int, c: int) -> np.ndarray:
    """Rows of distinct class indices, a random number of them, then -1 and random padding."""
    rows = []
    for _ in range(n):
        k = int(rng.integers(0, c + 1))
        row = np.concatenate([rng.permutation(c)[:k], rng.integers(-1, c, size=c - k)])
        if k < c:
            row[k] = -1
        rows.append(row)
    return np.array(rows, dtype="int64")


def multilabel_margin_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    name, ref = "multilabel_margin_loss", F.multilabel_margin_loss
    c = 5
    x, t = rng.normal(size=(8, c)), _label_lists(rng, 8, c)
    for reduction in REDUCTIONS:
        yield golden(name, ref, f"batch-{reduction}", {"input": x, "target": t}, {"reduction": reduction})
        yield golden(name, ref, f"unbatched-{reduction}", {"input": x[0], "target": np.array([3, 0, -1, 1, 4])},
                     {"reduction": reduction})
    special = np.array([
        [-1, -1, -1, -1, -1],  # all padding: no targets, loss 0
        [2, -1, 0, 1, 3],  # padding in the middle: only class 2 counts
        [4, 3, 2, 1, 0],  # every class a target: nothing to compare against
        [1, 1, -1, 0, 0],  # a class listed twice counts twice, as in torch
        [0, 3, -1, -1, -1],
    ])
    for reduction in REDUCTIONS:
        yield golden(name, ref, f"special-rows-{reduction}", {"input": rng.normal(size=(5, c)), "target": special},
                     {"reduction": reduction})
    yield golden(name, ref, "unbatched-all-padding", {"input": x[1], "target": np.full((c,), -1)},
                 {"reduction": "none"})
    # Ties: 1 - (x[j] - x[i]) exactly 0 has gradient 0, as in torch.
    ties = np.array([[2.0, 1.0, 1.0, 0.5], [0.0, 1.0, 0.25, 2.0]])
    for reduction in REDUCTIONS:
        yield golden(name, ref, f"ties-{reduction}",
                     {"input": ties, "target": np.array([[0, -1, 3, 3], [3, 1, -1, 0]])}, {"reduction": reduction})
    yield golden(name, ref, "one-class", {"input": np.array([[0.3], [-2.0]]), "target": np.array([[0], [-1]])},
                 {"reduction": "none"})
    for reduction in ("none", "sum"):  # torch's "sum" of an empty batch is uninitialized memory
        yield golden(name, _empty_sum(ref) if reduction == "sum" else ref, f"empty-batch-{reduction}",
                     {"input": np.zeros((0, c)), "target": np.zeros((0, c), dtype="int64")}, {"reduction": reduction})
    x = rng.normal(size=(2, c))
    yield raises(name, "class-out-of-range", "LossValueError",
                 {"input": x, "target": np.array([[0, c, -1, 0, 0], [1, -1, 0, 0, 0]])})
    yield raises(name, "below-minus-1", "LossValueError",
                 {"input": x, "target": np.array([[0, -2, 1, 0, 0], [1, -1, 0, 0, 0]])})
    yield raises(name, "out-of-range-after-padding", "LossValueError",
                 {"input": x, "target": np.array([[0, -1, 7, 0, 0], [1, -1, 0, 0, 0]])})
    yield raises(name, "shape-mismatch", "LossValueError", {"input": x, "target": np.array([[0, -1], [1, -1]])})
    yield raises(name, "unbatched-target-2d", "LossValueError",
                 {"input": x[0], "target": np.zeros((1, c), dtype="int64")})
    yield raises(name, "integer-input", "LossTypeError", {"input": np.zeros((2, c), dtype="int64"),
                                                         "target": np.zeros((2, c), dtype="int64")})
    yield raises(name, "float-target", "LossTypeError", {"input": x, "target": np.zeros((2, c))})
    yield raises(name, "bad-reduction", "LossValueError", {"input": x, "target": np.zeros((2, c), dtype="int64")},
                 {"reduction": "elementwise_mean"})
    yield raises(name, "3d-input", "LossValueError",
                 {"input": np.zeros((2, 3, c)), "target": np.zeros((2, 3, c), dtype="int64")})
    # One score (0-d, C = 1), as torch's own tests pass it: a target (0) or none (-1); loss 0 either way.
    for label in (0, -1):
        yield golden(name, ref, f"0d-input-target{label}", {"input": np.array(-0.75), "target": np.array(label)},
                     {"reduction": "none"})


def cases() -> Iterator[dict[str, Any]]:
    rng = np.random.default_rng(1126)
    yield from cross_entropy_cases(rng)
    yield from nll_cases(rng)
    yield from bce_cases(rng)
    # Each later family draws from its own generator, so adding cases never changes the others.
    yield from bce_with_logits_cases(np.random.default_rng(11261))
    yield from soft_margin_cases(np.random.default_rng(11262))
    yield from multilabel_soft_margin_cases(np.random.default_rng(11263))
    yield from multi_margin_cases(np.random.default_rng(11264))
    yield from multilabel_margin_cases(np.random.default_rng(11265))
