"""Found by a differential fuzz of option combinations against torch.nn.functional (float64 the
reference): thresholds that a float32 array cannot hold, no classes at all, and class weights that
sum to 0 under the fused linear cross-entropy. Each gave NaN, a raw NumPy/torch error or a zero
gradient where torch gives a number, NaN, or its NaN gradient."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import lossreg

torch = pytest.importorskip("torch")
F = torch.nn.functional

BACKENDS = {"numpy": np.asarray, "torch": torch.as_tensor}
X, Y = np.array([0.5, -2.0, 3.0, 0.0], dtype=np.float32), np.array([0.1, 0.4, -1.0, 0.0], dtype=np.float32)


def _value(out):
    return np.asarray(out.detach() if hasattr(out, "detach") else out, dtype=np.float64)


@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("name", "option", "value"), [
    ("huber_loss", "delta", 1e39), ("huber_loss", "delta", 1e300),  # beyond float32: no linear part
    ("smooth_l1_loss", "beta", 1e-300), ("smooth_l1_loss", "beta", 1e-46),  # round to 0: L1
])
def test_a_threshold_that_float32_cannot_hold_is_taken_as_float32_rounds_it(name, option, value, backend, kernels):
    conv = BACKENDS[backend]
    want = getattr(F, name)(torch.tensor(X), torch.tensor(Y), reduction="none", **{option: value}).numpy()
    with lossreg.use_kernels(kernels):
        got = getattr(lossreg, name)(conv(X), conv(Y), reduction="none", **{option: value})
    np.testing.assert_allclose(_value(got), want, rtol=1e-6)


@pytest.mark.parametrize("backend", ["numpy", "torch without kernels"])
@pytest.mark.parametrize("beta", [3.5e38, 1e39])
def test_a_beta_beyond_float32_keeps_its_reciprocal_where_torchs_forward_gives_0_or_nan(beta, backend):
    """Smooth L1 at β past float32's largest number is quadratic throughout, 0.5 d² · (1/β), and
    1/β is still a float32 number: the exact value and gradient d/β (torch's gradient), where
    torch's forward gives 0.5 d² / ∞ = 0, and NaN once d² overflows."""
    d = np.array([1.0, 1e20, 3e38, -2.0], dtype=np.float32)
    x = torch.tensor(d, requires_grad=True)
    with lossreg.use_kernels(backend == "numpy"):
        got = lossreg.smooth_l1_loss(x if backend != "numpy" else d, np.zeros(4, np.float32) if backend == "numpy"
                                     else torch.zeros(4), reduction="none", beta=beta)
    exact = 0.5 * d.astype(np.float64) ** 2 / beta
    np.testing.assert_allclose(_value(got), exact, rtol=1e-6)
    assert _value(got)[2] > 1e37  # torch: NaN
    if backend != "numpy":
        (grad,) = torch.autograd.grad(got.sum(), x)
        np.testing.assert_allclose(grad.numpy(), d.astype(np.float64) / beta, rtol=1e-6)


@pytest.mark.parametrize("delta", [1e-39, 1e-45])
@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_subnormal_huber_delta_is_kept_as_torch_keeps_it(delta, backend, kernels):
    """Huber's δ multiplies the linear part: a δ below float32's smallest normal number is not
    0 (δ·|d| = 0.3 at d = 3e38, δ = 1e-39), value and gradient as torch's."""
    d = np.array([1.0, 1e20, 3e38, -2.0], dtype=np.float32)
    want = F.huber_loss(torch.tensor(d), torch.zeros(4), delta=delta, reduction="none").numpy()
    x = BACKENDS[backend](d)
    with lossreg.use_kernels(kernels):
        got = lossreg.huber_loss(x, BACKENDS[backend](np.zeros(4, np.float32)), delta=delta, reduction="none")
    np.testing.assert_allclose(_value(got), want, rtol=1e-6)
    assert _value(got)[2] > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("beta", [1e-39, 1e-41, 1e-45, 1e-50])
def test_a_subnormal_beta_is_kept_as_torch_keeps_it_gradient_included(beta, dtype):
    """Off torch's kernel a β below the smallest normal number is computed in units that make it
    normal: the gradient d/β where |d| < β (torch's), never L1's ±1, nor 0/0; in float64 each
    float32 β is a normal number; 1e-50 rounds to 0 in float32 and is L1 there, as in torch."""
    d = torch.tensor([0.0, 3e-39, -7e-40, -4e-42, 1e-30, -2.0, 3e38, float("inf"), float("nan")], dtype=dtype)
    x, mine = d.clone().requires_grad_(), d.clone().requires_grad_()
    want = F.smooth_l1_loss(x, torch.zeros_like(d), beta=beta, reduction="none")
    with lossreg.use_kernels(False):
        got = lossreg.smooth_l1_loss(mine, torch.zeros_like(d), beta=beta, reduction="none")
    atol = beta + 1.5e-45  # within β / 2 of torch's, and a float32 subnormal's rounding
    torch.testing.assert_close(got, want, rtol=1e-6, atol=atol, equal_nan=True)
    (g_want,), (g_got,) = torch.autograd.grad(want.sum(), x), torch.autograd.grad(got.sum(), mine)
    torch.testing.assert_close(g_got, g_want, rtol=1e-4, atol=0, equal_nan=True)  # β rounded to a subnormal
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow on the way
        on_numpy = lossreg.smooth_l1_loss(d.numpy(), np.zeros(9, d.numpy().dtype), beta=beta, reduction="none")
    np.testing.assert_allclose(_value(on_numpy), _value(want), rtol=1e-6, atol=atol)


def test_a_subnormal_beta_on_jax_float64_is_l1_not_nan():
    """XLA's CPU flushes subnormal numbers to 0: β = 1e-310 divided by would be 0 / 0."""
    jax = pytest.importorskip("jax")
    with jax.enable_x64(True):
        import jax.numpy as jnp

        got = lossreg.smooth_l1_loss(jnp.asarray(X, dtype=jnp.float64), jnp.asarray(Y, dtype=jnp.float64),
                                     reduction="none", beta=1e-310)
    want = F.smooth_l1_loss(torch.tensor(X, dtype=torch.float64), torch.tensor(Y, dtype=torch.float64),
                            reduction="none", beta=1e-310)
    np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-15)


NO_CLASSES = [
    ("nll_loss", np.full(2, -100), {}),
    ("cross_entropy", np.full(2, -100), {}),
    ("cross_entropy", np.full(2, -100), {"label_smoothing": 0.2}),
    ("cross_entropy", np.full(2, -100), {"weight": np.zeros(0)}),
    ("cross_entropy", np.zeros((2, 0)), {}),
    ("cross_entropy", np.zeros((2, 0)), {"label_smoothing": 0.2}),
]


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize(("name", "target", "options"), NO_CLASSES, ids=lambda v: str(v) if isinstance(v, dict) else None)
def test_no_classes_every_target_ignored_or_no_probabilities_give_torchs_answer(name, target, options, kernels,
                                                                               reduction):
    """(N, 0) scores, which torch takes where every target is ignored (or the probabilities are
    empty): NaN for a mean (0 / 0), 0 for a sum, NaN throughout with label smoothing (ε / C)."""
    x = np.zeros((2, 0))
    want = getattr(F, name)(torch.tensor(x), torch.tensor(target), reduction=reduction,
                            **{k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in options.items()})
    for conv in BACKENDS.values():
        with lossreg.use_kernels(kernels), warnings.catch_warnings():
            warnings.simplefilter("error")  # and without NumPy's division warnings
            got = getattr(lossreg, name)(conv(x), conv(target), reduction=reduction,
                                         **{k: conv(v) if isinstance(v, np.ndarray) else v for k, v in options.items()})
        np.testing.assert_array_equal(_value(got), want.numpy())


@pytest.mark.parametrize("kernels", [True, False])
def test_linear_cross_entropy_whose_kept_tokens_weigh_0_has_torchs_nan_gradient(kernels):
    """"mean" over tokens whose class weights are all 0: torch's value and gradients are NaN
    (its 0 / 0); every token ignored instead keeps torch's zero gradient."""
    h = torch.tensor([[0.1, -0.5], [0.3, 1.3]], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([[-1.8, 0.1], [0.7, 0.2]], dtype=torch.float64, requires_grad=True)
    weight = torch.tensor([0.0, 1.0], dtype=torch.float64)
    for target in (torch.tensor([0, 0]), torch.tensor([-100, -100])):
        want = torch.autograd.grad(F.linear_cross_entropy(h, w, target, weight=weight, ignore_index=-100), [h, w])
        with lossreg.use_kernels(kernels):
            got = torch.autograd.grad(lossreg.linear_cross_entropy(h, w, target, weight=weight, ignore_index=-100),
                                      [h, w])
        for g, r in zip(got, want):
            torch.testing.assert_close(g, r, equal_nan=True)
        assert math.isnan(want[0][0, 0]) == bool(target[0] == 0)


@pytest.mark.parametrize("kernels", [True, False])
def test_smooth_l1_with_beta_0_is_l1_loss_gradient_included(kernels):
    """torch's smooth L1 at β = 0 is its L1 loss: the gradient sign(d), 0 at d = 0 and at NaN."""
    d = torch.tensor([float("nan"), 1.0, 0.0, -float("inf"), -2.0])
    x, mine = d.clone().requires_grad_(), d.clone().requires_grad_()
    (want,) = torch.autograd.grad(F.smooth_l1_loss(x, torch.zeros(5), beta=0.0), x)
    with lossreg.use_kernels(kernels):
        (got,) = torch.autograd.grad(lossreg.smooth_l1_loss(mine, torch.zeros(5), beta=0.0), mine)
    assert got.tolist() == want.tolist() and want.tolist() == pytest.approx([0.0, 0.2, 0.0, -0.2, -0.2])
