"""What users' tools see of lossreg's public API: signatures, names and types, as inspect, pickle,
JAX's transforms and static type checkers read them."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

import lossreg


def test_a_functional_forms_signature_takes_its_arrays_by_name_as_the_call_does():
    """The functional forms take their arrays by position or, as torch.nn.functional takes them, by
    name (``gaussian_nll_loss(x, y, var=v)``), and their signature says so: it showed the
    definition's positional-only arrays, so ``signature(...).bind`` refused a call the form takes."""
    x, v = np.ones(3), np.full(3, 2.0)
    for name in lossreg.names():
        spec = lossreg.spec(name)
        parameters = inspect.signature(getattr(lossreg, name)).parameters
        assert list(parameters) == [*spec.inputs, *spec.options], name
        assert all(parameters[k].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for k in spec.inputs), name
        assert all(parameters[k].kind is inspect.Parameter.KEYWORD_ONLY for k in spec.options), name
    bound = inspect.signature(lossreg.gaussian_nll_loss).bind(x, x, var=v, reduction="sum")
    assert float(lossreg.gaussian_nll_loss(*bound.args, **bound.kwargs)) == float(
        lossreg.gaussian_nll_loss(x, x, v, reduction="sum"))
    with pytest.raises(TypeError):  # options stay keyword-only, as the call refuses them by position
        inspect.signature(lossreg.cross_entropy).bind(x, x, None)


def test_lossreg_torch_functional_forms_show_the_same_signature():
    pytest.importorskip("torch")
    import lossreg.torch

    assert inspect.signature(lossreg.torch.cross_entropy) == inspect.signature(lossreg.cross_entropy)


def test_jax_jit_donates_an_array_given_by_name():
    """``jax.jit`` maps ``donate_argnames`` (and ``static_argnames``) through the signature: an array
    named there was refused as positional-only ("invalid argnames ... These are positional-only")."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    x, v = jnp.ones(3), jnp.full(3, 2.0)
    expected = float(lossreg.gaussian_nll_loss(x, x, v))
    with warnings.catch_warnings():  # CPU buffers cannot be donated: JAX warns, and computes
        warnings.filterwarnings("ignore", "Some donated buffers were not usable")
        assert float(jax.jit(lossreg.gaussian_nll_loss, donate_argnames="var")(x, x, var=v)) == expected


def _mypy(tmp_path, source: str) -> str:
    """mypy's report on a user's script; fails the test on any error in it."""
    api = pytest.importorskip("mypy.api")
    script = tmp_path / "user.py"
    script.write_text(source)
    config = tmp_path / "mypy.ini"  # lossreg checked, the array libraries not read (seconds, not minutes)
    config.write_text("[mypy]\nfollow_imports = silent\n[mypy-torch.*,jax.*,jaxlib.*,dask.*,keras.*,numpy.*,"
                      "array_api_compat.*,array_api_strict.*,pluggy.*,optax.*,rich.*,triton.*,cupy.*]\n"
                      "follow_imports = skip\n")
    out, err, status = api.run([str(script), "--config-file", str(config), "--cache-dir", str(tmp_path / "cache"),
                                "--no-error-summary"])
    assert status == 0, out + err
    return out


def test_type_checkers_take_lossreg_registry_for_callable(tmp_path):
    """``lossreg.registry()``, the loaded registry (the module is callable at run time), type-checks
    as a :class:`~lossreg.registry.Registry`: mypy and pyright reported "Module not callable"."""
    out = _mypy(tmp_path, "import lossreg\nfrom lossreg.registry import Registry\n\n"
                          "loaded: Registry = lossreg.registry()\nreveal_type(lossreg.registry().specs)\n")
    assert "str, lossreg.core.LossSpec]" in out, out  # not Any


def test_type_checkers_see_a_defined_losss_spec_and_portable_definition(tmp_path):
    """``define_loss`` returns the functional form with ``.spec`` and ``.portable``, as its docstring
    says and plugins use them (lossreg-extras' JAX kernel calls ``sparsemax_loss.portable``): typed
    ``Callable[..., Any]``, mypy reported "has no attribute 'portable'" in that correct code."""
    out = _mypy(tmp_path, """from typing import Any

from lossreg import define_loss, toolkit


@define_loss(class_name="CharbonnierLoss")
def charbonnier_loss(input: Any, target: Any, /, *, delta: float = 1.0, reduction: str = "mean") -> Any:
    xp, x, y, dtype = toolkit.pointwise_inputs("charbonnier_loss", input, target, reduction)
    return toolkit.reduce(xp, x - y, reduction, dtype)


charbonnier_loss(1.0, 2.0, reduction="sum")
charbonnier_loss.portable(1.0, 2.0, delta=2.0)
reveal_type(charbonnier_loss.spec.class_name)
""")
    assert 'Revealed type is "builtins.str"' in out or 'Revealed type is "str"' in out, out


def test_static_tools_see_every_built_in_functional_form_with_its_signature(tmp_path):
    """``lossreg.mse_loss`` and the other functional forms are named at run time from the catalogue
    (``from .losses import *``): type checkers and IDEs saw no such name (``Any`` through the module's
    ``__getattr__``), so nothing was completed or checked. They are declared with the call's
    signature (arrays by position or name, options keyword-only) and define_loss's ``.spec``."""
    from lossreg import stubs
    from lossreg.losses import LOSSES

    declared = stubs.current()
    for loss in LOSSES:
        assert f"    @_form\n    def {loss.__name__}(" in declared, loss.__name__
    out = _mypy(tmp_path, """import lossreg

x, y, w = object(), object(), object()
lossreg.cross_entropy(x, y, weight=w, label_smoothing=0.1)
lossreg.gaussian_nll_loss(x, y, var=w)
reveal_type(lossreg.mse_loss.spec)
reveal_type(lossreg.cross_entropy)
""")
    assert "lossreg.core.LossSpec" in out and "label_smoothing: builtins.float =" in out.replace(
        "label_smoothing: float =", "label_smoothing: builtins.float ="), out
    refused = tmp_path / "refused"
    refused.mkdir()
    with pytest.raises(AssertionError, match="Too many positional arguments"):  # as the call refuses it
        _mypy(refused, "import lossreg\n\nlossreg.cross_entropy(1, 2, 3)\n")


def test_a_keras_losss_signature_lists_its_options_then_keras_name_and_dtype():
    """As the class form's and the torch module's do: it was ``(*args, name=None, dtype=None,
    **options)``, so ``help()``, an IDE or a config system's checks found no option of the loss.
    (In a subprocess: Keras reads KERAS_BACKEND once, when first imported.)"""
    import importlib.util
    import os
    import subprocess
    import sys

    if importlib.util.find_spec("keras") is None or importlib.util.find_spec("jax") is None:
        pytest.skip("needs keras and jax")
    check = """
import inspect, lossreg, lossreg.keras as lk
for name, spec in lossreg.registry().specs.items():
    parameters = inspect.signature(lk.loss_class(name)).parameters
    assert list(parameters) == [*spec.options, "name", "dtype"], (name, list(parameters))
    assert all(p.kind is p.KEYWORD_ONLY for p in parameters.values()), name
    assert all(parameters[k].default is v for k, v in spec.options.items()), name
loss = lk.CrossEntropyLoss(weight=[1.0, 2.0, 0.5], name="ce")
assert loss.name == "ce" and loss.get_config()["weight"] == [1.0, 2.0, 0.5]
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "KERAS_BACKEND": "jax"})
    assert done.stdout.strip() == "ok", done.stderr[-2000:]


def test_a_plugin_losss_functional_form_pickles_by_reference_as_a_built_in_one():
    """``lossreg.<name>`` of a plugin's loss pickles (a ``functools.partial`` of it sent to a process
    pool, a DataLoader worker, Dask's scheduler), as ``lossreg.mse_loss`` does: it named the plugin's
    module, where another object (the plugin's own form) is found, and pickle raised "not the same
    object" (for an installed plugin; "Can't pickle local object" for one defined in a function)."""
    import functools
    import pickle
    import types

    @lossreg.define_loss(class_name="HuntPickledMSELoss")
    def hunt_pickled_mse_loss(input, target, /, *, reduction: str = "mean"):  # type: ignore[no-untyped-def]
        return 2 * lossreg.mse_loss(input, target, reduction=reduction)

    plugin = types.SimpleNamespace(lossreg_losses=lossreg.hookimpl(lambda: [hunt_pickled_mse_loss]))
    lossreg.register_plugin(plugin, "hunt_typing_pickle")
    try:
        form = lossreg.hunt_pickled_mse_loss
        assert (form.__module__, form.__qualname__) == ("lossreg", "hunt_pickled_mse_loss")
        assert pickle.loads(pickle.dumps(form)) is form
        total = pickle.loads(pickle.dumps(functools.partial(form, reduction="sum")))
        assert float(total(np.ones(3), np.zeros(3))) == 6.0
    finally:
        lossreg.unregister_plugin("hunt_typing_pickle")
    assert pickle.loads(pickle.dumps(lossreg.mse_loss)) is lossreg.mse_loss  # as the built-in one did


def test_generated_methods_are_named_for_their_class_where_pickle_and_help_find_them():
    """``lossreg.torch.CrossEntropyLoss.forward`` was named ``LossModule.forward`` (so ``help()`` and a
    bound method's repr showed the base class, and pickle by reference found the base's own forward,
    another object), and ``lossreg.MSELoss.__init__`` named ``lossreg.registry``, where no MSELoss is."""
    import importlib
    import importlib.util
    import pickle

    def found(function: object) -> object:
        owner: object = importlib.import_module(function.__module__)  # type: ignore[attr-defined]
        for part in function.__qualname__.split("."):  # type: ignore[attr-defined]
            owner = getattr(owner, part)
        return owner

    methods = [lossreg.MSELoss.__init__, lossreg.CrossEntropyLoss.__init__]
    if importlib.util.find_spec("torch") is not None:
        import lossreg.torch as lt

        methods += [lt.CrossEntropyLoss.forward, lt.CrossEntropyLoss.__init__, lt.PoissonNLLLoss.forward,
                    lt.LinearCrossEntropyLoss.forward]
        assert "CrossEntropyLoss.forward of CrossEntropyLoss()" in repr(lt.CrossEntropyLoss().forward)
    for method in methods:
        assert found(method) is method, method.__qualname__
        assert pickle.loads(pickle.dumps(method)) is method, method.__qualname__


def test_the_plugin_packages_losses_document_formula_shapes_and_options_for_their_pages():
    """``lossreg docs build --plugins`` makes each plugin loss's page from its docstring (a ``$$``
    formula or the summary's ``ℓ = ...``, a "Shapes:" paragraph, an ``Options:`` line per option),
    as the README says the pages give them: the packages' pages showed no formula for
    ``nt_xent_loss``, ``poly1_cross_entropy`` and ``generalized_dice_loss``, no shapes for
    ``tversky_loss``, and "(not documented)" for 14 options."""
    import ast
    from pathlib import Path

    from lossreg.docsite import pages

    checked = []
    for path in sorted((Path(__file__).resolve().parents[1] / "plugins").glob("*/src/*/*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if not (isinstance(node, ast.FunctionDef)
                    and any("define_loss" in ast.unparse(d) for d in node.decorator_list)):
                continue
            doc = pages.parse_docstring(ast.get_docstring(node) or "")
            options = [a.arg for a in node.args.kwonlyargs]
            meanings = {o: doc.args.get(o) or pages.COMMON_OPTIONS.get(o) for o in options}
            assert doc.formulas or doc.fallback_formulas, f"{node.name}: no formula"
            assert doc.shapes, f"{node.name}: no 'Shapes:'"
            assert all(meanings.values()), f"{node.name}: options without a meaning: {meanings}"
            assert set(doc.args) <= set(options), node.name
            checked.append(node.name)
    assert len(checked) >= 14, checked


def test_a_class_forms_call_signature_names_its_arrays():
    """As ``inspect.signature(lossreg.torch.GaussianNLLLoss().forward)`` and the static declaration
    do: it was ``(*arrays, **named)``, so ``help()``, IPython's call hint and ``signature().bind``
    showed none of the arrays the call takes (by position or by name)."""
    x = np.ones(3)
    for name, spec in lossreg.registry().specs.items():
        loss = lossreg.registry().loss_class(name)()
        parameters = inspect.signature(loss).parameters
        assert list(parameters) == list(spec.inputs), name
        assert all(p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty for p in parameters.values()), name
    loss = lossreg.GaussianNLLLoss(reduction="sum")
    bound = inspect.signature(loss).bind(x, x, var=2 * x)
    assert float(loss(*bound.args, **bound.kwargs)) == float(loss(x, x, 2 * x))


def test_a_star_import_gives_the_class_forms_and_the_torch_modules_as_torch_nns_gives_its_own():
    """``from lossreg import *`` gives the class forms beside the functional forms, and ``from
    lossreg.torch import *`` the module classes, as ``from torch.nn import *`` gives torch's: their
    ``__all__`` named neither (they are made on first access)."""
    torch = pytest.importorskip("torch")
    from lossreg.losses import __all__ as built_in

    classes = {getattr(lossreg, name).spec.class_name for name in built_in}
    here: dict[str, object] = {}
    exec("from lossreg import *", here)
    assert classes <= here.keys() and set(built_in) <= here.keys()
    assert here["MSELoss"] is lossreg.MSELoss
    modules: dict[str, object] = {}
    exec("from lossreg.torch import *", modules)
    assert classes <= modules.keys()
    assert all(issubclass(modules[c], torch.nn.Module) for c in classes)  # type: ignore[arg-type]
    assert modules["CrossEntropyLoss"] is lossreg.torch.CrossEntropyLoss
