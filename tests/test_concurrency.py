"""Many threads calling losses and looking them up while plugins load: no race, one load, one answer.

A slow in-process plugin (its ``lossreg_losses`` hook sleeps and counts its calls) widens the
window in which the registry is being built; threads released together by a barrier then call
losses, look names up and make class forms while the registry is forgotten and loaded again.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

import lossreg

registry_module = importlib.import_module("lossreg.registry")
THREADS = 16
RELOADS = 3


@lossreg.define_loss(class_name="SlowPluginLoss", aliases=("slow_plugin",), reference="none (a test plugin)")
def slow_plugin_loss(input: Any, target: Any, /, *, reduction: str = "mean") -> Any:
    """``|input - target|³``, from a plugin that loads slowly."""
    from array_api_compat import array_namespace

    xp = array_namespace(input, target)
    d = xp.abs(input - target)
    return lossreg.toolkit.reduce(xp, d * d * d, reduction)


class SlowPlugin:
    def __init__(self) -> None:
        self.loads = 0
        self._count = threading.Lock()

    @lossreg.hookimpl
    def lossreg_losses(self) -> list[Callable[..., Any]]:
        with self._count:
            self.loads += 1
        time.sleep(0.05)  # a plugin importing something heavy
        return [slow_plugin_loss]


@pytest.fixture
def plugin():
    slow = SlowPlugin()
    lossreg.register_plugin(slow, "lossreg-test-slow-plugin")
    try:
        yield slow
    finally:
        lossreg.unregister_plugin("lossreg-test-slow-plugin")


rng = np.random.default_rng(0)
X, Y = rng.normal(size=(8, 5)), rng.normal(size=(8, 5))
T = rng.integers(0, 5, size=8)


def _work() -> tuple[float, ...]:
    """What one thread does: calls, lookups by several names, class forms, the plugin's loss."""
    assert "cross_entropy" in lossreg.names()
    assert lossreg.spec("MSELoss").name == "mse_loss"
    return (
        float(lossreg.cross_entropy(X, T)),
        float(lossreg.get("ce", label_smoothing=0.1)(X, T)),
        float(lossreg.mse_loss(X, Y)),
        float(lossreg.get("mean-squared-error", reduction="sum")(X, Y)),
        float(lossreg.get("slow_plugin")(X, Y)),
        float(lossreg.SlowPluginLoss(reduction="sum")(X, Y)),
        float(lossreg.spec("huber").function(X, Y)),
    )


def _forget() -> None:
    """Drop the registry without loading it again: the next caller, from any thread, loads it."""
    with registry_module._lock:
        registry_module._registry = None


def test_first_use_from_many_threads_loads_once(plugin: SlowPlugin) -> None:
    want = _work()
    for _ in range(3):
        before = plugin.loads
        _forget()
        barrier = threading.Barrier(THREADS)

        def run() -> tuple[float, ...]:
            barrier.wait()
            return _work()

        with ThreadPoolExecutor(THREADS) as pool:
            answers = list(pool.map(lambda _: run(), range(THREADS)))
        assert plugin.loads == before + 1
        assert all(a == want for a in answers)


def test_calls_and_lookups_while_reloading(plugin: SlowPlugin) -> None:
    want = _work()
    before = plugin.loads
    stop = threading.Event()
    errors: list[BaseException] = []
    answers: list[tuple[float, ...]] = []

    def caller() -> None:
        try:
            while not stop.is_set():
                answers.append(_work())
        except BaseException as error:  # noqa: BLE001  (reported below, with its thread's traceback lost)
            errors.append(error)
            stop.set()

    threads = [threading.Thread(target=caller) for _ in range(THREADS)]
    for t in threads:
        t.start()
    reloads = 0
    for _ in range(RELOADS):
        lossreg.reload()
        reloads += 1
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert plugin.loads == before + reloads  # one load per reload, none by the callers
    assert answers and all(a == want for a in answers)


def test_registry_is_one_object_across_threads(plugin: SlowPlugin) -> None:
    _forget()
    barrier = threading.Barrier(THREADS)

    def grab() -> int:
        barrier.wait()
        return id(lossreg.registry())

    with ThreadPoolExecutor(THREADS) as pool:
        ids = set(pool.map(lambda _: grab(), range(THREADS)))
    assert len(ids) == 1
