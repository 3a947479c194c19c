"""Golden cases for lossreg.losses.regression, from torch.nn.functional in float64."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch.nn.functional as F

from generate import golden, raises

REDUCTIONS = ("none", "mean", "sum")
SHAPES = {"scalar": (), "vector": (5,), "matrix": (3, 4), "3d": (2, 3, 2), "empty": (0,)}


def cases() -> Iterator[dict[str, Any]]:
    rng = np.random.default_rng(20261126)
    for loss, ref in (("mse_loss", F.mse_loss), ("l1_loss", F.l1_loss)):
        for shape_name, shape in SHAPES.items():
            x, y = rng.normal(size=shape), rng.normal(size=shape)
            for reduction in REDUCTIONS:
                yield golden(loss, ref, f"{shape_name}-{reduction}", {"input": x, "target": y},
                             {"reduction": reduction})
        # Ties: |x - y| = 0 has gradient 0 in torch (sign(0) = 0).
        yield golden(loss, ref, "ties", {"input": np.array([1.0, 2.0, 3.0]), "target": np.array([1.0, 2.5, 3.0])},
                     {"reduction": "sum"})
        yield golden(loss, ref, "nan-propagates", {"input": np.array([1.0, np.nan, 3.0]),
                                                  "target": np.array([0.5, 2.0, 3.5])}, {"reduction": "none"},
                     grads=False)  # a gradient at NaN is meaningless; torch's l1 even gives 0 there
        yield golden(loss, ref, "large-values", {"input": np.array([1e4, -1e4]), "target": np.array([-1e4, 1e4])},
                     {"reduction": "mean"}, dtypes=["float32", "float64"])
        yield raises(loss, "shape-mismatch", "LossValueError", {"input": np.zeros((4,)), "target": np.zeros((4, 1))})
        yield raises(loss, "integer-input", "LossTypeError", {"input": np.zeros(3, dtype="int64"),
                                                             "target": np.zeros(3)})
        yield raises(loss, "bad-reduction", "LossValueError", {"input": np.zeros(3), "target": np.zeros(3)},
                     {"reduction": "average"})
    yield from smooth_cases()


def smooth_cases() -> Iterator[dict[str, Any]]:
    """huber_loss and smooth_l1_loss: every shape, reduction and threshold, both branches hit."""
    rng = np.random.default_rng(20261127)
    thresholds = {"smooth_l1_loss": ("beta", (None, 0.0, 0.5, 2.0)), "huber_loss": ("delta", (None, 0.5, 2.0))}
    for loss, ref in (("smooth_l1_loss", F.smooth_l1_loss), ("huber_loss", F.huber_loss)):
        option, values = thresholds[loss]
        for shape_name, shape in SHAPES.items():
            x, y = 2 * rng.normal(size=shape), rng.normal(size=shape)
            for value in values:
                for reduction in REDUCTIONS:
                    options: dict[str, Any] = {"reduction": reduction}
                    if value is not None:
                        options[option] = value
                    yield golden(loss, ref, f"{shape_name}-{reduction}-{option}{'default' if value is None else value}",
                                 {"input": x, "target": y}, options)
        # d = 0 (gradient 0, also for beta = 0), |d| exactly at the threshold, on both sides of it.
        x, y = np.array([1.0, 2.0, 1.5, 0.5, 3.0, -1.0]), np.array([1.0, 2.5, 1.0, 1.0, 0.0, 1.0])
        for value in values[1:]:
            yield golden(loss, ref, f"ties-and-threshold-{option}{value}", {"input": x, "target": y},
                         {"reduction": "sum", option: value})
        yield golden(loss, ref, f"{option}-inf", {"input": x, "target": y}, {"reduction": "none", option: np.inf})
        yield golden(loss, ref, "nan-propagates", {"input": np.array([1.0, np.nan, 3.0]),
                                                  "target": np.array([0.5, 2.0, 3.5])}, {"reduction": "none"},
                     grads=False)
        yield golden(loss, ref, "large-values", {"input": np.array([1e4, -1e4, 3.0]), "target": np.array([-1e4, 1e4, 2.5])},
                     {"reduction": "mean", option: 5.0}, dtypes=["float32", "float64"])
        yield raises(loss, "shape-mismatch", "LossValueError", {"input": np.zeros((4,)), "target": np.zeros((4, 1))})
        yield raises(loss, "integer-input", "LossTypeError", {"input": np.zeros(3, dtype="int64"),
                                                             "target": np.zeros(3)})
        yield raises(loss, "integer-target", "LossTypeError", {"input": np.zeros(3),
                                                              "target": np.zeros(3, dtype="int64")})
        yield raises(loss, "bad-reduction", "LossValueError", {"input": np.zeros(3), "target": np.zeros(3)},
                     {"reduction": "batchmean"})
        yield raises(loss, f"negative-{option}", "LossValueError", {"input": np.zeros(3), "target": np.zeros(3)},
                     {option: -1.0})
        yield raises(loss, f"{option}-not-a-number", "LossValueError", {"input": np.zeros(3), "target": np.zeros(3)},
                     {option: "1.0"})
    yield raises("huber_loss", "zero-delta", "LossValueError", {"input": np.zeros(3), "target": np.zeros(3)},
                 {"delta": 0.0})
    # F.huber_loss's weight (torch.nn.HuberLoss has none): the input's shape, the plain mean of weighted terms.
    for shape_name, shape in (("vector", (5,)), ("matrix", (3, 4)), ("scalar", ())):
        x, y, w = 2 * rng.normal(size=shape), rng.normal(size=shape), rng.uniform(0.0, 2.0, size=shape)
        for reduction in REDUCTIONS:
            yield golden("huber_loss", F.huber_loss, f"weight-{shape_name}-{reduction}", {"input": x, "target": y},
                         {"reduction": reduction, "delta": 0.7, "weight": w})
    yield raises("huber_loss", "weight-shape", "LossValueError", {"input": np.zeros((3, 2)), "target": np.zeros((3, 2))},
                 {"weight": np.ones((2,))})
    yield raises("huber_loss", "integer-weight", "LossTypeError", {"input": np.zeros(3), "target": np.zeros(3)},
                 {"weight": np.ones(3, dtype="int64")})
    # F.mse_loss's and F.l1_loss's weight (torch 2.13; their modules have none): the input's
    # shape, "mean" the weighted mean Σ w ℓ / Σ w. Own generator: the cases above stay as they were.
    rng = np.random.default_rng(20261201)
    for loss, ref in (("mse_loss", F.mse_loss), ("l1_loss", F.l1_loss)):
        for shape_name, shape in (("vector", (5,)), ("matrix", (3, 4)), ("scalar", ())):
            x, y, w = rng.normal(size=shape), rng.normal(size=shape), rng.uniform(0.0, 2.0, size=shape)
            for reduction in REDUCTIONS:
                yield golden(loss, ref, f"weight-{shape_name}-{reduction}", {"input": x, "target": y},
                             {"reduction": reduction, "weight": w})
        # All weights 0 (or none at all): 0 / 0, NaN as torch's weighted mean.
        yield golden(loss, ref, "weight-zero-mean", {"input": np.array([1.0, 2.0]), "target": np.zeros(2)},
                     {"reduction": "mean", "weight": np.zeros(2)}, grads=False)
        yield golden(loss, ref, "weight-empty-mean", {"input": np.zeros(0), "target": np.zeros(0)},
                     {"reduction": "mean", "weight": np.zeros(0)}, grads=False)
        yield raises(loss, "weight-shape", "LossValueError", {"input": np.zeros((3, 2)), "target": np.zeros((3, 2))},
                     {"weight": np.ones((2,))})
        yield raises(loss, "integer-weight", "LossTypeError", {"input": np.zeros(3), "target": np.zeros(3)},
                     {"weight": np.ones(3, dtype="int64")})
