"""A statistician's NumPy, Dask and array-api-strict calls, beyond ``test_user_hunt_datasci.py``.

Each test is one call from code that holds NumPy arrays (or NumPy scalars, read from a config or
a results table) that gave a misleading error before it was fixed: a class form holding a
NumPy bool for a flag, whose ``get_config`` said the option was a "bool" that JSON cannot
write.
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
