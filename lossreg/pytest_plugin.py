"""lossreg's pytest plugin: what a loss or plugin author tests with. Opt-in, and namespaced.

Installing lossreg changes no pytest session. A project asks for the plugin in its top-level
``conftest.py``::

    pytest_plugins = ["lossreg.pytest_plugin"]

(or with ``-p lossreg.pytest_plugin`` on the command line or in ``addopts``). Then:

- options ``--lossreg-backend`` (comma-separated, default ``numpy,array_api_strict,torch``;
  ``all`` for every registered backend) and ``--lossreg-device``;
- fixtures ``lossreg_backend`` (the :class:`~lossreg.testing.Backend` under test: a test that
  takes it, or ``lossreg_xp`` / ``lossreg_device``, runs once per backend and is skipped where
  that library is not installed), ``lossreg_device`` and ``lossreg_xp`` (the backend's array
  namespace);
- the marker ``@pytest.mark.lossreg(backends=["numpy", "torch"])`` (or ``backends="numpy,torch"``),
  which restricts one test to those of the chosen backends (also those its ``lossreg_conformance``
  checks); a name no backend has is an error;
- the fixture ``lossreg_conformance``: :func:`lossreg.testing.check_conformance` on the backends
  and device of the command line, which fails the test with the matrix::

      def test_conformance(lossreg_conformance):
          lossreg_conformance(plugin="focal")       # or losses=["focal_loss"]

Nothing else: no option or fixture outside the ``lossreg`` namespace, so a project's own
``--backend`` option or ``xp`` fixture is untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from .testing import DEFAULT_BACKENDS, check_conformance

__all__ = ["check_conformance", "DEFAULT_BACKENDS"]

_FIXTURES = ("lossreg_backend", "lossreg_device", "lossreg_xp")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lossreg")
    group.addoption("--lossreg-backend", default=DEFAULT_BACKENDS,
                    help="comma-separated lossreg backends for the lossreg_backend / lossreg_xp fixtures, or "
                         f"'all' (default {DEFAULT_BACKENDS})")
    group.addoption("--lossreg-device", default=None, help="device for the backends (default: each one's first)")


def pytest_configure(config: pytest.Config) -> None:
    value = config.getoption("--lossreg-backend")
    if not _split(value):  # `--lossreg-backend "$UNSET"`: every lossreg test would be skipped, unseen
        raise pytest.UsageError(f"--lossreg-backend {value!r} names no backend; leave it out for the default "
                                f"({DEFAULT_BACKENDS}), or give 'all'")
    device = config.getoption("--lossreg-device")
    if device is not None and not device.strip():  # as --lossreg-backend "": the default device, unasked
        raise pytest.UsageError(f"--lossreg-device {device!r} names no device; leave it out for each backend's first")
    config.addinivalue_line("markers", "lossreg(backends=None): run this test's lossreg_backend / lossreg_xp "
                                       "only on these of the --lossreg-backend backends")


def _split(value: str) -> list[str]:
    return list(dict.fromkeys(b.strip() for b in value.split(",") if b.strip()))  # each once, as the command


def _backend_names(config: pytest.Config) -> list[str]:
    value = config.getoption("--lossreg-backend")
    if value.strip() == "all":
        from .registry import registry

        return list(registry().backends)
    return _split(value)


def _marked(node: Any) -> list[str] | None:
    """The backends of the test's ``@pytest.mark.lossreg(backends=...)``, or None (unmarked). A
    string is read as --lossreg-backend reads one ("numpy,torch"), not as characters: a substring
    test ran backends="jax_jit" on eager jax too."""
    marker = node.get_closest_marker("lossreg")
    only = marker.kwargs.get("backends") if marker is not None else None
    if only is None:
        return None
    return _split(only) if isinstance(only, str) else list(only)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # lossreg_conformance too: the marker restricts its backends (see the fixture), and a name in
    # it that no backend has is the same collection error (it was ignored, the test run on all).
    if not any(name in metafunc.fixturenames for name in (*_FIXTURES, "lossreg_conformance")):
        return
    names = _backend_names(metafunc.config)
    only = _marked(metafunc.definition)
    if only is not None:
        from .registry import registry

        # A name no backend has (a typo) is an error: it left the test with no backend, which
        # pytest skipped as "got empty parameter set", so the test silently never ran.
        unknown = [n for n in only if n not in registry().backends]
        if unknown:
            pytest.fail(f"{metafunc.definition.nodeid}: @pytest.mark.lossreg(backends=...) names "
                        f"{', '.join(map(repr, unknown))}, which no registered backend is; known: "
                        f"{', '.join(registry().backends)}", pytrace=False)
    if not any(name in metafunc.fixturenames for name in _FIXTURES):
        return  # lossreg_conformance alone: not parametrized, it runs the suite on all of them at once
    if only is not None:
        chosen, names = names, [n for n in names if n in only]
        if not names:  # marked for backends this run did not choose: a skip that says so
            metafunc.parametrize("lossreg_backend_name", [pytest.param(None, marks=pytest.mark.skip(
                reason=f"marked for lossreg backends {', '.join(only)}, none of --lossreg-backend "
                       f"{','.join(chosen)}"))], ids=["lossreg-backend-not-chosen"], scope="session")
            return
    metafunc.parametrize("lossreg_backend_name", names, scope="session")


@pytest.fixture
def lossreg_backend(lossreg_backend_name: str) -> Iterator[Any]:
    """The :class:`lossreg.testing.Backend` under test; skipped (saying why) if unavailable here."""
    from .registry import registry

    found = registry().backends.get(lossreg_backend_name)
    if found is None:
        pytest.fail(f"unknown backend {lossreg_backend_name!r}; known: {', '.join(registry().backends)}")
    reason = found.unavailable()
    if reason:
        pytest.skip(f"backend {lossreg_backend_name} unavailable: {reason}")
    # What the library needs (JAX's float64) holds for each test that asks for it, and only
    # during that test: a session-wide scope leaked into the tests that ran after it.
    with found.scope():
        yield found


@pytest.fixture
def lossreg_device(lossreg_backend: Any, request: pytest.FixtureRequest) -> str:
    """The device of ``--lossreg-device``, or the backend's default one; skipped (saying why) where the
    backend has no such device here, as the conformance suite calls it unsupported."""
    device = request.config.getoption("--lossreg-device") or lossreg_backend.devices[0]
    reason = lossreg_backend.device_unavailable(device)
    if reason:
        pytest.skip(f"backend {lossreg_backend.name} on {device} unavailable: {reason}")
    return device


@pytest.fixture
def lossreg_xp(lossreg_backend: Any, lossreg_device: str) -> Any:
    """The array namespace (array-api-compat's) of the backend under test."""
    return lossreg_backend.xp(lossreg_device)


@pytest.fixture
def lossreg_conformance(request: pytest.FixtureRequest) -> Callable[..., list[Any]]:
    """:func:`check_conformance` on the backends of ``--lossreg-backend`` (those of them the test's
    ``lossreg`` marker names, if it has one) and the device of ``--lossreg-device``."""
    chosen, device = _backend_names(request.config), request.config.getoption("--lossreg-device")
    only = _marked(request.node)
    if only is not None:
        if not [n for n in chosen if n in only]:  # as a lossreg_xp test marked so: a skip that says so
            pytest.skip(f"marked for lossreg backends {', '.join(only)}, none of --lossreg-backend {','.join(chosen)}")
        chosen = [n for n in chosen if n in only]

    def check(losses: Sequence[str] | str | None = None, *, plugin: str | None = None,
              backends: Sequence[str] | str | None = None,
              dtypes: Sequence[str] | str = ("float32", "float64")) -> list[Any]:
        return check_conformance(losses, plugin=plugin, backends=chosen if backends is None else backends,
                                 dtypes=dtypes, device=device)

    return check
