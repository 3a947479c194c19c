"""Which losses an every-loss sweep runs in CI; ``LOSSREG_SLOW=1`` runs every loss.

Compiling, exporting or tracing a loss costs seconds, so a sweep of all 36 losses (built-in and
the two plugin packages') costs minutes per test. In CI such a sweep runs on
:data:`REPRESENTATIVE`: each family module of the catalogue, each kind of torch kernel (pointwise,
value-checked, class-indexed, sequence, weighted margin, custom operators), a take along the class
axis, a sort, and each plugin package. Before a stop every sweep runs on every loss with
``LOSSREG_SLOW=1`` and its figures go in the stop's note, as the conformance test's full lists do.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, TypeVar

SLOW = os.environ.get("LOSSREG_SLOW", "0") == "1"

REPRESENTATIVE = frozenset({
    "mse_loss",                 # regression; torch's pointwise kernel
    "binary_cross_entropy",     # classification; a kernel whose value check poisons under tracing
    "cross_entropy",            # classification; class-indexed kernel, options that change the graph
    "multi_margin_loss",        # classification; weighted margin kernel
    "multilabel_margin_loss",   # classification; portable, takes K entries of each row
    "ctc_loss",                 # sequence; the one recursion over time
    "gaussian_nll_loss",        # probabilistic; a variance input with its own checks
    "triplet_margin_loss",      # embedding; norms and a swap
    "linear_cross_entropy",     # fused; custom operators with their own backward
    "sparsemax_loss",           # lossreg-extras; a sort along the class axis
    "dice_loss",                # lossreg-segmentation; reductions over spatial axes
})

T = TypeVar("T")


def sweep(items: Iterable[T]) -> list[T]:
    """``items`` (loss names, or parameter tuples whose first entry is one) for an every-loss
    sweep: all of them under ``LOSSREG_SLOW=1``, the representative losses' otherwise."""
    items = list(items)
    return items if SLOW else [item for item in items if _name(item) in REPRESENTATIVE]


def _name(item: Any) -> str:
    return item if isinstance(item, str) else item[0]
