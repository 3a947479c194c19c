"""lossreg's pytest plugin (entry point ``pytest11``): a ``--backend`` option and an ``xp`` fixture.

    pytest --backend numpy,torch

runs every test that takes ``xp`` (the array namespace) or ``backend`` once per backend named.
"""

from __future__ import annotations

from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lossreg")
    group.addoption("--backend", default="numpy,array_api_strict,torch",
                    help="comma-separated lossreg backends to run array tests on (default numpy,array_api_strict,torch)")
    group.addoption("--lossreg-device", default=None, help="device for the backends (default: each one's first)")


def _backend_names(config: pytest.Config) -> list[str]:
    value = config.getoption("--backend")
    if value.strip() == "all":
        from .registry import registry

        return list(registry().backends)
    return [b.strip() for b in value.split(",") if b.strip()]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames or "xp" in metafunc.fixturenames:
        metafunc.parametrize("backend_name", _backend_names(metafunc.config), scope="session")


@pytest.fixture(scope="session")
def backend(backend_name: str) -> Any:
    """The :class:`lossreg.backends.Backend` under test; skipped (saying why) if unavailable here."""
    from .registry import registry

    found = registry().backends.get(backend_name)
    if found is None:
        pytest.fail(f"unknown backend {backend_name!r}; known: {', '.join(registry().backends)}")
    reason = found.unavailable()
    if reason:
        pytest.skip(f"backend {backend_name} unavailable: {reason}")
    return found


@pytest.fixture(scope="session")
def device(backend: Any, request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--lossreg-device") or backend.devices[0]


@pytest.fixture(scope="session")
def xp(backend: Any, device: str) -> Any:
    """The array namespace (array-api-compat's) of the backend under test."""
    import array_api_compat
    import numpy as np

    return array_api_compat.array_namespace(backend.asarray(np.zeros(1), "float64", device))
