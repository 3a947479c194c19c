"""A statistician's NumPy, Dask and array-api-strict calls, beyond ``test_user_hunt_datasci.py``.

Each test is one call from code that holds NumPy arrays (or NumPy scalars, read from a config or
a results table) that gave a misleading error or a silently wrong value before it was fixed: a
class form holding a NumPy bool for a flag, whose ``get_config`` said the option was a "bool"
that JSON cannot write; big-endian uint64 labels (a FITS table) whose -1 "unlabelled" marker
the NumPy kernel read as the last class.
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
