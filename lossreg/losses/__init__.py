"""The built-in catalogue, itself a lossreg plugin: one module per family of losses.

regression      mse_loss, l1_loss, ...
classification  cross_entropy, nll_loss, binary_cross_entropy, ...
probabilistic   divergences and likelihoods of distributions
embedding       margins between pairs and triplets
sequence        CTC
fused           linear_cross_entropy (a linear layer and cross-entropy, without the logits)

``lossreg list`` shows every loss with its family's plugin; the README's table is generated.

Its conformance cases are the JSON files of ``conformance/cases`` (installed as ``lossreg.cases``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from ..hookspecs import hookimpl
from . import classification, embedding, fused, probabilistic, regression, sequence

FAMILIES = (regression, classification, probabilistic, embedding, sequence, fused)


def _defined(module: Any) -> Iterator[Callable[..., Any]]:
    for value in vars(module).values():
        if callable(value) and hasattr(value, "spec") and value.__module__ == module.__name__:
            yield value


LOSSES = [loss for family in FAMILIES for loss in _defined(family)]
__all__ = [loss.__name__ for loss in LOSSES]
globals().update({loss.__name__: loss for loss in LOSSES})


@hookimpl
def lossreg_losses() -> list[Callable[..., Any]]:
    return LOSSES


@hookimpl
def lossreg_cases() -> list[Path]:
    folder = resources.files("lossreg.cases")
    return sorted(Path(str(f)) for f in folder.iterdir() if f.name.endswith(".json"))
