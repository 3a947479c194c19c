"""The real plugin packages under plugins/: pip-installed, listed, conformant, and passing their own tests."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
from fixtures.plugin_sites import LOSSREG, PLUGINS, pip_install, probe, run

SEGMENTATION = ["dice_loss", "tversky_loss", "generalized_dice_loss", "binary_focal_loss", "focal_loss"]
EXTRAS = ["log_cosh_loss", "mape_loss", "msle_loss", "quantile_loss", "poly1_cross_entropy",
          "generalized_cross_entropy", "sparsemax_loss", "z_loss", "nt_xent_loss"]
PACKAGES = {"segmentation": SEGMENTATION, "extras": EXTRAS}


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("real-plugins") / "site"
    return pip_install([PLUGINS / f"lossreg-{name}" for name in PACKAGES], target)


def test_each_package_has_what_a_distribution_needs():
    for name in PACKAGES:
        root = PLUGINS / f"lossreg-{name}"
        pyproject = (root / "pyproject.toml").read_text()
        assert "[project.entry-points.lossreg]" in pyproject and f'{name} = "lossreg_{name}"' in pyproject
        assert (root / "README.md").is_file() and (root / "generate_cases.py").is_file()
        assert list((root / "tests").glob("test_*.py"))
        cases = json.loads((root / "src" / f"lossreg_{name}" / "cases" / f"{name}.json").read_text())["cases"]
        assert {case["loss"] for case in cases} == set(PACKAGES[name])
        assert all(case.get("source") for case in cases)


def test_installed_losses_appear_in_lossreg_list(site):
    done = run([*LOSSREG, "list", "--json"], site)
    assert done.returncode == 0, done.stderr
    plugin_of = {row["name"]: row["plugin"] for row in json.loads(done.stdout)}
    for plugin, losses in PACKAGES.items():
        for loss in losses:
            assert plugin_of[loss] == plugin
    assert plugin_of["cross_entropy"] == "lossreg"
    assert len(SEGMENTATION) + len(EXTRAS) >= 12


def test_lossreg_plugins_shows_them_without_faults(site):
    done = run([*LOSSREG, "plugins", "--strict"], site, LOSSREG_SLOW_IMPORT_S="30")  # a loaded CI machine is slow
    assert done.returncode == 0, done.stdout + done.stderr
    assert "segmentation  [loaded]  lossreg-segmentation 0.1.0  import " in done.stdout
    assert "extras  [loaded]  lossreg-extras 0.1.0  import " in done.stdout
    assert "kernels (1): binary_focal_loss[torch]" in done.stdout
    assert "backends (1): numpy_readonly" in done.stdout


def test_conformance_passes_on_numpy_array_api_strict_torch_and_read_only_numpy(site, tmp_path):
    losses = ",".join(SEGMENTATION + EXTRAS)
    report = tmp_path / "report.json"
    done = run([*LOSSREG, "conformance", "--backend", "numpy,array_api_strict,torch,numpy_readonly", "--loss", losses,
                "--json", str(report)], site)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    outcomes = json.loads(report.read_text())["outcomes"]
    passed = {(o["loss"], o["backend"], o["dtype"], o["path"]) for o in outcomes if o["status"] == "passed"}
    for loss in SEGMENTATION + EXTRAS:
        for backend in ("numpy", "array_api_strict", "torch", "numpy_readonly"):
            for dtype in ("float32", "float64"):
                assert (loss, backend, dtype, "portable") in passed, (loss, backend, dtype)
    assert ("binary_focal_loss", "torch", "float64", "kernel:torch_native") in passed  # the plugin's torch kernel
    assert all(o["status"] == "passed" for o in outcomes), [o for o in outcomes if o["status"] != "passed"]


def test_conformance_passes_in_half_precision_on_torch_numpy_and_jax(site, tmp_path):
    """float16 and bfloat16, whose cases the suite snaps to values those dtypes hold: each plugin
    loss passes on torch and JAX in both, and on NumPy in float16; NumPy has no bfloat16, said so.
    Eager JAX runs the covering choice of cases (``--quick``), compiling each shape."""
    report = tmp_path / "report.json"
    losses = ",".join(SEGMENTATION + EXTRAS)
    done = run([*LOSSREG, "conformance", "--backend", "torch,numpy,jax", "--dtype", "float16,bfloat16", "--loss", losses,
                "--quick", "--json", str(report)], site, timeout=600)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    outcomes = json.loads(report.read_text())["outcomes"]
    passed = {(o["loss"], o["backend"], o["dtype"]) for o in outcomes if o["status"] == "passed" and o["path"] == "portable"}
    for loss in SEGMENTATION + EXTRAS:
        for backend, dtype in [("torch", "float16"), ("torch", "bfloat16"), ("jax", "float16"), ("jax", "bfloat16"),
                               ("numpy", "float16")]:
            assert (loss, backend, dtype) in passed, (loss, backend, dtype)
    unsupported = {(o["backend"], o["dtype"]) for o in outcomes if o["status"] == "unsupported"}
    assert unsupported == {("numpy", "bfloat16")}, [o for o in outcomes if o["status"] == "unsupported"][:3]
    assert "numpy has no bfloat16" in done.stdout + done.stderr


def test_conformance_of_a_plugin_by_its_distribution_name_runs_every_loss_it_registered(site, tmp_path):
    report = tmp_path / "report.json"
    done = run([*LOSSREG, "conformance", "--backend", "numpy", "--plugin", "lossreg-segmentation", "--loss", "mse",
                "--json", str(report)], site)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    checked = {o["loss"] for o in json.loads(report.read_text())["outcomes"]}
    assert checked == {*SEGMENTATION, "mse_loss"}


def test_conformance_of_a_plugin_that_is_not_loaded_is_an_error_saying_why(site):
    blocked = run([*LOSSREG, "conformance", "--plugin", "lossreg_extras"], site, LOSSREG_BLOCK_PLUGINS="extras")
    assert blocked.returncode == 2
    assert "lossreg plugin 'extras' is blocked: skipped by LOSSREG_BLOCK_PLUGINS" in blocked.stderr
    unknown = run([*LOSSREG, "conformance", "--plugin", "segmentatoin"], site)
    assert unknown.returncode == 2
    assert "no lossreg plugin named 'segmentatoin' is loaded (plugins: " in unknown.stderr


def test_loading_the_plugins_imports_no_torch(site):
    report = probe(site, "out['torch'] = 'torch' in sys.modules", LOSSREG_SLOW_IMPORT_S="30")
    assert report["torch"] is False and report["warnings"] == []
    assert "binary_focal_loss[torch]:segmentation" in report["kernels"]


# The libraries each package's tests/test_peers.py compares its losses with (the test extras install them).
PEERS = {"segmentation": ["torch", "monai", "keras", "jax", "optax"], "extras": ["keras", "jax", "optax", "sklearn"]}


@pytest.mark.parametrize("name", list(PACKAGES))
def test_the_package_passes_its_own_tests_peers_included(site, name, tmp_path):
    package = tmp_path / name
    shutil.copytree(PLUGINS / f"lossreg-{name}", package, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    # numpy only: the conformance test above covered the other backends; the kernel test uses torch itself.
    done = run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "--lossreg-backend", "numpy"],
               site, cwd=package)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
    # A peer comparison may skip only for a peer that is missing here, and must say which.
    missing = [peer for peer in PEERS[name] if importlib.util.find_spec(peer) is None]
    for line in done.stdout.splitlines():
        if line.startswith("SKIPPED"):
            assert any(peer in line.lower() for peer in missing), line
