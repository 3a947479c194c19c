"""Plugin discovery: the pluggy manager, entry-point loading, and the environment switches.

``LOSSREG_DISABLE_PLUGIN_AUTOLOAD=1`` loads no entry points, ``LOSSREG_BLOCK_PLUGINS=a,b`` skips
the named ones, ``LOSSREG_PLUGINS=a,b`` loads only those. The built-in catalogue is registered
first, through the same hooks, and cannot be blocked.
"""

from __future__ import annotations

import importlib.metadata
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs
from .errors import LossregPluginWarning

GROUP = "lossreg"
BUILTIN = "lossreg"
SLOW_IMPORT_S = 1.0  # an import slower than this is reported, since every process pays it


@dataclass
class PluginInfo:
    """What ``lossreg plugins`` shows of one plugin."""

    name: str
    distribution: str | None = None
    version: str | None = None
    import_s: float = 0.0
    registered: dict[str, list[str]] = field(default_factory=dict)  # hook -> item names
    faults: list[str] = field(default_factory=list)
    status: str = "loaded"  # loaded | failed | blocked


def _env_list(name: str) -> set[str] | None:
    value = os.environ.get(name)
    return None if value is None else {item.strip() for item in value.split(",") if item.strip()}


def _warn(plugin: str, fault: str) -> None:
    warnings.warn(f"lossreg plugin '{plugin}' skipped: {fault}", LossregPluginWarning, stacklevel=4)


def make_manager(extra: list[tuple[str, Any]]) -> tuple[pluggy.PluginManager, dict[str, PluginInfo]]:
    """A plugin manager holding the built-ins, the allowed entry points and ``extra`` plugins."""
    from . import backends, kernels, losses  # noqa: I001  (submodules, never lossreg.__getattr__)

    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}
    version = importlib.metadata.version("lossreg") if _installed("lossreg") else None
    for module in (losses, kernels, backends):
        pm.register(module, name=f"{BUILTIN}:{module.__name__.rsplit('.', 1)[-1]}")
    infos[BUILTIN] = PluginInfo(BUILTIN, "lossreg", version)

    if os.environ.get("LOSSREG_DISABLE_PLUGIN_AUTOLOAD", "").strip() not in ("", "0"):
        entry_points: list[importlib.metadata.EntryPoint] = []
    else:
        entry_points = sorted(importlib.metadata.entry_points(group=GROUP), key=lambda ep: ep.name)
    blocked, allowed = _env_list("LOSSREG_BLOCK_PLUGINS") or set(), _env_list("LOSSREG_PLUGINS")
    for ep in entry_points:
        dist = getattr(ep, "dist", None)
        info = infos.setdefault(ep.name, PluginInfo(ep.name, dist and dist.name, dist and dist.version))
        if ep.name in blocked or (allowed is not None and ep.name not in allowed):
            info.status = "blocked"
            continue
        start = time.perf_counter()
        try:
            plugin = ep.load()
        except Exception as exc:  # any failure of third-party code must not break lossreg
            _fail(info, f"import of {ep.value} failed: {type(exc).__name__}: {exc}")
            continue
        info.import_s = time.perf_counter() - start
        if info.import_s > SLOW_IMPORT_S:
            info.faults.append(f"slow import: {info.import_s:.1f} s")
        _register(pm, info, plugin)
    for name, plugin in extra:
        _register(pm, infos.setdefault(name, PluginInfo(name)), plugin)
    return pm, infos


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _register(pm: pluggy.PluginManager, info: PluginInfo, plugin: Any) -> None:
    try:
        pm.register(plugin, name=info.name)
    except Exception as exc:  # pluggy rejects unknown lossreg_* hooks and duplicate names
        _fail(info, f"registration failed: {type(exc).__name__}: {exc}")


def _fail(info: PluginInfo, fault: str) -> None:
    info.status = "failed"
    info.faults.append(fault)
    _warn(info.name, fault)


def plugin_of(pm: pluggy.PluginManager, impl: pluggy.HookImpl) -> str:
    """The public plugin name of a hook implementation (built-in modules all report 'lossreg')."""
    return BUILTIN if impl.plugin_name.startswith(BUILTIN + ":") else impl.plugin_name


def call_each(pm: pluggy.PluginManager, hook: str, infos: dict[str, PluginInfo]) -> Iterator[tuple[str, Any]]:
    """Call ``hook`` on each plugin in registration order, isolating failures.

    Yields ``(plugin name, item)`` for every item returned; a plugin whose hook raises, or
    returns something that is not iterable, is reported and contributes nothing.
    """
    for impl in getattr(pm.hook, hook).get_hookimpls():  # in registration order
        name = plugin_of(pm, impl)
        try:
            items = list(impl.function() or ())
        except Exception as exc:
            fault = f"hook {hook} raised {type(exc).__name__}: {exc}"
            info = infos.setdefault(name, PluginInfo(name))
            info.faults.append(fault)
            _warn(name, fault)
            continue
        for item in items:
            yield name, item
