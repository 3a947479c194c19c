"""A sweep of bad input, one thing broken at a time, through every entry form: what it found wrong,
each kept as the behaviour it now has.

Every refusal is a lossreg error naming the loss, the argument, what was expected and what was
given, whatever the form (functional, class, ``lossreg.torch`` module, ``lossreg.keras`` loss) and
whichever path computes (a kernel or the portable definition). Keras reads KERAS_BACKEND once, when
it is first imported, so the Keras checks run ``fixtures/keras_error_sweep.py`` in a subprocess per
backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import lossreg
from lossreg.errors import LossTypeError

torch = pytest.importorskip("torch")
import lossreg.torch as lt  # noqa: E402

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
