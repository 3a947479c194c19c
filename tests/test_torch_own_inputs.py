"""PyTorch's own test inputs: every sample of torch's OpInfo (``nn.functional``) and ModuleInfo
(``torch.nn``) entries for the losses lossreg has, through lossreg and through torch.

Each sample must give torch's value (shape and dtype included) and torch's input gradients,
except where the README documents a deliberate difference, which is checked to be exactly that:

- ``gaussian_nll_loss`` refuses a target that only broadcasts to the input (a lossreg error);
- ``MultiLabelSoftMarginLoss`` refuses integer targets, as the pointwise losses do ("pass floats");
- ``ctc_loss`` differentiates in float64 (torch's float32 CTC gradient can be 10 % off), so its
  float32 gradients are not compared;
- ``linear_cross_entropy``: torch 2.13's function and module have another signature (class
  weights, ``linear_bias``, ``options``; a module owning the linear layer); a strict xfail.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("expecttest", reason="torch.testing._internal needs expecttest (the test extra)")
common_methods = pytest.importorskip("torch.testing._internal.common_methods_invocations")
common_modules = pytest.importorskip("torch.testing._internal.common_modules")

import lossreg  # noqa: E402
import lossreg.torch as lossreg_torch  # noqa: E402

DTYPES = (torch.float64, torch.float32)
DIFFERENT_API = {"linear_cross_entropy", "LinearCrossEntropyLoss"}
OPS = [op for op in common_methods.op_db
       if op.name.startswith("nn.functional.") and op.name.split(".")[-1] in lossreg.names()]
MODULES = [m for m in common_modules.module_db
           if m.module_cls.__name__.endswith("Loss") and hasattr(lossreg_torch, m.module_cls.__name__)]


def _label(op: Any) -> str:
    return op.name.split(".")[-1] + (f"/{op.variant_test_name}" if op.variant_test_name else "")


def _marks(name: str) -> list[Any]:
    if name in DIFFERENT_API:
        return [pytest.mark.xfail(strict=True, raises=(TypeError, lossreg.LossError),
                                  reason="torch 2.13's linear cross-entropy has another signature than lossreg's "
                                         "(class weights, linear_bias, options, K-dimensional and probability targets)")]
    return []


def _same(got: Any, want: Any, dtype: Any) -> bool:
    tol = {"rtol": 1e-7, "atol": 1e-9} if dtype == torch.float64 else {"rtol": 2e-5, "atol": 1e-6}
    return got.shape == want.shape and got.dtype == want.dtype and torch.allclose(got, want, equal_nan=True, **tol)


def _check(name: str, call: Any, reference: Any, leaves: list[Any], dtype: Any, where: str) -> None:
    """lossreg's ``call()`` against torch's ``reference()``: the value, then the leaves' gradients."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation warnings (kl_div's "mean", say)
        try:
            want = reference()
        except Exception:  # a sample torch itself rejects (an error-input sample)
            return
        got = call()
    assert _same(got, want, dtype), f"{where}: value {got} != torch's {want}"
    if not leaves or not want.requires_grad or (name in ("ctc_loss", "CTCLoss") and dtype != torch.float64):
        return
    wanted = torch.autograd.grad(want.sum(), leaves, allow_unused=True, retain_graph=True)
    obtained = torch.autograd.grad(got.sum(), leaves, allow_unused=True)
    for i, (a, b) in enumerate(zip(obtained, wanted)):
        a = torch.zeros_like(leaves[i]) if a is None else a
        b = torch.zeros_like(leaves[i]) if b is None else b
        assert _same(a, b, dtype), f"{where}: gradient {i} differs from torch's by {(a - b).abs().max():.3g}"


@pytest.mark.parametrize("op", [pytest.param(op, id=_label(op), marks=_marks(op.name.split(".")[-1])) for op in OPS])
def test_opinfo_samples_give_torchs_value_and_gradients(op: Any) -> None:
    name = op.name.split(".")[-1]
    for dtype in DTYPES:
        for i, sample in enumerate(op.sample_inputs("cpu", dtype, requires_grad=True)):
            args, kwargs = (sample.input, *sample.args), dict(sample.kwargs)
            leaves = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor) and a.requires_grad]
            where = f"{_label(op)} {dtype} sample {i}"
            if name == "gaussian_nll_loss" and args[1].shape != args[0].shape:
                try:
                    getattr(lossreg, name)(*args, **kwargs)
                except lossreg.LossValueError as exc:  # the documented refusal of a broadcasting target
                    assert "argument 'target'" in str(exc), where
                    continue
            _check(name, lambda: getattr(lossreg, name)(*args, **kwargs), lambda: op.op(*args, **kwargs),
                   leaves, dtype, where)


@pytest.mark.parametrize("info", [pytest.param(m, id=m.module_cls.__name__, marks=_marks(m.module_cls.__name__))
                                  for m in MODULES])
def test_moduleinfo_inputs_give_torchs_value_and_gradients(info: Any) -> None:
    cls = info.module_cls
    mine = getattr(lossreg_torch, cls.__name__)
    for dtype in DTYPES:
        for i, item in enumerate(info.module_inputs_func(info, device="cpu", dtype=dtype, requires_grad=True,
                                                         training=True)):
            if item.forward_input is None:
                continue
            ctor, forward = item.constructor_input, item.forward_input
            where = f"{cls.__name__} {dtype} input {i}"
            target = forward.args[1] if len(forward.args) > 1 else None
            if cls.__name__ == "MultiLabelSoftMarginLoss" and target is not None and not target.is_floating_point():
                with pytest.raises(lossreg.LossTypeError, match="argument 'target'"):  # documented: pass floats
                    mine(*ctor.args, **ctor.kwargs)(*forward.args, **forward.kwargs)
                continue
            leaves = [a for a in forward.args if isinstance(a, torch.Tensor) and a.requires_grad]
            _check(cls.__name__, lambda: mine(*ctor.args, **ctor.kwargs)(*forward.args, **forward.kwargs),
                   lambda: cls(*ctor.args, **ctor.kwargs)(*forward.args, **forward.kwargs), leaves, dtype, where)


def test_every_torch_loss_lossreg_has_is_covered() -> None:
    """The lists above are not empty by accident (an import or a renamed entry in torch)."""
    assert len(OPS) >= 20 and len(MODULES) >= 18
