"""torch's autograd machinery around every loss, as a torch user drives it, against ``torch.nn.functional``.

What this file pins:

- The per-token losses of ``linear_cross_entropy(..., reduction="none")`` changed in place before
  the backward pass (``losses.mul_(mask)``, ``losses[padding] = 0``, ``losses.clamp_(max=...)``), as
  training loops mask or clip the per-token losses of ``F.cross_entropy``. torch's
  ``F.linear_cross_entropy`` takes it. The torch kernel returned a view made inside its custom
  operator (the per-token losses reshaped to their own shape), and autograd refuses in-place
  changes of such a view: "Output 0 of View is a view and is being modified inplace. This view
  was created inside a custom Function". Now the value and gradients are torch's.
- With kernels off, ``nll_loss``'s gradient under ``create_graph=True`` (a gradient penalty) is a
  constant with no graph, where torch's (and lossreg's torch kernel's) is recorded as a function
  of the input: ``torch.autograd.grad`` of it raised "element 0 of tensors does not require grad".
  README listed only the margin losses as differing so; it now names ``NLLLoss`` too.

Checked and holding (probed for every registered built-in loss, kernels on and off, with weights,
``pos_weight``, probability targets and label smoothing; not pinned here where other files hold
them): gradients of targets and weights where torch gives them (and torch.autograd.gradcheck of
lossreg's where torch refuses them); non-unit cotangents of "none"; transposed, step-sliced,
offset, expanded (stride-0) and negative-bit views of every array; channels_last and
channels_last_3d (N, C, H, W[, D]) scores and targets, empty axes included; aliased arguments (one
tensor as input and target, inputs that are views of one tensor); ``nn.Parameter`` arrays; a
``__torch_function__`` subclass (result type and values); ``saved_tensors_hooks`` packing to a
detached copy or to float32 and back; ``torch.utils.checkpoint`` (reentrant and not);
``retain_graph=True`` twice; tensor hooks; ``set_multithreading_enabled(False)``; anomaly mode;
in-place changes of inputs, integer targets and weights after the forward pass (lossreg raises
torch's version error or gives the gradient at the values of the call, never one at the changed
values); full backward hooks of the ``lossreg.torch`` modules; forward-mode dual tensors on each
array; ``jacobian(strategy="forward-mode", vectorize=True)``; ``is_grads_batched``; ``hvp``;
integer and bool label dtypes and mixed floating dtypes (README's "Smaller deliberate differences").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch_examples import BUILTIN, differentiable, example

import lossreg

D = torch.float64


def _lm_head(seed: int = 0, shape: tuple[int, ...] = (6,)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(*shape, 3, dtype=D, generator=g)
    weight = torch.randn(5, 3, dtype=D, generator=g)
    target = torch.randint(0, 5, shape, generator=g)
    return hidden, weight, target


def _masked_in_place(losses: torch.Tensor, how: str) -> None:
    if how == "mul_":
        losses.mul_(torch.linspace(0.0, 2.0, losses.numel(), dtype=losses.dtype).reshape(losses.shape))
    elif how == "setitem":
        losses[0] = 0.0
    else:
        losses.clamp_(max=1.0)


def _torchs(hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, reduction: str) -> torch.Tensor:
    """torch's per-token losses; its function takes (tokens, features), so a batch of sequences is
    flattened and its losses shaped back, as lossreg shapes them."""
    flat = F.linear_cross_entropy(hidden.reshape(-1, hidden.shape[-1]), weight, target.reshape(-1), reduction=reduction)
    return flat.reshape(target.shape)


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "portable"])
@pytest.mark.parametrize("shape", [(6,), (2, 3)], ids=["tokens", "batch-by-sequence"])
@pytest.mark.parametrize("how", ["mul_", "setitem", "clamp_"])
def test_linear_cross_entropy_per_token_losses_can_be_masked_in_place_as_torchs(how, shape, kernels) -> None:
    hidden, weight, target = _lm_head(shape=shape)
    grads = []
    for loss in (_torchs, lossreg.linear_cross_entropy):
        h, w = hidden.clone().requires_grad_(True), weight.clone().requires_grad_(True)
        with lossreg.use_kernels(kernels):
            losses = loss(h, w, target, reduction="none")
        _masked_in_place(losses, how)
        losses.sum().backward()
        grads.append((losses.detach(), h.grad, w.grad))
    (want_value, want_dh, want_dw), (value, dh, dw) = grads
    torch.testing.assert_close(value, want_value)
    torch.testing.assert_close(dh, want_dh)
    torch.testing.assert_close(dw, want_dw)


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "portable"])
@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_unreduced_losses_changed_in_place_before_backward_give_torchs_gradients(name: str, kernels: bool) -> None:
    """``losses = loss(..., reduction="none"); losses.mul_(mask); losses.sum().backward()``: where
    torch's function takes it, lossreg's does, with torch's value and gradients (torch's CTC
    saves its result and raises its version error; lossreg's portable CTC may answer)."""
    inputs, options = example(name)
    diff = differentiable(name, inputs)
    results = []
    for loss in (getattr(F, name), getattr(lossreg, name)):
        arrays = {k: torch.as_tensor(np.asarray(v)).clone().requires_grad_(k in diff) for k, v in inputs.items()}
        with lossreg.use_kernels(kernels):
            losses = loss(*arrays.values(), **options, reduction="none")
        mask = torch.linspace(0.0, 2.0, losses.numel(), dtype=losses.dtype).reshape(losses.shape)
        losses.mul_(mask)
        try:
            results.append((losses.detach(), torch.autograd.grad(losses.sum(), [arrays[k] for k in diff])))
        except RuntimeError as error:  # only CTC's, whose kernel is torch's operator
            assert name == "ctc_loss" and "modified by an inplace operation" in str(error)
            results.append(None)
    if results[0] is None:  # torch raised: nothing to compare lossreg's answer with
        return
    (want, want_grads), (got, got_grads) = results
    torch.testing.assert_close(got, want)
    for key, g, w in zip(diff, got_grads, want_grads):
        torch.testing.assert_close(g, w, msg=lambda m, key=key: f"d/d{key}: {m}")


README = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8").split())


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "portable"])
def test_nll_loss_gradient_is_recorded_as_a_function_of_the_input_only_by_its_torch_kernel(kernels: bool) -> None:
    """A gradient penalty asks for the graph of the gradient (``create_graph=True``). torch's
    NLLLoss records its gradient as a function of the input (whose derivative is 0); so does
    lossreg's torch kernel, while the portable definition's gradient, a constant, has no graph:
    README says so beside the margin losses that behave alike."""
    g = torch.Generator().manual_seed(0)
    x = torch.log_softmax(torch.randn(4, 3, dtype=D, generator=g), 1).requires_grad_(True)
    target = torch.tensor([0, 2, 1, 2])
    want, = torch.autograd.grad(F.nll_loss(x, target), x, create_graph=True)
    with lossreg.use_kernels(kernels):
        got, = torch.autograd.grad(lossreg.nll_loss(x, target), x, create_graph=True)
    torch.testing.assert_close(got.detach(), want.detach())
    assert want.requires_grad
    assert got.requires_grad is kernels
    assert "with kernels off, nor is the gradient of `NLLLoss` (constant: the loss is linear in the input)" in README
