"""The README's catalogue table is generated from the registry and kept current."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "conformance" / "results"
REPORTS = [RESULTS / "cpu.json", RESULTS / "gpu-h200" / "gpu-conformance-torch.json",
           RESULTS / "gpu-h200" / "gpu-conformance-cupy.json"]


def test_readme_catalogue_is_generated_from_the_registry():
    code = ("import json, sys, lossreg.docs as d; "
            "print(d.catalogue_table({'outcomes': [o for p in sys.argv[1:] for o in json.load(open(p))['outcomes']]}))")
    env = {**os.environ, "LOSSREG_DISABLE_PLUGIN_AUTOLOAD": "1"}
    table = subprocess.run([sys.executable, "-c", code, *map(str, REPORTS)], env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert table in readme, ("README.md is stale: run python -m lossreg.docs README.md "
                             + " ".join(f"--report {p.relative_to(ROOT)}" for p in REPORTS))


def test_every_builtin_loss_is_in_the_table_with_its_torch_class():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    import lossreg

    for name in lossreg.names():
        spec = lossreg.spec(name)
        if spec.plugin == "lossreg":
            assert f"| `{spec.name}` | `{spec.class_name}` |" in readme


def test_reports_used_for_the_table_are_conformance_reports_without_failures():
    for path in REPORTS:
        report = json.loads(path.read_text())
        assert report["summary"]["failed"] == 0 and report["outcomes"], path
