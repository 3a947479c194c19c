"""Higher-order derivatives as meta-learning code asks for them: torch.func inside, eager autograd outside.

A MAML-style inner step takes the gradient of the loss with ``torch.func.grad`` (or ``vjp``) with
respect to fast weights, and the outer step differentiates a function of that gradient with plain
``backward()`` with respect to tensors that eager autograd tracks: the features the head sees, or
the meta-parameters the function closes over. torch's ``F.linear_cross_entropy`` gives the
second-order answer there. ``linear_cross_entropy``'s torch kernel computes its gradient with
operators outside autograd, so the kernel declines such calls and the portable definition
(holding the logits, as torch does) answers; with nothing for eager autograd to record (the
closed-over tensors need no gradient, or grad mode is off outside the transform) the operator
still runs, so per-sample gradients of detached parameters keep the chunked kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import lossreg

D = torch.float64


def _head(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    hidden, weight = torch.randn(5, 3, dtype=D, generator=g), torch.randn(7, 3, dtype=D, generator=g)
    return hidden, weight, torch.tensor([0, 6, 3, 1, 2]), torch.randn(7, 3, dtype=D, generator=g)


def _inner_step_then_outer_backward(loss: Callable[..., Any], reduction: str, inner: str) -> torch.Tensor:
    """The features' gradient of ``<∇_W inner(W), v>``, ``∇_W`` by torch.func, the outer by backward().

    The inner objective adds a term in the features, so the outer gradient exists whatever the
    loss's part is: a loss whose part went missing gives a wrong number, not an error."""
    hidden, weight, target, v = _head()
    h = hidden.clone().requires_grad_()

    def objective(w: torch.Tensor) -> torch.Tensor:
        return loss(h, w, target, reduction=reduction).sum() + (w * h.mean(0)).sum()

    if inner == "grad":
        grad_w = torch.func.grad(objective)(weight)
    else:
        _, pullback = torch.func.vjp(objective, weight)
        grad_w = pullback(torch.ones((), dtype=D))[0]
    (grad_w * v).sum().backward()
    assert h.grad is not None
    return h.grad


@pytest.mark.parametrize("inner", ["grad", "vjp"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_linear_cross_entropy_inner_torch_func_gradient_is_differentiated_by_an_outer_backward(reduction, inner):
    want = _inner_step_then_outer_backward(F.linear_cross_entropy, reduction, inner)
    got = _inner_step_then_outer_backward(lossreg.linear_cross_entropy, reduction, inner)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_linear_cross_entropy_inner_gradient_with_respect_to_features_reaches_closed_over_weights(reduction):
    """The other way round: ∇_h by torch.func at the hidden states, the head's weight (closed over,
    requiring grad) differentiated by the outer backward(). Before, the outer call raised torch's
    "element 0 of tensors does not require grad and does not have a grad_fn"."""
    hidden, weight, target, _ = _head(1)
    grads = []
    for loss in (F.linear_cross_entropy, lossreg.linear_cross_entropy):
        w = weight.clone().requires_grad_()
        grad_h = torch.func.grad(lambda h: loss(h, w, target, reduction=reduction).sum())(hidden)
        (grad_h ** 2).sum().backward()
        grads.append(w.grad)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-10, atol=1e-12)


def _ran_the_operator(call: Callable[[], Any]) -> bool:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        call()
    return "lossreg::linear_cross_entropy" in {e.name for e in prof.events()}


def test_linear_cross_entropy_keeps_its_operator_where_eager_autograd_records_nothing():
    hidden, weight, target, _ = _head(2)
    parameter = torch.nn.Parameter(weight.clone())

    def grad_of(w: torch.Tensor) -> Callable[[], Any]:
        return lambda: torch.func.grad(lambda x: lossreg.linear_cross_entropy(hidden, x, target))(w)

    assert _ran_the_operator(grad_of(weight))  # a plain tensor: nothing beneath the transform to record
    with torch.no_grad():  # eager autograd off outside: a Parameter's gradient is recorded by torch.func alone
        assert _ran_the_operator(grad_of(parameter))
    assert not _ran_the_operator(grad_of(parameter))  # recorded beneath: the portable definition answers


def test_maml_meta_gradient_through_the_module_form_and_functional_call():
    """The textbook MAML step: fast weights ``θ - α ∇θ L_support(θ)`` by torch.func.grad over
    functional_call (the parameters themselves passed, as ``dict(model.named_parameters())``), then
    ``L_query(fast).backward()``. The meta-gradient equals the head built on F.linear_cross_entropy's
    (before, it silently lacked the inner loss's second-order part: off by 0.016 here)."""
    import lossreg.torch

    class Criterion(torch.nn.Module):
        def forward(self, h: torch.Tensor, w: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return F.linear_cross_entropy(h, w, t)

    class Head(torch.nn.Module):
        def __init__(self, criterion: torch.nn.Module) -> None:
            super().__init__()
            self.proj, self.criterion = torch.nn.Linear(3, 7, dtype=D), criterion

        def forward(self, h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.criterion(h, self.proj.weight, t)

    g = torch.Generator().manual_seed(3)
    support, query = torch.randn(5, 3, dtype=D, generator=g), torch.randn(5, 3, dtype=D, generator=g)
    t_support, t_query = torch.randint(0, 7, (5,), generator=g), torch.randint(0, 7, (5,), generator=g)
    meta_gradients = []
    for criterion in (Criterion(), lossreg.torch.LinearCrossEntropyLoss()):
        torch.manual_seed(1)
        head = Head(criterion)
        params = dict(head.named_parameters())
        grads = torch.func.grad(lambda p: torch.func.functional_call(head, p, (support, t_support)))(params)
        fast = {k: params[k] - 0.5 * grads[k] for k in params}
        torch.func.functional_call(head, fast, (query, t_query)).backward()
        meta_gradients.append(head.proj.weight.grad)
    torch.testing.assert_close(meta_gradients[1], meta_gradients[0], rtol=1e-10, atol=1e-12)


def _per_sample_losses_then_a_gradient_penalty(loss: Callable[..., Any], reduction: str) -> torch.Tensor:
    """Per-sample losses by torch.func.vmap over a batch of sequences with a shared head weight, then a
    penalty on the weight's gradient by ``backward(create_graph=True)``: the penalty's own gradient."""
    g = torch.Generator().manual_seed(4)
    hidden, targets = torch.randn(3, 4, 3, dtype=D, generator=g), torch.randint(0, 7, (3, 4), generator=g)
    weight = torch.randn(7, 3, dtype=D, generator=g).requires_grad_()
    per_sample = torch.func.vmap(lambda h, t: loss(h, weight, t, reduction=reduction))(hidden, targets)
    grad_w, = torch.autograd.grad(per_sample.sum(), weight, create_graph=True)
    return torch.autograd.grad((grad_w ** 2).sum(), weight)[0]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_linear_cross_entropy_under_vmap_then_create_graph_is_lossregs_refusal(reduction):
    """The operators' batched gradient cannot be differentiated again: lossreg's UnsupportedError naming
    the way out (before: torch's "appears to not have been used in the graph" or "element 0 of tensors
    does not require grad", and with allow_unused=True a second derivative of zero); use_kernels(False)
    gives F.linear_cross_entropy's answer, and a first-order backward keeps the operators' answer."""
    with pytest.raises(lossreg.UnsupportedError, match=r"^linear_cross_entropy: under torch.func.vmap .*"
                                                        r"lossreg.use_kernels\(False\)"):
        _per_sample_losses_then_a_gradient_penalty(lossreg.linear_cross_entropy, reduction)
    want = _per_sample_losses_then_a_gradient_penalty(F.linear_cross_entropy, reduction)
    with lossreg.use_kernels(False):
        got = _per_sample_losses_then_a_gradient_penalty(lossreg.linear_cross_entropy, reduction)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    g = torch.Generator().manual_seed(5)
    hidden, targets = torch.randn(3, 4, 3, dtype=D, generator=g), torch.randint(0, 7, (3, 4), generator=g)
    grads = []
    for loss in (F.linear_cross_entropy, lossreg.linear_cross_entropy):
        weight = torch.randn(7, 3, dtype=D, generator=torch.Generator().manual_seed(6)).requires_grad_()
        torch.func.vmap(lambda h, t: loss(h, weight, t, reduction=reduction))(hidden, targets).sum().backward()
        grads.append(weight.grad)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-10, atol=1e-12)
