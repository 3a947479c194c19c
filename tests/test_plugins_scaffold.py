"""``lossreg new-plugin``: the package it writes installs and passes its own tests unchanged."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fixtures.plugin_sites import LOSSREG, pip_install, run

from lossreg import scaffold


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    parent = tmp_path_factory.mktemp("new-plugin")
    done = run([*LOSSREG, "new-plugin", "pseudo-huber", "--dir", str(parent)], None)
    assert done.returncode == 0, done.stderr
    assert "pip install -e" in done.stdout
    return parent / "lossreg-pseudo-huber"


@pytest.fixture(scope="session")
def site(generated: Path) -> Path:
    return pip_install([generated], generated.parent / "site")


def test_it_writes_a_complete_package(generated):
    files = sorted(str(p.relative_to(generated)) for p in generated.rglob("*") if p.is_file())
    assert files == ["README.md", "conftest.py", "generate_cases.py", "pyproject.toml",
                     "src/lossreg_pseudo_huber/__init__.py",
                     "src/lossreg_pseudo_huber/cases/pseudo_huber.json", "src/lossreg_pseudo_huber/losses.py",
                     "tests/test_pseudo_huber.py"]
    assert 'pseudo_huber = "lossreg_pseudo_huber"' in (generated / "pyproject.toml").read_text()
    assert 'pytest_plugins = ["lossreg.pytest_plugin"]' in (generated / "conftest.py").read_text()


def test_the_template_is_neutral_and_named_after_the_loss(generated):
    """Whatever the name, the loss is a placeholder marked TODO, not someone else's loss."""
    text = "\n".join(p.read_text() for p in generated.rglob("*.py")) + (generated / "README.md").read_text()
    assert "def pseudo_huber_loss(input: Any, target: Any, /, *, scale: float = 1.0" in text
    assert 'class_name="PseudoHuberLoss"' in text and "TODO" in text
    assert "charbonnier" not in text.lower()


def test_the_generated_losss_docs_page_gives_each_option_a_meaning(generated):
    """`lossreg docs build --plugins` reads an option's meaning from the docstring's `Options:`
    section (README, "The loss"); the template had none, so its page said "(not documented)" for
    `scale`, with nothing in the guide saying how to document it."""
    import importlib.util
    import inspect

    from lossreg.docsite import pages

    source = generated / "src" / "lossreg_pseudo_huber" / "losses.py"
    found = importlib.util.spec_from_file_location("generated_pseudo_huber_losses", source)
    module = importlib.util.module_from_spec(found)
    found.loader.exec_module(module)
    loss = module.pseudo_huber_loss
    page = pages.loss_page(loss.spec, [], [], {}, "img/x.png", "")
    assert "(not documented)" not in page
    assert pages.parse_docstring(inspect.getdoc(loss)).args["scale"].startswith("the factor of the squared error")


def test_generated_files_import_only_public_lossreg_names(generated):
    import re

    imports = {m for p in generated.rglob("*.py") for m in re.findall(r"^from (lossreg(?:\.\w+)*) import", p.read_text(), re.M)}
    assert imports <= {"lossreg", "lossreg.testing"}, imports


def test_the_installed_package_passes_conformance(site):
    listed = run([*LOSSREG, "list"], site)
    assert "pseudo_huber_loss" in listed.stdout and "PseudoHuberLoss" in listed.stdout
    done = run([*LOSSREG, "conformance", "--backend", "numpy,array_api_strict,torch", "--loss", "pseudo_huber_loss"],
               site)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 passed, 0 failed" in done.stdout


def test_the_installed_package_passes_its_own_tests(site, generated):
    done = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], site, cwd=generated)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    assert "failed" not in done.stdout and "passed" in done.stdout


def test_names_are_derived_and_checked(tmp_path):
    assert scaffold.names("lossreg-Focal_Tversky") == {
        "name": "focal_tversky", "dist": "lossreg-focal-tversky", "module": "lossreg_focal_tversky",
        "loss": "focal_tversky_loss", "cls": "FocalTverskyLoss"}
    for bad in ("9lives", "has space", "", "a--b", "x_", "-x", "lossreg-_x"):
        with pytest.raises(ValueError, match="not a plugin name: use letters and digits, starting with a letter, "
                                             "with single '-' or '_' only between them"):
            scaffold.names(bad)
    for reserved in ("lossreg", "Lossreg", "lossreg-lossreg"):
        with pytest.raises(ValueError, match="not a plugin name: 'lossreg' is reserved for the built-in catalogue"):
            scaffold.names(reserved)
    with pytest.raises(ValueError, match="taken by 'huber_loss' of plugin 'lossreg'"):
        scaffold.create("huber", tmp_path)
    (tmp_path / "lossreg-mine").mkdir()
    (tmp_path / "lossreg-mine" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        scaffold.create("mine", tmp_path)
