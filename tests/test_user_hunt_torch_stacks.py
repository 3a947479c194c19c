"""A user-style hunt: lossreg's losses inside torch training stacks (activation checkpointing,
torch.export, per-example gradients, ensembles), each test a bug found or a difference pinned."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint
from torch_examples import BUILTIN, differentiable, example, tensors, torch_options

import lossreg
import lossreg.torch

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


# Non-reentrant checkpointing stops its recomputation by raising an exception through the loss;
# the torch kernels' fallbacks swallowed it, and the portable path then tripped checkpoint's assertion.
@pytest.mark.parametrize("name", [n for n in BUILTIN if n != "linear_cross_entropy"])
def test_loss_inside_non_reentrant_checkpoint_gives_the_plain_gradient(name: str) -> None:
    inputs, options = example(name)
    diff = differentiable(name, inputs)
    options = torch_options(options)

    def run(wrap: bool) -> tuple[torch.Tensor, tuple]:
        ins = tensors(inputs, diff)

        def block(*vals: torch.Tensor) -> torch.Tensor:  # an op before the loss, so that there is a tensor to save
            return getattr(lossreg, name)(*[v * 1.0 + 0.0 if k in diff else v for k, v in zip(ins, vals)],
                                          **options).sum()

        out = checkpoint(block, *ins.values(), use_reentrant=False) if wrap else block(*ins.values())
        return out.detach(), torch.autograd.grad(out, [ins[k] for k in diff], allow_unused=True)

    (got, got_grads), (want, want_grads) = run(True), run(False)
    torch.testing.assert_close(got, want)
    for g, w in zip(got_grads, want_grads):
        if w is None:
            assert g is None or not g.any()
        else:
            torch.testing.assert_close(g, w, equal_nan=True)


# The same through a module, as a training step writes it: a linear layer and the loss checkpointed.
def test_cross_entropy_module_inside_non_reentrant_checkpoint_trains_as_torch_nn() -> None:
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 3)
    x, y = torch.randn(6, 4), torch.randint(0, 3, (6,))
    crit = lossreg.torch.CrossEntropyLoss(label_smoothing=0.1)
    checkpoint(lambda x: crit(lin(x), y), x, use_reentrant=False).backward()
    got = lin.weight.grad.clone()
    lin.zero_grad()
    torch.nn.CrossEntropyLoss(label_smoothing=0.1)(lin(x), y).backward()
    torch.testing.assert_close(got, lin.weight.grad)


# A documented difference (README, "Options"): torch's TripletMarginWithDistanceLoss trains a 0-d
# tensor margin; lossreg's options are numbers, and a tensor is refused rather than detached.
def test_triplet_margin_with_distance_refuses_a_learned_tensor_margin_that_torch_trains() -> None:
    torch.manual_seed(0)
    a, p, n = (torch.randn(4, 3) for _ in range(3))
    margin = torch.tensor(0.5, requires_grad=True)
    torch.autograd.grad(F.triplet_margin_with_distance_loss(a, p, n, margin=margin), margin)  # torch trains it
    with pytest.raises(lossreg.LossValueError, match="margin"):
        lossreg.triplet_margin_with_distance_loss(a, p, n, margin=margin)
    with pytest.raises(lossreg.LossValueError, match="margin"):
        lossreg.torch.TripletMarginWithDistanceLoss(margin=margin)(a, p, n)
    torch.testing.assert_close(lossreg.triplet_margin_with_distance_loss(a, p, n, margin=float(margin)),
                               F.triplet_margin_with_distance_loss(a, p, n, margin=0.5))


def _trainable_weight_case(name: str) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 3, (5,), generator=g)
    probs = torch.rand(5, 3, generator=g, dtype=torch.float64)
    w = torch.nn.Parameter(torch.rand(3, generator=g, dtype=torch.float64) + 0.5)
    if name == "CrossEntropyLoss":
        return lossreg.torch.CrossEntropyLoss(weight=w, label_smoothing=0.1), (x, labels)
    if name == "NLLLoss":
        return lossreg.torch.NLLLoss(weight=w), (torch.log_softmax(x, 1), labels)
    if name == "BCELoss":
        return lossreg.torch.BCELoss(weight=w), (torch.sigmoid(x), probs)
    return lossreg.torch.BCEWithLogitsLoss(pos_weight=w), (x, probs)


# README: a weight given as an nn.Parameter trains. Eagerly it did (torch's kernel refused it and the
# portable path ran); compiled with fullgraph, the refused kernel call broke the trace instead.
@pytest.mark.parametrize("name", ["CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss"])
def test_parameter_weight_trains_in_a_fullgraph_compiled_loss(name: str) -> None:
    torch._dynamo.reset()
    crit, args = _trainable_weight_case(name)
    param = next(crit.parameters())
    crit(*args).backward()
    want = param.grad.clone()
    param.grad = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = torch.compile(crit, backend="aot_eager", fullgraph=True)(*args)
    out.backward()
    torch.testing.assert_close(out, crit(*args))
    torch.testing.assert_close(param.grad, want)
    assert want.abs().sum() > 0


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_linear_cross_entropy_trains_class_weights_that_require_grad(reduction: str) -> None:
    # The chunked operator held them constant: cw.grad stayed None, silently (torch refuses them).
    torch.manual_seed(0)
    h, w = torch.randn(6, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    t = torch.tensor([0, 4, 2, 1, 3, 1])
    cw = torch.tensor([1.0, 2.0, 0.5, 1.5, 3.0], dtype=torch.float64, requires_grad=True)
    lossreg.linear_cross_entropy(h, w, t, weight=cw, reduction=reduction).sum().backward()
    got, cw.grad = cw.grad, None
    lossreg.cross_entropy(h @ w.T, t, weight=cw, reduction=reduction).sum().backward()  # its portable gradient
    assert got is not None
    torch.testing.assert_close(got, cw.grad)
