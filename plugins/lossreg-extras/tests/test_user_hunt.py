"""Edge cases found by a user-style bug hunt: inputs a training loop meets, checked against the
peers (optax) and across backends."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lossreg_extras import sparsemax_loss

inf = math.inf


def test_sparsemax_loss_takes_minus_inf_logits_as_masked_classes(lossreg_backend, lossreg_device):
    # A -inf logit (a masked class) is never in the support; 0 · inf in the sum of squares made
    # every such row NaN, where optax's multiclass_sparsemax_loss (and the JAX kernel) give 1, inf, 0.
    x = lossreg_backend.asarray(np.array([[-inf, 0.0, 1.0], [-inf, 0.0, 1.0], [-inf, -inf, 1.0], [2.0, 0.5, 0.0]]),
                                "float64", lossreg_device)
    t = lossreg_backend.asarray(np.array([1, 0, 2, 1]), "int64", lossreg_device)
    got = lossreg_backend.to_numpy(sparsemax_loss(x, t, reduction="none"))
    np.testing.assert_allclose(got, [1.0, inf, 0.0, 1.5], rtol=1e-12)


def test_sparsemax_loss_gradient_with_masked_classes_is_sparsemax_minus_onehot():
    # torch autograd, with a row of -inf only (no support at all) next to the others: its index -1
    # once took the previous row's sum and sent it a NaN gradient.
    torch = pytest.importorskip("torch")
    x = torch.tensor([[-inf, 0.0, 1.0], [-inf, -inf, 1.0], [-inf, -inf, -inf]], dtype=torch.float64,
                     requires_grad=True)
    losses = sparsemax_loss(x, torch.tensor([1, 2, 0]), reduction="none")
    (grad,) = torch.autograd.grad(losses[0] + losses[1], x)
    torch.testing.assert_close(grad[:2], torch.tensor([[0.0, -1.0, 1.0], [0.0, 0.0, 0.0]], dtype=torch.float64))


def test_sparsemax_loss_with_masked_classes_is_optax_multiclass_sparsemax_loss():
    jax = pytest.importorskip("jax")
    optax = pytest.importorskip("optax")
    with jax.enable_x64(True):
        x = jax.numpy.asarray([[-inf, 0.0, 1.0, 0.8], [0.3, -inf, -inf, 0.1]])
        t = jax.numpy.asarray([3, 0])
        for loss in (sparsemax_loss, sparsemax_loss.portable):
            value, grad = jax.value_and_grad(lambda a: loss(a, t))(x)
            want, want_grad = jax.value_and_grad(lambda a: optax.losses.multiclass_sparsemax_loss(a, t).mean())(x)
            np.testing.assert_allclose(value, want, rtol=1e-12)
            np.testing.assert_allclose(grad, want_grad, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("q", [0, 0.0, -0.5, 1.5, math.nan])
def test_generalized_cross_entropy_names_the_same_range_for_every_bad_q(q):
    # The range said was [0.0, 1.0] for 1.5 but (0, 1] for 0: a caller fixing one error met the other.
    from lossreg_extras import generalized_cross_entropy

    import lossreg

    with pytest.raises(lossreg.LossValueError, match=r"generalized_cross_entropy: argument 'q' expected a number in \(0, 1\]"):
        generalized_cross_entropy(np.zeros((2, 3)), np.array([0, 1]), q=q)


@pytest.mark.parametrize("temperature", [0, -1.0, math.inf, math.nan])
def test_nt_xent_refuses_every_non_positive_or_infinite_temperature_with_one_message(temperature):
    # -1 was refused as outside "[0.0, inf]" (0 then refused too), and inf silently gave log(2N - 1)
    # with a zero gradient: a constant loss that trains nothing.
    from lossreg_extras import nt_xent_loss

    import lossreg

    with pytest.raises(lossreg.LossValueError, match="nt_xent_loss: argument 'temperature' expected a positive, finite number"):
        nt_xent_loss(np.eye(2, 3), np.eye(2, 3), temperature=temperature)


@pytest.mark.parametrize("loss, option", [("mape_loss", "eps"), ("msle_loss", "eps"), ("poly1_cross_entropy", "epsilon")])
def test_an_infinite_epsilon_is_refused_rather_than_giving_nan_or_zero(loss, option):
    # eps=inf made msle NaN and mape 0 for every input, silently.
    import lossreg

    x = np.abs(np.eye(2, 3)) + 0.5
    target = np.array([0, 1]) if loss == "poly1_cross_entropy" else x
    with pytest.raises(lossreg.LossValueError, match=f"{loss}: argument '{option}' expected a finite number"):
        lossreg.get(loss, **{option: math.inf})(x, target)


def test_generalized_cross_entropy_keeps_its_precision_where_the_target_is_nearly_certain():
    """(1 - p_t^q) / q as -expm1(q log p_t) / q: in float32 at p_t = 1 - 8e-7 the subtraction
    1 - exp(...) keeps one digit (8% off); expm1 keeps them all (mpmath: 8.3153e-07)."""
    from lossreg_extras import generalized_cross_entropy

    got = generalized_cross_entropy(np.array([[14.0, 0.0]], np.float32), np.array([0]), q=0.7)
    assert got.dtype == np.float32
    np.testing.assert_allclose(float(got), 8.3153e-07, rtol=1e-2)


def test_nt_xent_gradient_at_an_all_zero_embedding_is_finite_as_pytorch_metric_learnings():
    """A zero row stays zero, as F.normalize leaves it; the gradient through its norm is taken at
    eps (torch's clamp_min), never √0's infinite slope, which would make it NaN."""
    torch = pytest.importorskip("torch")
    from lossreg_extras import nt_xent_loss

    u = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]], dtype=torch.float64, requires_grad=True)
    v = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    loss = nt_xent_loss(u, v, temperature=0.5)
    (grad,) = torch.autograd.grad(loss, u)
    assert math.isclose(loss.item(), 1.140854920059398, rel_tol=1e-12)  # pytorch-metric-learning's NTXentLoss
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(grad[0], torch.tensor([-4.748e11, 3.892e11, -3.541e11], dtype=torch.float64), rtol=1e-3,
                               atol=0)


def test_nt_xent_of_no_pairs_names_the_shape_given():
    # The error said "got shape (0, D)", a letter where the caller's embedding size belongs.
    import lossreg

    with pytest.raises(lossreg.LossValueError, match=r"expected at least one pair of embeddings \(N ≥ 1\), "
                                                     r"got shape \(0, 7\)$"):
        lossreg.nt_xent_loss(np.zeros((0, 7)), np.zeros((0, 7)))


def test_sparsemax_loss_at_a_plus_inf_logit_gives_the_limit_and_its_gradient_on_every_path():
    # A +inf logit: the loss is its limit, x_max - x_t (inf for a finite target, NaN for a +inf one,
    # ∞ - ∞), and the gradient the limit of sparsemax(x) - onehot(t): uniform over the +inf logits.
    # The shift by the maximum made inf - inf: the portable gradient was NaN at the +inf logit and
    # the JAX kernel's (sparsemax from that NaN threshold) NaN across the row. optax's
    # multiclass_sparsemax_loss gives NaN for the value and the whole gradient there.
    jax = pytest.importorskip("jax")
    torch = pytest.importorskip("torch")
    x = np.array([[inf, 1.0, 0.0], [inf, 1.0, 0.0], [0.5, inf, inf], [inf, inf, 0.0], [1.0, 2.0, 0.5]])
    t = np.array([1, 0, 0, 0, 2])
    want = [inf, math.nan, inf, math.nan, 1.5]
    want_grad = [[1.0, -1.0, 0.0], [0.0, 0.0, 0.0], [-1.0, 0.5, 0.5], [-0.5, 0.5, 0.0], [0.0, 1.0, -1.0]]
    with jax.enable_x64(True):
        jx, jt = jax.numpy.asarray(x), jax.numpy.asarray(t)
        for loss in (sparsemax_loss, sparsemax_loss.portable):
            for fn in (loss, jax.jit(loss, static_argnames="reduction")):
                np.testing.assert_allclose(fn(jx, jt, reduction="none"), want, rtol=1e-12)
                grad = jax.grad(lambda a, fn=fn: fn(a, jt, reduction="sum"))(jx)
                np.testing.assert_allclose(grad, want_grad, rtol=1e-12)
    tx = torch.tensor(x, requires_grad=True)
    value = sparsemax_loss(tx, torch.tensor(t), reduction="none")
    np.testing.assert_allclose(value.detach().numpy(), want, rtol=1e-12)
    (grad,) = torch.autograd.grad(value.sum(), tx)  # NaN, but each row's gradient flows
    np.testing.assert_allclose(grad.numpy(), want_grad, rtol=1e-12)
    np.testing.assert_allclose(sparsemax_loss(x, t, reduction="none"), want, rtol=1e-12)


def test_sparsemax_loss_under_jax_jit_reduces_the_logits_three_times_per_row():
    # The row's maximum (the shift, and the +inf limit's value), the support's size and the sum of
    # squares: the +inf limit reads the maximum the shift computed, where the mean of the +inf
    # logits was a sum and a count of its own, each over an (N, C) array written out first
    # (medium size 256x1000: 25 fusions, 27.0 MB accessed; now 21 and 20.8 MB, optax's 25 and
    # 25.3 MB; benchmarks/results/jax_programs.md). Its value and gradient are the test above's.
    import re

    jax = pytest.importorskip("jax")
    n, c = 8, 6
    x = jax.numpy.asarray(np.random.default_rng(0).standard_normal((n, c)), dtype=jax.numpy.float32)
    t = jax.numpy.arange(n, dtype=jax.numpy.int32) % c
    for fn in (sparsemax_loss, jax.value_and_grad(sparsemax_loss)):
        text = jax.jit(fn).lower(x, t).compile().as_text()
        assert len(re.findall(rf"= f32\[{n}\]\S* reduce\([^\n]*dimensions=\{{1\}}", text)) == 3
