"""Running a script on two gloo ranks on the CPU, for the torch.distributed tests: a process
group is process-wide, so each check spawns its ranks in a subprocess of its own."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch


def run(path: Path, script: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``script`` written to ``path`` and run with a free port as its argument (its ranks meet there),
    or the test skipped where this torch has no gloo backend."""
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available in this torch build")
    path.write_text(script)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    return subprocess.run([sys.executable, str(path), port], capture_output=True, text=True, timeout=timeout)
