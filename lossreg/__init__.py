"""lossreg: one catalogue of loss functions for every Array API library, with torch.nn semantics.

    >>> import numpy as np, lossreg
    >>> float(lossreg.mse_loss(np.array([1.0, 2.0, 3.0]), np.array([2.0, 3.0, 4.0])))
    1.0

Functional forms (``lossreg.cross_entropy``) and class forms (``lossreg.CrossEntropyLoss``) of
every registered loss, plugins' included, are attributes of this module; ``lossreg.get(name)``
looks one up by any of its names.
"""

from __future__ import annotations

import pkgutil
from typing import Any

from .errors import (
    LossError,
    LossregPluginWarning,
    LossTypeError,
    LossValueError,
    PluginError,
    UnknownLossError,
    UnsupportedError,
)
from .toolkit import value_checks
from .hookspecs import hookimpl
from . import plugins as _plugins  # discovery: installs the registry's loader
from .losses import *  # noqa: F403  (the built-in functional forms)
from .losses import __all__ as _builtin_losses
from .registry import (
    Kernel,
    Loss,
    LossSpec,
    define_loss,
    from_config,
    get,
    kernels_enabled,
    names,
    register_plugin,
    registry,
    reload,
    spec,
    unregister_plugin,
    use_kernels,
)

__all__ = [
    "LossError", "LossValueError", "LossTypeError", "UnknownLossError", "UnsupportedError", "PluginError",
    "LossregPluginWarning", "hookimpl", "Kernel", "Loss", "LossSpec", "define_loss", "from_config", "get",
    "kernels_enabled", "names", "register_plugin", "unregister_plugin", "registry", "reload", "spec",
    "use_kernels", "value_checks", *_builtin_losses,
]


_SUBMODULES = frozenset(m.name for m in pkgutil.iter_modules(__path__))


def __getattr__(name: str) -> Any:
    """Class forms (``lossreg.MSELoss``) and plugins' functional forms, from the registry."""
    if name in _SUBMODULES or name.startswith("__"):  # an import in progress asks for these first
        raise AttributeError(f"module 'lossreg' has no attribute {name!r}")
    reg = registry()
    for spec_ in reg.specs.values():
        if name == spec_.class_name:
            return reg.loss_class(spec_.name)
        if name == spec_.name:
            return reg.loss_class(spec_.name)._dispatch
    raise AttributeError(f"module 'lossreg' has no attribute {name!r}")


def __dir__() -> list[str]:
    reg = registry()
    return sorted({*globals(), *(s.class_name for s in reg.specs.values()), *reg.specs})
