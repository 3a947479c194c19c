"""The dispatching form's first question on torch: is torch.compile tracing this call?

Dynamo runs the question rather than tracing it: a traced call loads the registry outside the
graph and chooses the kernel without reading the kernel cache (Dynamo would guard on it), an
eager call reads the cache. Eager and compiled calls alternate, in either order, on one graph.
"""

from __future__ import annotations

import warnings

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
