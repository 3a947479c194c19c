"""A third-party plugin author's loss in lossreg's derived forms and test tools, and Dask users' arrays.

The plugin here is what the README's guide writes: a pinball (quantile) loss whose ``quantile``
may be learned (declared ``differentiable``, so an array option), registered in the running
process. Its ``lossreg.torch`` module must compute what its functional form computes, its
Keras loss take what it declares, ``register_plugin`` say what is already registered, and the
pytest plugin's marker run a test on exactly the backends it names. Dask arrays whose chunks
boolean indexing left empty must give NumPy's answer on every path, or a lossreg error.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
import types
from typing import Any

import numpy as np
import pytest
from fixtures.plugin_sites import pip_install, run

import lossreg
from lossreg import define_loss, toolkit

torch = pytest.importorskip("torch")
import lossreg.torch  # noqa: E402  (the module classes, lossreg.torch.PinballLoss)


@define_loss(class_name="PinballLoss", aliases=("pinball",), differentiable=("input", "target", "quantile"),
             reference="Koenker & Bassett 1978; sklearn.metrics.mean_pinball_loss")
def pinball_loss(input: Any, target: Any, /, *, quantile: Any = 0.5, reduction: str = "mean") -> Any:
    """Pinball loss: ``ℓ_i = max(q d_i, (q - 1) d_i)``, ``d = y - x``, then reduced."""
    name = "pinball_loss"
    xp, x, y, dtype = toolkit.pointwise_inputs(name, input, target, reduction)
    q = toolkit.check_number(name, "quantile", quantile, 0.0, 1.0, arrays=True)
    d = y - x
    return toolkit.reduce(xp, xp.maximum(q * d, (q - 1) * d), reduction, dtype)


@pytest.fixture
def pinball() -> Any:
    lossreg.register_plugin(types.SimpleNamespace(lossreg_losses=lossreg.hookimpl(lambda: [pinball_loss])),
                            name="pinball_hunt")
    yield
    lossreg.unregister_plugin("pinball_hunt")


def test_a_number_given_for_an_array_option_is_that_number_in_the_torch_module(pinball: Any) -> None:
    """``lossreg.torch.PinballLoss(quantile=0.9)`` computes with 0.9, as the functional and class forms
    do, on float64 inputs: the number was made a float32 buffer (0.8999999762), a loss 1e-8 off
    (far above float64's tolerance) and a ``get_config()`` that no longer equalled the class form's.
    A number stays a number, as torch.nn keeps its numeric options; a tensor is still a buffer."""
    rng = np.random.default_rng(0)
    x, y = torch.tensor(rng.normal(size=(4, 3))), torch.tensor(rng.normal(size=(4, 3)))
    crit = lossreg.torch.PinballLoss(quantile=0.9)
    assert crit(x, y).item() == lossreg.pinball_loss(x, y, quantile=0.9).item()
    assert crit.get_config() == lossreg.PinballLoss(quantile=0.9).get_config()
    assert crit.get_config()["options"]["quantile"] == 0.9
    assert repr(crit) == "PinballLoss(quantile=0.9)"
    assert crit.double()(x, y).item() == lossreg.pinball_loss(x, y, quantile=0.9).item()
    # Arrays are buffers and move with the module; a Parameter trains.
    buffered = lossreg.torch.PinballLoss(quantile=torch.tensor(0.25, dtype=torch.float64))
    assert list(buffered.state_dict()) == ["quantile"]
    learned = lossreg.torch.PinballLoss(quantile=torch.nn.Parameter(torch.tensor(0.25, dtype=torch.float64)))
    learned(x, y).backward()
    assert [name for name, _ in learned.named_parameters()] == ["quantile"] and learned.quantile.grad is not None
    # A state_dict that holds the option (a module given a tensor, or saved when numbers were
    # buffers) loads into a module rebuilt from the config, which holds a number: it takes the array.
    rebuilt = lossreg.torch.from_config(buffered.get_config())
    assert rebuilt.quantile == 0.25 and list(rebuilt.state_dict()) == []
    rebuilt.load_state_dict(buffered.state_dict())
    assert rebuilt.quantile.dtype == torch.float64 and rebuilt(x, y).item() == buffered(x, y).item()
    older = {"quantile": torch.tensor(0.9)}  # what lossreg.torch.PinballLoss(quantile=0.9) saved before
    crit.load_state_dict(older)
    assert torch.equal(crit.quantile, older["quantile"])


def test_a_learned_option_out_of_range_is_an_error_or_nan_never_a_quiet_number(pinball: Any) -> None:
    """``toolkit.check_number(..., arrays=True)`` returns the option to compute with. A 0-d array
    whose value it cannot read without a sync or a trace (eager and compiled JAX, Dask) comes back
    NaN where it is out of range: ``quantile=jnp.asarray(1.5)`` gave the loss 0.113 with no error
    (the check was skipped there), where a CPU tensor raises. In range, it is the option, value and
    gradient."""
    jax = pytest.importorskip("jax")
    da = pytest.importorskip("dask.array")
    jnp = jax.numpy
    data = np.array([0.3, -1.2, 2.5, 0.0])
    x, y = data, np.zeros(4)
    with pytest.raises(lossreg.LossValueError, match=r"pinball_loss: argument 'quantile' expected a value in "
                                                     r"\[0.0, 1.0\], got 1.5"):
        pinball_loss(torch.tensor(x), torch.tensor(y), quantile=torch.tensor(1.5, dtype=torch.float64))
    assert np.isnan(float(pinball_loss(jnp.asarray(x), jnp.asarray(y), quantile=jnp.asarray(1.5))))
    jitted = jax.jit(lambda q: pinball_loss(jnp.asarray(x), jnp.asarray(y), quantile=q))
    assert np.isnan(float(jitted(1.5))) and np.isnan(float(jitted(-0.25)))
    lazy = pinball_loss(da.from_array(x, chunks=2), da.from_array(y, chunks=2), quantile=da.from_array(np.float64(1.5)))
    assert np.isnan(float(lazy.compute()))
    # In range, every library gives NumPy's value, and JAX the gradient d mean / dq = mean(y - x).
    want = float(pinball_loss(x, y, quantile=0.25))
    assert float(jitted(0.25)) == pytest.approx(want, rel=1e-6)
    assert float(pinball_loss(da.from_array(x, chunks=2), da.from_array(y, chunks=2),
                              quantile=da.from_array(np.float64(0.25))).compute()) == pytest.approx(want, rel=1e-12)
    grad = jax.grad(lambda q: pinball_loss(jnp.asarray(x), jnp.asarray(y), quantile=q))(0.25)
    assert float(grad) == pytest.approx(float(np.mean(y - x)), rel=1e-6)


@define_loss(class_name="GatedSquaredLoss")
def gated_squared_loss(input: Any, target: Any, /, *, training: float = 1.0, name: str = "l2",
                       reduction: str = "mean") -> Any:
    """``ℓ_i = training · (x_i - y_i)²`` (or ``|x_i - y_i|`` with ``name="l1"``): options named as
    torch.nn.Module's train/eval flag and as keras.losses.Loss's ``name=`` argument."""
    xp, x, y, dtype = toolkit.pointwise_inputs("gated_squared_loss", input, target, reduction)
    d = x - y
    return toolkit.reduce(xp, training * (xp.abs(d) if name == "l1" else d * d), reduction, dtype)


def test_an_option_named_as_the_modules_own_attribute_is_refused_by_that_form_not_overwritten() -> None:
    """A plugin option ``training`` became the module's train/eval flag: ``.eval()`` set it to
    False and the loss was 0 from then on, silently; an option ``name`` went to Keras's ``name=``
    and kept its default. Those forms now refuse to be made, naming the option; the functional and
    class forms take it."""
    lossreg.register_plugin(types.SimpleNamespace(lossreg_losses=lossreg.hookimpl(lambda: [gated_squared_loss])),
                            name="gated_hunt")
    try:
        x, y = torch.tensor([1.0, -2.0], dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
        assert lossreg.GatedSquaredLoss(training=2.0)(x, y).item() == 5.0
        with pytest.raises(lossreg.DefinitionError, match=r"lossreg.torch.GatedSquaredLoss: option 'training' of "
                                                          r"gated_squared_loss is torch.nn.Module's own attribute "
                                                          r"\(its train/eval flag\).*rename the option"):
            lossreg.torch.GatedSquaredLoss(training=2.0)
    finally:
        lossreg.unregister_plugin("gated_hunt")
    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras is not installed")
    # Keras reads KERAS_BACKEND once, at its first import: the Keras form in a process of its own.
    script = textwrap.dedent("""
        import types, lossreg, lossreg.keras
        from lossreg import define_loss, toolkit

        @define_loss(class_name="GatedSquaredLoss")
        def gated_squared_loss(input, target, /, *, training=1.0, name="l2", reduction="mean"):
            \"\"\"ℓ = training · (x - y)².\"\"\"
            xp, x, y, dtype = toolkit.pointwise_inputs("gated_squared_loss", input, target, reduction)
            return toolkit.reduce(xp, training * (x - y) ** 2, reduction, dtype)

        lossreg.register_plugin(types.SimpleNamespace(lossreg_losses=lossreg.hookimpl(lambda: [gated_squared_loss])),
                                name="gated_hunt")
        try:
            lossreg.keras.GatedSquaredLoss(name="l1")
        except lossreg.DefinitionError as error:
            print(error)
    """)
    done = run([sys.executable, "-c", script], None, KERAS_BACKEND="jax")
    assert done.returncode == 0, done.stderr[-3000:]
    assert ("lossreg.keras.GatedSquaredLoss: option 'name' of gated_squared_loss is keras.losses.Loss's own "
            "argument (name=)") in done.stdout, done.stdout + done.stderr[-3000:]


def test_registering_an_installed_plugins_module_again_says_it_is_registered(tmp_path: Any) -> None:
    """In a notebook, ``lossreg.register_plugin(lossreg_hunt_again)`` of a package already installed
    (its entry point loaded it) warned with pluggy's "Plugin already registered under a different
    name", followed by the repr of every plugin object pluggy held, and left a failed plugin
    'lossreg_hunt_again' in `lossreg plugins` (so `--strict` failed). It is a PluginError saying
    which plugin holds that module, and nothing is registered; so is registering one object twice."""
    from lossreg import scaffold

    site = pip_install([scaffold.create("hunt-again", tmp_path)], tmp_path / "site")
    script = textwrap.dedent("""
        import warnings
        warnings.simplefilter("error")
        import lossreg, lossreg_hunt_again
        for name in (None, "another_name"):
            try:
                lossreg.register_plugin(lossreg_hunt_again, name=name)
            except lossreg.PluginError as error:
                print(error)
        print(sorted(lossreg.registry().plugins), lossreg.registry().plugins["hunt_again"].faults)
    """)
    done = run([sys.executable, "-c", script], site)
    assert done.returncode == 0, done.stderr[-3000:]
    said = ("lossreg_hunt_again is already registered, as plugin 'hunt_again' (by its entry point); its losses are "
            "there: it is not registered twice")
    assert done.stdout.splitlines() == [said, said, "['hunt_again', 'lossreg'] []"], done.stdout
    # In-process, one object twice (a notebook cell run again, under another name): the same.
    plugin = types.SimpleNamespace(lossreg_losses=lossreg.hookimpl(lambda: [pinball_loss]))
    lossreg.register_plugin(plugin, name="once")
    try:
        with pytest.raises(lossreg.PluginError, match=r"is already registered, as plugin 'once' \(by register_plugin\)"):
            lossreg.register_plugin(plugin, name="twice")
        assert "twice" not in lossreg.registry().plugins
    finally:
        lossreg.unregister_plugin("once")


def test_sample_weights_for_a_keras_loss_without_a_reduction_option_are_a_lossreg_error() -> None:
    """A plugin's loss need not have a ``reduction`` option (one always summed, say). Its Keras loss
    computes as given, but with ``sample_weight`` (or ``fit(class_weight=...)``, a Keras mask) it
    raised a bare ``KeyError: 'reduction'``; now a LossValueError naming the loss and the argument."""
    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras is not installed")
    script = textwrap.dedent("""
        import types, numpy as np, lossreg, lossreg.keras
        from lossreg import define_loss, toolkit

        @define_loss(class_name="SummedSquaresLoss")
        def summed_squares_loss(input, target, /, *, scale=1.0):
            \"\"\"ℓ = scale · Σ (x - y)², always summed.\"\"\"
            xp, x, y, dtype = toolkit.pointwise_inputs("summed_squares_loss", input, target, "sum")
            return toolkit.reduce(xp, scale * (x - y) ** 2, "sum", dtype)

        lossreg.register_plugin(types.SimpleNamespace(lossreg_losses=lossreg.hookimpl(lambda: [summed_squares_loss])),
                                name="summed_hunt")
        x, y = np.array([[1.0, 2.0], [0.5, -1.0]], "float32"), np.zeros((2, 2), "float32")
        print(float(lossreg.keras.SummedSquaresLoss()(y, x)))
        try:
            lossreg.keras.SummedSquaresLoss()(y, x, sample_weight=np.ones(2, "float32"))
        except lossreg.LossValueError as error:
            print(error)
    """)
    done = run([sys.executable, "-c", script], None, KERAS_BACKEND="jax")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == [
        "6.25", "summed_squares_loss: argument 'sample_weight' expected a loss with a reduction option (the weights "
        "multiply its unreduced values, reduction='none'), got a loss without one"], done.stdout


def test_ctc_with_concatenated_targets_of_rows_picked_by_a_mask_gives_numpys_value_on_the_portable_path() -> None:
    """Sequences picked by a boolean mask, then ``compute_chunk_sizes()``, leave an empty chunk in the
    lengths ((2, 0, 2) here). With concatenated targets the portable definition (``LOSSREG_KERNELS=0``,
    ``use_kernels(False)``, the conformance suite's portable path) found each row's offset with
    Dask's cumulative sum, which fails on an empty chunk when computed: a bare ValueError
    "operands could not be broadcast together with shapes (0,) (2,)". Now it gives NumPy's losses,
    as the Dask kernel does."""
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(3)
    t, n, c = 12, 6, 5
    log_probs = np.log(rng.dirichlet(np.ones(c), size=(t, n)))
    input_lengths, target_lengths = np.full(n, t), rng.integers(1, 5, size=n)
    keep = np.array([True, True, False, False, True, True])  # the middle chunk of two rows is dropped
    kept_lengths = target_lengths[keep]
    flat = rng.integers(1, c, size=int(kept_lengths.sum()))
    lengths = da.from_array(target_lengths, chunks=2)[da.from_array(keep, chunks=2)].compute_chunk_sizes()
    assert lengths.chunks == ((2, 0, 2),)
    for reduction in ("none", "mean", "sum"):
        want = lossreg.ctc_loss(log_probs[:, keep], flat, input_lengths[keep], kept_lengths, reduction=reduction)
        for kernels in (True, False):
            with lossreg.use_kernels(kernels):
                lazy = lossreg.ctc_loss(da.from_array(log_probs[:, keep], chunks=(t, 2, c)), da.from_array(flat, chunks=3),
                                        da.from_array(input_lengths[keep], chunks=2), lengths, reduction=reduction)
            np.testing.assert_allclose(lazy.compute(), want, rtol=1e-12, err_msg=f"{reduction}, kernels {kernels}")


def _pytest(tmp_path: Any, source: str, backends: str) -> Any:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["lossreg.pytest_plugin"]\n')
    (tmp_path / "test_marked.py").write_text(textwrap.dedent(source))
    return run([sys.executable, "-m", "pytest", "-v", "-rs", "-p", "no:cacheprovider", "-p", "no:randomly",
                "-p", "no:xdist", "--lossreg-backend", backends], None, cwd=tmp_path)


def test_the_marker_runs_a_test_on_exactly_the_backends_it_names(tmp_path: Any) -> None:
    """``@pytest.mark.lossreg(backends="jax_jit")``, a string as ``--lossreg-backend`` takes, ran the
    test on eager ``jax`` too (a substring test); now it names backends as the option does."""
    pytest.importorskip("jax")
    done = _pytest(tmp_path, """
        import pytest

        @pytest.mark.lossreg(backends="jax_jit")
        def test_compiled_only(lossreg_backend):
            assert lossreg_backend.name == "jax_jit"

        @pytest.mark.lossreg(backends="numpy,jax")
        def test_two(lossreg_backend):
            assert lossreg_backend.name in ("numpy", "jax")
    """, "numpy,jax,jax_jit")
    assert done.returncode == 0, done.stdout[-3000:]
    assert "test_compiled_only[jax_jit] PASSED" in done.stdout and "test_compiled_only[jax]" not in done.stdout
    assert "test_two[numpy] PASSED" in done.stdout and "test_two[jax] PASSED" in done.stdout, done.stdout


def test_a_marker_naming_no_backend_is_an_error_and_one_not_chosen_a_skip_saying_so(tmp_path: Any) -> None:
    """A misspelt backend in the marker left the test with no backend at all, which pytest skipped as
    "got empty parameter set": the test silently never ran. It is a collection error naming it; a
    backend that exists but was not chosen on the command line is a skip that says so."""
    done = _pytest(tmp_path, """
        import pytest

        @pytest.mark.lossreg(backends=["nmupy"])
        def test_misspelt(lossreg_xp):
            pass
    """, "numpy")
    assert done.returncode != 0, done.stdout[-3000:]
    assert "names 'nmupy', which no registered backend is; known: numpy" in done.stdout, done.stdout[-3000:]
    done = _pytest(tmp_path, """
        import pytest

        @pytest.mark.lossreg(backends=["torch"])
        def test_torch_only(lossreg_xp):
            pass
    """, "numpy,array_api_strict")
    assert done.returncode == 0, done.stdout[-3000:]
    assert "1 skipped" in done.stdout, done.stdout[-3000:]
    assert "marked for lossreg backends torch, none of --lossreg-backend numpy,array_api_strict" in done.stdout
