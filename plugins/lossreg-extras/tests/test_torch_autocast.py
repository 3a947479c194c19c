"""The extras inside ``torch.autocast``: each loss is computed in float32 arithmetic there, as
outside it. NT-Xent, a softmax cross-entropy over similarities, gives the float32 loss there, as
torch's ``cross_entropy`` does (its kernel, ``lossreg.kernels.torch_autocast``); the others
return their inputs' dtype (bfloat16 activations give a bfloat16 loss, rounded once from float32)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import lossreg  # noqa: E402
import lossreg.torch as LT  # noqa: E402


def _views(n: int = 64, d: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    u = torch.randn(n, d, generator=g)
    return u, u + 0.3 * torch.randn(n, d, generator=g)  # positives near their anchors, as after training


def _under_autocast(loss, *arrays):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return loss(*arrays)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("temperature", [0.5, 0.07])
def test_nt_xent_of_float32_embeddings_under_autocast_is_the_float32_loss(temperature, compiled):
    # autocast runs matmul in bfloat16, float32 arguments included: the similarities were bfloat16
    # next to the float32 positive pairs, and at τ = 0.07 the loss was 6x the float32 one (0.0082
    # for 0.0013), its gradient 600% off. With autocast off inside the loss it is the float32 loss.
    u, v = _views()
    loss = LT.NTXentLoss(temperature=temperature)
    run = torch.compile(_under_autocast, fullgraph=True, backend="aot_eager") if compiled else _under_autocast
    a, b = u.clone().requires_grad_(), u.clone().requires_grad_()
    got = run(loss, a, v)
    want = lossreg.nt_xent_loss(b, v, temperature=temperature)  # outside autocast
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    got.backward(), want.backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-7)


def test_nt_xent_of_bfloat16_activations_under_autocast_is_the_float32_loss_of_them():
    # A projection head's bfloat16 outputs: the loss of those rounded embeddings in float32, as
    # torch's cross_entropy gives it under autocast (the similarities were bfloat16 products).
    u, v = _views()
    head = torch.nn.Linear(32, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = head(u), head(v)
        got = lossreg.nt_xent_loss(a, b, temperature=0.1)
    want = lossreg.nt_xent_loss(a.detach().double(), b.detach().double(), temperature=0.1)
    assert a.dtype == torch.bfloat16 and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=0)


def test_outside_autocast_the_kernel_is_the_portable_definition():
    # As called: bfloat16 embeddings give a bfloat16 loss there.
    u, v = _views()
    kernel = lossreg.registry().kernel_for("nt_xent_loss", u)
    assert kernel is not None
    torch.testing.assert_close(kernel(u, v), lossreg.nt_xent_loss.portable(u, v), rtol=0, atol=0)
    assert kernel(u.bfloat16(), v.bfloat16()).dtype == torch.bfloat16
