"""torch users calling every loss (``lossreg.names()``) on unusual but legitimate tensors, compared
with ``torch.nn.functional``'s function of the same name. What this file pins:

- A target or weight made under ``torch.inference_mode`` (a teacher's soft labels, class weights
  counted from the data in an inference pass) beside an input that requires grad. Most torch
  losses save it for the backward pass and raise "Inference tensors cannot be saved for
  backward"; README says lossreg differentiates the input. It did for cross-entropy, NLL, MSE and
  most others, but raised torch's error for the targets of ``binary_cross_entropy``, ``kl_div``,
  ``poisson_nll_loss``, ``soft_margin_loss`` and ``multilabel_soft_margin_loss`` (their
  ``t * log x`` saves the target), for the weights of the BCE, MSE, L1, Huber and multilabel
  soft-margin losses, and for ``linear_cross_entropy``'s class weights and its ``linear_bias``,
  which torch's ``F.linear_cross_entropy`` takes. Now each gives the value and gradients of the
  same call with normal tensors.
- Checked and holding (probed, not pinned here: ``test_user_hunt_call_forms.py``,
  ``test_torch_transforms.py`` and others hold most): transposed, step-sliced, flipped and
  zero-stride inputs, targets, weights and ``var`` (values, dtypes and gradients of every floating
  array and option torch differentiates); channels_last and channels_last_3d scores for
  cross-entropy and NLL with labels of every integer dtype and probability targets; empty batches
  and empty class or feature axes with every reduction; 0-d and unbatched forms; no_grad,
  inference_mode, ``nn.Parameter`` arrays and weights (which train, and are read afresh after an
  optimiser's in-place step); deterministic algorithms; ``torch.func`` grad, jacrev, jacfwd,
  hessian, jvp, forward-mode dual tensors and vmap (in_dims -1, chunk_size, nested, per-sample
  unbatched calls, batched weights through ``functional_call``).
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from strategies import make_good

import lossreg
import lossreg.torch as lt

D = torch.float64
BUILTIN = [name for name in lossreg.names() if lossreg.spec(name).plugin == "lossreg"]  # make_good's losses


def _example(name: str) -> tuple[list[torch.Tensor], dict[str, Any]]:
    good = make_good(name, seed=2, n=4)
    return [torch.as_tensor(v) for v in good.inputs.values()], dict(good.options)


def _made_under_inference_mode(a: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return a.clone()


def _value_and_input_grad(fn: Any, arrays: list[torch.Tensor], options: dict[str, Any]) -> tuple[Any, Any]:
    leaf = arrays[0].detach().clone().requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kl_div's "mean" warning
        out = fn(leaf, *arrays[1:], **options)
    seed = torch.rand(out.shape, dtype=D, generator=torch.Generator().manual_seed(3))
    return out.detach(), torch.autograd.grad((out * seed).sum(), leaf)[0]


def _normal_copies(arrays: list[torch.Tensor], options: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    return ([a.clone() for a in arrays],
            {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in options.items()})


def _target_cases() -> list[Any]:
    cases = []
    for name in BUILTIN:
        for k, key in enumerate(lossreg.spec(name).inputs[1:], start=1):
            if name == "linear_cross_entropy" and key == "linear_weight":
                continue  # raises as torch's does (README): test_linear_cross_entropy_...
            cases.append(pytest.param(name, k, id=f"{name}-{key}"))
    return cases


@pytest.mark.parametrize(("name", "k"), _target_cases())
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_a_target_made_under_inference_mode_gives_the_gradient_of_a_normal_one(name: str, k: int,
                                                                               reduction: str) -> None:
    """Soft labels from a teacher run under ``torch.inference_mode``: lossreg's value and gradient
    are those of the same call with a normal copy of the target (torch raises for most losses)."""
    arrays, options = _example(name)
    options["reduction"] = reduction
    frozen = [_made_under_inference_mode(a) if i == k else a for i, a in enumerate(arrays)]
    assert frozen[k].is_inference()
    got = _value_and_input_grad(getattr(lossreg, name), frozen, options)
    want = _value_and_input_grad(getattr(lossreg, name), *_normal_copies(arrays, options))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert frozen[k].is_inference()  # the caller's tensor is left as it was


def test_torch_raises_for_the_targets_whose_losses_save_them() -> None:
    """What the test above covers: torch's own error for a target made under inference_mode."""
    for name in ("binary_cross_entropy", "kl_div", "poisson_nll_loss", "soft_margin_loss",
                 "multilabel_soft_margin_loss", "mse_loss", "cross_entropy"):
        arrays, options = _example(name)
        arrays[1] = _made_under_inference_mode(arrays[1])
        with pytest.raises(RuntimeError, match="Inference tensors cannot be saved for backward"):
            _value_and_input_grad(getattr(F, name), arrays, options)


def _weight_cases() -> list[Any]:
    cases = []
    for name in BUILTIN:
        for option in lossreg.spec(name).array_options:
            if option != "bias":  # linear_cross_entropy's other name for linear_bias
                cases.append(pytest.param(name, option, id=f"{name}-{option}"))
    return cases


def _weight(name: str, option: str, arrays: list[torch.Tensor]) -> torch.Tensor:
    if name == "linear_cross_entropy":
        shape: tuple[int, ...] = arrays[1].shape[:1]  # per class of the layer's output
    elif name in ("mse_loss", "l1_loss", "huber_loss"):
        shape = tuple(arrays[0].shape)  # per element
    else:
        shape = arrays[0].shape[-1:]  # per class
    return torch.rand(shape, dtype=D, generator=torch.Generator().manual_seed(7)) + 0.5


@pytest.mark.parametrize(("name", "option"), _weight_cases())
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_a_weight_made_under_inference_mode_gives_the_gradient_of_a_normal_one(name: str, option: str,
                                                                               reduction: str) -> None:
    """Class weights counted from the labels in an inference pass, a pos_weight, a bias: the value
    and input gradient of the call with a normal copy (torch raises for every weight, and takes
    ``linear_cross_entropy``'s ``linear_bias``, which lossreg refused with torch's error)."""
    arrays, options = _example(name)
    weight = _weight(name, option, arrays)
    options.update(reduction=reduction, **{option: _made_under_inference_mode(weight)})
    got = _value_and_input_grad(getattr(lossreg, name), arrays, options)
    want = _value_and_input_grad(getattr(lossreg, name), *_normal_copies(arrays, {**options, option: weight}))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    if option == "linear_bias":  # torch's own answer there
        torch.testing.assert_close(got, _value_and_input_grad(F.linear_cross_entropy, arrays, options))


def test_linear_cross_entropy_raises_as_torch_for_a_layer_weight_made_under_inference_mode() -> None:
    """README: the layer (as large as the vocabulary times the hidden size) is not copied."""
    arrays, options = _example("linear_cross_entropy")
    arrays[1] = _made_under_inference_mode(arrays[1])
    for fn in (F.linear_cross_entropy, lossreg.linear_cross_entropy):
        with pytest.raises(RuntimeError, match="Inference tensors cannot be saved for backward"):
            _value_and_input_grad(fn, arrays, options)


def test_distillation_from_a_teacher_run_under_inference_mode_trains_the_student() -> None:
    """The use: a frozen teacher's probabilities, computed under inference_mode, as the target of
    a lossreg.torch module in the student's training step (torch.nn's KLDivLoss and BCELoss raise)."""
    g = torch.Generator().manual_seed(0)
    teacher, student = torch.nn.Linear(6, 4).double(), torch.nn.Linear(6, 4).double()
    x = torch.randn(8, 6, dtype=D, generator=g)
    with torch.inference_mode():
        soft = teacher(x).softmax(-1)
        counts = soft.sum(0)
    for criterion, inputs in ((lt.KLDivLoss(reduction="batchmean"), lambda z: z.log_softmax(-1)),
                              (lt.BCELoss(weight=counts.max() / counts), lambda z: z.softmax(-1))):
        student.zero_grad()
        criterion(inputs(student(x)), soft).backward()
        got = student.weight.grad.clone()
        student.zero_grad()
        options = {k: v.clone() for k, v in criterion.named_buffers()}
        reduction = criterion.reduction
        getattr(F, criterion.spec.name)(inputs(student(x)), soft.clone(), reduction=reduction, **options).backward()
        torch.testing.assert_close(got, student.weight.grad)
