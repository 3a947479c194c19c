"""Array forms and corner cases a NumPy, JAX, Dask or array-api-strict user meets, against torch.nn.

Each test is one call from user code that gave a different answer from torch.nn.functional's in
float64 (a silently wrong one, or an unclear error) before it was fixed: NumPy masked arrays (from
``np.ma.masked_invalid`` or netCDF), cross-entropy with class weights and label smoothing on a
batch whose targets all weigh 0, NumPy scalars as options (and the JAX kernels' programs, which
took ``True`` for an earlier ``1``), NumPy arrays of ml_dtypes' bfloat16, and Dask arrays of
``np.matrix`` chunks (whose ``*`` is a matrix product).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lossreg
from lossreg.errors import LossTypeError

jax = pytest.importorskip("jax")
jnp = jax.numpy
dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
xs = pytest.importorskip("array_api_strict")


# --- NumPy masked arrays -----------------------------------------------------------------------

MASKED = np.ma.masked_array([[1.0, 2.0], [3.0, 4.0]], mask=[[False, True], [False, False]])
PLAIN = np.array([[0.0, 0.0], [0.0, 1.0]])


@pytest.mark.parametrize(("name", "arrays", "argument"), [
    ("mse_loss", (MASKED, PLAIN), "input"),
    ("l1_loss", (PLAIN, MASKED), "target"),
    ("cross_entropy", (MASKED, np.array([0, 1])), "input"),
    ("kl_div", (np.log(PLAIN + 0.5), MASKED / 10), "target"),
])
def test_a_numpy_masked_array_is_refused_rather_than_half_masked(name: str, arrays: tuple, argument: str) -> None:
    # The masked sum with the unmasked count (mse 4.75, neither torch's 5.75 nor the masked mean 6.33).
    with pytest.raises(LossTypeError) as info:
        getattr(lossreg, name)(*arrays)
    message = str(info.value)
    assert message.startswith(f"{name}: argument '{argument}'"), message
    assert "masked" in info.value.expected and "filled" in info.value.expected, message
    assert "MaskedArray" in info.value.got, message


def test_a_masked_array_filled_gives_torchs_answer() -> None:
    # What the error asks for: the data with the masked entries filled in.
    got = lossreg.mse_loss(MASKED.filled(0.0), PLAIN)
    want = F.mse_loss(torch.from_numpy(MASKED.filled(0.0)), torch.from_numpy(PLAIN))
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-15)


@pytest.mark.parametrize(("name", "arrays", "argument"), [
    ("mse_loss", (MASKED, PLAIN), "input"),
    ("l1_loss", (PLAIN, MASKED), "target"),
    ("cross_entropy", (MASKED, np.array([0, 1])), "input"),
    ("binary_cross_entropy_with_logits", (PLAIN, MASKED / 10), "target"),
])
def test_a_dask_array_of_masked_chunks_is_refused_too_without_computing(name: str, arrays: tuple,
                                                                        argument: str) -> None:
    # dask.array.ma's chunks sum as NumPy's masked arrays do (mse 0.125 for 1.6875, cross-entropy
    # below 0): refused on the chunks' type (_meta), the graph left uncomputed.
    lazy = tuple(da.ma.masked_array(a, mask=np.ma.getmaskarray(a)) if isinstance(a, np.ma.MaskedArray)
                 else da.from_array(a) for a in arrays)
    with pytest.raises(LossTypeError) as info, dask.config.set(scheduler=_refuse_to_compute):
        getattr(lossreg, name)(*lazy, reduction="none")
    message = str(info.value)
    assert message.startswith(f"{name}: argument '{argument}'"), message
    assert "da.ma.filled" in info.value.expected and "masked chunks" in info.value.got, message
    plain = getattr(lossreg, name)(*(da.ma.filled(a, 0.0) if isinstance(a, np.ma.MaskedArray) else da.from_array(a)
                                     for a in arrays))
    want = getattr(F, name)(*(torch.from_numpy(np.ma.filled(a, 0.0)) for a in arrays))
    np.testing.assert_allclose(plain.compute(), want.numpy(), rtol=1e-12)


def _refuse_to_compute(*args: object, **kwargs: object) -> None:
    raise AssertionError("the loss computed its Dask arrays")


@pytest.mark.parametrize("name", ["mse_loss", "huber_loss", "kl_div", "soft_margin_loss"])
def test_a_dask_array_of_numpy_matrix_chunks_is_refused_without_computing(name: str) -> None:
    # np.matrix is refused on NumPy; in Dask chunks its * is a matrix product, so each 2x2 block's
    # unreduced loss was (d @ d)-like: a wrong loss of the right shape (mse_loss 0.47 for torch's 0.18).
    rng = np.random.default_rng(0)
    x, t = rng.normal(size=(4, 4)), np.sign(rng.normal(size=(4, 4)))
    lazy_matrix = da.from_array(np.asmatrix(x), chunks=(2, 2))
    with pytest.raises(LossTypeError) as info, dask.config.set(scheduler=_refuse_to_compute):
        getattr(lossreg, name)(lazy_matrix, da.from_array(t, chunks=(2, 2)), reduction="none")
    message = str(info.value)
    assert message.startswith(f"{name}: argument 'input'"), message
    assert "x.map_blocks(np.asarray)" in info.value.expected and "matrix chunks" in info.value.got, message
    # What the error asks for gives torch's answer.
    got = getattr(lossreg, name)(lazy_matrix.map_blocks(np.asarray), da.from_array(t, chunks=(2, 2)), reduction="none")
    want = getattr(F, name)(torch.from_numpy(x), torch.from_numpy(t), reduction="none")
    np.testing.assert_allclose(got.compute(), want.numpy(), rtol=1e-12)


# --- class weights, label smoothing, and a batch of zero-weight targets -------------------------

LOGITS = np.random.default_rng(0).normal(size=(3, 4))
ZERO_WEIGHT_TARGETS = np.array([0, 2, 0])  # classes 0 and 2 weigh 0: Σ w[y_n] = 0
WEIGHT = np.array([0.0, 1.0, 0.0, 2.0])
LIBRARIES = {
    "numpy": np.asarray,
    "jax": jnp.asarray,
    "array_api_strict": xs.asarray,
    "dask": lambda a: da.from_array(np.asarray(a), chunks=2),
}


def _float(x: object) -> float:
    return float(np.asarray(x.compute() if hasattr(x, "compute") else x))


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("label_smoothing", [0.25, 1.0])
@pytest.mark.parametrize("kernels", [True, False])
def test_cross_entropy_mean_over_zero_weight_targets_with_label_smoothing_is_nan(
        library: str, label_smoothing: float, kernels: bool) -> None:
    # torch divides the NLL and the smoothing term by Σ w[y_n] each: 0/0 + s/0 is NaN, not inf.
    want = F.cross_entropy(torch.from_numpy(LOGITS), torch.from_numpy(ZERO_WEIGHT_TARGETS),
                           weight=torch.from_numpy(WEIGHT), label_smoothing=label_smoothing)
    assert math.isnan(want.item())
    a = LIBRARIES[library]
    with jax.enable_x64(True), lossreg.use_kernels(kernels):
        got = lossreg.cross_entropy(a(LOGITS), a(ZERO_WEIGHT_TARGETS), weight=a(WEIGHT),
                                    label_smoothing=label_smoothing)
    assert math.isnan(_float(got)), got


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("kernels", [True, False])
def test_cross_entropy_mean_with_weights_and_label_smoothing_still_gives_torchs_value(
        library: str, kernels: bool) -> None:
    # The same call with one target of weight 1: the ordinary weighted mean, as torch's.
    targets = np.array([0, 2, 1])
    want = F.cross_entropy(torch.from_numpy(LOGITS), torch.from_numpy(targets), weight=torch.from_numpy(WEIGHT),
                           label_smoothing=0.25)
    a = LIBRARIES[library]
    with jax.enable_x64(True), lossreg.use_kernels(kernels):
        got = lossreg.cross_entropy(a(LOGITS), a(targets), weight=a(WEIGHT), label_smoothing=0.25)
    np.testing.assert_allclose(_float(got), want.item(), rtol=1e-12)


def test_cross_entropy_gradient_with_weights_and_label_smoothing_is_torchs_under_jax() -> None:
    # The mean split in two parts keeps the gradient (logits and probability-free index targets).
    targets = np.array([0, 2, 1])
    x = torch.from_numpy(LOGITS).requires_grad_()
    F.cross_entropy(x, torch.from_numpy(targets), weight=torch.from_numpy(WEIGHT), label_smoothing=0.25).backward()
    with jax.enable_x64(True):
        got = jax.grad(lambda z: lossreg.cross_entropy(z, jnp.asarray(targets), weight=jnp.asarray(WEIGHT),
                                                       label_smoothing=0.25))(jnp.asarray(LOGITS))
    np.testing.assert_allclose(np.asarray(got), x.grad.numpy(), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("library", ["numpy", "torch", "jax", "array_api_strict"])
def test_linear_cross_entropy_mean_over_zero_weight_targets_with_label_smoothing_is_nan(library: str) -> None:
    # The fused loss should agree with cross_entropy of its logits (and with torch's F.linear_cross_entropy).
    rng = np.random.default_rng(0)
    hidden, layer = rng.normal(size=(3, 2)), rng.normal(size=(4, 2))
    a = {"numpy": np.asarray, "torch": torch.from_numpy, "jax": jnp.asarray, "array_api_strict": xs.asarray}[library]
    with jax.enable_x64(library == "jax"), np.errstate(all="raise"):  # raise: NumPy must not warn of 0 / 0
        got = lossreg.linear_cross_entropy(a(hidden), a(layer), a(ZERO_WEIGHT_TARGETS), weight=a(WEIGHT),
                                           label_smoothing=0.25)
        assert math.isnan(float(got)), got
        # One token of weight 1: the two parts' means, as cross_entropy of the logits.
        some = np.array([1, 2, 0])
        got = lossreg.linear_cross_entropy(a(hidden), a(layer), a(some), weight=a(WEIGHT), label_smoothing=0.25)
    want = F.cross_entropy(torch.from_numpy(hidden @ layer.T), torch.from_numpy(some), weight=torch.from_numpy(WEIGHT),
                           label_smoothing=0.25)
    np.testing.assert_allclose(float(got), float(want), rtol=1e-10)


# --- NumPy scalars as options, and the JAX kernels' compiled programs ---------------------------

NUMPY_SCALAR_OPTIONS = [
    ("cross_entropy", "ignore_index", np.int64(1)),
    ("cross_entropy", "label_smoothing", np.float32(0.25)),
    ("huber_loss", "delta", np.float32(0.5)),
    ("huber_loss", "delta", np.float64(0.5)),
    ("margin_ranking_loss", "margin", np.float64(0.5)),
    ("triplet_margin_loss", "margin", np.float32(0.5)),
    ("multi_margin_loss", "margin", np.int32(2)),
]
_RNG = np.random.default_rng(1)
_X, _Y = _RNG.normal(size=(4, 3)).astype(np.float32), _RNG.normal(size=(4, 3)).astype(np.float32)
_CLASSES = np.array([0, 1, 2, 1])
ARRAYS = {
    "cross_entropy": (_X, _CLASSES), "huber_loss": (_X, _Y), "multi_margin_loss": (_X, _CLASSES),
    "margin_ranking_loss": (_X[:, 0], _X[:, 1], np.array([1.0, -1.0, 1.0, -1.0], np.float32)),
    "triplet_margin_loss": (_X, _Y, _X[::-1].copy()),
}
TORCH = {"cross_entropy": F.cross_entropy, "huber_loss": F.huber_loss, "multi_margin_loss": F.multi_margin_loss,
         "margin_ranking_loss": F.margin_ranking_loss, "triplet_margin_loss": F.triplet_margin_loss}


@pytest.mark.parametrize("library", ["numpy", "jax", "array_api_strict", "torch"])
@pytest.mark.parametrize(("name", "option", "value"), NUMPY_SCALAR_OPTIONS)
def test_a_numpy_scalar_option_is_taken_as_torch_takes_it(name: str, option: str, value: object, library: str) -> None:
    # A config value read through NumPy (np.int64 pad id, np.float32 margin): torch takes it as the number.
    want = TORCH[name](*map(torch.from_numpy, ARRAYS[name]), **{option: value})
    a = {"numpy": np.asarray, "jax": jnp.asarray, "array_api_strict": xs.asarray, "torch": torch.from_numpy}[library]
    got = getattr(lossreg, name)(*map(a, ARRAYS[name]), **{option: value})
    np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-6)
    assert str(np.asarray(got).dtype) == "float32"  # a float64 NumPy scalar does not promote float32 arrays
    module = getattr(lossreg, lossreg.spec(name).class_name)(**{option: value})
    np.testing.assert_allclose(np.asarray(module(*map(a, ARRAYS[name]))), want.numpy(), rtol=1e-6)
    assert type(module.get_config()["options"][option]) in (int, float)  # JSON, as get_config promises


def test_jax_kernel_does_not_take_true_for_the_integer_option_of_an_earlier_call() -> None:
    # 1 == True == 1.0 as dict keys: the program compiled for ignore_index=1 answered ignore_index=True.
    x, t = jnp.asarray(_X), jnp.asarray(_CLASSES)
    lossreg.cross_entropy(x, t, ignore_index=1)
    with pytest.raises(lossreg.LossValueError, match="ignore_index"):
        lossreg.cross_entropy(x, t, ignore_index=True)
    lossreg.triplet_margin_loss(x, x, x, swap=False)
    with pytest.raises(lossreg.LossTypeError, match="swap"):
        lossreg.triplet_margin_loss(x, x, x, swap=0)


def test_jax_kernel_refusing_one_call_does_not_refuse_the_next_valid_one() -> None:
    # A refused option value must not stay compiled in for the equal Python value of later calls.
    x, t = jnp.asarray(_X), jnp.asarray(_CLASSES)
    with pytest.raises(lossreg.LossValueError):
        lossreg.cross_entropy(x, t, ignore_index=np.bool_(True))
    want = F.cross_entropy(torch.from_numpy(_X), torch.from_numpy(_CLASSES), ignore_index=1)
    np.testing.assert_allclose(np.asarray(lossreg.cross_entropy(x, t, ignore_index=1)), want.numpy(), rtol=1e-6)


# --- NumPy arrays of ml_dtypes' bfloat16 (what np.asarray makes of a JAX bfloat16 array) --------

def test_a_numpy_bfloat16_array_is_refused_with_a_lossreg_error() -> None:
    # NumPy's isdtype raised its own TypeError about the dtype, naming neither the loss nor the argument.
    ml_dtypes = pytest.importorskip("ml_dtypes")
    half = np.ones((2, 3), ml_dtypes.bfloat16)
    for name, arrays, argument in [("mse_loss", (half, half), "input"),
                                   ("cross_entropy", (np.ones((2, 3)), half), "target"),
                                   ("soft_margin_loss", (np.ones((2, 3)), half), "target")]:
        with pytest.raises(LossTypeError) as info:
            getattr(lossreg, name)(*arrays)
        assert str(info.value).startswith(f"{name}: argument '{argument}'"), info.value
        assert "bfloat16" in info.value.got, info.value
