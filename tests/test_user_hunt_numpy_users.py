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
