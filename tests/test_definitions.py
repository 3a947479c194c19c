"""``define_loss`` refuses a malformed loss when it runs, naming the function and the fix; options
declared differentiable may be arrays or traced values, and are differentiated when asked."""

from __future__ import annotations

import math
import types
import warnings
from typing import Any

import numpy as np
import pytest

import lossreg
from lossreg import DefinitionError, define_loss, toolkit
from lossreg.testing import Case


def _define(source: str, **kwargs: Any) -> Any:
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    return define_loss(class_name="BarronLoss", **kwargs)(namespace["barron_loss"])


@pytest.mark.parametrize("source, kwargs, message", [
    ("def barron_loss(input, target, /, alpha=1.0, reduction='mean'): pass", {},
     r"barron_loss\(input, target, /, alpha=1.0, reduction='mean'\): the options alpha, reduction are not "
     r"keyword-only \(the '\*' is missing\); write def barron_loss\(input, target, /, \*, alpha=1.0, reduction='mean'\)"),
    ("def barron_loss(input, target, alpha=1.0, reduction='mean'): pass", {},
     r"the '\*' is missing\); write def barron_loss\(input, target, /, \*, alpha=1.0, reduction='mean'\)"),
    ("def barron_loss(input, target, *, alpha=1.0): pass", {},
     r"the arrays input, target are not positional-only \(the '/' is missing\); "
     r"write def barron_loss\(input, target, /, \*, alpha=1.0\)"),
    ("def barron_loss(input, target, /, *, alpha, reduction='mean'): pass", {},
     r"the options alpha have no default; give each option a default"),
    ("def barron_loss(input, target, /, **options): pass", {}, r"\*\*options is not allowed"),
    ("def barron_loss(*arrays, reduction='mean'): pass", {}, r"\*arrays is not allowed"),
    ("def barron_loss(input, target, /, *, alpha=1.0): pass", {"differentiable": ("input", "scale")},
     r"differentiable names 'scale', which is not among its arguments; name some of input, target, alpha"),
    ("def barron_loss(input, target, /, *, alpha=1.0): pass", {"array_options": ("weight",)},
     r"array_options names 'weight', which is not among its options; name some of alpha"),
])
def test_a_malformed_definition_is_refused_with_the_fix(source, kwargs, message):
    with pytest.raises(DefinitionError, match=r"^define_loss: " + message if message.startswith("barron") else r"^define_loss: barron_loss.*" + message):
        _define(source, **kwargs)


def test_a_hand_made_spec_of_a_malformed_function_is_a_plugin_fault():
    def no_slash(input, target, *, reduction="mean"):  # noqa: ANN001, ANN202
        return input

    spec = lossreg.LossSpec(name="no_slash", function=no_slash, class_name="NoSlash", inputs=("input",))
    with pytest.warns(lossreg.LossregPluginWarning, match="hand_made"):
        lossreg.register_plugin(types.SimpleNamespace(lossreg_losses=lossreg.hookimpl(lambda: [spec])), name="hand_made")
    try:
        faults = lossreg.registry().plugins["hand_made"].faults
        assert any("the '/' is missing" in f for f in faults), faults
        assert "no_slash" not in lossreg.names()
    finally:
        lossreg.unregister_plugin("hand_made")


@define_loss(class_name="BarronLoss", differentiable=("input", "alpha"),
             reference="Barron 2019, 'A General and Adaptive Robust Loss Function', eq. 1")
def barron_loss(input: Any, target: Any, /, *, alpha: Any = 1.0, scale: float = 1.0, reduction: str = "mean") -> Any:
    """``ρ = |α-2|/α · (((d/c)²/|α-2| + 1)^(α/2) - 1)``, for α in (0, 2) (α may be learned)."""
    name = "barron_loss"
    toolkit.check_number(name, "alpha", alpha, 1e-3, 1.999, arrays=True)
    toolkit.check_number(name, "scale", scale, 0.0)
    xp, x, y, dtype = toolkit.pointwise_inputs(name, input, target, reduction)
    b = 2 - alpha
    z = ((x - y) / scale) ** 2 / b + 1
    return toolkit.reduce(xp, b / alpha * (z ** (alpha / 2) - 1), reduction, dtype)


def _barron_numpy(d: np.ndarray, alpha: float) -> float:
    return float(np.sum((2 - alpha) / alpha * ((d**2 / (2 - alpha) + 1) ** (alpha / 2) - 1)))


def test_the_spec_declares_a_differentiable_option_an_array_option():
    assert barron_loss.spec.differentiable == ("input", "alpha")
    assert barron_loss.spec.array_options == ("alpha",)


def test_a_loss_of_stacked_views_says_how_many_and_a_count_below_one_is_refused():
    def pairs(a: Any, b: Any, /, *, reduction: str = "mean") -> Any:
        xp = toolkit.namespace("pairs", a=a, b=b)
        return toolkit.reduce(xp, xp.concat([a, b]), reduction, a.dtype)

    assert define_loss(class_name="PairsLoss", views=2)(pairs).spec.views == 2
    assert barron_loss.spec.views == 1
    for bad in (0, True, 2.0):
        with pytest.raises(TypeError, match="views must be a positive int"):
            define_loss(class_name="PairsLoss", views=bad)


@pytest.fixture
def barron_plugin() -> Any:
    lossreg.register_plugin(types.SimpleNamespace(lossreg_losses=lossreg.hookimpl(lambda: [barron_loss])), name="barron")
    yield
    lossreg.unregister_plugin("barron")


def test_a_learned_option_as_a_requires_grad_tensor_gets_its_gradient(barron_plugin):
    torch = pytest.importorskip("torch")
    d = np.array([0.3, -1.2, 2.5])
    x, y = torch.tensor(d, requires_grad=True), torch.zeros(3, dtype=torch.float64)
    alpha = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    loss = lossreg.get("BarronLoss", alpha=alpha, reduction="sum")(x, y)
    loss.backward()
    assert loss.item() == pytest.approx(_barron_numpy(d, 1.3), rel=1e-12)
    h = 1e-6  # central difference in float64
    numeric = (_barron_numpy(d, 1.3 + h) - _barron_numpy(d, 1.3 - h)) / (2 * h)
    assert alpha.grad.item() == pytest.approx(numeric, rel=1e-6)
    with pytest.raises(lossreg.LossValueError, match=r"barron_loss: argument 'alpha' expected a value in \[0.001, 1.999\]"):
        barron_loss(x, y, alpha=torch.tensor(2.5, dtype=torch.float64))
    with pytest.raises(lossreg.LossValueError, match="argument 'scale' expected a number"):
        barron_loss(x, y, scale=torch.tensor(1.0))  # not declared: Python numbers only


def test_an_option_traced_under_jax_jit_without_static_argnames():
    jax = pytest.importorskip("jax")
    with jax.enable_x64(True):
        d = np.array([0.3, -1.2, 2.5])
        x, y = jax.numpy.asarray(d), jax.numpy.zeros(3)
        value = jax.jit(lambda x, y, alpha: barron_loss(x, y, alpha=alpha, reduction="sum"))(x, y, 1.3)
        grad = jax.jit(jax.grad(lambda alpha: barron_loss(x, y, alpha=alpha, reduction="sum")))(1.3)
    assert float(value) == pytest.approx(_barron_numpy(d, 1.3), rel=1e-12)
    h = 1e-6
    assert float(grad) == pytest.approx((_barron_numpy(d, 1.3 + h) - _barron_numpy(d, 1.3 - h)) / (2 * h), rel=1e-6)


def test_a_disabled_kernel_is_listed_with_its_reason_and_never_called():
    called = []
    kernel = lossreg.Kernel(loss="mse_loss", backend="numpy", function=lambda *a, **o: called.append(1),
                            disabled="never verified on its hardware")
    lossreg.register_plugin(types.SimpleNamespace(lossreg_kernels=lossreg.hookimpl(lambda: [kernel])), name="off")
    try:
        info = lossreg.registry().plugins["off"]
        assert info.registered == {"kernels off": ["mse_loss[numpy]: never verified on its hardware"]}
        assert info.faults == []
        assert float(lossreg.mse_loss(np.ones(2), np.zeros(2))) == 1.0 and called == []
    finally:
        lossreg.unregister_plugin("off")


def test_every_target_ignored_gives_nan_without_a_warning():
    x, t = np.zeros((2, 3)), np.array([-100, -100])
    with warnings.catch_warnings(), lossreg.use_kernels(False):
        warnings.simplefilter("error")
        for loss in (lossreg.cross_entropy, lossreg.nll_loss):
            assert math.isnan(float(loss(x, t)))
            assert float(loss(x, t, reduction="sum")) == 0.0


def test_a_wrong_reference_gradient_is_reported_as_a_gradient_failure():
    wrong = Case("mse_loss", "wrong-gradient", {"input": {"data": [1.0, 2.0]}, "target": {"data": [0.0, 0.0]}},
                 {"reduction": "sum"}, expected=5.0, grads={"input": [2.0, 5.0]})  # d/dx x² at 2 is 4
    lossreg.register_plugin(types.SimpleNamespace(lossreg_cases=lossreg.hookimpl(lambda: [wrong])), name="wrong")
    try:
        failures = {o.dtype: o.failures for o in lossreg.conformance.run(["numpy", "torch"], ["float32", "float64"],
                                                                           losses=["mse_loss"], max_cases=None)
                    if o.backend == "torch" and o.path == "portable"}
        for dtype in ("float32", "float64"):
            mine = [f for f in failures[dtype] if f.startswith("wrong-gradient")]
            assert len(mine) == 1 and mine[0].startswith("wrong-gradient: gradient of input"), mine
    finally:
        lossreg.unregister_plugin("wrong")


def test_an_unknown_name_suggests_only_close_names():
    with pytest.raises(lossreg.UnknownLossError, match=r"no loss named 'barronn'; no registered name is close"):
        lossreg.get("barronn")
    with pytest.raises(lossreg.UnknownLossError, match=r"closest: huber, HuberLoss"):
        lossreg.get("huberr")


def test_a_learned_option_takes_a_number_or_an_array_but_not_a_string_when_the_object_is_made(barron_plugin):
    assert lossreg.get("BarronLoss", alpha=np.array(1.3)).options["alpha"] == 1.3
    with pytest.raises(lossreg.LossValueError, match="barron_loss: argument 'alpha' expected a number, got str"):
        lossreg.get("BarronLoss", alpha="1.3")


def test_a_backend_without_a_name_is_a_plugin_fault():
    from lossreg.testing import Backend

    class Nameless(Backend):
        module = "numpy"

    with pytest.warns(lossreg.LossregPluginWarning, match="without a name"):
        lossreg.register_plugin(types.SimpleNamespace(lossreg_backends=lossreg.hookimpl(lambda: [Nameless()])),
                                name="nameless")
    try:
        assert "" not in lossreg.registry().backends
    finally:
        lossreg.unregister_plugin("nameless")
