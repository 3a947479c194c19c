"""The representative losses that CI's every-loss sweeps run (tests/sweep.py) stand for the catalogue."""

from __future__ import annotations

from sweep import REPRESENTATIVE, SLOW, sweep
from torch_examples import NAMES, PLUGIN_LOSSES

from lossreg import losses as catalogue


def test_each_representative_is_a_loss_so_no_sweep_shrinks_silently() -> None:
    assert REPRESENTATIVE <= set(NAMES)
    assert sorted(sweep(NAMES)) == sorted(NAMES if SLOW else REPRESENTATIVE)


def test_every_family_module_and_plugin_package_has_a_representative() -> None:
    families = {getattr(catalogue, n).__module__ for n in NAMES if n not in PLUGIN_LOSSES}
    packages = {module.__name__ for module in PLUGIN_LOSSES.values()}
    covered = {getattr(catalogue, n).__module__ if n not in PLUGIN_LOSSES else PLUGIN_LOSSES[n].__name__
               for n in REPRESENTATIVE}
    assert families | packages == covered


def test_a_sweep_keeps_the_parameter_tuples_of_the_representatives() -> None:
    cases = [("cross_entropy", {}), ("l1_loss", {}), ("cross_entropy", {"weight": 1})]
    assert sweep(cases) == (cases if SLOW else [cases[0], cases[2]])
