"""Bad input raises a lossreg error naming the loss, the argument, what was expected and what was given."""

from __future__ import annotations

import re

import numpy as np
import pytest

import lossreg

X = np.random.default_rng(0).normal(size=(3, 5))
T = np.array([1, 0, 4])
P = np.array([0.1, 0.2, 0.8, 0.9])
Y = np.array([0.0, 0.0, 1.0, 1.0])

# (call, error type, text the message must contain: loss, argument, expectation, what was given)
BAD = {
    "mse shape mismatch": (lambda: lossreg.mse_loss(np.zeros(4), np.zeros((4, 1))), lossreg.LossValueError,
                           "mse_loss: argument 'target' expected the shape of 'input' (4,), got shape (4, 1)"),
    "l1 integer input": (lambda: lossreg.l1_loss(np.arange(3), np.zeros(3)), lossreg.LossTypeError,
                         "l1_loss: argument 'input' expected a real floating-point array, or a complex64 or complex128 "
                         "one, got numpy array of dtype int64"),
    "mse python list": (lambda: lossreg.mse_loss([1.0, 2.0], np.zeros(2)), lossreg.LossTypeError,
                        "mse_loss: argument 'input' expected an array (NumPy, CuPy, torch, JAX, Dask, ...), got list"),
    "mse None": (lambda: lossreg.mse_loss(np.zeros(2), None), lossreg.LossTypeError,
                 "argument 'target' expected an array"),
    "mse bad reduction": (lambda: lossreg.mse_loss(np.zeros(2), np.zeros(2), reduction="avg"), lossreg.LossValueError,
                          "mse_loss: argument 'reduction' expected one of 'none', 'mean', 'sum', got 'avg'"),
    "ce index out of range": (lambda: lossreg.cross_entropy(X, np.array([1, 0, 5])), lossreg.LossValueError,
                              "cross_entropy: argument 'target' expected class indices in [0, 5) or ignore_index=-100, got 5"),
    "ce negative index": (lambda: lossreg.cross_entropy(X, np.array([1, -1, 2])), lossreg.LossValueError,
                          "got -1"),
    "ce float indices": (lambda: lossreg.cross_entropy(X, np.array([1.0, 0.0, 4.0])), lossreg.LossValueError,
                         "cross_entropy: argument 'target' expected probabilities of the input's shape (3, 5), or class "
                         "indices as an integer array, got numpy array of dtype float64 and shape (3,)"),
    "ce target shape": (lambda: lossreg.cross_entropy(X, np.array([1, 0])), lossreg.LossValueError,
                        "cross_entropy: argument 'target' expected class indices of shape (3,) or (3, 1)"),
    "ce weight length": (lambda: lossreg.cross_entropy(X, T, weight=np.ones(4)), lossreg.LossValueError,
                         "cross_entropy: argument 'weight' expected a vector of one weight per class, shape (5,), got shape (4,)"),
    "ce smoothing": (lambda: lossreg.cross_entropy(X, T, label_smoothing=1.5), lossreg.LossValueError,
                     "cross_entropy: argument 'label_smoothing' expected a number in [0.0, 1.0], got 1.5"),
    "ce integer logits": (lambda: lossreg.cross_entropy(T, np.array(1)), lossreg.LossTypeError,
                          "cross_entropy: argument 'input' expected a real floating-point array"),
    "nll float target": (lambda: lossreg.nll_loss(X, np.zeros(3)), lossreg.LossTypeError,
                         "nll_loss: argument 'target' expected integer class indices"),
    "bce above 1": (lambda: lossreg.binary_cross_entropy(np.array([0.5, 1.5]), np.array([0.0, 1.0])),
                    lossreg.LossValueError, "binary_cross_entropy: argument 'input' expected probabilities in [0, 1], got 1.5"),
    "bce nan": (lambda: lossreg.binary_cross_entropy(np.array([np.nan]), np.array([1.0])),
                lossreg.LossValueError, "expected probabilities in [0, 1], got nan"),
    "bce target above 1 (torch: all elements of target should be between 0 and 1)": (
        lambda: lossreg.binary_cross_entropy(np.array([0.3, 0.6]), np.array([1.5, 0.0])), lossreg.LossValueError,
        "binary_cross_entropy: argument 'target' expected probabilities in [0, 1], got 1.5"),
    "bce target nan": (lambda: lossreg.binary_cross_entropy(np.array([0.3, 0.6]), np.array([np.nan, 0.0])),
                       lossreg.LossValueError, "argument 'target' expected probabilities in [0, 1], got nan"),
    "bce (N,) vs (N, 1)": (lambda: lossreg.binary_cross_entropy(P, Y.reshape(4, 1)), lossreg.LossValueError,
                           "binary_cross_entropy: argument 'target' expected the shape of 'input' (4,), got shape (4, 1)"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_is_reported_clearly(case):
    call, error, text = BAD[case]
    with pytest.raises(error) as info:
        call()
    assert text in str(info.value)
    assert isinstance(info.value, (ValueError, TypeError)) and isinstance(info.value, lossreg.LossError)


def test_mixed_array_libraries_are_refused():
    torch = pytest.importorskip("torch")
    with pytest.raises(lossreg.LossTypeError, match="mse_loss: argument 'input/target' expected arrays of one "
                                                   "array library, got 'input' from numpy, 'target' from torch"):
        lossreg.mse_loss(np.zeros(3), torch.zeros(3))


def test_mixed_devices_are_refused():
    xp = pytest.importorskip("array_api_strict")
    a = xp.asarray([0.5, 0.5], device=xp.Device("CPU_DEVICE"))
    b = xp.asarray([0.0, 1.0], device=xp.Device("device1"))
    with pytest.raises(lossreg.LossValueError, match="binary_cross_entropy: argument 'target' expected an array on "
                                                    "input's device .*CPU_DEVICE.*, got one on .*device1"):
        lossreg.binary_cross_entropy(a, b)


def test_lazy_arrays_turn_invalid_values_into_nan_instead_of_reading_them():
    da = pytest.importorskip("dask.array")
    x = da.from_array(X, chunks=(2, 5))
    value = lossreg.cross_entropy(x, da.from_array(np.array([1, 9, 4]), chunks=2), reduction="none")
    got = value.compute()
    assert np.isnan(got[1]) and np.isfinite(got[[0, 2]]).all()


def test_dask_arrays_of_unknown_size_are_refused_rather_than_averaged_into_nan():
    da = pytest.importorskip("dask.array")
    x = da.from_array(np.arange(10.0), chunks=5)
    kept = x[x > 2]  # boolean indexing: sizes known only after computing
    with pytest.raises(lossreg.LossValueError, match=r"mse_loss: argument 'input' expected an array of known "
                                                     r"shape .*compute_chunk_sizes.*, got shape \(nan,\)"):
        lossreg.mse_loss(kept, kept)
    with pytest.raises(lossreg.LossValueError, match="argument 'target'"):
        lossreg.mse_loss(x[:7], (2 * x)[x > 2])
    assert float(lossreg.mse_loss(kept.compute_chunk_sizes(), (2 * x)[x > 2].compute_chunk_sizes()).compute()) == 40.0


def test_value_checks_can_poison_instead_of_reading_values():
    # On a GPU, reading a value back costs a synchronisation; "poison" never reads.
    with lossreg.value_checks("poison"):
        got = lossreg.cross_entropy(X, np.array([1, 9, 4]), reduction="none")
    assert np.isnan(got[1]) and np.isfinite(got[[0, 2]]).all()
    with lossreg.value_checks("sync"), pytest.raises(lossreg.LossValueError, match="got 9"):
        lossreg.cross_entropy(X, np.array([1, 9, 4]))
    with pytest.raises(lossreg.LossValueError, match="'mode' expected one of 'auto', 'sync', 'poison'"):
        with lossreg.value_checks("fast"):
            pass


@pytest.mark.parametrize("kernels", [False, True], ids=["portable", "kernels"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_a_poisoned_loss_keeps_finite_gradients_as_the_readme_says(reduction: str, kernels: bool) -> None:
    """The NaN loss is the signal, not the gradients: the portable path gives the invalid sample
    a zero gradient and the others those of the loss with its target ignored; torch's kernels
    poison after reducing, so a reduced loss's gradient is zero throughout."""
    torch = pytest.importorskip("torch")
    x = torch.tensor(X, requires_grad=True)
    with lossreg.value_checks("poison"), lossreg.use_kernels(kernels):
        loss = lossreg.cross_entropy(x, torch.tensor([1, 9, 4]), reduction=reduction)
    loss.sum().backward()
    assert torch.isnan(loss).any() and bool(torch.isfinite(x.grad).all()) and not x.grad[1].any()
    good = torch.tensor(X, requires_grad=True)
    torch.nn.functional.cross_entropy(good, torch.tensor([1, -100, 4]), reduction=reduction).sum().backward()
    expected = torch.zeros_like(good) if kernels and reduction != "none" else good.grad
    torch.testing.assert_close(x.grad, expected)


@pytest.mark.parametrize("target", [[1.5, 0.0], [-0.5, 1.0], [np.nan, 1.0]])
def test_bce_refuses_targets_outside_0_1_on_torch_tensors_as_torch_does(target):
    torch = pytest.importorskip("torch")
    p, t = torch.tensor([0.3, 0.6], requires_grad=True), torch.tensor(target)
    with pytest.raises(RuntimeError, match="target should be between 0 and 1"):
        torch.nn.functional.binary_cross_entropy(p, t)
    with pytest.raises(lossreg.LossValueError, match="argument 'target' expected probabilities in"):
        lossreg.binary_cross_entropy(p, t)
    with lossreg.value_checks("poison"):  # where values are not read, the bad element's loss is NaN
        none = lossreg.binary_cross_entropy(p, t, reduction="none")
    assert np.isnan(none[0].item()) and np.isfinite(none[1].item())


def test_jax_arrays_give_nan_but_sync_mode_reads_concrete_ones_and_raises():
    """array-api-compat calls every JAX array lazy, and eager calls run compiled kernels: invalid
    values give NaN by default. "sync" reads concrete arrays (op by op) and raises; traced ones,
    under jax.jit, are still poisoned."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    x, bad = jnp.asarray(X), jnp.asarray([1, 9, 4])
    assert np.isnan(float(lossreg.cross_entropy(x, bad)))
    with lossreg.value_checks("sync"):
        with pytest.raises(lossreg.LossValueError, match="cross_entropy: argument 'target' .* got 9"):
            lossreg.cross_entropy(x, bad)
        with pytest.raises(lossreg.LossValueError, match="argument 'input' expected probabilities in .* got 1.5"):
            lossreg.binary_cross_entropy(jnp.asarray([0.5, 1.5]), jnp.asarray([0.0, 1.0]))
        hidden, weight = jnp.asarray(X), jnp.ones((3, 5))
        with pytest.raises(lossreg.LossValueError, match="linear_cross_entropy: argument 'target'"):
            lossreg.linear_cross_entropy(hidden, weight, bad)
        assert np.isnan(float(jax.jit(lossreg.cross_entropy)(x, bad)))
        assert np.isfinite(float(lossreg.cross_entropy(x, jnp.asarray([1, 2, 4]))))


@pytest.mark.parametrize("call, argument, expected", [
    (lambda: lossreg.mse_loss(X), "arrays", "2 arrays by position (input, target), then options by keyword"),
    (lambda: lossreg.mse_loss(X, X, "sum"), "arrays", "got 3 positional arguments"),
    (lambda: lossreg.mse_loss(X, X, reductio="sum"), "reductio", "expected one of its options reduction"),
    (lambda: lossreg.mse_loss(X, input=X), "input", "got it by position and by name"),
    (lambda: lossreg.mse_loss(X, X, target=X), "target", "got it by position and by name"),
    (lambda: lossreg.gaussian_nll_loss(X, target=X), "var", "got no value (the arrays after it were given by name)"),
    (lambda: lossreg.MSELoss()(X), "arrays", "2 arrays by position"),
    (lambda: lossreg.MSELoss()(X, X, reduction="sum"), "reduction", "the options when the loss is made"),
    (lambda: lossreg.ctc_loss(X, X), "arrays", "4 arrays by position (log_probs, targets, input_lengths"),
], ids=["too few arrays", "a positional option", "a misspelt option", "an array twice", "the last array twice",
        "a missing array among named ones", "class form", "class form, an option at the call", "ctc, two of four"])
def test_a_call_that_does_not_fit_the_signature_is_a_lossreg_error(call, argument, expected):
    with pytest.raises(lossreg.LossTypeError, match=rf"argument '{argument}' .*{re.escape(expected)}"):
        call()
