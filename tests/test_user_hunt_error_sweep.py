"""A sweep of bad input, one thing broken at a time, through every entry form: what it found wrong,
each kept as the behaviour it now has.

Every refusal is a lossreg error naming the loss, the argument, what was expected and what was
given, whatever the form (functional, class, ``lossreg.torch`` module, ``lossreg.keras`` loss) and
whichever path computes (a kernel or the portable definition). Keras reads KERAS_BACKEND once, when
it is first imported, so the Keras checks run ``fixtures/keras_error_sweep.py`` in a subprocess per
backend.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures.keras_run import checks_passed

import lossreg
from lossreg.errors import LossTypeError

torch = pytest.importorskip("torch")
import lossreg.torch as lt  # noqa: E402

KERAS_CHECKS = ["check_class_weights_of_integers_bools_or_complex_are_refused_as_the_class_form_refuses_them",
                "check_a_string_for_an_array_option_is_a_lossreg_error",
                "check_linear_cross_entropy_ignore_index_not_an_integer_is_a_lossreg_error",
                "check_options_by_position_are_the_class_forms_error"]


@pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="the keras extra is not installed")
@pytest.mark.parametrize("keras_backend", ["jax", "torch"])
def test_keras_losses_refuse_bad_array_options_as_the_class_form(keras_backend: str, tmp_path: Path) -> None:
    assert checks_passed("keras_error_sweep.py", keras_backend, tmp_path) == KERAS_CHECKS


NOT_ARRAYS = [("1", "str '1'"), (b"1", "bytes"), ({"a": 1}, "dict"), (object(), "object"),
              (np.array("x"), "dtype <U1"), (np.array([1, "a"], dtype=object), "dtype object")]


@pytest.mark.parametrize(("loss", "option"), [("CrossEntropyLoss", "weight"), ("BCEWithLogitsLoss", "pos_weight"),
                                              ("MSELoss", "weight"), ("LinearCrossEntropyLoss", "bias")])
@pytest.mark.parametrize(("value", "got"), NOT_ARRAYS, ids=[g for _, g in NOT_ARRAYS])
def test_a_torch_module_refuses_an_array_option_torch_cannot_hold_naming_it(loss: str, option: str, value: Any,
                                                                            got: str) -> None:
    """An array option is a buffer of the module, made when the module is made: what torch cannot
    make a tensor of was torch's own error there ("new(): invalid data type 'str'", "Could not infer
    dtype of dict"), naming neither the loss nor the option. It is lossreg's, as the class form's
    (which refuses it at the call, with the same words)."""
    spec = lossreg.spec(loss)
    with pytest.raises(LossTypeError) as info:
        lt.get(loss, **{option: value})
    error = info.value
    assert (error.loss, error.argument) == (spec.name, option) and got in error.got, str(error)
    assert error.expected in ("an array (NumPy, CuPy, torch, JAX, Dask, ...)", "a real floating-point array")


@pytest.mark.parametrize("chunk_size", [2**63, 10**30, (10**30, 2), (2, 2**64), (10**30, 10**30)],
                         ids=["2**63", "1e30", "(1e30, 2)", "(2, 2**64)", "(1e30, 1e30)"])
def test_linear_cross_entropy_takes_a_chunk_size_past_int64_on_torch_as_one_chunk(chunk_size: Any) -> None:
    """A chunk larger than the tokens (or the vocabulary) is one chunk, on every library: the
    portable definition and the JAX kernel computed with ``chunk_size=10**30``, but the torch kernel
    raised torch's RuntimeError "Expected a value of type 'int' for argument 'tokens'" from its
    operator, whose ints are int64. Now torch's answer, value and gradients, from the functional
    form and the module alike."""
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(6, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    head = torch.randn(5, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    target = torch.tensor([0, 4, 1, 3, 2, -100])
    want = torch.nn.functional.cross_entropy(hidden @ head.T, target)
    want_grads = torch.autograd.grad(want, (hidden, head))
    for call in (lambda: lossreg.linear_cross_entropy(hidden, head, target, chunk_size=chunk_size),
                 lambda: lt.LinearCrossEntropyLoss(chunk_size=chunk_size)(hidden, head, target)):
        got = call()
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
        for g, w in zip(torch.autograd.grad(got, (hidden, head)), want_grads):
            torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("config", [{"name": "mse_loss", "options": None}, {"name": "mse_loss", "options": []},
                                    {"name": "huber_loss", "options": {1: 2.0}}],
                         ids=["options None", "options a list", "an option named by a number"])
@pytest.mark.parametrize("rebuild", [lossreg.from_config, lt.from_config], ids=["class form", "torch module"])
def test_a_config_whose_options_are_not_a_dict_of_names_is_refused_as_a_malformed_config(config: Any,
                                                                                       rebuild: Any) -> None:
    """A config read back from JSON or YAML is ``{"name": ..., "options": {...}}``. An ``options`` of
    None (``options:`` left empty in YAML), a list, or a key that is not a name was Python's
    "argument after ** must be a mapping" / "keywords must be strings"; it is the error every other
    malformed config gets."""
    with pytest.raises(lossreg.LossValueError) as info:
        rebuild(config)
    error = info.value
    assert (error.loss, error.argument) == ("lossreg.from_config", "config") and error.got == repr(config), str(error)
    assert "'options'" in error.expected


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "portable"])
@pytest.mark.parametrize("as_list", [list, tuple])
def test_ctc_lengths_listed_from_a_tensor_are_taken_as_torch_takes_them(kernels: bool, as_list: Any) -> None:
    """``list(lengths)`` of an integer tensor holds 0-d tensors, which torch's ``ctc_loss`` reads as
    the ints they hold; lossreg refused them ("expected an integer array or a list or tuple of
    ints"). Now torch's value and gradient. A 0-d float or bool tensor there stays refused, by
    name (torch refuses the float one too)."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 2, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    targets = torch.tensor([[1, 2], [3, 3]])
    input_lengths, target_lengths = torch.tensor([6, 5]), torch.tensor([2, 1], dtype=torch.int32)
    want = torch.nn.functional.ctc_loss(logits.log_softmax(-1), targets, as_list(input_lengths),
                                        as_list(target_lengths))
    with lossreg.use_kernels(kernels):
        got = lossreg.ctc_loss(logits.log_softmax(-1), targets, as_list(input_lengths), as_list(target_lengths))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    torch.testing.assert_close(torch.autograd.grad(got, logits)[0], torch.autograd.grad(want, logits)[0])
    for bad in (torch.tensor(6.0), torch.tensor(True)):
        with lossreg.use_kernels(kernels), pytest.raises(LossTypeError) as info:
            lossreg.ctc_loss(logits.log_softmax(-1), targets, as_list([bad, bad]), as_list(target_lengths))
        assert (info.value.loss, info.value.argument) == ("ctc_loss", "input_lengths"), str(info.value)


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "portable"])
@pytest.mark.parametrize(("name", "want"), [("mape_loss", 0.0), ("msle_loss", math.nan)])
def test_extras_eps_past_float32s_range_is_infinite_on_torch_as_on_numpy(extras: Any, name: str, want: float,
                                                                          kernels: bool) -> None:
    """lossreg-extras' MAPE and MSLE floor values at ``eps``. On float32 arrays an ``eps`` past
    float32's largest number is ∞, as NumPy and JAX round it (MAPE 100·|x - y| / ∞ = 0, MSLE
    log1p(∞) - log1p(∞) = NaN); on float32 torch tensors the same call raised torch's
    RuntimeError "value cannot be converted to type float without overflow" from inside the
    loss. Now the same answer on every library."""
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0.0, 1.0, (4, 3)).astype("float32"), rng.uniform(0.5, 1.5, (4, 3)).astype("float32")
    with lossreg.use_kernels(kernels), np.errstate(over="ignore", invalid="ignore"):
        on_numpy = getattr(lossreg, name)(x, y, eps=1e300)
        on_torch = getattr(lossreg, name)(torch.from_numpy(x), torch.from_numpy(y), eps=1e300)
    np.testing.assert_equal(float(on_torch), float(on_numpy))
    np.testing.assert_equal(float(on_torch), want)


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("chunk_size", [(np.int64(2), 3), [np.int32(2), np.int64(3)], (2, np.uint8(3))])
def test_a_chunk_size_pair_of_numpy_integers_is_taken_as_a_single_numpy_integer_is(library: str,
                                                                                  chunk_size: Any) -> None:
    """NumPy integers are the numbers they hold in a number option (README), in a (tokens,
    vocabulary) pair too: the pair was refused while ``chunk_size=np.int64(2)`` was taken."""
    rng = np.random.default_rng(0)
    x, w, t = rng.normal(size=(6, 4)), rng.normal(size=(5, 4)), np.array([0, 1, 2, 3, 4, 0])
    if library == "torch":
        x, w, t = (torch.from_numpy(a) for a in (x, w, t))
    want = lossreg.linear_cross_entropy(x, w, t, chunk_size=(2, 3))
    assert float(lossreg.linear_cross_entropy(x, w, t, chunk_size=chunk_size)) == pytest.approx(float(want))
    assert float(lossreg.LinearCrossEntropyLoss(chunk_size=chunk_size)(x, w, t)) == pytest.approx(float(want))


@pytest.mark.parametrize("when", [np.timedelta64(1, "ns"), np.timedelta64(2, "s"), np.datetime64(1, "ns")])
def test_a_numpy_duration_or_date_is_no_number_option(when: Any) -> None:
    """``margin=np.timedelta64(1, 'ns')`` was read as 1 (the count of its units), although NumPy
    durations are no numbers to lossreg (README), as arrays of them are refused."""
    x = np.ones((2, 3))
    with pytest.raises(lossreg.errors.LossValueError, match=r"triplet_margin_loss: argument 'margin' expected a number"):
        lossreg.triplet_margin_loss(x, x, x, margin=when)
    with pytest.raises(lossreg.errors.LossValueError, match=r"margin_ranking_loss: argument 'margin'"):
        lossreg.MarginRankingLoss(margin=when)(x, x, x)


def test_a_variance_given_as_an_int_past_float64_is_refused_naming_var() -> None:
    """``gaussian_nll_loss(x, y, 10**400)`` was Python's OverflowError (torch's own call: a TypeError
    from ``any()``); a number option past float64's range is refused by name, and so is ``var``."""
    x = np.ones(3)
    with pytest.raises(lossreg.errors.LossValueError, match=r"gaussian_nll_loss: argument 'var' expected a number "
                                                            r"within float64's range .* got an int of 1329 bits"):
        lossreg.gaussian_nll_loss(x, x, 10**400)
    assert lossreg.gaussian_nll_loss(x, x, 2) == lossreg.gaussian_nll_loss(x, x, 2.0)
