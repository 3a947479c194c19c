"""The dispatching form's first question on torch: is Dynamo tracing this call?

Eager calls ask ``torch.compiler.is_dynamo_compiling`` (one call, the cheapest question), traced
calls then load the registry outside the graph and choose the kernel without reading the kernel
cache (Dynamo would guard on it). Eager and compiled calls may alternate without recompiling.
"""

from __future__ import annotations

import warnings

import torch
from torch._dynamo.utils import counters

import lossreg
from lossreg import registry


def test_eager_calls_ask_the_cheap_question_once_torch_is_imported() -> None:
    x, t = torch.randn(3, 4), torch.tensor([0, 3, 1])
    lossreg.cross_entropy(x, t)
    assert registry._tracing is torch.compiler.is_dynamo_compiling


def test_eager_and_compiled_calls_alternate_on_one_graph() -> None:
    torch._dynamo.reset()
    x, t = torch.randn(3, 4, dtype=torch.float64), torch.tensor([0, 3, 1])
    want = torch.nn.functional.cross_entropy(x, t)
    compiled = torch.compile(lambda a, b: lossreg.cross_entropy(a, b), fullgraph=True, backend="aot_eager")
    before = counters["stats"]["unique_graphs"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(2):
            torch.testing.assert_close(lossreg.cross_entropy(x, t), want)
            torch.testing.assert_close(compiled(x, t), want)
            torch.testing.assert_close(lossreg.mse_loss(x, x), torch.zeros((), dtype=torch.float64))
    assert counters["stats"]["unique_graphs"] - before == 1
