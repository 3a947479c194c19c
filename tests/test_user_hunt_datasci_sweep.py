"""A statistician's NumPy, Dask and array-api-strict calls, beyond ``test_user_hunt_datasci.py``.

Each test is one call from code that holds NumPy arrays (or NumPy scalars, read from a config or
a results table) that gave a misleading error or a silently wrong value before it was fixed: a
class form holding a NumPy bool for a flag, whose ``get_config`` said the option was a "bool"
that JSON cannot write; big-endian uint64 labels (a FITS table) whose -1 "unlabelled" marker
the NumPy kernel read as the last class; CTC lengths given as a list holding a number past int64
(a -1 marker read back from uint64), which raised NumPy's or torch's OverflowError; class
weights given as a list of NumPy bools (list(mask)), complex numbers or dates, which the class
form took as numbers where it refuses Python bools and complex numbers; a -100 or -1 marker cast to
uint64, which was read back as the marker (an ignored target, a list's end) where uint32 refuses it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import lossreg

# --- get_config of a class form holding a NumPy bool --------------------------------------------
# flags = np.array([True, False]); lossreg.PoissonNLLLoss(log_input=flags[1]). NumPy's bools are not
# taken for flags (README: boolean flags must be bools; torch's own operators refuse them too), and
# the call says so. get_config said "got bool": NumPy 2 names np.bool_'s type "bool", and a Python
# bool is what JSON writes, so the message named the fix as the fault.


@pytest.mark.parametrize(("cls", "flag"), [("PoissonNLLLoss", "log_input"), ("KLDivLoss", "log_target"),
                                           ("TripletMarginLoss", "swap"), ("GaussianNLLLoss", "full")])
def test_get_config_of_a_numpy_bool_flag_names_the_numpy_scalar_as_the_call_does(cls: str, flag: str) -> None:
    loss = getattr(lossreg, cls)(**{flag: np.array([True, False])[1]})
    with pytest.raises(lossreg.LossTypeError) as config_error:
        loss.get_config()
    assert config_error.value.got == "NumPy scalar np.False_", str(config_error.value)
    assert str(config_error.value).startswith(f"{lossreg.spec(cls).name}: argument '{flag}' expected a JSON-serializable")
    # The fix the messages point to, a Python bool, writes and reads back.
    fixed = getattr(lossreg, cls)(**{flag: bool(np.array([True, False])[1])})
    assert lossreg.from_config(json.loads(json.dumps(fixed.get_config()))) == fixed


# --- big-endian unsigned labels with a -1 "unlabelled" marker -----------------------------------
# Labels read from a FITS table or an HDF5/netCDF dataset written on a big-endian machine are
# '>u8' (FITS is big-endian by definition). A -1 "unlabelled" marker cast to unsigned is 2^64 - 1,
# which NumPy's gather wraps back to -1: the NumPy kernel guarded native uint64 (dtype == np.uint64)
# but not '>u8', which is not equal to it, so the row silently got the last class's loss (a finite
# number) where the portable path, and native uint64, refuse the label.

SCORES = np.random.default_rng(20261205).normal(size=(5, 3))
LABELS = np.array([0, 2, 1, 1, 0])


@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize("dtype", [">u8", "<u8", ">u4", ">i8"])
def test_an_unlabelled_marker_in_big_endian_labels_is_refused_on_every_path(dtype: str, kernels: bool) -> None:
    labels = np.array([0, 2, -1, 1, 0]).astype(dtype)
    with lossreg.use_kernels(kernels), pytest.raises(lossreg.LossValueError,
                                                     match=r"argument 'target' expected class indices in \[0, 3\)"):
        lossreg.cross_entropy(SCORES, labels, reduction="none")


@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize("dtype", [">u8", ">i8", ">u2"])
def test_valid_big_endian_labels_are_the_classes_they_hold(dtype: str, kernels: bool) -> None:
    torch = pytest.importorskip("torch")
    want = torch.nn.functional.cross_entropy(torch.from_numpy(SCORES), torch.from_numpy(LABELS), reduction="none")
    with lossreg.use_kernels(kernels):
        got = lossreg.cross_entropy(SCORES, LABELS.astype(dtype), reduction="none")
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-12)


# --- CTC lengths given as a list, holding a number past int64 ------------------------------------
# README: CTC lengths may be lists or tuples of ints. A list read back from uint64 lengths holding
# a -1 marker (list(lengths) or lengths.tolist(): 2**64 - 1), or a bogus length past int64, raised
# NumPy's "OverflowError: Python int too large to convert to C long" (torch's kernel: ValueError
# "Overflow when unpacking long long"; JAX without x64: "out of bounds for int32" from 2**31),
# naming neither the loss nor the argument. No such length fits the arrays: a LossValueError, as
# for a length past T in an array.

LOG_PROBS = np.log(np.full((5, 2, 3), 1 / 3))
PADDED = np.array([[1, 2], [1, 1]])


def _ctc_libraries() -> dict[str, object]:
    libraries: dict[str, object] = {"numpy": np.asarray}
    for name, module, convert in [("dask", "dask.array", "from_array"), ("array_api_strict", "array_api_strict", "asarray"),
                                  ("torch", "torch", "from_numpy")]:
        try:
            libraries[name] = getattr(__import__(module, fromlist=["_"]), convert)
        except ImportError:
            pass
    return libraries


@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize("library", list(_ctc_libraries()))
@pytest.mark.parametrize(("argument", "lengths", "expected"), [
    ("input_lengths", ([2**70, 5], [2, 2]), r"lengths in \[0, 5\] \(T, the frames of log_probs\)"),
    ("input_lengths", ([5, -2**64], (2, 2)), r"lengths in \[0, 5\] \(T, the frames of log_probs\)"),
    ("input_lengths", (list(np.array([-1, 5]).astype(np.uint64)), [2, 2]), r"lengths in \[0, 5\]"),
    ("target_lengths", ([5, 5], (2, 2**63)), r"lengths in \[0, 2\] \(at most the targets' length\)"),
])
def test_a_length_past_int64_in_a_list_is_a_lossreg_error_naming_it(argument, lengths, expected, library,
                                                                     kernels) -> None:
    convert = _ctc_libraries()[library]
    with lossreg.use_kernels(kernels), pytest.raises(lossreg.LossValueError,
                                                     match=rf"^ctc_loss: argument '{argument}' expected {expected}"):
        lossreg.ctc_loss(convert(LOG_PROBS), convert(PADDED), *lengths)
    # In range, the same lists are lengths as torch takes them.
    with lossreg.use_kernels(kernels):
        value = lossreg.ctc_loss(convert(LOG_PROBS), convert(PADDED), [5, 5], (2, 2))
    value = value.compute() if hasattr(value, "compute") else value
    np.testing.assert_allclose(float(value), 1.1806811560223684, rtol=1e-12)


# --- class weights given as a list of NumPy numbers --------------------------------------------
# README: integer or bool weights are a LossTypeError (an array of bools, or a list of Python
# bools, is refused). list(mask) or list(complex_weights) holds NumPy scalars, which are 0-d: the
# class form let any 0-d element through, so list(np.array([True, False, True])) became 0/1 class
# weights (the loss of the masked classes silently dropped), a NumPy complex lost its imaginary
# part with only NumPy's ComplexWarning, a np.datetime64 became a count of days, and an np.str_
# raised NumPy's ValueError. So did a Python int past float64 (NumPy's OverflowError).

SCORES_4x3 = np.random.default_rng(1205).normal(size=(4, 3))
CLASSES = np.array([0, 1, 2, 1])


@pytest.mark.parametrize("element", [
    np.bool_(True), np.array(True), np.complex128(1 + 1j), np.array(1 + 0j), np.str_("1"), np.array("1"),
    np.datetime64("2026-12-05"), np.timedelta64(1, "s"), True, 1 + 0j,
], ids=lambda e: f"{type(e).__name__}-{getattr(e, 'dtype', '')}")
def test_a_list_of_class_weights_holding_no_real_number_is_refused_as_the_functional_form_refuses_it(
        element: object) -> None:
    with pytest.raises(lossreg.LossTypeError, match=r"^cross_entropy: argument 'weight' expected an array, or a "
                                                    r"list of numbers .*, got a list holding "):
        lossreg.CrossEntropyLoss(weight=[element, 2.0, 3.0])


def test_a_list_of_numpy_bools_is_refused_like_a_list_of_python_bools_and_a_bool_array() -> None:
    present = np.array([True, False, True])
    for weight in (list(present), present.tolist()):
        with pytest.raises(lossreg.LossTypeError, match="argument 'weight'"):
            lossreg.CrossEntropyLoss(weight=weight)
    with pytest.raises(lossreg.LossTypeError, match="argument 'weight'"):
        lossreg.cross_entropy(SCORES_4x3, CLASSES, weight=present)
    # The weights meant: as floats, taken in every form.
    want = lossreg.cross_entropy(SCORES_4x3, CLASSES, weight=present.astype(np.float64))
    np.testing.assert_allclose(lossreg.CrossEntropyLoss(weight=list(present.astype(np.float64)))(SCORES_4x3, CLASSES),
                               want, rtol=1e-15)


def test_a_list_of_class_weights_holding_an_int_past_float64_is_a_lossreg_error() -> None:
    with pytest.raises(lossreg.LossValueError, match=r"argument 'weight' expected a list of numbers within "
                                                     r"float64's range .*got a list holding an int of 1329 bits"):
        lossreg.CrossEntropyLoss(weight=[10**400, 2.0, 3.0])
    # An int past int64 but within float64 is the float it rounds to, as for a number option.
    np.testing.assert_allclose(lossreg.CrossEntropyLoss(weight=[2**70, 2.0, 3.0])(SCORES_4x3, CLASSES),
                               lossreg.cross_entropy(SCORES_4x3, CLASSES, weight=np.array([2.0**70, 2.0, 3.0])),
                               rtol=1e-15)


@pytest.mark.parametrize("weight", [
    list(np.array([0.5, 2.0, 1.0], np.float32)), list(np.array([1, 2, 3], np.int8)),
    list(np.array([1, 2, 3], np.uint64)), [np.array(0.5), np.array(2), 1.0], list(np.array([0.5, 2.0, 1.0], np.longdouble)),
], ids=["float32", "int8", "uint64", "0-d arrays", "longdouble"])
def test_lists_of_numpy_real_numbers_are_still_class_weights(weight: list) -> None:
    want = lossreg.cross_entropy(SCORES_4x3, CLASSES, weight=np.array([float(w) for w in weight]))
    np.testing.assert_allclose(lossreg.CrossEntropyLoss(weight=weight)(SCORES_4x3, CLASSES), want, rtol=1e-7)


@pytest.mark.parametrize("form", ["class form", "lossreg.torch module"])
def test_a_list_of_0d_arrays_weighs_torch_tensors_as_the_tensor_it_lists(form: str) -> None:
    """list(weights) of a NumPy, torch or JAX array holds 0-d arrays, which torch's asarray refuses
    ("len() of unsized object", torch's error): read as the numbers they hold."""
    torch = pytest.importorskip("torch")
    scores, classes = torch.from_numpy(SCORES_4x3), torch.from_numpy(CLASSES)
    want = lossreg.cross_entropy(scores, classes, weight=torch.tensor([0.5, 2.0, 1.0], dtype=scores.dtype))
    for weight in (list(np.array([0.5, 2.0, 1.0])), [np.array(0.5), np.array(2.0), np.array(1.0)],
                   list(torch.tensor([0.5, 2.0, 1.0]))):
        if form == "class form":
            loss = lossreg.CrossEntropyLoss(weight=weight)
        else:
            import lossreg.torch as lt
            loss = lt.CrossEntropyLoss(weight=weight).double()
        torch.testing.assert_close(loss(scores, classes), want)


# --- markers cast to uint64, by width -----------------------------------------------------------
# labels.astype(np.uint32) of a -100 "ignore" marker is 2**32 - 100, refused as an index past the
# classes ("uint labels are the numbers they hold"). In uint64 it is 2**64 - 100, which lossreg's
# cast to int64 indices wrapped back to -100: the row was silently ignored (cross_entropy,
# nll_loss, linear_cross_entropy), and a -1 in uint64 multilabel targets silently ended the row's
# list. Every width now reads the number held: past every class, refused (NaN on Dask).


def _unsigned_libraries() -> dict[str, object]:
    libraries = _ctc_libraries()
    libraries.pop("torch", None)
    torch = pytest.importorskip("torch")
    libraries["torch"] = torch.from_numpy  # torch's kernels decline uint64 targets: the portable path's
    return libraries


@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize("library", list(_unsigned_libraries()))
@pytest.mark.parametrize("dtype", ["uint32", "uint64"])
@pytest.mark.parametrize(("name", "arrays", "marker"), [
    ("cross_entropy", (SCORES_4x3,), -100),
    ("nll_loss", (SCORES_4x3,), -100),
    ("linear_cross_entropy", (SCORES_4x3, np.eye(3)), -100),
    ("multilabel_margin_loss", (SCORES_4x3,), -1),
])
def test_a_marker_cast_to_unsigned_is_the_number_it_holds_in_every_width(name, arrays, marker, dtype, library,
                                                                         kernels) -> None:
    if name == "multilabel_margin_loss":
        target = np.array([[0, marker, 2], [1, marker, 0], [2, 1, marker], [marker, 0, 0]])
    else:
        target = np.array([0, 2, marker, 1])
    convert = _unsigned_libraries()[library]
    call = [convert(a) for a in (*arrays, target.astype(dtype))]
    marked = (target == marker).any(axis=-1) if target.ndim == 2 else target == marker
    with lossreg.use_kernels(kernels):
        if library == "dask":  # lazy: nothing is read, the marked rows' losses are NaN
            losses = getattr(lossreg, name)(*call, reduction="none").compute()
            np.testing.assert_array_equal(np.isnan(losses), marked)
            return
        with pytest.raises(lossreg.LossValueError, match=rf"^{name}: argument 'target' expected class indices"):
            getattr(lossreg, name)(*call, reduction="none")
