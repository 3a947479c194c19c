"""lossreg's pytest plugin (entry point ``pytest11``): what a loss or plugin author tests with.

    pytest --backend numpy,torch

- ``--backend`` (comma-separated, default ``numpy,array_api_strict,torch``; ``all`` for every
  registered backend) and ``--lossreg-device``;
- fixtures ``backend`` (the :class:`~lossreg.backends.Backend` under test: a test that takes it,
  or ``xp``, runs once per backend and is skipped where that library is not installed),
  ``device`` and ``xp`` (the backend's array namespace);
- :func:`check_conformance`, and the fixture ``lossreg_conformance`` (the same, on the backends
  and device given on the command line): runs the conformance suite on a plugin's losses and
  cases and fails the test with the matrix::

      def test_conformance(lossreg_conformance):
          lossreg_conformance(plugin="focal")       # or losses=["focal_loss"]
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import pytest

DEFAULT_BACKENDS = "numpy,array_api_strict,torch"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lossreg")
    group.addoption("--backend", default=DEFAULT_BACKENDS,
                    help="comma-separated lossreg backends to run array tests on, or 'all' "
                         f"(default {DEFAULT_BACKENDS})")
    group.addoption("--lossreg-device", default=None, help="device for the backends (default: each one's first)")


def _split(value: str) -> list[str]:
    return [b.strip() for b in value.split(",") if b.strip()]


def _backend_names(config: pytest.Config) -> list[str]:
    value = config.getoption("--backend")
    if value.strip() == "all":
        from .registry import registry

        return list(registry().backends)
    return _split(value)


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


def check_conformance(losses: Sequence[str] | None = None, *, plugin: str | None = None,
                      backends: Sequence[str] | str = DEFAULT_BACKENDS,
                      dtypes: Sequence[str] = ("float32", "float64"), device: str | None = None) -> list[Any]:
    """Run the conformance suite on ``losses`` (default: every loss ``plugin`` registered) and fail
    the calling test with the matrix if any case fails.

    ``plugin`` must be loaded without faults (a failed import, a hook that raised, a name it
    could not register all fail the test, saying why); a slow import only warns. Backends whose
    library is not installed are skipped; if none could run, the test is skipped. Returns the
    :class:`lossreg.conformance.Outcome` list.
    """
    from . import conformance
    from .errors import LossregPluginWarning
    from .registry import registry

    reg = registry()
    if plugin is not None:
        info = reg.plugins.get(plugin)
        if info is None:
            known = ", ".join(n for n in reg.plugins if n != "lossreg") or "none"
            pytest.fail(f"no lossreg plugin named {plugin!r} is loaded (plugins: {known}); is its package "
                        "installed, e.g. with `pip install -e .`, and is the entry point in the group 'lossreg'?",
                        pytrace=False)
        faults = [f for f in info.faults if not f.startswith("slow import")]
        if info.status != "loaded" or faults:
            pytest.fail(f"lossreg plugin {plugin!r} is {info.status}: " + "; ".join(faults or info.faults),
                        pytrace=False)
        for fault in info.faults:
            warnings.warn(f"lossreg plugin '{plugin}': {fault}", LossregPluginWarning, stacklevel=2)
        if losses is None:
            losses = [spec.name for spec in reg.specs.values() if spec.plugin == plugin]
            if not losses:
                pytest.fail(f"lossreg plugin {plugin!r} registered no losses", pytrace=False)
    if losses is not None:
        missing = [name for name in losses if not _known(reg, name)]
        if missing:
            pytest.fail(f"no loss named {', '.join(map(repr, missing))} is registered; is the plugin that "
                        "defines it installed (`pip install -e .`)?", pytrace=False)
    names = _split(backends) if isinstance(backends, str) else list(backends)
    unknown = [b for b in names if b not in reg.backends]
    if unknown:
        pytest.fail(f"unknown backend {', '.join(unknown)}; known: {', '.join(reg.backends)}", pytrace=False)
    skipped = {b: why for b in names if (why := reg.backends[b].unavailable())}
    outcomes = conformance.run([b for b in names if b not in skipped], dtypes, device, losses)
    report = conformance.matrix(outcomes) + "".join(f"\nnot run: {b}: {why}" for b, why in skipped.items())
    counts = conformance.summarize(outcomes)
    if counts["failed"]:
        pytest.fail("lossreg conformance failed\n" + report, pytrace=False)
    if not counts["passed"]:
        pytest.skip("no backend could run the conformance suite:\n" + report)
    return outcomes


def _known(reg: Any, name: str) -> bool:
    try:
        reg.lookup(name)
    except Exception:
        return False
    return True


@pytest.fixture
def lossreg_conformance(request: pytest.FixtureRequest) -> Callable[..., list[Any]]:
    """:func:`check_conformance` on the backends of ``--backend`` and the device of ``--lossreg-device``."""
    chosen, device = _backend_names(request.config), request.config.getoption("--lossreg-device")

    def check(losses: Sequence[str] | None = None, *, plugin: str | None = None,
              backends: Sequence[str] | str | None = None, dtypes: Sequence[str] = ("float32", "float64")) -> list[Any]:
        return check_conformance(losses, plugin=plugin, backends=chosen if backends is None else backends,
                                 dtypes=dtypes, device=device)

    return check
