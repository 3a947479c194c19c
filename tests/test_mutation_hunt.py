"""Behaviours that no test pinned, found by a mutation hunt: 54 small slips made in the loss code
one at a time, of which 9 passed both the conformance suite on NumPy and torch and the tests of
their loss. Each test below fails with the slip it is named for, and passes with torch's answer.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import lossreg

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _libraries() -> list:
    import array_api_strict
    import jax.numpy as jnp

    return [pytest.param(np.asarray, True, id="numpy"), pytest.param(torch.asarray, True, id="torch"),
            pytest.param(torch.asarray, False, id="torch-portable"), pytest.param(jnp.asarray, True, id="jax"),
            pytest.param(array_api_strict.asarray, True, id="array_api_strict")]


def _numpy(out) -> np.ndarray:
    return np.asarray(out.detach() if hasattr(out, "detach") else out, dtype=np.float64)


@pytest.mark.parametrize(("convert", "kernels"), _libraries())
def test_binary_cross_entropy_clamps_each_log_at_minus_100_as_torch(convert, kernels):
    """A probability below e^-100 (or 1 - p below it) costs 100, not -log p (115 at 1e-50)."""
    import jax

    with jax.enable_x64(True), lossreg.use_kernels(kernels):
        x, y = np.array([1e-50, 1.0, 1e-50, 0.5]), np.array([1.0, 0.0, 0.0, 1.0])
        got = lossreg.binary_cross_entropy(convert(x), convert(y), reduction="none")
    want = F.binary_cross_entropy(torch.tensor(x), torch.tensor(y), reduction="none")
    np.testing.assert_allclose(_numpy(got), want.numpy(), rtol=1e-15)
    assert _numpy(got)[0] == 100.0


SATURATED = {  # at x = 40, y = 1 each is log1p(exp(-40)) = 4.248e-18 per element: log(1 + exp(-40)) is 0
    "binary_cross_entropy_with_logits": lambda f, x, y: f.binary_cross_entropy_with_logits(x, y, reduction="none"),
    "soft_margin_loss": lambda f, x, y: f.soft_margin_loss(x, y, reduction="none"),
    "multilabel_soft_margin_loss": lambda f, x, y: f.multilabel_soft_margin_loss(x, y, reduction="none"),
}


@pytest.mark.parametrize(("convert", "kernels"), _libraries())
@pytest.mark.parametrize("name", SATURATED)
def test_a_confident_right_logit_keeps_its_tiny_loss_to_full_relative_precision(name, convert, kernels):
    import jax

    x, y = np.array([[40.0, 50.0, 30.0]]), np.array([[1.0, 1.0, 1.0]])
    want = SATURATED[name](F, torch.tensor(x), torch.tensor(y)).numpy()
    with jax.enable_x64(True), lossreg.use_kernels(kernels):
        got = SATURATED[name](lossreg, convert(x), convert(y))
    assert np.all(want > 0)
    np.testing.assert_allclose(_numpy(got), want, rtol=1e-12)


@pytest.mark.parametrize(("convert", "kernels"), _libraries())
@pytest.mark.parametrize("p", [-1.0, -2.0, -0.5])
def test_a_negative_norm_order_with_one_equal_coordinate_is_a_distance_of_zero(p, convert, kernels):
    """(Σ |d_i|^p)^(1/p) for p < 0 with one d_i = 0: the sum is ∞ and the distance 0, as torch's."""
    import jax

    a, pos, neg = np.array([[0.0, 2.0, 3.0]]), np.array([[1e-6, 1.5, 2.0]]), np.array([[0.5, 0.0, 0.0]])
    want = F.triplet_margin_loss(torch.tensor(a), torch.tensor(pos), torch.tensor(neg), p=p)
    with jax.enable_x64(True), lossreg.use_kernels(kernels):
        got = lossreg.triplet_margin_loss(convert(a), convert(pos), convert(neg), p=p)
    np.testing.assert_allclose(_numpy(got), want.numpy(), rtol=1e-12)


@pytest.mark.parametrize(("convert", "kernels"), _libraries())
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
def test_element_weights_that_sum_to_zero_divide_by_zero_as_torch(name, convert, kernels):
    """The weighted mean Σ w ℓ / Σ w with Σ w = 0 is ±inf (or NaN for 0 / 0), not NaN throughout."""
    import jax

    x, y, w = np.array([1.0, 2.0]), np.zeros(2), np.array([1.0, -1.0])
    want = getattr(F, name)(torch.tensor(x), torch.tensor(y), weight=torch.tensor(w))
    with jax.enable_x64(True), lossreg.use_kernels(kernels), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's "divide by zero", torch's answer all the same
        got = getattr(lossreg, name)(convert(x), convert(y), weight=convert(w))
    assert math.isinf(want.item()) and want.item() < 0
    assert _numpy(got) == want.item()


@pytest.mark.parametrize(("convert", "kernels"), _libraries())
def test_a_float64_variance_of_float32_gaussian_scores_gives_a_float64_loss(convert, kernels):
    import jax

    x, t, var = np.array([0.3, 2.0], np.float32), np.zeros(2, np.float32), np.array([0.1, 1 / 3])
    want = F.gaussian_nll_loss(torch.tensor(x), torch.tensor(t), torch.tensor(var))
    with jax.enable_x64(True), lossreg.use_kernels(kernels):
        got = lossreg.gaussian_nll_loss(convert(x), convert(t), convert(var))
    assert want.dtype == torch.float64 and str(got.dtype).endswith("float64")
    # torch subtracts in float32 first; lossreg promotes before computing (README: 1e-9 relative)
    np.testing.assert_allclose(_numpy(got), want.item(), rtol=1e-8)


@pytest.mark.parametrize(("convert", "kernels"), _libraries())
def test_hinge_embedding_takes_the_inputs_dtype_whatever_the_labels(convert, kernels):
    """The ±1 labels only select a term: float64 labels of float32 distances give float32, as torch."""
    import jax

    x, y = np.array([0.3, 2.0], np.float32), np.array([1.0, -1.0])
    want = F.hinge_embedding_loss(torch.tensor(x), torch.tensor(y))
    with jax.enable_x64(True), lossreg.use_kernels(kernels):
        got = lossreg.hinge_embedding_loss(convert(x), convert(y))
    assert want.dtype == torch.float32 and str(got.dtype).endswith("float32")
    np.testing.assert_allclose(_numpy(got), want.item(), rtol=1e-6)


def _lce_torch(h, w, t, cw, eps):
    ht, wt = torch.tensor(h, requires_grad=True), torch.tensor(w, requires_grad=True)
    out = F.cross_entropy(ht @ wt.T, torch.tensor(t), weight=torch.tensor(cw), label_smoothing=eps)
    out.backward()
    return out.item(), ht.grad.numpy(), wt.grad.numpy()


@pytest.mark.parametrize("chunk_size", [None, 2])
def test_the_numpy_gradient_of_linear_cross_entropy_weighs_the_smoothing_by_the_class_weights(chunk_size):
    """NumPy has no autodiff: ``linear_cross_entropy_value_and_grad`` computes the gradient by
    hand, and its smoothing part must carry the class weights as torch's does."""
    rng = np.random.default_rng(0)
    h, w, t, cw = rng.normal(size=(5, 3)), rng.normal(size=(6, 3)), rng.integers(0, 6, 5), rng.uniform(0.5, 2, 6)
    value, (dh, dw, db) = lossreg.linear_cross_entropy_value_and_grad(h, w, t, weight=cw, label_smoothing=0.3,
                                                                      chunk_size=chunk_size)
    want, want_dh, want_dw = _lce_torch(h, w, t, cw, 0.3)
    assert db is None
    np.testing.assert_allclose(value, want, rtol=1e-12)
    np.testing.assert_allclose(dh, want_dh, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(dw, want_dw, rtol=1e-10, atol=1e-14)


def test_linear_cross_entropy_with_every_token_ignored_is_nan_with_a_zero_gradient_and_no_warning():
    h, w, t = np.ones((3, 2)), np.ones((4, 2)), np.full(3, -100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, (dh, dw, _) = lossreg.linear_cross_entropy_value_and_grad(h, w, t)
        assert math.isnan(lossreg.linear_cross_entropy(h, w, t))
    assert math.isnan(value)
    assert not dh.any() and not dw.any()


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_jax_gradient_of_a_one_dimensional_triplet_distance_of_zero_is_torchs(p):
    # slip: _norm's D == 1 branch takes xp.abs, not toolkit.safe_abs: JAX's abs has gradient 1 at 0,
    # so an anchor equal to its positive (or negative) gets a gradient torch does not give
    jax = pytest.importorskip("jax")
    a, pos, neg = [[1.0], [2.0], [0.5]], [[1.0], [2.5], [0.5]], [[1.2], [2.0], [3.0]]
    got = jax.grad(lambda x: lossreg.triplet_margin_loss(x, jax.numpy.asarray(pos), jax.numpy.asarray(neg), p=p,
                                                    eps=0.0))(jax.numpy.asarray(a))
    t = torch.tensor(a, requires_grad=True)
    torch.nn.functional.triplet_margin_loss(t, torch.tensor(pos), torch.tensor(neg), p=p, eps=0.0).backward()
    torch.testing.assert_close(torch.from_numpy(np.asarray(got).copy()), t.grad, rtol=1e-6, atol=1e-7)
