"""Plugin faults and control, each with a real installed package (tests/fixtures/plugins/).

Every fixture package is pip-installed once into a throwaway folder; each test runs lossreg in a
subprocess that sees them through PYTHONPATH and checks that lossreg keeps working, that a
warning names the plugin and its fault, and that ``lossreg plugins`` shows it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from fixtures.plugin_sites import FIXTURES, LOSSREG, pip_install, probe, run

FAULTY = ("fault_import", "fault_hook", "fault_malformed", "clash_builtin", "clash_a", "clash_b", "clash_c", "slow",
          "counting", "reentrant")


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pip_install(sorted(FIXTURES.iterdir()), tmp_path_factory.mktemp("fault-plugins") / "site")


@pytest.fixture(scope="session")
def everything(site: Path) -> dict[str, Any]:
    """lossreg with every fixture plugin installed and loaded at once."""
    return probe(site, LOSSREG_SLOW_IMPORT_S="0.1", LOSSREG_TEST_SLOW_S="0.3")


def warned(report: dict[str, Any], plugin: str, *words: str) -> list[str]:
    return [w for w in report["warnings"] if f"lossreg plugin '{plugin}'" in w and all(x in w for x in words)]


def test_lossreg_keeps_working_with_every_fault_at_once(everything):
    assert everything["mse"] == 1.0
    losses = everything["losses"]
    assert losses["mse_loss"] == "lossreg" and losses["cross_entropy"] == "lossreg"
    for name, plugin in (("counted_loss", "counting"), ("slow_loss", "slow"), ("shared_loss", "clash_c"),
                         ("clash_builtin_ok_loss", "clash_builtin"), ("malformed_fine_loss", "fault_malformed")):
        assert losses[name] == plugin
    # Warnings point at the caller's line (here the probe's lossreg.get), not inside lossreg.
    assert everything["warned_at"] == ["<string>:7"]


def test_a_plugin_that_fails_to_import(everything):
    info = everything["plugins"]["fault_import"]
    assert info["status"] == "failed" and info["distribution"] == "lossreg-fault-import"
    assert warned(everything, "fault_import", "import of lossreg_fault_import failed", "ImportError", "libfoo")


def test_looking_up_a_loss_of_a_plugin_that_failed_to_import_names_the_failure(site):
    """Not "closest: HuberLoss, ...": the loss is missing because its plugin did not load."""
    report = probe(site, "try:\n    lossreg.get('fault_import')\nexcept lossreg.UnknownLossError as exc:\n"
                         "    out['error'] = str(exc)", LOSSREG_PLUGINS="fault_import")
    assert report["error"].startswith("no loss named 'fault_import'; no registered name is close")
    assert "plugin 'fault_import' failed: import of lossreg_fault_import failed" in report["error"]


def test_a_hook_that_raises_and_one_not_marked(everything):
    info = everything["plugins"]["fault_hook"]
    assert info["status"] == "loaded" and not info["registered"]
    assert warned(everything, "fault_hook", "hook lossreg_losses raised RuntimeError: the loss database is down")
    assert warned(everything, "fault_hook", "lossreg_cases is not marked with @lossreg.hookimpl")


def test_malformed_specs_kernels_backends_and_cases(everything):
    for words in (["lossreg_losses returned int"],
                  ["malformed spec 'bad name'", "not a Python identifier"],
                  ["malformed spec 'no_function'", "not callable"],
                  ["malformed spec 7"],
                  ["lossreg_kernels returned str 'not a kernel'"],
                  ["Kernel of 'no_such_loss', which is not a registered loss"],
                  ["Kernel of 'malformed_fine_loss' whose function None is not callable"],
                  ["Kernel of 'malformed_fine_loss' whose function _function does not take the loss's arrays "
                   "(input, target)"],
                  ["backend 'no_such_backend', which no plugin provides"],
                  ["lossreg_backends returned object, not a Backend"],
                  ["lossreg_cases: cannot read", "FileNotFoundError"],
                  ["unknown hook lossreg_lossses (did you mean lossreg_losses?)"]):
        assert warned(everything, "fault_malformed", *words), words
    info = everything["plugins"]["fault_malformed"]
    assert info["registered"] == {"losses": ["malformed_fine_loss"], "kernels": []}
    assert not any("fault_malformed" in k for k in everything["kernels"])
    assert len(info["faults"]) == 12


def test_a_name_the_builtin_catalogue_has(everything):
    assert everything["losses"]["mse_loss"] == "lossreg" and "my_mse_loss" not in everything["losses"]
    assert warned(everything, "clash_builtin", "loss 'my_mse_loss' not registered", "'mse' is a name of 'mse_loss' "
                  "of plugin 'lossreg'", "replace=True")
    assert everything["losses"]["clash_builtin_ok_loss"] == "clash_builtin"  # the rest of the plugin still works


def test_a_name_another_plugin_has_names_both(site):
    report = probe(site, "out['value'] = float(lossreg.get('shared_loss')(np.ones(3), np.ones(3)))",
                   LOSSREG_PLUGINS="clash_a,clash_b")
    assert report["losses"]["shared_loss"] == "clash_a" and report["value"] == 3.0  # clash_a's: 1 · sum
    assert warned(report, "clash_b", "loss 'shared_loss' not registered", "of plugin 'clash_a'")
    assert report["plugins"]["clash_b"]["faults"] and not report["plugins"]["clash_b"]["registered"]


def test_replace_takes_over(everything):
    assert everything["losses"]["shared_loss"] == "clash_c"
    assert everything["plugins"]["clash_c"]["registered"]["replaced"] == ["shared_loss (of clash_a)"]
    assert not everything["plugins"]["clash_c"]["faults"]


def test_a_slow_import_is_reported_with_its_time(everything):
    info = everything["plugins"]["slow"]
    assert info["status"] == "loaded" and info["import_s"] >= 0.3
    assert warned(everything, "slow", "slow import: ", "over 0.1 s")
    assert everything["losses"]["slow_loss"] == "slow"


def test_a_plugin_using_the_registry_while_loading_is_reported_not_deadlocked(everything):
    assert everything["plugins"]["reentrant"]["status"] == "failed"
    assert warned(everything, "reentrant", "PluginError", "while plugins were loading")


def test_lossreg_plugins_shows_every_plugin_and_fault(site):
    done = run([*LOSSREG, "plugins"], site, LOSSREG_SLOW_IMPORT_S="0.1")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "fault_import  [failed, 1 fault]  lossreg-fault-import 0.1.0" in out
    assert "fault: import of lossreg_fault_import failed, plugin skipped: ImportError" in out
    assert "fault_malformed  [loaded, 12 faults]  lossreg-fault-malformed 0.1.0" in out
    assert "clash_c  [loaded]  lossreg-clash-c 0.1.0  import " in out
    assert "replaced (1): shared_loss (of clash_a)" in out
    assert "fault: slow import: " in out and "fault: hook lossreg_losses raised RuntimeError" in out
    for plugin in FAULTY:
        assert f"\n{plugin}  [" in out
    strict = run([*LOSSREG, "plugins", "--strict", "--json"], site, LOSSREG_SLOW_IMPORT_S="0.1")
    assert strict.returncode == 1 and "faults in" in strict.stderr
    infos = {info["name"]: info for info in json.loads(strict.stdout)}
    assert infos["clash_a"]["registered"] == {"losses": ["shared_loss"]} and infos["clash_a"]["version"] == "0.1.0"
    assert infos["counting"]["entry_point"] == "lossreg_counting"


def test_disable_autoload(site):
    report = probe(site, LOSSREG_DISABLE_PLUGIN_AUTOLOAD="1")
    assert report["warnings"] == [] and set(report["losses"].values()) == {"lossreg"}
    assert {info["status"] for name, info in report["plugins"].items() if name != "lossreg"} == {"disabled"}
    listed = run([*LOSSREG, "list"], site, LOSSREG_DISABLE_PLUGIN_AUTOLOAD="1")
    assert listed.returncode == 0 and "counted_loss" not in listed.stdout and "mse_loss" in listed.stdout


def test_block_plugins_by_entry_point_or_distribution_name(site):
    report = probe(site, LOSSREG_BLOCK_PLUGINS="fault_import, lossreg-fault-hook,fault_malformed,reentrant,clash_b")
    for name in ("fault_import", "fault_hook", "fault_malformed", "reentrant", "clash_b"):
        assert report["plugins"][name]["status"] == "blocked" and not warned(report, name)
    assert report["losses"]["counted_loss"] == "counting"


def test_allow_list_loads_only_the_named_plugins(site):
    report = probe(site, LOSSREG_PLUGINS="counting,lossreg-fault-slow,no_such_plugin", LOSSREG_SLOW_IMPORT_S="60")
    loaded = {name for name, info in report["plugins"].items() if info["status"] == "loaded"}
    assert loaded == {"lossreg", "counting", "slow"}
    others = {info["status"] for name, info in report["plugins"].items() if name in FAULTY and name not in loaded}
    assert others == {"blocked"}
    assert report["plugins"]["no_such_plugin"]["status"] == "missing"
    assert warned(report, "no_such_plugin", "named in LOSSREG_PLUGINS, but no installed package provides")
    assert len(report["warnings"]) == 1


THREADS = r'''
import json, threading
import numpy as np
import lossreg

n = 32
barrier = threading.Barrier(n)
kinds, values, errors = [None] * n, [None] * n, []

def work(i):
    try:
        barrier.wait()
        if i % 2:  # a functional call: the dispatch is the first to touch the registry
            values[i] = float(lossreg.mse_loss(np.full(3, float(i)), np.zeros(3)))
        else:
            loss = lossreg.get("counted_loss" if i % 4 else "CountedLoss")
            kinds[i] = id(type(loss))
            values[i] = float(loss(np.full(3, float(i)), np.zeros(3)))
    except Exception as exc:
        errors.append(repr(exc))

threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"errors": errors, "classes": len({k for k in kinds if k is not None}), "values": values}))
'''


def test_many_threads_load_plugins_exactly_once(site, tmp_path):
    count = tmp_path / "events.txt"
    done = run([sys.executable, "-c", THREADS], site, LOSSREG_PLUGINS="counting", LOSSREG_TEST_COUNT_FILE=str(count))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["errors"] == []
    assert result["values"] == [float(i * i) for i in range(32)]
    assert result["classes"] == 1  # every thread got the same class form
    assert count.read_text().split() == ["import", "lossreg_losses", "lossreg_cases"]
