"""A code base moved from torch by search-and-replace: ``F.<loss>(...)`` becomes
``lossreg.<loss>(...)`` and ``nn.<X>Loss(...)`` becomes ``lossreg.torch.<X>Loss(...)``, each call
kept exactly as written. Every call form torch accepts is compared with torch 2.13 (value, dtype,
gradients, also of targets and weights that require grad), or, where the README documents a
refusal, checked to be a clear lossreg error. What this file pins:

- torch.nn's own forward argument names: ``nn.PoissonNLLLoss()(log_input=x, target=y)`` (torch.nn
  names PoissonNLLLoss's first array ``log_input``); lossreg's module took only ``input`` and
  raised a TypeError.
- The layout of an unreduced result follows torch's: ``soft_margin_loss(x, y.T.contiguous().T,
  reduction="none")`` came out non-contiguous where torch's is contiguous (so ``.view(-1)`` of it
  failed), for every loss, every array in a transposed or sliced layout.
- torch's legacy ``size_average``/``reduce`` given by keyword to a functional or class form are a
  lossreg error that says to pass ``reduction`` instead (README: they are not taken); before, an
  "unknown option" error that did not say what to do. Options given by position to a functional
  form (``lossreg.nll_loss(x, t, w, None, -100, None, 'sum')``, README: keyword-only) are refused
  with the call written with keywords.
- ``nll_loss`` of a dense 4-d input in another layout (channels_last, or NHWC log-probabilities
  permuted to NCHW): torch's backward raises "grad_input must be contiguous", and lossreg's torch
  kernel, calling torch's, raised the same; it now differentiates it (README). Pinned beside it, a
  form lossreg already differentiated where torch's backward raises: (C) scores with a (1,) target.
- A ``uint8`` tensor of labels for ``MarginRankingLoss`` / ``SoftMarginLoss``: torch negates it in
  uint8 (1 becomes 255) in the margin-ranking value and the soft-margin gradient, so its answer
  depends on the label dtype; lossreg takes the labels as the numbers they hold, and refuses bool
  labels, which hold no -1 (README).
- Checked and holding, kept as regression guards: positional options of the modules where
  torch.nn has them (through deepcopy, pickle and a weights_only ``torch.load``), non-contiguous /
  transposed / stride-0 / channels_last / sliced inputs and targets, probability targets, weights
  and ``var`` that require grad, every pair of floating dtypes, no_grad / inference_mode / float64
  default dtype / meta tensors.
"""

from __future__ import annotations

import copy
import io
import itertools
import pickle
import warnings
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from strategies import make_good
from torch_examples import BUILTIN

import lossreg
import lossreg.torch as lt

D = torch.float64
FLOATS = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
LOSSES = [n for n in BUILTIN if n != "linear_cross_entropy"]  # its torch forms: test_linear_ce_torch_forms.py


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(20261202)


def _example(name: str, n: int = 5) -> list[torch.Tensor]:
    return [torch.from_numpy(v) for v in make_good(name, seed=2, n=n).inputs.values()]


def _quiet(fn: Any, *args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's kl_div "mean" warning (kl_div's docstring)
        return fn(*args, **kwargs)


def _value_and_grads(fn: Any, arrays: list[Any], options: dict[str, Any] | None = None) -> tuple[Any, tuple]:
    """``fn`` on fresh leaves of every floating array (targets included), value and gradients."""
    leaves = [a.detach().clone().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
              for a in arrays]
    out = _quiet(fn, *leaves, **(options or {}))
    wanted = [a for a in leaves if isinstance(a, torch.Tensor) and a.requires_grad]
    seed = torch.rand(out.shape, generator=_gen(), dtype=D).to(out.dtype)
    grads = torch.autograd.grad((out * seed).sum(), wanted, allow_unused=True, materialize_grads=True)
    return out, grads


def _assert_like_torch(got: tuple[Any, tuple], want: tuple[Any, tuple], **tol: float) -> None:
    (value, grads), (want_value, want_grads) = got, want
    assert (value.dtype, value.shape) == (want_value.dtype, want_value.shape)
    torch.testing.assert_close(value, want_value, equal_nan=True, **tol)
    for g, w in zip(grads, want_grads, strict=True):
        assert g.dtype == w.dtype
        torch.testing.assert_close(g, w, equal_nan=True, **tol)


# --- Bugs found ----------------------------------------------------------------------------------

def test_modules_take_the_arrays_by_torch_nns_forward_names() -> None:
    """torch.nn.PoissonNLLLoss.forward(log_input, target): the user's keyword call works unchanged."""
    x, y = torch.randn(4, 3, dtype=D, generator=_gen()), torch.rand(4, 3, dtype=D, generator=_gen()) * 3
    for options in ({}, {"log_input": False, "full": True}):
        arg = x if options.get("log_input", True) else x.exp()
        want = torch.nn.PoissonNLLLoss(**options)(log_input=arg, target=y)
        torch.testing.assert_close(lt.PoissonNLLLoss(**options)(log_input=arg, target=y), want)
        torch.testing.assert_close(lt.PoissonNLLLoss(**options)(input=arg, target=y), want)  # lossreg's own name too
    with pytest.raises(TypeError, match="repeated"):
        lt.PoissonNLLLoss()(log_input=x, input=x, target=y)


@pytest.mark.parametrize("name", LOSSES)
def test_functional_and_class_forms_take_the_arrays_by_torchs_names_too(name: str) -> None:
    """``F.gaussian_nll_loss(x, y, var=v)``, ``F.ctc_loss(lp, t, input_lengths=il, target_lengths=tl)``,
    ``F.mse_loss(input=x, target=y)``: every split of the arrays between position and name that
    torch's functional takes, lossreg's functional and class forms take, with torch's value; the
    arrays on NumPy too."""
    arrays = _example(name)
    names = lossreg.spec(name).inputs
    for k in range(len(arrays) + 1):  # the first k by position, the rest by name
        positional, named = arrays[:k], dict(zip(names[k:], arrays[k:]))
        want = _quiet(getattr(F, name), *positional, **named)
        torch.testing.assert_close(_quiet(getattr(lossreg, name), *positional, **named), want)
        torch.testing.assert_close(_quiet(lossreg.get(name), *positional, **named), want)
        as_numpy = {key: value.numpy() for key, value in named.items()}
        np_value = _quiet(getattr(lossreg, name), *(a.numpy() for a in positional), **as_numpy)
        torch.testing.assert_close(torch.as_tensor(np_value), want)


def _layouts(a: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    out = [("transposed", a.T.contiguous().T)] if a.ndim == 2 else []
    return out + [("sliced", torch.cat([a, a], -1)[..., ::2])] if a.ndim >= 1 else out


@pytest.mark.parametrize("name", LOSSES)
def test_unreduced_result_has_torchs_layout_for_inputs_in_any_layout(name: str) -> None:
    arrays = _example(name)
    for k, a in enumerate(arrays):
        if name == "ctc_loss" and k >= 2:  # lengths
            continue
        for layout, strided in _layouts(a):
            args = [strided if i == k else b for i, b in enumerate(arrays)]
            want = _quiet(getattr(F, name), *args, reduction="none")
            got = getattr(lossreg, name)(*args, reduction="none")
            assert (got.stride(), got.is_contiguous()) == (want.stride(), want.is_contiguous()), \
                f"argument {k} {layout}: lossreg {got.stride()}, torch {want.stride()}"
            torch.testing.assert_close(got, want)
            if want.is_contiguous():
                got.view(-1)  # what the caller's code does with torch's result


@pytest.mark.parametrize("legacy", [{"size_average": False}, {"reduce": False}, {"size_average": None}])
@pytest.mark.parametrize("form", ["functional", "class", "module"])
def test_legacy_size_average_and_reduce_are_refused_saying_to_pass_reduction(legacy: dict, form: str) -> None:
    x, t = torch.randn(4, 3, dtype=D, generator=_gen()), torch.tensor([0, 2, 1, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation warning
        F.cross_entropy(x, t, **legacy)  # torch takes them
    call = {"functional": lambda: lossreg.cross_entropy(x, t, **legacy),
            "class": lambda: lossreg.CrossEntropyLoss(**legacy),
            "module": lambda: lt.CrossEntropyLoss(**legacy)}[form]
    key = next(iter(legacy))
    with pytest.raises(lossreg.LossTypeError, match=rf"^cross_entropy: argument '{key}' expected .*"
                                                    r"deprecated size_average and reduce are not taken: pass "
                                                    r"reduction='none', 'mean' or 'sum'"):
        call()


def test_torchs_positional_options_are_refused_showing_the_call_with_keywords() -> None:
    """README: the functional forms take options by keyword only, the modules torch.nn's leading
    positional ones only (not size_average/reduce); the user's calls, exactly as written."""
    g = _gen()
    x, t, w = torch.randn(4, 5, dtype=D, generator=g).log_softmax(1), torch.tensor([0, 1, 4, 2]), torch.rand(5, dtype=D)
    F.nll_loss(x, t, w, None, -100, None, "sum")  # torch takes them
    with pytest.raises(lossreg.LossTypeError, match=r"^nll_loss: argument 'arrays' expected 2 arrays by position "
                                                    r"\(input, target\), then options by keyword: nll_loss\(input, "
                                                    r"target, weight=\.\.\., ignore_index=\.\.\., reduction=\.\.\.\), "
                                                    r"got 7 positional arguments"):
        lossreg.nll_loss(x, t, w, None, -100, None, "sum")
    torch.nn.CrossEntropyLoss(w, None, -1, None, "none", 0.1)
    with pytest.raises(lossreg.LossTypeError, match=r"^cross_entropy: argument 'size_average' expected at most 1 "
                                                    r"positional option\(s\) \(weight\).* pass reduction="):
        lt.CrossEntropyLoss(w, None, -1, None, "none", 0.1)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("layout", ["channels_last", "permuted from NHWC"])
def test_nll_loss_of_a_channels_last_input_is_differentiated_where_torchs_backward_raises(
        layout: str, weighted: bool, reduction: str) -> None:
    """README: torch's 2-d NLL backward raises "grad_input must be contiguous" for a dense 4-d input
    in another layout (channels_last, or NHWC log-probabilities permuted to NCHW); lossreg gives
    the gradient torch gives for the contiguous copy."""
    g = _gen()
    nhwc = torch.randn(2, 3, 4, 5, dtype=D, generator=g).log_softmax(-1)
    target = torch.randint(0, 5, (2, 3, 4), generator=g)
    target[0, 0, 0] = -100
    options = {"reduction": reduction, "weight": torch.rand(5, dtype=D, generator=g) if weighted else None}

    def strided(a: torch.Tensor) -> torch.Tensor:
        nchw = a.permute(0, 3, 1, 2)
        return nchw.contiguous().contiguous(memory_format=torch.channels_last) if layout == "channels_last" else nchw

    with pytest.raises(RuntimeError, match="grad_input must be contiguous"):
        _value_and_grads(lambda a: F.nll_loss(strided(a), target, **options), [nhwc])
    want = _value_and_grads(lambda a: F.nll_loss(strided(a).contiguous(), target, **options), [nhwc])
    for kernels in (True, False):
        with lossreg.use_kernels(kernels):
            got = _value_and_grads(lambda a: lossreg.nll_loss(strided(a), target, **options), [nhwc])
        _assert_like_torch(got, want, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_an_unbatched_input_with_a_target_of_shape_1_is_differentiated_where_torchs_backward_raises(
        name: str, reduction: str) -> None:
    """README: torch's forward takes (C) scores with a (1,) target and gives the 0-d target's loss;
    its backward raises "size mismatch". lossreg: the same value, and the 0-d target's gradient."""
    x = torch.randn(4, dtype=D, generator=_gen())
    with pytest.raises(RuntimeError, match="size mismatch"):
        _value_and_grads(lambda a: getattr(F, name)(a, torch.tensor([2]), reduction=reduction), [x])
    want = _value_and_grads(lambda a: getattr(F, name)(a, torch.tensor(2), reduction=reduction), [x])
    assert _quiet(getattr(F, name), x, torch.tensor([2]), reduction=reduction).shape == want[0].shape
    for kernels in (True, False):
        with lossreg.use_kernels(kernels):
            got = _value_and_grads(lambda a: getattr(lossreg, name)(a, torch.tensor([2]), reduction=reduction), [x])
        _assert_like_torch(got, want, rtol=1e-7, atol=1e-10)


def test_uint8_labels_are_the_numbers_they_hold_where_torch_negates_them_in_uint8() -> None:
    """README (Smaller deliberate differences). torch: margin ranking's ``-target`` and soft margin's
    backward wrap a uint8 1 to 255; the same labels as int64 give torch's own right answer."""
    g = _gen()
    a, b = torch.randn(6, dtype=D, generator=g), torch.randn(6, dtype=D, generator=g)
    labels = torch.ones(6, dtype=torch.uint8)
    wrapped = F.margin_ranking_loss(a, b, labels, reduction="none")
    right = F.margin_ranking_loss(a, b, labels.long(), reduction="none")
    assert not torch.allclose(wrapped, right)  # torch's inconsistency
    torch.testing.assert_close(lossreg.margin_ranking_loss(a, b, labels, reduction="none"), right)

    x = torch.randn(4, 3, dtype=D, generator=g)
    labels = (torch.rand(4, 3, generator=g) > 0.5).to(torch.uint8)  # uint8 holds no -1: 0/1
    theirs = _value_and_grads(F.soft_margin_loss, [x, labels])
    right = _value_and_grads(F.soft_margin_loss, [x, labels.long()])
    torch.testing.assert_close(theirs[0], right[0])  # same value ...
    assert not torch.allclose(theirs[1][0], right[1][0])  # ... another gradient
    _assert_like_torch(_value_and_grads(lossreg.soft_margin_loss, [x, labels]), right)


@pytest.mark.parametrize("name", ["soft_margin_loss", "hinge_embedding_loss", "cosine_embedding_loss",
                                  "margin_ranking_loss"])
def test_bool_labels_of_the_plus_minus_one_losses_are_a_lossreg_type_error(name: str) -> None:
    """README: bool holds no -1; torch computes with False as 0 (margin ranking refuses to negate it)."""
    arrays = _example(name, n=4)
    args = [a > 0 if i == len(arrays) - 1 else a for i, a in enumerate(arrays)]
    with pytest.raises(lossreg.LossTypeError, match=rf"^{name}: argument 'target' expected .*, got torch array "
                                                    r"of dtype torch.bool"):
        getattr(lossreg, name)(*args)


# --- Checked, holding: regression guards ---------------------------------------------------------

@pytest.mark.parametrize("name", LOSSES)
def test_every_floating_array_in_any_layout_gets_torchs_value_and_gradients(name: str) -> None:
    """Targets that require grad included: torch differentiates those of mse, l1, smooth_l1, huber,
    kl_div, bce, bce_with_logits, multilabel_soft_margin, poisson_nll, gaussian_nll (var too),
    margin_ranking; soft_margin's it refuses (README: lossreg differentiates it)."""
    arrays = _example(name)
    variants = [("plain", arrays)]
    for k, a in enumerate(arrays):
        variants += [(f"{layout} {k}", [s if i == k else b for i, b in enumerate(arrays)]) for layout, s in _layouts(a)]
        if a.ndim >= 1 and a.shape[0] > 1 and not (name == "ctc_loss" and k >= 2):
            variants.append((f"stride-0 {k}", [a[:1].expand_as(a) if i == k else b for i, b in enumerate(arrays)]))
    for label, args in variants:
        if name == "soft_margin_loss":
            args = [a.detach() if i == 1 else a for i, a in enumerate(args)]  # torch refuses its target's gradient
            want = _value_and_grads(lambda x, y: F.soft_margin_loss(x, y.detach()), args)
            got = _value_and_grads(lambda x, y: lossreg.soft_margin_loss(x, y.detach()), args)
        else:
            want, got = _value_and_grads(getattr(F, name), args), _value_and_grads(getattr(lossreg, name), args)
        try:
            _assert_like_torch(got, want, rtol=1e-7, atol=1e-10)
        except AssertionError as e:
            raise AssertionError(f"{label}: {e}") from None


@pytest.mark.parametrize("name", LOSSES)
def test_every_pair_of_floating_dtypes_gives_torchs_gradient_dtypes_and_values(name: str) -> None:
    """Results' dtypes where torch promotes differently are README's (Mixed dtypes): not compared."""
    arrays = _example(name, n=4)
    floating = [k for k, a in enumerate(arrays) if a.is_floating_point()]
    for dtypes in itertools.product(FLOATS, repeat=len(floating)):
        args = list(arrays)
        for k, dt in zip(floating, dtypes):
            args[k] = arrays[k].to(dt)
        try:
            want = _value_and_grads(getattr(F, name), args)
        except (RuntimeError, NotImplementedError):
            continue  # torch refuses the mix or the dtype (README: lossreg promotes, and computes half in float32)
        got = _value_and_grads(getattr(lossreg, name), args)
        torch.testing.assert_close(got[0].double(), want[0].double(), rtol=3e-2, atol=3e-2)
        for g, w in zip(got[1], want[1], strict=True):
            assert g.dtype == w.dtype
            torch.testing.assert_close(g.double(), w.double(), rtol=3e-2, atol=3e-2, equal_nan=True)


def _channels_last_cases() -> list[Any]:
    def r(*shape: int) -> torch.Tensor:
        return torch.randn(shape, dtype=D, generator=_gen())

    def u(*shape: int) -> torch.Tensor:
        return torch.rand(shape, dtype=D, generator=_gen()) * 0.9 + 0.05

    labels = torch.randint(0, 5, (2, 3, 4), generator=_gen())
    labels[0, 0, :2] = 1
    return [pytest.param(*case, id=f"{case[0]}-{i}") for i, case in enumerate([
        ("cross_entropy", [r(2, 5, 3, 4), labels], {"weight": u(5), "ignore_index": 1, "label_smoothing": 0.2}),
        ("cross_entropy", [r(2, 5, 3, 4), u(2, 5, 3, 4).softmax(1)], {"weight": u(5), "label_smoothing": 0.1}),
        ("binary_cross_entropy", [u(2, 5, 3, 4), u(2, 5, 3, 4)], {"weight": u(5, 1, 1)}),
        ("binary_cross_entropy_with_logits", [r(2, 5, 3, 4), u(2, 5, 3, 4)], {"pos_weight": u(5, 1, 1)}),
        ("mse_loss", [r(2, 5, 3, 4), r(2, 5, 3, 4)], {"weight": u(2, 5, 3, 4)}),
        ("l1_loss", [r(2, 5, 3, 4), r(2, 5, 3, 4)], {"weight": u(2, 5, 3, 4), "reduction": "sum"}),
        ("huber_loss", [r(2, 5, 3, 4), r(2, 5, 3, 4)], {"weight": u(2, 5, 3, 4), "delta": 0.5}),
        ("multilabel_soft_margin_loss", [r(2, 5), u(2, 5)], {"weight": u(5)}),
        ("gaussian_nll_loss", [r(2, 5, 3, 4), r(2, 5, 3, 4), u(2, 5, 3, 4)], {"full": True}),
    ])]


@pytest.mark.parametrize(("name", "arrays", "options"), _channels_last_cases())
def test_channels_last_arrays_and_weights_that_require_grad_get_torchs_gradients(name: str, arrays: list,
                                                                                 options: dict) -> None:
    """Every floating array channels_last (4-d) and requiring grad, the weights too where torch
    differentiates them (the per-element weights of mse, l1, huber; multilabel_soft_margin's)."""
    def call(fn: Any) -> tuple[Any, tuple]:
        weights = {k: v.detach().clone().requires_grad_(name in ("mse_loss", "l1_loss", "huber_loss",
                                                                 "multilabel_soft_margin_loss"))
                   for k, v in options.items() if isinstance(v, torch.Tensor)}
        leaves = [a.detach().clone().requires_grad_() if a.is_floating_point() else a for a in arrays]
        laid = [a.contiguous(memory_format=torch.channels_last) if a.ndim == 4 else a for a in leaves]
        out = fn(*laid, **{**options, **weights})
        wanted = [a for a in [*leaves, *weights.values()] if isinstance(a, torch.Tensor) and a.requires_grad]
        seed = torch.rand(out.shape, generator=_gen(), dtype=D)
        return out, torch.autograd.grad((out * seed).sum(), wanted, materialize_grads=True, allow_unused=True)

    _assert_like_torch(call(getattr(lossreg, name)), call(getattr(F, name)), rtol=1e-7, atol=1e-10)


def _module_cases() -> list[Any]:
    w = torch.rand(5, dtype=D, generator=_gen()) + 0.5
    return [pytest.param(cls, args, id=f"{cls}{len(args)}") for cls, args in [
        ("HuberLoss", ("sum", 0.5)), ("CTCLoss", (1, "sum", True)), ("MultiMarginLoss", (2, 0.5, w)),
        ("TripletMarginLoss", (0.5, 1, 1e-3, True)), ("PoissonNLLLoss", (False, True)), ("MarginRankingLoss", (0.3,)),
        ("CosineEmbeddingLoss", (0.2,)), ("HingeEmbeddingLoss", (0.4,)), ("CrossEntropyLoss", (w,)), ("NLLLoss", (w,)),
        ("MultiLabelSoftMarginLoss", (w,)), ("BCELoss", (w,)), ("BCEWithLogitsLoss", (w,))]]


@pytest.mark.parametrize(("cls", "args"), _module_cases())
def test_torch_nns_positional_constructor_arguments_survive_copy_pickle_and_weights_only_load(cls: str,
                                                                                           args: tuple) -> None:
    name = getattr(lt, cls).spec.name
    arrays = _example(name)
    if name in ("binary_cross_entropy", "binary_cross_entropy_with_logits", "multilabel_soft_margin_loss"):
        arrays = [torch.cat([a, a[:, :2]], 1) for a in arrays]  # 5 classes, as the weight
    if name in ("cross_entropy", "nll_loss", "multi_margin_loss"):
        arrays = [torch.cat([arrays[0], arrays[0][:, :2]], 1), arrays[1]]
    if name == "ctc_loss":
        arrays[1] = torch.where(arrays[1] == 1, 0, arrays[1])  # labels other than blank=1
    want = _value_and_grads(getattr(torch.nn, cls)(*args), arrays)
    ours = getattr(lt, cls)(*args)
    buf = io.BytesIO()
    torch.save(ours, buf)
    buf.seek(0)
    with torch.serialization.safe_globals([type(ours)]):
        loaded = torch.load(buf, weights_only=True)
    for module in (ours, copy.deepcopy(ours), pickle.loads(pickle.dumps(ours)), loaded):
        assert repr(module) == repr(ours)
        _assert_like_torch(_value_and_grads(module, arrays), want, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode", "default_float64", "meta"])
@pytest.mark.parametrize("name", LOSSES)
def test_grad_modes_default_dtype_and_meta_give_torchs_result_kind(name: str, mode: str) -> None:
    differentiable = lossreg.spec(name).differentiable  # soft_margin's target: torch refuses its gradient
    arrays = [a.float().requires_grad_(key in differentiable) if a.is_floating_point() else a
              for key, a in zip(lossreg.spec(name).inputs, _example(name))]
    if mode == "meta":
        arrays = [a.to("meta") if name != "ctc_loss" or k < 2 else a for k, a in enumerate(arrays)]
    context = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode, "meta": torch.enable_grad,
               "default_float64": torch.enable_grad}[mode]
    default = torch.get_default_dtype()
    try:
        if mode == "default_float64":
            torch.set_default_dtype(torch.float64)
        with context():
            try:
                want = _quiet(getattr(F, name), *arrays)
            except (RuntimeError, NotImplementedError):
                want = None  # torch has no meta kernel or reads a value (README: lossreg poisons instead)
            got = getattr(lossreg, name)(*arrays)
    finally:
        torch.set_default_dtype(default)
    if want is None:
        assert got.device.type == "meta"
        return
    assert (got.dtype, got.shape, got.device, got.requires_grad) == (want.dtype, want.shape, want.device,
                                                                     want.requires_grad)
    if mode == "inference_mode":
        assert got.is_inference() == want.is_inference()
    if mode != "meta":
        torch.testing.assert_close(got, want)
