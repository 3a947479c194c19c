"""Process-wide modes and settings users turn on, and what every loss does under them.

Each test sets its mode with the library's own context manager (or restores it in ``finally``),
so that nothing leaks into other tests.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import lossreg

array_api_strict = pytest.importorskip("array_api_strict")

# Valid inputs whose exact computation underflows: a class masked with -1e9 (its exp is 0), a
# confident float32 classifier (a logit gap past 88 underflows float32's exp), a BCE logit of
# ±1000, a tiny residual squared. torch computes each silently.
UNDERFLOWING = [
    ("cross_entropy", (np.array([[0.0, -1e9, 3.0]], dtype=np.float32), np.array([2])), {}),
    ("cross_entropy", (np.array([[60.0, -40.0, 0.0]], dtype=np.float32), np.array([0])), {"label_smoothing": 0.1}),
    ("linear_cross_entropy", (np.array([[100.0, -100.0]]), np.array([[10.0, 0.0], [-10.0, 0.0]]), np.array([0])), {}),
    ("binary_cross_entropy_with_logits", (np.array([1000.0, -1000.0, 3.0]), np.array([1.0, 0.0, 1.0])), {}),
    ("soft_margin_loss", (np.array([1000.0, -1000.0]), np.array([1.0, 1.0])), {}),
    ("multilabel_soft_margin_loss", (np.array([[1000.0, -1000.0]]), np.array([[1.0, 0.0]])), {}),
    ("poisson_nll_loss", (np.array([-1000.0, 2.0]), np.array([0.0, 1.0])), {}),
    ("kl_div", (np.array([-1000.0, -1.0]), np.array([-1000.0, -2.0])), {"log_target": True, "reduction": "sum"}),
    ("mse_loss", (np.array([1e-200, 0.0]), np.array([0.0, 0.0])), {}),
    ("huber_loss", (np.array([1e-200, 0.0]), np.array([0.0, 0.0])), {}),
]
UNDERFLOWING_IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(UNDERFLOWING)]


def _torch_answer(name: str, arrays: tuple[np.ndarray, ...], options: dict) -> np.ndarray:
    with lossreg.use_kernels(False):  # the portable definition on torch tensors (no NumPy involved)
        return getattr(lossreg, name)(*[torch.as_tensor(a) for a in arrays], **options).numpy()


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "portable"])
@pytest.mark.parametrize("library", ["numpy", "array_api_strict"])
@pytest.mark.parametrize(("name", "arrays", "options"), UNDERFLOWING, ids=UNDERFLOWING_IDS)
def test_numpy_errors_raised_on_underflow_do_not_stop_a_valid_loss(name, arrays, options, library, kernels):
    """``np.seterr(all="raise")`` (scientific code turns it on to catch NaNs early) made these
    valid calls raise ``FloatingPointError: underflow encountered in exp``: underflow to 0 is how
    the log-sum-exp forms work. They give torch's answer; overflow and invalid still raise."""
    convert = np.asarray if library == "numpy" else array_api_strict.asarray
    want = _torch_answer(name, arrays, options)
    with lossreg.use_kernels(kernels), np.errstate(all="raise"):
        got = getattr(lossreg, name)(*[convert(a) for a in arrays], **options)
        assert np.geterr()["under"] == "raise"  # the user's setting is left as it was
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)


def test_the_class_form_under_numpy_errors_raised_too():
    x, y = np.array([[0.0, -1e9, 3.0]], dtype=np.float32), np.array([2])
    with np.errstate(all="raise"):
        got = lossreg.CrossEntropyLoss(reduction="none")(x, y)
    np.testing.assert_allclose(got, [np.log1p(np.exp(-3.0))], rtol=1e-6)


def test_underflow_as_a_warning_turned_error_gives_the_loss():
    """``np.seterr(under="warn")`` with warnings as errors (pytest ``-W error``) raises
    NumPy's RuntimeWarning instead: the loss too."""
    x, y = np.array([[1000.0, 0.0, -1000.0]]), np.array([0])
    with np.errstate(under="warn"), warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lossreg.cross_entropy(x, y) == 0.0


def test_overflow_and_invalid_values_still_raise_as_numpy_is_told():
    """Only underflow is taken back: a NaN made from an infinite logit is still the user's to see."""
    with np.errstate(all="raise"), pytest.raises(FloatingPointError, match="invalid"):
        lossreg.cross_entropy(np.array([[np.inf, 0.0]]), np.array([0]))
