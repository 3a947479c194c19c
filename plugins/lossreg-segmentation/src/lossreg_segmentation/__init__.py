"""lossreg-segmentation: segmentation and class-imbalance losses for lossreg.

Dice, Tversky, generalized Dice, binary (sigmoid) focal and categorical focal losses, written
once against the Array API; a torch kernel for the binary focal loss; their conformance cases.
Installing the package is enough: lossreg finds it through its ``lossreg`` entry point.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from lossreg import Kernel, hookimpl

from .losses import LOSSES, binary_focal_loss, dice_loss, focal_loss, generalized_dice_loss, tversky_loss

__all__ = ["binary_focal_loss", "dice_loss", "focal_loss", "generalized_dice_loss", "tversky_loss"]
__version__ = "0.1.0"


@hookimpl
def lossreg_losses() -> list:
    return LOSSES


@hookimpl
def lossreg_kernels() -> list[Kernel]:
    from .kernels import binary_focal_loss_torch

    return [Kernel(loss="binary_focal_loss", backend="torch", function=binary_focal_loss_torch, name="torch_native")]


@hookimpl
def lossreg_cases() -> list[Path]:
    return [Path(str(resources.files(__name__) / "cases" / "segmentation.json"))]
