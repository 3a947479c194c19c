"""A torch user's training code, in ways the per-loss transform and module tests do not reach.

Each test is one pattern of real training code that gave a different answer from torch.nn's (or
crashed) before it was fixed: a second backward pass through ``linear_cross_entropy``
(``retain_graph=True``, as ``gradcheck`` and multi-loss training loops do), forward-mode AD with
``torch.autograd.forward_ad`` dual tensors (``torch.func.vmap`` inside their dual level too), the
dtype of ``torch.func.jvp`` in float32, ``torch.func.functionalize``, and ``torch.func.vmap`` over CTC
targets or lengths alone.
"""

from __future__ import annotations

import pytest
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F

import lossreg


def _lce_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(6, 4, dtype=torch.float64, generator=g)
    weight = torch.randn(5, 4, dtype=torch.float64, generator=g)
    return hidden, weight, torch.randint(0, 5, (6,), generator=g)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_linear_cross_entropy_backward_twice_with_retain_graph_accumulates_as_torch(reduction: str) -> None:
    hidden, weight, target = _lce_inputs()
    ours = [hidden.clone().requires_grad_(), weight.clone().requires_grad_()]
    theirs = [hidden.clone().requires_grad_(), weight.clone().requires_grad_()]
    loss = lossreg.linear_cross_entropy(*ours, target, reduction=reduction)
    loss.backward(retain_graph=True)
    (2 * loss).backward()  # the gradients made in the forward pass were scaled in place by the first pass
    reference = F.cross_entropy(theirs[0] @ theirs[1].T, target, reduction=reduction)
    reference.backward(retain_graph=True)
    (2 * reference).backward()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.grad, b.grad)


def test_linear_cross_entropy_passes_gradcheck() -> None:
    hidden, weight, target = _lce_inputs()
    inputs = (hidden.requires_grad_(), weight.requires_grad_())
    assert torch.autograd.gradcheck(lambda h, w: lossreg.linear_cross_entropy(h, w, target), inputs)


def test_linear_cross_entropy_gives_dual_tensors_their_tangent() -> None:
    hidden, weight, target = _lce_inputs()
    with fwAD.dual_level():  # inputs that do not require grad: torch's operator alone returned no tangent
        dual = fwAD.make_dual(hidden, torch.ones_like(hidden))
        tangent = fwAD.unpack_dual(lossreg.linear_cross_entropy(dual, weight, target)).tangent
        expected = fwAD.unpack_dual(F.cross_entropy(dual @ weight.T, target)).tangent
    torch.testing.assert_close(tangent, expected)


# The torch kernel read the values of each (it checked only the plain log-probabilities); the
# portable definition read the targets' validity mask, computed from the vmapped lengths.
@pytest.mark.parametrize(("batched", "kernels"), [("targets", True), ("input_lengths", True),
                                                  ("target_lengths", True), ("target_lengths", False)])
def test_ctc_vmapped_over_targets_or_lengths_alone(batched: str, kernels: bool) -> None:
    g = torch.Generator().manual_seed(0)
    log_probs = torch.randn(7, 3, 5, dtype=torch.float64, generator=g).log_softmax(-1)
    arrays = {"targets": torch.randint(1, 5, (3, 3), generator=g), "input_lengths": torch.tensor([7, 6, 7]),
              "target_lengths": torch.tensor([3, 1, 2])}
    stack = {"targets": torch.randint(1, 5, (4, 3, 3), generator=g),
             "input_lengths": torch.tensor([[7, 6, 7], [5, 7, 4], [7, 7, 7], [3, 4, 5]]),
             "target_lengths": torch.tensor([[3, 1, 2], [0, 3, 3], [1, 1, 1], [2, 0, 3]])}[batched]

    def call(loss, values):
        return loss(log_probs, *({**arrays, batched: values}).values())

    with lossreg.use_kernels(kernels):
        got = torch.func.vmap(lambda v: call(lossreg.ctc_loss, v))(stack)
    expected = torch.stack([call(F.ctc_loss, v) for v in stack])
    torch.testing.assert_close(got, expected)


# Inside a forward-mode dual level, the kernel looked for tangents on the tensors vmap batches, whose
# unpack_dual has no batching rule: torch's RuntimeError where F.linear_cross_entropy answers.
def test_linear_cross_entropy_vmapped_inside_a_dual_level_gives_torchs_tangent() -> None:
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 4, 6, dtype=torch.float64, generator=g)
    weight = torch.randn(5, 6, dtype=torch.float64, generator=g)
    target = torch.randint(0, 5, (3, 4), generator=g)
    tangent = torch.randn(hidden.shape, dtype=torch.float64, generator=g)
    results = []
    for loss in (lossreg.linear_cross_entropy, F.linear_cross_entropy):
        with fwAD.dual_level():
            plain = torch.func.vmap(lambda h, t: loss(h, weight, t))(hidden, target)
            dual = fwAD.unpack_dual(torch.func.vmap(lambda h, t: loss(h, weight, t))(fwAD.make_dual(hidden, tangent),
                                                                                     target))
            results.append((plain, dual.primal, dual.tangent))
    torch.testing.assert_close(results[0], results[1], rtol=1e-10, atol=1e-12)


# The mean's guard made 0 as summed * 0.0, whose tangent under torch.func.jvp is float64 for a 0-d
# float32 sum (torch promotes the Python float as a 0-d float64 tensor there): jvp and jacfwd of a
# float32 "mean" were float64, where torch's are float32.
@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "portable"])
def test_linear_cross_entropy_forward_mode_keeps_float32(kernels: bool) -> None:
    hidden, weight, target = (x.float() if x.is_floating_point() else x for x in _lce_inputs())
    tangent = torch.ones_like(hidden)
    with lossreg.use_kernels(kernels):
        got = torch.func.jvp(lambda h: lossreg.linear_cross_entropy(h, weight, target), (hidden,), (tangent,))
        jacobian = torch.func.jacfwd(lambda h: lossreg.linear_cross_entropy(h, weight, target))(hidden)
    want = torch.func.jvp(lambda h: F.linear_cross_entropy(h, weight, target), (hidden,), (tangent,))
    torch.testing.assert_close(got, want)  # dtypes too
    torch.testing.assert_close(jacobian, torch.func.jacfwd(lambda h: F.linear_cross_entropy(h, weight, target))(hidden))


# torch.func.functionalize (make_fx(functionalize(f)), an export flow) has no rule for the
# autograd.Function that carries the kernel's operators under torch.func: torch's "NYI: Functionalize
# rule for custom_function_call", where F.linear_cross_entropy functionalizes.
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_linear_cross_entropy_under_functionalize_gives_torchs_value_and_gradients(reduction: str) -> None:
    from torch.fx.experimental.proxy_tensor import make_fx

    hidden, weight, target = _lce_inputs()
    both = (0, 1)
    transforms = {
        "functionalize": lambda f: torch.func.functionalize(f)(hidden, weight),
        "grad of functionalize": lambda f: torch.func.grad(lambda h, w: torch.func.functionalize(f)(h, w).sum(),
                                                           both)(hidden, weight),
        "functionalize of grad": lambda f: torch.func.functionalize(torch.func.grad(lambda h, w: f(h, w).sum(),
                                                                                    both))(hidden, weight),
        "make_fx of functionalize": lambda f: make_fx(torch.func.functionalize(f))(hidden, weight)(hidden, weight),
    }
    for what, transform in transforms.items():
        got = transform(lambda h, w: lossreg.linear_cross_entropy(h, w, target, reduction=reduction))
        want = transform(lambda h, w: F.linear_cross_entropy(h, w, target, reduction=reduction))
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12, msg=lambda m: f"{what}: {m}")
