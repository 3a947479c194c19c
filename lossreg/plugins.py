"""Plugin discovery: the pluggy manager, entry-point loading, and the environment switches.

Entry points of the ``lossreg`` group are loaded on first use of the registry, once, from
whichever thread comes first. Three environment variables control them, as pytest and llm do:

``LOSSREG_DISABLE_PLUGIN_AUTOLOAD=1``  load no entry point (``lossreg plugins`` still lists them)
``LOSSREG_BLOCK_PLUGINS=a,b``          skip these plugins
``LOSSREG_PLUGINS=a,b``                load only these plugins (an allow-list)

A plugin is named by its entry-point name or its distribution's name (``extras`` or
``lossreg-extras``). The built-in catalogue is registered first, through the same hooks, and
cannot be blocked. A plugin that fails (its import raises, a hook raises or returns something
malformed, a name it registers is taken, its import is slow) is reported in a
:class:`~lossreg.errors.LossregPluginWarning` that names it and the fault, and in
``lossreg plugins``; everything else keeps working. ``LOSSREG_SLOW_IMPORT_S`` (default 1.0)
sets the import time above which a plugin is reported as slow.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import os
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pluggy

from . import hookspecs
from .core import PluginInfo
from .errors import warn_plugin
from .registry import Registry, set_loader
from .toolkit import _env_seconds

GROUP = "lossreg"
BUILTIN = "lossreg"
# The built-in plugins, by import string (as llm registers its own): discovery imports them when it
# loads, so that this layer never imports the catalogue, kernels or backends above it.
BUILTIN_PLUGINS = ("lossreg.losses", "lossreg.kernels", "lossreg.backends")
HOOKS = tuple(name for name in vars(hookspecs) if name.startswith("lossreg_"))


def slow_import_s() -> float:
    """Import time (seconds) above which a plugin is reported: every process that uses lossreg pays it."""
    return _env_seconds("LOSSREG_SLOW_IMPORT_S", 1.0)  # a typo warns, as LOSSREG_VALUE_CHECKS's does


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _env_list(name: str) -> dict[str, str] | None:
    """The names in a comma-separated variable, canonical name -> as written; None if unset."""
    value = os.environ.get(name)
    items = [] if value is None else [item.strip() for item in value.split(",") if item.strip()]
    return None if value is None else {_canonical(item): item for item in items}


def find(infos: dict[str, PluginInfo], name: str) -> PluginInfo | None:
    """The plugin called ``name`` by its entry-point or its distribution's name, as the
    environment switches take it (``extras``, ``lossreg-extras`` and ``lossreg_extras`` alike)."""
    wanted = _canonical(name)
    return next((info for info in infos.values()
                 if wanted in (_canonical(info.name), _canonical(info.distribution or info.name))), None)


def _fault(info: PluginInfo, fault: str) -> None:
    info.faults.append(fault)
    warn_plugin(info.name, fault)


def _fail(info: PluginInfo, fault: str) -> None:
    info.status = "failed"
    _fault(info, fault)


def make_manager(extra: list[tuple[str, Any]]) -> tuple[pluggy.PluginManager, dict[str, PluginInfo]]:
    """A plugin manager holding the built-ins, the allowed entry points and ``extra`` plugins."""
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}
    version = importlib.metadata.version("lossreg") if _installed("lossreg") else None
    for name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(name), name=f"{BUILTIN}:{name.rsplit('.', 1)[-1]}")
    infos[BUILTIN] = PluginInfo(BUILTIN, "lossreg", version, "lossreg.losses")

    autoload = os.environ.get("LOSSREG_DISABLE_PLUGIN_AUTOLOAD", "").strip().lower() in ("", "0", "false", "no")
    blocked, allowed = _env_list("LOSSREG_BLOCK_PLUGINS") or {}, _env_list("LOSSREG_PLUGINS")
    seen: set[str] = {_canonical(BUILTIN)}  # the built-in catalogue, always loaded: naming it is no fault
    for ep in sorted(importlib.metadata.entry_points(group=GROUP), key=lambda ep: ep.name):
        dist = getattr(ep, "dist", None)
        info = PluginInfo(ep.name, dist and dist.name, dist and dist.version, ep.value)
        if ep.name in infos:  # two distributions claim one plugin name: the first keeps it
            other = infos[ep.name]
            _fault(other, f"entry point '{ep.name}' is also declared by {info.distribution} {info.version} "
                          f"({ep.value}), which was not loaded")
            continue
        infos[ep.name] = info
        names = {_canonical(ep.name), *([_canonical(dist.name)] if dist else [])}
        seen |= names
        if not autoload:
            info.status = "disabled"
        elif names & blocked.keys() or (allowed is not None and not names & allowed.keys()):
            info.status = "blocked"
        else:
            _load(pm, info, ep)
    if autoload and _canonical(BUILTIN) in blocked:  # it cannot be blocked: say so rather than seem to have done it
        _fault(infos[BUILTIN], f"LOSSREG_BLOCK_PLUGINS names '{blocked[_canonical(BUILTIN)]}', the built-in catalogue, "
                               "which is always loaded (a plugin's loss can take over a built-in name with "
                               "define_loss(..., replace=True))")
    for name in sorted((allowed or {})[key] for key in (allowed or {}).keys() - seen) if autoload else ():
        infos[name] = PluginInfo(name, status="missing")
        _fault(infos[name], "named in LOSSREG_PLUGINS, but no installed package provides a lossreg plugin of "
                            "that name (entry point or distribution)")
    for name, plugin in extra:
        info = infos.setdefault(name, PluginInfo(name))
        _register(pm, info, plugin)
    return pm, infos


def _load(pm: pluggy.PluginManager, info: PluginInfo, ep: importlib.metadata.EntryPoint) -> None:
    start = time.perf_counter()
    try:
        plugin = ep.load()
    except BaseException as exc:  # any failure of third-party code (even SystemExit) must not break lossreg
        if isinstance(exc, KeyboardInterrupt):
            raise
        info.import_s = time.perf_counter() - start
        _fail(info, f"import of {ep.value} failed, plugin skipped: {type(exc).__name__}: {exc}")
        return
    info.import_s = time.perf_counter() - start
    limit = slow_import_s()
    if info.import_s > limit:
        _fault(info, f"slow import: {info.import_s:.2f} s (over {limit:g} s, paid by every process "
                     f"that uses lossreg; import heavy libraries inside functions)")
    _register(pm, info, plugin)


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _register(pm: pluggy.PluginManager, info: PluginInfo, plugin: Any) -> None:
    try:
        pm.register(plugin, name=info.name)
    except Exception as exc:  # pluggy rejects duplicate names and bad hook signatures
        _fail(info, f"registration failed, plugin skipped: {type(exc).__name__}: {exc}")
        return
    faults = len(info.faults)
    callers = pm.get_hookcallers(plugin) or ()
    for caller in callers:
        if not caller.has_spec():  # a typo: pluggy would silently never call it
            close = difflib.get_close_matches(caller.name, HOOKS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else f" (lossreg's hooks: {', '.join(HOOKS)})"
            _fault(info, f"implements unknown hook {caller.name}{hint}; it is never called")
    for hook in HOOKS:
        function = getattr(plugin, hook, None)
        if callable(function) and not hasattr(function, GROUP + "_impl"):
            _fault(info, f"{hook} is not marked with @lossreg.hookimpl; it is never called")
    for attr in dir(plugin):  # misspelt and unmarked: pluggy never even sees it
        close = difflib.get_close_matches(attr, HOOKS, n=1, cutoff=0.8) if attr.startswith(GROUP + "_") else []
        if close and attr not in HOOKS and not hasattr(getattr(plugin, attr, None), GROUP + "_impl"):
            _fault(info, f"{attr} is not a lossreg hook (did you mean {close[0]}?) and is not marked with "
                         "@lossreg.hookimpl; it is never called")
    if len(info.faults) == faults and not any(caller.has_spec() for caller in callers):
        where = f"its entry point names {info.entry_point}, which" if info.entry_point else "it"
        _fault(info, f"registers nothing: {where} implements none of lossreg's hooks ({', '.join(HOOKS)}) "
                     "marked with @lossreg.hookimpl; point the entry point at the module that holds them")


def plugin_of(impl: pluggy.HookImpl) -> str:
    """The public plugin name of a hook implementation (built-in modules all report 'lossreg')."""
    return BUILTIN if impl.plugin_name.startswith(BUILTIN + ":") else impl.plugin_name


def call_each(pm: pluggy.PluginManager, hook: str, infos: dict[str, PluginInfo]) -> Iterator[tuple[str, Any]]:
    """Call ``hook`` on each plugin in registration order, isolating failures.

    Yields ``(plugin name, item)`` for every item returned; a plugin whose hook raises, or
    returns something that is not iterable (None included), is reported and contributes nothing to this hook.
    """
    for impl in getattr(pm.hook, hook).get_hookimpls():  # in registration order
        name = plugin_of(impl)
        try:
            result = impl.function()
            if isinstance(result, (str, bytes)):
                raise TypeError(f"returned the string {result!r}, not an iterable of items")
            if isinstance(result, Mapping):  # iterating it would register its keys, each then "a str"
                raise TypeError(f"returned a {type(result).__name__}, not a list of items (return a list: "
                                f"list(....values()) for a dict of losses, [...] around one case)")
            if result is None:  # a forgotten `return`: not "nothing to register", which is []
                raise TypeError("returned None, not a list (is its return statement missing? return [] for nothing)")
            items = list(result)
        except Exception as exc:
            _fault(infos.setdefault(name, PluginInfo(name)),
                   f"hook {hook} raised {type(exc).__name__}: {exc}; nothing it returns is registered")
            continue
        for item in items:
            yield name, item


def load(extra: list[tuple[str, Any]]) -> Registry:
    """A registry filled by every plugin's hooks: losses first, then kernels (which name losses),
    backends, and cases. Installed as the registry's loader when this module is imported."""
    pm, infos = make_manager(extra)
    reg = Registry(pm, infos)
    for plugin, item in call_each(pm, "lossreg_losses", infos):
        reg.add_spec(plugin, item)
    for plugin, item in call_each(pm, "lossreg_kernels", infos):
        reg.add_kernel(plugin, item)
    for plugin, item in call_each(pm, "lossreg_backends", infos):
        reg.add_backend(plugin, item)
    reg.drop_orphan_kernels()
    for plugin, item in call_each(pm, "lossreg_cases", infos):
        reg.add_cases(plugin, item)
    return reg


set_loader(load)
