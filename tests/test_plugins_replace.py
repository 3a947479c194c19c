"""``define_loss(..., replace=True)`` takes a name over entirely.

The replaced definition's kernels and cases were written for it, not for the new one: they go
with it, so no call silently computes the old loss through a kernel, and the conformance suite
checks the new definition against its own cases only. The module attribute of a replaced
built-in (``lossreg.l1_loss``) computes the new definition too. Which plugin loads first (entry
points load in name order) does not matter: a plugin whose loss another plugin replaces is not
at fault.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

import lossreg
from lossreg import define_loss, toolkit


@define_loss(class_name="L1Loss", aliases=("l1",), differentiable=("input", "target"), replace=True)
def l1_loss(input, target, /, *, reduction="mean"):  # noqa: ANN001, ANN201
    """``2 |x - y|``: a replacement that differs from the built-in, so that any use of it shows."""
    xp, x, y, dtype = toolkit.pointwise_inputs("l1_loss", input, target, reduction)
    return toolkit.reduce(xp, 2 * xp.abs(x - y), reduction, dtype)


def _plugin(*losses) -> types.SimpleNamespace:  # noqa: ANN002
    return types.SimpleNamespace(lossreg_losses=lossreg.hookimpl(lambda: list(losses)))


@pytest.fixture
def replaced_l1():
    lossreg.register_plugin(_plugin(l1_loss), name="double-l1")
    yield
    lossreg.unregister_plugin("double-l1")


def test_the_replacement_is_computed_on_every_library_and_form(replaced_l1):
    torch = pytest.importorskip("torch")
    x, y = np.array([1.0, 2.0]), np.zeros(2)
    assert lossreg.spec("l1").plugin == "double-l1"
    assert float(lossreg.get("l1")(x, y)) == 3.0  # the built-in NumPy kernel would give 1.5
    assert float(lossreg.get("l1")(torch.tensor(x), torch.tensor(y))) == 3.0  # and the torch one
    assert float(lossreg.l1_loss(x, y)) == 3.0  # the built-in's module attribute
    assert float(lossreg.L1Loss()(x, y)) == 3.0


def test_the_replaced_definitions_kernels_and_cases_go_with_it(replaced_l1):
    reg = lossreg.registry()
    assert not [k for ks in reg.kernels.values() for k in ks if k.loss == "l1_loss"]
    assert not [c for c in reg.cases if lossreg.core.normalize(c.loss) in ("l1loss", "l1")]
    notes = reg.plugins["lossreg"].registered
    assert any("l1_loss" in n for n in notes["kernels off"]) and any("l1_loss" in n for n in notes["cases off"])
    assert not reg.plugins["double-l1"].faults and not reg.plugins["lossreg"].faults


@define_loss(class_name="CharbonnierLoss")
def charbonnier_loss(input, target, /, *, eps=1e-3, reduction="mean"):  # noqa: ANN001, ANN201
    """``√((x - y)² + ε²)``."""
    xp, x, y, dtype = toolkit.pointwise_inputs("charbonnier_loss", input, target, reduction)
    return toolkit.reduce(xp, xp.sqrt((x - y) ** 2 + eps**2), reduction, dtype)


@define_loss(class_name="CharbonnierLoss", name="charbonnier_loss", replace=True)
def charbonnier_loss_v2(input, target, /, *, eps=1e-3, reduction="mean"):  # noqa: ANN001, ANN201
    """``√((x - y)² + ε²) - ε``: zero at zero."""
    xp, x, y, dtype = toolkit.pointwise_inputs("charbonnier_loss", input, target, reduction)
    return toolkit.reduce(xp, xp.sqrt((x - y) ** 2 + eps**2) - eps, reduction, dtype)


@pytest.mark.parametrize("order", [("original", "takeover"), ("takeover", "original")])
def test_a_take_over_does_not_depend_on_which_plugin_loads_first(order):
    plugins = {"original": _plugin(charbonnier_loss), "takeover": _plugin(charbonnier_loss_v2)}
    for name in order:
        lossreg.register_plugin(plugins[name], name=name)
    try:
        reg = lossreg.registry()
        assert lossreg.spec("charbonnier_loss").plugin == "takeover"
        assert float(lossreg.charbonnier_loss(np.zeros(2), np.zeros(2))) == 0.0
        assert not reg.plugins["original"].faults and not reg.plugins["takeover"].faults
    finally:
        for name in order:
            lossreg.unregister_plugin(name)


@define_loss(class_name="HalfSquaredError", aliases=("mse",), differentiable=("input", "target"), replace=True)
def half_squared_error(input, target, /, *, reduction="mean"):  # noqa: ANN001, ANN201
    """``(x - y)² / 2``, taking over the built-in MSE by its alias "mse" alone."""
    xp, x, y, dtype = toolkit.pointwise_inputs("half_squared_error", input, target, reduction)
    return toolkit.reduce(xp, (x - y) ** 2 / 2, reduction, dtype)


def test_taking_over_one_alias_takes_over_the_loss_under_all_its_names():
    torch = pytest.importorskip("torch")
    lossreg.register_plugin(_plugin(half_squared_error), name="half-mse")
    try:
        x, y = np.array([1.0, 3.0]), np.zeros(2)  # the built-in MSE: 5.0; the replacement: 2.5
        for name in ("mse", "mse_loss", "MSELoss", "half_squared_error"):
            assert lossreg.spec(name).plugin == "half-mse", name
            assert float(lossreg.get(name)(x, y)) == 2.5, name
        assert float(lossreg.mse_loss(x, y)) == 2.5  # the built-in's module attribute
        assert float(lossreg.mse_loss(torch.tensor(x), torch.tensor(y))) == 2.5  # its torch kernel went too
        reg = lossreg.registry()
        assert not [c for c in reg.cases if lossreg.core.normalize(c.loss) in ("mseloss", "mse")]
        assert not reg.plugins["half-mse"].faults and not reg.plugins["lossreg"].faults
    finally:
        lossreg.unregister_plugin("half-mse")
    assert float(lossreg.mse_loss(np.array([1.0, 3.0]), np.zeros(2))) == 5.0


@define_loss(class_name="CharbonnierLoss", name="charbonnier_loss", replace=True)
def charbonnier_loss_v3(input, target, /, *, eps=1e-3, reduction="mean"):  # noqa: ANN001, ANN201
    """``(√((x - y)² + ε²) - ε) / ε``: a second take-over of the same loss."""
    xp, x, y, dtype = toolkit.pointwise_inputs("charbonnier_loss", input, target, reduction)
    return toolkit.reduce(xp, (xp.sqrt((x - y) ** 2 + eps**2) - eps) / eps, reduction, dtype)


@pytest.mark.parametrize("order", [("v2", "v3"), ("v3", "v2")])
def test_two_take_overs_of_one_loss_are_a_fault_naming_both_not_a_silent_load_order(order):
    """With both plugins replacing it, the winner would be whichever loads first: the later one is
    refused, and its fault (a LossregPluginWarning; ``lossreg plugins --strict`` fails) names the other."""
    plugins = {"v2": _plugin(charbonnier_loss_v2), "v3": _plugin(charbonnier_loss_v3)}
    first, later = order
    with pytest.warns(lossreg.LossregPluginWarning, match=f"plugin '{first}' also takes over"):
        for name in order:
            lossreg.register_plugin(plugins[name], name=name)
    try:
        reg = lossreg.registry()
        assert lossreg.spec("charbonnier_loss").plugin == first
        assert not reg.plugins[first].faults
        assert any("two plugins cannot both replace one loss" in fault for fault in reg.plugins[later].faults)
    finally:
        for name in order:
            lossreg.unregister_plugin(name)


@define_loss(class_name="CharbonnierLoss", name="charbonnier_loss")
def charbonnier_loss_rival(input, target, /, *, eps=1e-3, reduction="mean"):  # noqa: ANN001, ANN201
    """``(x - y)²``: another plugin's loss of the same name, without replace=True: refused."""
    xp, x, y, dtype = toolkit.pointwise_inputs("charbonnier_loss", input, target, reduction)
    return toolkit.reduce(xp, (x - y) ** 2, reduction, dtype)


def test_a_loss_refused_for_its_name_takes_its_kernels_and_cases_with_it():
    """Its kernels and cases name it as the registered loss is named: run for that loss, a kernel
    would compute the refused formula in its place (on NumPy arrays, here) and the cases would fail
    the other plugin's conformance. They are not used, each noted; the clash is the one fault."""
    rival = types.SimpleNamespace(
        lossreg_losses=lossreg.hookimpl(lambda: [charbonnier_loss_rival]),
        lossreg_kernels=lossreg.hookimpl(lambda: [lossreg.Kernel("charbonnier_loss", "numpy",
                                                                  charbonnier_loss_rival.portable)]),
        lossreg_cases=lossreg.hookimpl(lambda: [lossreg.testing.Case.from_dict(lossreg.testing.value_case(
            "charbonnier_loss", "rival-square", {"input": np.array([2.0]), "target": np.zeros(1)}, 4.0))]))
    lossreg.register_plugin(_plugin(charbonnier_loss), name="original")
    with pytest.warns(lossreg.LossregPluginWarning, match="loss 'charbonnier_loss' not registered"):
        lossreg.register_plugin(rival, name="rival")
    try:
        reg = lossreg.registry()
        assert lossreg.spec("charbonnier_loss").plugin == "original"
        assert float(lossreg.charbonnier_loss(np.array([2.0]), np.zeros(1), eps=0.0)) == 2.0  # not the rival's 4
        assert not [k for ks in reg.kernels.values() for k in ks if k.plugin == "rival"]
        assert not [c for c in reg.cases if c.plugin == "rival"]
        notes = reg.plugins["rival"].registered
        assert notes["kernels off"] == ["charbonnier_loss[numpy]: the plugin's own loss of this name was not "
                                        "registered (plugin 'original' has the name)"]
        assert notes["cases off"] == ["1 of charbonnier_loss: the plugin's own loss of this name was not registered"]
        assert len(reg.plugins["rival"].faults) == 1 and not reg.plugins["original"].faults
    finally:
        lossreg.unregister_plugin("rival")
        lossreg.unregister_plugin("original")


def test_a_loss_refused_for_its_name_called_directly_computes_itself_not_the_other_plugins_kernel():
    """Kernels are found by the loss's name: the refused function (still its package's public name)
    shares it with the registered loss, whose kernels compute that loss."""
    original = types.SimpleNamespace(
        lossreg_losses=lossreg.hookimpl(lambda: [charbonnier_loss]),
        lossreg_kernels=lossreg.hookimpl(lambda: [lossreg.Kernel("charbonnier_loss", "numpy",
                                                                  charbonnier_loss.portable)]))
    lossreg.register_plugin(original, name="original")
    with pytest.warns(lossreg.LossregPluginWarning, match="loss 'charbonnier_loss' not registered"):
        lossreg.register_plugin(_plugin(charbonnier_loss_rival), name="rival")
    try:
        x, y = np.array([2.0]), np.zeros(1)
        assert float(charbonnier_loss_rival(x, y)) == 4.0  # (x - y)², not the original's kernel: √(4 + ε²)
        assert float(lossreg.charbonnier_loss(x, y, eps=0.0)) == 2.0
    finally:
        lossreg.unregister_plugin("rival")
        lossreg.unregister_plugin("original")
