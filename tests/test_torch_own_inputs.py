"""PyTorch's own test inputs: every sample of torch's OpInfo (``nn.functional``) and ModuleInfo
(``torch.nn``) entries for the losses lossreg has, through lossreg and through torch.

Each sample must give torch's value (shape and dtype included) and torch's input gradients,
except where the README documents a deliberate difference, which is checked to be exactly that:

- ``gaussian_nll_loss`` refuses a target that only broadcasts to the input (a lossreg error);
- ``ctc_loss`` differentiates in float64 (torch's float32 CTC gradient can be 10 % off), so its
  float32 gradients are not compared.

Modules that own parameters (torch 2.13's ``LinearCrossEntropyLoss`` owns its linear layer) are
compared with the same parameter values, and the parameters' gradients are compared too.
"""

from __future__ import annotations

import functools
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
OPS = [op for op in common_methods.op_db
       if op.name.startswith("nn.functional.") and op.name.split(".")[-1] in lossreg.names()]
MODULES = [m for m in common_modules.module_db
           if m.module_cls.__name__.endswith("Loss") and hasattr(lossreg_torch, m.module_cls.__name__)]


def _label(op: Any) -> str:
    return op.name.split(".")[-1] + (f"/{op.variant_test_name}" if op.variant_test_name else "")


def _same(got: Any, want: Any, dtype: Any) -> bool:
    tol = {"rtol": 1e-7, "atol": 1e-9} if dtype == torch.float64 else {"rtol": 2e-5, "atol": 1e-6}
    return got.shape == want.shape and got.dtype == want.dtype and torch.allclose(got, want, equal_nan=True, **tol)


def _check(name: str, call: Any, reference: Any, leaves: list[Any], dtype: Any, where: str,
           reference_leaves: list[Any] | None = None) -> None:
    """lossreg's ``call()`` against torch's ``reference()``: the value, then the leaves' gradients
    (``reference_leaves``: torch's own, where they are other tensors: a module's parameters)."""
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
    wanted = torch.autograd.grad(want.sum(), reference_leaves or leaves, allow_unused=True, retain_graph=True)
    obtained = torch.autograd.grad(got.sum(), leaves, allow_unused=True)
    for i, (a, b) in enumerate(zip(obtained, wanted)):
        a = torch.zeros_like(leaves[i]) if a is None else a
        b = torch.zeros_like(leaves[i]) if b is None else b
        assert _same(a, b, dtype), f"{where}: gradient {i} differs from torch's by {(a - b).abs().max():.3g}"


@pytest.mark.parametrize(("op", "inputs"), [
    *(pytest.param(op, "sample_inputs", id=_label(op)) for op in OPS),
    *(pytest.param(op, "reference_inputs", id=f"{_label(op)}-reference") for op in OPS if op.reference_inputs_func),
])
def test_opinfo_samples_give_torchs_value_and_gradients(op: Any, inputs: str) -> None:
    """``sample_inputs``, and ``reference_inputs`` (more shapes, options and extreme values) where
    the entry has them."""
    name = op.name.split(".")[-1]
    for dtype in DTYPES:
        for i, sample in enumerate(getattr(op, inputs)("cpu", dtype, requires_grad=True)):
            args, kwargs = (sample.input, *sample.args), dict(sample.kwargs)
            leaves = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor) and a.requires_grad]
            where = f"{_label(op)} {dtype} {inputs} {i}"
            if name == "gaussian_nll_loss" and args[1].shape != args[0].shape:
                try:
                    getattr(lossreg, name)(*args, **kwargs)
                except lossreg.LossValueError as exc:  # the documented refusal of a broadcasting target
                    assert "argument 'target'" in str(exc), where
                    continue
            _check(name, lambda: getattr(lossreg, name)(*args, **kwargs), lambda: op.op(*args, **kwargs),
                   leaves, dtype, where)


def _skipped_by_torch(op: Any, test: str) -> bool:
    """torch's own test suite skips (or expects to fail) ``test`` for this entry, on the CPU in float64."""
    return any(getattr(d, "test_name", None) == test and getattr(d, "active_if", True)
               and getattr(d, "device_type", None) in (None, "cpu") and torch.float64 in (getattr(d, "dtypes", None)
                                                                                       or (torch.float64,))
               for d in op.decorators)


# PyTorch's own derivative checks (test_ops.py's TestBwdGradients / TestFwdGradients), each on
# the entries that declare the mode and do not skip that test.
MODES = {"gradgrad": ("supports_gradgrad", "test_fn_gradgrad"),
         "forward AD": ("supports_forward_ad", "test_forward_mode_AD"),
         "forward over reverse": ("supports_fwgrad_bwgrad", "test_fn_fwgrad_bwgrad")}


# Samples per entry in those checks, spread evenly over its samples (gaussian_nll_loss has 324).
MAX_SAMPLES = 48


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("op", [pytest.param(op, id=_label(op)) for op in OPS])
def test_torchs_own_second_and_forward_derivative_checks_pass(op: Any, mode: str) -> None:
    """``gradgradcheck`` (second derivatives by reverse mode, and forward over reverse) and
    ``gradcheck`` with forward mode, on torch's float64 samples (up to MAX_SAMPLES of them), as
    PyTorch's test_ops runs them on its op; a sample that fails must fail torch's own op too."""
    flag, test = MODES[mode]
    if not getattr(op, flag) or _skipped_by_torch(op, test):
        pytest.skip(f"torch's {op.name} does not claim {mode} ({flag} or a skip of {test})")
    name = op.name.split(".")[-1]
    check = {"gradgrad": functools.partial(torch.autograd.gradgradcheck, check_batched_grad=False),
             "forward AD": functools.partial(torch.autograd.gradcheck, check_forward_ad=True, check_backward_ad=False,
                                             check_undefined_grad=False, check_batched_grad=False),
             "forward over reverse": functools.partial(torch.autograd.gradgradcheck, check_fwd_over_rev=True,
                                                       check_rev_over_rev=False, check_undefined_grad=False,
                                                       check_batched_grad=False)}[mode]
    samples = list(op.sample_inputs("cpu", torch.float64, requires_grad=True))
    checked = 0
    for i, sample in list(enumerate(samples))[::-(-len(samples) // MAX_SAMPLES)]:
        args, kwargs = [sample.input, *sample.args], dict(sample.kwargs)
        at = [j for j, a in enumerate(args) if isinstance(a, torch.Tensor) and a.requires_grad]
        if not at or (name == "gaussian_nll_loss" and args[1].shape != args[0].shape):  # documented refusal
            continue

        def call(f: Any, *leaves: Any) -> Any:
            given = list(args)
            for j, leaf in zip(at, leaves):
                given[j] = leaf
            return f(*given, **kwargs)

        leaves = tuple(args[j] for j in at)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                check(functools.partial(call, getattr(lossreg, name)), leaves)
            except Exception as exc:
                with pytest.raises(Exception):  # noqa: PT011  (whatever torch's own op fails with)
                    check(functools.partial(call, op.op), leaves)
                print(f"{_label(op)} sample {i}: fails as torch's own op does ({type(exc).__name__})")
        checked += 1
    assert checked, f"no sample of {_label(op)} was checked"


@pytest.mark.parametrize("op", [pytest.param(op, id=_label(op)) for op in OPS if op.error_inputs_func is not None])
def test_where_torchs_error_inputs_raise_lossreg_raises_its_own_error(op: Any) -> None:
    name = op.name.split(".")[-1]
    for i, error in enumerate(op.error_inputs("cpu")):
        sample = error.sample_input
        args, kwargs = (sample.input, *sample.args), dict(sample.kwargs)
        with pytest.raises(error.error_type):  # torch's own expectation first: the input is bad
            op.op(*args, **kwargs)
        with pytest.raises(lossreg.LossError, match=f"^{name}: "):
            getattr(lossreg, name)(*args, **kwargs)


@pytest.mark.parametrize("info", [pytest.param(m, id=m.module_cls.__name__) for m in MODULES])
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
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    theirs = cls(*ctor.args, **ctor.kwargs)
                except Exception:  # a constructor torch itself rejects
                    continue
            ours = mine(*ctor.args, **ctor.kwargs)
            with torch.no_grad():  # an owned layer: the same parameter values as torch's
                names = [name for name, _ in ours.named_parameters()]
                assert names == [name for name, _ in theirs.named_parameters()], where
                for p, q in zip(ours.parameters(), theirs.parameters()):
                    p.copy_(q)
            inputs = [a for a in forward.args if isinstance(a, torch.Tensor) and a.requires_grad]
            _check(cls.__name__, lambda: ours(*forward.args, **forward.kwargs),
                   lambda: theirs(*forward.args, **forward.kwargs), [*inputs, *ours.parameters()], dtype, where,
                   reference_leaves=[*inputs, *theirs.parameters()])


@pytest.mark.parametrize("info", [pytest.param(m, id=m.module_cls.__name__) for m in MODULES
                                  if m.module_error_inputs_func is not None])
def test_where_torchs_module_error_inputs_raise_lossreg_raises_its_own_error(info: Any) -> None:
    """In the constructor where torch raises there (``HuberLoss(delta=1+0j)``), else in forward.
    One documented difference: a class weight of another floating dtype than the input's, which
    torch refuses and lossreg casts to the input's dtype (exactly: a wider or equal dtype)."""
    mine = getattr(lossreg_torch, info.module_cls.__name__)
    for error in info.module_error_inputs_func(info, device="cpu", dtype=torch.float64, requires_grad=False,
                                               training=True):
        ctor, forward = error.module_error_input.constructor_input, error.module_error_input.forward_input
        weight = ctor.kwargs.get("weight")
        if isinstance(weight, torch.Tensor) and forward and weight.dtype != forward.args[0].dtype:
            # The documented difference: torch's answer for the weight in the input's dtype.
            cast = {**ctor.kwargs, "weight": weight.to(forward.args[0].dtype)}
            want = info.module_cls(*ctor.args, **cast)(*forward.args, **forward.kwargs)
            got = mine(*ctor.args, **ctor.kwargs)(*forward.args, **forward.kwargs)
            assert _same(got, want, torch.float64), f"{info.module_cls.__name__}: {got} != torch's {want}"
            continue
        if forward is None:  # torch raises in its constructor, and so must lossreg
            with pytest.raises(lossreg.LossError, match=f"^{mine.spec.name}: "):
                mine(*ctor.args, **ctor.kwargs)
            continue
        with pytest.raises(lossreg.LossError, match=f"^{mine.spec.name}: "):
            mine(*ctor.args, **ctor.kwargs)(*forward.args, **forward.kwargs)


def test_every_torch_loss_lossreg_has_is_covered() -> None:
    """The lists above are not empty by accident (an import or a renamed entry in torch)."""
    assert len(OPS) >= 20 and len(MODULES) >= 18
    assert sum(op.reference_inputs_func is not None for op in OPS) >= 3
    assert sum(op.error_inputs_func is not None for op in OPS) >= 10
