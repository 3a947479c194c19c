"""Bad input to every registered loss raises a lossreg error that says what went wrong.

Each error subclasses ValueError or TypeError and names the loss, the argument, what was
expected and what was given. Generic cases (lists, None, a wrong dtype, a wrong shape, mixed
libraries and devices, an unknown reduction) are derived for every registered loss from one
valid example (``strategies.make_good``); ``SPECIFIC`` holds each loss's own cases (indices,
probabilities, weights, options), one entry per loss, so that a new loss without an entry fails.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from strategies import BUILT_IN, make_good

import lossreg
from lossreg.errors import LossError, LossTypeError, LossValueError

NAMES = BUILT_IN  # a plugin installed beside lossreg is checked by its own tests


def _call(name: str, replace: dict[str, Any] | None = None, **options: Any) -> Any:
    ex = make_good(name)
    arrays = {**ex.inputs, **(replace or {})}
    return getattr(lossreg, name)(*arrays.values(), **options)


def _assert_reported(info: pytest.ExceptionInfo, name: str, argument: str, got: str | None = None) -> None:
    err = info.value
    assert isinstance(err, LossError) and isinstance(err, (ValueError, TypeError)), repr(err)
    message = str(err)
    assert err.loss == name and message.startswith(f"{name}: "), message
    assert argument in err.argument.split("/"), f"argument {err.argument!r}, wanted {argument!r}: {message}"
    assert err.expected and err.got and " expected " in message and ", got " in message, message
    if got is not None:
        assert any(g in err.got for g in got.split("|")), f"{got!r} not in {err.got!r}: {message}"


def _float_inputs(name: str) -> list[str]:
    return [k for k, v in make_good(name).inputs.items() if np.asarray(v).dtype.kind == "f"]


def _int_inputs(name: str) -> list[str]:
    return [k for k, v in make_good(name).inputs.items() if np.asarray(v).dtype.kind in "iu"]


def test_every_registered_loss_has_specific_cases():
    missing = sorted(set(NAMES) - set(SPECIFIC))
    assert not missing, f"add bad-input cases to tests/test_bad_input.py SPECIFIC for {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_python_lists_and_none(name: str) -> None:
    for arg, value in make_good(name).inputs.items():
        if name == "ctc_loss" and arg.endswith("_lengths"):  # lists of ints, as torch documents (test_torch_dropin)
            with pytest.raises(LossTypeError) as info:
                _call(name, {arg: [float(v) for v in np.asarray(value).tolist()]})
            _assert_reported(info, name, arg, "list")
        else:
            with pytest.raises(LossTypeError) as info:
                _call(name, {arg: np.asarray(value).tolist()})
            _assert_reported(info, name, arg, "list")
        with pytest.raises(LossTypeError) as info:
            _call(name, {arg: None})
        _assert_reported(info, name, arg, "NoneType")
        with pytest.raises(LossTypeError) as info:
            _call(name, {arg: "text"})
        _assert_reported(info, name, arg, "str")


@pytest.mark.parametrize("name", NAMES)
def test_integer_input(name: str) -> None:
    first = _float_inputs(name)[0]
    with pytest.raises(LossTypeError) as info:
        _call(name, {first: np.round(make_good(name).inputs[first]).astype("int64")})
    _assert_reported(info, name, first, "int64")


@pytest.mark.parametrize("name", NAMES)
def test_unknown_reduction(name: str) -> None:
    with pytest.raises(LossValueError) as info:
        _call(name, reduction="avg")
    _assert_reported(info, name, "reduction", "'avg'")


# The input shortened by one sample, where the second input has no sample axis (a weight of
# linear_cross_entropy one row short is a valid smaller vocabulary).
SAMPLE_INPUT = {"linear_cross_entropy": "target"}


@pytest.mark.parametrize("name", NAMES)
def test_wrong_shape(name: str) -> None:
    ex = make_good(name)
    second = SAMPLE_INPUT.get(name, list(ex.inputs)[1])
    short = np.asarray(ex.inputs[second])[:-1]  # one sample short
    with pytest.raises(LossValueError) as info:
        _call(name, {second: short})
    _assert_reported(info, name, second, str(short.shape))


@pytest.mark.parametrize("name", NAMES)
def test_mixed_array_libraries(name: str) -> None:
    torch = pytest.importorskip("torch")
    ex = make_good(name)
    first = list(ex.inputs)[0]
    with pytest.raises(LossTypeError) as info:
        _call(name, {first: torch.from_numpy(ex.inputs[first])})
    _assert_reported(info, name, first, "torch")
    assert "one array library" in info.value.expected


@pytest.mark.parametrize("name", NAMES)
def test_mixed_devices(name: str) -> None:
    xp = pytest.importorskip("array_api_strict")
    ex = make_good(name)
    *_, last = ex.inputs
    arrays = {k: xp.asarray(v, device=xp.Device("device1" if k == last else "CPU_DEVICE"))
              for k, v in ex.inputs.items()}
    with pytest.raises(LossValueError) as info:
        getattr(lossreg, name)(*arrays.values())
    _assert_reported(info, name, last, "device1")


@pytest.mark.parametrize("name", [n for n in NAMES if lossreg.spec(n).array_options])
def test_array_option_from_another_library(name: str) -> None:
    torch = pytest.importorskip("torch")
    array_options = lossreg.spec(name).array_options
    c = make_good(name).inputs[_float_inputs(name)[0]].shape[-1]
    for option in array_options:
        with pytest.raises(LossTypeError) as info:
            _call(name, **{option: torch.ones(c, dtype=torch.float64)})
        _assert_reported(info, name, option, "torch")


def _torch_inputs(name: str) -> dict[str, Any]:
    torch = pytest.importorskip("torch")
    return {k: torch.from_numpy(np.asarray(v)) for k, v in make_good(name).inputs.items()}


def _raises_or_equals(name: str, argument: str, arrays: dict[str, Any], dense: Any) -> None:
    """A layout lossreg cannot compute with is refused naming the argument; an answer must be the
    dense tensors' (a kernel that hands the tensor to torch gets torch's own, where torch takes it)."""
    try:
        got = getattr(lossreg, name)(*arrays.values())
    except LossTypeError as error:
        assert error.argument == argument and "dense (strided) tensor" in error.expected, str(error)
        return
    np.testing.assert_allclose(got.to_dense().numpy(), dense.numpy(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "portable"])
@pytest.mark.parametrize("name", NAMES)
def test_sparse_tensors_are_refused_by_name_or_give_the_dense_answer(name: str, kernels: bool) -> None:
    """torch's own losses refuse most sparse tensors; lossreg says which argument to make dense."""
    arrays = _torch_inputs(name)
    with lossreg.use_kernels(kernels):
        dense = getattr(lossreg, name)(*arrays.values())
        for argument, x in arrays.items():
            layouts = [x.to_sparse()] + ([x.to_sparse_csr()] if x.ndim == 2 and x.is_floating_point() else [])
            for sparse in layouts:
                _raises_or_equals(name, argument, {**arrays, argument: sparse}, dense)


@pytest.mark.parametrize("name", [n for n in NAMES if make_good(n).inputs[next(iter(make_good(n).inputs))].ndim >= 2])
def test_nested_tensors_are_refused_by_name_on_the_portable_path(name: str) -> None:
    """The portable arithmetic would go through on a jagged tensor and reduce it wrongly (the mean
    of a jagged MSE was 1e-6 of the values' mean): refused, naming the argument, before any of it."""
    torch = pytest.importorskip("torch")
    arrays = _torch_inputs(name)
    first = next(iter(arrays))
    for layout in (torch.jagged, torch.strided):
        nested = torch.nested.nested_tensor(list(arrays[first]), layout=layout)
        with lossreg.use_kernels(False), pytest.raises(LossTypeError) as info:
            getattr(lossreg, name)(*{**arrays, first: nested}.values())
        _assert_reported(info, name, first, "nested")


# --- each loss's own cases: (description, call, exception, argument, text of what was given) ----

X = make_good("cross_entropy").inputs["input"]  # (4, 3) scores
T = np.array([0, 2, 1, 1])
LOGP = np.log(np.full((4, 3), 1 / 3))
P = np.full((4, 3), 0.5)
Case = tuple[str, Callable[[], Any], type, str, str]
W5 = make_good("linear_cross_entropy").inputs["linear_weight"]  # (5, 3): a vocabulary of 5 for X's width 3


def _torch_tensor(x: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(x)


def _index_cases(fn: Callable[..., Any], x: np.ndarray) -> list[Case]:
    return [
        ("index out of range", lambda: fn(x, np.array([0, 3, 1, 1])), LossValueError, "target", "3"),
        ("negative index", lambda: fn(x, np.array([0, -1, 1, 1])), LossValueError, "target", "-1"),
        ("index = ignore_index + 1", lambda: fn(x, np.array([0, 5, 1, 1]), ignore_index=4), LossValueError,
         "target", "5"),
        # cross_entropy reads floating targets as probabilities, which must have the input's shape.
        ("float class indices", lambda: fn(x, np.array([0.0, 2.0, 1.0, 1.0])), (LossTypeError, LossValueError),
         "target", "float64" if fn is not lossreg.cross_entropy else "shape (4,)"),
        ("weight too short", lambda: fn(x, T, weight=np.ones(2)), LossValueError, "weight", "(2,)"),
        ("weight of integers", lambda: fn(x, T, weight=np.ones(3, dtype="int64")), LossTypeError, "weight", "int64"),
        ("ignore_index not an integer", lambda: fn(x, T, ignore_index=1.5), LossValueError, "ignore_index", "1.5"),
        ("0-d input", lambda: fn(x[0, 0], np.array(0)), LossValueError, "input", "()|0-d"),
    ]


SPECIFIC: dict[str, list[Case]] = {
    "mse_loss": [("broadcasting shapes", lambda: lossreg.mse_loss(P, P[:1]), LossValueError, "target", "(1, 3)")],
    "l1_loss": [("broadcasting shapes", lambda: lossreg.l1_loss(P[:, :1], P), LossValueError, "target", "(4, 3)")],
    "smooth_l1_loss": [
        ("negative beta", lambda: lossreg.smooth_l1_loss(P, P, beta=-1.0), LossValueError, "beta", "-1.0"),
        ("beta a string", lambda: lossreg.smooth_l1_loss(P, P, beta="1"), LossValueError, "beta", "'1'"),
    ],
    "huber_loss": [
        ("zero delta", lambda: lossreg.huber_loss(P, P, delta=0.0), LossValueError, "delta", "0.0"),
        ("negative delta", lambda: lossreg.huber_loss(P, P, delta=-2.0), LossValueError, "delta", "-2.0"),
        ("weight of another shape", lambda: lossreg.huber_loss(P, P, weight=np.ones(2)), LossValueError, "weight",
         "(2,)"),
    ],
    "nll_loss": _index_cases(lossreg.nll_loss, LOGP),
    "cross_entropy": [
        *_index_cases(lossreg.cross_entropy, X),
        ("smoothing above 1", lambda: lossreg.cross_entropy(X, T, label_smoothing=1.5), LossValueError,
         "label_smoothing", "1.5"),
        ("negative smoothing", lambda: lossreg.cross_entropy(X, T, label_smoothing=-0.1), LossValueError,
         "label_smoothing", "-0.1"),
        ("soft target of another shape", lambda: lossreg.cross_entropy(X, P[:, :2]), LossValueError, "target",
         "(4, 2)"),
        ("soft target with ignore_index", lambda: lossreg.cross_entropy(X, P, ignore_index=1), LossValueError,
         "ignore_index", "1"),
    ],
    "binary_cross_entropy": [
        ("probability above 1", lambda: lossreg.binary_cross_entropy(P + 0.6, P), LossValueError, "input", "1.1"),
        ("negative probability", lambda: lossreg.binary_cross_entropy(P - 0.75, P), LossValueError, "input", "-0.25"),
        ("NaN probability", lambda: lossreg.binary_cross_entropy(P * np.nan, P), LossValueError, "input", "nan"),
        ("weight that does not broadcast", lambda: lossreg.binary_cross_entropy(P, P, weight=np.ones(2)),
         LossValueError, "weight", "(2,)"),
    ],
    "binary_cross_entropy_with_logits": [
        ("pos_weight that does not broadcast",
         lambda: lossreg.binary_cross_entropy_with_logits(X, P, pos_weight=np.ones(2)), LossValueError,
         "pos_weight", "(2,)"),
        ("weight that does not broadcast", lambda: lossreg.binary_cross_entropy_with_logits(X, P, weight=np.ones(5)),
         LossValueError, "weight", "(5,)"),
    ],
    "soft_margin_loss": [("target shape", lambda: lossreg.soft_margin_loss(X, P[:, :2]), LossValueError, "target",
                          "(4, 2)")],
    "multilabel_soft_margin_loss": [
        ("weight too long", lambda: lossreg.multilabel_soft_margin_loss(X, P, weight=np.ones(4)), LossValueError,
         "weight", "(4,)"),
    ],
    "multi_margin_loss": [
        # One 0-d score is a valid input here (C = 1), as torch's own tests pass it.
        *[c for c in _index_cases(lossreg.multi_margin_loss, X) if "ignore" not in c[0] and c[0] != "0-d input"],
        ("3-d input", lambda: lossreg.multi_margin_loss(np.zeros((2, 3, 2)), np.zeros((2, 2), dtype="int64")),
         LossValueError, "input", "(2, 3, 2)"),
        ("p = 3", lambda: lossreg.multi_margin_loss(X, T, p=3), LossValueError, "p", "3"),
        ("p = 1.5", lambda: lossreg.multi_margin_loss(X, T, p=1.5), LossValueError, "p", "1.5"),
        ("p an array", lambda: lossreg.multi_margin_loss(X, T, p=np.array([1, 2])), LossValueError, "p", "array"),
        ("margin a string", lambda: lossreg.multi_margin_loss(X, T, margin="1"), LossValueError, "margin", "'1'"),
    ],
    "multilabel_margin_loss": [
        ("label out of range", lambda: lossreg.multilabel_margin_loss(X, np.array([[0, 3, -1]] * 4)), LossValueError,
         "target", "3"),
        ("label below -1", lambda: lossreg.multilabel_margin_loss(X, np.array([[0, -2, -1]] * 4)), LossValueError,
         "target", "-2"),
        ("float labels", lambda: lossreg.multilabel_margin_loss(X, np.zeros((4, 3))), LossTypeError, "target",
         "float64"),
    ],
    "margin_ranking_loss": [
        ("margin a string", lambda: lossreg.margin_ranking_loss(X[:, 0], X[:, 1], T * 1.0, margin="0"),
         LossValueError, "margin", "'0'"),
    ],
    "hinge_embedding_loss": [
        ("margin None", lambda: lossreg.hinge_embedding_loss(X, P, margin=None), LossValueError, "margin", "None"),
    ],
    "cosine_embedding_loss": [
        ("3-d inputs", lambda: lossreg.cosine_embedding_loss(X[None], X[None], T * 1.0), LossValueError, "input1",
         "(1, 4, 3)"),
        ("target (N, 1)", lambda: lossreg.cosine_embedding_loss(X, X, np.ones((4, 1))), LossValueError, "target",
         "(4, 1)"),
    ],
    "triplet_margin_loss": [
        ("zero margin", lambda: lossreg.triplet_margin_loss(X, X, X, margin=0.0), LossValueError, "margin", "0.0"),
        ("p a string", lambda: lossreg.triplet_margin_loss(X, X, X, p="2"), LossValueError, "p", "'2'"),
        ("negative eps", lambda: lossreg.triplet_margin_loss(X, X, X, eps=None), LossValueError, "eps", "None"),
        ("swap not a bool", lambda: lossreg.triplet_margin_loss(X, X, X, swap=1), LossTypeError, "swap", "1"),
    ],
    "triplet_margin_with_distance_loss": [
        ("negative margin", lambda: lossreg.triplet_margin_with_distance_loss(X, X, X, margin=-1.0), LossValueError,
         "margin", "-1.0"),
        ("distance not callable", lambda: lossreg.triplet_margin_with_distance_loss(X, X, X, distance_function=2),
         LossTypeError, "distance_function", "2"),
    ],
    "kl_div": [
        ("log_target not a bool", lambda: lossreg.kl_div(LOGP, P, log_target="yes"), LossTypeError, "log_target",
         "'yes'"),
        ("target shape", lambda: lossreg.kl_div(LOGP, P[:, :2]), LossValueError, "target", "(4, 2)"),
    ],
    "poisson_nll_loss": [
        ("negative eps", lambda: lossreg.poisson_nll_loss(X, P, eps=-1.0), LossValueError, "eps", "-1.0"),
        ("full not a bool", lambda: lossreg.poisson_nll_loss(X, P, full=1), LossTypeError, "full", "1"),
    ],
    "gaussian_nll_loss": [
        ("negative variance", lambda: lossreg.gaussian_nll_loss(X, X, -P), LossValueError, "var", "-0.5"),
        ("negative scalar variance", lambda: lossreg.gaussian_nll_loss(X, X, -1.0), LossValueError, "var", "-1.0"),
        ("variance of another shape", lambda: lossreg.gaussian_nll_loss(X, X, P[:, :2]), LossValueError, "var",
         "(4, 2)"),
        ("negative eps", lambda: lossreg.gaussian_nll_loss(X, X, P, eps=-1.0), LossValueError, "eps", "-1.0"),
    ],
    "ctc_loss": [
        ("label out of range", lambda: lossreg.ctc_loss(LOGP[:, None], np.array([[1, 3]]),
                                                        np.array([4]), np.array([2])), LossValueError, "targets", "3"),
        ("blank as a label", lambda: lossreg.ctc_loss(LOGP[:, None], np.array([[1, 0]]), np.array([4]),
                                                      np.array([2])), LossValueError, "targets", "0"),
        ("input length above T", lambda: lossreg.ctc_loss(LOGP[:, None], np.array([[1, 2]]), np.array([5]),
                                                          np.array([2])), LossValueError, "input_lengths", "5"),
        ("negative target length", lambda: lossreg.ctc_loss(LOGP[:, None], np.array([[1, 2]]), np.array([4]),
                                                            np.array([-1])), LossValueError, "target_lengths", "-1"),
        ("float lengths", lambda: lossreg.ctc_loss(LOGP[:, None], np.array([[1, 2]]), np.array([4.0]),
                                                   np.array([2])), LossTypeError, "input_lengths", "float64"),
        ("blank out of range", lambda: lossreg.ctc_loss(LOGP[:, None], np.array([[1, 2]]), np.array([4]),
                                                        np.array([2]), blank=3), LossValueError, "blank", "3"),
    ],
    "linear_cross_entropy": [
        ("index out of range", lambda: lossreg.linear_cross_entropy(X, W5, np.array([0, 5, 1, 1])), LossValueError,
         "target", "5"),
        ("negative index", lambda: lossreg.linear_cross_entropy(X, W5, np.array([0, -1, 1, 1])), LossValueError,
         "target", "-1"),
        ("floating targets (probabilities) of the indices' shape",
         lambda: lossreg.linear_cross_entropy(X, W5, T * 1.0), LossValueError, "target", "(4,)"),
        ("probabilities with ignore_index", lambda: lossreg.linear_cross_entropy(X, W5, np.full((4, 5), 0.2),
                                                                                 ignore_index=-100),
         LossValueError, "ignore_index", "-100"),
        ("class weights of another length", lambda: lossreg.linear_cross_entropy(X, W5, T, weight=np.ones(4)),
         LossValueError, "weight", "(4,)"),
        ("class weights with a z-loss", lambda: lossreg.linear_cross_entropy(X, W5, T, weight=np.ones(5),
                                                                              z_loss=0.1),
         LossValueError, "z_loss", "0.1"),
        ("a K-dimensional weight for one unbatched input",
         lambda: lossreg.linear_cross_entropy(X[0], np.ones((5, 2, 3)), np.zeros(2, dtype="int64")),
         LossValueError, "input", "(3,)"),
        ("both linear_bias and bias", lambda: lossreg.linear_cross_entropy(X, W5, T, bias=np.ones(5),
                                                                            linear_bias=np.ones(5)),
         LossValueError, "bias", "both"),
        ("options not torch's LinearCrossEntropyOptions",
         lambda: lossreg.linear_cross_entropy(X, W5, T, options={"batch_chunk_size": 2}), LossTypeError, "options",
         "dict"),
        ("linear_bias of another length", lambda: lossreg.linear_cross_entropy(X, W5, T, linear_bias=np.ones(3)),
         LossValueError, "linear_bias", "(3,)"),
        ("targets of another shape", lambda: lossreg.linear_cross_entropy(X, W5, T[:3]), LossValueError, "target",
         "(3,)"),
        ("(B, T) targets for (N, D) hidden", lambda: lossreg.linear_cross_entropy(X, W5, T.reshape(2, 2)),
         LossValueError, "target", "(2, 2)"),
        ("weight of another width", lambda: lossreg.linear_cross_entropy(X, W5[:, :2], T), LossValueError, "linear_weight",
         "(5, 2)"),
        ("weight a vector", lambda: lossreg.linear_cross_entropy(X, W5[:, 0], T), LossValueError, "linear_weight", "(5,)"),
        # A vocabulary of none takes only ignored targets (then torch's NaN mean), as cross_entropy.
        ("a class of an empty vocabulary", lambda: lossreg.linear_cross_entropy(X, W5[:0], np.zeros(4, dtype="int64")),
         LossValueError, "target", "0"),
        ("bias of another length", lambda: lossreg.linear_cross_entropy(X, W5, T, bias=np.ones(3)), LossValueError,
         "bias", "(3,)"),
        ("bias of integers", lambda: lossreg.linear_cross_entropy(X, W5, T, bias=np.ones(5, dtype="int64")),
         LossTypeError, "bias", "int64"),
        ("bias a list", lambda: lossreg.linear_cross_entropy(X, W5, T, bias=[0.0] * 5), LossTypeError, "bias",
         "list"),
        ("0-d input", lambda: lossreg.linear_cross_entropy(X[0, 0], W5, np.array(0)), LossValueError, "input",
         "0-d"),
        ("smoothing above 1", lambda: lossreg.linear_cross_entropy(X, W5, T, label_smoothing=1.5), LossValueError,
         "label_smoothing", "1.5"),
        ("negative z_loss", lambda: lossreg.linear_cross_entropy(X, W5, T, z_loss=-0.1), LossValueError, "z_loss",
         "-0.1"),
        ("softcap 0", lambda: lossreg.linear_cross_entropy(X, W5, T, softcap=0.0), LossValueError, "softcap", "0.0"),
        ("softcap inf (inf · tanh(z / inf) is NaN; no cap is None)",
         lambda: lossreg.linear_cross_entropy(X, W5, T, softcap=math.inf), LossValueError, "softcap", "inf"),
        ("softcap a string", lambda: lossreg.linear_cross_entropy(X, W5, T, softcap="30"), LossValueError, "softcap",
         "'30'"),
        # inf in float32, as softcap=inf: the loss was NaN (1e39 · tanh(z / 1e39) = inf · 0), on every library
        ("softcap beyond float32's range on float32 arrays",
         lambda: lossreg.linear_cross_entropy(X.astype("float32"), W5.astype("float32"), T, softcap=1e39),
         LossValueError, "softcap", "1e+39"),
        ("softcap beyond float32's range, probability targets",
         lambda: lossreg.linear_cross_entropy(X.astype("float32"), W5.astype("float32"),
                                              np.full((4, 5), 0.2, dtype="float32"), softcap=1e39),
         LossValueError, "softcap", "1e+39"),
        ("chunk_size 0", lambda: lossreg.linear_cross_entropy(X, W5, T, chunk_size=0), LossValueError, "chunk_size",
         "0"),
        ("chunk_size a triple", lambda: lossreg.linear_cross_entropy(X, W5, T, chunk_size=(2, 2, 2)), LossValueError,
         "chunk_size", "(2, 2, 2)"),
        ("ignore_index not an integer", lambda: lossreg.linear_cross_entropy(X, W5, T, ignore_index=1.5),
         LossValueError, "ignore_index", "1.5"),
        ("hidden and weight from two libraries",
         lambda: lossreg.linear_cross_entropy(X, _torch_tensor(W5), T), LossTypeError, "linear_weight", "torch"),
    ],
}

SPECIFIC_CASES = [(name, case) for name in sorted(SPECIFIC) for case in SPECIFIC[name]]


@pytest.mark.parametrize(("name", "case"), SPECIFIC_CASES, ids=[f"{n}-{c[0]}" for n, c in SPECIFIC_CASES])
def test_specific_bad_input(name: str, case: Case) -> None:
    if name not in NAMES:
        pytest.skip(f"{name} is not registered")
    _, call, error, argument, got = case
    with pytest.raises(error) as info:
        call()
    _assert_reported(info, name, argument, got)


# --- lazy arrays: an invalid index cannot raise without computing, so it poisons its element -------

LAZY_BAD_INDEX = {  # loss -> (argument, an invalid value for it, where to put it)
    "nll_loss": ("target", 7, (1,)),
    "cross_entropy": ("target", -5, (1,)),
    "multi_margin_loss": ("target", 9, (1,)),
    "multilabel_margin_loss": ("target", 5, (1, 0)),
    "ctc_loss": ("targets", 9, (1, 0)),
    "linear_cross_entropy": ("target", 6, (1,)),
}


def test_every_index_loss_has_a_lazy_case():
    index_losses = {n for n in NAMES if any(k in ("target", "targets") for k in _int_inputs(n))}
    assert index_losses <= set(LAZY_BAD_INDEX), sorted(index_losses - set(LAZY_BAD_INDEX))


@pytest.mark.parametrize("name", sorted(LAZY_BAD_INDEX))
def test_lazy_invalid_index_is_nan_not_a_stray_read(name: str) -> None:
    """Dask: the sample with the invalid index is NaN; the others are unchanged (no read out of bounds)."""
    da = pytest.importorskip("dask.array")
    ex = make_good(name)
    arg, value, where = LAZY_BAD_INDEX[name]
    bad = np.array(ex.inputs[arg])
    bad[where] = value
    lazy = {k: da.from_array(np.asarray(v), chunks=2) if np.asarray(v).ndim else da.from_array(np.asarray(v))
            for k, v in {**ex.inputs, arg: bad}.items()}
    got = np.asarray(getattr(lossreg, name)(*lazy.values(), reduction="none").compute())
    want = np.asarray(getattr(lossreg, name)(*ex.inputs.values(), reduction="none"))
    assert np.isnan(got[where[0]])
    keep = np.arange(len(got)) != where[0]
    np.testing.assert_allclose(got[keep], want[keep], rtol=1e-12)
