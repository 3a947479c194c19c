"""torch users feeding the losses tensors as PyTorch's own test-suite builds them: non-contiguous
(transposed, step-sliced, zero-stride ``expand``, ``as_strided``), channels_last, zero-size axes in
every position, 0-d forms, every integer target dtype, ``nn.Parameter`` and subclass inputs,
``loss(x, x)``, in-place changes between forward and backward, half precision and the deprecated
module arguments. What this file pins:

- Scores with no classes, ``(N, 0)`` or ``(N, 0, d)``, where every target is ignored: torch's
  ``CrossEntropyLoss`` and ``NLLLoss`` return a loss in the input's autograd graph (its backward
  gives the empty gradient), and README says lossreg gives torch's answer and computes ``(N, 0, d)``
  the same way. The portable definition (every plugin loss built on it: ``focal_loss``,
  ``poly1_cross_entropy``, ``generalized_cross_entropy``; the built-ins with kernels off; and
  ``(N, 0, d)`` scores on the default path, which torch's kernel refuses) made that loss of new
  zeros, cut from the graph: ``loss.backward()`` raised "element 0 of tensors does not require
  grad". Now the loss is the input's, and its backward runs, as torch's.
- Checked and holding (probed, not pinned here): every built-in loss against
  ``torch.nn.functional``, value and gradients of every floating array, on transposed,
  step-sliced, ``as_strided``, channels_last and permuted-NHWC inputs, targets, weights,
  ``pos_weight`` and ``var`` (the documented NLLLoss channels_last difference aside), with
  ``expand``-ed (stride 0) arrays differentiated through their leaf; zero-size batch, class and
  spatial axes with every reduction; the 0-d forms torch takes; uint8/int8/int16/int32/int64
  class targets and labels (the documented uint8 ±1-label and bool differences aside);
  ``nn.Parameter`` and ``torch.Tensor`` subclass inputs; ``loss(x, x)``; a target changed in
  place after the forward (lossreg's gradient stays the forward's, where torch raises its version
  error for ``MultiLabelMarginLoss``); float16/bfloat16 against torch's CPU result; CTC's
  transposed ``(N, T, C)`` log-probabilities, sliced targets and narrow integer targets and
  lengths; ``linear_cross_entropy`` on shifted (``h[:, :-1]``) hidden states, transposed or
  expanded layer weights and step-sliced biases; the plugins' cross-entropy equivalents
  (``focal_loss(gamma=0)``, ``poly1_cross_entropy(epsilon=0)``, ``binary_focal_loss(gamma=0,
  alpha=None)``) on the same layouts.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

import lossreg

D = torch.float64
REDUCTIONS = ("mean", "sum", "none")


def _torch_answer(scores: torch.Tensor, target: torch.Tensor, reduction: str) -> torch.Tensor:
    """torch's cross-entropy of (N, 0) scores whose every target is ignored: in the graph."""
    loss = F.cross_entropy(scores, target, reduction=reduction)
    assert loss.requires_grad
    return loss


def _backward_runs_as_torchs(loss: Any, scores: torch.Tensor, want: torch.Tensor) -> None:
    assert loss.requires_grad, "the loss is cut from the input's autograd graph"
    torch.testing.assert_close(loss.detach(), want.detach(), equal_nan=True)
    (grad,) = torch.autograd.grad(loss.sum(), scores)
    assert grad.shape == scores.shape


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_scores_with_no_classes_stay_in_the_graph_with_kernels_off(name: str, reduction: str) -> None:
    scores = torch.zeros(4, 0, dtype=D, requires_grad=True)
    target = torch.full((4,), -100)
    with lossreg.use_kernels(False):
        loss = getattr(lossreg, name)(scores, target, reduction=reduction)
    _backward_runs_as_torchs(loss, scores, _torch_answer(scores, target, reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_k_dimensional_scores_with_no_classes_stay_in_the_graph(name: str, reduction: str) -> None:
    """(N, 0, d): torch's kernel refuses it (an internal size mismatch), lossreg computes it as
    (N·d, 0), on its default path, and the loss is the input's."""
    scores = torch.zeros(4, 0, 2, dtype=D, requires_grad=True)
    target = torch.full((4, 2), -100)
    loss = getattr(lossreg, name)(scores, target, reduction=reduction)
    flat = scores.movedim(1, -1).reshape(8, 0)
    want = _torch_answer(flat, target.reshape(8), reduction)
    _backward_runs_as_torchs(loss, scores, want if reduction != "none" else want.reshape(4, 2))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_linear_cross_entropy_of_a_layer_with_no_classes_stays_in_the_graph(reduction: str) -> None:
    hidden = torch.randn(4, 3, dtype=D, requires_grad=True)
    layer = torch.zeros(0, 3, dtype=D, requires_grad=True)
    target = torch.full((4,), -100)
    with lossreg.use_kernels(False):
        loss = lossreg.linear_cross_entropy(hidden, layer, target, reduction=reduction)
    assert loss.requires_grad
    want = _torch_answer(F.linear(hidden, layer), target, reduction)
    torch.testing.assert_close(loss.detach(), want.detach(), equal_nan=True)
    grads = torch.autograd.grad(loss.sum(), (hidden, layer))
    wanted = torch.autograd.grad(want.sum(), (hidden, layer))
    for got, expected in zip(grads, wanted):
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_plugin_focal_loss_with_no_classes_stays_in_the_graph(segmentation: Any, reduction: str) -> None:
    """``focal_loss(gamma=0)`` is cross-entropy (the plugin's README): so on (N, 0) scores too."""
    scores = torch.zeros(4, 0, dtype=D, requires_grad=True)
    target = torch.full((4,), -100)
    loss = lossreg.get("focal_loss", gamma=0.0, reduction=reduction)(scores, target)
    _backward_runs_as_torchs(loss, scores, _torch_answer(scores, target, reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name, options", [("poly1_cross_entropy", {"epsilon": 0.0}),
                                           ("generalized_cross_entropy", {})])
def test_plugin_cross_entropies_with_no_classes_stay_in_the_graph(extras: Any, name: str, options: dict[str, Any],
                                                                  reduction: str) -> None:
    scores = torch.zeros(4, 0, dtype=D, requires_grad=True)
    target = torch.full((4,), -100)
    loss = lossreg.get(name, reduction=reduction, **options)(scores, target)
    assert loss.requires_grad, "the loss is cut from the input's autograd graph"
    (grad,) = torch.autograd.grad(loss.sum(), scores)
    assert grad.shape == scores.shape
    if name == "poly1_cross_entropy":  # epsilon = 0 is cross-entropy
        torch.testing.assert_close(loss.detach(), _torch_answer(scores, target, reduction).detach(),
                                   equal_nan=True)
