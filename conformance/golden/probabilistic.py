"""Golden cases for lossreg.losses.probabilistic, from torch.nn.functional in float64."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch.nn.functional as F

from generate import golden, raises

REDUCTIONS = ("none", "mean", "sum")
SHAPES = {"scalar": (), "vector": (5,), "matrix": (3, 4), "3d": (2, 3, 2), "empty": (0,), "empty-batch": (0, 3)}
ZEROS = {"input": np.zeros(3), "target": np.zeros(3)}


def _log_softmax(x: np.ndarray) -> np.ndarray:
    if x.ndim == 0 or x.size == 0:
        return x
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _kl(input: Any, target: Any, **options: Any) -> Any:
    with warnings.catch_warnings():  # torch warns that "mean" is not the KL divergence; it is what it computes
        warnings.simplefilter("ignore", UserWarning)
        return F.kl_div(input, target, **options)


def kl_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    for shape_name, shape in SHAPES.items():
        x = _log_softmax(rng.normal(size=shape))
        log_t = _log_softmax(rng.normal(size=shape))
        for log_target in (False, True):
            t = log_t if log_target else np.exp(log_t)
            for reduction in (*REDUCTIONS, "batchmean"):
                options: dict[str, Any] = {"reduction": reduction}
                if log_target:
                    options["log_target"] = True
                yield golden("kl_div", _kl, f"{shape_name}-{reduction}-log_target{log_target}",
                             {"input": x, "target": t}, options)
    # 0·log 0 = 0; torch's target gradient there is NaN (xlogy's backward divides t by t); negative
    # targets give NaN; log-targets may be any real numbers.
    x = np.array([-0.5, -1.2, -2.0, -0.1, 0.3])
    for reduction in (*REDUCTIONS, "batchmean"):
        yield golden("kl_div", _kl, f"zero-targets-{reduction}", {"input": x, "target": np.array([0.0, 0.5, 0.0, 0.5, 0.0])},
                     {"reduction": reduction})
    yield golden("kl_div", _kl, "negative-target", {"input": x, "target": np.array([0.2, -0.3, 0.0, 1.5, 0.6])},
                 {"reduction": "none"})
    yield golden("kl_div", _kl, "log-target-any-real", {"input": x, "target": np.array([-30.0, 2.0, 0.0, -0.7, 1.0])},
                 {"reduction": "sum", "log_target": True})
    yield golden("kl_div", _kl, "large-values", {"input": np.array([-80.0, 50.0, -1e3]), "target": np.array([1e3, 0.5, 2.0])},
                 {"reduction": "batchmean"}, dtypes=["float32", "float64"])
    yield raises("kl_div", "shape-mismatch", "LossValueError", {"input": np.zeros((4,)), "target": np.zeros((4, 1))})
    yield raises("kl_div", "integer-input", "LossTypeError", {"input": np.zeros(3, dtype="int64"), "target": np.zeros(3)})
    yield raises("kl_div", "integer-target", "LossTypeError", {"input": np.zeros(3), "target": np.zeros(3, dtype="int64")})
    yield raises("kl_div", "bad-reduction", "LossValueError", ZEROS, {"reduction": "batch_mean"})
    yield raises("kl_div", "log_target-not-bool", "LossTypeError", ZEROS, {"log_target": "yes"})


def poisson_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    ref = F.poisson_nll_loss
    for shape_name, shape in SHAPES.items():
        log_rate = rng.normal(size=shape)
        counts = rng.poisson(2.0, size=shape).astype("float64")  # 0, 1 and > 1: Stirling's term on and off
        for log_input in (True, False):
            x = log_rate if log_input else np.exp(log_rate)
            for full in (False, True):
                for reduction in REDUCTIONS:
                    yield golden("poisson_nll_loss", ref, f"{shape_name}-{reduction}-log{log_input}-full{full}",
                                 {"input": x, "target": counts},
                                 {"reduction": reduction, "log_input": log_input, "full": full})
    # Targets around 1 (1 + 2⁻²⁰ is exact in float32), where Stirling's term starts; real-valued targets; torch's NaN target gradient
    # where the masked term meets log(t ≤ 0) under full=True.
    t = np.array([0.0, 0.5, 1.0, 1.0 + 2.0**-20, 1.5, 2.0, 7.0, -0.5])
    for log_input, x in ((True, rng.normal(size=t.shape)), (False, rng.uniform(0.1, 3.0, size=t.shape))):
        for full in (False, True):
            yield golden("poisson_nll_loss", ref, f"targets-around-one-log{log_input}-full{full}",
                         {"input": x, "target": t}, {"reduction": "none", "log_input": log_input, "full": full},
                         dtypes=["float32", "float64"])
    # Rates of exactly 0 (log(eps), gradients beyond float16's range), with the default eps and a larger one; eps = 0 gives log(0).
    x, t = np.array([0.0, 0.0, 1.0, 2.5]), np.array([0.0, 3.0, 1.0, 2.0])
    for eps in (1e-8, 0.5, 0.0):
        yield golden("poisson_nll_loss", ref, f"zero-rate-eps{eps}", {"input": x, "target": t},
                     {"reduction": "none", "log_input": False, "eps": eps}, dtypes=["float32", "float64"])
    yield golden("poisson_nll_loss", ref, "large-values", {"input": np.array([20.0, -50.0, 5.0]),
                                                          "target": np.array([1e4, 0.0, 1e6])},
                 {"reduction": "sum", "full": True}, dtypes=["float32", "float64"])
    yield raises("poisson_nll_loss", "shape-mismatch", "LossValueError", {"input": np.zeros((4,)), "target": np.zeros((4, 1))})
    yield raises("poisson_nll_loss", "integer-input", "LossTypeError", {"input": np.zeros(3, dtype="int64"),
                                                                       "target": np.zeros(3)})
    yield raises("poisson_nll_loss", "integer-target", "LossTypeError", {"input": np.zeros(3),
                                                                        "target": np.zeros(3, dtype="int64")})
    yield raises("poisson_nll_loss", "bad-reduction", "LossValueError", ZEROS, {"reduction": "batchmean"})
    yield raises("poisson_nll_loss", "negative-eps", "LossValueError", ZEROS, {"eps": -1e-8})
    yield raises("poisson_nll_loss", "full-not-bool", "LossTypeError", ZEROS, {"full": 1})
    yield raises("poisson_nll_loss", "log_input-not-bool", "LossTypeError", ZEROS, {"log_input": None})


def _gaussian_layouts() -> Iterator[tuple[str, tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """(name, input shape, target shape, var shape): every kind of var shape torch accepts."""
    yield "batch-full-var", (4, 3), (4, 3), (4, 3)
    yield "batch-per-sample-var", (4, 3), (4, 3), (4,)
    yield "batch-var-trailing-1", (4, 3), (4, 3), (4, 1)
    yield "batch-var-leading-1", (4, 3), (4, 3), (1, 3)
    yield "batch-target-trailing-1", (4, 3), (4, 1), (4, 3)
    yield "3d-full-var", (2, 3, 2), (2, 3, 2), (2, 3, 2)
    yield "3d-per-sample-var", (2, 3, 2), (2, 3, 2), (2, 3)
    yield "3d-var-middle-1", (2, 3, 2), (2, 3, 2), (2, 1, 2)
    yield "unbatched-full-var", (5,), (5,), (5,)
    yield "unbatched-one-var", (5,), (5,), (1,)
    yield "unbatched-0d-var", (5,), (5,), ()
    yield "scalar", (), (), ()
    yield "empty-batch", (0, 3), (0, 3), (0,)
    yield "empty-batch-var-1", (0, 3), (0, 3), (0, 1)
    yield "empty-features", (4, 0), (4, 0), (4, 1)
    yield "quirk-var-axis-0", (4, 1), (4, 1), (1, 0)  # torch's rule admits it; the result is empty


def gaussian_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    ref = F.gaussian_nll_loss
    for layout, x_shape, t_shape, v_shape in _gaussian_layouts():
        x, t = rng.normal(size=x_shape), rng.normal(size=t_shape)
        var = rng.uniform(0.1, 2.0, size=v_shape)
        for full in (False, True):
            for reduction in REDUCTIONS:
                yield golden("gaussian_nll_loss", ref, f"{layout}-{reduction}-full{full}",
                             {"input": x, "target": t, "var": var}, {"reduction": reduction, "full": full})
    # var below eps is clamped to eps, and its gradient passes the clamp (torch clamps under no_grad);
    # 1 / eps = 1e6 is beyond float16's range.
    x, t = np.array([0.5, -1.0, 2.0, 0.3, 0.1, 0.0]), np.array([0.0, -0.5, 1.0, 2.0, 0.3, 0.0])
    var = np.array([0.0, 1e-9, 1e-7, 1e-6, 1e-3, 0.0])
    for eps in (1e-6, 1e-2, 0.5):
        for reduction in REDUCTIONS:
            yield golden("gaussian_nll_loss", ref, f"clamped-var-eps{eps}-{reduction}", {"input": x, "target": t, "var": var},
                         {"reduction": reduction, "eps": eps}, dtypes=None if eps > 1e-3 else ["float32", "float64"])
    yield golden("gaussian_nll_loss", ref, "eps-zero", {"input": x[2:5], "target": t[2:5], "var": var[2:5]},
                 {"reduction": "none", "eps": 0.0}, dtypes=["float32", "float64"])
    yield golden("gaussian_nll_loss", ref, "large-values", {"input": np.array([1e4, -1e4]), "target": np.array([-1e4, 1e4]),
                                                           "var": np.array([1e6, 1e-3])},
                 {"reduction": "mean", "full": True}, dtypes=["float32", "float64"])
    good = {"input": np.zeros((4, 3)), "target": np.zeros((4, 3)), "var": np.ones((4, 3))}
    for name, var_shape in (("var-too-wide", (4, 4)), ("var-two-axes-of-1", (1, 1)), ("var-0d-for-batch", ()),
                            ("var-extra-axis", (4, 3, 1)), ("var-axis-of-0", (4, 0))):
        yield raises("gaussian_nll_loss", name, "LossValueError", {**good, "var": np.ones(var_shape)})
    yield raises("gaussian_nll_loss", "negative-var", "LossValueError", {**good, "var": np.array([[1.0, -0.5, 1.0]] * 4)})
    yield raises("gaussian_nll_loss", "target-grows-input", "LossValueError",
                 {**good, "input": np.zeros((4, 1)), "var": np.ones((4, 1))})
    yield raises("gaussian_nll_loss", "target-shape", "LossValueError", {**good, "target": np.zeros((4, 2))})
    yield raises("gaussian_nll_loss", "integer-input", "LossTypeError", {**good, "input": np.zeros((4, 3), dtype="int64")})
    yield raises("gaussian_nll_loss", "integer-var", "LossTypeError", {**good, "var": np.ones((4, 3), dtype="int64")})
    yield raises("gaussian_nll_loss", "bad-reduction", "LossValueError", good, {"reduction": "batchmean"})
    yield raises("gaussian_nll_loss", "negative-eps", "LossValueError", good, {"eps": -1e-6})
    yield raises("gaussian_nll_loss", "full-not-bool", "LossTypeError", good, {"full": "no"})


def cases() -> Iterator[dict[str, Any]]:
    rng = np.random.default_rng(20261128)
    yield from kl_cases(rng)
    yield from poisson_cases(rng)
    yield from gaussian_cases(rng)
