"""A user-style hunt: torch.compile's and TorchScript's corners with lossreg's torch forms.

A PyTorch engineer who compiles training and evaluation steps that call lossreg's functional
forms, and who switches lossreg's behaviour with its context managers inside the compiled step.

The bug found: ``with lossreg.use_kernels(False):`` or ``with lossreg.value_checks("poison"):``
written inside a function compiled with ``fullgraph=True`` stopped Dynamo ("Unsupported context
manager: Dynamo does not know how to enter a `lock` context manager"): the overrides count the
open blocks under a ``threading.Lock``, which Dynamo cannot trace. Without ``fullgraph`` the
frame fell back to eager code around the block. The lock is now left out while Dynamo traces
(Dynamo replays the count's changes, which cancel, after the graph), so the block compiles into
the graph, and the compiled code follows it as eager code does.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from torch._dynamo.testing import CompileCounter

import lossreg
import lossreg.torch
from lossreg import registry as lossreg_registry
from lossreg import toolkit

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(autouse=True)
def _fresh_dynamo() -> Any:
    torch._dynamo.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    torch._dynamo.reset()


# BCE at exactly 0 tells the paths apart: torch's kernel's gradient is -(t - x) · 1e12, the
# portable definition's (1 - t) / (1 - x) = 0.2.
X = torch.tensor([0.0, 0.5], dtype=torch.float64)
T = torch.tensor([0.8, 0.5], dtype=torch.float64)


def _slope(f: Any) -> float:
    x = X.clone().requires_grad_(True)
    return float(torch.autograd.grad(f(x, T), x)[0][0])


def _bce_without_kernels(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    with lossreg.use_kernels(False):
        return lossreg.binary_cross_entropy(x, t, reduction="sum")


def _bce_with_kernels(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return lossreg.binary_cross_entropy(x, t, reduction="sum")


def test_use_kernels_block_inside_a_fullgraph_compiled_function_compiles_and_is_followed() -> None:
    cnt = CompileCounter()
    compiled = torch.compile(_bce_without_kernels, backend=cnt, fullgraph=True)
    assert _slope(compiled) == pytest.approx(0.2) == _slope(_bce_without_kernels)
    assert _slope(compiled) == pytest.approx(0.2)
    assert cnt.frame_count == 1  # one graph, not recompiled by the block it holds
    # The block ends with the compiled call: the setting is back, in eager and compiled code alike.
    assert lossreg.kernels_enabled() and lossreg_registry._kernels_on.active == 0
    assert _slope(_bce_with_kernels) == pytest.approx(-0.8e12)
    assert _slope(torch.compile(_bce_with_kernels, backend="aot_eager", fullgraph=True)) == pytest.approx(-0.8e12)


def test_value_checks_block_inside_a_fullgraph_compiled_function_compiles() -> None:
    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with lossreg.value_checks("poison"):
            return lossreg.cross_entropy(x, y)

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 5, generator=g, dtype=torch.float64), torch.randint(0, 5, (6,), generator=g)
    compiled = torch.compile(step, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x, y), torch.nn.functional.cross_entropy(x, y))
    assert toolkit.check_mode() == "auto" and toolkit._check_mode.active == 0
    # Outside the block, eager code still raises for an invalid class index, as the default says.
    with pytest.raises(lossreg.LossValueError, match="target"):
        lossreg.cross_entropy(x, torch.full((6,), 7))


def test_a_block_in_compiled_code_leaves_the_blocks_open_around_it_in_force() -> None:
    """Dynamo writes back what the traced code changed after the graph: a count of open blocks
    changed in the trace would be written back as the constant it had then, over the blocks other
    threads open meanwhile; traced code changes only this thread's stack of settings."""
    compiled = torch.compile(_bce_with_kernels_inside, backend="aot_eager", fullgraph=True)
    with lossreg.use_kernels(False):
        assert lossreg_registry._kernels_on.active == 1
        assert _slope(compiled) == pytest.approx(-0.8e12)  # the inner block: kernels
        assert lossreg_registry._kernels_on.active == 1 and not lossreg.kernels_enabled()
        assert _slope(_bce_with_kernels) == pytest.approx(0.2)  # the outer block again
    assert lossreg_registry._kernels_on.active == 0 and lossreg.kernels_enabled()
    assert _slope(compiled) == pytest.approx(-0.8e12)


def _bce_with_kernels_inside(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    with lossreg.use_kernels(True):
        assert lossreg.kernels_enabled()  # read in the trace too
        return lossreg.binary_cross_entropy(x, t, reduction="sum")


# --- torch.jit.trace of a model holding CTCLoss -------------------------------------------------------
#
# The bug found: lossreg's CTC kernel differentiates in float64 (torch's float32 CTC gradient loses up
# to ~10 % of an element, see the kernel), but casts only where the call differentiates, a Python
# branch that torch.jit.trace bakes into its graph. torch.jit.trace's own check (check_trace=True, the
# default) retraces under no_grad, so a model whose log-probabilities require grad failed to trace
# ("TracingCheckError: Graphs differed across invocations!") where torch.nn.CTCLoss traces; and a
# program traced under no_grad, then trained, got torch's float32 gradient. A traced graph now casts
# always: it gives eager lossreg's gradient however it was traced.


class _Acoustic(torch.nn.Module):
    def __init__(self, crit: torch.nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(6, 5, dtype=dtype)
        self.crit = crit

    def forward(self, x: torch.Tensor, targets: torch.Tensor, il: torch.Tensor, tl: torch.Tensor) -> torch.Tensor:
        return self.crit(self.proj(x).log_softmax(2), targets, il, tl)


def _speech(n: int, dtype: torch.dtype, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(9, n, 6, dtype=dtype, generator=g), torch.randint(1, 5, (n, 3), generator=g),
            torch.full((n,), 9, dtype=torch.long), torch.randint(1, 4, (n,), generator=g))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_jit_trace_with_its_default_check_of_a_model_holding_ctc_loss_traces_as_torch_nns(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    model = _Acoustic(lossreg.torch.CTCLoss(zero_infinity=True), dtype)
    reference = _Acoustic(torch.nn.CTCLoss(zero_infinity=True), dtype)
    reference.load_state_dict(model.state_dict())
    torch.jit.trace(reference, _speech(4, dtype, 0))  # torch.nn's traces with the check
    traced = torch.jit.trace(model, _speech(4, dtype, 0))
    batch = _speech(6, dtype, 1)
    torch.testing.assert_close(traced(*batch), reference(*batch))


def test_a_ctc_model_traced_under_no_grad_then_trained_gets_eager_lossregs_gradient() -> None:
    torch.manual_seed(0)
    model = _Acoustic(lossreg.torch.CTCLoss(), torch.float32)
    with torch.no_grad():
        traced = torch.jit.trace(model, _speech(4, torch.float32, 0), check_trace=False)
    batch = _speech(6, torch.float32, 1)
    got = torch.autograd.grad(traced(*batch), list(traced.parameters()))
    want = torch.autograd.grad(model(*batch), list(model.parameters()))
    torch.testing.assert_close(got, want, rtol=0, atol=0)


# --- torch.jit.trace of a model holding LinearCrossEntropyLoss with learned class weights -------------
#
# The same bug in linear_cross_entropy: class weights that require grad go to the portable definition
# (the fused operator holds them constant), but only where grad mode is on. Traced with the default
# check, the graphs differed (TracingCheckError); traced (or exported by torch.export) under no_grad,
# the program ran the operator and the class weights never trained (no gradient, silently).


class _LM(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Linear(4, 6, dtype=torch.float64)
        self.head = torch.nn.Parameter(torch.randn(5, 6, dtype=torch.float64))
        self.crit = lossreg.torch.LinearCrossEntropyLoss(weight=torch.nn.Parameter(torch.linspace(0.5, 2.0, 5,
                                                                                               dtype=torch.float64)))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.crit(self.body(x), self.head, y)


def _tokens(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, dtype=torch.float64, generator=g), torch.randint(0, 5, (n,), generator=g)


@pytest.mark.parametrize("how", ["check_trace", "under_no_grad", "export_under_no_grad"])
def test_a_traced_lm_with_learned_class_weights_trains_them(how: str) -> None:
    torch.manual_seed(0)
    model = _LM()
    if how == "check_trace":
        traced = torch.jit.trace(model, _tokens(6, 0))
    elif how == "export_under_no_grad":
        with torch.no_grad():
            traced = torch.export.export(model, _tokens(6, 0)).module()
    else:
        with torch.no_grad():
            traced = torch.jit.trace(model, _tokens(6, 0), check_trace=False)
    x, y = _tokens(6 if how.startswith("export") else 9, 1)  # (the export's batch is static)
    got = torch.autograd.grad(traced(x, y), list(traced.parameters()), allow_unused=True)
    want = torch.autograd.grad(model(x, y), list(model.parameters()))
    assert None not in got, "a parameter got no gradient"
    assert [tuple(g.shape) for g in got] == [tuple(p.shape) for p in model.parameters()]
    torch.testing.assert_close(got, want)
    assert got[-1].abs().sum() > 0  # the class weights' gradient
