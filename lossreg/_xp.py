"""Deprecated alias of :mod:`lossreg.toolkit`, kept for one release."""

from __future__ import annotations

import warnings
from typing import Any

from . import toolkit


def __getattr__(name: str) -> Any:
    warnings.warn("lossreg._xp is deprecated and will be removed in the next release; use lossreg.toolkit",
                  DeprecationWarning, stacklevel=2)
    return getattr(toolkit, name)
