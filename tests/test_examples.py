"""The example training scripts run end to end at a small size and their two loss curves agree.

Each script trains once with lossreg's loss and once with the framework's own, from the same
seed, and exits non-zero when the curves differ at any step; here each runs with ``--small``
(15 steps on part of scikit-learn's bundled digits) and writes its plot to a temporary folder.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = {"torch_digits.py": ["torch"], "jax_digits.py": ["jax", "optax"], "keras_digits.py": ["keras", "jax"]}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_example_trains_with_the_same_curve_as_the_framework(script: str, tmp_path: Path) -> None:
    missing = [m for m in [*SCRIPTS[script], "sklearn", "matplotlib"] if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{script} needs {', '.join(missing)}: pip install 'lossreg[examples,keras,jax]'")
    done = subprocess.run([sys.executable, str(EXAMPLES / script), "--small", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "KERAS_BACKEND": "jax"})
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    assert "15 steps;" in done.stdout and "worst step" in done.stdout
    png = tmp_path / script.replace(".py", ".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
