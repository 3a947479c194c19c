"""A NumPy user's arrays in every loss: the array forms NumPy users hold, against torch.nn.

Checked and fine (not repeated here): long double, float16, big-endian, Fortran-ordered,
negative-stride, zero-stride (``np.broadcast_to``) and read-only inputs, of every built-in and
plugin loss; ``np.errstate(all="raise")`` on valid extreme inputs and on empty batches; masked
arrays, ``np.matrix`` and pandas objects as inputs and as array options (refused); NumPy scalar
options of every numeric option; NaN and ±inf placement against torch; float32 sums over
millions of elements in every layout.

Bugs this file found (each test below says which).
"""

from __future__ import annotations

import numpy as np
import pytest

import lossreg

torch = pytest.importorskip("torch")

SCORES = np.zeros((4, 3))


# --- uint64 labels past int64 -------------------------------------------------------------------
# A -100 "ignore" or -1 "unlabelled" marker cast to uint64 (labels.astype(np.uint64)) is refused,
# as an index past the classes. The error quoted 9223372036854775807, the int64 stand-in lossreg
# computes with, a number the user's array does not hold: it quotes the label itself.

@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize(("name", "arrays", "target"), [
    ("cross_entropy", (SCORES,), np.array([0, 2, -100, 1])),
    ("nll_loss", (SCORES,), np.array([0, 2, -100, 1])),
    ("linear_cross_entropy", (SCORES, np.eye(3)), np.array([0, 2, -100, 1])),
    ("multi_margin_loss", (SCORES,), np.array([0, 2, -1, 1])),
    ("multilabel_margin_loss", (SCORES,), np.array([[0, 2, -1], [1, -1, 0], [2, 1, -1], [-1, 0, 0]])),
])
@pytest.mark.parametrize("kernels", [True, False])
def test_a_uint64_label_past_int64_is_quoted_as_the_number_the_array_holds(name, arrays, target, library,
                                                                           kernels) -> None:
    labels = target.astype(np.uint64)
    held = int(labels[target < 0][0])  # the first marker, the first invalid label
    convert = np.asarray if library == "numpy" else torch.from_numpy
    with lossreg.use_kernels(kernels), pytest.raises(lossreg.LossValueError) as raised:
        getattr(lossreg, name)(*map(convert, arrays), convert(labels))
    assert str(raised.value).endswith(f", got {held}"), str(raised.value)
    assert held > 2**63  # the number the user holds, past int64's 9223372036854775807


# CTC lengths in uint64 (read from a file, or a -1 "missing" marker cast): one past int64 was
# quoted as the negative number lossreg's int64 copy holds (2**63 + 1 as -9223372036854775807,
# 2**64 - 1 as -1, "expected lengths in [0, 5], got -1" for an array holding no -1).

@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize(("argument", "lengths"), [
    ("input_lengths", np.array([2**63 + 1, 5], dtype=np.uint64)),
    ("input_lengths", np.array([5, -1]).astype(np.uint64)),
    ("target_lengths", np.array([2, -1]).astype(np.uint64)),
])
def test_a_uint64_ctc_length_past_int64_is_quoted_as_the_number_the_array_holds(argument, lengths, kernels,
                                                                                 library) -> None:
    arrays = {"log_probs": np.log(np.full((5, 2, 3), 1 / 3)), "targets": np.array([[1, 2], [1, 1]]),
              "input_lengths": np.array([5, 5]), "target_lengths": np.array([2, 2]), argument: lengths}
    convert = np.asarray if library == "numpy" else torch.from_numpy
    with lossreg.use_kernels(kernels), pytest.raises(lossreg.LossValueError, match=f"'{argument}'") as raised:
        lossreg.ctc_loss(*map(convert, arrays.values()))
    assert str(raised.value).endswith(f", got {int(lengths[lengths > 5][0])}"), str(raised.value)


# --- unsigned ±1 labels that multiply -----------------------------------------------------------
# README: uint8 labels are the numbers they hold (a -1 cast to uint8 is 255, torch's answer for
# 255 in int64). margin_ranking_loss multiplied by the index-dtype copy made for comparisons with
# -1, in which every unsigned label past that dtype is its largest number: a -1 cast to uint64
# (2**64 - 1) counted 2**63 - 1, and to uint32 on JAX without x64 2**31 - 1, half the loss of the
# number held. The other ±1 losses compare labels with ±1 (or cast them directly): unchanged.

def _held_labels_ranking(x1: np.ndarray, x2: np.ndarray, labels: np.ndarray) -> np.ndarray:
    held = torch.from_numpy(labels.astype(np.float64))  # the numbers held, as torch reads float labels
    return torch.nn.functional.margin_ranking_loss(torch.from_numpy(x1), torch.from_numpy(x2), held,
                                                   reduction="none").numpy()


@pytest.mark.parametrize("library", ["numpy", "torch", "array_api_strict"])
@pytest.mark.parametrize("kernels", [True, False])
def test_margin_ranking_uint64_labels_are_the_numbers_they_hold(library, kernels) -> None:
    x1, x2 = np.array([0.5, -1.25, 2.0, -0.75]), np.zeros(4)
    labels = np.array([1, -1, 1, -1]).astype(np.uint64)  # -1 is 2**64 - 1
    convert = {"numpy": np.asarray, "torch": torch.from_numpy,
               "array_api_strict": pytest.importorskip("array_api_strict").asarray}[library]
    with lossreg.use_kernels(kernels):
        got = lossreg.margin_ranking_loss(convert(x1), convert(x2), convert(labels), reduction="none")
    np.testing.assert_allclose(np.asarray(got), _held_labels_ranking(x1, x2, labels), rtol=1e-12)


def test_margin_ranking_uint32_labels_on_jax_without_x64_are_the_numbers_they_hold() -> None:
    jax = pytest.importorskip("jax")
    if jax.config.jax_enable_x64:
        pytest.skip("JAX's indices are int32 only without x64")
    x1, x2 = np.array([0.5, -1.25, 2.0, -0.75], np.float32), np.zeros(4, np.float32)
    labels = np.array([1, -1, 1, -1]).astype(np.uint32)  # -1 is 2**32 - 1
    got = lossreg.margin_ranking_loss(*map(jax.numpy.asarray, (x1, x2, labels)), reduction="none")
    np.testing.assert_allclose(np.asarray(got), _held_labels_ranking(x1, x2, labels), rtol=1e-6)


# --- an infinite class weight with label smoothing ---------------------------------------------
# weight = 1 / np.bincount(labels, minlength=C) is inf for a class absent from the data. torch's
# smoothing term Σ_c -w_c log p_c is then +inf (every -log p_c > 0); lossreg's Σ w · log_sum -
# Σ w · (x - m) multiplied that inf by the 0 of the row's largest logit: NaN in every row whose
# largest logit was that class, and in the mean and the sum.

@pytest.mark.parametrize("library", ["numpy", "array_api_strict", "jax", "torch"])
@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_an_infinite_class_weight_with_label_smoothing_gives_torchs_inf_not_nan(reduction, kernels,
                                                                                library) -> None:
    scores = np.array([[0.5, -1.0, 2.0], [1.5, 0.0, 3.0], [2.0, 1.0, 0.5], [0.0, 0.5, 1.0]])
    classes = np.array([0, 1, 0, 1])  # class 2 never occurs, and is the largest score of three rows
    with np.errstate(divide="ignore"):
        weight = 1.0 / np.bincount(classes, minlength=3)
    want = torch.nn.functional.cross_entropy(torch.from_numpy(scores), torch.from_numpy(classes),
                                             weight=torch.from_numpy(weight), label_smoothing=0.1,
                                             reduction=reduction).numpy()
    convert = {"numpy": np.asarray, "torch": torch.from_numpy,
               "array_api_strict": lambda a: pytest.importorskip("array_api_strict").asarray(a),
               "jax": lambda a: pytest.importorskip("jax").numpy.asarray(a)}[library]
    with lossreg.use_kernels(kernels):
        got = lossreg.cross_entropy(convert(scores), convert(classes), weight=convert(weight), label_smoothing=0.1,
                                    reduction=reduction)
    np.testing.assert_array_equal(np.asarray(got), want)  # +inf throughout, as torch
    assert np.isposinf(want).all()
