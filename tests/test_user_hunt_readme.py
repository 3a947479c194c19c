"""Behaviour the README promises, checked as a new user following it literally.

README, "Errors and edge cases": a bad input's message names the loss, the argument, what was
expected and what was given, e.g.
``cross_entropy: argument 'target' expected class indices in [0, 5) or ignore_index=-100, got 7``.
"""

from __future__ import annotations

import numpy as np
import pytest

import lossreg


def _strict():
    return pytest.importorskip("array_api_strict")


def test_an_invalid_class_index_is_quoted_as_the_integer_given_on_numpy():
    with pytest.raises(lossreg.LossValueError) as info:
        lossreg.cross_entropy(np.zeros((2, 5)), np.array([1, 7]))
    assert str(info.value).endswith("got 7")


def test_an_invalid_class_index_is_quoted_as_the_integer_given_on_array_api_strict():
    # array-api-strict arrays have no .item(): the offending index was quoted as a float ("got 7.0")
    xp = _strict()
    with pytest.raises(lossreg.LossValueError) as info:
        lossreg.cross_entropy(xp.zeros((2, 5), dtype=xp.float64), xp.asarray([1, 7]))
    assert str(info.value).endswith("got 7")


def test_an_invalid_probability_is_still_quoted_as_a_float_on_array_api_strict():
    xp = _strict()
    with pytest.raises(lossreg.LossValueError) as info:
        lossreg.binary_cross_entropy(xp.asarray([0.5, 1.5], dtype=xp.float64), xp.asarray([1.0, 0.0], dtype=xp.float64))
    assert str(info.value).endswith("got 1.5")
