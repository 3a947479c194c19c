"""Inputs at the edges of the sizes users feed: long sequences, many classes, one row.

Structure only (how the work a call does grows with a size), never timings.
"""

from __future__ import annotations

import pytest

import lossreg

torch = pytest.importorskip("torch")
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402


class _Elements(TorchDispatchMode):
    """Counts the elements of every array the operators run under it produce."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.total += t.numel()
        return out


def _ctc_backward_elements(frames: int) -> int:
    """Elements produced by the backward pass of the portable CTC over ``frames`` frames."""
    g = torch.Generator().manual_seed(0)
    n, c, s = 2, 5, 8
    log_probs = torch.randn(frames, n, c, dtype=torch.float64, generator=g).log_softmax(-1).requires_grad_()
    targets = torch.randint(1, c, (n, s), generator=g)
    with lossreg.use_kernels(False):
        loss = lossreg.ctc_loss(log_probs, targets, torch.full((n,), frames), torch.full((n,), s))
    counter = _Elements()
    with counter:
        loss.backward()
    return counter.total


def test_the_portable_ctc_gradient_grows_linearly_with_the_number_of_frames():
    # Each frame's emissions were read as emit[t], whose gradient is an array of all T frames:
    # T of them made the backward pass O(T²) (T=1000, S=200: 25 s where torch takes 0.1 s).
    # Unstacked once, the frames' gradients are stacked once, and twice the frames is twice the work.
    short, long = _ctc_backward_elements(100), _ctc_backward_elements(200)
    assert long < 2.5 * short


@pytest.mark.parametrize("frames", [1, 2, 7])
def test_the_portable_ctc_over_a_few_frames_is_torchs_value_and_gradient(frames):
    g = torch.Generator().manual_seed(1)
    lp = torch.randn(frames, 3, 4, dtype=torch.float64, generator=g).log_softmax(-1)
    targets = torch.randint(1, 4, (3, 2), generator=g)
    il, tl = torch.full((3,), frames), torch.tensor([0, 1, 2])
    x, y = lp.clone().requires_grad_(), lp.clone().requires_grad_()
    with lossreg.use_kernels(False):
        ours = lossreg.ctc_loss(x, targets, il, tl, reduction="sum", zero_infinity=True)
    ref = torch.nn.functional.ctc_loss(y, targets, il, tl, reduction="sum", zero_infinity=True)
    ours.backward()
    ref.backward()
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(x.grad, y.grad)


def _linear_ce_backward_elements(tokens: int, trainable_class_weight: bool) -> int:
    """Elements produced by the backward pass of the chunked linear cross-entropy, 256 tokens a chunk."""
    g = torch.Generator().manual_seed(0)
    d, v = 16, 64
    hidden = torch.randn(tokens, d, generator=g, requires_grad=True)
    weight = torch.randn(v, d, generator=g, requires_grad=True)
    target = torch.randint(0, v, (tokens,), generator=g)
    class_weight = torch.rand(v, generator=g).requires_grad_(trainable_class_weight)
    with lossreg.use_kernels(not trainable_class_weight):  # a trainable one is the portable path's anyway
        loss = lossreg.linear_cross_entropy(hidden, weight, target, weight=class_weight, chunk_size=256)
    counter = _Elements()
    with counter:
        loss.backward()
    return counter.total


@pytest.mark.parametrize("trainable_class_weight", [False, True])
def test_the_chunked_linear_cross_entropy_gradient_grows_linearly_with_the_number_of_tokens(trainable_class_weight):
    # Each chunk's hidden states were a slice, whose gradient is an array of all N tokens: N / chunk
    # of them made the backward pass O(N² D / chunk) (N = 16,384 at V = 32,000: 128 full copies).
    short = _linear_ce_backward_elements(2048, trainable_class_weight)
    long = _linear_ce_backward_elements(4096, trainable_class_weight)
    assert long < 2.3 * short
