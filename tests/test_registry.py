"""Looking losses up, configuring them, and the class forms derived from each loss function."""

from __future__ import annotations

import json
import pickle
import types

import numpy as np
import pytest

import lossreg
from lossreg.errors import LossTypeError, LossValueError


@pytest.mark.parametrize("name", ["mse", "MSELoss", "mse_loss", "MSE-Loss", "Mean_Squared_Error", "squared error"])
def test_names_are_case_underscore_and_dash_insensitive(name):
    assert lossreg.spec(name).name == "mse_loss"


@pytest.mark.parametrize("alias, name", [("bce", "binary_cross_entropy"), ("ce", "cross_entropy"),
                                         ("CrossEntropyLoss", "cross_entropy"), ("nll", "nll_loss"),
                                         ("mae", "l1_loss"), ("L1Loss", "l1_loss")])
def test_torch_class_names_functional_names_and_aliases(alias, name):
    assert lossreg.spec(alias).name == name


def test_unknown_name_lists_the_closest_names():
    with pytest.raises(lossreg.UnknownLossError, match="closest: .*mse"):
        lossreg.get("mes")


def test_unknown_option_is_named():
    with pytest.raises(lossreg.LossTypeError, match="mse_loss: argument 'beta' expected one of its options reduction"):
        lossreg.get("mse", beta=1.0)


def test_get_returns_the_configured_class_form():
    loss = lossreg.get("mse", reduction="sum")
    assert isinstance(loss, lossreg.MSELoss) and isinstance(loss, lossreg.Loss)
    assert loss(np.array([1.0, 2.0]), np.array([0.0, 0.0])) == 5.0
    assert repr(loss) == "MSELoss(reduction='sum')"


def test_names_lists_every_registered_loss():
    assert {"mse_loss", "l1_loss", "cross_entropy", "nll_loss", "binary_cross_entropy"} <= set(lossreg.names())
    assert lossreg.names() == sorted(lossreg.names())


def test_config_round_trips_through_json_arrays_included():
    loss = lossreg.CrossEntropyLoss(weight=np.array([1.0, 2.0, 0.5]), ignore_index=1, label_smoothing=0.1)
    config = json.loads(json.dumps(loss.get_config()))
    assert config == {"name": "cross_entropy", "options": {"weight": [1.0, 2.0, 0.5], "ignore_index": 1,
                                                           "reduction": "mean", "label_smoothing": 0.1}}
    rebuilt = lossreg.from_config(config)
    assert type(rebuilt) is lossreg.CrossEntropyLoss and rebuilt == lossreg.CrossEntropyLoss.from_config(config)
    x, t = np.random.default_rng(0).normal(size=(4, 3)), np.array([0, 1, 2, 2])
    np.testing.assert_allclose(rebuilt(x, t), loss(x, t))


def test_list_options_become_arrays_of_the_callers_library():
    torch = pytest.importorskip("torch")
    loss = lossreg.get("ce", weight=[1.0, 2.0, 0.5])
    x, t = torch.randn(4, 3, dtype=torch.float64), torch.tensor([0, 1, 2, 2])
    torch.testing.assert_close(loss(x, t), torch.nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 0.5],
                                                                                       dtype=torch.float64))(x, t))


@pytest.mark.parametrize(("listed", "error", "got"), [
    (["1", "2", "3"], LossTypeError, "str '1'"),
    ([1.0, None, 2.0], LossTypeError, "NoneType"),  # NumPy's float conversion made it NaN: a NaN loss
    ([True, False, True], LossTypeError, "bool True"),  # the functional form refuses bool weights
    ([1 + 1j, 1.0, 1.0], LossTypeError, "complex"),  # torch dropped the imaginary part
    ([[1.0, 2.0], [3.0]], LossValueError, "rows of shapes [(1,), (2,)]"),
])
def test_a_list_option_holds_numbers_in_rows_of_equal_lengths(listed, error, got):
    # Refused when the class form is made, as its number options are, not by the caller's library
    # at the call with its own error (or a silently wrong loss); so are the lossreg.torch modules.
    torch = pytest.importorskip("torch")
    import lossreg.torch as lt

    for make in (lambda: lossreg.CrossEntropyLoss(weight=listed), lambda: lossreg.get("ce", weight=tuple(listed)),
                 lambda: lt.CrossEntropyLoss(weight=listed)):
        with pytest.raises(error) as info:
            make()
        assert info.value.argument == "weight" and got in info.value.got, info.value
    x, t = torch.randn(4, 3, dtype=torch.float64), torch.tensor([0, 1, 2, 2])
    ints = [1, 2, 3]  # Python ints are numbers: the weights' floats, in every form
    want = torch.nn.CrossEntropyLoss(weight=torch.tensor(ints, dtype=torch.float64))(x, t)
    torch.testing.assert_close(lossreg.CrossEntropyLoss(weight=ints)(x, t), want)
    torch.testing.assert_close(lt.CrossEntropyLoss(weight=ints)(x, t), want, check_dtype=False)


def test_class_forms_pickle_by_name():
    loss = lossreg.get("l1", reduction="none")
    assert pickle.loads(pickle.dumps(loss)) == loss


def test_a_class_form_made_before_a_reload_still_pickles_after_it_options_kept():
    weight = np.array([1.0, 2.0, 0.5])
    loss = lossreg.CrossEntropyLoss(weight=weight, reduction="sum")
    lossreg.reload()  # remakes every class form, as register_plugin does
    again = pickle.loads(pickle.dumps(loss))
    assert type(again) is lossreg.CrossEntropyLoss and again.options["weight"] is not weight
    np.testing.assert_array_equal(again.options["weight"], weight)
    x, t = np.eye(3), np.arange(3)
    assert again(x, t) == loss(x, t)


def test_the_spec_is_derived_from_the_function_signature():
    spec = lossreg.spec("cross_entropy")
    assert spec.inputs == ("input", "target")
    assert spec.options == {"weight": None, "ignore_index": -100, "reduction": "mean", "label_smoothing": 0.0}
    assert spec.class_name == "CrossEntropyLoss" and spec.plugin == "lossreg"
    assert lossreg.cross_entropy.portable is spec.function


def test_functional_and_class_forms_are_module_attributes():
    assert lossreg.CrossEntropyLoss.spec is lossreg.spec("ce")
    assert "BCELoss" in dir(lossreg)
    assert {"backends", "toolkit"} <= set(dir(lossreg))  # the submodules a user reaches for
    assert not {"annotations", "pkgutil", "TYPE_CHECKING", "Any"} & set(dir(lossreg))  # not this module's imports
    with pytest.raises(AttributeError):
        lossreg.NoSuchLoss  # noqa: B018


def test_a_kernel_is_chosen_for_its_library_and_can_be_switched_off():
    calls = []

    class Plugin:
        @lossreg.hookimpl
        def lossreg_kernels(self):
            def fast_mse(input, target, /, *, reduction="mean"):
                calls.append(reduction)
                return NotImplemented if reduction == "none" else lossreg.mse_loss.portable(input, target, reduction=reduction)

            return [lossreg.Kernel("mse_loss", "numpy", fast_mse)]

    lossreg.register_plugin(Plugin(), "test-kernel")
    try:
        x, y = np.array([1.0, 2.0]), np.array([0.0, 0.0])
        assert lossreg.mse_loss(x, y) == 2.5 and calls == ["mean"]
        np.testing.assert_array_equal(lossreg.mse_loss(x, y, reduction="none"), [1.0, 4.0])  # declined
        assert calls == ["mean", "none"]
        with lossreg.use_kernels(False):
            lossreg.mse_loss(x, y)
        assert calls == ["mean", "none"]
        # An option of the loss that the kernel does not take (mse_loss's weight) hands the call back to the
        # portable definition, as NotImplemented does: not fast_mse's TypeError.
        assert lossreg.mse_loss(x, y, weight=np.array([1.0, 3.0])) == 3.25 and calls == ["mean", "none"]
    finally:
        lossreg.unregister_plugin("test-kernel")


def test_a_kernel_that_cannot_take_the_losss_arrays_is_a_fault_not_a_failure_of_every_call():
    plugin = types.SimpleNamespace(lossreg_kernels=lossreg.hookimpl(
        lambda: [lossreg.Kernel("mse_loss", "numpy", lambda input: input)]))
    with pytest.warns(lossreg.LossregPluginWarning, match=r"does not take the loss's arrays \(input, target\)"):
        lossreg.register_plugin(plugin, name="one-array-kernel")
    try:
        assert lossreg.registry().plugins["one-array-kernel"].registered == {}
        assert lossreg.mse_loss(np.array([1.0, 2.0]), np.zeros(2)) == 2.5  # the built-in kernel, not the lambda
    finally:
        lossreg.unregister_plugin("one-array-kernel")


def test_registering_a_plugin_under_a_name_already_loaded_is_refused_not_blamed_on_the_other():
    with pytest.raises(lossreg.PluginError, match="a plugin named 'lossreg' is already registered"):
        lossreg.register_plugin(object(), name="lossreg")
    assert not lossreg.registry().plugins["lossreg"].faults


@pytest.mark.parametrize("hook", ["lossreg_losses", "lossreg_kernels", "lossreg_backends", "lossreg_cases"])
def test_a_hook_returning_a_dict_is_a_fault_saying_so_not_a_str_for_each_of_its_keys(hook):
    plugin = types.SimpleNamespace(**{hook: lossreg.hookimpl(lambda: {"mse_loss": lossreg.mse_loss})})
    with pytest.warns(lossreg.LossregPluginWarning, match=f"hook {hook} raised TypeError: returned a dict, not a list"):
        lossreg.register_plugin(plugin, name="dict-hook")
    try:
        faults = lossreg.registry().plugins["dict-hook"].faults
        assert len(faults) == 1 and "str" not in faults[0], faults
    finally:
        lossreg.unregister_plugin("dict-hook")


def test_blocking_the_builtin_catalogue_is_a_fault_saying_it_is_always_loaded(monkeypatch):
    monkeypatch.setenv("LOSSREG_BLOCK_PLUGINS", "Lossreg")
    try:
        with pytest.warns(lossreg.LossregPluginWarning, match="LOSSREG_BLOCK_PLUGINS names 'Lossreg', the built-in "
                                                              "catalogue, which is always loaded"):
            lossreg.reload()
            lossreg.registry()
        assert lossreg.spec("mse").plugin == "lossreg" and len(lossreg.registry().plugins["lossreg"].faults) == 1
    finally:
        monkeypatch.delenv("LOSSREG_BLOCK_PLUGINS")
        lossreg.reload()
    assert not lossreg.registry().plugins["lossreg"].faults
