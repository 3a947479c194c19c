"""lossreg's own tests use its pytest plugin (loaded by ``-p lossreg.pytest_plugin`` in pyproject's
addopts) under the short names these tests were written with: ``backend``, ``device`` and ``xp``
are lossreg's ``lossreg_backend``, ``lossreg_device`` and ``lossreg_xp``, so a test that takes
one runs once per backend of ``--lossreg-backend``."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

import lossreg
from lossreg.backends import use_fast_jax_compile

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    # This suite compiles hundreds of small JAX programs: it asks for fast XLA compiles, before JAX starts.
    use_fast_jax_compile()
    if "jax" in config.getoption("--lossreg-backend"):
        from lossreg.conformance import share_jax_compiles

        share_jax_compiles()  # and keeps JAX's compiled programs on disk, shared by the xdist workers


@pytest.fixture
def backend(lossreg_backend: Any) -> Any:
    return lossreg_backend


@pytest.fixture
def device(lossreg_device: str) -> str:
    return lossreg_device


@pytest.fixture
def xp(lossreg_xp: Any) -> Any:
    return lossreg_xp


@pytest.fixture
def jax_float64() -> Any:
    """JAX's float64 within one test only (thread-local): the other tests' JAX is left as it was."""
    import jax

    with jax.enable_x64(True):
        yield


def _registered_plugin(name: str) -> Any:
    """The real plugin package ``lossreg-<name>`` of plugins/, registered in this process as its
    entry point would register it (its installed copy, else its sources); unregistered after the
    module's tests."""
    module = f"lossreg_{name}"
    source = str(ROOT / "plugins" / f"lossreg-{name}" / "src")
    added = importlib.util.find_spec(module) is None
    if added:
        sys.path.insert(0, source)
    package = importlib.import_module(module)
    registered = name not in lossreg.registry().plugins
    if registered:
        lossreg.register_plugin(package, name)
    yield package
    if registered:
        lossreg.unregister_plugin(name)
    if added:
        sys.path.remove(source)


@pytest.fixture(scope="module")
def segmentation() -> Any:
    """The lossreg-segmentation package, registered for the module's tests."""
    yield from _registered_plugin("segmentation")


@pytest.fixture(scope="module")
def extras() -> Any:
    """The lossreg-extras package, registered for the module's tests."""
    yield from _registered_plugin("extras")
