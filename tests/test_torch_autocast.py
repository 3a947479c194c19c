"""Inside ``torch.autocast``, a loss gives what torch's loss gives there: computed in float32 from
the half-precision activations, returned in float32 (torch's autocast float32 lists hold every
torch.nn loss lossreg shares but GaussianNLLLoss and MultiLabelSoftMarginLoss, which autocast
leaves to their operations, as it does lossreg's)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import lossreg  # noqa: E402
import lossreg.torch as LT  # noqa: E402


def _calls(d: torch.dtype) -> dict[str, tuple]:
    g = torch.Generator().manual_seed(0)
    x, p = torch.randn(4, 5, generator=g, dtype=d), torch.rand(4, 5, generator=g, dtype=d)
    t = torch.randint(0, 5, (4,), generator=g)
    s = torch.randn(4, 5, generator=g, dtype=d).sign()
    v, v2, y = (torch.randn(4, generator=g, dtype=d) for _ in range(3))
    lp = torch.randn(6, 2, 5, generator=g, dtype=d).log_softmax(-1)
    return {
        "mse_loss": (F.mse_loss, (x, p)), "l1_loss": (F.l1_loss, (x, p)), "smooth_l1_loss": (F.smooth_l1_loss, (x, p)),
        "huber_loss": (F.huber_loss, (x, p)), "binary_cross_entropy": (F.binary_cross_entropy, (p, p)),
        "binary_cross_entropy_with_logits": (F.binary_cross_entropy_with_logits, (x, p)),
        "cross_entropy": (F.cross_entropy, (x, t)), "nll_loss": (F.nll_loss, (x, t)),
        "kl_div": (F.kl_div, (x.log_softmax(1), p)), "poisson_nll_loss": (F.poisson_nll_loss, (x, p)),
        "gaussian_nll_loss": (F.gaussian_nll_loss, (x, p, p + 0.5)), "soft_margin_loss": (F.soft_margin_loss, (x, s)),
        "multilabel_soft_margin_loss": (F.multilabel_soft_margin_loss, (x, (p > 0.5).to(d))),
        "multi_margin_loss": (F.multi_margin_loss, (x, t)),
        "multilabel_margin_loss": (F.multilabel_margin_loss, (x, torch.tensor([[1, 3, -1, 0, 0]] * 4))),
        "hinge_embedding_loss": (F.hinge_embedding_loss, (x, s)),
        "margin_ranking_loss": (F.margin_ranking_loss, (v, v2, y.sign())),
        "cosine_embedding_loss": (F.cosine_embedding_loss, (x, p, y.sign())),
        "triplet_margin_loss": (F.triplet_margin_loss, (x, p, s)),
        "ctc_loss": (F.ctc_loss, (lp, torch.tensor([[1, 2], [3, 3]]), torch.tensor([6, 5]), torch.tensor([2, 2]))),
    }


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bfloat16", "float16"])
@pytest.mark.parametrize("loss", list(_calls(torch.float32)))
def test_a_loss_under_autocast_is_torchs_in_value_and_dtype(loss, dtype):
    native, arrays = _calls(dtype)[loss]
    with torch.autocast("cpu", dtype=dtype):
        want, got = native(*arrays), getattr(lossreg, loss)(*arrays)
    assert got.dtype == want.dtype, f"{loss}: {got.dtype}, torch {want.dtype}"
    torch.testing.assert_close(got, want, rtol=1e-5 if want.dtype == torch.float32 else 1e-2, atol=1e-6)


def test_training_under_autocast_gets_torchs_loss_and_gradients_eager_and_compiled():
    g = torch.Generator().manual_seed(1)
    layer = torch.nn.Linear(8, 5)
    x, t = torch.randn(16, 8, generator=g), torch.randint(0, 5, (16,), generator=g)
    results = []
    for loss in (torch.nn.CrossEntropyLoss(), LT.CrossEntropyLoss(),
                 torch.compile(LT.CrossEntropyLoss(), fullgraph=True)):
        layer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            value = loss(layer(x), t)
        value.backward()
        results.append((value.dtype, value.detach(), layer.weight.grad.clone()))
    for (dtype, value, grad), exact in zip(results[1:], (True, False)):
        assert dtype == torch.float32
        # Eager, torch's own operator on the same float32 logits: bit for bit. Compiled, inductor's
        # fused kernel may sum in another order (an ulp apart).
        tolerance = {"rtol": 0, "atol": 0} if exact else {}
        torch.testing.assert_close(value, results[0][1], **tolerance)
        torch.testing.assert_close(grad, results[0][2], **tolerance)


def test_outside_autocast_half_precision_stays_half():
    x, t = torch.randn(4, 5).bfloat16(), torch.randint(0, 5, (4,))
    assert lossreg.cross_entropy(x, t).dtype == torch.bfloat16
    assert lossreg.huber_loss(x, x.flip(0)).dtype == torch.bfloat16


@pytest.mark.parametrize("loss", ["mse_loss", "l1_loss", "huber_loss"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_weighted_regression_loss_under_autocast_is_torchs_too(loss, reduction, dtype):
    """torch composes weighted MSE and L1 of ordinary operations, which CPU autocast runs in the
    half dtype (its weighted Huber is the autocast-listed operator times the weights: float32)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 4, generator=g, dtype=dtype).requires_grad_()
    t, w = torch.randn(5, 4, generator=g, dtype=dtype), torch.rand(5, 4, generator=g, dtype=dtype) + 0.5
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = getattr(F, loss)(x, t, weight=w, reduction=reduction)
        got = getattr(lossreg, loss)(x, t, weight=w, reduction=reduction)
        module = getattr(LT, lossreg.spec(loss).class_name)(weight=w, reduction=reduction)(x, t)
    for out in (got, module):
        assert out.dtype == want.dtype
        torch.testing.assert_close(out, want)
        torch.testing.assert_close(torch.autograd.grad(out.sum(), x)[0],
                                   torch.autograd.grad(want.sum(), x, retain_graph=True)[0])


@lossreg.define_loss(class_name="ContrastLoss", differentiable=("input", "other"))
def _contrast_loss(input, other, /, *, reduction: str = "mean"):  # noqa: ANN001, ANN202
    """A plugin's loss of a matmul and a softmax: -log softmax(x yᵀ)[i, i], as cross-entropy."""
    xp = lossreg.toolkit.namespace("contrast_loss", input=input, other=other)
    logits = xp.matmul(input, xp.permute_dims(other, (1, 0)))
    _, shifted, log_sum = lossreg.toolkit.log_softmax_parts(xp, logits)
    index = xp.arange(input.shape[0])
    own = xp.sum(xp.where(index[:, None] == index[None, :], shifted, 0.0), axis=1)
    return lossreg.toolkit.reduce(xp, log_sum - own, reduction, input.dtype)


def test_a_plugins_torch_autocast_kernel_gives_the_float32_loss_under_autocast():
    """``lossreg.kernels.torch_autocast(loss)``: under autocast, a plugin's loss runs as torch runs
    ``cross_entropy`` there (its matmul too, which autocast would take to bfloat16); outside, as called."""
    import types

    from lossreg.kernels import torch_autocast

    plugin = types.SimpleNamespace(
        lossreg_losses=lossreg.hookimpl(lambda: [_contrast_loss]),
        lossreg_kernels=lossreg.hookimpl(lambda: [lossreg.Kernel(loss="_contrast_loss", backend="torch",
                                                                 function=torch_autocast(_contrast_loss))]))
    lossreg.register_plugin(plugin, name="contrast")
    try:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(16, 8, generator=g)
        y = x + 0.1 * torch.randn(16, 8, generator=g)
        want = _contrast_loss(x.double() * 10, y.double())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = _contrast_loss(x * 10, y)
            got_half = _contrast_loss((x * 10).bfloat16(), y.bfloat16())
            with lossreg.use_kernels(False):
                op_by_op = _contrast_loss(x * 10, y)
        assert got.dtype == got_half.dtype == torch.float32
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=0)
        assert abs(op_by_op.double() - want) > 100 * abs(got.double() - want)  # what autocast's bfloat16 matmul did
        assert _contrast_loss(x.bfloat16(), y.bfloat16()).dtype == torch.bfloat16  # outside autocast: as called
    finally:
        lossreg.unregister_plugin("contrast")
