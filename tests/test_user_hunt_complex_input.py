"""Complex input of L1Loss and the triplet losses, as torch's take it (README, "Errors and edge
cases", *Complex input*).

torch's ``L1Loss`` / ``F.l1_loss`` takes complex64 and complex128 input and target and gives the
real ``|x - t|``, reduced, in float32 or float64, with torch's complex gradient; its own module
tests (the ``L1Loss_no_reduce_complex`` entry) and its OpInfo (``nn.functional.l1_loss`` lists
complex dtypes) run it. lossreg refused every complex array. Now ``l1_loss`` takes them on every
library whose namespace has complex dtypes, in its one portable definition (``abs`` of a complex
array is real in the Array API standard), and the torch kernel hands them to torch's own. A
complex and a real array are taken together, promoted as torch promotes them. Refused, with a
LossTypeError naming the argument: complex weights (torch's loss is then complex), torch's
experimental complex32, and complex input of every other loss, those of torch's complex results
(PoissonNLLLoss, GaussianNLLLoss) included. The Keras losses refuse complex arrays: Keras's own
MeanAbsoluteError casts them to floats, dropping the imaginary parts.

torch's TripletMarginLoss and TripletMarginWithDistanceLoss take complex embeddings too (their
OpInfo lists complex dtypes), with a real loss: the p-norm of the moduli of a - p + eps. lossreg
refused them; it now computes that norm of |a - p + eps|, for every p, with torch's gradients.

The conformance cases hold real data only (JSON lists read as the run's floating dtype), so
complex input is checked here, on each library, against torch's answer.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import lossreg
from lossreg.errors import LossTypeError

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import lossreg.torch as LT  # noqa: E402

RNG = np.random.default_rng(2026)
X = RNG.normal(size=(3, 4)) + 1j * RNG.normal(size=(3, 4))
T = RNG.normal(size=(3, 4)) + 1j * RNG.normal(size=(3, 4))
T[0, 0] = X[0, 0]  # one zero difference: torch's gradient there is 0
W = RNG.random((3, 4))
REAL = {np.complex64: np.float32, np.complex128: np.float64}


def _libraries() -> dict[str, tuple[Callable[[np.ndarray], Any], Callable[[Any], np.ndarray]]]:
    """Each installed library whose namespace has complex dtypes: (make an array, read it back)."""
    libraries: dict[str, tuple[Callable[[np.ndarray], Any], Callable[[Any], np.ndarray]]] = {
        "numpy": (np.asarray, np.asarray), "torch": (torch.from_numpy, lambda a: a.detach().numpy())}
    if importlib.util.find_spec("jax"):
        import jax.numpy as jnp
        libraries["jax"] = (jnp.asarray, np.asarray)
    if importlib.util.find_spec("dask"):
        import dask.array as da
        libraries["dask"] = (lambda a: da.from_array(a, chunks=2), lambda a: np.asarray(a.compute()))
    if importlib.util.find_spec("array_api_strict"):
        import array_api_strict as xs
        libraries["array_api_strict"] = (xs.asarray, lambda a: np.asarray(a._array))
    return libraries


LIBRARIES = _libraries()


def _library(name: str, request: pytest.FixtureRequest) -> tuple[Callable[..., Any], Callable[..., np.ndarray]]:
    if name == "jax":
        request.getfixturevalue("jax_float64")  # complex128 (and float64) within this test
    return LIBRARIES[name]


def _torch_answer(x: np.ndarray, t: np.ndarray, weight: np.ndarray | None, reduction: str) -> Any:
    return F.l1_loss(torch.from_numpy(x), torch.from_numpy(t), reduction=reduction,
                     weight=None if weight is None else torch.from_numpy(weight))


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128], ids=["complex64", "complex128"])
@pytest.mark.parametrize("library", LIBRARIES)
def test_l1_loss_of_complex_input_and_target_is_torchs_real_answer_on_every_library(
        library: str, dtype: Any, reduction: str, weighted: bool, request: pytest.FixtureRequest) -> None:
    """The real |x - t|, reduced (a real weight per element, "mean" the weighted mean, as torch's),
    in the real dtype of the input's precision; torch's own numbers on torch tensors."""
    make, read = _library(library, request)
    x, t = X.astype(dtype), T.astype(dtype)
    w = W.astype(REAL[dtype]) if weighted else None
    want = _torch_answer(x, t, w, reduction)
    assert want.dtype == torch.from_numpy(np.zeros(0, REAL[dtype])).dtype
    forms = [functools.partial(lossreg.l1_loss, reduction=reduction, weight=None if w is None else make(w)),
             lossreg.L1Loss(reduction=reduction, weight=None if w is None else make(w))]
    for kernels in (True, False):
        for form in forms:
            with lossreg.use_kernels(kernels):
                got = form(make(x), make(t))
            assert str(got.dtype).rsplit(".", 1)[-1] == np.dtype(REAL[dtype]).name, (library, got.dtype)
            value = read(got)
            if library == "torch":
                np.testing.assert_array_equal(value, want.numpy())
            else:
                np.testing.assert_allclose(value, want.numpy(), rtol=2e-6 if dtype == np.complex64 else 1e-13)


def _torch_forms(reduction: str) -> list[Callable[[Any, Any], Any]]:
    return [functools.partial(lossreg.l1_loss, reduction=reduction), functools.partial(LT.l1_loss, reduction=reduction),
            LT.L1Loss(reduction=reduction), lossreg.L1Loss(reduction=reduction)]


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "portable"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
def test_torch_forms_give_torchs_value_gradients_and_second_derivatives(dtype: Any, reduction: str,
                                                                        kernels: bool) -> None:
    x = torch.from_numpy(X).to(dtype).requires_grad_()
    t = torch.from_numpy(T).to(dtype).requires_grad_()
    want = F.l1_loss(x, t, reduction=reduction)
    wanted = torch.autograd.grad(want.sum(), (x, t), create_graph=True)
    v = torch.randn_like(x)
    second = torch.autograd.grad(torch.real(wanted[0] * v).sum(), (x, t))
    for form in _torch_forms(reduction):
        with lossreg.use_kernels(kernels):
            got = form(x, t)
        assert got.dtype == want.dtype and torch.equal(got, want)
        grads = torch.autograd.grad(got.sum(), (x, t), create_graph=True)
        for g, h in zip(grads, wanted):
            assert torch.equal(g, h)
        for g, h in zip(torch.autograd.grad(torch.real(grads[0] * v).sum(), (x, t)), second):
            torch.testing.assert_close(g, h, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "portable"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_torchs_gradcheck_and_gradgradcheck_pass_on_complex_input(reduction: str, kernels: bool) -> None:
    """As torch's own tests check its complex L1Loss (forward mode too), at points away from the kink."""
    x = torch.from_numpy(X + 3).requires_grad_()
    t = torch.from_numpy(T).requires_grad_()

    def loss(a: Any, b: Any) -> Any:
        with lossreg.use_kernels(kernels):
            return lossreg.l1_loss(a, b, reduction=reduction)

    assert torch.autograd.gradcheck(loss, (x, t), check_forward_ad=True)
    assert torch.autograd.gradgradcheck(loss, (x, t))


def test_the_torch_kernel_hands_complex_pairs_to_torchs_own_l1_loss() -> None:
    """The kernel path (lossreg.kernels) is torch's ATen l1_loss, not a decline to the portable path."""
    from lossreg.kernels import torch as torch_kernels

    x, t = torch.from_numpy(X), torch.from_numpy(T)
    for reduction in ("mean", "sum", "none"):
        got = torch_kernels.l1_loss(x, t, reduction=reduction)
        assert got is not NotImplemented and torch.equal(got, F.l1_loss(x, t, reduction=reduction))
    # complex32, a mixed pair and a weight go to the portable path, which answers or refuses them
    assert torch_kernels.l1_loss(x.to(torch.complex32), t.to(torch.complex32)) is NotImplemented
    assert torch_kernels.l1_loss(x, t.real) is NotImplemented


def test_torchs_opinfo_complex_samples_give_torchs_value_and_gradients() -> None:
    """nn.functional.l1_loss's OpInfo lists complex dtypes; each of its samples in them (mixed
    complex and float64 pairs among them) gives torch's value, dtype and gradients."""
    pytest.importorskip("expecttest", reason="torch.testing._internal needs expecttest (the test extra)")
    from torch.testing._internal.common_methods_invocations import op_db

    (op,) = [op for op in op_db if op.name == "nn.functional.l1_loss"]
    dtypes = [d for d in (torch.complex64, torch.complex128) if d in op.supported_dtypes("cpu")]
    assert dtypes
    checked = 0
    for dtype in dtypes:
        for sample in op.sample_inputs("cpu", dtype, requires_grad=True):
            args = (sample.input, *sample.args)
            want = op.op(*args, **sample.kwargs)
            got = lossreg.l1_loss(*args, **sample.kwargs)
            assert got.dtype == want.dtype and torch.equal(got, want), sample
            leaves = [a for a in args if a.requires_grad]
            for g, h in zip(torch.autograd.grad(got.sum(), leaves), torch.autograd.grad(want.sum(), leaves)):
                assert g.dtype == h.dtype and torch.equal(g, h), sample
            checked += 1
    assert checked >= 16


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("complex_first", [True, False], ids=["complex-input", "complex-target"])
def test_a_complex_and_a_real_array_are_taken_together_as_torch_takes_them(complex_first: bool,
                                                                           reduction: str) -> None:
    """F.l1_loss(complex64, float64) is |x - t| of both as complex128: float64; the real array's
    gradient is real (the real part of the complex one), as torch's."""
    c = torch.from_numpy(X.astype(np.complex64)).requires_grad_()
    r = torch.from_numpy(T.real.copy()).requires_grad_()
    pair = (c, r) if complex_first else (r, c)
    want = F.l1_loss(*pair, reduction=reduction)
    got = lossreg.l1_loss(*pair, reduction=reduction)
    assert want.dtype == got.dtype == torch.float64 and torch.equal(got, want)
    for g, h in zip(torch.autograd.grad(got.sum(), pair), torch.autograd.grad(want.sum(), pair)):
        assert g.dtype == h.dtype and torch.equal(g, h)
    np.testing.assert_allclose(lossreg.l1_loss(*(a.detach().numpy() for a in pair), reduction=reduction),
                               want.detach().numpy(), rtol=1e-15)  # NumPy's |z| and torch's differ in the last bit


@pytest.mark.parametrize("library", LIBRARIES)
def test_an_empty_complex_batch_is_a_real_nan_mean_and_a_zero_sum(library: str,
                                                                  request: pytest.FixtureRequest) -> None:
    make, read = _library(library, request)
    e = np.zeros((0, 2), np.complex128)
    for reduction, want in (("mean", np.nan), ("sum", 0.0)):
        got = lossreg.l1_loss(make(e), make(e), reduction=reduction)
        assert str(got.dtype).endswith("float64")
        np.testing.assert_array_equal(read(got), want)
        np.testing.assert_array_equal(read(got), _torch_answer(e, e, None, reduction).numpy())
    assert read(lossreg.l1_loss(make(e), make(e), reduction="none")).shape == (0, 2)


def test_jax_gradients_are_the_conjugates_of_torchs() -> None:
    """JAX's gradient of a real function of complex numbers is ∂f/∂re - i ∂f/∂im, torch's the
    conjugate, ∂f/∂re + i ∂f/∂im: the same derivative. 0 at a zero difference, as torch's, and
    under jit."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    x, t = X.astype(np.complex64), T.astype(np.complex64)
    xt, tt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(t).requires_grad_()
    for reduction in ("mean", "sum"):
        want = torch.autograd.grad(F.l1_loss(xt, tt, reduction=reduction), (xt, tt))

        def loss(a: Any, b: Any, reduction: str = reduction) -> Any:
            return lossreg.l1_loss(a, b, reduction=reduction)

        for f in (loss, jax.jit(loss)):
            value, grads = jax.value_and_grad(f, argnums=(0, 1))(jnp.asarray(x), jnp.asarray(t))
            assert value.dtype == jnp.float32
            for g, h in zip(grads, want):
                np.testing.assert_allclose(np.conj(np.asarray(g)), h.numpy(), rtol=1e-5, atol=1e-7)
            assert np.asarray(grads[0])[0, 0] == 0


def test_complex_weights_and_complex32_are_refused_naming_the_argument() -> None:
    """torch's loss with a complex weight is complex (not a loss to minimise): the weight is a
    LossTypeError as for real input. torch's complex32, experimental there, is refused: lossreg
    computes half precision in float32, where a complex number would lose its imaginary part."""
    x, t = torch.from_numpy(X), torch.from_numpy(T)
    assert F.l1_loss(x, t, weight=torch.ones(3, 4, dtype=torch.complex128)).is_complex()
    with pytest.raises(LossTypeError, match=r"^l1_loss: argument 'weight' expected a real floating-point array"):
        lossreg.l1_loss(x, t, weight=torch.ones(3, 4, dtype=torch.complex128))
    with pytest.raises(LossTypeError, match=r"^l1_loss: argument 'weight' expected a real floating-point array"):
        lossreg.l1_loss(X, T, weight=np.ones((3, 4), np.complex128))
    half = x.to(torch.complex32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's "ComplexHalf support is experimental"
        for args, name in (((half, half), "input"), ((x, t.to(torch.complex32)), "target")):
            with pytest.raises(LossTypeError, match=rf"^l1_loss: argument '{name}' expected a real floating-point "
                                                    r"array, or a complex64 or complex128 one, got .*complex32"):
                lossreg.l1_loss(*args)
    with pytest.raises(LossTypeError, match=r"^l1_loss: argument 'target' expected a real floating-point array, "
                                            r"or a complex64 or complex128 one, got .*int64"):
        lossreg.l1_loss(X, np.ones((3, 4), np.int64))


@pytest.mark.parametrize(("name", "arrays"), [
    ("mse_loss", lambda c: (c, c)),
    ("smooth_l1_loss", lambda c: (c, c)),
    ("huber_loss", lambda c: (c, c)),
    ("margin_ranking_loss", lambda c: (c[0], c[1], torch.ones(4))),
    ("cosine_embedding_loss", lambda c: (c, c, torch.ones(3))),
    # torch 2.13's CPU takes these, with complex results (nothing to minimise)
    ("poisson_nll_loss", lambda c: (c, c)),
    ("gaussian_nll_loss", lambda c: (c, c, torch.ones(3, 4, dtype=torch.float64))),
])
def test_every_other_loss_still_refuses_complex_input(name: str, arrays: Callable[[Any], tuple[Any, ...]]) -> None:
    c = torch.from_numpy(X)
    with pytest.raises(LossTypeError, match=r"argument '\w+' expected a real floating-point array, got"):
        getattr(lossreg, name)(*arrays(c))
    with pytest.raises(LossTypeError, match=r"expected a real floating-point array, got"):
        getattr(lossreg, name)(*(a.numpy() for a in arrays(c)))


# --- TripletMarginLoss and TripletMarginWithDistanceLoss ---------------------------------------
# torch's pairwise_distance of complex embeddings is the p-norm of the moduli of x1 - x2 + eps
# (eps added to the real part): a real distance, and a real loss. lossreg's is the same norm of
# |x1 - x2 + eps|, whose abs carries the gradient to the complex numbers as torch's does.

A, P, N = (RNG.normal(size=(5, 4)) + 1j * RNG.normal(size=(5, 4)) for _ in range(3))
P[0] = A[0]  # a zero distance (but for eps) ...
N[1, 2] = A[1, 2]  # ... and a zero difference in one feature


def _close(got: Any, want: Any, dtype: Any) -> None:
    """Equal dtypes, and values within rounding of ``dtype`` (or of their own single precision)."""
    assert got.dtype == want.dtype
    double = dtype == torch.complex128 and got.dtype in (torch.float64, torch.complex128)
    tol = {"rtol": 1e-12, "atol": 1e-14} if double else {"rtol": 2e-6, "atol": 1e-6}
    torch.testing.assert_close(got, want, equal_nan=True, **tol)


@pytest.mark.parametrize("swap", [False, True], ids=["", "swap"])
@pytest.mark.parametrize("p", [2.0, 1.0, 0.0, 3.0, 0.5, -1.0, float("inf"), float("-inf")])
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
def test_triplet_margin_loss_of_complex_embeddings_is_torchs_real_loss_with_its_gradients(
        dtype: Any, p: float, swap: bool) -> None:
    a, pos, neg = (torch.from_numpy(v).to(dtype).requires_grad_() for v in (A, P, N))
    for reduction in ("mean", "none"):
        want = F.triplet_margin_loss(a, pos, neg, p=p, swap=swap, reduction=reduction)
        wanted = torch.autograd.grad(want.sum(), (a, pos, neg), allow_unused=True)
        for kernels in (True, False):
            with lossreg.use_kernels(kernels):
                got = lossreg.triplet_margin_loss(a, pos, neg, p=p, swap=swap, reduction=reduction)
            _close(got, want, dtype)
            if not got.requires_grad:  # p = 0: a count, whose gradient is 0 (torch's is None)
                assert all(w is None or not w.any() for w in wanted)
                continue
            for g, w in zip(torch.autograd.grad(got.sum(), (a, pos, neg), allow_unused=True), wanted):
                _close(torch.zeros_like(a) if g is None else g, torch.zeros_like(a) if w is None else w, dtype)


@pytest.mark.parametrize("swap", [False, True], ids=["", "swap"])
def test_triplet_margin_with_distance_loss_of_complex_embeddings_is_torchs(swap: bool) -> None:
    """The default distance (pairwise_distance) and a caller's real one; a complex anchor with
    real positives and negatives is promoted as torch promotes it (their gradients real)."""
    a, pos, neg = (torch.from_numpy(v).requires_grad_() for v in (A, P, N))
    real = torch.from_numpy(P.real.astype(np.float32)).requires_grad_()

    def manhattan(x: Any, y: Any) -> Any:
        return (x - y).abs().sum(-1)

    for arrays, options in (((a, pos, neg), {}), ((a, pos, neg), {"distance_function": manhattan}),
                            ((a, real, neg), {})):
        want = F.triplet_margin_with_distance_loss(*arrays, swap=swap, **options)
        got = lossreg.triplet_margin_with_distance_loss(*arrays, swap=swap, **options)
        _close(got, want, torch.complex128)
        for g, w in zip(torch.autograd.grad(got, arrays), torch.autograd.grad(want, arrays)):
            assert g.dtype == w.dtype
            _close(g, w, torch.complex128)
        got = lossreg.triplet_margin_loss(*arrays, swap=swap) if not options else None
        if got is not None:
            _close(got, F.triplet_margin_loss(*arrays, swap=swap), torch.complex128)


@pytest.mark.parametrize("library", LIBRARIES)
def test_triplet_losses_of_complex_embeddings_are_torchs_on_every_library(library: str,
                                                                         request: pytest.FixtureRequest) -> None:
    make, read = _library(library, request)
    arrays = [torch.from_numpy(v) for v in (A, P, N)]
    for p, swap in ((2.0, False), (1.0, True), (float("inf"), False)):
        want = F.triplet_margin_loss(*arrays, p=p, swap=swap, reduction="none")
        got = lossreg.triplet_margin_loss(*(make(v) for v in (A, P, N)), p=p, swap=swap, reduction="none")
        assert str(got.dtype).endswith("float64")
        np.testing.assert_allclose(read(got), want.numpy(), rtol=1e-12, atol=1e-14)
    got = lossreg.triplet_margin_with_distance_loss(*(make(v) for v in (A, P, N)))
    np.testing.assert_allclose(read(got), F.triplet_margin_with_distance_loss(*arrays).numpy(), rtol=1e-12)
    with pytest.raises(LossTypeError, match=r"^triplet_margin_loss: argument 'anchor' expected a real floating-point "
                                            r"array, or a complex64 or complex128 one, got .*int64"):
        lossreg.triplet_margin_loss(make(np.ones((5, 4), np.int64)), make(P), make(N))


@pytest.mark.parametrize("name", ["triplet_margin_loss", "triplet_margin_with_distance_loss"])
def test_torchs_opinfo_complex_samples_of_the_triplet_losses_give_torchs_value_and_gradients(name: str) -> None:
    pytest.importorskip("expecttest", reason="torch.testing._internal needs expecttest (the test extra)")
    from torch.testing._internal.common_methods_invocations import op_db

    (op,) = [op for op in op_db if op.name == f"nn.functional.{name}"]
    checked = 0
    for dtype in (torch.complex64, torch.complex128):
        assert dtype in op.supported_dtypes("cpu")
        for sample in op.sample_inputs("cpu", dtype, requires_grad=True):
            args = (sample.input, *sample.args)
            want, got = op.op(*args, **sample.kwargs), getattr(lossreg, name)(*args, **sample.kwargs)
            _close(got, want, dtype)
            leaves = [a for a in args if a.requires_grad]
            for g, w in zip(torch.autograd.grad(got.sum(), leaves, allow_unused=True),
                            torch.autograd.grad(want.sum(), leaves, allow_unused=True)):
                _close(torch.zeros_like(leaves[0]) if g is None else g, torch.zeros_like(leaves[0]) if w is None else w,
                       dtype)
            checked += 1
    assert checked >= 8


def test_jax_triplet_gradients_are_the_conjugates_of_torchs_under_jit_too() -> None:
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    a = torch.from_numpy(A.astype(np.complex64)).requires_grad_()
    want = torch.autograd.grad(F.triplet_margin_loss(a, *(torch.from_numpy(v.astype(np.complex64)) for v in (P, N))), a)
    for f in (lossreg.triplet_margin_loss, jax.jit(lossreg.triplet_margin_loss)):
        g = jax.grad(lambda x, f=f: f(x, jnp.asarray(P, jnp.complex64), jnp.asarray(N, jnp.complex64)))(
            jnp.asarray(A, jnp.complex64))
        np.testing.assert_allclose(np.conj(np.asarray(g)), want[0].numpy(), rtol=2e-5, atol=1e-6)


KERAS_CHECK = """
import numpy as np, keras, lossreg, lossreg.keras as lk
x = np.array([[0.5 + 1j, -1.0], [2.0, 1j]], "complex64")
t = np.array([[1 + 2j, 1j], [2 - 1j, 3j]], "complex64")
assert abs(float(lossreg.l1_loss(x, t)) - float(np.abs(x - t).mean())) < 1e-6  # the functional form takes them
assert abs(float(keras.losses.MeanAbsoluteError()(t, x)) - 0.375) < 1e-6  # Keras's own: the real parts only
for y_true, y_pred, name in ((t, x.real, "target"), (t.real, x, "input")):
    try:
        lk.L1Loss()(y_true, y_pred)
    except lossreg.LossTypeError as error:
        assert str(error).startswith(f"l1_loss: argument '{name}' expected real numbers"), error
    else:
        raise AssertionError("a complex array was taken")
print("ok")
"""


@pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="the keras extra is not installed")
@pytest.mark.parametrize("keras_backend", ["jax", "torch"])
def test_keras_l1_loss_refuses_complex_arrays_which_keras_own_loss_casts_to_floats(keras_backend: str) -> None:
    """Complex numbers are not a Keras thing: its MeanAbsoluteError casts them to floats, silently
    dropping the imaginary parts; lossreg.keras.L1Loss says it wants real numbers."""
    if importlib.util.find_spec(keras_backend) is None:
        pytest.skip(f"{keras_backend} is not installed")
    env = {**os.environ, "KERAS_BACKEND": keras_backend}
    done = subprocess.run([sys.executable, "-c", KERAS_CHECK], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stdout + done.stderr[-4000:]
