"""A third-party author's mistakes, each in a small plugin package pip-installed for real.

Every package below is written under pytest's tmp_path and installed with ``pip install --target``
into a throwaway folder (tests/fixtures/plugin_sites.py), so nothing is installed into the test
environment and nothing is left to uninstall: lossreg runs in subprocesses that see the packages
through PYTHONPATH. Each test checks that a mistake an author can make is reported, naming the
plugin, the loss and what was expected, instead of being silently ignored.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures.plugin_sites import LOSSREG, pip_install, probe, run

from lossreg.testing import value_case, write_cases

PYPROJECT = """\
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "lossreg-{dist}"
version = "0.1.0"
requires-python = ">=3.10"
dependencies = ["lossreg"]

[project.entry-points.lossreg]
{name} = "{entry}"

[tool.setuptools]
{layout}
"""

# A pseudo-Huber (Charbonnier) loss, as the README writes it, for the packages to register.
LOSS = '''
from lossreg import define_loss, toolkit


@define_loss(class_name="{cls}", aliases=({alias!r},), differentiable=("input", "target"), replace={replace})
def {loss}(input, target, /, *, delta=1.0, reduction="mean"):
    """Pseudo-Huber: delta² (sqrt(1 + (d / delta)²) - 1), d = input - target."""
    xp, x, y, dtype = toolkit.pointwise_inputs("{loss}", input, target, reduction)
    d = x - y
    return toolkit.reduce(xp, d * d / (xp.sqrt(1 + (d / delta) ** 2) + 1), reduction, dtype)
'''


def loss_source(loss: str, cls: str, alias: str, replace: bool = False) -> str:
    return LOSS.format(loss=loss, cls=cls, alias=alias, replace=replace)


def pseudo_huber(x: np.ndarray, y: np.ndarray, delta: float, reduction: str) -> tuple[Any, np.ndarray]:
    """The reference, from the published formula in NumPy float64: the value and d sum / d input."""
    d = x - y
    values, grad = delta**2 * (np.sqrt(1 + (d / delta) ** 2) - 1), d / np.sqrt(1 + (d / delta) ** 2)
    if reduction == "mean":
        return values.mean(), grad / values.size
    return (values.sum() if reduction == "sum" else values), grad


def cases_file(path: Path, loss: str) -> Path:
    rng = np.random.default_rng(0)
    x, y = rng.normal(scale=2.0, size=6), rng.normal(size=6)
    cases = []
    for reduction in ("none", "mean", "sum"):
        value, grad = pseudo_huber(x, y, 0.5, reduction)
        cases.append(value_case(loss, reduction, {"input": x, "target": y}, value, {"delta": 0.5, "reduction": reduction},
                                grads={"input": grad, "target": -grad}, source="pseudo-Huber, NumPy float64"))
    return write_cases(path, cases)


# The torch kernel of hunt_kernel_loss gets the value wrong: half the squared error, not pseudo-Huber.
WRONG_KERNEL = '''

def wrong_torch_kernel(input, target, /, *, delta=1.0, reduction="mean"):
    import torch

    d = input - target
    values = d * d / 2
    return {"mean": torch.mean, "sum": torch.sum}.get(reduction, lambda v: v)(values)
'''

CASES_HOOK = '''

@hookimpl
def lossreg_cases():
    return [str(Path(__file__).with_name("{file}"))]
'''

HEADER = "from pathlib import Path\n\nfrom lossreg import Kernel, hookimpl\n"

# Each package: (entry-point name, its module's source, or None for the package of wrong_module).
PACKAGES: dict[str, str | None] = {
    # `lossreg_case` without @hookimpl and misspelt: pluggy never sees it.
    "hunt_typo": HEADER + loss_source("hunt_typo_loss", "HuntTypoLoss", "hunt_typo") + '''

@hookimpl
def lossreg_losses():
    return [hunt_typo_loss]


def lossreg_case():
    return []
''',
    # The hook body builds the list but does not return it.
    "hunt_noreturn": HEADER + loss_source("hunt_noreturn_loss", "HuntNoReturnLoss", "hunt_noreturn") + '''

@hookimpl
def lossreg_losses():
    [hunt_noreturn_loss]
''',
    # replace=True, a torch kernel, and the loss listed twice (LOSSES + [the loss] in a real package).
    "hunt_twice": HEADER + loss_source("hunt_twice_loss", "HuntTwiceLoss", "hunt_twice", replace=True) + '''

def hunt_twice_torch(input, target, /, **options):
    return hunt_twice_loss.portable(input, target, **options)


@hookimpl
def lossreg_losses():
    return [hunt_twice_loss, hunt_twice_loss]


@hookimpl
def lossreg_kernels():
    return [Kernel(loss="hunt_twice_loss", backend="torch", function=hunt_twice_torch, name="torch_twice")]
''' + CASES_HOOK.format(file="hunt_twice.json"),
    # Cases returned as value_case dicts, and a case file whose case misspells the array `target`.
    "hunt_cases": HEADER + loss_source("hunt_cases_loss", "HuntCasesLoss", "hunt_cases") + '''
from lossreg.testing import value_case


@hookimpl
def lossreg_losses():
    return [hunt_cases_loss]


@hookimpl
def lossreg_cases():
    zeros = [0.0, 0.0]
    return [value_case("hunt_cases_loss", "as-a-dict", {"input": zeros, "target": zeros}, 0.0),
            str(Path(__file__).with_name("hunt_cases.json"))]
''',
    # A kernel whose value is wrong, with correct cases.
    "hunt_kernel": HEADER + loss_source("hunt_kernel_loss", "HuntKernelLoss", "hunt_kernel") + WRONG_KERNEL + '''

@hookimpl
def lossreg_losses():
    return [hunt_kernel_loss]


@hookimpl
def lossreg_kernels():
    return [Kernel(loss="hunt_kernel_loss", backend="torch", function=wrong_torch_kernel, name="wrong")]
''' + CASES_HOOK.format(file="hunt_kernel.json"),
    # A backend returned as its class, not an instance.
    "hunt_backend": HEADER + '''from lossreg.testing import Backend


class HuntNumPy(Backend):
    name, module = "hunt_numpy", "numpy"


@hookimpl
def lossreg_backends():
    return [HuntNumPy]
''',
    # The entry point names the module of the losses, not the one of the hooks.
    "hunt_wrong_module": None,
}


def write_package(root: Path, name: str, source: str | None) -> Path:
    dist, module = name.replace("_", "-"), f"lossreg_{name}"
    folder = root / f"lossreg-{dist}"
    folder.mkdir(parents=True)
    if source is None:
        package = folder / module
        package.mkdir()
        (package / "losses.py").write_text(loss_source("hunt_wrong_module_loss", "HuntWrongModuleLoss", "hunt_wm"))
        (package / "__init__.py").write_text("from lossreg import hookimpl\n\nfrom .losses import hunt_wrong_module_loss\n"
                                             "\n\n@hookimpl\ndef lossreg_losses():\n    return [hunt_wrong_module_loss]\n")
        entry, layout = f"{module}.losses", f'packages = ["{module}"]'
    else:
        (folder / f"{module}.py").write_text(source)
        entry, layout = module, f'py-modules = ["{module}"]'
    (folder / "pyproject.toml").write_text(PYPROJECT.format(dist=dist, name=name, entry=entry, layout=layout))
    return folder


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plugin-author")
    folders = [write_package(root / "packages", name, source) for name, source in PACKAGES.items()]
    target = pip_install(folders, root / "site")
    # Case files beside the installed modules (py-modules install no data files).
    cases_file(target / "hunt_twice.json", "hunt_twice_loss")
    cases_file(target / "hunt_kernel.json", "hunt_kernel_loss")
    typo = json.loads(cases_file(target / "hunt_cases.json", "hunt_cases_loss").read_text())
    for case in typo["cases"]:
        case["inputs"]["targte"] = case["inputs"].pop("target")
    (target / "hunt_cases.json").write_text(json.dumps(typo))
    return target


@pytest.fixture(scope="session")
def loaded(site: Path) -> dict[str, Any]:
    return probe(site, LOSSREG_SLOW_IMPORT_S="30")


def faults(report: dict[str, Any], plugin: str) -> list[str]:
    return report["plugins"][plugin]["faults"]


def test_an_entry_point_naming_a_module_without_hooks_is_a_fault(loaded):
    """`hunt_wrong_module = "lossreg_hunt_wrong_module.losses"`: loaded, registers nothing, and said so."""
    info = loaded["plugins"]["hunt_wrong_module"]
    assert info["status"] == "loaded" and not info["registered"]
    assert any("registers nothing" in f and "lossreg_hunt_wrong_module.losses" in f and "lossreg_losses" in f
               for f in faults(loaded, "hunt_wrong_module")), faults(loaded, "hunt_wrong_module")
    assert any("lossreg plugin 'hunt_wrong_module': registers nothing" in w for w in loaded["warnings"])


def test_a_misspelt_hook_without_the_marker_is_reported(loaded, site):
    """README: "an unmarked or misspelt hook is never called, and `lossreg plugins` says so"."""
    assert loaded["losses"]["hunt_typo_loss"] == "hunt_typo"
    assert any("lossreg_case " in f and "did you mean lossreg_cases?" in f for f in faults(loaded, "hunt_typo")), \
        faults(loaded, "hunt_typo")
    done = run([*LOSSREG, "plugins", "--strict"], site, LOSSREG_PLUGINS="hunt_typo",
               LOSSREG_SLOW_IMPORT_S="30")
    assert done.returncode == 1 and "fault: lossreg_case is not a lossreg hook" in done.stdout, done.stdout


def test_a_hook_without_its_return_statement_is_a_fault(loaded):
    assert "hunt_noreturn_loss" not in loaded["losses"]
    assert any("lossreg_losses" in f and "returned None" in f for f in faults(loaded, "hunt_noreturn")), \
        faults(loaded, "hunt_noreturn")


def test_a_loss_listed_twice_is_registered_once_with_its_kernel_and_cases(loaded, site):
    """Not a clash with itself; with replace=True, not a take-over of itself that drops its own kernel and cases."""
    info = loaded["plugins"]["hunt_twice"]
    assert loaded["losses"]["hunt_twice_loss"] == "hunt_twice"
    assert info["registered"]["losses"] == ["hunt_twice_loss"] and "replaced" not in info["registered"]
    assert "hunt_twice_loss[torch]:hunt_twice" in loaded["kernels"]
    assert info["registered"]["cases"] == [f"3 from {site / 'hunt_twice.json'}"]
    assert info["faults"] == ["lossreg_losses returned loss 'hunt_twice_loss' more than once; it is registered once"]


def test_cases_as_dicts_and_a_misspelt_array_are_refused_saying_why(loaded):
    found = faults(loaded, "hunt_cases")
    assert any("lossreg_cases returned dict" in f and "not a lossreg.testing.Case or the path of a JSON case file" in f
               for f in found), found
    misspelt = [f for f in found if "inputs 'targte'" in f]
    assert len(misspelt) == 3 and all("hunt_cases_loss" in f and "(input, target)" in f for f in misspelt), found


def test_a_backend_returned_as_its_class_says_to_return_an_instance(loaded):
    assert faults(loaded, "hunt_backend") == ["lossreg_backends returned the class HuntNumPy, not an instance "
                                              "of it (return HuntNumPy())"]
    assert "hunt_numpy" not in loaded["backends"]


def test_a_kernel_with_a_wrong_value_fails_conformance_as_a_wrong_value(site, tmp_path):
    """Not as the wrong gradient the wrong value implies: the value is what the author must look at first."""
    report = tmp_path / "report.json"
    done = run([*LOSSREG, "conformance", "--backend", "torch", "--dtype", "float64", "--loss", "hunt_kernel",
                "--json", str(report)], site, LOSSREG_PLUGINS="hunt_kernel", LOSSREG_SLOW_IMPORT_S="30")
    assert done.returncode == 1, done.stdout + done.stderr
    outcomes = {o["path"]: o for o in json.loads(report.read_text())["outcomes"]}
    assert outcomes["portable"]["status"] == "passed"
    failures = outcomes["kernel:wrong"]["failures"]
    assert len(failures) == 3 and all(": value off by " in f for f in failures), failures


def test_check_conformance_says_why_a_plugin_without_faults_was_not_loaded(site):
    code = textwrap.dedent("""
        import pytest
        from lossreg.testing import check_conformance
        try:
            check_conformance(plugin="hunt_kernel", backends="numpy")
        except pytest.fail.Exception as exc:
            out["message"] = str(exc)
    """)
    report = probe(site, code, LOSSREG_BLOCK_PLUGINS="hunt_kernel", LOSSREG_SLOW_IMPORT_S="30")
    assert report["message"] == ("lossreg plugin 'hunt_kernel' is blocked: skipped by LOSSREG_BLOCK_PLUGINS, "
                                 "or not named in LOSSREG_PLUGINS")


def test_new_plugin_refuses_the_name_of_an_installed_plugin(site, tmp_path):
    """The loss names are free (that plugin registers no loss), but the distribution lossreg-hunt-wrong-module
    is installed: following the next steps (`pip install -e .`) would uninstall it."""
    done = run([*LOSSREG, "new-plugin", "hunt-wrong-module", "--dir", str(tmp_path)], site, LOSSREG_SLOW_IMPORT_S="30")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "plugin name 'hunt_wrong_module' is taken" in done.stderr, done.stderr
    assert "lossreg-hunt-wrong-module 0.1.0 is installed" in done.stderr, done.stderr
    assert not (tmp_path / "lossreg-hunt-wrong-module").exists()


def test_new_plugins_next_steps_can_be_followed_literally_from_a_folder_with_a_space(tmp_path):
    """The printed `cd` line, pasted into a shell, must reach the package (a folder such as "My Projects")."""
    import subprocess

    parent = tmp_path / "my plugins"
    done = run([*LOSSREG, "new-plugin", "spaced", "--dir", str(parent)], None)
    assert done.returncode == 0, done.stderr
    cd = next(line.strip() for line in done.stdout.splitlines() if line.strip().startswith("cd "))
    shell = subprocess.run(["bash", "-c", f"{cd} && pwd"], capture_output=True, text=True)
    assert shell.returncode == 0, shell.stderr
    assert Path(shell.stdout.strip()) == parent / "lossreg-spaced"


def test_the_device_fixture_skips_a_backend_without_that_device(tmp_path):
    """`--lossreg-device tpu`: the conformance fixture calls numpy@tpu unsupported, and a test taking
    lossreg_xp must be skipped saying so, not pass on the CPU as if it had run on that device."""
    import sys

    (tmp_path / "conftest.py").write_text('pytest_plugins = ["lossreg.pytest_plugin"]\n')
    (tmp_path / "test_device.py").write_text(textwrap.dedent("""
        def test_on_the_device(lossreg_xp, lossreg_device):
            assert lossreg_xp.asarray([1.0], device=lossreg_device) is not None
    """))
    done = run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:randomly",
                "--lossreg-backend", "numpy", "--lossreg-device", "tpu"], None, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 skipped" in done.stdout and "passed" not in done.stdout, done.stdout
    assert "backend numpy on tpu unavailable: numpy has no device 'tpu'" in done.stdout, done.stdout
