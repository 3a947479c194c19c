"""lossreg.torch's modules as a torch user's training code holds them: options given as Python
numbers, lists, NumPy arrays, tensors or Parameters, and the module moved, copied, saved and rebuilt.

A Python number given for an array option is kept as that number (a buffer would round it to
torch's default dtype); the module still computes what the class form computes with it.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

import lossreg

torch = pytest.importorskip("torch")
import lossreg.torch  # noqa: E402


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("pos_weight", [2.0, 2])
def test_a_number_for_pos_weight_computes_as_the_class_form_and_torch_nn(pos_weight: Any, dtype: str) -> None:
    """``lossreg.torch.BCEWithLogitsLoss(pos_weight=2.0)``, which the module keeps as the number 2.0
    (not a buffer), weighs the positives by 2 in the input's dtype, as the class form does with a
    number and torch.nn does with ``pos_weight=torch.tensor(2.0)``. The number reached the functional
    form as it was, which takes an array there: every call raised 'pos_weight expected an array'."""
    dt = getattr(torch, dtype)
    x = torch.linspace(-3, 3, 12).reshape(4, 3).to(dt)
    y = (torch.arange(12).reshape(4, 3) % 2).to(dt)
    crit = lossreg.torch.BCEWithLogitsLoss(pos_weight=pos_weight)
    assert list(crit.state_dict()) == [] and crit.pos_weight == pos_weight
    expected = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(float(pos_weight), dtype=dt))(x, y)
    assert crit(x, y).dtype == dt
    torch.testing.assert_close(crit(x, y), expected)
    torch.testing.assert_close(crit(x, y), lossreg.BCEWithLogitsLoss(pos_weight=pos_weight)(x, y))
    # Moved or copied, it is the same number, and the same loss.
    torch.testing.assert_close(copy.deepcopy(crit).to(torch.float64)(x, y), expected)


def test_a_module_rebuilt_from_the_config_of_a_0d_pos_weight_computes() -> None:
    """``get_config()`` writes a 0-d ``pos_weight`` tensor as a number, so ``from_config`` rebuilds a
    module holding that number: it computes the original's loss (it raised at its first call)."""
    x, y = torch.linspace(-2, 2, 6).reshape(2, 3), torch.tensor([[0.0, 1, 1], [1, 0, 1]])
    crit = lossreg.torch.BCEWithLogitsLoss(pos_weight=torch.tensor(3.0))
    rebuilt = lossreg.torch.from_config(crit.get_config())
    assert rebuilt.pos_weight == 3.0
    torch.testing.assert_close(rebuilt(x, y), crit(x, y))


def test_a_number_for_pos_weight_under_torch_compile() -> None:
    """A model holding ``BCEWithLogitsLoss(pos_weight=2.0)`` compiles, and gives the eager loss."""
    x, y = torch.linspace(-2, 2, 6).reshape(2, 3), torch.tensor([[0.0, 1, 1], [1, 0, 1]])
    crit = lossreg.torch.BCEWithLogitsLoss(pos_weight=2.0)
    torch.testing.assert_close(torch.compile(crit, backend="eager")(x, y), crit(x, y))


def test_a_tensor_assigned_over_a_number_option_is_a_buffer_as_in_torch_nn() -> None:
    """``crit.pos_weight = torch.tensor([...])`` on a module made with ``pos_weight=2.0`` makes the
    tensor a buffer, as it does on a module made without one and on torch.nn's: ``.double()`` moves
    it and ``state_dict`` saves it. It was a plain attribute, left float32 and left out of checkpoints."""
    weights = torch.tensor([1.0, 2.0, 3.0])
    for crit in (lossreg.torch.BCEWithLogitsLoss(pos_weight=2.0), lossreg.torch.BCEWithLogitsLoss(),
                 torch.nn.BCEWithLogitsLoss()):
        crit.pos_weight = weights
        assert [name for name, _ in crit.named_buffers()] == ["pos_weight"]
        assert crit.double().pos_weight.dtype == torch.float64
        assert list(crit.state_dict()) == ["pos_weight"]
    # A number assigned over a buffer is refused, as torch.nn refuses it.
    with pytest.raises(TypeError, match="cannot assign 'float' as buffer"):
        lossreg.torch.BCEWithLogitsLoss(pos_weight=weights).pos_weight = 3.0


def test_fx_symbolic_trace_of_a_module_holding_a_number_for_pos_weight() -> None:
    """``torch.fx.symbolic_trace(BCEWithLogitsLoss(pos_weight=2.0))`` traces to a graph that computes
    torch.nn's loss with ``pos_weight=torch.tensor(2.0)`` of the input's dtype: the number went into the
    graph's call as it was, which the functional form refused ('pos_weight expected an array')."""
    x = torch.linspace(-2, 2, 6, dtype=torch.float64).reshape(2, 3)
    y = torch.tensor([[0.0, 1, 1], [1, 0, 1]], dtype=torch.float64)
    traced = torch.fx.symbolic_trace(lossreg.torch.BCEWithLogitsLoss(pos_weight=2.0))
    expected = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(2.0, dtype=torch.float64))(x, y)
    torch.testing.assert_close(traced(x, y), expected)
