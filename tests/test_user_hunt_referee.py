"""Unusual but legal array forms, with array-api-strict as the referee of the standard and
torch.nn.functional (float64) as the referee of the values.

A user of the Array API standard passes every built-in loss arrays on array-api-strict's other
devices and under its restrictive flags, NumPy arrays in every memory layout and byte order
NumPy can make, torch tensors in every layout and wrapper torch can make, and JAX arrays in
half precision, weakly typed or committed to a device. Each call must give torch's answer,
keep the result where the inputs were, leave the inputs untouched, or refuse with a lossreg
error that names the loss and the argument. (Named tensors are not tested: torch 2.13 has
removed them.)

Bugs this file found (each test below says which): mixing NumPy's two byte orders of float16
(a big-endian array read from a file beside a native one) gave a float32 loss, and crashed
``gaussian_nll_loss`` with NumPy's "dtype argument must be a NumPy dtype" error; big-endian
float64 input gave a big-endian result (``loss.dtype != np.float64``, refused by
``torch.from_numpy``); an ``np.matrix`` was refused as "expected an array (NumPy, ...)".
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from strategies import REFERENCES, make_good
from torch_examples import BUILTIN, differentiable

import lossreg
from lossreg.errors import LossTypeError, LossValueError

xs = pytest.importorskip("array_api_strict")
jax = pytest.importorskip("jax")
jnp = jax.numpy

CPU = xs.Device("CPU_DEVICE")
OTHER_DEVICES = [xs.Device("device1"), xs.Device("device2")]
REDUCTIONS = ["none", "mean"]


def _example(name: str) -> dict[str, np.ndarray]:
    return dict(make_good(name, n=6).inputs)


def _torch_value(name: str, inputs: dict[str, np.ndarray], **options: Any) -> np.ndarray:
    """torch's answer, in float64, for NumPy inputs in any layout or byte order."""
    native = [torch.from_numpy(np.ascontiguousarray(v).astype(v.dtype.newbyteorder("="))) for v in inputs.values()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kl_div's "mean" warning
        return REFERENCES[name](*native, **options).detach().numpy()


def _read(x: Any) -> np.ndarray:
    """Any library's result as NumPy, without moving an array-api-strict array first."""
    if isinstance(x, torch.Tensor):
        return x.detach().numpy()
    if type(x).__module__.startswith("array_api_strict"):
        return np.asarray(x.to_device(CPU))
    return np.asarray(x)


def _assert_value(got: Any, want: np.ndarray, rtol: float = 1e-10) -> None:
    value = _read(got)
    assert value.shape == want.shape, (value.shape, want.shape)
    np.testing.assert_allclose(value, want, rtol=rtol, atol=1e-12)


# --- array-api-strict: other devices ------------------------------------------------------------

@pytest.mark.parametrize("device", OTHER_DEVICES, ids=str)
@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize("name", BUILTIN)
def test_every_loss_on_another_array_api_strict_device_stays_there(name: str, kernels: bool, device: Any) -> None:
    # No array made along the way may land on CPU_DEVICE: array-api-strict would refuse to mix them.
    inputs = _example(name)
    for reduction in REDUCTIONS:
        with lossreg.use_kernels(kernels):
            got = getattr(lossreg, name)(*[xs.asarray(v, device=device) for v in inputs.values()], reduction=reduction)
        assert got.device == device
        _assert_value(got, _torch_value(name, inputs, reduction=reduction))


_RNG = np.random.default_rng(7)
# Every array option of a built-in loss, with its value for make_good's (6, 3) examples.
ARRAY_OPTIONS = [
    ("binary_cross_entropy", "weight", _RNG.uniform(0.1, 2, 3)),
    ("binary_cross_entropy_with_logits", "weight", _RNG.uniform(0.1, 2, 3)),
    ("binary_cross_entropy_with_logits", "pos_weight", _RNG.uniform(0.1, 2, 3)),
    ("cross_entropy", "weight", _RNG.uniform(0.1, 2, 3)),
    ("nll_loss", "weight", _RNG.uniform(0.1, 2, 3)),
    ("multi_margin_loss", "weight", _RNG.uniform(0.1, 2, 3)),
    ("multilabel_soft_margin_loss", "weight", _RNG.uniform(0.1, 2, 3)),
    ("mse_loss", "weight", _RNG.uniform(0.1, 2, (6, 3))),
    ("l1_loss", "weight", _RNG.uniform(0.1, 2, (6, 3))),
    ("huber_loss", "weight", _RNG.uniform(0.1, 2, (6, 3))),
    ("linear_cross_entropy", "weight", _RNG.uniform(0.1, 2, 5)),
    ("linear_cross_entropy", "linear_bias", _RNG.normal(size=5)),
]


@pytest.mark.parametrize(("name", "option", "value"), ARRAY_OPTIONS, ids=[f"{n}-{o}" for n, o, _ in ARRAY_OPTIONS])
def test_array_options_on_the_inputs_device_are_used_there_and_on_another_are_refused(
        name: str, option: str, value: np.ndarray) -> None:
    inputs, (here, there) = _example(name), OTHER_DEVICES
    arrays = [xs.asarray(v, device=here) for v in inputs.values()]
    want = _torch_value(name, inputs, reduction="none", **{option: torch.from_numpy(value)})
    got = getattr(lossreg, name)(*arrays, reduction="none", **{option: xs.asarray(value, device=here)})
    assert got.device == here
    _assert_value(got, want)
    with pytest.raises(LossValueError) as info:
        getattr(lossreg, name)(*arrays, **{option: xs.asarray(value, device=there)})
    assert str(info.value).startswith(f"{name}: argument '{option}'"), info.value
    assert "device1" in str(info.value) and "device2" in str(info.value), info.value


def test_class_form_list_options_are_made_on_the_inputs_device() -> None:
    # "array options given as lists are converted to the caller's array library, device and dtype"
    inputs = _example("binary_cross_entropy_with_logits")
    device = OTHER_DEVICES[0]
    loss = lossreg.BCEWithLogitsLoss(pos_weight=[0.5, 1.0, 3.0], weight=[1.0, 0.0, 2.0], reduction="none")
    got = loss(*[xs.asarray(v, device=device) for v in inputs.values()])
    assert got.device == device
    _assert_value(got, _torch_value("binary_cross_entropy_with_logits", inputs, reduction="none",
                                    pos_weight=torch.tensor([0.5, 1.0, 3.0], dtype=torch.float64),
                                    weight=torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64)))


def test_two_non_default_devices_are_refused_naming_the_loss_and_argument() -> None:
    inputs = _example("triplet_margin_loss")
    a, p, n = inputs.values()
    with pytest.raises(LossValueError) as info:
        lossreg.triplet_margin_loss(xs.asarray(a, device=OTHER_DEVICES[0]), xs.asarray(p, device=OTHER_DEVICES[0]),
                                    xs.asarray(n, device=OTHER_DEVICES[1]))
    assert str(info.value).startswith("triplet_margin_loss: argument 'negative'"), info.value


# --- array-api-strict: restrictive flags ---------------------------------------------------------

FLAGS = [
    {"data_dependent_shapes": False},
    {"boolean_indexing": False},
    {"enabled_extensions": ()},
    {"api_version": "2024.12"},
    {"data_dependent_shapes": False, "boolean_indexing": False, "enabled_extensions": ()},
]


@pytest.mark.parametrize("flags", FLAGS, ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()))
@pytest.mark.parametrize("name", BUILTIN)
def test_every_loss_works_under_restrictive_array_api_strict_flags(name: str, flags: dict) -> None:
    inputs = _example(name)
    for reduction in REDUCTIONS:
        for kernels in (True, False):
            with xs.ArrayAPIStrictFlags(**flags), lossreg.use_kernels(kernels):
                got = getattr(lossreg, name)(*[xs.asarray(v) for v in inputs.values()], reduction=reduction)
                value = _read(got)
            np.testing.assert_allclose(value, _torch_value(name, inputs, reduction=reduction), rtol=1e-10, atol=1e-12)


def test_options_and_invalid_values_under_the_most_restrictive_flags() -> None:
    # Ignored targets, smoothing, K-dimensional scores, probabilities, CTC's masks: no boolean
    # indexing, no data-dependent shapes, no linalg; and the value checks still raise lossreg's error.
    rng = np.random.default_rng(3)
    x, t = rng.normal(size=(4, 3, 5)), rng.integers(0, 3, (4, 5))
    t[0, :2] = -100
    w = rng.uniform(0.5, 2, 3)
    probs = np.exp(x) / np.exp(x).sum(1, keepdims=True)
    ctc = _example("ctc_loss")
    calls = [
        (lossreg.cross_entropy, F.cross_entropy, (x, t), {"weight": w, "label_smoothing": 0.2}),
        (lossreg.cross_entropy, F.cross_entropy, (x, probs), {"weight": w, "label_smoothing": 0.2}),
        (lossreg.nll_loss, F.nll_loss, (x, t), {"weight": w}),
        (lossreg.ctc_loss, F.ctc_loss, tuple(ctc.values()), {"zero_infinity": True, "reduction": "none"}),
    ]
    with xs.ArrayAPIStrictFlags(data_dependent_shapes=False, boolean_indexing=False, enabled_extensions=()):
        for loss, reference, arrays, options in calls:
            want = reference(*map(torch.from_numpy, arrays), **{k: torch.from_numpy(v) if isinstance(v, np.ndarray)
                                                               else v for k, v in options.items()})
            got = loss(*map(xs.asarray, arrays), **{k: xs.asarray(v) if isinstance(v, np.ndarray) else v
                                                    for k, v in options.items()})
            np.testing.assert_allclose(_read(got), want.numpy(), rtol=1e-10)
        with pytest.raises(LossValueError, match=r"cross_entropy: argument 'target' expected class indices"):
            lossreg.cross_entropy(xs.asarray(x), xs.asarray(t + 3))


# --- NumPy array forms ----------------------------------------------------------------------------

def _strided(v: np.ndarray) -> np.ndarray:
    wide = np.full(v.shape + (2,), 12345, v.dtype)
    wide[..., 0] = v
    return wide[..., 0]


def _negative_stride(v: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(v[::-1])[::-1] if v.ndim else v


def _read_only(v: np.ndarray) -> np.ndarray:
    v = v.copy()
    v.flags.writeable = False
    return v


def _big_endian(v: np.ndarray) -> np.ndarray:
    return v.astype(v.dtype.newbyteorder(">"))


NUMPY_FORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "non-contiguous": _strided, "negative strides": _negative_stride, "Fortran order": np.asfortranarray,
    "read-only": _read_only, "big-endian": _big_endian,
}


@pytest.mark.parametrize("form", NUMPY_FORMS)
@pytest.mark.parametrize("name", BUILTIN)
def test_every_loss_takes_numpy_arrays_in_any_layout_without_writing_to_them(name: str, form: str) -> None:
    inputs = {k: NUMPY_FORMS[form](v) for k, v in _example(name).items()}
    before = {k: v.copy() for k, v in inputs.items()}
    for reduction in REDUCTIONS:
        for kernels in (True, False):
            with lossreg.use_kernels(kernels):
                got = getattr(lossreg, name)(*inputs.values(), reduction=reduction)
            _assert_value(got, _torch_value(name, inputs, reduction=reduction))
    for k, v in inputs.items():
        np.testing.assert_array_equal(v, before[k], err_msg=f"{name} wrote into its argument {k!r}")


@pytest.mark.parametrize("name", BUILTIN)
def test_big_endian_float64_input_gives_a_native_float64_loss(name: str) -> None:
    # The result was '>f8': float64 to the standard's isdtype, but loss.dtype != np.float64, and
    # torch.from_numpy(loss) refused it ("byte order different from the native byte order").
    # NumPy's own arithmetic on big-endian arrays returns native ones.
    inputs = {k: _big_endian(v) for k, v in _example(name).items()}
    got = getattr(lossreg, name)(*inputs.values(), reduction="none")
    assert got.dtype == np.float64, got.dtype
    torch.from_numpy(np.asarray(got))


@pytest.mark.parametrize("name", BUILTIN)
def test_numpy_longdouble_input_gives_torchs_value_in_longdouble(name: str) -> None:
    # A real floating dtype to NumPy's isdtype, which every loss takes; binary_cross_entropy raised
    # "math domain error": its clamped log took math.log of longdouble's smallest number, 0.0 as a float.
    inputs = {k: v.astype(np.longdouble) if v.dtype.kind == "f" else v for k, v in _example(name).items()}
    got = getattr(lossreg, name)(*inputs.values(), reduction="none")
    assert got.dtype == np.longdouble, got.dtype
    _assert_value(got.astype(np.float64), _torch_value(name, _example(name), reduction="none"))


@pytest.mark.parametrize("name", BUILTIN)
def test_float16_of_either_byte_order_gives_a_float16_loss(name: str) -> None:
    # A big-endian float16 array (read from a file) beside a native one is still float16, as NumPy
    # promotes them: lossreg gave float32 (two "different" half dtypes), and gaussian_nll_loss raised
    # NumPy's "dtype argument must be a NumPy dtype, but it is a <class 'getset_descriptor'>".
    inputs = {k: v.astype(np.float16) if v.dtype.kind == "f" else v for k, v in _example(name).items()}
    first = next(iter(inputs))
    mixed = {k: _big_endian(v) if k == first else v for k, v in inputs.items()}
    want = _torch_value(name, {k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in inputs.items()},
                        reduction="none")
    got = getattr(lossreg, name)(*mixed.values(), reduction="none")
    assert got.dtype.kind == "f" and got.dtype.itemsize == 2, got.dtype
    np.testing.assert_allclose(got.astype(np.float32), want, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("name", BUILTIN)
def test_numpy_float16_is_computed_in_float32_and_returned_in_float16(name: str) -> None:
    # torch's CPU half kernels (where it has them) round intermediates; lossreg computes in float32:
    # compare with torch on the float32 copies of the same half values, to half-precision tolerance.
    inputs = {k: v.astype(np.float16) if v.dtype.kind == "f" else v for k, v in _example(name).items()}
    for reduction in REDUCTIONS:
        got = getattr(lossreg, name)(*inputs.values(), reduction=reduction)
        assert np.asarray(got).dtype == np.float16
        want = _torch_value(name, {k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in inputs.items()},
                            reduction=reduction)
        np.testing.assert_allclose(np.asarray(got, np.float32), want, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("name", ["mse_loss", "cross_entropy", "ctc_loss", "linear_cross_entropy"])
def test_read_only_memmaps_are_read_not_written(name: str, tmp_path: Path) -> None:
    inputs = {}
    for k, v in _example(name).items():
        path = tmp_path / k
        v.tofile(path)
        inputs[k] = np.memmap(path, dtype=v.dtype, mode="r", shape=v.shape)
    got = getattr(lossreg, name)(*inputs.values(), reduction="none")
    _assert_value(got, _torch_value(name, inputs, reduction="none"))


@pytest.mark.parametrize(("loss", "reference", "arrays"), [
    (lossreg.cross_entropy, F.cross_entropy, (np.array([0.3, -1.0, 2.0]), np.array(2, ">i8"))),
    (lossreg.nll_loss, F.nll_loss, (np.array([-0.3, -1.0, -2.0]), np.array(1, np.int32))),
    (lossreg.multi_margin_loss, F.multi_margin_loss, (np.array([0.3, -1.0, 2.0]), np.array(0))),
    (lossreg.mse_loss, F.mse_loss, (np.array(1.5), np.array(0.25))),
], ids=["cross_entropy", "nll_loss", "multi_margin_loss", "mse_loss"])
def test_0d_numpy_targets_give_torchs_0d_answer(loss: Callable[..., Any], reference: Callable[..., Any],
                                                arrays: tuple[np.ndarray, ...]) -> None:
    native = [torch.from_numpy(a.astype(a.dtype.newbyteorder("=")).astype(np.int64 if a.dtype.kind == "i" else a.dtype))
              for a in arrays]
    for reduction in ["none", "mean", "sum"]:
        _assert_value(loss(*arrays, reduction=reduction), reference(*native, reduction=reduction).numpy())


@pytest.mark.parametrize("name", ["mse_loss", "cross_entropy", "ctc_loss", "cosine_embedding_loss"])
def test_a_numpy_matrix_is_refused_saying_what_to_pass(name: str) -> None:
    # np.matrix keeps two axes through every reduction and indexing: refused, but the message said
    # "expected an array (NumPy, CuPy, ...), got matrix", for an object of NumPy's.
    inputs = _example(name)
    argument = next(k for k, v in inputs.items() if v.ndim == 2)
    arrays = [np.asmatrix(v) if k == argument else v for k, v in inputs.items()]
    with pytest.raises(LossTypeError) as info:
        getattr(lossreg, name)(*arrays)
    assert str(info.value).startswith(f"{name}: argument '{argument}'"), info.value
    assert "np.asarray" in info.value.expected and "matrix" in info.value.got, info.value


@pytest.mark.parametrize("value", [[1.0, 2.0], (1.0, 2.0), 1.5], ids=["list", "tuple", "float"])
def test_python_sequences_and_numbers_as_arrays_are_refused_naming_the_argument(value: Any) -> None:
    with pytest.raises(LossTypeError) as info:
        lossreg.mse_loss(np.array([1.0, 2.0]), value)
    assert str(info.value).startswith("mse_loss: argument 'target' expected an array"), info.value
    with pytest.raises(LossTypeError, match="^l1_loss: argument 'input' expected an array"):
        lossreg.l1_loss(value, np.array([1.0, 2.0]))


def test_a_plain_ndarray_subclass_gives_torchs_answer() -> None:
    class Tagged(np.ndarray):
        pass

    inputs = _example("binary_cross_entropy")
    got = lossreg.binary_cross_entropy(*[v.view(Tagged) for v in inputs.values()], reduction="none")
    _assert_value(got, _torch_value("binary_cross_entropy", inputs, reduction="none"))


# --- torch tensor forms ---------------------------------------------------------------------------

def _expanded(t: torch.Tensor) -> torch.Tensor:
    return t[:1].expand(t.shape) if t.ndim and t.shape[0] else t


def _transposed(t: torch.Tensor) -> torch.Tensor:
    return t.transpose(0, 1).contiguous().transpose(0, 1) if t.ndim >= 2 else t


def _strided_tensor(t: torch.Tensor) -> torch.Tensor:
    wide = torch.zeros(t.shape + (3,), dtype=t.dtype)
    wide[..., 1] = t
    return wide[..., 1]


def _negative_bit(t: torch.Tensor) -> torch.Tensor:
    # z.conj().imag is a public view with torch's negative bit set (its values are t).
    if not t.is_floating_point():
        return t
    view = torch.complex(torch.zeros_like(t), -t).conj().imag
    assert view.is_neg()
    return view


TORCH_FORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "expanded": _expanded, "transposed": _transposed, "strided": _strided_tensor, "negative bit": _negative_bit,
}


@pytest.mark.parametrize("form", TORCH_FORMS)
@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize("name", BUILTIN)
def test_every_loss_takes_torch_views_with_torchs_value_and_gradients(name: str, kernels: bool, form: str) -> None:
    inputs, make = _example(name), TORCH_FORMS[form]
    wrt = differentiable(name, inputs) if form != "negative bit" else []

    def call(loss: Callable[..., Any]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        leaves = {k: torch.from_numpy(v.copy()).requires_grad_(k in wrt) for k, v in inputs.items()}
        value = loss(*[make(t) for t in leaves.values()], reduction="none")
        grads = torch.autograd.grad(value.sum(), [leaves[k] for k in wrt]) if wrt else []
        return value.detach(), list(grads)

    with lossreg.use_kernels(kernels):
        got, got_grads = call(getattr(lossreg, name))
    want, want_grads = call(REFERENCES[name])
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    for k, g, h in zip(wrt, got_grads, want_grads):
        torch.testing.assert_close(g, h, rtol=1e-8, atol=1e-12, msg=f"gradient of {k}")


@pytest.mark.parametrize("kernels", [True, False])
def test_channels_last_scores_give_torchs_values_and_gradients(kernels: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 3, 5, dtype=torch.float64, generator=gen).contiguous(memory_format=torch.channels_last)
    t = torch.randint(0, 4, (2, 3, 5), generator=gen)
    y = torch.rand(2, 4, 3, 5, dtype=torch.float64, generator=gen)
    w = torch.rand(4, dtype=torch.float64, generator=gen) + 0.1
    calls = [
        (lossreg.cross_entropy, F.cross_entropy, (x, t), {"weight": w, "label_smoothing": 0.1}),
        (lossreg.nll_loss, F.nll_loss, (x.log_softmax(1), t), {"weight": w, "ignore_index": 2}),
        (lossreg.binary_cross_entropy, F.binary_cross_entropy, (x.sigmoid(), y), {}),
        (lossreg.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits,
         (x, y.contiguous(memory_format=torch.channels_last)), {"pos_weight": w[:, None, None]}),
    ]
    for loss, reference, arrays, options in calls:
        for reduction in ["none", "mean"]:
            def run(f: Callable[..., Any]) -> tuple[torch.Tensor, torch.Tensor]:
                first = arrays[0].detach().clone(memory_format=torch.preserve_format).requires_grad_()
                value = f(first, *arrays[1:], reduction=reduction, **options)
                return value.detach(), torch.autograd.grad(value.sum(), first)[0]
            with lossreg.use_kernels(kernels):
                got = run(loss)
            want = run(reference)
            torch.testing.assert_close(got[0], want[0], rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(got[1], want[1], rtol=1e-8, atol=1e-12)


class Logged(torch.Tensor):
    """A minimal __torch_function__ subclass, as tracing and logging wrappers make them."""

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        return super().__torch_function__(func, types, args, kwargs or {})


@pytest.mark.parametrize("wrapper", ["Parameter", "subclass"])
@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize("name", BUILTIN)
def test_parameters_and_tensor_subclasses_give_torchs_value_gradients_and_type(name: str, kernels: bool,
                                                                                wrapper: str) -> None:
    inputs = _example(name)
    wrt = differentiable(name, inputs)

    def call(loss: Callable[..., Any]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        arrays = []
        for k, v in inputs.items():
            t = torch.from_numpy(v.copy())
            if wrapper == "Parameter":
                t = torch.nn.Parameter(t) if k in wrt else t
            else:
                t = t.as_subclass(Logged).requires_grad_(k in wrt)
            arrays.append(t)
        value = loss(*arrays)
        return value, list(torch.autograd.grad(value, [a for a in arrays if a.requires_grad]))

    with lossreg.use_kernels(kernels):
        got, got_grads = call(getattr(lossreg, name))
    want, want_grads = call(REFERENCES[name])
    assert type(got) is type(want)
    torch.testing.assert_close(got.detach().as_subclass(torch.Tensor), want.detach().as_subclass(torch.Tensor),
                               rtol=1e-10, atol=1e-12)
    for g, h in zip(got_grads, want_grads):
        torch.testing.assert_close(g.as_subclass(torch.Tensor), h.as_subclass(torch.Tensor), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("name", BUILTIN)
def test_targets_that_require_grad_get_torchs_gradient(name: str) -> None:
    inputs = _example(name)
    if name == "soft_margin_loss":
        pytest.skip("documented: lossreg differentiates the target where torch raises")

    def call(loss: Callable[..., Any]) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        arrays = [torch.from_numpy(v.copy()).requires_grad_(v.dtype.kind == "f") for v in inputs.values()]
        value = loss(*arrays)
        return value.detach(), list(torch.autograd.grad(value, [a for a in arrays if a.requires_grad],
                                                        allow_unused=True))

    got, got_grads = call(getattr(lossreg, name))
    want, want_grads = call(REFERENCES[name])
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    for g, h in zip(got_grads, want_grads):
        if g is None or h is None:
            assert g is None or not g.any(), "lossreg has a gradient where torch has none"
            continue
        torch.testing.assert_close(g, h, rtol=1e-8, atol=1e-12, equal_nan=True)


LIBRARIES: dict[str, Callable[[np.ndarray], Any]] = {
    "numpy": np.asarray, "torch": torch.from_numpy, "jax": jnp.asarray, "array_api_strict": xs.asarray,
}


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("name", BUILTIN)
def test_complex_or_integer_scores_are_refused_with_a_lossreg_error(name: str, library: str) -> None:
    # Never the real part silently, never a truncated integer loss.
    inputs, make = _example(name), LIBRARIES[library]
    first = next(iter(inputs))
    # l1_loss and the triplet losses take complex scores, as torch's do (a real loss:
    # tests/test_user_hunt_complex_input.py)
    taken = ("l1_loss", "triplet_margin_loss", "triplet_margin_with_distance_loss")
    complex_scores = [] if name in taken else [inputs[first].astype(np.complex128)]
    for bad in (*complex_scores, np.round(inputs[first]).astype(np.int64)):
        arrays = [make(bad if k == first else v) for k, v in inputs.items()]
        for kernels in (True, False):
            with lossreg.use_kernels(kernels), pytest.raises(LossTypeError) as info:
                getattr(lossreg, name)(*arrays)
            assert str(info.value).startswith(f"{name}: argument '{first}'"), info.value


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("name", sorted({n for n, _, _ in ARRAY_OPTIONS}) + ["ctc_loss", "triplet_margin_loss"])
def test_no_loss_writes_into_its_inputs_or_options(name: str, library: str) -> None:
    inputs, make = _example(name), LIBRARIES[library]
    options = {o: v for n, o, v in ARRAY_OPTIONS if n == name}
    with jax.enable_x64(library == "jax"):  # float64, so that a rounding is not taken for a write
        arrays = [make(v.copy()) for v in inputs.values()]
        opts = {o: make(v.copy()) for o, v in options.items()}
    if library == "torch":
        for k, a in zip(inputs, arrays):
            a.requires_grad_(k in differentiable(name, inputs))
    for kernels in (True, False):
        with lossreg.use_kernels(kernels), jax.enable_x64(library == "jax"):
            value = getattr(lossreg, name)(*arrays, reduction="none", **opts)
        if library == "torch" and value.requires_grad:
            value.sum().backward()
    for (k, v), a in zip(inputs.items(), arrays):
        np.testing.assert_array_equal(_read(a), v, err_msg=f"{name} wrote into {k!r}")
    for o, v in options.items():
        np.testing.assert_array_equal(_read(opts[o]), v, err_msg=f"{name} wrote into option {o!r}")


# --- JAX -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize("name", BUILTIN)
def test_jax_half_precision_keeps_its_dtype_and_torchs_value(name: str, kernels: bool, dtype: str) -> None:
    half = {k: jnp.asarray(v, dtype) if v.dtype.kind == "f" else jnp.asarray(v) for k, v in _example(name).items()}
    exact = {k: np.asarray(v.astype(jnp.float32)) if v.dtype.kind in "fV" or str(v.dtype) == "bfloat16"
             else np.asarray(v) for k, v in half.items()}
    for reduction in REDUCTIONS:
        with lossreg.use_kernels(kernels):
            got = getattr(lossreg, name)(*half.values(), reduction=reduction)
        assert str(got.dtype) == dtype
        tol = 1e-2 if dtype == "bfloat16" else 2e-3
        np.testing.assert_allclose(np.asarray(got.astype(jnp.float32)), _torch_value(name, exact, reduction=reduction),
                                   rtol=tol, atol=tol)


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "binary_cross_entropy_with_logits", "kl_div",
                                  "poisson_nll_loss"])
def test_jax_weakly_typed_targets_promote_as_torch_promotes(name: str) -> None:
    # jnp.broadcast_to(jnp.asarray(0.5), shape) is a weakly typed float32 (x64 off, JAX's default):
    # JAX alone would give the float16 input's dtype; torch (and lossreg) promote float16 with
    # float32 to float32.
    x = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float16)
    with jax.enable_x64(False):  # whatever an earlier test in this process left
        target = jnp.broadcast_to(jnp.asarray(0.5), x.shape)
        assert target.weak_type
        got = getattr(lossreg, name)(jnp.asarray(x), target, reduction="none")
    assert str(got.dtype) == "float32"
    assert getattr(F, name)(torch.from_numpy(x), torch.full(x.shape, 0.5), reduction="none").dtype == torch.float32
    # The value: of the float16 input's exact values, in float32 (torch's mixed call rounds some
    # of its intermediates to float16).
    want = getattr(F, name)(torch.from_numpy(x.astype(np.float32)), torch.full(x.shape, 0.5), reduction="none")
    np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize("name", BUILTIN)
def test_jax_arrays_committed_to_a_device_give_a_result_committed_there(name: str, kernels: bool) -> None:
    device = jax.devices()[-1]
    inputs = _example(name)
    with jax.enable_x64(True):
        arrays = [jax.device_put(jnp.asarray(v), device) for v in inputs.values()]
        with lossreg.use_kernels(kernels):
            got = getattr(lossreg, name)(*arrays, reduction="none")
        assert got.committed and got.devices() == {device}
        _assert_value(got, _torch_value(name, inputs, reduction="none"))


@pytest.mark.parametrize(("name", "argument", "dtype"), [
    ("ctc_loss", "targets", "uint8"), ("ctc_loss", "input_lengths", "uint8"), ("ctc_loss", "targets", "int8"),
    ("multilabel_margin_loss", "target", "int8"), ("hinge_embedding_loss", "target", "int8"),
    ("cross_entropy", "target", "uint16"),
])
def test_jax_narrow_integer_arguments_beyond_class_indices(name: str, argument: str, dtype: str) -> None:
    inputs = _example(name)
    narrow = {k: (v.astype(dtype) if k == argument else v) for k, v in inputs.items()}
    want = _torch_value(name, inputs, reduction="none")
    with jax.enable_x64(True):
        got = getattr(lossreg, name)(*map(jnp.asarray, narrow.values()), reduction="none")
    _assert_value(got, want)
