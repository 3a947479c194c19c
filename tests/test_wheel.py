"""lossreg works from a wheel installed in a fresh virtualenv, not only from a checkout."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), str(ROOT)],
                   check=True, capture_output=True)
    wheel = next((tmp / "dist").glob("lossreg-*.whl"))
    venv.create(tmp / "env", with_pip=True)
    python = tmp / "env" / "bin" / "python"
    # torch pinned: a loose requirement could pull a CUDA build of several GB.
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel), "torch==2.13.0", "array-api-strict"],
                   check=True, capture_output=True)
    return tmp / "env" / "bin"


def test_conformance_passes_from_an_installed_wheel(fresh_env: Path, tmp_path: Path):
    result = subprocess.run([str(fresh_env / "lossreg"), "conformance", "--backend", "numpy,array_api_strict,torch",
                             "--json", str(tmp_path / "report.json")],
                            capture_output=True, text=True, cwd=tmp_path, env={"PATH": str(fresh_env)})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert " 0 failed" in result.stdout
    # The cases came from the wheel's package data, not from this checkout.
    located = subprocess.run([str(fresh_env / "python"), "-c", "import lossreg.cases as c; print(c.__file__)"],
                             capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert "site-packages" in located
