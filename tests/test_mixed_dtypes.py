"""The result's dtype when the arrays of one call have different floating dtypes.

Weights follow torch: the BCE losses' ``weight`` and ``pos_weight`` and the class weights of
``cross_entropy``, ``nll_loss`` and ``multi_margin_loss`` take the input's dtype (torch casts the
former and refuses the latter; lossreg gives the answer torch gives once the weight is cast), so
a float64 weight built by NumPy neither turns a float32 loss into float64 nor computes it in
float64. Where torch promotes (input against target for most losses, the weight of
``multilabel_soft_margin_loss``, probability targets), lossreg promotes too, on every library.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lossreg

rng = np.random.default_rng(3)
X = rng.normal(size=(4, 3)).astype(np.float32)
P = rng.uniform(0.05, 0.95, size=(4, 3)).astype(np.float32)
T = np.array([0, 2, 1, 2])
W = np.array([0.5, 2.0, 1.5])  # float64, as NumPy makes it


def _libraries() -> list:
    import jax.numpy as jnp

    return [pytest.param(np.asarray, id="numpy"), pytest.param(torch.asarray, id="torch"),
            pytest.param(jnp.asarray, id="jax")]


KEPT = {
    "binary_cross_entropy weight": (lambda f, c: f.binary_cross_entropy(c(P), c(P[::-1].copy()), weight=c(W)),
                                    lambda: F.binary_cross_entropy(torch.tensor(P), torch.tensor(P[::-1].copy()),
                                                                   weight=torch.tensor(W))),
    "binary_cross_entropy_with_logits pos_weight": (
        lambda f, c: f.binary_cross_entropy_with_logits(c(X), c(P), pos_weight=c(W)),
        lambda: F.binary_cross_entropy_with_logits(torch.tensor(X), torch.tensor(P), pos_weight=torch.tensor(W))),
    "binary_cross_entropy_with_logits weight": (
        lambda f, c: f.binary_cross_entropy_with_logits(c(X), c(P), weight=c(W)),
        lambda: F.binary_cross_entropy_with_logits(torch.tensor(X), torch.tensor(P), weight=torch.tensor(W))),
    "cross_entropy class weights": (lambda f, c: f.cross_entropy(c(X), c(T), weight=c(W)),
                                    lambda: F.cross_entropy(torch.tensor(X), torch.tensor(T),
                                                            weight=torch.tensor(W, dtype=torch.float32))),
    "nll_loss class weights": (lambda f, c: f.nll_loss(c(X), c(T), weight=c(W)),
                               lambda: F.nll_loss(torch.tensor(X), torch.tensor(T), weight=torch.tensor(W).float())),
    "multi_margin_loss class weights": (lambda f, c: f.multi_margin_loss(c(X), c(T), weight=c(W)),
                                        lambda: F.multi_margin_loss(torch.tensor(X), torch.tensor(T),
                                                                    weight=torch.tensor(W).float())),
}


@pytest.mark.parametrize("library", _libraries())
@pytest.mark.parametrize("case", list(KEPT))
def test_float64_weights_of_a_float32_input_give_a_float32_loss(case, library):
    ours, theirs = KEPT[case]
    got, want = ours(lossreg, library), theirs()
    assert want.dtype == torch.float32
    assert str(got.dtype).endswith("float32"), f"{case}: {got.dtype}"
    np.testing.assert_allclose(np.asarray(lossreg.backends.to_numpy(got)), want.numpy(), rtol=1e-6)


def test_a_float64_module_weight_on_float32_logits_is_cast_to_them():
    import lossreg.torch as LT

    loss = LT.CrossEntropyLoss(weight=torch.tensor(W)).double()
    got = loss(torch.tensor(X), torch.tensor(T))
    want = F.cross_entropy(torch.tensor(X), torch.tensor(T), weight=torch.tensor(W).float())
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want)


def test_a_float32_class_weight_of_half_input_gives_half():
    x, t = torch.tensor(X).log_softmax(1).half(), torch.tensor(T)
    got = lossreg.nll_loss(x, t, weight=torch.tensor(W, dtype=torch.float32))
    want = F.nll_loss(x, t, weight=torch.tensor(W, dtype=torch.float16))  # torch wants the weight cast
    assert got.dtype == torch.float16
    torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("call", [
    lambda f, a, b: f.mse_loss(a, b), lambda f, a, b: f.l1_loss(a, b), lambda f, a, b: f.smooth_l1_loss(a, b),
    lambda f, a, b: f.kl_div(a, b), lambda f, a, b: f.poisson_nll_loss(a, b),
    lambda f, a, b: f.multilabel_soft_margin_loss(a, (b > 0.5).to(b.dtype), weight=b[0]),
    lambda f, a, b: f.cross_entropy(a, b.softmax(1)),
], ids=["mse", "l1", "smooth_l1", "kl_div", "poisson_nll", "multilabel_soft_margin weight", "cross_entropy probs"])
def test_where_torch_promotes_lossreg_promotes(call):
    a, b = torch.tensor(X), torch.tensor(P, dtype=torch.float64)
    want, got = call(F, a, b), call(lossreg, a, b)
    assert want.dtype == got.dtype == torch.float64
    torch.testing.assert_close(got, want)


def test_bce_promotes_an_input_and_a_target_of_two_dtypes_where_torch_refuses_them():
    """A documented difference: torch's BCELoss raises "Found dtype Double but expected Float";
    lossreg promotes, as torch does for the other losses, giving the float64 answer."""
    a, b = torch.tensor(P, dtype=torch.float32), torch.tensor(P[::-1].copy(), dtype=torch.float64)
    with pytest.raises(RuntimeError, match="Found dtype Double but expected Float"):
        F.binary_cross_entropy(a, b)
    got = lossreg.binary_cross_entropy(a, b)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, F.binary_cross_entropy(a.double(), b))


@pytest.mark.parametrize("call", [
    lambda x, y, w: lossreg.soft_margin_loss(x, y),
    lambda x, y, w: lossreg.margin_ranking_loss(x[:, 0], x[:, 1], y[:, 0]),
    lambda x, y, w: lossreg.multilabel_soft_margin_loss(x, (y > 0).to(y.dtype)),
    lambda x, y, w: lossreg.multilabel_soft_margin_loss(x, (y > 0).to(x.dtype), weight=w),
], ids=["soft_margin", "margin_ranking", "multilabel_soft_margin", "multilabel_soft_margin weight"])
def test_the_torch_kernels_of_half_input_with_float32_arguments_promote_to_float32(call):
    # The kernels compute half precision in float32 and round back: only where every floating
    # argument is of the half dtype; mixed, the portable path promotes.
    x, y = torch.tensor(X, dtype=torch.float16), torch.tensor(np.sign(X + 0.1))
    assert call(x, y, torch.tensor(W, dtype=torch.float32)).dtype == torch.float32
