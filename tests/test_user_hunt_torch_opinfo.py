"""A user running PyTorch's own OpInfo checks (``torch.testing._internal``'s ``op_db``, as
``test_ops.py`` runs them) on lossreg's functions, with each entry's own flags.

tests/test_torch_own_inputs.py compares values and gradients on every sample, and runs the
derivative checks without batching; here, the checks that batch tangents as gradcheck does.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("expecttest", reason="torch.testing._internal needs expecttest (the test extra)")
common_methods = pytest.importorskip("torch.testing._internal.common_methods_invocations")

import lossreg  # noqa: E402

# torch's forward-mode gradcheck as test_ops.py's test_forward_mode_AD runs it, batched tangents
# included where the entry asks for them (check_batched_forward_grad: a vmap over jvp).
forward_gradcheck = functools.partial(torch.autograd.gradcheck, check_forward_ad=True, check_backward_ad=False,
                                      check_undefined_grad=True, check_batched_grad=False,
                                      check_batched_forward_grad=True)


def _through(f: Any, args: list[Any], kwargs: dict[str, Any], at: list[int]) -> Any:
    def call(*leaves: Any) -> Any:
        given = list(args)
        for j, leaf in zip(at, leaves):
            given[j] = leaf
        return f(*given, **kwargs)
    return call


def test_unbatched_hidden_states_with_a_bias_pass_torchs_batched_forward_gradcheck() -> None:
    """One token's hidden states (D), probability targets (C) and a linear_bias (C): the logits
    are the 1-d @ 2-d product plus the bias. Before, the batched-tangent check raised "Trying to
    set a forward gradient that has a different size than that of the original Tensor ... size
    [4] while the given forward gradient is of size [1, 4]", where torch's own op passes."""
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(3, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(4, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    t = torch.softmax(torch.randn(4, dtype=torch.float64, generator=gen), 0).requires_grad_()
    b = torch.randn(4, dtype=torch.float64, generator=gen, requires_grad=True)
    for f in (torch.nn.functional.linear_cross_entropy, lossreg.linear_cross_entropy):
        for reduction in ("mean", "sum", "none"):
            assert forward_gradcheck(lambda h, w, t, b: f(h, w, t, linear_bias=b, reduction=reduction), (h, w, t, b))


@pytest.mark.parametrize("op", [pytest.param(op, id=op.variant_test_name or "default")
                                for op in common_methods.op_db if op.name == "nn.functional.linear_cross_entropy"
                                and op.supports_forward_ad and op.check_batched_forward_grad])
def test_linear_cross_entropy_passes_torchs_forward_gradcheck_on_opinfo_unbatched_samples(op: Any) -> None:
    """Every float64 sample of torch's entry with unbatched hidden states (D) (34 of its 119: class
    indices and probabilities, with and without a bias and class weights, every reduction; 4
    failed before) through lossreg's function."""
    checked = 0
    for sample in op.sample_inputs("cpu", torch.float64, requires_grad=True):
        if sample.input.ndim != 1:
            continue
        args, kwargs = [sample.input, *sample.args], dict(sample.kwargs)
        at = [j for j, a in enumerate(args) if isinstance(a, torch.Tensor) and a.requires_grad]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert forward_gradcheck(_through(lossreg.linear_cross_entropy, args, kwargs, at),
                                     tuple(args[j] for j in at)), sample
        checked += 1
    assert checked >= 30
