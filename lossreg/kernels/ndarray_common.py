"""What the NumPy and CuPy kernels share: the checks that decide whether a call is theirs.

CuPy's arrays mirror NumPy's (and its dtypes are NumPy's), so one check serves both, given the
library's array class. A call either check refuses, valid or not, is declined (the kernel returns
``NotImplemented``), and the portable path answers it or raises its lossreg error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import toolkit
from ..toolkit import INT64_MAX, INT64_MIN

REDUCTIONS = frozenset(toolkit.REDUCTIONS)
FLOATS = frozenset((np.dtype(np.float32), np.dtype(np.float64)))


def class_target(ndarray: type[Any], input: Any, target: Any, weight: Any, ignore_index: Any, reduction: Any,
                 label_smoothing: Any) -> Any:
    """The (N,) class indices of a cross-entropy call a kernel takes, else None.

    It takes (N, C) float32 or float64 scores with N, C > 0; integer targets of shape (N,) or
    (N, 1) (the source document's labels, returned flattened); no weights or (C,) weights of the
    scores' dtype; a known reduction; an int64 ``ignore_index`` (past it the portable path refuses
    the call) and a ``label_smoothing`` in [0, 1]. The targets' values are the kernel's to check.
    """
    if (type(input) is not ndarray or type(target) is not ndarray or input.ndim != 2 or input.dtype not in FLOATS
            or target.dtype.kind not in "iu" or reduction not in REDUCTIONS or type(ignore_index) is not int
            or not INT64_MIN <= ignore_index <= INT64_MAX
            or type(label_smoothing) not in (int, float) or not 0.0 <= label_smoothing <= 1.0 or 0 in input.shape):
        return None
    n, c = input.shape
    if target.shape != (n,):
        if target.shape != (n, 1):
            return None
        target = target.reshape(n)
    if weight is not None and (type(weight) is not ndarray or weight.dtype != input.dtype or weight.shape != (c,)):
        return None
    return target
