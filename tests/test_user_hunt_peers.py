"""A user migrating from peer libraries (optax, MONAI, Keras, scikit-learn) to lossreg, one loss at a
time, checking each swap against the loss used before: values and gradients, many inputs.

What this file pins:

- ``binary_focal_loss`` (lossreg-segmentation) on torch tensors, through its torch kernel and its
  portable definition alike, is optax's ``sigmoid_focal_loss`` (the formula, -α_t (1 - p_t)^γ log p_t)
  at tiny probabilities (logits of ±30, ±40, ±800, targets of 1e-300) and at infinite logits, values and
  gradients: the kernel used to compute log p_t through ``binary_cross_entropy_with_logits``, whose
  ``(1 - t) x - log σ(x)`` cancels to 0 (4e-18 at x = -40), whose gradient ``σ(x) - t`` cancels to 0,
  and which is NaN at x = -inf where the loss is inf; and so on Hypothesis' random awkward inputs too.
- ``log_loss`` is a false friend, not a name of ``binary_cross_entropy``: scikit-learn's ``log_loss``
  takes the labels first (0/1 labels are valid probabilities here: another number, no error) and on
  (N, C) probabilities is ``nll_loss`` of the log-probabilities, where binary_cross_entropy averages N·C
  binary losses.
- ``mean_absolute_percentage_error`` (lossreg-extras' ``mape_loss``) is Keras' percentage: 100 times
  scikit-learn's fraction, as the extras README says.
- ``binary_cross_entropy``'s portable gradients are torch's except where the README says (within 1e-12
  of 0 or 1 for the input, past the -100 log clamp for the target), a wider region than "exactly 0 or 1".
- optax's ``where=`` on probability targets is ``cross_entropy`` of logits masked by a finite number;
  masked by -inf it is torch's NaN (0 · -inf), as the docs' optax mapping says.
- ``binary_focal_loss``'s target gradient is the derivative (mpmath); optax's is not at hard targets.
- ``generalized_dice_loss`` in float32 keeps a class of tiny soft volume while its weight 1 / v² is
  finite, as MONAI does (it counted volumes up to √(2 / max) as absent), and on JAX gives torch's value
  where v² is subnormal (XLA flushed it to 0: a NaN loss).
- ``sigmoid_binary_cross_entropy`` (optax's name) is torch's formula, and differs from optax's where the
  docs' optax mapping says (-inf logits, cancelled tiny losses).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lossreg

torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def optax():
    jax = pytest.importorskip("jax")
    optax = pytest.importorskip("optax")
    with jax.enable_x64(True):
        yield optax


def optax_focal(optax, x: np.ndarray, t: np.ndarray, alpha, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """optax's elementwise sigmoid focal loss and its gradient with respect to the logits, in x's dtype."""
    import jax

    def total(z):
        return optax.losses.sigmoid_focal_loss(z, jax.numpy.asarray(t), alpha=alpha, gamma=gamma).sum()

    value = optax.losses.sigmoid_focal_loss(jax.numpy.asarray(x), jax.numpy.asarray(t), alpha=alpha, gamma=gamma)
    return np.asarray(value), np.asarray(jax.grad(total)(jax.numpy.asarray(x)))


def lossreg_focal(segmentation, x: np.ndarray, t: np.ndarray, kernels: bool, **options):
    """binary_focal_loss of torch tensors, per element, and its autograd gradient, through the torch
    kernel or the portable definition."""
    logits = torch.tensor(x, requires_grad=True)
    with lossreg.use_kernels(kernels):
        losses = segmentation.binary_focal_loss(logits, torch.tensor(t), reduction="none", **options)
    (grad,) = torch.autograd.grad(losses.sum(), logits)
    assert losses.dtype == grad.dtype == logits.dtype
    return losses.detach().numpy(), grad.numpy()


INF = math.inf
EDGE_LOGITS = [-INF, INF, -1e4, 1e4, -800.0, 800.0, -40.0, 40.0, -30.0, 30.0, -17.0, 17.0, 0.0, 2.5]
EDGE_TARGETS = [0.0, 1.0, 1e-300, 0.3, 0.5, 1 - 2**-53]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("alpha", [None, 0.25])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("kernels", [True, False], ids=["torch_kernel", "portable"])
def test_binary_focal_is_optax_at_tiny_probabilities_and_infinite_logits(segmentation, optax, dtype, alpha, gamma,
                                                                          kernels):
    x, t = (np.array(a, dtype=dtype).ravel() for a in np.meshgrid(EDGE_LOGITS, EDGE_TARGETS))
    want, want_grad = optax_focal(optax, x, t, alpha, gamma)
    got, grad = lossreg_focal(segmentation, x, t, kernels, alpha=alpha, gamma=gamma)
    tiny = np.finfo(dtype).tiny
    # Values: optax's everywhere, inf at x = -inf on t > 0 and NaN only where optax (and torch) are
    # NaN: a right saturated logit of ±inf, 0 · log 0.
    np.testing.assert_allclose(got, want, rtol=1e-12 if dtype == "float64" else 2e-6, atol=tiny)
    # Gradients: optax's wherever it has one (it is NaN at every infinite logit).
    finite = np.isfinite(want_grad)
    assert finite.sum() > 0.8 * finite.size
    np.testing.assert_allclose(grad[finite], want_grad[finite], rtol=1e-10 if dtype == "float64" else 2e-5, atol=tiny)


@st.composite
def focal_problems(draw):
    """Logits at a drawn magnitude (some saturated, some infinite), targets hard, soft, all 0 or all 1."""
    dtype = draw(st.sampled_from(["float64", "float32"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = draw(st.sampled_from([(1,), (7,), (2, 5), (2, 3, 4)]))  # few shapes: JAX compiles once per shape
    x = rng.normal(size=shape) * draw(st.sampled_from([1e-3, 1.0, 5.0, 30.0, 100.0, 1e4]))
    x = np.where(rng.uniform(size=shape) < draw(st.sampled_from([0.0, 0.1])), rng.choice([-INF, INF], size=shape), x)
    kind = draw(st.sampled_from(["hard", "soft", "zeros", "ones", "tiny"]))
    t = {"hard": (rng.uniform(size=shape) < 0.5) * 1.0, "soft": rng.uniform(size=shape), "zeros": np.zeros(shape),
         "ones": np.ones(shape), "tiny": rng.uniform(size=shape) * 1e-30}[kind]
    options = {"alpha": draw(st.sampled_from([None, 0.0, 0.25, 1.0])), "gamma": draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 5.0]))}
    return x.astype(dtype), t.astype(dtype), options


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(problem=focal_problems(), reduction=st.sampled_from(["none", "mean", "sum"]))
def test_binary_focal_torch_kernel_is_the_portable_loss_and_optax_on_random_awkward_inputs(segmentation, optax,
                                                                                         problem, reduction):
    x, t, options = problem
    want, want_grad = optax_focal(optax, x, t, options["alpha"], options["gamma"])
    want = {"none": want, "mean": want.mean(), "sum": want.sum()}[reduction]
    float64 = x.dtype == np.float64
    for kernels in (True, False):
        logits = torch.tensor(x, requires_grad=True)
        with lossreg.use_kernels(kernels):
            got = segmentation.binary_focal_loss(logits, torch.tensor(t), reduction=reduction, **options)
        np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-11 if float64 else 1e-5,
                                   atol=np.finfo(x.dtype).tiny)  # XLA on CPU flushes subnormals to 0
        if reduction == "sum":
            (grad,) = torch.autograd.grad(got, logits)
            finite = np.isfinite(want_grad)
            np.testing.assert_allclose(grad.numpy()[finite], want_grad[finite], rtol=1e-9 if float64 else 1e-4,
                                       atol=np.finfo(x.dtype).tiny)


# --- scikit-learn's names -----------------------------------------------------------------------

def test_log_loss_is_a_false_friend_as_scikit_learn_computes_it_on_other_arguments():
    """scikit-learn's log_loss(y_true, y_prob) runs here with its arguments in its order (0/1
    labels are valid probabilities) and gives another number, so the name is refused, saying
    which lossreg call gives scikit-learn's value."""
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(5)
    p = rng.uniform(0.01, 0.99, size=50)
    y = (rng.uniform(size=50) < 0.5) * 1.0
    want = metrics.log_loss(y, p)
    assert lossreg.binary_cross_entropy(y, p) > 2 * want  # what the alias gave in scikit-learn's order
    np.testing.assert_allclose(lossreg.binary_cross_entropy(p, y), want, rtol=1e-13)  # binary labels, prediction first
    for name in ("log_loss", "LogLoss", "logloss"):
        with pytest.raises(lossreg.UnknownLossError, match=r"on purpose: scikit-learn's log_loss.*labels first"
                                                            r".*nll_loss\(log\(p\), labels\).*'binary_cross_entropy'"):
            lossreg.get(name)


def test_scikit_learns_multi_class_log_loss_is_nll_of_the_log_probabilities():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(6)
    p = rng.dirichlet(np.ones(4), size=40)
    y = np.arange(40) % 4
    want = metrics.log_loss(y, p)
    np.testing.assert_allclose(lossreg.nll_loss(np.log(p), y), want, rtol=1e-13)
    np.testing.assert_allclose(lossreg.cross_entropy(np.log(p), y), want, rtol=1e-13)
    one_hot = np.eye(4)[y]
    assert abs(lossreg.binary_cross_entropy(p, one_hot) - want) > 0.1 * want  # N·C binary losses averaged


def test_mean_absolute_percentage_error_alias_is_keras_percentage_100_times_scikit_learns_fraction(extras):
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(7)
    y, p = rng.normal(size=30) * 3, rng.normal(size=30) * 3
    y[:2] = 0.0
    eps = float(np.finfo(np.float64).eps)  # scikit-learn's floor under |y_true|
    mape = lossreg.get("mean_absolute_percentage_error", eps=eps)
    np.testing.assert_allclose(mape(p, y) / 100, metrics.mean_absolute_percentage_error(y, p), rtol=1e-13)
    readme = (ROOT / "plugins" / "lossreg-extras" / "README.md").read_text()
    assert "mean_absolute_percentage_error" in readme and "100" in readme.split("scikit-learn's mean_absolute")[1][:200]


def test_bce_portable_gradients_are_torchs_except_within_1e_12_of_0_or_1_and_past_the_log_clamp():
    """The README's documented BCELoss gradient difference, and where exactly it starts: torch's input
    gradient ``(x - y) / max(x (1 - x), 1e-12)`` departs from the derivative of the loss where
    x (1 - x) < 1e-12 (not only at exactly 0 and 1), and torch's target gradient ``log(1 - x) - log x``
    is not clamped at -100 as its value is (690.8 at x = 1e-300, the portable definition's 100)."""
    x = torch.tensor([0.0, 1e-300, 1e-45, 1e-43, 1e-13, 1e-11, 0.3, 1 - 1e-13, 1 - 1e-11, 1.0], dtype=torch.float64)
    input_differs = (x * (1 - x) < 1e-12).numpy()
    target_differs = ((torch.log(x) < -100) | (torch.log1p(-x) < -100)).numpy()
    assert input_differs.sum() == 7 and target_differs.sum() == 4
    for label in (0.0, 0.5, 1.0):
        grads = []
        for kernels in (True, False):
            p, y = x.clone().requires_grad_(), torch.full_like(x, label).requires_grad_()
            with lossreg.use_kernels(kernels):
                grads.append(torch.autograd.grad(lossreg.binary_cross_entropy(p, y, reduction="sum"), (p, y)))
            if kernels:  # the torch kernel is torch
                p2, y2 = x.clone().requires_grad_(), torch.full_like(x, label).requires_grad_()
                want = torch.autograd.grad(torch.nn.functional.binary_cross_entropy(p2, y2, reduction="sum"), (p2, y2))
                torch.testing.assert_close(grads[0], want, rtol=0, atol=0)
        (torch_dx, torch_dy), (dx, dy) = grads
        same = np.isclose(torch_dx.numpy(), dx.numpy(), rtol=1e-12, atol=0)
        np.testing.assert_array_equal(same, ~input_differs | (torch_dx.numpy() == dx.numpy()), err_msg=f"label {label}")
        np.testing.assert_array_equal(np.isclose(torch_dy.numpy(), dy.numpy(), rtol=1e-12, atol=0), ~target_differs)
        np.testing.assert_array_equal(dy.numpy()[target_differs], 100 * np.sign(torch_dy.numpy()[target_differs]))


def test_optax_where_masked_probability_targets_are_cross_entropy_of_finite_masked_logits_not_minus_inf(optax):
    """optax's ``where=`` (and ``safe_softmax_cross_entropy`` of -inf logits) drop a masked class of
    probability 0; torch's cross-entropy of a -inf logit with probability 0 is ``0 · -inf = NaN``, and
    lossreg's is torch's. The docs' optax mapping says so and says how to mask: a finite logit."""
    import jax

    rng = np.random.default_rng(8)
    keep = np.arange(6)[None] < np.array([3, 4, 6, 2, 5])[:, None]
    x = rng.normal(size=(5, 6)) * 3
    p = np.where(keep, rng.uniform(size=(5, 6)), 0.0)
    p /= p.sum(1, keepdims=True)
    z, targets, where = (jax.numpy.asarray(a) for a in (x, p, keep))
    want = optax.losses.softmax_cross_entropy(z, targets, where=where)
    np.testing.assert_allclose(optax.losses.safe_softmax_cross_entropy(jax.numpy.where(where, z, -np.inf), targets), want)
    ours = lossreg.cross_entropy(torch.tensor(np.where(keep, x, -np.inf)), torch.tensor(p), reduction="none")
    theirs = torch.nn.functional.cross_entropy(torch.tensor(np.where(keep, x, -np.inf)), torch.tensor(p), reduction="none")
    np.testing.assert_array_equal(np.isnan(ours.numpy()), ~keep.all(1))
    torch.testing.assert_close(ours, theirs, equal_nan=True)
    for mask in (-1e30, np.finfo(np.float32).min / 2):
        got, grad = jax.value_and_grad(lambda a: lossreg.cross_entropy(jax.numpy.where(where, a, mask), targets, reduction="sum"))(z)
        want_grad = jax.grad(lambda a: optax.losses.softmax_cross_entropy(a, targets, where=where).sum())(z)
        np.testing.assert_allclose(got, want.sum(), rtol=1e-13)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-12, atol=1e-15)
    from lossreg.docsite import equivalents

    assert "where=" in equivalents.OPTAX["cross_entropy"].mapping


@pytest.mark.parametrize("kernels", [True, False], ids=["torch_kernel", "portable"])
def test_binary_focal_target_gradient_is_the_derivative_where_optaxs_is_not_at_hard_targets(segmentation, optax,
                                                                                           kernels):
    """The target gradient, through the torch kernel and the portable definition, is the derivative of
    -α_t (1 - p_t)^γ log p_t (mpmath, 40 digits); optax's equals it on soft targets only: at a target of
    exactly 0 or 1 its ``logsumexp(..., b=[1 - t, t])`` has a weight 0 and drops that term's derivative
    (the segmentation README says so)."""
    import jax
    mp = pytest.importorskip("mpmath").mp
    mp.dps = 40

    def focal(x, t, gamma=2.0, alpha=0.25):
        p = 1 / (1 + mp.exp(-x))
        return (alpha * t + (1 - alpha) * (1 - t)) * (t * (1 - p) + (1 - t) * p) ** gamma * -(
            t * mp.log(p) + (1 - t) * mp.log(1 - p))

    x = np.array([2.5, 2.5, 0.0, -3.0, 2.5, -1.0, 0.7])
    t = np.array([0.0, 1.0, 0.0, 1.0, 0.3, 0.5, 0.9])
    want = np.array([float(mp.diff(lambda u, a=a: focal(mp.mpf(a), u), mp.mpf(b))) for a, b in zip(x, t)])
    logits, targets = torch.tensor(x), torch.tensor(t, requires_grad=True)
    with lossreg.use_kernels(kernels):
        loss = segmentation.binary_focal_loss(logits, targets, reduction="sum")
    np.testing.assert_allclose(torch.autograd.grad(loss, targets)[0].numpy(), want, rtol=1e-12, atol=1e-15)
    theirs = np.asarray(jax.grad(lambda u: optax.losses.sigmoid_focal_loss(jax.numpy.asarray(x), u, alpha=0.25).sum())(
        jax.numpy.asarray(t)))
    hard = (t == 0) | (t == 1)
    np.testing.assert_allclose(theirs[~hard], want[~hard], rtol=1e-12)
    assert not np.isclose(theirs[hard], want[hard], rtol=1e-3).any()


@pytest.mark.parametrize("volume", [5.3e-20, 5.5e-20, 6e-20, 7e-20, 8e-20, 1e-19, 1.1e-19])
def test_generalized_dice_in_float32_keeps_a_class_whose_weight_is_finite_as_monai_on_torch_and_jax(segmentation,
                                                                                                    volume):
    """A soft target class of volume v gets the weight 1 / v², absent (the largest weight) only where that
    overflows, v < 1 / √max ≈ 5.42e-20 in float32, as MONAI's isinf finds it. lossreg counted classes up
    to √(2 / max) ≈ 7.7e-20 as absent (MONAI keeps them), and on JAX computed v², subnormal below
    ~1.08e-19, which XLA flushes to 0: an infinite weight, a NaN loss and gradient."""
    monai = pytest.importorskip("monai.losses")
    jax = pytest.importorskip("jax")
    y = np.zeros((2, 3, 4), dtype="float32")
    y[:, 0, 0] = volume
    y[:, 1, :2] = 1.0
    y[1, 2, 1:] = 1.0
    p = np.random.default_rng(9).dirichlet(np.ones(3), size=(2, 4)).transpose(0, 2, 1).astype("float32")
    ours, theirs = torch.tensor(p, requires_grad=True), torch.tensor(p, requires_grad=True)
    got = segmentation.generalized_dice_loss(ours, torch.tensor(y), reduction="none")
    want = monai.GeneralizedDiceLoss(reduction="none")(theirs, torch.tensor(y)).reshape(-1)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)
    grad = torch.autograd.grad(got.sum(), ours)[0]
    torch.testing.assert_close(grad, torch.autograd.grad(want.sum(), theirs)[0], rtol=1e-5, atol=1e-9)
    value, jax_grad = jax.value_and_grad(
        lambda a: segmentation.generalized_dice_loss(a, jax.numpy.asarray(y), reduction="sum"))(jax.numpy.asarray(p))
    np.testing.assert_allclose(value, got.sum().item(), rtol=1e-6)
    np.testing.assert_allclose(jax_grad, grad.numpy(), rtol=1e-5, atol=1e-9)


def test_sigmoid_binary_cross_entropy_alias_is_torchs_formula_where_optax_differs_as_the_docs_say(optax):
    """``sigmoid_binary_cross_entropy`` (optax's name) is ``binary_cross_entropy_with_logits``, torch's
    answer: optax's everywhere but at a logit of -inf with a positive label (torch NaN, optax inf) and,
    on torch tensors, at losses torch's ``(1 - y) x - log σ(x)`` cancels to 0, where the portable
    definition (JAX here) gives optax's value; the docs' optax mapping says both."""
    import jax

    x = np.array([-np.inf, -np.inf, -40.0, -1e4, 3.0, -2.0, 40.0, 0.0])
    y = np.array([1.0, 0.5, 0.0, 0.0, 0.2, 1.0, 1.0, 0.5])
    ours = lossreg.get("sigmoid_binary_cross_entropy", reduction="none")
    got = ours(torch.tensor(x), torch.tensor(y))
    torch.testing.assert_close(got, torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(x), torch.tensor(y), reduction="none"), equal_nan=True, rtol=1e-15, atol=0)
    on_jax = np.asarray(ours(jax.numpy.asarray(x), jax.numpy.asarray(y)))
    np.testing.assert_allclose(on_jax, got.numpy(), rtol=1e-15, atol=1e-17)
    theirs = np.asarray(optax.losses.sigmoid_binary_cross_entropy(jax.numpy.asarray(x), jax.numpy.asarray(y)))
    np.testing.assert_allclose(got.numpy()[3:], theirs[3:], rtol=1e-13)
    assert np.isnan(got.numpy()[:2]).all() and np.isposinf(theirs[:2]).all()
    assert got[2] == 0 and theirs[2] == pytest.approx(math.log1p(math.exp(-40)), rel=1e-15) == on_jax[2]
    from lossreg.docsite import equivalents

    assert "-inf" in equivalents.OPTAX["binary_cross_entropy_with_logits"].mapping
