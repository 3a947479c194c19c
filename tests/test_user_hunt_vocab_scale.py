"""A language-model user's hunt through ``linear_cross_entropy`` (helper session h6, area
vocab_scale): behaviour found wrong there, each test failing before its fix."""

from __future__ import annotations

import math

import numpy as np
import pytest

import lossreg
from lossreg.errors import LossValueError

RNG = np.random.default_rng(0)
H = RNG.standard_normal((2, 3, 4))
W = RNG.standard_normal((7, 4))
T = RNG.integers(0, 7, (2, 3))


@pytest.mark.parametrize("softcap", [-3.0, 0.0, -math.inf, math.inf, math.nan])
def test_a_refused_softcap_says_a_positive_finite_number_is_expected(softcap):
    # Before, a negative cap was refused with "expected a finite number in [0.0, inf]" and inf
    # with "a finite number ≥ 0.0", both saying that 0 is taken, which is refused too ("None or
    # a positive finite number"). Every refused cap now names the one range that is taken.
    with pytest.raises(LossValueError, match="softcap") as info:
        lossreg.linear_cross_entropy(H, W, T, softcap=softcap)
    assert info.value.expected == "None or a positive finite number"
    assert info.value.got == repr(softcap)
