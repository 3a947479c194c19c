"""The dispatching form's first question on torch: is torch.compile tracing this call?

Dynamo runs the question rather than tracing it: a traced call loads the registry outside the
graph and chooses the kernel without reading the kernel cache (Dynamo would guard on it), an
eager call reads the cache. Eager and compiled calls alternate, in either order, on one graph.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch._dynamo.utils import counters

import lossreg


def test_eager_and_compiled_calls_alternate_on_one_graph() -> None:
    torch._dynamo.reset()
    x, t = torch.randn(3, 4, dtype=torch.float64), torch.tensor([0, 3, 1])
    want = torch.nn.functional.cross_entropy(x, t)
    compiled = torch.compile(lambda a, b: lossreg.cross_entropy(a, b), fullgraph=True, backend="aot_eager")
    before = counters["stats"]["unique_graphs"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(2):
            torch.testing.assert_close(compiled(x, t), want)
            torch.testing.assert_close(lossreg.cross_entropy(x, t), want)
            torch.testing.assert_close(lossreg.mse_loss(x, x), torch.zeros((), dtype=torch.float64))
    assert counters["stats"]["unique_graphs"] - before == 1


def test_the_question_is_answered_yes_under_compile_and_no_in_eager_code() -> None:
    from lossreg import registry

    torch._dynamo.reset()
    compiled = torch.compile(lambda x: x + 1 if registry._compiling() else x - 1, fullgraph=True, backend="eager")
    x = torch.zeros(2)
    torch.testing.assert_close(compiled(x), x + 1)
    assert not registry._compiling()


# The portable definitions of the losses that have torch kernels, as torch.compile sees them
# with kernels off (the kernels themselves are compiled in test_torch_transforms.py).
PORTABLE = {
    "mse_loss": lambda: (torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)),
    "l1_loss": lambda: (torch.tensor([[0.0, 1.0], [-2.0, 0.5]], dtype=torch.float64), torch.zeros(2, 2, dtype=torch.float64)),
    "binary_cross_entropy": lambda: (torch.rand(3, 4, dtype=torch.float64), torch.rand(3, 4, dtype=torch.float64)),
    "binary_cross_entropy_with_logits": lambda: (torch.tensor([0.0, 3.0, -3.0], dtype=torch.float64),
                                                 torch.tensor([0.3, 1.0, 0.0], dtype=torch.float64)),
    "cross_entropy": lambda: (torch.randn(3, 4, dtype=torch.float64), torch.tensor([0, 3, -100])),
}


@pytest.mark.parametrize("name", sorted(PORTABLE))
def test_portable_definitions_compile_with_fullgraph(name: str) -> None:
    """Values and input gradients (ties at 0 included) as in eager torch.nn.functional."""
    torch._dynamo.reset()
    x, t = PORTABLE[name]()
    native = getattr(torch.nn.functional, name)
    compiled = torch.compile(lambda a, b: getattr(lossreg, name)(a, b, reduction="sum"), fullgraph=True,
                             backend="aot_eager")
    xg, xw = x.clone().requires_grad_(), x.clone().requires_grad_()
    with lossreg.use_kernels(False), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = compiled(xg, t)
    want = native(xw, t, reduction="sum")
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(torch.autograd.grad(got, xg)[0], torch.autograd.grad(want, xw)[0])


@pytest.mark.parametrize("shape", [(4, 5), (4, 5, 3)], ids=["(N, C)", "(N, C, d)"])
def test_the_portable_cross_entropy_compiles_once_for_every_batch_size(shape: tuple[int, ...]) -> None:
    """The target's logit is gathered along the class axis (torch's gather): its gradient is added
    to the softmax's in place, and the batch size stays symbolic (array-api-compat's
    take_along_dim compiled one graph per size)."""
    torch._dynamo.reset()
    compiled = torch.compile(lambda a, b: lossreg.cross_entropy(a, b), fullgraph=True, backend="aot_eager",
                             dynamic=True)
    before = counters["stats"]["unique_graphs"]
    for n in (4, 7, 9):
        x = torch.randn(n, *shape[1:], dtype=torch.float64, requires_grad=True)
        t = torch.randint(0, shape[1], (n, *shape[2:]))
        with lossreg.use_kernels(False):
            got = compiled(x, t)
        (g,) = torch.autograd.grad(got, x)
        x2 = x.detach().requires_grad_()
        want = torch.nn.functional.cross_entropy(x2, t)
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(g, torch.autograd.grad(want, x2)[0])
    assert counters["stats"]["unique_graphs"] - before == 1
