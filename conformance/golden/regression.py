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
