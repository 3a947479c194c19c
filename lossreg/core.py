"""The core types every layer above shares: a loss's spec, a kernel, a conformance case, the
interface of an array backend, and what is known of a plugin. Nothing here imports an array
library other than NumPy, nor any other part of lossreg but its errors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import inspect
import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import array_api_compat as compat
import numpy as np

__all__ = ["normalize", "LossSpec", "Kernel", "Case", "load_cases", "Backend", "PluginInfo", "FLOATS"]

FLOATS = ("float16", "bfloat16", "float32", "float64")  # the dtypes a conformance run may test


def normalize(name: str) -> str:
    """Names compare case-, '_'-, '-'- and space-insensitively: MSELoss == mse_loss == "MSE-Loss"."""
    return re.sub(r"[\s_\-]", "", name).lower()


@dataclass(frozen=True)
class LossSpec:
    """Everything the registry knows of one loss; built by :func:`define_loss`."""

    name: str
    function: Callable[..., Any]  # the portable definition
    class_name: str
    aliases: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()  # positional array arguments, in torch.nn.functional order
    options: dict[str, Any] = field(default_factory=dict)  # keyword-only options and defaults
    array_options: tuple[str, ...] = ()  # options that hold arrays (e.g. weight)
    differentiable: tuple[str, ...] = ("input",)
    reference: str = ""  # what torch (or a paper) calls it
    # Names other libraries give to something close to this loss but not equal to it, each with
    # what it means there: looking one up is an error that says so, never a silently other number.
    false_friends: dict[str, str] = field(default_factory=dict)
    replace: bool = False  # may take over a name another plugin registered
    # The unreduced loss stacks this many views of the batch, view after view (NT-Xent: 2N losses
    # for N pairs), so that a weight per sample (Keras's sample_weight, a mask) can weigh each view.
    views: int = 1
    plugin: str = ""  # filled in on registration

    @property
    def summary(self) -> str:
        return (inspect.getdoc(self.function) or "").partition("\n")[0]

    @property
    def all_names(self) -> tuple[str, ...]:
        return (self.name, self.class_name, *self.aliases)

    def __reduce__(self) -> tuple[Any, ...]:
        # Field by field, as a dataclass would be, but for the portable function: pickle finds a
        # function by its module and name, where define_loss's decorator left the dispatching
        # form, which holds it as ``.portable``; so it goes by way of that form.
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "function"}
        holder = _portable_holder(self.function)
        return _unpickle_spec, (self.function if holder is None else holder, holder is not None, fields)


def _portable_holder(function: Any) -> Any:
    """What pickle finds under ``function``'s module and name when that is a dispatching form
    holding ``function`` as ``.portable`` (not the function itself); else None."""
    found: Any = sys.modules.get(getattr(function, "__module__", None) or "")
    for part in (getattr(function, "__qualname__", "") or "<none>").split("."):
        found = getattr(found, part, None)
    return found if found is not function and getattr(found, "portable", None) is function else None


def _unpickle_spec(function: Any, by_holder: bool, fields: dict[str, Any]) -> LossSpec:
    return LossSpec(function=function.portable if by_holder else function, **fields)


@dataclass(frozen=True)
class Kernel:
    """A faster implementation of the registered loss ``loss`` for one ``backend``.

    ``function`` takes the same arguments as the portable definition and must agree with it;
    it may return ``NotImplemented`` to hand a call back to the portable path. A kernel with a
    ``disabled`` reason is listed (``lossreg plugins``, with the reason) but neither used nor checked.
    """

    loss: str
    backend: str
    function: Callable[..., Any]
    name: str = ""
    plugin: str = ""
    disabled: str = ""  # why it is off (e.g. never verified on its hardware): listed, never called


@dataclass
class Case:
    """One reference case of one loss."""

    loss: str
    id: str
    inputs: dict[str, Any]  # name -> {"data": nested list, "dtype": "float" | "int64" | ...}
    options: dict[str, Any] = field(default_factory=dict)  # arrays as {"data", "dtype"}
    expected: Any = None  # value (nested list or number); absent when the case expects an error
    grads: dict[str, Any] = field(default_factory=dict)  # input -> d sum(loss) / d input
    raises: str | None = None  # name of the lossreg exception the call must raise
    dtypes: list[str] | None = None  # restrict to these run dtypes (values that need the range)
    source: str = ""
    plugin: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any], loss: str | None = None) -> Case:
        data = dict(data)
        data.setdefault("loss", loss)
        known = {k: data.pop(k) for k in list(data) if k in cls.__dataclass_fields__}
        if data:
            raise ValueError(f"case {known.get('id')!r}: unknown fields {sorted(data)}")
        missing = [name for name in ("id", "inputs") if name not in known]
        if missing:  # said as a case file's field, not as Case.__init__'s missing positional argument
            raise ValueError(f"{_named(known)}no {' or '.join(map(repr, missing))} field")
        # Objects of arrays by name: a list there was read, then broke the registry of every process
        # that loaded the plugin (its case checks iterate them), not only the plugin.
        wrong = [f"{name!r} is {type(known[name]).__name__} {known[name]!r:.40}"
                 for name in ("inputs", "options", "grads") if not isinstance(known.get(name, {}), dict)]
        if wrong:
            raise ValueError(f"{_named(known)}{'; '.join(wrong)}, not an object of arrays by name")
        return cls(**known)


def _named(case: dict[str, Any]) -> str:
    return f"case {case['id']!r}: " if "id" in case else ""


def load_cases(path: str | Path) -> list[Case]:
    """Read a JSON case file: ``{"loss": name, "cases": [...]}`` (a case may name its own loss).
    A malformed entry is a ValueError naming it (``cases[3]``, with its id when it has one)."""
    content = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(content, dict) or not isinstance(content.get("cases"), list):
        raise ValueError('a case file is an object {"loss": NAME, "cases": [...]}; this one has no "cases" list')
    cases = []
    for i, entry in enumerate(content["cases"]):
        try:
            if not isinstance(entry, dict):
                raise ValueError(f"{type(entry).__name__} {entry!r:.40}, not an object")
            cases.append(Case.from_dict(entry, content.get("loss")))
        except ValueError as exc:
            raise ValueError(f"cases[{i}]: {exc}") from None
    return cases


class Backend:
    """An array library as the conformance suite sees it. Subclass and override to add one.

    ``name`` is what ``--backend`` takes and ``short`` heads its column in the matrix; ``module``
    is imported to tell whether it is installed. Arrays are made from NumPy data (``asarray``)
    on one of ``devices`` (the first is the default; ``"cuda:1"`` names a device of the kind
    ``"cuda"``) and read back (``to_numpy``). ``value_and_grad`` is ``None`` for libraries
    without automatic differentiation.
    """

    name: str = ""
    short: str = ""
    module: str = ""
    dtypes: tuple[str, ...] = ("float32", "float64")
    devices: tuple[str, ...] = ("cpu",)
    lazy = False  # results stay unevaluated, so data-dependent checks yield NaN, not errors
    kernels_of = ""  # the backend whose kernels apply to these arrays (default: this one)

    def unavailable(self) -> str | None:
        """Why this backend cannot run here, or ``None`` if it can."""
        if importlib.util.find_spec(self.module) is None:
            return f"{self.module} is not installed"
        return None

    def device_unavailable(self, device: str) -> str | None:
        """Why arrays cannot be made on ``device`` here, or ``None`` (asked once available)."""
        if device.partition(":")[0] not in {d.partition(":")[0] for d in self.devices}:
            return f"{self.name} has no device {device!r} (it has {', '.join(self.devices)})"
        return None

    def device_name(self, device: str) -> str | None:
        """The hardware behind ``device`` (a GPU's name), where there is more to say than its name."""
        return None

    def versions(self) -> dict[str, str]:
        """The versions of the libraries this backend runs on, for reports."""
        return {self.module: _version(self.module)} if self.module else {}

    def xp(self, device: str | None = None) -> Any:
        return compat.array_namespace(self.asarray(np.zeros(1), "float64", device or self.devices[0]))

    def owns(self, x: Any) -> bool:
        """Whether ``x`` is an array of this library (kernels are chosen by this)."""
        return False

    def asarray(self, data: np.ndarray, dtype: str, device: str) -> Any:
        raise NotImplementedError

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def call(self, function: Callable[..., Any], arrays: Sequence[Any], options: dict[str, Any]) -> Any:
        """Run a loss; a backend may wrap this (under ``jax.jit``, say)."""
        return function(*arrays, **options)

    value_and_grad: Callable[..., tuple[Any, list[Any]]] | None = None

    @property
    def values_only(self) -> str:
        """Why this backend checks values but no gradients ("" when it checks both)."""
        return "" if self.value_and_grad is not None else "no automatic differentiation"

    def scope(self) -> contextlib.AbstractContextManager[None]:
        """A context within which this backend's arrays are made, losses called and read back: the
        conformance runner and the pytest plugin enter it around their use of the backend, so that
        any setting a library needs (JAX's float64) holds there and nowhere else."""
        return contextlib.nullcontext()

    def release(self) -> None:
        """Drop what running one loss's cases built up (compiled programs, caches); the runner
        calls it after each loss, so that memory stays bounded over the whole suite."""

    @property
    def label(self) -> str:
        return self.short or self.name

    def __repr__(self) -> str:
        return f"<lossreg backend {self.name}>"


def _version(module: str) -> str:
    """A module's version without importing it (when its distribution is known)."""
    loaded = sys.modules.get(module)
    if loaded is not None and isinstance(getattr(loaded, "__version__", None), str):
        return loaded.__version__
    for dist in metadata.packages_distributions().get(module, [module]):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


@dataclass
class PluginInfo:
    """What ``lossreg plugins`` shows of one plugin."""

    name: str
    distribution: str | None = None
    version: str | None = None
    entry_point: str | None = None  # "module" or "module:object"
    import_s: float = 0.0
    registered: dict[str, list[str]] = field(default_factory=dict)  # what -> item names
    faults: list[str] = field(default_factory=list)
    status: str = "loaded"  # loaded | failed | blocked | disabled | missing
