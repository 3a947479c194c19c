"""The ``numpy_readonly`` backend: NumPy arrays that refuse writes.

Every input and array option is made with ``writeable=False``, so a loss that writes into an
array it was given (``x[mask] = 0``, ``np.clip(x, out=x)``, ``x += 1``) fails the conformance
suite with NumPy's "assignment destination is read-only" instead of silently corrupting the
caller's data; a result that is a view of an input is refused too. JAX arrays are immutable,
so a loss that passes here also keeps to what JAX allows.

    lossreg conformance --backend numpy_readonly
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lossreg.testing import Backend


class NumPyReadOnlyBackend(Backend):
    name = "numpy_readonly"
    module = "numpy"
    dtypes = ("float16", "float32", "float64")

    def owns(self, x: Any) -> bool:
        return False  # NumPy arrays belong to the numpy backend; this one only tests

    def asarray(self, data: np.ndarray, dtype: str, device: str) -> Any:
        array = np.array(data, dtype=dtype)  # a copy: the case data stays untouched
        array.flags.writeable = False
        return array

    def call(self, function: Callable[..., Any], arrays: Sequence[Any], options: dict[str, Any]) -> Any:
        result = function(*arrays, **options)
        given = [*arrays, *(v for v in options.values() if isinstance(v, np.ndarray))]
        if isinstance(result, np.ndarray) and any(np.shares_memory(result, a) for a in given):
            raise AssertionError("the result shares memory with an input: a caller who changes it changes the input")
        return result
