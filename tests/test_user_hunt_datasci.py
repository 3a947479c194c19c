"""A data scientist's NumPy, pandas and scikit-learn values in lossreg's losses, against torch.nn.

Each test is one call from code that never imports torch (NumPy arrays, pandas columns turned
into arrays, scikit-learn's encoders and metrics) that gave a different answer from
torch.nn.functional's in float64, a crash, or a misleading error before it was fixed: NumPy's
``np.longdouble`` options and class weights (whose ``.item()`` is not a Python number),
``lossreg.get`` with scikit-learn's names for the hinge loss, and labels with a -1 marker cast to
uint64 (read by the NumPy kernel as a class counted from the end).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lossreg
from lossreg.core import normalize
from lossreg.errors import LossValueError

RNG = np.random.default_rng(20261201)
SCORES = RNG.normal(size=(5, 3))
LABELS = np.array([0, 2, 1, 1, 0])


def _torch(*arrays: np.ndarray) -> list[torch.Tensor]:
    return [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]


# --- NumPy's long double as an option ----------------------------------------------------------
# np.longdouble(0.1).item() is np.longdouble again (no Python type holds it), so the retry with
# Python numbers that takes np.float32 options called itself until RecursionError. torch reads it
# as the Python float it rounds to.

LONG_DOUBLE_OPTIONS = [
    ("cross_entropy", (SCORES, LABELS), "label_smoothing", 0.1),
    ("multi_margin_loss", (SCORES, LABELS), "margin", 0.5),
    ("huber_loss", (SCORES, 2 * SCORES), "delta", 0.5),
    ("smooth_l1_loss", (SCORES, 2 * SCORES), "beta", 0.5),
    ("triplet_margin_loss", (SCORES, 2 * SCORES, -SCORES), "margin", 0.5),
]


@pytest.mark.parametrize(("name", "arrays", "option", "value"), LONG_DOUBLE_OPTIONS)
def test_a_long_double_option_is_taken_as_the_python_float_torch_takes(name, arrays, option, value) -> None:
    got = getattr(lossreg, name)(*arrays, **{option: np.longdouble(value)})
    want = getattr(F, name)(*_torch(*arrays), **{option: np.longdouble(value)})
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-12)


@pytest.mark.parametrize(("name", "arrays", "option", "value"), LONG_DOUBLE_OPTIONS)
def test_a_class_form_made_with_a_long_double_option_computes_and_writes_its_config(
        name, arrays, option, value) -> None:
    loss = lossreg.get(name, **{option: np.longdouble(value)})
    want = getattr(F, name)(*_torch(*arrays), **{option: float(value)})
    np.testing.assert_allclose(loss(*arrays), want.numpy(), rtol=1e-12)
    config = loss.get_config()
    assert type(config["options"][option]) is float
    assert lossreg.from_config(config) == loss


@pytest.mark.parametrize("form", ["array", "list"])
def test_a_class_form_with_long_double_class_weights_writes_its_config(form) -> None:
    """Long double weights (np.longdouble's tolist() keeps NumPy scalars) made get_config raise
    "expected a JSON-serializable option value, got list"; they are written as float64 numbers."""
    weight = np.array([0.5, 1.0, 2.0], dtype=np.longdouble)
    loss = lossreg.CrossEntropyLoss(weight=weight if form == "array" else list(weight))
    config = json.loads(json.dumps(loss.get_config()))
    assert config["options"]["weight"] == [0.5, 1.0, 2.0]
    want = F.cross_entropy(*_torch(SCORES, LABELS), weight=torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64))
    np.testing.assert_allclose(lossreg.from_config(config)(SCORES, LABELS), want.numpy(), rtol=1e-12)


def test_a_complex_long_double_option_is_refused_with_a_lossreg_error() -> None:
    with pytest.raises(LossValueError, match=r"^huber_loss: argument 'delta' expected a number"):
        lossreg.huber_loss(SCORES, 2 * SCORES, delta=np.clongdouble(0.5))


# --- lossreg.get with the names a scikit-learn user types --------------------------------------
# README: "an unknown name lists the closest ones". A word of several registered names ("hinge"
# of hinge_embedding and multilabel_hinge, "cosine" of cosine_embedding) is too short a part of
# each for difflib's ratio, and the error said that no registered name is close.

@pytest.mark.parametrize(("name", "listed"), [
    ("cosine", "cosine_embedding"),
    ("kullback", "kullback_leibler_divergence"),
    ("sigmoid", "sigmoid_cross_entropy"),
    ("connectionist", "connectionist_temporal_classification"),
    ("binary", "binary_cross_entropy"),
])
def test_an_unknown_name_that_is_a_word_of_registered_names_lists_them(name, listed) -> None:
    with pytest.raises(lossreg.UnknownLossError, match=rf"^no loss named {name!r}; closest: ") as info:
        lossreg.get(name)
    shown = str(info.value).split("closest: ")[1].split(", ")
    assert normalize(listed) in map(normalize, shown), str(info.value)


# scikit-learn's hinge_loss (and Keras' "hinge") is mean(max(0, 1 - y f)) of a decision function:
# for "hinge_loss" the error listed HingeEmbeddingLoss, another quantity, among the closest names.

DECISION = RNG.normal(size=8)
SIGNS = np.where(RNG.uniform(size=8) > 0.5, 1.0, -1.0)


@pytest.mark.parametrize("name", ["hinge", "hinge_loss", "Hinge", "HingeLoss"])
def test_scikit_learns_hinge_loss_is_a_false_friend_that_says_what_computes_it(name) -> None:
    with pytest.raises(lossreg.UnknownLossError,
                       match=rf"no loss named {name!r}, on purpose: .*scikit-learn.*'margin_ranking_loss'"):
        lossreg.get(name)


def test_the_false_friend_message_for_hinge_loss_is_true_against_scikit_learn_and_torch() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    want = metrics.hinge_loss(SIGNS, DECISION)
    # What the message says to call instead gives scikit-learn's value, as torch's module does ...
    got = lossreg.margin_ranking_loss(DECISION, np.zeros_like(DECISION), SIGNS, margin=1.0)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    torch_value = F.margin_ranking_loss(*_torch(DECISION, np.zeros_like(DECISION), SIGNS), margin=1.0)
    np.testing.assert_allclose(torch_value.numpy(), want, rtol=1e-12)
    # ... and the loss whose name looks like it computes another quantity.
    assert not np.isclose(lossreg.hinge_embedding_loss(DECISION, SIGNS), want)


# --- what a reduced loss is on NumPy ------------------------------------------------------------
# Every loss reduced on NumPy arrays gives a NumPy scalar of the input's dtype, as np.mean and
# np.sum do (np.float64 is a Python float: json.dumps and pandas take it). linear_cross_entropy's
# mean alone was a 0-d ndarray (NumPy's where, through which its mean divides), which json.dumps
# refuses.

HIDDEN = RNG.normal(size=(5, 3))
HEAD = RNG.normal(size=(4, 3))
TOKENS = np.array([0, 3, 1, -100, 2])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.1}, {"weight": [1.0, 2.0, 0.5, 1.0]}, {"z_loss": 1e-3}])
def test_linear_cross_entropy_reduced_on_numpy_is_a_numpy_scalar_like_cross_entropy(dtype, reduction, options) -> None:
    options = {k: np.asarray(v, dtype=dtype) if isinstance(v, list) else v for k, v in options.items()}
    h, w = HIDDEN.astype(dtype), HEAD.astype(dtype)
    got = lossreg.linear_cross_entropy(h, w, TOKENS, reduction=reduction, **options)
    assert type(got) is dtype, type(got)
    like = lossreg.cross_entropy(h @ w.T, TOKENS, reduction=reduction,
                                 **{k: v for k, v in options.items() if k != "z_loss"})
    assert type(like) is dtype
    want = F.linear_cross_entropy(*_torch(h.astype(np.float64), w.astype(np.float64), TOKENS), reduction=reduction,
                                  **{k: torch.from_numpy(np.asarray(v, np.float64)) if isinstance(v, np.ndarray) else v
                                     for k, v in options.items() if k != "z_loss"})
    if "z_loss" not in options:
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-12 if dtype is np.float64 else 1e-5)
    if dtype is np.float64:
        json.dumps({"loss": got})  # np.float64 is a Python float: logged to JSON as one


# --- labels from a boolean column ---------------------------------------------------------------
# (df["label"] == "spam") is a bool array. The soft-margin losses take integer labels (as torch's
# module tests pass them) but refused bool ones saying they expected "a real floating-point
# array", which sent the user to a cast they did not need; the error now says what is taken.

@pytest.mark.parametrize(("name", "scores", "labels"), [
    ("soft_margin_loss", SCORES[:, 0], np.array([True, False, True, True, False])),
    ("multilabel_soft_margin_loss", SCORES, np.array([[True, False, True]] * 5)),
])
def test_bool_labels_are_refused_naming_the_integer_labels_that_are_taken(name, scores, labels) -> None:
    with pytest.raises(lossreg.LossTypeError, match=rf"^{name}: argument 'target' expected .*integer") as info:
        getattr(lossreg, name)(scores, labels)
    assert "bool" in info.value.got
    signed = np.where(labels, 1, -1) if name == "soft_margin_loss" else labels.astype(np.int64)
    want = getattr(F, name)(*_torch(scores, signed))
    np.testing.assert_allclose(getattr(lossreg, name)(scores, signed), want.numpy(), rtol=1e-12)


# --- class weights as a list of NumPy numbers ---------------------------------------------------
# list(weights) of a float32 array is a list of np.float32, which the class form takes and uses
# (as it takes a list of Python numbers), but get_config raised "expected a JSON-serializable
# option value for get_config, got list".

def test_a_class_form_with_a_list_of_numpy_float32_weights_writes_its_config() -> None:
    weights = np.array([0.5, 2.0, 1.0], dtype=np.float32)
    loss = lossreg.CrossEntropyLoss(weight=list(weights))
    scores = SCORES.astype(np.float32)
    want = F.cross_entropy(*_torch(scores, LABELS), weight=torch.from_numpy(weights))
    np.testing.assert_allclose(loss(scores, LABELS), want.numpy(), rtol=1e-6)
    config = json.loads(json.dumps(loss.get_config()))
    assert config["options"]["weight"] == weights.tolist()
    rebuilt = lossreg.from_config(config)
    assert rebuilt == loss
    np.testing.assert_allclose(rebuilt(scores, LABELS), want.numpy(), rtol=1e-6)


# --- NumPy arrays of other classes and NumPy scalars in error messages ---------------------------


def test_a_memory_mapped_array_is_described_as_an_array_not_printed_whole(tmp_path) -> None:
    """np.memmap (a feature matrix on disk) of the wrong dtype: its dtype and shape, as an ndarray's."""
    labels = np.memmap(tmp_path / "y.dat", dtype="int64", mode="w+", shape=(1000,))
    with pytest.raises(lossreg.LossTypeError) as error:
        lossreg.mse_loss(np.zeros(1000), labels)
    assert str(error.value).endswith("got numpy array of dtype int64 and shape (1000,)")


@pytest.mark.parametrize(("name", "arrays"), [("cross_entropy", (SCORES, LABELS)), ("mse_loss", (SCORES, SCORES))])
def test_a_numpy_scalar_where_an_array_weight_is_expected_is_judged_as_the_0_d_array_it_is(name, arrays) -> None:
    """weight=np.float32(2.0): refused for its shape (), not described as the Python float 2.0
    that a retry with Python numbers had made of it."""
    with pytest.raises(LossValueError, match=r"argument 'weight' expected .*, got shape \(\)"):
        getattr(lossreg, name)(*arrays, weight=np.float32(2.0))


# --- labels cast to uint64 -------------------------------------------------------------------------


@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize("missing", [-1, -3])
def test_an_unlabelled_row_cast_to_uint64_is_refused_not_read_as_a_class_from_the_end(kernels, missing) -> None:
    """labels.astype(np.uint64) of a -1 "unlabelled" marker is 2^64 - 1: NumPy's gather wraps
    that index to -1, so the NumPy kernel silently took the last class's loss, a finite number, for
    the row. It is refused, as an index past the classes, with kernels on and off."""
    labels = np.array([0, 2, missing, 1, 0]).astype(np.uint64)
    with lossreg.use_kernels(kernels), pytest.raises(LossValueError, match=r"argument 'target' expected class "
                                                                          r"indices in \[0, 3\)"):
        lossreg.cross_entropy(SCORES, labels)
    # Valid uint64 labels still give torch's answer, on the kernel's path too.
    with lossreg.use_kernels(kernels):
        got = lossreg.cross_entropy(SCORES, LABELS.astype(np.uint64), reduction="none")
    np.testing.assert_allclose(got, F.cross_entropy(*_torch(SCORES, LABELS), reduction="none").numpy(), rtol=1e-12)
