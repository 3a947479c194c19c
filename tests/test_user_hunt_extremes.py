"""User-style hunt: every built-in loss at the numerical edges, against torch.nn.functional.

A numerically careful engineer's checks beyond tests/test_extremes.py, test_precision.py and
test_mixed_dtypes.py: gradients (not only values) where the edge is a kink, a clamp or a tie;
the same edges on JAX, NumPy and array-api-strict; gradient accuracy of the branch-free Huber
form where the residual is small against δ; half precision on JAX over a million elements;
float32 logits at ±3e38; identical points and zero vectors in the embedding losses.

torch's answer (value, and gradient of the summed loss) is computed in each test; each backend
must give it, in float64 to rtol 1e-6, in lower precisions to a few of the dtype's epsilons.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lossreg

jax = pytest.importorskip("jax")
jnp = jax.numpy

# NumPy and array-api-strict warn where float32 overflows to ±inf, as intended at these edges
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")


# --- helpers ---------------------------------------------------------------------------------------


def _torch(fn, inputs: dict, options: dict, dtype: torch.dtype, grad: tuple[str, ...]):
    """``fn``'s value and the gradients of its sum for the arguments in ``grad``, on torch."""
    ins = {k: torch.tensor(np.asarray(v, dtype="float64")).to(dtype).requires_grad_(k in grad)
           if np.asarray(v).dtype.kind == "f" else torch.tensor(v) for k, v in inputs.items()}
    opts = {k: torch.tensor(v).to(dtype) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = fn(*ins.values(), **opts)
    grads = torch.autograd.grad(value.sum(), [ins[k] for k in grad]) if grad else ()
    return value.detach().double().numpy(), [g.double().numpy() for g in grads]


def _jax(name: str, inputs: dict, options: dict, dtype: str, grad: tuple[str, ...]):
    """lossreg's value on JAX arrays of ``dtype``, and the gradients of its sum (jax.grad)."""
    keys = list(inputs)
    args = [jnp.asarray(np.asarray(v, dtype="float64")).astype(dtype) if np.asarray(v).dtype.kind == "f"
            else jnp.asarray(v) for v in inputs.values()]
    opts = {k: jnp.asarray(v).astype(dtype) if isinstance(v, np.ndarray) else v for k, v in options.items()}

    def total(*a):
        return getattr(lossreg, name)(*a, **opts).sum()

    value = getattr(lossreg, name)(*args, **opts)
    grads = jax.grad(total, argnums=tuple(keys.index(k) for k in grad))(*args) if grad else ()
    return value, [np.asarray(g, dtype="float64") for g in grads]


def _close(got, want, what: str, rtol: float, atol: float = 0.0) -> None:
    np.testing.assert_allclose(np.asarray(got, dtype="float64"), want, rtol=rtol, atol=atol, equal_nan=True,
                               err_msg=what)


# --- Huber and smooth L1: gradient of a small residual against a large δ -----------------------------

# (δ, residuals): residuals far inside the quadratic part, where the gradient is the residual
# itself (Huber) or residual / β (smooth L1). The default δ = 1 with a residual of 1e-5 is an
# ordinary late-training regression step.
SMALL_RESIDUALS = [(1.0, [1e-5, -3e-5, 2.5e-4]), (100.0, [0.01, -0.02, 0.3]), (1e4, [1e-3, -2e-3, 0.5])]


@pytest.mark.parametrize(("delta", "residuals"), SMALL_RESIDUALS)
@pytest.mark.parametrize("name", ["huber_loss", "smooth_l1_loss"])
def test_huber_gradient_of_a_small_residual_is_torchs_on_jax_float32(name: str, delta: float,
                                                                    residuals: list[float]) -> None:
    """The gradient inside the quadratic part is d (Huber) or d / β (smooth L1), exact to
    float32 rounding; it must not be δ + (d - δ), which loses d's digits to δ's (at δ = 1e4,
    d = 1e-3 that gave 0.00195 for 0.001, and the same for 2e-3)."""
    option = "delta" if name == "huber_loss" else "beta"
    inputs = {"input": np.array(residuals), "target": np.zeros(len(residuals))}
    options = {option: delta, "reduction": "sum"}
    want, (g_want,) = _torch(getattr(F, name), inputs, options, torch.float32, ("input",))
    got, (g_got,) = _jax(name, inputs, options, "float32", ("input",))
    _close(got, want, f"{name} value", rtol=4 * 2**-23)
    _close(g_got, g_want, f"{name} gradient", rtol=4 * 2**-23)


@pytest.mark.parametrize(("delta", "residuals"), SMALL_RESIDUALS + [(1e8, [1e-9, -2e-9, 3.0])])
@pytest.mark.parametrize("name", ["huber_loss", "smooth_l1_loss"])
def test_huber_gradient_of_a_small_residual_is_torchs_portable_float64(name: str, delta: float,
                                                                      residuals: list[float]) -> None:
    """The portable definition (torch with kernels off, and every array library) in float64."""
    option = "delta" if name == "huber_loss" else "beta"
    inputs = {"input": np.array(residuals), "target": np.zeros(len(residuals))}
    options = {option: delta, "reduction": "sum"}
    want, g_want = _torch(getattr(F, name), inputs, options, torch.float64, ("input", "target"))
    got, g_got = _torch(lossreg.spec(name).function, inputs, options, torch.float64, ("input", "target"))
    _close(got, want, f"{name} value", rtol=1e-12)
    for g, w, arg in zip(g_got, g_want, ("input", "target")):
        _close(g, w, f"{name} gradient of {arg}", rtol=1e-12)


# --- one edge, every backend: torch (default path), JAX float64 with gradients, NumPy, array-api-strict


def _everywhere(name: str, inputs: dict, options: dict, dtype: str = "float64", rtol: float = 1e-6) -> None:
    """lossreg gives torch's value on torch, JAX, NumPy and array-api-strict arrays of ``dtype``,
    and torch's gradients (NaN and infinities included) on torch and under ``jax.grad``."""
    import array_api_strict as xps

    grad = tuple(k for k in lossreg.spec(name).differentiable
                 if k in inputs and np.asarray(inputs[k]).dtype.kind == "f")
    tdt = getattr(torch, dtype)
    want, g_want = _torch(getattr(F, name), inputs, options, tdt, grad)
    atol = 1e-300 if dtype == "float64" else 1e-30
    got, g_got = _torch(getattr(lossreg, name), inputs, options, tdt, grad)
    _close(got, want, f"{name} on torch", rtol, atol)
    for g, w, arg in zip(g_got, g_want, grad):
        _close(g, w, f"{name} on torch: gradient of {arg}", rtol, atol)
    with jax.enable_x64(dtype == "float64"):
        got, g_got = _jax(name, inputs, options, dtype, grad)
        assert str(got.dtype) == dtype
        _close(got, want, f"{name} on JAX", rtol, atol)
        for g, w, arg in zip(g_got, g_want, grad):
            _close(g, w, f"{name} on JAX: gradient of {arg}", rtol, atol)
    for lib, convert in (("NumPy", np.asarray), ("array-api-strict", xps.asarray)):
        args = [convert(np.asarray(v, dtype=dtype)) if np.asarray(v).dtype.kind == "f" else convert(np.asarray(v))
                for v in inputs.values()]
        opts = {k: convert(v.astype(dtype)) if isinstance(v, np.ndarray) else v for k, v in options.items()}
        got = getattr(lossreg, name)(*args, **opts)
        assert str(got.dtype).endswith(dtype), f"{name} on {lib}: {got.dtype}"
        _close(np.asarray(got), want, f"{name} on {lib}", rtol, atol)


KINKS = {
    # exactly at δ / β, and at 0, where torch's subgradient is the convention
    "huber at ±delta": ("huber_loss", {"input": np.array([0.0, 1.0, -1.0, 2.0, -2.0, 0.5]), "target": np.zeros(6)},
                        {"delta": 1.0, "reduction": "none"}),
    "huber at 2 delta": ("huber_loss", {"input": np.array([0.0, 1.0, -1.0, 2.0, -2.0, 0.5]), "target": np.zeros(6)},
                         {"delta": 2.0, "reduction": "sum"}),
    "smooth_l1 at ±beta": ("smooth_l1_loss", {"input": np.array([0.0, 1.0, -1.0, 2.0, -2.0, 0.5]),
                                              "target": np.zeros(6)}, {"beta": 2.0, "reduction": "none"}),
    "smooth_l1 beta 0": ("smooth_l1_loss", {"input": np.array([0.0, 1.0, -1.0]), "target": np.zeros(3)},
                         {"beta": 0.0, "reduction": "sum"}),
    "l1 at 0": ("l1_loss", {"input": np.array([0.0, 1.0, -1.0]), "target": np.array([0.0, 1.0, 0.0])},
                {"reduction": "sum"}),
    "margin_ranking at the margin": ("margin_ranking_loss", {"input1": np.array([1.0, 0.0, 2.0, 0.5]),
                                                             "input2": np.array([0.0, 1.0, 1.0, 0.5]),
                                                             "target": np.array([1.0, -1.0, 1.0, 1.0])},
                                     {"margin": 1.0, "reduction": "none"}),
    "hinge_embedding at the margin": ("hinge_embedding_loss", {"input": np.array([1.0, 0.0, 2.0, 0.5, 1.0]),
                                                               "target": np.array([-1.0, -1.0, -1.0, 1.0, 1.0])},
                                      {"margin": 1.0, "reduction": "none"}),
    "multi_margin at the margin": ("multi_margin_loss", {"input": np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 2.0],
                                                                           [0.5, 0.5, -0.5]]),
                                                         "target": np.array([0, 1, 2])}, {"reduction": "none"}),
    "multi_margin p=2 at the margin": ("multi_margin_loss", {"input": np.array([[1.0, 0.0, 0.0], [0.5, 0.5, -0.5]]),
                                                             "target": np.array([0, 2])},
                                       {"p": 2, "weight": np.array([2.0, 1.0, 0.5]), "reduction": "sum"}),
    "multilabel_margin at the margin": ("multilabel_margin_loss", {"input": np.array([[1.0, 0.0, 0.0],
                                                                                     [0.0, 1.0, 2.0]]),
                                                                   "target": np.array([[0, -1, 0], [1, 2, -1]])},
                                        {"reduction": "none"}),
    "cosine_embedding at the margin": ("cosine_embedding_loss", {"input1": np.array([[1.0, 0.0], [3.0, 4.0]]),
                                                                 "input2": np.array([[0.0, 1.0], [3.0, 4.0]]),
                                                                 "target": np.array([-1.0, -1.0])},
                                       {"margin": 0.0, "reduction": "none"}),
}


@pytest.mark.parametrize("case", list(KINKS))
def test_exactly_at_a_kink_every_backend_takes_torchs_subgradient(case: str) -> None:
    _everywhere(*KINKS[case])


INF = np.inf
NON_FINITE = {
    "cross_entropy: every logit -inf but the target's": (
        "cross_entropy", {"input": np.array([[-INF, 2.0, -INF], [0.0, -INF, -INF], [1.0, 2.0, 3.0]]),
                          "target": np.array([1, 0, 2])}, {"reduction": "mean", "weight": np.array([1.0, 2.0, 3.0])}),
    "cross_entropy: a row entirely -inf": (
        "cross_entropy", {"input": np.array([[-INF, -INF, -INF], [0.0, 1.0, 2.0]]), "target": np.array([1, 0])},
        {"reduction": "none"}),
    "cross_entropy: +inf and NaN logits in ignored rows": (
        "cross_entropy", {"input": np.array([[INF, 0.0, 1.0], [np.nan, 1.0, 2.0], [0.5, 1.0, 2.0]]),
                          "target": np.array([-100, -100, 1])}, {"reduction": "mean", "label_smoothing": 0.2}),
    "nll_loss: +inf and NaN in ignored rows, class weights": (
        "nll_loss", {"input": np.array([[INF, 0.0, 1.0], [np.nan, 1.0, 2.0], [0.5, 1.0, 2.0]]),
                     "target": np.array([-100, -100, 1])}, {"reduction": "mean", "weight": np.array([1.0, 2.0, 3.0])}),
    "cross_entropy: -inf target logit of a zero-weight class": (
        "cross_entropy", {"input": np.array([[-INF, 0.0, 1.0], [0.5, 1.0, 2.0]]), "target": np.array([0, 1])},
        {"reduction": "mean", "weight": np.array([0.0, 1.0, 1.0])}),
    "kl_div: log_target -inf": (
        "kl_div", {"input": np.log(np.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]])),
                   "target": np.array([[-INF, np.log(0.4), np.log(0.6)], [0.0, -INF, -INF]])},
        {"reduction": "batchmean", "log_target": True}),
    "kl_div: -inf log-probability where the target is 0": (
        "kl_div", {"input": np.array([[-INF, np.log(0.4), np.log(0.6)]]), "target": np.array([[0.0, 0.4, 0.6]])},
        {"reduction": "sum"}),
    "binary_cross_entropy_with_logits: non-finite logits of weight 0": (
        "binary_cross_entropy_with_logits", {"input": np.array([INF, -INF, np.nan, 1.0]),
                                             "target": np.array([0.0, 1.0, 1.0, 1.0])},
        {"reduction": "none", "weight": np.array([0.0, 0.0, 0.0, 1.0])}),
    "poisson_nll_loss: rate 0 without log_input": (
        "poisson_nll_loss", {"input": np.array([0.0, 0.0, 1e-300, 2.0]), "target": np.array([0.0, 3.0, 1.0, 0.0])},
        {"log_input": False, "full": True, "reduction": "none"}),
    "gaussian_nll_loss: var 0, below eps and at eps": (
        "gaussian_nll_loss", {"input": np.array([0.0, 1.0, 2.0, 3.0]), "target": np.array([0.0, 1.5, 2.0, 1.0]),
                              "var": np.array([1e-6, 0.0, 1e-7, 2e-6])}, {"reduction": "none", "full": True}),
    "triplet_margin_loss: identical points": (
        "triplet_margin_loss", {"anchor": np.array([[1.0, 2.0], [0.0, 0.0]]), "positive": np.array([[1.0, 2.0], [0.0, 0.0]]),
                                "negative": np.array([[1.0, 2.0], [0.0, 0.0]])}, {"reduction": "none", "swap": True}),
    "triplet_margin_loss: identical points, eps 0, p 1": (
        "triplet_margin_loss", {"anchor": np.array([[1.0, 2.0], [0.0, 0.0]]), "positive": np.array([[1.0, 2.0], [0.0, 0.0]]),
                                "negative": np.array([[2.0, 2.0], [0.0, 0.0]])}, {"reduction": "sum", "eps": 0.0, "p": 1}),
    "triplet_margin_with_distance_loss: identical points": (
        "triplet_margin_with_distance_loss", {"anchor": np.array([[1.0, 2.0], [0.0, 0.0]]),
                                              "positive": np.array([[1.0, 2.0], [0.0, 0.0]]),
                                              "negative": np.array([[1.0, 2.0], [0.0, 0.0]])}, {"reduction": "none"}),
    "cosine_embedding_loss: zero vectors": (
        "cosine_embedding_loss", {"input1": np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]]),
                                  "input2": np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]),
                                  "target": np.array([-1.0, 1.0, -1.0])}, {"reduction": "none", "margin": -0.5}),
    "ctc_loss: impossible alignments with zero_infinity": (
        "ctc_loss", {"log_probs": np.log(np.full((2, 3, 3), 1 / 3)), "targets": np.array([[1, 1, 2], [1, 1, 0], [2, 2, 0]]),
                     "input_lengths": np.array([2, 2, 1]), "target_lengths": np.array([3, 2, 1])},
        {"reduction": "mean", "zero_infinity": True}),
}


@pytest.mark.parametrize("case", list(NON_FINITE))
def test_non_finite_and_degenerate_inputs_every_backend_gives_torchs_value_and_gradient(case: str) -> None:
    _everywhere(*NON_FINITE[case])


F32_MAX = 3e38  # float32 holds it; exp, squares and sums of it do not
HUGE_LOGITS = {
    "binary_cross_entropy_with_logits": (
        "binary_cross_entropy_with_logits", {"input": np.array([1e4, -1e4, F32_MAX, -F32_MAX, 0.0]),
                                             "target": np.array([0.0, 1.0, 0.0, 1.0, 0.5])},
        {"reduction": "none", "pos_weight": np.full(5, 3.0)}),
    "multilabel_soft_margin_loss": (
        "multilabel_soft_margin_loss", {"input": np.array([[1e4, -1e4, F32_MAX, -F32_MAX, 0.0]]),
                                        "target": np.array([[0.0, 1.0, 0.0, 1.0, 1.0]])}, {"reduction": "none"}),
    "cross_entropy class indices": (
        "cross_entropy", {"input": np.array([[F32_MAX, -F32_MAX, 0.0], [1e4, -1e4, 0.0], [F32_MAX, F32_MAX, 0.0]]),
                          "target": np.array([1, 2, 0])}, {"reduction": "none", "label_smoothing": 0.1}),
    "cross_entropy probabilities": (
        "cross_entropy", {"input": np.array([[F32_MAX, -F32_MAX, 0.0], [1e4, -1e4, 0.0]]),
                          "target": np.array([[0.0, 1.0, 0.0], [0.2, 0.3, 0.5]])}, {"reduction": "none"}),
    "poisson_nll_loss": ("poisson_nll_loss", {"input": np.array([100.0, 1e4, -1e4]), "target": np.array([1.0, 2.0, 3.0])},
                         {"reduction": "none", "full": True}),
    "huber_loss": ("huber_loss", {"input": np.array([F32_MAX, 1e20, 1e-20]), "target": np.array([-F32_MAX, 0.0, 0.0])},
                   {"reduction": "none"}),
}


@pytest.mark.parametrize("case", list(HUGE_LOGITS))
def test_float32_inputs_near_the_largest_float32_give_torchs_answer(case: str) -> None:
    """Logits of ±1e4 and ±3e38 in float32: finite limits, infinities and NaN exactly as torch's."""
    name, inputs, options = HUGE_LOGITS[case]
    _everywhere(name, inputs, options, dtype="float32", rtol=4 * 2**-23)


# --- half precision on JAX: a mean over a million elements ------------------------------------------


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "binary_cross_entropy_with_logits"])
def test_jax_half_precision_mean_over_a_million_elements_is_as_accurate_as_torchs(name: str, dtype: str) -> None:
    """The sum of 1e6 half elements is accumulated in float32 (in the half dtype itself it would
    stall once the partial sum's ulp exceeds the terms): the result is the half dtype's, and
    within half an ulp of the float64 answer at the rounded inputs, as torch's CPU result is."""
    rng = np.random.default_rng(0)
    n = 1_000_000
    x = torch.tensor(rng.normal(size=n) + 3.0).to(getattr(torch, dtype))
    t = torch.tensor(rng.normal(size=n) if name != "binary_cross_entropy_with_logits"
                     else rng.uniform(size=n) > 0.5).to(x.dtype)
    fn = getattr(F, name)
    exact = fn(x.double(), t.double()).item()
    theirs = fn(x, t).item()
    ours = getattr(lossreg, name)(jnp.asarray(x.float().numpy()).astype(dtype), jnp.asarray(t.float().numpy()).astype(dtype))
    assert str(ours.dtype) == dtype
    half_ulp = 0.5 * torch.finfo(x.dtype).eps * 2.0 ** np.floor(np.log2(abs(exact)))
    assert abs(float(ours) - exact) <= max(abs(theirs - exact), half_ulp)


# --- BCE with logits: the gradient of a confident negative -------------------------------------------


def test_bce_with_logits_gradient_of_a_confident_negative_is_torchs_on_jax_float32() -> None:
    """σ(x) for y = 0 and x << 0, to the last digit, as torch's backward σ(x) - y gives it: summed as
    1 - (1 - σ(x)) it would be lost to rounding (x = -20: 0 for 2.06e-9), with pos_weight too."""
    inputs = {"input": np.array([-15.0, -20.0, -30.0]), "target": np.zeros(3)}
    options = {"reduction": "sum"}
    _, (g_want,) = _torch(F.binary_cross_entropy_with_logits, inputs, options, torch.float32, ("input",))
    _, (g_got,) = _jax("binary_cross_entropy_with_logits", inputs, options, "float32", ("input",))
    _close(g_got, g_want, "gradient", rtol=4 * 2**-23)
    options = {"reduction": "sum", "pos_weight": np.array([3.0])}
    _, (g_want,) = _torch(F.binary_cross_entropy_with_logits, inputs, options, torch.float32, ("input",))
    _, (g_got,) = _jax("binary_cross_entropy_with_logits", inputs, options, "float32", ("input",))
    _close(g_got, g_want, "gradient with pos_weight", rtol=4 * 2**-23)


# --- half precision on torch at the edges: computed in float32, returned in the half dtype -------------

HALF_EDGES = {
    # torch's own float16 kernels overflow or lose eps here (1e-12 and 1e6 are not float16 numbers):
    # NaN for cosine similarity of a zero vector, NaN gradients for a variance clamped at eps,
    # inf for a mean of five terms whose sum passes 65504. lossreg computes these in float32.
    "cosine_embedding_loss zero vectors": (
        "cosine_embedding_loss", {"input1": np.array([[0.0, 0.0], [0.0, 0.0]]), "input2": np.array([[0.0, 0.0], [1.0, 0.0]]),
                                  "target": np.array([-1.0, 1.0])}, {"reduction": "none"}),
    "gaussian_nll_loss var at eps": (
        "gaussian_nll_loss", {"input": np.array([0.0, 1.0, 2.0]), "target": np.array([0.0, 1.0, 2.5]),
                              "var": np.array([1e-6, 0.0, 1.0])}, {"reduction": "none"}),
    "multilabel_soft_margin_loss beyond float16's range": (
        "multilabel_soft_margin_loss", {"input": np.array([[1e4, -1e4, 6e4, -6e4, 0.0]]),
                                        "target": np.array([[0.0, 1.0, 0.0, 1.0, 1.0]])}, {"reduction": "none"}),
    "binary_cross_entropy at 0 and 1": (
        "binary_cross_entropy", {"input": np.array([0.0, 1.0, 0.5, 1e-4]), "target": np.array([0.0, 1.0, 1.0, 0.5])},
        {"reduction": "none"}),
}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("case", list(HALF_EDGES))
def test_half_inputs_at_the_edges_get_the_float32_answer_in_their_dtype(case: str, dtype: str) -> None:
    """README: half-precision inputs are computed in float32 and returned in their dtype. At the
    edges that is torch's float32 answer (value and gradients) at the rounded inputs, rounded once,
    not torch's half-precision NaN or inf."""
    name, inputs, options = HALF_EDGES[case]
    half = getattr(torch, dtype)
    rounded = {k: torch.tensor(v).to(half).double().numpy() if np.asarray(v).dtype.kind == "f" else v
               for k, v in inputs.items()}
    grad = tuple(k for k in lossreg.spec(name).differentiable if k in inputs)
    want, g_want = _torch(getattr(F, name), rounded, options, torch.float32, grad)
    got, g_got = _torch(getattr(lossreg, name), rounded, options, half, grad)
    round_half = lambda a: torch.tensor(a).to(half).double().numpy()  # noqa: E731
    _close(got, round_half(want), f"{name} in {dtype}", rtol=0)
    for g, w, arg in zip(g_got, g_want, grad):
        _close(g, round_half(w), f"{name} in {dtype}: gradient of {arg}", rtol=torch.finfo(half).eps)


@pytest.mark.parametrize("pos_weight", [np.inf, -np.inf, 1e308])
@pytest.mark.parametrize("backend", ["numpy", "torch without kernels", "jax", "array_api_strict"])
def test_an_infinite_pos_weight_gives_torchs_infinite_loss_not_nan(pos_weight, backend):
    """torch's (1 - y) x + q softplus(-x) with q = 1 + (p - 1) y is ±inf where y > 0 and p = ±inf
    (NaN where y = 0: ∞ · 0); the branch-free form's mask of negative logits must not multiply the
    infinite q by 0 where the logit is positive."""
    x = np.array([[2.0, -1.0, 0.0, -30.0, 30.0], [-30.0, 5.0, 1.0, -1e-300, 1e300]])
    y = np.array([[1.0, 0.0, 0.5, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0, 0.0]])
    p = np.full(5, pos_weight)
    want = F.binary_cross_entropy_with_logits(torch.tensor(x), torch.tensor(y), pos_weight=torch.tensor(p),
                                              reduction="none").numpy()
    if backend == "jax":
        with jax.enable_x64(True):
            got = np.asarray(lossreg.binary_cross_entropy_with_logits(jnp.asarray(x), jnp.asarray(y), pos_weight=jnp.asarray(p),
                                                                     reduction="none"))
    else:
        conv = {"numpy": np.asarray, "torch without kernels": torch.tensor,
                "array_api_strict": pytest.importorskip("array_api_strict").asarray}[backend]
        with lossreg.use_kernels(False), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NumPy: ∞ · 0 where y = 0, NaN as in torch
            got = lossreg.binary_cross_entropy_with_logits(conv(x), conv(y), pos_weight=conv(p), reduction="none")
    # atol: at p = 1e308, y = 0, x = -30 torch rounds log1p(exp(-30)) = 9.3576e-14 to 9.237e-14
    _close(np.asarray(got) if backend != "torch without kernels" else got.numpy(), want, "value", rtol=1e-6, atol=2e-15)


@pytest.mark.parametrize("p", [2.0, 3.0, 1.0])
@pytest.mark.parametrize("backend", ["numpy", "torch without kernels", "jax", "array_api_strict"])
def test_a_one_dimensional_embedding_distance_is_its_absolute_difference_at_any_magnitude(p, backend):
    """D = 1: ‖d‖_p = |d| for every p, with no d^p to overflow: a negative at distance 3e38 in
    float32 is finite, as on torch's CPU (which accumulates the norm in float64); the positive at
    6e38 is inf, so the loss is inf, not inf - inf."""
    a, pos, neg = (np.array([[3e38], [1.0], [0.5]], np.float32), np.array([[-3e38], [1.0], [-1.0]], np.float32),
                   np.array([[0.0], [-1.0], [2.0]], np.float32))
    want = F.triplet_margin_loss(torch.tensor(a), torch.tensor(pos), torch.tensor(neg), p=p, reduction="none").numpy()
    if backend == "jax":
        got = lossreg.triplet_margin_loss(jnp.asarray(a), jnp.asarray(pos), jnp.asarray(neg), p=p, reduction="none")
    else:
        conv = {"numpy": np.asarray, "torch without kernels": torch.tensor,
                "array_api_strict": pytest.importorskip("array_api_strict").asarray}[backend]
        with lossreg.use_kernels(False):
            got = lossreg.triplet_margin_loss(conv(a), conv(pos), conv(neg), p=p, reduction="none")
    assert want[0] == np.inf
    _close(np.asarray(got) if backend != "torch without kernels" else got.numpy(), want, "value", rtol=1e-6)
