"""The extras inside ``torch.autocast``: each loss is computed in float32 arithmetic there, as
outside it, and returns its inputs' dtype (float32 embeddings give a float32 loss; the bfloat16
activations of an autocast region a bfloat16 one, rounded from float32)."""

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


def test_nt_xent_of_bfloat16_activations_under_autocast_is_computed_as_outside_it():
    # A projection head's bfloat16 outputs: the loss of those rounded embeddings in float32
    # arithmetic, returned in bfloat16, as outside autocast (the similarities were bfloat16 products).
    u, v = _views()
    head = torch.nn.Linear(32, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = head(u), head(v)
        got = lossreg.nt_xent_loss(a, b, temperature=0.1)
    want = lossreg.nt_xent_loss(a.detach().double(), b.detach().double(), temperature=0.1)
    assert a.dtype == got.dtype == torch.bfloat16
    assert got.float() == want.to(torch.bfloat16).float()  # the float64 loss, rounded once
