"""Optional faster paths, each for one array library, registered through ``lossreg_kernels``.

A kernel must agree with the portable definition; the conformance suite runs both. Kernels are
used automatically for their library and can be switched off with ``LOSSREG_KERNELS=0`` or
``lossreg.use_kernels(False)``.
"""

from __future__ import annotations

from ..hookspecs import hookimpl
from ..registry import Kernel


@hookimpl
def lossreg_kernels() -> list[Kernel]:
    return []
