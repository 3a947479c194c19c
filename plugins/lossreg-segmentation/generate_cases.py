"""Reference conformance cases for lossreg-segmentation, computed independently of lossreg.

    pip install mpmath numpy
    python generate_cases.py     # rewrites src/lossreg_segmentation/cases/segmentation.json

Each reference below is the published formula written out element by element in mpmath at 40
significant digits: no lossreg code and no array library takes part, so a case checks the
package's array-API code against the paper, not against itself. Values are rounded to float64.
The gradient of ``sum(loss)`` with respect to each input element is mpmath's numerical
derivative (``mpmath.diff``, at the working precision) of the same formula. Each case cites the
source of its formula in its "source" field.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mpmath as mp
import numpy as np

from lossreg.testing import error_case as raises
from lossreg.testing import mp_case as case
from lossreg.testing import mp_reduce as reduce
from lossreg.testing import mp_sum as s
from lossreg.testing import per_sample, write_cases

mp.mp.dps = 40
OUT = Path(__file__).resolve().parent / "src" / "lossreg_segmentation" / "cases" / "segmentation.json"
REDUCTIONS = ("none", "mean", "sum")

DICE = ("Milletari et al. 2016, V-Net, eq. 1, with the linear denominator of keras.losses.Dice "
        "and MONAI DiceLoss's smoothing")
TVERSKY = "Salehi et al. 2017, Tversky loss function for image segmentation, eq. 3"
GDL = ("Sudre et al. 2017, Generalised Dice overlap as a deep learning loss function, eq. 2; "
       "absent classes weighted as MONAI GeneralizedDiceLoss (batch=False)")
BFOCAL = ("Lin et al. 2017, Focal Loss for Dense Object Detection, eq. 5 (alpha-balanced), as "
          "torchvision.ops.sigmoid_focal_loss")
FOCAL = "Lin et al. 2017, Focal Loss for Dense Object Detection, eq. 5, on softmax probabilities"


# --- the references -------------------------------------------------------------------------

def dice(input: np.ndarray, target: np.ndarray, smooth: float = 1.0, reduction: str = "mean") -> Any:
    def one(x: np.ndarray, y: np.ndarray) -> Any:
        return 1 - (2 * s(x * y) + smooth) / (s(x) + s(y) + smooth)

    return reduce(per_sample(one, input, target), reduction)


def tversky(input: np.ndarray, target: np.ndarray, alpha: float = 0.5, beta: float = 0.5, smooth: float = 1.0,
            reduction: str = "mean") -> Any:
    def one(x: np.ndarray, y: np.ndarray) -> Any:
        tp, fp, fn = s(x * y), s(x * (1 - y)), s((1 - x) * y)
        return 1 - (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)

    return reduce(per_sample(one, input, target), reduction)


def generalized_dice(input: np.ndarray, target: np.ndarray, smooth: float = 1e-5, reduction: str = "mean") -> Any:
    def one(x: np.ndarray, y: np.ndarray) -> Any:  # x, y: (C, d1, ...)
        volumes = [s(y[c]) for c in range(x.shape[0])]
        finite = [1 / v**2 for v in volumes if v > 0]
        largest = max(finite) if finite else mp.mpf(0)
        w = [1 / v**2 if v > 0 else largest for v in volumes]
        numer = 2 * mp.fsum(w[c] * s(x[c] * y[c]) for c in range(x.shape[0])) + smooth
        denom = mp.fsum(w[c] * (s(x[c]) + volumes[c]) for c in range(x.shape[0])) + smooth
        return 1 - numer / denom

    return reduce(per_sample(one, input, target), reduction)


def binary_focal(input: np.ndarray, target: np.ndarray, alpha: float | None = 0.25, gamma: float = 2.0,
                 reduction: str = "mean") -> Any:
    def one(x: Any, t: Any) -> Any:
        p, q = 1 / (1 + mp.exp(-x)), 1 / (1 + mp.exp(x))  # σ(x), 1 - σ(x)
        ce = -(t * mp.log(p) + (1 - t) * mp.log(q))
        one_minus_pt = t * q + (1 - t) * p
        weight = 1 if alpha is None else alpha * t + (1 - alpha) * (1 - t)
        return weight * (one_minus_pt**gamma if gamma else 1) * ce

    values = np.frompyfunc(one, 2, 1)(input, target)
    return reduce(np.asarray(values, dtype=object), reduction)


def focal(input: np.ndarray, target: np.ndarray, gamma: float = 2.0, weight: Any = None, ignore_index: int = -100,
          reduction: str = "mean") -> Any:
    if input.ndim == 1:
        value = focal(input[None], np.asarray(target)[None], gamma, weight, ignore_index, reduction)
        return value[0] if reduction == "none" else value
    x = np.moveaxis(input, 1, -1)  # (N, *d, C)
    losses = np.empty(np.shape(target), dtype=object)
    weights = []
    for index in np.ndindex(losses.shape):
        t = int(target[index])
        if t == ignore_index:
            losses[index] = mp.mpf(0)
            continue
        scores = x[index]
        total = mp.fsum(mp.exp(v) for v in scores)
        p = mp.exp(scores[t]) / total
        rest = mp.fsum(mp.exp(v) for c, v in enumerate(scores) if c != t) / total  # 1 - p
        w = 1 if weight is None else mp.mpf(weight[t])
        weights.append(w)
        losses[index] = -w * (rest**gamma if gamma else 1) * mp.log(p)
    return reduce(losses, reduction, mp.fsum(weights))


# --- the cases ------------------------------------------------------------------------------

def probabilities(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.uniform(0.02, 0.98, size=shape)


def masks(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return (rng.uniform(size=shape) < 0.4).astype("float64")


def overlap_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    both = ("input", "target")
    for loss, ref, src in (("dice_loss", dice, DICE), ("tversky_loss", tversky, TVERSKY)):
        for shape in ((3, 4), (2, 2, 3), (4,)):
            x, y = probabilities(rng, shape), masks(rng, shape)
            for reduction in REDUCTIONS:
                yield case(loss, f"{len(shape)}d-{reduction}", ref, {"input": x, "target": y},
                           {"reduction": reduction}, grads=both, source=src)
        x, y = probabilities(rng, (2, 5)), rng.uniform(size=(2, 5))
        yield case(loss, "soft-targets", ref, {"input": x, "target": y}, {"reduction": "none"}, grads=both, source=src)
        yield case(loss, "no-smoothing", ref, {"input": x, "target": y}, {"smooth": 0.0, "reduction": "none"},
                   grads=both, source=src)
        empty = np.zeros((2, 3))
        yield case(loss, "empty-masks", ref, {"input": empty, "target": empty}, {"reduction": "none"},
                   grads=both, source=src + " (an empty prediction of an empty mask costs 0)")
        yield case(loss, "perfect", ref, {"input": np.array([[1.0, 0.0, 1.0]]), "target": np.array([[1.0, 0.0, 1.0]])},
                   {"smooth": 0.0, "reduction": "sum"}, grads=both, source=src)
        yield raises(loss, "shape-mismatch", "LossValueError", {"input": np.zeros((2, 3)), "target": np.zeros((3, 2))})
        yield raises(loss, "input-above-1", "LossValueError", {"input": np.array([[0.5, 1.5]]),
                                                              "target": np.array([[0.0, 1.0]])})
        yield raises(loss, "negative-target", "LossValueError", {"input": np.array([[0.5, 0.5]]),
                                                                "target": np.array([[-1.0, 1.0]])})
        yield raises(loss, "0-d", "LossValueError", {"input": np.array(0.5), "target": np.array(1.0)})
        yield raises(loss, "integer-target", "LossTypeError", {"input": np.zeros((2, 2)),
                                                              "target": np.zeros((2, 2), dtype="int64")})
        yield raises(loss, "negative-smooth", "LossValueError", {"input": np.zeros((1, 2)), "target": np.zeros((1, 2))},
                     {"smooth": -1.0})
        yield raises(loss, "bad-reduction", "LossValueError", {"input": np.zeros((1, 2)), "target": np.zeros((1, 2))},
                     {"reduction": "batchmean"})
    x, y = probabilities(rng, (3, 6)), masks(rng, (3, 6))
    for alpha, beta in ((0.3, 0.7), (0.7, 0.3), (1.0, 1.0)):
        yield case("tversky_loss", f"alpha{alpha}-beta{beta}", tversky, {"input": x, "target": y},
                   {"alpha": alpha, "beta": beta, "reduction": "none"}, grads=both, source=TVERSKY)
    yield raises("tversky_loss", "negative-alpha", "LossValueError", {"input": x, "target": y}, {"alpha": -0.1})


def generalized_dice_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    def softmax(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def one_hot(labels: np.ndarray, c: int) -> np.ndarray:
        return np.moveaxis(np.eye(c)[labels], -1, 1)

    for shape in ((2, 3, 4), (2, 3, 2, 3)):
        x = softmax(rng.normal(size=shape))
        y = one_hot(rng.integers(0, shape[1], size=(shape[0], *shape[2:])), shape[1])
        for reduction in REDUCTIONS:
            yield case("generalized_dice_loss", f"{len(shape)}d-{reduction}", generalized_dice,
                       {"input": x, "target": y}, {"reduction": reduction}, source=GDL)
    x = softmax(rng.normal(size=(2, 4, 3)))
    y = one_hot(np.array([[0, 0, 1], [2, 2, 2]]), 4)  # classes 2, 3 absent from sample 0; 0, 1, 3 from sample 1
    yield case("generalized_dice_loss", "absent-classes", generalized_dice, {"input": x, "target": y},
               {"reduction": "none"}, source=GDL)
    yield case("generalized_dice_loss", "soft-targets", generalized_dice,
               {"input": x, "target": softmax(rng.normal(size=(2, 4, 3)))}, {"reduction": "none", "smooth": 0.0},
               source=GDL)
    yield case("generalized_dice_loss", "empty-target", generalized_dice,
               {"input": x, "target": np.zeros((2, 4, 3))}, {"reduction": "none"},
               source=GDL + " (every class absent: every weight 0, the loss is 1 - s / s = 0)")
    yield raises("generalized_dice_loss", "1-d", "LossValueError", {"input": np.zeros(3), "target": np.zeros(3)})
    yield raises("generalized_dice_loss", "input-above-1", "LossValueError",
                 {"input": np.full((1, 2, 2), 2.0), "target": np.zeros((1, 2, 2))})
    yield raises("generalized_dice_loss", "shape-mismatch", "LossValueError",
                 {"input": np.zeros((1, 2, 2)), "target": np.zeros((1, 2, 3))})


def binary_focal_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    both = ("input", "target")
    for shape in ((6,), (3, 4), (2, 2, 2)):
        x, y = rng.normal(scale=2.0, size=shape), masks(rng, shape)
        for reduction in REDUCTIONS:
            yield case("binary_focal_loss", f"{len(shape)}d-{reduction}", binary_focal, {"input": x, "target": y},
                       {"reduction": reduction}, grads=both, source=BFOCAL)
    x, y = rng.normal(scale=2.0, size=(2, 4)), rng.uniform(size=(2, 4))
    for options in ({"gamma": 0.0}, {"gamma": 0.5}, {"gamma": 1.0, "alpha": 0.75}, {"alpha": None},
                    {"alpha": None, "gamma": 0.0}):
        label = "-".join(f"{k}{v}" for k, v in options.items())
        yield case("binary_focal_loss", label, binary_focal, {"input": x, "target": y},
                   {**options, "reduction": "none"}, grads=both, source=BFOCAL)
    large = np.array([1e4, -1e4, 30.0, -30.0, 0.0])
    yield case("binary_focal_loss", "large-logits", binary_focal,
               {"input": large, "target": np.array([1.0, 0.0, 0.0, 1.0, 1.0])},
               {"reduction": "none"}, dtypes=["float32", "float64"], source=BFOCAL + " (no overflow, finite gradients)")
    yield raises("binary_focal_loss", "target-above-1", "LossValueError",
                 {"input": np.zeros(2), "target": np.array([0.0, 2.0])})
    yield raises("binary_focal_loss", "shape-mismatch", "LossValueError", {"input": np.zeros(2), "target": np.zeros(3)})
    yield raises("binary_focal_loss", "alpha-above-1", "LossValueError", {"input": np.zeros(2), "target": np.zeros(2)},
                 {"alpha": 1.5})
    yield raises("binary_focal_loss", "negative-gamma", "LossValueError", {"input": np.zeros(2), "target": np.zeros(2)},
                 {"gamma": -1.0})
    yield raises("binary_focal_loss", "integer-input", "LossTypeError",
                 {"input": np.zeros(2, dtype="int64"), "target": np.zeros(2)})


def focal_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    for name, shape in (("unbatched", (4,)), ("2d", (5, 3)), ("3d", (2, 3, 4))):
        x = rng.normal(scale=2.0, size=shape)
        classes, batch = (shape[0], ()) if len(shape) == 1 else (shape[1], (shape[0], *shape[2:]))
        t = rng.integers(0, classes, size=batch)
        for reduction in REDUCTIONS:
            yield case("focal_loss", f"{name}-{reduction}", focal, {"input": x, "target": np.asarray(t)},
                       {"reduction": reduction}, source=FOCAL)
    x, t = rng.normal(scale=2.0, size=(5, 3)), np.array([0, 2, 1, 2, -100])
    weight = np.array([0.25, 1.0, 2.0])
    for options in ({"gamma": 0.0}, {"gamma": 0.5}, {"gamma": 3.0}, {"weight": weight},
                    {"weight": weight, "gamma": 1.0}):
        label = "-".join(k + ("" if k == "weight" else str(v)) for k, v in options.items())
        for reduction in ("none", "mean"):
            yield case("focal_loss", f"ignored-{label}-{reduction}", focal, {"input": x, "target": t},
                       {**options, "reduction": reduction}, source=FOCAL)
    yield case("focal_loss", "ignore-index-7", focal, {"input": x, "target": np.array([7, 0, 7, 1, 2])},
               {"ignore_index": 7, "reduction": "mean"}, source=FOCAL)
    yield case("focal_loss", "all-ignored", focal, {"input": x[:2], "target": np.array([-100, -100])},
               {"reduction": "mean"}, grads=(), source=FOCAL + " (0 / 0 = NaN, as torch's cross_entropy)")
    yield case("focal_loss", "large-logits", focal, {"input": np.array([[1e4, -1e4, 0.0], [0.0, 0.0, 1e4]]),
                                                      "target": np.array([1, 2])},
               {"reduction": "none"}, dtypes=["float32", "float64"], source=FOCAL + " (log-softmax by max subtraction)")
    yield raises("focal_loss", "target-out-of-range", "LossValueError",
                 {"input": x, "target": np.array([0, 1, 2, 3, 0])})
    yield raises("focal_loss", "float-target", "LossTypeError", {"input": x, "target": np.zeros(5)})
    yield raises("focal_loss", "target-shape", "LossValueError", {"input": x, "target": np.zeros(4, dtype="int64")})
    yield raises("focal_loss", "negative-gamma", "LossValueError", {"input": x, "target": np.zeros(5, dtype="int64")},
                 {"gamma": -1.0})


def cases() -> list[dict[str, Any]]:
    rng = np.random.default_rng(20261127)
    return [*overlap_cases(rng), *generalized_dice_cases(rng), *binary_focal_cases(rng), *focal_cases(rng)]


if __name__ == "__main__":
    found = cases()
    write_cases(OUT, found, generator="generate_cases.py", mpmath=mp.__version__)
    print(f"{OUT.name}: {len(found)} cases")
