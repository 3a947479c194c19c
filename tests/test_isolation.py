"""lossreg minds its own business: installing it changes no other project's pytest session, and
importing it, looking up a loss or probing backends changes nothing process-wide (JAX's float64,
XLA's flags). Each check runs in a fresh interpreter, as a user's process would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

FOREIGN_CONFTEST = '''
import pytest

def pytest_addoption(parser):
    parser.addoption("--backend", default="mine", help="this project's own option")

@pytest.fixture(params=["a", "b"])
def xp(request):
    return f"{request.config.getoption('--backend')}-{request.param}"

@pytest.fixture
def backend():
    return "its own"
'''

FOREIGN_TEST = '''
def test_own_fixtures(xp, backend):
    assert xp in ("cli-a", "cli-b") and backend == "its own"
'''


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOSSREG_", "PYTEST_", "XLA_"))}
    env.pop("PYTHONPATH", None)
    return env


def _pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", *args],
                          cwd=project, env=_environment(), capture_output=True, text=True, timeout=300)


@pytest.fixture
def foreign(tmp_path: Path) -> Path:
    (tmp_path / "conftest.py").write_text(FOREIGN_CONFTEST)
    (tmp_path / "test_foreign.py").write_text(FOREIGN_TEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # its own rootdir, not lossreg's pyproject
    return tmp_path


def test_a_foreign_project_with_its_own_backend_option_and_xp_fixture_is_unchanged(foreign):
    done = _pytest(foreign, "--backend", "cli")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
    helped = _pytest(foreign, "--help")
    assert "--lossreg-backend" not in helped.stdout  # the plugin is not even loaded


def test_a_foreign_project_that_opts_in_keeps_its_own_names(foreign):
    (foreign / "conftest.py").write_text('pytest_plugins = ["lossreg.pytest_plugin"]\n' + FOREIGN_CONFTEST)
    (foreign / "test_lossreg.py").write_text(textwrap.dedent('''
        import lossreg

        def test_lossreg_fixtures(lossreg_xp, lossreg_backend):
            x = lossreg_xp.asarray([1.0, 2.0])
            assert lossreg_backend.owns(x) and float(lossreg.mse_loss(x, x)) == 0.0
    '''))
    done = _pytest(foreign, "--backend", "cli", "--lossreg-backend", "numpy,array_api_strict", "-vv")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout  # its own 2, and lossreg's once per lossreg backend
    assert "test_lossreg_fixtures[numpy]" in done.stdout and "test_lossreg_fixtures[array_api_strict]" in done.stdout


PROBE = r'''
import json, os, sys
flags = os.environ.get("XLA_FLAGS")
import lossreg
from lossreg import conformance
lossreg.get("mse"); lossreg.spec("ce")
reasons = {name: b.unavailable() for name, b in lossreg.registry().backends.items()}
import jax
out = {"x64_after_probe": bool(jax.config.jax_enable_x64), "flags_after_probe": os.environ.get("XLA_FLAGS") == flags,
       }
outcomes = conformance.run(["jax"], ["float64"], losses=["mse_loss"], max_cases=2)
out["run"] = [o.status for o in outcomes]
out["x64_after_run"] = bool(jax.config.jax_enable_x64)
out["flags_after_run"] = os.environ.get("XLA_FLAGS") == flags
print(json.dumps(out))
'''


def test_importing_looking_up_and_probing_backends_change_nothing_process_wide():
    pytest.importorskip("jax")
    done = subprocess.run([sys.executable, "-c", PROBE], env=_environment(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"x64_after_probe": False, "flags_after_probe": True, "run": ["passed"],
                   "x64_after_run": False, "flags_after_run": True}


def test_lossreg_reads_no_private_module_of_another_library():
    source = "\n".join(p.read_text() for p in (Path(__file__).resolve().parents[1] / "lossreg").rglob("*.py"))
    assert "jax._src" not in source and "from jax._src" not in source


def test_cupy_kernels_are_off_until_switched_on(tmp_path):
    """A stand-in ``cupy`` package on the path makes the CuPy kernels' registration run (CuPy itself
    is never imported while registering). They missed their speed target on a GPU, so they are
    listed as off by default, saying why; LOSSREG_CUPY_KERNELS=1 switches them on, =0 off."""
    (tmp_path / "cupy").mkdir()
    (tmp_path / "cupy" / "__init__.py").write_text("raise ImportError('registration must not import cupy')\n")
    env = {**_environment(), "PYTHONPATH": str(tmp_path)}
    show = "import json, lossreg; r = lossreg.registry(); print(json.dumps([r.plugins['lossreg'].registered.get('kernels off', []), sorted(k[0] for k in r.kernels if k[1] == 'cupy')]))"
    default, off, on = (subprocess.run([sys.executable, "-c", show], env={**env, **extra}, capture_output=True,
                                       text=True, timeout=120)
                        for extra in ({}, {"LOSSREG_CUPY_KERNELS": "0"}, {"LOSSREG_CUPY_KERNELS": "1"}))
    assert default.returncode == off.returncode == on.returncode == 0, default.stderr + off.stderr + on.stderr
    listed, used = json.loads(default.stdout)
    listed = [item for item in listed if "[cupy]" in item]  # Triton's, where installed, is listed too
    assert used == [] and len(listed) == 4
    assert all("off by default: the CuPy kernels missed their target" in item and "LOSSREG_CUPY_KERNELS=1" in item
               for item in listed)
    listed, used = json.loads(off.stdout)
    listed = [item for item in listed if "[cupy]" in item]
    assert used == [] and len(listed) == 4
    assert all("switched off by LOSSREG_CUPY_KERNELS=0" in item for item in listed)
    listed, used = json.loads(on.stdout)
    assert not any("[cupy]" in item for item in listed)
    assert used == ["binary_cross_entropy", "cross_entropy", "l1_loss", "mse_loss"]


def test_triton_cross_entropy_is_on_until_switched_off(tmp_path):
    """With Triton present (a stand-in package: registering never imports it), the Triton
    cross-entropy is registered and on by default (it met its GPU speed target);
    LOSSREG_CE_TRITON=0 switches it off, and the listing names the switch."""
    (tmp_path / "triton").mkdir()
    (tmp_path / "triton" / "__init__.py").write_text("raise ImportError('registration must not import triton')\n")
    env = {**_environment(), "PYTHONPATH": str(tmp_path)}
    show = ("import json, lossreg; r = lossreg.registry(); "
            "print(json.dumps([r.plugins['lossreg'].registered.get('kernels off', []), "
            "[k.name for k in r.kernels[('cross_entropy', 'torch')]]]))")
    default, off = (subprocess.run([sys.executable, "-c", show], env={**env, **extra}, capture_output=True,
                                   text=True, timeout=120)
                    for extra in ({}, {"LOSSREG_CE_TRITON": "0"}))
    assert default.returncode == off.returncode == 0, default.stderr + off.stderr
    listed, used = json.loads(default.stdout)
    assert used == ["triton", "torch"] and not any("LOSSREG_CE_TRITON" in item for item in listed)
    listed, used = json.loads(off.stdout)
    assert used == ["torch"] and any("switched off by LOSSREG_CE_TRITON=0" in item for item in listed)
