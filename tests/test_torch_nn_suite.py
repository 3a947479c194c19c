"""PyTorch's own loss tests, ported: torch's nn test suite run through lossreg.

Three sources of inputs, each compared with torch (value, dtype, shape, input gradients and, where
torch has them, second derivatives), in float64 and float32:

- ``torch.testing._internal.common_nn.criterion_tests``: the criterion entries torch's
  ``test_nn.py`` instantiates (in torch 2.13 the unbatched, "no batch dim" forms of every loss),
  through ``lossreg.torch.<Module>`` and through lossreg's functional form. The entries' own
  reference (the batch of one, squeezed) is checked on lossreg's modules too. torch's list binds
  ``reduction`` late (every entry's constructor uses the last value, "sum"); here the reduction is
  the one each entry's name says.
- The loss entries of ``common_nn.get_new_module_tests()`` (``*_no_reduce``, ``*_beta``, ...): each
  wraps one ``torch.nn.functional`` call around a target held in a closure; the call is intercepted
  and made again through lossreg (functional and module forms) with the same arguments, and
  lossreg's answer is also checked against the entry's ``reference_fn``.
- Hand-written loss tests of PyTorch's ``test/test_nn.py`` (``TestNN`` and ``TestNNDeviceType``):
  the same inputs and the same assertions, with lossreg in torch's place. Where torch raises,
  lossreg must raise its own error (a ``lossreg.LossError``); where the README documents a
  deliberate difference, the test asserts exactly that difference.

Not ported: the tests about CUDA, cuDNN, TF32, large tensors (64-bit indexing) and torch internals.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("expecttest", reason="torch.testing._internal needs expecttest (the test extra)")
common_nn = pytest.importorskip("torch.testing._internal.common_nn")

import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.autograd import gradcheck  # noqa: E402

import lossreg  # noqa: E402
import lossreg.torch as LT  # noqa: E402
from lossreg.errors import LossError, LossTypeError, LossValueError  # noqa: E402

DTYPES = (torch.float64, torch.float32)
REFS = common_nn.loss_reference_fns


def _tol(dtype: Any) -> dict[str, float]:
    return {"rtol": 1e-7, "atol": 1e-9} if dtype == torch.float64 else {"rtol": 2e-5, "atol": 1e-6}


def assert_same(got: Any, want: Any, what: str = "value") -> None:
    """lossreg's tensor equals torch's: shape, dtype and values (NaN where torch has NaN)."""
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} != torch's {tuple(want.shape)}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != torch's {want.dtype}"
    assert torch.allclose(got, want, equal_nan=True, **_tol(want.dtype)), f"{what}: {got} != torch's {want}"


def _hvp(first: tuple[Any, ...], leaves: tuple[Any, ...], v: tuple[Any, ...]) -> list[Any]:
    """Second derivative along ``v``: the gradient of Σ ∂L/∂x · v. A first derivative that does not
    depend on the inputs (torch's margin kernels record one anyway) is a zero second derivative, as
    ``gradgradcheck`` takes it."""
    if not any(g.requires_grad for g in first):
        return [torch.zeros_like(x) for x in leaves]
    # torch.real: a real scalar to differentiate where the leaves are complex (L1Loss's), itself elsewhere
    s = sum(torch.real(g * w).sum() for g, w in zip(first, v) if g.requires_grad)
    out = torch.autograd.grad(s, leaves, allow_unused=True, retain_graph=True)
    return [torch.zeros_like(x) if o is None else o for x, o in zip(leaves, out)]


def assert_same_derivatives(got: Any, want: Any, leaves: tuple[Any, ...], second: bool = True) -> None:
    """The gradients of Σ loss with respect to ``leaves`` equal torch's, and so do the second
    derivatives along a random direction (where ``second``)."""
    if not want.requires_grad:
        return
    wanted = torch.autograd.grad(want.sum(), leaves, create_graph=second, retain_graph=True)
    grads = torch.autograd.grad(got.sum(), leaves, create_graph=second)
    for i, (g, w) in enumerate(zip(grads, wanted)):
        assert_same(g, w, f"gradient of input {i}")
    if second:
        v = tuple(torch.randn_like(x) for x in leaves)
        for i, (g, w) in enumerate(zip(_hvp(grads, leaves, v), _hvp(wanted, leaves, v))):
            assert_same(g, w, f"second derivative of input {i}")


def _fresh(x: Any, dtype: Any) -> Any:
    """A float tensor as a new leaf in ``dtype`` that requires grad; anything else unchanged."""
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        return x.detach().to(dtype).requires_grad_()
    return x


# --------------------------------------------------------------------------------------------
# 1. common_nn.criterion_tests
# --------------------------------------------------------------------------------------------

CRITERIA = [e for e in common_nn.criterion_tests
            if hasattr(LT, e["fullname"].split("_no_batch_dim_")[0])]


def _make(entry: dict[str, Any], key: str) -> Any:
    return entry[f"{key}_fn"]() if f"{key}_fn" in entry else torch.randn(entry[f"{key}_size"])


def _criterion_inputs(entry: dict[str, Any], dtype: Any) -> tuple[tuple[Any, ...], Any]:
    torch.manual_seed(0)
    with common_nn.set_default_dtype(entry.get("default_dtype", torch.float64)):
        inputs, target = _make(entry, "input"), _make(entry, "target")
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    # a float target takes the inputs' dtype, as in torch's own dtype variant of these tests
    # (CriterionTest.test_cuda); mixed dtypes are tests/test_mixed_dtypes.py's subject
    return tuple(_fresh(x, dtype) for x in inputs), target.to(dtype) if target.is_floating_point() else target


def test_criterion_tests_are_all_here() -> None:
    """Every loss of torch's criterion list is one lossreg has (none is skipped unseen)."""
    assert len(CRITERIA) == len(common_nn.criterion_tests) >= 48


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("entry", CRITERIA, ids=lambda e: e["fullname"])
def test_criterion_entry(entry: dict[str, Any], dtype: Any) -> None:
    """torch's criterion entry, through lossreg's module and functional forms, gives torch's
    value, gradients and second derivatives; the entry's reference (the same sample as a batch of
    one) holds for lossreg's module too."""
    name, reduction = entry["fullname"].split("_no_batch_dim_")
    inputs, target = _criterion_inputs(entry, dtype)
    want = getattr(nn, name)(reduction=reduction)(*inputs, target)
    module = getattr(LT, name)(reduction=reduction)
    functional = getattr(lossreg, lossreg.spec(name).name)
    for got in (module(*inputs, target), functional(*inputs, target, reduction=reduction)):
        assert_same(got, want)
        assert_same_derivatives(got, want, inputs, second=entry.get("check_gradgrad", True))
    reference = entry["reference_fn"](*(x.detach() for x in inputs), target, module)
    assert_same(module(*(x.detach() for x in inputs), target), reference, "against the entry's reference")


# --------------------------------------------------------------------------------------------
# 2. the loss entries of common_nn.get_new_module_tests()
# --------------------------------------------------------------------------------------------

LOSS_ENTRIES = [e for e in common_nn.get_new_module_tests()
                if "Loss" in e.get("fullname", "") or "loss" in e.get("fullname", "")]
# torch's L1Loss takes complex input (|x - y|, real), and so does lossreg's: its entries
# ("complex" in the name) run as the others, their gradients compared too.
LOSS_ENTRY_PARAMS = [pytest.param(e, id=e["fullname"]) for e in LOSS_ENTRIES]


def _intercept(entry: dict[str, Any], dtype: Any) -> tuple[Any, str, tuple[Any, ...], dict[str, Any], Any]:
    """Run the entry's module on its input (as a new leaf in ``dtype``) and catch the one
    ``torch.nn.functional`` loss it calls: (input, function name, arguments, options, torch's result)."""
    torch.manual_seed(0)
    with common_nn.set_default_dtype(entry.get("default_dtype", torch.float64)):
        module = entry["constructor"]()
        if "input_fn" in entry:
            x = entry["input_fn"]()
        elif "input" in entry:
            x = entry["input"].clone()
        else:
            x = torch.randn(entry["input_size"])
    x = x.detach().to(dtype if not x.is_complex() else x.dtype).requires_grad_()
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
    originals = {n: getattr(F, n) for n in lossreg.names() if hasattr(F, n)}

    def recorder(n: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> Any:
            calls.append((n, args, kwargs))
            return originals[n](*args, **kwargs)
        return record

    try:
        for n in originals:
            setattr(F, n, recorder(n))
        want = module(x)
    finally:
        for n, f in originals.items():
            setattr(F, n, f)
    assert len(calls) == 1, f"{entry['fullname']} called {[c[0] for c in calls]}"
    return x, *calls[0], want


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("entry", LOSS_ENTRY_PARAMS)
def test_new_module_loss_entry(entry: dict[str, Any], dtype: Any) -> None:
    """The entry's functional call, made again through lossreg (functional and module forms),
    gives torch's value, gradients and second derivatives, and meets the entry's reference."""
    x, name, args, options, want = _intercept(entry, dtype)
    if "reduce" in options or "size_average" in options:
        # README: the deprecated size_average / reduce are not taken (BCEWithLogitsLoss_legacy_enum)
        with pytest.raises(LossTypeError, match=r"argument 'reduce'"):
            getattr(lossreg, name)(*args, **options)
        return
    module = getattr(LT, lossreg.spec(name).class_name)(**options)
    for got in (getattr(lossreg, name)(*args, **options), module(*args)):
        assert_same(got, want)
        assert_same_derivatives(got, want, (x,), second=entry.get("check_gradgrad", True))
    with common_nn.set_default_dtype(torch.float64):
        reference = entry["reference_fn"](x.detach(), None, module)
    assert torch.allclose(getattr(lossreg, name)(*args, **options).detach(), reference.to(want.dtype),
                          equal_nan=True, **_tol(dtype)), "against the entry's reference_fn"


# --------------------------------------------------------------------------------------------
# 3. hand-written loss tests of PyTorch's test/test_nn.py
# --------------------------------------------------------------------------------------------


def _grad(loss: Any, *leaves: Any) -> tuple[Any, ...]:
    return torch.autograd.grad(loss.sum(), leaves)


def test_cosine_embedding_loss_with_diff_type() -> None:
    """TestNN.test_cosine_embedding_loss_with_diff_type: float32/float64 inputs and integer ±1
    targets of any signed dtype give the float64 answer (torch also takes integer inputs)."""
    input1 = torch.tensor([[2, 3, 4], [6, 2, 4]], dtype=torch.double)
    input2 = torch.tensor([[2, 3, 5], [3, 2, 1]], dtype=torch.double)
    target = torch.tensor([1, -1], dtype=torch.int)
    expected = F.cosine_embedding_loss(input1, input2, target)
    for dt1, dt2, dt3 in itertools.product((torch.float32, torch.float64), (torch.float32, torch.float64),
                                           (torch.int8, torch.int16, torch.int32, torch.int64, torch.float32)):
        a, b, t = input1.to(dt1), input2.to(dt2), target.to(dt3)
        got = lossreg.cosine_embedding_loss(a, b, t)
        assert_same(got, F.cosine_embedding_loss(a, b, t))
        assert abs(got.item() - expected.item()) <= 1e-3


@pytest.mark.parametrize("shapes", [((0, 0), (0,), (0,)), ((1, 5), (1, 6), (1,)), ((15, 10), (15, 10), (15, 1)),
                                    ((10,), (10,), (10,)), ((2, 5), (2, 5), ())], ids=str)
def test_cosine_embedding_loss_invalid_shapes(shapes: Any) -> None:
    """TestNN.test_cosine_embedding_loss_error_on_diff_shapes, _error_on_nonexpandable_shapes and
    _invalid_shape: where torch raises, lossreg raises its own error."""
    a, b, t = (torch.ones(s, dtype=torch.double) for s in shapes)
    with pytest.raises(RuntimeError):
        F.cosine_embedding_loss(a, b, t)
    with pytest.raises(LossValueError, match="cosine_embedding_loss: argument"):
        lossreg.cosine_embedding_loss(a, b, t)


@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_with_diff_type(log_target: bool) -> None:
    """TestNN.test_kl_div_with_diff_type(_log_target): every pair of float32/float64 input and
    target gives torch's answer (and about the float64 one)."""
    input = torch.tensor([[2, 3, 5], [3, 2, 1]], dtype=torch.double)
    target = torch.tensor([[1, 2, 3], [4, 5, 6]], dtype=torch.double)
    target = target.log() if log_target else target
    expected = F.kl_div(input, target, log_target=log_target)
    for di, dt in itertools.product((torch.float32, torch.float64), repeat=2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's "mean" warning
            want = F.kl_div(input.to(di), target.to(dt), log_target=log_target)
        got = lossreg.kl_div(input.to(di), target.to(dt), log_target=log_target)
        assert_same(got, want)
        assert abs(got.item() - expected.item()) <= 1e-3


def test_kl_div_log_softmax_target() -> None:
    """TestNN.test_kl_div_log_softmax_target: equal distributions, log targets: exactly zero."""
    a = torch.tensor([[1.0, 2, 3], [5.0, 5, 5]])
    got = lossreg.kl_div(F.log_softmax(a, 1), F.log_softmax(a.clone(), 1), reduction="none", log_target=True)
    assert torch.equal(got, torch.zeros_like(a))


@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_batchmean(log_target: bool) -> None:
    """TestNN.test_KLDivLoss_batch_mean(_log_target): "batchmean" is the sum over the batch size."""
    log_prob1 = F.log_softmax(torch.randn(2, 5), 1)
    prob2 = F.log_softmax(torch.randn(2, 5), 1) if log_target else F.softmax(torch.randn(2, 5), 1)
    got = LT.KLDivLoss(reduction="batchmean", log_target=log_target)(log_prob1, prob2)
    assert_same(got, nn.KLDivLoss(reduction="batchmean", log_target=log_target)(log_prob1, prob2))
    assert_same(got, LT.KLDivLoss(reduction="sum", log_target=log_target)(log_prob1, prob2) / 2)


@pytest.mark.parametrize("case", [
    ("cosine_embedding_loss", {}), ("cosine_embedding_loss", {"margin": 0.5}),
    ("margin_ranking_loss", {}), ("margin_ranking_loss", {"margin": 0.5}),
    ("triplet_margin_loss", {}), ("triplet_margin_loss", {"swap": True}),
    ("triplet_margin_loss", {"reduction": "none"}), ("triplet_margin_loss", {"swap": True, "reduction": "none"}),
], ids=str)
def test_against_torch_reference_functions(case: Any) -> None:
    """TestNN.test_cosine_embedding_loss_(margin_)no_reduce, test_margin_ranking_loss_(margin_)no_reduce,
    test_triplet_margin_loss(_swap)(_no_reduce): lossreg equals torch's own reference function
    (common_nn.loss_reference_fns) and torch, and passes gradcheck."""
    name, options = case
    options = {"reduction": "none", **options} if name != "triplet_margin_loss" else options
    torch.manual_seed(0)
    if name == "cosine_embedding_loss":
        arrays = (torch.randn(15, 10, dtype=torch.double, requires_grad=True),
                  torch.randn(15, 10, dtype=torch.double, requires_grad=True), torch.randn(15, dtype=torch.double).sign())
    elif name == "margin_ranking_loss":
        arrays = (torch.randn(15, dtype=torch.double).mul(10).requires_grad_(),
                  torch.randn(15, dtype=torch.double).mul(10).requires_grad_(), torch.randn(15, dtype=torch.double).sign())
    else:
        arrays = tuple(torch.randn(5, 10, dtype=torch.double, requires_grad=True) for _ in range(3))
    fn = getattr(lossreg, name)
    got = fn(*arrays, **options)
    assert_same(got, getattr(F, name)(*arrays, **options))
    assert_same(got, REFS[lossreg.spec(name).class_name](*arrays, **options).to(got.dtype), "reference")
    assert gradcheck(lambda *a: fn(*a, **options), arrays)


def test_pointwise_loss_target_grad_none_reduction() -> None:
    """TestNN.test_pointwise_loss_target_grad_none_reduction: a target that requires grad keeps the shape."""
    i, t = torch.randn(5, 10), torch.randn(5, 10, requires_grad=True)
    assert lossreg.mse_loss(i, t, reduction="none").size() == t.size()
    assert lossreg.l1_loss(i, t, reduction="none").size() == t.size()
    assert_same_derivatives(lossreg.mse_loss(i, t), F.mse_loss(i, t), (t,))


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"])
def test_pointwise_loss_broadcast_is_refused(name: str) -> None:
    """TestNN.test_pointwise_loss_broadcast: torch broadcasts a (2, 1) input against a (2, 10)
    target; the README's deliberate difference: unequal shapes are a lossreg error."""
    input = torch.randn(2, 1, requires_grad=True, dtype=torch.double)
    target = torch.randn(2, 10, dtype=torch.double)
    assert getattr(F, name)(input, target, reduction="none").shape == (2, 10)
    with pytest.raises(LossValueError, match=f"{name}: argument 'target'"):
        getattr(lossreg, name)(input, target)


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div", "poisson_nll_loss"])
def test_loss_equal_input_target_shape(name: str) -> None:
    """TestNN.test_loss_equal_input_target_shape: (3, 5) against (5, 3) is an error in both."""
    input, target = torch.randn(3, 5), torch.randn(5, 3)
    with pytest.raises(Exception):
        getattr(F, name)(input, target)
    with pytest.raises(LossValueError, match=f"{name}: argument 'target'"):
        getattr(lossreg, name)(input, target)


def test_mse_loss_size_warning_is_an_error() -> None:
    """TestNN.test_mse_loss_size_warning: torch warns for (10, 1) against (10,) and broadcasts;
    lossreg (README, Shapes) refuses it, saying both shapes."""
    i, t = torch.randn((10, 1), requires_grad=True), torch.randn((10,))
    with pytest.warns(UserWarning, match="Please ensure they have the same size"):
        F.mse_loss(i, t)
    with pytest.raises(LossValueError, match=r"mse_loss: argument 'target'.*\(10,\)"):
        lossreg.mse_loss(i, t)


def test_l1_loss_correct() -> None:
    """TestNN.test_l1_loss_correct (issue 27692, smaller): the mean of |x| over many elements."""
    for n in (1, 11, 21):
        input = torch.rand(n, 3, 64, 64)
        got = LT.L1Loss()(input, torch.zeros_like(input))
        assert_same(got, nn.L1Loss()(input, torch.zeros_like(input)))
        assert torch.allclose(got, input.abs().mean())


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64], ids=str)
def test_smooth_l1_loss_integral_target_is_refused(dtype: Any) -> None:
    """TestNN.test_smoothl1loss_intergral_target: torch promotes integer targets; the README's
    deliberate difference: integer targets of SmoothL1Loss are a LossTypeError (pass floats)."""
    input = torch.randn(2, 2, requires_grad=True)
    target = torch.randint(0, 9, (2, 2), dtype=dtype)
    F.smooth_l1_loss(input, target, beta=0.5)
    with pytest.raises(LossTypeError, match="smooth_l1_loss: argument 'target'"):
        lossreg.smooth_l1_loss(input, target, beta=0.5)
    got = lossreg.smooth_l1_loss(input, target.float(), beta=0.5)
    assert_same_derivatives(got, F.smooth_l1_loss(input, target, beta=0.5), (input,))


def test_smooth_l1_loss_negative_beta() -> None:
    """TestNN.test_smoothl1loss_negative_beta_not_supported."""
    with pytest.raises(RuntimeError):
        F.smooth_l1_loss(torch.randn(2, 2), torch.randn(2, 2), beta=-1.0)
    with pytest.raises(LossValueError, match="smooth_l1_loss: argument 'beta'"):
        lossreg.smooth_l1_loss(torch.randn(2, 2), torch.randn(2, 2), beta=-1.0)


@pytest.mark.parametrize("delta", [-0.5, 0.0])
def test_huber_loss_invalid_delta(delta: float) -> None:
    """TestNN.test_huber_loss_invalid_delta: negative and zero delta raise, in torch at the call."""
    input, target = torch.randn(2, 2), torch.randn(2, 2)
    with pytest.raises(RuntimeError):
        nn.HuberLoss(delta=delta)(input, target)
    with pytest.raises(LossValueError, match="huber_loss: argument 'delta'"):
        LT.HuberLoss(delta=delta)(input, target)


def test_smooth_l1_loss_backward_zero_beta() -> None:
    """TestNNDeviceType.test_smoothl1loss_backward_zero_beta: at beta = 0 the gradient is sign(d), |g| ≤ 1,
    including where input == target."""
    input = torch.randn(300, 256, requires_grad=True, dtype=torch.double)
    target = input.detach()
    got = lossreg.smooth_l1_loss(input, target, beta=0.0, reduction="sum")
    assert_same_derivatives(got, F.smooth_l1_loss(input, target, beta=0.0, reduction="sum"), (input,))
    assert _grad(got, input)[0].abs().max().item() <= 1.0


@pytest.mark.parametrize("beta", [1.0, 0.5, 1.5])
def test_smooth_l1_loss_vs_huber_loss(beta: float) -> None:
    """TestNN.test_smooth_l1_loss_vs_huber_loss: equal at beta = delta = 1, and smooth L1 is
    Huber / beta otherwise."""
    input = torch.randn(8, 8) * 3
    target = torch.randn(8, 8) * 3
    smooth, huber = LT.SmoothL1Loss(beta=beta)(input, target), LT.HuberLoss(delta=beta)(input, target)
    assert_same(smooth, nn.SmoothL1Loss(beta=beta)(input, target))
    assert_same(huber, nn.HuberLoss(delta=beta)(input, target))
    assert torch.allclose(smooth, huber / beta)
    assert torch.equal(smooth, huber) == (beta == 1.0)


def test_bce_loss_always_nonnegative() -> None:
    """TestNN.test_bce_loss_always_nonnegative: a perfect prediction of 1 or of 0 costs exactly 0."""
    for value in (1.0, 0.0):
        x = torch.full((5,), value)
        assert (LT.BCELoss()(x, x) >= 0).item() and LT.BCELoss()(x, x).item() == 0.0


@pytest.mark.parametrize("name", ["binary_cross_entropy", "binary_cross_entropy_with_logits"])
@pytest.mark.parametrize("shapes", [((5, 1), (5,)), ((5,), (5, 1))], ids=str)
def test_bce_size_mismatch(name: str, shapes: Any) -> None:
    """TestNN.test_bce_with_logits_raises_if_target_and_input_are_different_size and
    test_bce_loss_size_mismatch: a ValueError in torch, a LossValueError here."""
    input, target = torch.rand(shapes[0]), torch.rand(shapes[1])
    with pytest.raises(ValueError):
        getattr(F, name)(input, target)
    with pytest.raises(LossValueError, match=f"{name}: argument 'target'"):
        getattr(lossreg, name)(input, target)


def test_bce_with_logits_gives_same_result_as_sigmoid_and_bce_loss() -> None:
    """TestNN.test_bce_with_logits_gives_same_result_as_sigmoid_and_bce_loss (and its large-tensor,
    with-grad variant): BCE with logits is BCE of the sigmoid, value and gradient; at -100
    logits and 0 targets too."""
    torch.manual_seed(0)
    target, output = torch.rand(64, 4), torch.rand(64, 4) - 0.5
    weight = torch.rand(4)
    for options in ({}, {"reduction": "none"}, {"weight": weight}):
        assert torch.allclose(LT.BCEWithLogitsLoss(**options)(output, target),
                              LT.BCELoss(**options)(torch.sigmoid(output), target), atol=1e-6)
    target, output = torch.zeros(4, 1), torch.full((4, 1), -100.0)
    for options in ({}, {"reduction": "none"}, {"weight": torch.rand(1)}):
        got = LT.BCEWithLogitsLoss(**options)(output, target)
        assert_same(got, nn.BCEWithLogitsLoss(**options)(output, target))
        assert torch.allclose(got, LT.BCELoss(**options)(torch.sigmoid(output), target))
    x = (torch.rand(1024, 256) - 0.5).requires_grad_()
    y = torch.rand(1024, 256)
    got, want = LT.BCEWithLogitsLoss()(x, y), LT.BCELoss()(torch.sigmoid(x), y)
    assert torch.allclose(got, want) and torch.allclose(_grad(got, x)[0], _grad(want, x)[0], atol=1e-9)
    assert_same_derivatives(LT.BCEWithLogitsLoss()(x, y), nn.BCEWithLogitsLoss()(x, y), (x,))


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bce_with_logits_has_correct_forward_grad(reduction: str) -> None:
    """TestNN.test_bce_with_logits_has_correct_forward_grad: gradcheck, forward mode included."""
    output = torch.randn(3, 5, requires_grad=True, dtype=torch.double)
    target = torch.randn(3, 5, dtype=torch.double)
    assert gradcheck(lambda x, t: lossreg.binary_cross_entropy_with_logits(x, t, reduction=reduction),
                     (output, target), check_forward_ad=True)


@pytest.mark.parametrize("pos_weight", [None, torch.ones(3, 1)], ids=["no_pos_weight", "pos_weight"])
def test_bce_with_logits_has_correct_grad_at_zero(pos_weight: Any) -> None:
    """TestNN.test_bce_with_logits_(with_pos_weight_)has_correct_grad_at_zero: 0.5 at logit 0, target 0."""
    output = torch.zeros(3, 1, requires_grad=True)
    target = torch.zeros(3, 1)
    loss = LT.BCEWithLogitsLoss(pos_weight=pos_weight, reduction="sum")(output, target)
    assert torch.equal(_grad(loss, output)[0], torch.full((3, 1), 0.5))


def test_bce_weights_and_pos_weights_broadcast() -> None:
    """TestNN.test_bce_with_logits_broadcasts_weights, _broadcasts_pos_weights,
    _ones_in_pos_weights_are_the_same_as_none and test_bce_loss_broadcasts_weights."""
    torch.manual_seed(0)
    target, output = torch.rand(16, 4), torch.rand(16, 4) - 0.5
    for weight in (torch.rand(4), torch.rand(16, 1)):
        out1 = LT.BCEWithLogitsLoss(weight=weight)(output, target)
        assert_same(out1, nn.BCEWithLogitsLoss(weight=weight)(output, target))
        assert torch.allclose(out1, LT.BCEWithLogitsLoss(weight=weight.expand(16, 4).contiguous())(output, target))
        p = torch.sigmoid(output)
        out2 = LT.BCELoss(weight=weight)(p, target)
        assert_same(out2, nn.BCELoss(weight=weight)(p, target))
        assert torch.allclose(out2, LT.BCELoss(weight=weight.expand(16, 4).contiguous())(p, target))
    pos_weight = torch.rand(4)
    out1 = LT.BCEWithLogitsLoss(pos_weight=pos_weight)(output, target)
    assert_same(out1, nn.BCEWithLogitsLoss(pos_weight=pos_weight)(output, target))
    for expanded in (pos_weight.expand(1, 4), pos_weight.expand(16, 4)):
        assert torch.allclose(out1, LT.BCEWithLogitsLoss(pos_weight=expanded)(output, target))
    assert torch.equal(LT.BCEWithLogitsLoss(pos_weight=torch.ones(16, 4))(output, target),
                       LT.BCEWithLogitsLoss()(output, target))


def test_bce_with_logits_stability() -> None:
    """TestNN.test_bce_with_logits_stability: finite at a logit of -120, with and without pos_weight."""
    output, target = torch.tensor([0.0, -120.0]), torch.tensor([0.0, 1.0])
    for pos_weight in (None, torch.tensor([1.0, 1.0])):
        got = LT.BCEWithLogitsLoss(pos_weight=pos_weight)(output, target)
        assert torch.isfinite(got).all()
        assert_same(got, nn.BCEWithLogitsLoss(pos_weight=pos_weight)(output, target))


def test_bce_loss_input_range() -> None:
    """TestNN.test_bce_loss_input_range: probabilities outside [0, 1] raise (torch: RuntimeError)."""
    target, valid = torch.rand(25, 25), torch.rand(25, 25)
    assert_same(LT.BCELoss()(valid, target), nn.BCELoss()(valid, target))
    for invalid in (valid - 1.0, valid + 1.0):
        with pytest.raises(RuntimeError):
            nn.BCELoss()(invalid, target)
        with pytest.raises(LossValueError, match="binary_cross_entropy: argument 'input'"):
            LT.BCELoss()(invalid, target)


def test_poisson_nll_loss_reduction_modes() -> None:
    """TestNN.test_poisson_nll_loss_reduction_modes: exp(x) - y x, reduced; an unknown reduction is a ValueError."""
    input, target = torch.tensor([0.5, 1.5, 2.5]), torch.tensor([1.0, 2.0, 3.0])
    component = torch.exp(input) - target * input
    for reduction, want in (("none", component), ("sum", component.sum()), ("mean", component.mean())):
        got = lossreg.poisson_nll_loss(input, target, reduction=reduction)
        assert_same(got, F.poisson_nll_loss(input, target, reduction=reduction))
        assert torch.allclose(got, want)
    with pytest.raises(ValueError):
        F.poisson_nll_loss(input, target, reduction="total")
    with pytest.raises(LossValueError, match="poisson_nll_loss: argument 'reduction'"):
        lossreg.poisson_nll_loss(input, target, reduction="total")


GAUSSIAN_INPUT = torch.tensor([[0.5, 1.5, 2.5], [2.0, 4.0, 6.0]])
GAUSSIAN_TARGET = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])


def test_gaussian_nll_loss_reduction_modes() -> None:
    """TestNN.test_gaussian_nll_loss_reduction_modes."""
    var = torch.ones((2, 3)) * 0.5
    component = 0.5 * (torch.log(var) + (GAUSSIAN_INPUT - GAUSSIAN_TARGET) ** 2 / var)
    for reduction, want in (("none", component), ("sum", component.sum()), ("mean", component.mean())):
        got = lossreg.gaussian_nll_loss(GAUSSIAN_INPUT, GAUSSIAN_TARGET, var, reduction=reduction)
        assert_same(got, F.gaussian_nll_loss(GAUSSIAN_INPUT, GAUSSIAN_TARGET, var, reduction=reduction))
        assert torch.allclose(got, want)
    with pytest.raises(LossValueError, match="gaussian_nll_loss: argument 'reduction'"):
        lossreg.gaussian_nll_loss(GAUSSIAN_INPUT, GAUSSIAN_TARGET, var, reduction="total")


def test_gaussian_nll_loss_broadcasting() -> None:
    """TestNN.test_gaussian_nll_loss_broadcasting: var of shape (2, 3), (2, 1) and (2,), and the
    target (1, 3), give the full answer; a target with fewer axes ((3,), which torch broadcasts)
    is refused, as gaussian_nll_loss's documentation says."""
    target_part = torch.tensor([[1.0, 2.0, 3.0]])
    var_full = torch.tensor([[0.5, 0.5, 0.5], [1.5, 1.5, 1.5]])
    component = 0.5 * (torch.log(var_full) + (GAUSSIAN_INPUT - GAUSSIAN_TARGET) ** 2 / var_full)
    for var in (var_full, torch.tensor([[0.5], [1.5]]), torch.tensor([0.5, 1.5])):
        got = lossreg.gaussian_nll_loss(GAUSSIAN_INPUT, GAUSSIAN_TARGET, var, reduction="none")
        assert_same(got, F.gaussian_nll_loss(GAUSSIAN_INPUT, GAUSSIAN_TARGET, var, reduction="none"))
        assert torch.allclose(got, component)
    got = lossreg.gaussian_nll_loss(GAUSSIAN_INPUT, target_part, var_full, reduction="none")
    assert_same(got, F.gaussian_nll_loss(GAUSSIAN_INPUT, target_part, var_full, reduction="none"))
    F.gaussian_nll_loss(GAUSSIAN_INPUT, target_part[0], var_full, reduction="none")
    with pytest.raises(LossValueError, match="gaussian_nll_loss: argument 'target'"):
        lossreg.gaussian_nll_loss(GAUSSIAN_INPUT, target_part[0], var_full, reduction="none")


def test_gaussian_nll_loss_args() -> None:
    """TestNN.test_gaussian_nll_loss_args: var of a wrong size, and negative var, are ValueErrors."""
    input, target = torch.randn(3, 5), torch.randn(3, 5)
    for var, message in ((torch.ones(3, 3), "var is of incorrect size"), (-1 * torch.ones(3, 5), "var has negative entry")):
        with pytest.raises(ValueError, match=message):
            F.gaussian_nll_loss(input, target, var)
        with pytest.raises(LossValueError, match="gaussian_nll_loss: argument 'var'"):
            lossreg.gaussian_nll_loss(input, target, var)


def test_gaussian_nll_loss_scalar_var() -> None:
    """TestNN.test_gaussian_nll_loss_scalar_var: a Python float var is a var of the input's shape."""
    var = 0.5
    for reduction in ("none", "sum", "mean"):
        got = lossreg.gaussian_nll_loss(GAUSSIAN_INPUT, GAUSSIAN_TARGET, var, reduction=reduction)
        assert_same(got, F.gaussian_nll_loss(GAUSSIAN_INPUT, GAUSSIAN_TARGET, var, reduction=reduction))
        assert_same(got, lossreg.gaussian_nll_loss(GAUSSIAN_INPUT, GAUSSIAN_TARGET, var * torch.ones_like(GAUSSIAN_INPUT),
                                                   reduction=reduction))


def _nll_empty(input_size: list[int], reduction: str) -> None:
    input = torch.rand(input_size, requires_grad=True)
    target = torch.randint(input_size[1], (input_size[0], *input_size[2:]))
    got = lossreg.nll_loss(input, target, reduction=reduction)
    assert_same(got, F.nll_loss(input, target, reduction=reduction))
    assert _grad(got, input)[0].shape == input.shape


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_nll_loss_empty_tensor(reduction: str) -> None:
    """TestNNDeviceType.test_nll_loss_empty_tensor_reduction_{none,mean,sum}: an empty batch or
    empty spatial axis gives an empty result, NaN for "mean" and 0 for "sum"."""
    for size in ([0, 3], [0, 3, 5, 7], [2, 3, 0, 7], [2, 3, 5, 0], [2, 3, 5, 7, 0]):
        _nll_empty(size, reduction)


@pytest.mark.parametrize("input_size", [(5, 3), (5, 3, 7), (5, 3, 2, 4)], ids=str)
def test_nll_loss_total_weight_is_zero(input_size: Any) -> None:
    """TestNNDeviceType.test_nll_loss_total_weight_is_zero: all-zero class weights: 0 for "sum",
    NaN for "mean", zeros for "none"."""
    input = torch.ones(input_size, requires_grad=True)
    target = torch.zeros((input_size[0], *input_size[2:]), dtype=torch.long)
    weight = torch.zeros(input_size[1])
    for reduction in ("sum", "mean", "none"):
        assert_same(lossreg.nll_loss(input, target, weight=weight, reduction=reduction),
                    F.nll_loss(input, target, weight, reduction=reduction))


def test_nll_loss_all_ignored() -> None:
    """TestNNDeviceType.test_nll_loss_all_ignored: every target ignored: "mean" is NaN, "sum" 0."""
    input = torch.rand(4, 3, requires_grad=True)
    target = torch.full((4,), -100)
    for reduction in ("mean", "sum", "none"):
        got = lossreg.nll_loss(input, target, reduction=reduction)
        assert_same(got, F.nll_loss(input, target, reduction=reduction))
        assert_same_derivatives(got, F.nll_loss(input, target, reduction=reduction), (input,), second=False)


def test_nll_loss_mismatched_batch() -> None:
    """TestNNDeviceType.test_nll_loss_mismatched_batch: (10, 3) scores with 3 targets."""
    x, t = torch.randn((10, 3), requires_grad=True), torch.zeros((3,), dtype=torch.int64)
    with pytest.raises(ValueError, match="Expected.*batch_size"):
        F.nll_loss(x, t)
    with pytest.raises(LossValueError, match="nll_loss: argument 'target'"):
        lossreg.nll_loss(x, t)


def test_nll_loss_out_of_bounds_ignore_index() -> None:
    """TestNNDeviceType.test_nll_loss_out_of_bounds_ignore_index: ignore_index=255, beyond the classes."""
    x = torch.randn(6, 3, requires_grad=True)
    t = torch.tensor([0, 1, 255, 0, 1, 2])
    for reduction in ("mean", "none"):
        got = lossreg.nll_loss(x, t, ignore_index=255, reduction=reduction)
        want = F.nll_loss(x, t, ignore_index=255, reduction=reduction)
        assert_same(got, want)
        assert_same_derivatives(got, want, (x,))


def test_nll_loss_invalid_target_dim() -> None:
    """TestNNDeviceType.test_nll_loss_invalid_target_dim: a (10, 2) target for (10, 3) scores
    (the (N, 1) form is the README's documented extension; (N, 2) is not)."""
    x, t = torch.randn((10, 3)), torch.zeros((10, 2), dtype=torch.int64)
    with pytest.raises(RuntimeError, match="1D target tensor expected"):
        F.nll_loss(x, t)
    with pytest.raises(LossValueError, match="nll_loss: argument 'target'"):
        lossreg.nll_loss(x, t)


@pytest.mark.parametrize("weight", [torch.randn(4), torch.randn(1, 3)], ids=["4", "1x3"])
def test_nll_loss_invalid_weights(weight: Any) -> None:
    """TestNNDeviceType.test_nll_loss_invalid_weights: weights not of one per class."""
    x, t = torch.randn((10, 3)), torch.empty(10, dtype=torch.int64).random_(0, 3)
    with pytest.raises(RuntimeError, match="weight tensor should be defined either for all 3 classes or no classes"):
        F.nll_loss(x, t, weight=weight)
    with pytest.raises(LossValueError, match="nll_loss: argument 'weight'"):
        lossreg.nll_loss(x, t, weight=weight)


@pytest.mark.parametrize("name", ["nll_loss", "cross_entropy"])
def test_byte_target_matches_long(name: str) -> None:
    """TestNNDeviceType.test_nll_loss_byte_target_matches_long and
    test_cross_entropy_loss_byte_target_matches_long: uint8 labels give the int64 answer."""
    N, C = 10, 4
    input = torch.randn(N, C, requires_grad=True)
    target = torch.empty(N, dtype=torch.long).random_(0, C)
    fn = getattr(lossreg, name)
    for reduction in ("none", "mean", "sum"):
        x = F.log_softmax(input, 1) if name == "nll_loss" else input
        got, want = fn(x, target.to(torch.uint8), reduction=reduction), getattr(F, name)(x, target, reduction=reduction)
        assert_same(got, want)
        assert_same_derivatives(got, want, (input,), second=False)


def test_cross_entropy_loss_prob_target_all_reductions() -> None:
    """TestNNDeviceType.test_cross_entropy_loss_prob_target_all_reductions (and _unit_weights):
    probability targets with K extra axes, with and without class weights, equal torch's reference."""
    torch.manual_seed(0)
    for k in range(5):
        N, C = 5, 4
        other_dims = [torch.randint(2, 5, size=(1,)).item() for _ in range(k)]
        input = torch.randn(N, C, *other_dims, requires_grad=True)
        target = torch.randn(N, C, *other_dims).softmax(dim=1)
        weight = torch.randn(C).abs()
        for reduction, w in itertools.product(["none", "mean", "sum"], [None, weight, torch.ones(C)]):
            got = LT.CrossEntropyLoss(weight=w, reduction=reduction)(input, target)
            assert_same(got, nn.CrossEntropyLoss(weight=w, reduction=reduction)(input, target))
            assert torch.allclose(got, REFS["CrossEntropyLoss"](input, target, reduction=reduction, weight=w), atol=1e-6)
            if w is not None and bool((w == 1).all()):
                assert torch.allclose(got, LT.CrossEntropyLoss(reduction=reduction)(input, target))


def test_cross_entropy_loss_one_hot_target() -> None:
    """TestNNDeviceType.test_cross_entropy_loss_one_hot_target: class indices and their one-hot
    probabilities agree, but for the weighted mean (which torch defines differently for the two)."""
    torch.manual_seed(0)
    for k in range(5):
        N, C = 5, 4
        other_dims = [torch.randint(2, 5, size=(1,)).item() for _ in range(k)]
        input = torch.randn(N, C, *other_dims, requires_grad=True)
        target = torch.randint(0, C, (N, *other_dims))
        weight = torch.randn(C).abs()
        one_hot = F.one_hot(target, num_classes=C).to(input.dtype).movedim(-1, 1)
        for reduction, w in itertools.product(["none", "mean", "sum"], [None, weight]):
            m = LT.CrossEntropyLoss(weight=w, reduction=reduction)
            assert_same(m(input, one_hot), nn.CrossEntropyLoss(weight=w, reduction=reduction)(input, one_hot))
            if not (reduction == "mean" and w is not None):
                assert torch.allclose(m(input, target), m(input, one_hot), atol=1e-6)


@pytest.mark.parametrize("target", ["indices", "probabilities"])
def test_cross_entropy_label_smoothing_errors(target: str) -> None:
    """TestNNDeviceType.test_cross_entropy_label_smoothing_errors: label_smoothing=1.2 is refused."""
    N, C = 3, 4
    args = (torch.randn(N, C), torch.arange(0, C)[:N] if target == "indices" else torch.randn(N, C).softmax(1))
    with pytest.raises(RuntimeError, match=r"label_smoothing must be between 0\.0"):
        nn.CrossEntropyLoss(label_smoothing=1.2)(*args)
    with pytest.raises(LossValueError, match="cross_entropy: argument 'label_smoothing'"):
        LT.CrossEntropyLoss(label_smoothing=1.2)(*args)


def test_cross_entropy_label_smoothing_consistent_index_target_and_probs() -> None:
    """TestNNDeviceType.test_cross_entropy_label_smoothing_consistent_index_target_and_probs:
    smoothing class indices equals the smoothed one-hot probabilities."""
    torch.manual_seed(0)
    N, C = 10, 4
    for k, reduction, ls in itertools.product(range(5), ["mean", "sum", "none"], [0.05, 0.15]):
        other_dims = [torch.randint(2, 5, size=(1,)).item() for _ in range(k)]
        input = torch.randn(N, C, *other_dims, requires_grad=True)
        target = torch.randint(0, C, (N, *other_dims))
        proba = F.one_hot(target, C).movedim(-1, 1).to(input.dtype)
        proba = proba * (1 - ls) + ls / C
        with_index = LT.CrossEntropyLoss(reduction=reduction, label_smoothing=ls)(input, target)
        assert_same(with_index, nn.CrossEntropyLoss(reduction=reduction, label_smoothing=ls)(input, target))
        assert torch.allclose(with_index, LT.CrossEntropyLoss(reduction=reduction)(input, proba), rtol=1e-6, atol=1e-5)


def test_cross_entropy_label_smoothing_with_probs() -> None:
    """TestNNDeviceType.test_cross_entropy_label_smoothing_with_probs: smoothing probability
    targets is mixing them with the uniform distribution."""
    torch.manual_seed(0)
    N, C, ls = 10, 4, 0.1
    for k, reduction in itertools.product(range(5), ["mean", "sum", "none"]):
        other_dims = [torch.randint(2, 5, size=(1,)).item() for _ in range(k)]
        input = torch.randn(N, C, *other_dims, requires_grad=True)
        target = F.log_softmax(torch.randn(N, C, *other_dims), dim=1).exp()
        smoothed = LT.CrossEntropyLoss(reduction=reduction, label_smoothing=ls)(input, target)
        assert_same(smoothed, nn.CrossEntropyLoss(reduction=reduction, label_smoothing=ls)(input, target))
        assert torch.allclose(smoothed, LT.CrossEntropyLoss(reduction=reduction)(input, target * (1 - ls) + ls / C),
                              atol=1e-6)


def test_cross_entropy_label_smoothing_weight_ignore_indices() -> None:
    """TestNNDeviceType.test_cross_entropy_label_smoothing_weight_ignore_indices: an ignored row's
    scores do not matter, whatever the ignore_index (-100, -2, or 2, beyond the classes)."""
    wgt = torch.tensor([0.3, 0.6])
    inp1 = torch.tensor([[0.3, 0.4], [1.0, 2.0]])
    inp2 = torch.tensor([[0.3, 0.6], [1.0, 2.0]])
    for reduction, ls, weight in itertools.product(["none", "mean", "sum"], [0.3, 0.9], [None, wgt]):
        for ignore_index, targ in ((-100, torch.tensor([-100, 1])), (-2, torch.tensor([-2, 1])), (2, torch.tensor([2, 1]))):
            options = {"reduction": reduction, "label_smoothing": ls, "weight": weight, "ignore_index": ignore_index}
            l1 = LT.CrossEntropyLoss(**options)(inp1, targ)
            assert_same(l1, nn.CrossEntropyLoss(**options)(inp1, targ))
            assert torch.equal(l1, LT.CrossEntropyLoss(**options)(inp2, targ))


def test_cross_entropy_loss_zero_div() -> None:
    """TestNNDeviceType.test_cross_entropy_loss_zero_div: 5 samples of 0 classes, probability targets."""
    input_1 = torch.rand([5, 0], requires_grad=True)
    input_2 = torch.rand([5, 0])
    assert_same(LT.CrossEntropyLoss()(input_1, input_2), nn.CrossEntropyLoss()(input_1, input_2))


@pytest.mark.parametrize("module", ["MultiMarginLoss", "MultiLabelMarginLoss"])
def test_margin_loss_empty(module: str) -> None:
    """TestNNDeviceType.test_MarginLoss_empty: an empty batch: gradients of the input's (empty)
    shape; 0-class and (10, 0) inputs are errors. The empty "mean" is NaN (README: torch's CPU
    kernels return uninitialised memory there), "sum" is 0 (where torch's MultiMarginLoss CPU
    kernel can return uninitialised memory too: not compared)."""
    x = torch.randn(0, 10, requires_grad=True)
    y = torch.ones(0, dtype=torch.long) if module == "MultiMarginLoss" else torch.ones(0, 10, dtype=torch.long)
    out = getattr(LT, module)()(x, y)
    assert out.isnan().item()
    assert _grad(out, x)[0].shape == x.shape
    assert torch.equal(getattr(LT, module)(reduction="sum")(x, y), torch.zeros(()))
    bad = [(torch.randn(0, requires_grad=True), torch.ones(10, dtype=torch.long)),
           (torch.randn(10, 0, requires_grad=True), torch.ones(10, 0, dtype=torch.long))]
    for x, y in bad:
        with pytest.raises(RuntimeError, match="Expected"):
            getattr(nn, module)()(x, y)
        with pytest.raises(LossValueError):
            getattr(LT, module)()(x, y)


def test_margin_loss_warnings() -> None:
    """TestNNDeviceType.test_MarginLoss_warnings: a training step writes nothing to stderr."""
    import contextlib
    import io
    model = torch.nn.Linear(128, 22)
    x, targets = torch.rand((56, 128)), torch.randint(22, (56,))
    f = io.StringIO()
    with contextlib.redirect_stderr(f), warnings.catch_warnings():
        warnings.simplefilter("error")
        LT.MultiMarginLoss()(model(x), targets).backward()
    assert f.getvalue() == ""


def _ctc_inputs(T: int, N: int, C: int, target_lengths: list[int], *, padded: bool = False,
                dtype: Any = torch.double) -> tuple[Any, Any, list[int], list[int]]:
    log_probs = torch.randn(T, N, C, dtype=dtype).log_softmax(2).requires_grad_()
    if padded:
        targets = torch.randint(1, C, (N, max(target_lengths)), dtype=torch.long)
    else:
        targets = torch.randint(1, C, (sum(target_lengths),), dtype=torch.int)
    return log_probs, targets, [T] * N, target_lengths


def test_ctc_loss_typechecks() -> None:
    """TestNN.test_CTCLoss_typechecks: float lengths are refused."""
    log_probs, targets, input_lengths, target_lengths = _ctc_inputs(50, 3, 15, [30, 25, 20], dtype=torch.float)
    for bad_input in (True, False):
        il = torch.tensor(input_lengths, dtype=torch.float if bad_input else torch.long)
        tl = torch.tensor(target_lengths, dtype=torch.long if bad_input else torch.float)
        with pytest.raises(RuntimeError):
            F.ctc_loss(log_probs, targets, il, tl)
        with pytest.raises(LossError, match="ctc_loss: argument '(input|target)_lengths'"):
            lossreg.ctc_loss(log_probs, targets, il, tl)


def test_ctc_loss_lengthchecks() -> None:
    """TestNN.test_CTCLoss_lengthchecks_cpu: padded targets shorter than a target length."""
    log_probs = torch.randn(50, 3, 15).log_softmax(2)
    targets = torch.randint(1, 15, (3, 29), dtype=torch.long)
    with pytest.raises(RuntimeError):
        F.ctc_loss(log_probs, targets, [50, 50, 50], [30, 25, 20])
    with pytest.raises(LossValueError, match="ctc_loss: argument"):
        lossreg.ctc_loss(log_probs, targets, [50, 50, 50], [30, 25, 20])


@pytest.mark.parametrize("padded", [False, True], ids=["concatenated", "padded"])
def test_ctc_loss_zero_infinity(padded: bool) -> None:
    """TestNN.test_CTCLoss_zero_infinity: a target longer than its input (60 > 50) is infinite;
    zero_infinity makes its loss and its gradient 0; value and gradient as torch's."""
    torch.manual_seed(0)
    log_probs, targets, il, tl = _ctc_inputs(50, 3, 15, [60, 25, 20], padded=padded)
    for reduction in ("sum", "mean", "none"):
        want = F.ctc_loss(log_probs, targets, il, tl, reduction=reduction, zero_infinity=True)
        got = lossreg.ctc_loss(log_probs, targets, il, tl, reduction=reduction, zero_infinity=True)
        assert_same(got, want)
        assert_same_derivatives(got, want, (log_probs,), second=False)
        assert torch.isfinite(_grad(lossreg.ctc_loss(log_probs, targets, il, tl, reduction=reduction,
                                                     zero_infinity=True), log_probs)[0]).all()


def test_ctc_loss_empty_target() -> None:
    """TestNNDeviceType.test_CTCLoss_empty_target: an empty target's loss is -Σ log p(blank)."""
    torch.manual_seed(0)
    log_probs, targets, il, tl = _ctc_inputs(50, 3, 15, [0, 0, 0])
    loss = lossreg.ctc_loss(log_probs, targets, il, tl, reduction="none")
    assert_same(loss, F.ctc_loss(log_probs, targets, il, tl, reduction="none"))
    assert (loss >= 0).all() and torch.allclose(-log_probs.sum(0)[:, 0], loss)
    log_probs, targets, il, tl = _ctc_inputs(50, 3, 15, [0, 9, 0])
    loss = lossreg.ctc_loss(log_probs, targets, il, tl, reduction="none")
    assert_same(loss, F.ctc_loss(log_probs, targets, il, tl, reduction="none"))
    assert (loss >= 0).all() and torch.allclose(-log_probs.sum(0)[[0, 2], 0], loss[[0, 2]])


def test_ctc_loss_critical_target_len() -> None:
    """TestNNDeviceType.test_CTCLoss_critical_target_len (smaller: T=120, S=48): value and
    gradient as torch's, in float32 (torch's test compares devices there)."""
    torch.manual_seed(0)
    N, S, C, T = 1, 48, 10, 120
    target = torch.randint(1, C, (S,), dtype=torch.int)
    inp = torch.randn(T, N, C, dtype=torch.float).log_softmax(2).requires_grad_()
    want = F.ctc_loss(inp, target, torch.full((N,), T, dtype=torch.int), torch.full((N,), S, dtype=torch.int))
    got = lossreg.ctc_loss(inp, target, torch.full((N,), T, dtype=torch.int), torch.full((N,), S, dtype=torch.int))
    assert_same(got, want)
    assert_same_derivatives(got, want, (inp,), second=False)


def test_ctc_loss_long_targets() -> None:
    """TestNNDeviceType.test_CTCLoss_long_targets (smaller: T=400, S=120): a long target, "sum"
    with zero_infinity, value and gradient as torch's, against ctcloss_reference too."""
    torch.manual_seed(0)
    T, C, N, S = 400, 3, 4, 120
    log_probs = torch.randn(T, N, C, dtype=torch.double).log_softmax(2).requires_grad_()
    targets = torch.randint(1, 2, (N, S), dtype=torch.long)
    il, tl = N * [T], N * [S]
    want = F.ctc_loss(log_probs, targets, il, tl, reduction="sum", zero_infinity=True)
    got = lossreg.ctc_loss(log_probs, targets, il, tl, reduction="sum", zero_infinity=True)
    assert_same(got, want)
    assert_same_derivatives(got, want, (log_probs,), second=False)
    reference = common_nn.ctcloss_reference(log_probs, targets, torch.tensor(il), torch.tensor(tl), reduction="sum")
    assert torch.allclose(got, reference)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_ctc_loss_no_batch_dim(reduction: str) -> None:
    """TestNNDeviceType.test_CTCLoss_no_batch_dim: unbatched (T, C) log-probabilities, (S,)
    target and 0-d lengths give the batch of one's answer, squeezed, as torch does."""
    torch.manual_seed(0)
    T, C, S = 30, 10, 8
    log_probs = torch.randn(T, C, dtype=torch.double).log_softmax(1).requires_grad_()
    targets = torch.randint(1, C, (S,), dtype=torch.long)
    for lengths in ((torch.tensor(T), torch.tensor(S)),):
        want = F.ctc_loss(log_probs, targets, *lengths, reduction=reduction)
        got = lossreg.ctc_loss(log_probs, targets, *lengths, reduction=reduction)
        assert_same(got, want)
        assert_same_derivatives(got, want, (log_probs,), second=False)


@pytest.mark.parametrize("p", [3, 0])
def test_multi_margin_loss_invalid_p(p: int) -> None:
    """torch.nn.functional.multi_margin_loss: only p = 1 or 2."""
    x, t = torch.randn(3, 4), torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match="only p == 1 and p == 2 supported"):
        F.multi_margin_loss(x, t, p=p)
    with pytest.raises(LossError, match="multi_margin_loss: argument 'p'"):
        lossreg.multi_margin_loss(x, t, p=p)


@pytest.mark.parametrize("distance", ["default", "pairwise_l1", "cosine"])
@pytest.mark.parametrize("options", [{}, {"swap": True}, {"margin": 0.5, "reduction": "none"}, {"reduction": "sum"}], ids=str)
def test_triplet_margin_with_distance_loss(distance: str, options: dict[str, Any]) -> None:
    """TestNNDeviceType.test_triplet_margin_with_distance_loss(_default_parity): module and
    functional forms with the default, a pairwise-L1 and a cosine distance give torch's value
    and gradients; with the default distance they equal triplet_margin_loss."""
    torch.manual_seed(0)
    fn = {"default": None, "pairwise_l1": lambda a, b: F.pairwise_distance(a, b, p=1),
          "cosine": lambda a, b: 1.0 - F.cosine_similarity(a, b)}[distance]
    anchor, positive, negative = (torch.randn(5, 10, requires_grad=True, dtype=torch.double) for _ in range(3))
    want = F.triplet_margin_with_distance_loss(anchor, positive, negative, distance_function=fn, **options)
    for got in (lossreg.triplet_margin_with_distance_loss(anchor, positive, negative, distance_function=fn, **options),
                LT.TripletMarginWithDistanceLoss(distance_function=fn, **options)(anchor, positive, negative)):
        assert_same(got, want)
        assert_same_derivatives(got, want, (anchor, positive, negative))
    if fn is None:
        assert_same(lossreg.triplet_margin_with_distance_loss(anchor, positive, negative, **options),
                    lossreg.triplet_margin_loss(anchor, positive, negative, **options))
