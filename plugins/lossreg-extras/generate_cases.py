"""Reference conformance cases for lossreg-extras, computed independently of lossreg.

    pip install mpmath numpy
    python generate_cases.py     # rewrites src/lossreg_extras/cases/extras.json

Each reference below is the published formula written out element by element in mpmath at 40
significant digits: no lossreg code and no array library takes part, so a case checks the
package's array-API code against the paper, not against itself. Values are rounded to float64.
The gradient of ``sum(loss)`` with respect to each input element is mpmath's numerical
derivative (``mpmath.diff``, at the working precision) of the same formula. Each case cites the
source of its formula in its "source" field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mpmath as mp
import numpy as np

from lossreg.testing import error_case as raises
from lossreg.testing import mp_case as case
from lossreg.testing import mp_reduce as reduce
from lossreg.testing import elementwise, write_cases

mp.mp.dps = 40
OUT = Path(__file__).resolve().parent / "src" / "lossreg_extras" / "cases" / "extras.json"
REDUCTIONS = ("none", "mean", "sum")



# --- the references -------------------------------------------------------------------------

LOGCOSH = "Keras 3 keras.losses.log_cosh: log(cosh(y_pred - y_true))"
MAPE = "Keras 3 keras.losses.mean_absolute_percentage_error: 100 |y - x| / max(|y|, epsilon)"
MSLE = "Keras 3 keras.losses.mean_squared_logarithmic_error: (log(max(x, eps) + 1) - log(max(y, eps) + 1))^2"
QUANTILE = ("Koenker & Bassett 1978, Regression Quantiles; pinball loss max(q d, (q - 1) d), d = y - x, "
            "as sklearn.metrics.mean_pinball_loss")
POLY1 = "Leng et al. 2022, PolyLoss, eq. 3: -log p_t + epsilon (1 - p_t)"
GCE = "Zhang & Sabuncu 2018, Generalized Cross Entropy Loss for Training Deep Neural Networks with Noisy Labels, eq. 6"
SPARSEMAX = "Martins & Astudillo 2016, From Softmax to Sparsemax, eq. 20, threshold by the sort of Algorithm 1"
ZLOSS = "Chowdhery et al. 2022, PaLM, section 5: z-loss = (log Z)^2, Z the softmax normalizer"
NTXENT = "Chen et al. 2020, SimCLR, eq. 1 (NT-Xent), averaged over all 2N positive pairs"


def log_cosh(input: np.ndarray, target: np.ndarray, reduction: str = "mean") -> Any:
    return elementwise(lambda x, y: mp.log(mp.cosh(x - y)), reduction, input, target)


def mape(input: np.ndarray, target: np.ndarray, eps: float = 1e-7, reduction: str = "mean") -> Any:
    return elementwise(lambda x, y: 100 * abs(x - y) / max(abs(y), mp.mpf(eps)), reduction, input, target)


def msle(input: np.ndarray, target: np.ndarray, eps: float = 1e-7, reduction: str = "mean") -> Any:
    def one(x: Any, y: Any) -> Any:
        return (mp.log(max(x, mp.mpf(eps)) + 1) - mp.log(max(y, mp.mpf(eps)) + 1)) ** 2

    return elementwise(one, reduction, input, target)


def quantile(input: np.ndarray, target: np.ndarray, quantile: float = 0.5, reduction: str = "mean") -> Any:
    return elementwise(lambda x, y: max(quantile * (y - x), (quantile - 1) * (y - x)), reduction, input, target)


def per_target(loss: Callable[[list[Any], int], Any]) -> Callable[..., Any]:
    """A class-index reference from ``loss(scores, t)``; handles (C) and (N, C, d...) and ignore_index."""

    def reference(input: np.ndarray, target: np.ndarray, ignore_index: int = -100, reduction: str = "mean",
                  **options: Any) -> Any:
        if input.ndim == 1:
            value = reference(input[None], np.asarray(target)[None], ignore_index, reduction, **options)
            return value[0] if reduction == "none" else value
        x = np.moveaxis(input, 1, -1)
        losses = np.empty(np.shape(target), dtype=object)
        count = 0
        for index in np.ndindex(losses.shape):
            t = int(target[index])
            if t == ignore_index:
                losses[index] = mp.mpf(0)
                continue
            count += 1
            losses[index] = loss(list(x[index]), t, **options)
        return reduce(losses, reduction, count)

    return reference


def softmax_parts(scores: list[Any], t: int) -> tuple[Any, Any]:
    """``(p_t, 1 - p_t)``, the second summed from the other classes (no cancellation)."""
    total = mp.fsum(mp.exp(v) for v in scores)
    return mp.exp(scores[t]) / total, mp.fsum(mp.exp(v) for c, v in enumerate(scores) if c != t) / total


@per_target
def poly1(scores: list[Any], t: int, epsilon: float = 1.0) -> Any:
    p, rest = softmax_parts(scores, t)
    return -mp.log(p) + epsilon * rest


@per_target
def gce(scores: list[Any], t: int, q: float = 0.7) -> Any:
    p, _ = softmax_parts(scores, t)
    return (1 - p**q) / q


@per_target
def sparsemax(scores: list[Any], t: int) -> Any:
    z = sorted(scores, reverse=True)
    k = max(k for k in range(1, len(z) + 1) if 1 + k * z[k - 1] > mp.fsum(z[:k]))
    tau = (mp.fsum(z[:k]) - 1) / k
    return -scores[t] + mp.fsum(v**2 - tau**2 for v in scores if v > tau) / 2 + mp.mpf(1) / 2


def z_reference(input: np.ndarray, reduction: str = "mean") -> Any:
    if input.ndim == 1:
        value = z_reference(input[None], "none")[0]
        return value if reduction == "none" else reduce(np.asarray([value], dtype=object), reduction)
    x = np.moveaxis(input, 1, -1)
    losses = np.empty(x.shape[:-1], dtype=object)
    for index in np.ndindex(losses.shape):
        losses[index] = mp.log(mp.fsum(mp.exp(v) for v in x[index])) ** 2
    return reduce(losses, reduction)


def nt_xent(input: np.ndarray, positive: np.ndarray, temperature: float = 0.5, reduction: str = "mean") -> Any:
    z = [*input, *positive]
    z = [row / mp.sqrt(mp.fsum(v * v for v in row)) for row in z]
    n = len(input)
    sim = [[mp.fsum(a * b for a, b in zip(zi, zj)) / temperature for zj in z] for zi in z]
    losses = np.empty(2 * n, dtype=object)
    for i in range(2 * n):
        partner = i + n if i < n else i - n
        losses[i] = -sim[i][partner] + mp.log(mp.fsum(mp.exp(sim[i][k]) for k in range(2 * n) if k != i))
    return reduce(losses, reduction)


# --- the cases ------------------------------------------------------------------------------

def regression_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    both = ("input", "target")
    shapes = {"scalar": (), "vector": (5,), "matrix": (3, 4), "3d": (2, 2, 3)}
    for loss, ref, src, grads in (("log_cosh_loss", log_cosh, LOGCOSH, both), ("mape_loss", mape, MAPE, ("input",)),
                                  ("msle_loss", msle, MSLE, both), ("quantile_loss", quantile, QUANTILE, ("input",))):
        positive = loss == "msle_loss"
        for shape_name, shape in shapes.items():
            if positive:
                x, y = rng.exponential(2.0, size=shape), rng.exponential(2.0, size=shape)
            else:
                x, y = rng.normal(size=shape), rng.normal(size=shape)
            for reduction in REDUCTIONS:
                yield case(loss, f"{shape_name}-{reduction}", ref, {"input": x, "target": y}, {"reduction": reduction},
                           grads=grads, source=src)
        yield raises(loss, "shape-mismatch", "LossValueError", {"input": np.zeros(3), "target": np.zeros((3, 1))})
        yield raises(loss, "integer-input", "LossTypeError",
                     {"input": np.zeros(3, dtype="int64"), "target": np.zeros(3)})
        yield raises(loss, "bad-reduction", "LossValueError", {"input": np.zeros(3), "target": np.zeros(3)},
                     {"reduction": "average"})
    yield case("log_cosh_loss", "large-errors", log_cosh, {"input": np.array([1e4, -1e4, 800.0]),
                                                          "target": np.array([-1e4, 1e4, 0.0])},
               {"reduction": "none"}, grads=both, dtypes=["float32", "float64"], source=LOGCOSH + " (no overflow)")
    yield case("log_cosh_loss", "small-errors", log_cosh, {"input": np.array([1.0, 2.0, 3.0]),
                                                          "target": np.array([1.0, 2.001, 2.9999])},
               {"reduction": "none"}, grads=both, dtypes=["float32", "float64"], exact=True,
               source=LOGCOSH + " (no cancellation near 0; tie has gradient 0)")
    yield case("log_cosh_loss", "empty", log_cosh, {"input": np.zeros((0,)), "target": np.zeros((0,))},
               {"reduction": "sum"}, grads=both, source=LOGCOSH)
    y = np.array([0.0, 1e-9, -2.0, 4.0])
    yield case("mape_loss", "zero-targets", mape, {"input": np.array([0.5, 0.5, -1.0, 3.0]), "target": y},
               {"reduction": "none"}, dtypes=["float32", "float64"],  # 5e8 is beyond float16
               source=MAPE + " (targets below epsilon divide by epsilon)")
    yield case("mape_loss", "eps", mape, {"input": np.array([0.5, 0.5, -1.0, 3.0]), "target": y},
               {"eps": 0.1, "reduction": "sum"}, source=MAPE)
    yield case("mape_loss", "ties", mape, {"input": np.array([1.0, 2.0, -3.0]), "target": np.array([1.0, 2.5, -3.0])},
               {"reduction": "sum"}, source=MAPE + " (|d| has gradient 0 at d = 0, as torch's l1_loss)",
               subgradients={"input": [0.0, -100 / 2.5, 0.0]})
    yield raises("mape_loss", "negative-eps", "LossValueError", {"input": np.zeros(3), "target": np.zeros(3)},
                 {"eps": -1.0})
    x, y = np.array([-0.5, 0.0, 2.0, 3.0, -5.0]), np.array([1.0, 0.0, -0.2, 3.5, 2.0])
    yield case("msle_loss", "negatives-clamped", msle, {"input": x, "target": y}, {"reduction": "none"},
               grads=both, source=MSLE + " (values below epsilon count as epsilon and get no gradient)")
    yield case("msle_loss", "eps", msle, {"input": x, "target": y}, {"eps": 0.5, "reduction": "mean"},
               grads=both, source=MSLE)
    x, y = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    for q in (0.1, 0.9, 0.0, 1.0):
        yield case("quantile_loss", f"quantile{q}", quantile, {"input": x, "target": y},
                   {"quantile": q, "reduction": "none"}, source=QUANTILE)
    x, y = np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.5, 2.0])
    yield case("quantile_loss", "ties", quantile, {"input": x, "target": y}, {"quantile": 0.25, "reduction": "sum"},
               source=QUANTILE + " (at y = x the gradient is that of the y >= x side, -q)",
               subgradients={"input": [-0.25, -0.25, 0.75]})
    yield raises("quantile_loss", "quantile-above-1", "LossValueError", {"input": np.zeros(3), "target": np.zeros(3)},
                 {"quantile": 1.5})


def class_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    def logits(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        c = shape[0] if len(shape) == 1 else shape[1]
        target = rng.integers(0, c, size=() if len(shape) == 1 else (shape[0], *shape[2:]))
        return rng.normal(scale=2.0, size=shape), np.asarray(target)

    for loss, ref, src in (("poly1_cross_entropy", poly1, POLY1), ("generalized_cross_entropy", gce, GCE),
                           ("sparsemax_loss", sparsemax, SPARSEMAX)):
        for name, shape in (("unbatched", (4,)), ("2d", (5, 3)), ("3d", (2, 4, 3))):
            x, t = logits(shape)
            for reduction in REDUCTIONS:
                yield case(loss, f"{name}-{reduction}", ref, {"input": x, "target": t}, {"reduction": reduction},
                           source=src)
        x, t = rng.normal(scale=2.0, size=(4, 5)), np.array([1, -100, 4, 0])
        yield case(loss, "ignored", ref, {"input": x, "target": t}, {"reduction": "mean"}, source=src)
        yield case(loss, "ignore-index-3", ref, {"input": x, "target": np.array([3, 3, 4, 0])},
                   {"ignore_index": 3, "reduction": "none"}, source=src)
        yield case(loss, "all-ignored", ref, {"input": x[:2], "target": np.array([-100, -100])}, {"reduction": "mean"},
                   grads=(), source=src + " (0 / 0 = NaN, as torch's cross_entropy)")
        yield case(loss, "large-logits", ref, {"input": np.array([[1e4, -1e4, 0.0], [0.0, 0.0, 1e4], [5e3, 5e3, -5e3]]),
                                               "target": np.array([1, 2, 0])},
                   {"reduction": "none"}, dtypes=["float32", "float64"], source=src + " (no overflow at logits of 1e4)")
        yield raises(loss, "target-out-of-range", "LossValueError", {"input": x, "target": np.array([0, 1, 5, 0])})
        yield raises(loss, "float-target", "LossTypeError", {"input": x, "target": np.zeros(4)})
        yield raises(loss, "target-shape", "LossValueError", {"input": x, "target": np.zeros(3, dtype="int64")})
        yield raises(loss, "0-d-input", "LossValueError", {"input": np.array(1.0), "target": np.array(0)})
    x, t = rng.normal(scale=2.0, size=(5, 4)), np.array([0, 3, 1, 1, 2])
    for epsilon in (0.0, -1.0, 2.5):
        yield case("poly1_cross_entropy", f"epsilon{epsilon}", poly1, {"input": x, "target": t},
                   {"epsilon": epsilon, "reduction": "none"}, source=POLY1)
    yield raises("poly1_cross_entropy", "epsilon-below-minus-1", "LossValueError", {"input": x, "target": t},
                 {"epsilon": -2.0})
    for q in (0.1, 0.5, 1.0):
        yield case("generalized_cross_entropy", f"q{q}", gce, {"input": x, "target": t}, {"q": q, "reduction": "none"},
                   source=GCE)
    yield raises("generalized_cross_entropy", "q-zero", "LossValueError", {"input": x, "target": t}, {"q": 0.0})
    ties = np.array([[1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 0.0, -1.0], [0.3, 0.3, 0.2, -3.0], [5.0, 0.0, 0.0, 0.0]])
    yield case("sparsemax_loss", "ties-and-sparse-support", sparsemax,
               {"input": ties, "target": np.array([0, 2, 1, 0])},
               {"reduction": "none"}, source=SPARSEMAX + " (tied logits enter or leave the support together)")
    for name, shape in (("unbatched", (6,)), ("2d", (4, 5)), ("3d", (2, 3, 2))):
        x = rng.normal(scale=2.0, size=shape)
        for reduction in REDUCTIONS:
            yield case("z_loss", f"{name}-{reduction}", z_reference, {"input": x}, {"reduction": reduction},
                       source=ZLOSS)
    yield case("z_loss", "large-logits", z_reference, {"input": np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]])},
               {"reduction": "none"}, dtypes=["float32", "float64"], source=ZLOSS + " (no overflow)")
    yield raises("z_loss", "0-d", "LossValueError", {"input": np.array(1.0)})
    yield raises("z_loss", "no-classes", "LossValueError", {"input": np.zeros((2, 0))})
    yield raises("z_loss", "integer-input", "LossTypeError", {"input": np.zeros((2, 3), dtype="int64")})


def contrastive_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    both = ("input", "positive")
    for n, d in ((4, 3), (2, 5), (1, 2)):
        a = rng.normal(size=(n, d))
        b = a + rng.normal(scale=0.5, size=(n, d))
        for reduction in REDUCTIONS:
            yield case("nt_xent_loss", f"{n}x{d}-{reduction}", nt_xent, {"input": a, "positive": b},
                       {"reduction": reduction}, grads=both, source=NTXENT)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    for temperature in (0.1, 1.0):
        yield case("nt_xent_loss", f"temperature{temperature}", nt_xent, {"input": a, "positive": b},
                   {"temperature": temperature, "reduction": "none"}, grads=both, source=NTXENT)
    yield case("nt_xent_loss", "scale-invariant", nt_xent, {"input": 1e3 * a, "positive": 1e-3 * b},
               {"temperature": 0.2, "reduction": "none"}, grads=both, dtypes=["float32", "float64"],
               source=NTXENT + " (embeddings are scaled to unit length first)")
    yield raises("nt_xent_loss", "shape-mismatch", "LossValueError", {"input": a, "positive": b[:2]})
    yield raises("nt_xent_loss", "1-d", "LossValueError", {"input": a[0], "positive": b[0]})
    yield raises("nt_xent_loss", "empty-batch", "LossValueError",
                 {"input": np.zeros((0, 4)), "positive": np.zeros((0, 4))})
    yield raises("nt_xent_loss", "zero-temperature", "LossValueError", {"input": a, "positive": b},
                 {"temperature": 0.0})


def cases() -> list[dict[str, Any]]:
    rng = np.random.default_rng(20261128)
    return [*regression_cases(rng), *class_cases(rng), *contrastive_cases(rng)]


if __name__ == "__main__":
    found = cases()
    write_cases(OUT, found, generator="generate_cases.py", mpmath=mp.__version__)
    print(f"{OUT.name}: {len(found)} cases")
