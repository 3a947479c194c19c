"""The hooks a lossreg plugin implements, documented where they are declared.

A plugin is any module or object with functions marked ``@lossreg.hookimpl`` and named after the
hooks below; packages advertise one under the ``lossreg`` entry-point group::

    [project.entry-points.lossreg]
    foo = "lossreg_foo"

Each hook returns an iterable; every plugin's items are collected, and one plugin's failure
(an import error, an exception in a hook, a malformed item) is reported and skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .core import Backend, Case, Kernel, LossSpec

hookspec = pluggy.HookspecMarker("lossreg")
hookimpl = pluggy.HookimplMarker("lossreg")


@hookspec
def lossreg_losses() -> Iterable[Callable[..., Any] | LossSpec]:
    """Losses to register: functions decorated with :func:`lossreg.define_loss`, or their specs.

    A name or alias that another plugin already registered is refused, naming both plugins,
    unless the spec was defined with ``replace=True``; the refused loss's kernels and cases are not used.
    """


@hookspec
def lossreg_kernels() -> Iterable[Kernel]:
    """Faster implementations of registered losses, each for one array library (backend).

    A kernel is called instead of the portable definition when its backend's arrays are passed
    and kernels are enabled; it may return ``NotImplemented`` to hand a call back to the
    portable path. The conformance suite checks every kernel against the same cases.
    """


@hookspec
def lossreg_cases() -> Iterable[Case | str | Path]:
    """Conformance cases: :class:`lossreg.testing.Case` objects or paths to JSON case files."""


@hookspec
def lossreg_backends() -> Iterable[Backend]:
    """Array libraries the conformance suite can run on: how to make arrays of a dtype on a
    device, read them back, and differentiate through a loss if the library can."""
