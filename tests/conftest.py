"""lossreg's own tests use its pytest plugin (loaded by ``-p lossreg.pytest_plugin`` in pyproject's
addopts) under the short names these tests were written with: ``backend``, ``device`` and ``xp``
are lossreg's ``lossreg_backend``, ``lossreg_device`` and ``lossreg_xp``, so a test that takes
one runs once per backend of ``--lossreg-backend``."""

from __future__ import annotations

from typing import Any

import pytest

from lossreg.backends import use_fast_jax_compile


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
