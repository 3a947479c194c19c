"""The exceptions lossreg raises.

Every error about a caller's input names the loss, the argument, what was expected and what was
given, and subclasses the builtin a caller would catch anyway (``ValueError`` or ``TypeError``).
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = [
    "LossError",
    "LossValueError",
    "LossTypeError",
    "UnknownLossError",
    "UnsupportedError",
    "PluginError",
    "DefinitionError",
    "LossregPluginWarning",
]


class LossError(Exception):
    """Base class of every lossreg exception."""


def _message(loss: str, argument: str, expected: str, got: str) -> str:
    return f"{loss}: argument '{argument}' expected {expected}, got {got}"


class LossValueError(LossError, ValueError):
    """An argument has the right type but a wrong shape, value or option."""

    def __init__(self, loss: str, argument: str, expected: str, got: str):
        # What BaseException.__init__(message) does, written out: inside torch.compile, Dynamo
        # traces this constructor and cannot call a builtin exception's __init__ (nor super()'s):
        # it reported that, not this error (under fullgraph=True, it now names this one).
        self.args = (_message(loss, argument, expected, got),)
        self.loss, self.argument, self.expected, self.got = loss, argument, expected, got


class LossTypeError(LossError, TypeError):
    """An argument is not an array, or an array of the wrong dtype, library or device."""

    def __init__(self, loss: str, argument: str, expected: str, got: str):
        # What BaseException.__init__(message) does, written out: inside torch.compile, Dynamo
        # traces this constructor and cannot call a builtin exception's __init__ (nor super()'s):
        # it reported that, not this error (under fullgraph=True, it now names this one).
        self.args = (_message(loss, argument, expected, got),)
        self.loss, self.argument, self.expected, self.got = loss, argument, expected, got


class UnknownLossError(LossError, LookupError):
    """No loss is registered under a name; the message lists the closest names."""


class UnsupportedError(LossError, NotImplementedError):
    """A loss cannot run on an array library or dtype; the message says why."""


class PluginError(LossError):
    """A plugin failed to load, raised in a hook or returned something malformed."""


class DefinitionError(LossError, TypeError):
    """A function given to ``define_loss`` is not a well-formed loss; the message names it and the fix."""


class LossregPluginWarning(UserWarning):
    """Warns that a plugin was skipped; the rest of lossreg keeps working."""


def warn_plugin(plugin: str, fault: str) -> None:
    """Warn, with a :class:`LossregPluginWarning`, that ``plugin`` has ``fault``.

    The warning points at the caller's line (the ``lossreg.get`` that loaded plugins), not at lossreg's.
    """
    here, frame, level = os.path.dirname(__file__) + os.sep, sys._getframe(1), 2
    while frame.f_back is not None and frame.f_code.co_filename.startswith(here):
        frame, level = frame.f_back, level + 1
    warnings.warn(f"lossreg plugin '{plugin}': {fault}", LossregPluginWarning, stacklevel=level)
