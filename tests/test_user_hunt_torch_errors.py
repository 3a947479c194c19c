"""A PyTorch user swaps ``torch.nn.functional.<loss>`` (and ``torch.nn.<Loss>``) for lossreg's and
expects the same inputs to be accepted and refused.

Where torch raises, lossreg raises its own error (a ``lossreg.LossError``) that names the loss, the
argument, what was expected and what was given; where torch accepts, lossreg gives torch's value,
dtype, shape and gradients (target gradients included), unless the README documents the
difference. The accept/refuse decision is the same on NumPy and JAX arrays (float64), except
for values that can only be checked by reading them: JAX arrays get NaN there (README, *Invalid
values*).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import lossreg  # noqa: E402
import lossreg.torch as lt  # noqa: E402

D = torch.float64


def _r(*shape: int) -> Any:
    return torch.randn(shape, dtype=D, generator=_GEN)


def _p(*shape: int) -> Any:
    return torch.rand(shape, dtype=D, generator=_GEN) * 0.8 + 0.1


_GEN = torch.Generator().manual_seed(20261201)


def _libraries() -> list[Any]:
    jnp = pytest.importorskip("jax.numpy")

    def to_jax(a: Any) -> Any:
        return jnp.asarray(a.numpy()) if isinstance(a, torch.Tensor) else a

    return [("torch", lambda a: a), ("numpy", lambda a: a.numpy() if isinstance(a, torch.Tensor) else a),
            ("jax", to_jax)]


# --- What torch refuses: lossreg's own error, on every library -------------------------------------------------

# (loss, arrays, options, the argument lossreg must name, read: whether the fault is in the values only,
# which JAX arrays cannot raise for but poison with NaN)
def _refused() -> list[Any]:
    lp = torch.log_softmax(_r(6, 2, 4), -1)
    tg, il, tl = torch.tensor([[1, 2, 3], [2, 3, 1]]), torch.tensor([6, 5]), torch.tensor([3, 2])
    x, t = _r(3, 5), torch.tensor([0, 4, 2])
    cases = [
        ("cross_entropy", (x, torch.tensor([0, 5, 2])), {}, "target", True),  # == C
        ("cross_entropy", (x, torch.tensor([0, -1, 2])), {}, "target", True),  # negative, not ignored
        ("cross_entropy", (x, torch.tensor([0, -100, 2])), {"ignore_index": -1}, "target", True),
        ("cross_entropy", (x, t.double()), {}, "target", False),  # float class indices
        ("cross_entropy", (x, t > 1), {}, "target", False),
        ("cross_entropy", (x, t[:2]), {}, "target", False),
        ("cross_entropy", (x, t), {"weight": torch.ones(4, dtype=D)}, "weight", False),
        ("cross_entropy", (x, t), {"weight": torch.ones(1, 5, dtype=D)}, "weight", False),
        ("cross_entropy", (x, t), {"label_smoothing": 1.5}, "label_smoothing", False),
        ("cross_entropy", (x, _p(3, 5)), {"ignore_index": 0}, "ignore_index", False),
        ("cross_entropy", (x, _p(3, 4)), {}, "target", False),
        ("nll_loss", (x, torch.tensor([0, 5, 2])), {}, "target", True),
        ("nll_loss", (x, t), {"reduction": "elementwise"}, "reduction", False),
        ("multi_margin_loss", (x, torch.tensor([0, 5, 2])), {}, "target", True),
        ("multi_margin_loss", (x, t), {"p": 3}, "p", False),
        ("multi_margin_loss", (x, t), {"weight": torch.ones(1, 5, dtype=D)}, "weight", False),
        ("multilabel_margin_loss", (x, torch.tensor([[5, -1, 0, 0, 0]] * 3)), {}, "target", True),
        ("multilabel_margin_loss", (x, torch.tensor([[1, -1, 0, 0]] * 3)), {}, "target", False),
        ("mse_loss", (_r(4), _r(4)), {"reduction": "batchmean"}, "reduction", False),
        ("mse_loss", (torch.arange(4), torch.arange(4)), {}, "input", False),
        ("huber_loss", (_r(4), _r(4)), {"delta": 0.0}, "delta", False),
        ("huber_loss", (_r(4), _r(4)), {"delta": -1.0}, "delta", False),
        ("smooth_l1_loss", (_r(4), _r(4)), {"beta": -1.0}, "beta", False),
        ("gaussian_nll_loss", (_r(4, 3), _r(4, 3), -_p(4, 3)), {}, "var", True),
        ("gaussian_nll_loss", (_r(4, 3), _r(4, 3), _p(4, 2)), {}, "var", False),
        ("gaussian_nll_loss", (_r(4, 3), _r(4, 3), -1.0), {}, "var", False),
        ("binary_cross_entropy", (_p(4) + 1, _p(4)), {}, "input", True),
        ("binary_cross_entropy", (_p(4), -_p(4)), {}, "target", True),
        ("binary_cross_entropy", (_p(4, 3), _p(4, 3)), {"weight": torch.ones(2, 4, 3, dtype=D)}, "weight", False),
        ("binary_cross_entropy_with_logits", (_r(4, 3), _p(4, 1)), {}, "target", False),
        ("binary_cross_entropy_with_logits", (_r(4, 3), _p(4, 3)), {"pos_weight": torch.ones(4, dtype=D)},
         "pos_weight", False),
        ("triplet_margin_loss", (_r(4, 3), _r(4, 3), _r(4, 3)), {"margin": 0.0}, "margin", False),
        ("triplet_margin_loss", (_r(3), _r(4, 3), _r(4, 3)), {}, "positive", False),
        ("triplet_margin_loss", (_r(4, 3), _r(4, 2), _r(4, 3)), {}, "anchor/positive/negative", False),
        ("triplet_margin_with_distance_loss", (_r(4, 3), _r(4, 3), _r(4, 3)), {"margin": -1.0}, "margin", False),
        ("cosine_embedding_loss", (_r(4, 3), _r(4, 3), torch.ones(2, dtype=D)), {}, "target", False),
        ("cosine_embedding_loss", (_r(3), _r(3), torch.ones(1, dtype=D)), {}, "input1", False),
        ("margin_ranking_loss", (_r(4, 3), _r(4, 3), torch.ones(4, dtype=D)), {}, "target", False),
        ("multilabel_soft_margin_loss", (x, _p(3, 5)), {"weight": torch.ones(3, dtype=D)}, "weight", False),
        ("ctc_loss", (lp, tg, il, tl), {"blank": 4}, "blank", False),
        ("ctc_loss", (lp, tg, il, tl), {"blank": -1}, "blank", False),
        ("ctc_loss", (lp, tg, il, torch.tensor([4, 2])), {}, "target_lengths", True),
        ("ctc_loss", (lp, tg, torch.tensor([7, 5]), tl), {}, "input_lengths", True),
        ("ctc_loss", (lp, tg, torch.tensor([6.0, 5.0]), tl), {}, "input_lengths", False),
        ("ctc_loss", (lp, tg, il[:1], tl), {}, "input_lengths", False),
        ("linear_cross_entropy", (_r(5, 4), _r(6, 4), torch.tensor([0, 6, 1, 2, 3])), {}, "target", True),
        ("linear_cross_entropy", (_r(5, 4), _r(6, 3), torch.tensor([0, 5, 1, 2, 3])), {}, "linear_weight", False),
        ("linear_cross_entropy", (_r(5, 4), _r(6, 4), torch.tensor([0, 5, 1, 2, 3])), {"linear_bias": _r(5)},
         "linear_bias", False),
    ]
    return [pytest.param(*case, id=f"{case[0]}-{i}") for i, case in enumerate(cases)]


@pytest.mark.parametrize(("name", "arrays", "options", "argument", "read"), _refused())
def test_what_torch_refuses_is_a_lossreg_error_naming_the_argument_on_every_library(
        jax_float64: Any, name: str, arrays: tuple[Any, ...], options: dict[str, Any], argument: str,
        read: bool) -> None:
    with pytest.raises((RuntimeError, ValueError, TypeError, IndexError, NotImplementedError)):
        getattr(F, name)(*arrays, **options)  # torch's own verdict first: the input is bad
    for library, convert in _libraries():
        args = tuple(convert(a) for a in arrays)
        opts = {k: convert(v) for k, v in options.items()}
        if library == "jax" and read:  # a value JAX arrays do not read back: NaN in the graph
            assert np.isnan(np.asarray(getattr(lossreg, name)(*args, **opts))).all(), library
            continue
        with pytest.raises(lossreg.LossError) as info:
            getattr(lossreg, name)(*args, **opts)
        message = str(info.value)
        assert message.startswith(f"{name}: argument '{argument}' expected "), f"{library}: {message}"
        assert ", got " in message, f"{library}: {message}"


def test_torchs_own_error_inputs_get_messages_that_name_argument_expectation_and_value() -> None:
    """torch's OpInfo ``error_inputs`` (replayed in test_torch_own_inputs.py for the error class):
    each lossreg message has the README's form, ``loss: argument 'x' expected ..., got ...``."""
    pytest.importorskip("expecttest", reason="torch.testing._internal needs expecttest (the test extra)")
    from torch.testing._internal import common_methods_invocations as cmi

    seen = 0
    for op in cmi.op_db:
        name = op.name.split(".")[-1]
        if not op.name.startswith("nn.functional.") or name not in lossreg.names() or op.error_inputs_func is None:
            continue
        for error in op.error_inputs("cpu"):
            sample = error.sample_input
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with pytest.raises(lossreg.LossError) as info:
                    getattr(lossreg, name)(sample.input, *sample.args, **sample.kwargs)
            message = str(info.value)
            assert message.startswith(f"{name}: argument '") and " expected " in message and ", got " in message, \
                message
            seen += 1
    assert seen >= 40


# --- What torch accepts: torch's value, dtype, shape and gradients -------------------------------------------

def _grads(out: Any, leaves: list[Any]) -> tuple[Any, ...]:
    return torch.autograd.grad(out.sum(), leaves, allow_unused=True, materialize_grads=True)


def _assert_like_torch(got: Any, want: Any, tol: dict[str, float]) -> None:
    assert (got.dtype, got.shape) == (want.dtype, want.shape)
    torch.testing.assert_close(got, want, equal_nan=True, **tol)


_POINTWISE: dict[str, Callable[[tuple[int, ...]], tuple[Any, ...]]] = {
    "mse_loss": lambda s: (_r(*s), _r(*s)),
    "l1_loss": lambda s: (_r(*s), _r(*s)),
    "smooth_l1_loss": lambda s: (_r(*s), _r(*s)),
    "huber_loss": lambda s: (_r(*s), _r(*s)),
    "kl_div": lambda s: (_p(*s).log(), _p(*s)),
    "poisson_nll_loss": lambda s: (_r(*s), _p(*s) * 3),
    "gaussian_nll_loss": lambda s: (_r(*s), _r(*s), _p(*s)),
    "binary_cross_entropy": lambda s: (_p(*s), _p(*s)),
    "binary_cross_entropy_with_logits": lambda s: (_r(*s), _p(*s)),
}
_OPTIONS: dict[str, list[dict[str, Any]]] = {
    "smooth_l1_loss": [{}, {"beta": 0.3}, {"beta": 0.0}],
    "huber_loss": [{}, {"delta": 0.3}],
    "kl_div": [{}, {"log_target": True}],
    "poisson_nll_loss": [{}, {"full": True}, {"log_input": False}],
    "gaussian_nll_loss": [{}, {"full": True}],
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape", [(), (0,), (0, 3), (4, 3)], ids=str)
@pytest.mark.parametrize("name", list(_POINTWISE))
def test_target_gradients_are_torchs_for_every_reduction_0d_and_empty(name: str, shape: tuple[int, ...],
                                                                       dtype: Any) -> None:
    """torch differentiates the target (and ``var``) of these losses: lossreg's gradients are torch's."""
    tol = {torch.float64: {"rtol": 1e-7, "atol": 1e-10}, torch.float32: {"rtol": 1e-4, "atol": 1e-5}}.get(
        dtype, {"rtol": 2e-2, "atol": 2e-2})
    for options, reduction in itertools.product(_OPTIONS.get(name, [{}]), ("none", "mean", "sum", "batchmean")):
        if reduction == "batchmean" and name != "kl_div":
            continue
        arrays = _POINTWISE[name](shape)
        if options.get("log_target"):
            arrays = (arrays[0], arrays[1].log())
        theirs = [a.to(dtype).requires_grad_() for a in arrays]
        ours = [a.to(dtype).requires_grad_() for a in arrays]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's kl_div "mean" warning
            want = getattr(F, name)(*theirs, reduction=reduction, **options)
        got = getattr(lossreg, name)(*ours, reduction=reduction, **options)
        _assert_like_torch(got, want, tol)
        for a, b in zip(_grads(got, ours), _grads(want, theirs)):
            _assert_like_torch(a, b, tol)


def test_class_index_edges_torch_accepts_give_torchs_values() -> None:
    """ignore_index may lie outside [0, C) (-1, C itself) and then masks; -100 is ignored by default."""
    x = _r(3, 5)
    for loss in ("cross_entropy", "nll_loss"):
        for target, options in [(torch.tensor([0, -100, 2]), {}), (torch.tensor([0, -1, 2]), {"ignore_index": -1}),
                                (torch.tensor([0, 5, 2]), {"ignore_index": 5}),
                                (torch.tensor([0, 5, 5]), {"ignore_index": 5, "reduction": "sum"}),
                                (torch.tensor(2), {}), (torch.tensor(-100), {"reduction": "sum"})]:
            x1, x2 = (x[0] if target.ndim == 0 else x).clone().requires_grad_(), None
            x2 = x1.detach().clone().requires_grad_()
            want = getattr(F, loss)(x1, target, **options)
            got = getattr(lossreg, loss)(x2, target, **options)
            _assert_like_torch(got, want, {"rtol": 1e-7, "atol": 1e-12})
            _assert_like_torch(_grads(got, [x2])[0], _grads(want, [x1])[0], {"rtol": 1e-7, "atol": 1e-12})


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"])
def test_complex_input_is_taken_by_l1_loss_alone_as_by_torch(name: str) -> None:
    """README (*Complex input*): l1_loss takes it, as torch's does (the real |x - t|); the others,
    which torch refuses too, are a LossTypeError asking for a real floating-point array."""
    c = torch.randn(3, dtype=torch.complex128, generator=_GEN)
    if name == "l1_loss":
        want = F.l1_loss(c, 2 * c)
        assert want.dtype == torch.float64
        assert torch.equal(lossreg.l1_loss(c, 2 * c), want)
        return
    with pytest.raises(NotImplementedError):
        getattr(F, name)(c, 2 * c)
    with pytest.raises(lossreg.LossTypeError,
                       match=rf"^{name}: argument 'input' expected a real floating-point array, got"):
        getattr(lossreg, name)(c, 2 * c)


_INTEGER_INPUTS = {
    "margin_ranking_loss": (lambda a, b, c, y: (a[:, 0], b[:, 0], y), "input1"),
    "triplet_margin_loss": (lambda a, b, c, y: (a, b, c), "anchor"),
    "triplet_margin_with_distance_loss": (lambda a, b, c, y: (a, b, c), "anchor"),
    "cosine_embedding_loss": (lambda a, b, c, y: (a, b, y), "input1"),
    "poisson_nll_loss": (lambda a, b, c, y: (a, b.double()), "input"),
}


@pytest.mark.parametrize("name", list(_INTEGER_INPUTS))
def test_integer_inputs_torch_promotes_to_floats_are_a_lossreg_type_error(name: str) -> None:
    """README (*Refused*): integer scores, embeddings or log-rates, which torch promotes to floats
    (float32 unless another array is float64, inexact past 2^24): a LossTypeError naming the
    argument. Pass floats."""
    arrays, argument = _INTEGER_INPUTS[name]
    a, b, c = (torch.randint(0, 5, (4, 3), generator=_GEN) for _ in range(3))
    args = arrays(a, b, c, torch.tensor([1, -1, 1, -1]))
    assert getattr(F, name)(*args).is_floating_point()  # torch computes
    with pytest.raises(lossreg.LossTypeError, match=rf"^{name}: argument '{argument}' expected a real floating-point"):
        getattr(lossreg, name)(*args)


def test_a_target_torch_only_warns_about_and_broadcasts_is_refused() -> None:
    """mse_loss of (N,) against (N, 1): torch warns and averages an N×N matrix; README: refused."""
    x, y = _r(4), _r(4, 1)
    with pytest.warns(UserWarning, match="target size"):
        assert F.mse_loss(x, y).shape == ()
    refused = r"^mse_loss: argument 'target' expected the shape of 'input' \(4,\), got shape \(4, 1\)"
    for convert in (lambda a: a, lambda a: a.numpy()):
        with pytest.raises(lossreg.LossValueError, match=refused):
            lossreg.mse_loss(convert(x), convert(y))


# --- torch.nn's constructors: the legacy positional arguments ------------------------------------------------

def _legacy() -> list[Any]:
    w = torch.tensor([1.0, 2.0, 0.5, 1.0, 1.5], dtype=D)
    x, y, t = _r(4, 5), _p(4, 5), torch.tensor([0, 1, 4, 2])
    return [
        pytest.param("MSELoss", (None, None, "sum"), (x, y), id="MSELoss(None, None, 'sum')"),
        pytest.param("L1Loss", (False,), (x, y), id="L1Loss(size_average=False)"),
        pytest.param("SmoothL1Loss", (None, None, "sum", 0.5), (x, y), id="SmoothL1Loss(..., beta)"),
        pytest.param("KLDivLoss", (None, None, "sum", True), (x, y), id="KLDivLoss(..., log_target)"),
        pytest.param("PoissonNLLLoss", (False, True, None, 1e-3), (y, y),
                     id="PoissonNLLLoss(log_input, full, _, eps)"),
        pytest.param("CrossEntropyLoss", (w, None, 1), (x, t), id="CrossEntropyLoss(weight, _, ignore_index)"),
        pytest.param("NLLLoss", (w, None, 1), (x, t), id="NLLLoss(weight, _, ignore_index)"),
        pytest.param("BCELoss", (None, None, None, "sum"), (y, y), id="BCELoss(..., reduction)"),
    ]


@pytest.mark.parametrize(("cls", "ctor", "forward"), _legacy())
def test_torch_nns_legacy_positional_arguments_are_a_lossreg_error(cls: str, ctor: tuple[Any, ...],
                                                                   forward: tuple[Any, ...]) -> None:
    """torch.nn takes ``size_average`` and ``reduce`` (deprecated) by position before ``reduction``;
    lossreg does not take them (README) and says so with its own error: the loss, the argument
    torch.nn has at that position, and what to pass instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert getattr(torch.nn, cls)(*ctor)(*forward).ndim == 0  # torch accepts them
    name = getattr(lt, cls).spec.name
    with pytest.raises(lossreg.LossTypeError, match=rf"^{name}: argument 'size_average' expected .*positional.*"
                                                    rf"reduction=.*, got {len(ctor)} positional arguments") as info:
        getattr(lt, cls)(*ctor)
    assert isinstance(info.value, TypeError)  # as torch's own TypeError for too many arguments would be


def test_the_class_form_given_positional_options_is_a_lossreg_error() -> None:
    with pytest.raises(lossreg.LossTypeError, match=r"^mse_loss: argument 'options' expected options by keyword"):
        lossreg.MSELoss(None, None, "sum")
    with pytest.raises(lossreg.LossTypeError, match=r"^huber_loss: argument 'options' expected .*, got 1 positional"):
        lossreg.HuberLoss("sum")


def test_an_option_given_by_position_and_by_keyword_is_a_lossreg_error() -> None:
    w = torch.ones(5, dtype=D)
    with pytest.raises(TypeError, match="multiple values"):
        torch.nn.CrossEntropyLoss(w, weight=w)
    with pytest.raises(lossreg.LossTypeError, match=r"^cross_entropy: argument 'weight' expected one value, "
                                                    r"got one by position and one by keyword"):
        lt.CrossEntropyLoss(w, weight=w)


# --- CTC: targets and lengths on the CPU with log-probabilities elsewhere -------------------------------------

def _ctc_arrays() -> tuple[Any, ...]:
    lp = torch.log_softmax(_r(6, 2, 4), -1)
    return lp, torch.tensor([[1, 2, 3], [2, 3, 1]]), torch.tensor([6, 5]), torch.tensor([3, 2])


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "portable"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_ctc_takes_cpu_targets_and_lengths_with_log_probs_on_another_device(reduction: str, kernels: bool) -> None:
    """torch's ctc_loss moves CPU targets to log_probs' device ("as a service": cuDNN wants them on
    the CPU) and reads the lengths on the host; a meta ``log_probs`` shows the same decision without
    a GPU: torch gives a meta result, and so must lossreg (with the lengths as lists or CPU tensors)."""
    lp, tg, il, tl = _ctc_arrays()
    meta = lp.to("meta")
    want = F.ctc_loss(meta, tg, il.tolist(), tl.tolist(), reduction=reduction)
    with lossreg.use_kernels(kernels):
        for lengths in [(il.tolist(), tl.tolist()), (il, tl)]:
            got = lossreg.ctc_loss(meta, tg, *lengths, reduction=reduction)
            assert (got.device, got.dtype, got.shape) == (want.device, want.dtype, want.shape)
        got = lossreg.ctc_loss(meta, tg.to("meta"), il, tl, reduction=reduction)  # lengths alone on the CPU
        assert (got.device, got.shape) == (want.device, want.shape)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_ctc_on_cuda_with_cudnns_cpu_targets_gives_torchs_value_and_gradient(reduction: str) -> None:
    lp, tg, il, tl = _ctc_arrays()
    flat = torch.cat([tg[0, :3], tg[1, :2]]).int()  # cuDNN's form: concatenated int32 targets on the CPU
    theirs = lp.cuda().requires_grad_()  # float64: torch's own CUDA kernel, which moves the targets over
    ours = theirs.detach().clone().requires_grad_()
    want = F.ctc_loss(theirs, flat, il.int(), tl.int(), reduction=reduction)
    got = lossreg.ctc_loss(ours, flat, il.int(), tl.int(), reduction=reduction)
    _assert_like_torch(got, want, {"rtol": 1e-7, "atol": 1e-10})
    _assert_like_torch(_grads(got, [ours])[0], _grads(want, [theirs])[0], {"rtol": 1e-7, "atol": 1e-10})


def test_ctc_still_refuses_targets_on_a_device_torch_cannot_copy_from() -> None:
    lp, tg, il, tl = _ctc_arrays()
    with pytest.raises(lossreg.LossValueError, match=r"^ctc_loss: argument 'targets' expected an array on "
                                                     r"log_probs's device cpu, got one on meta"):
        lossreg.ctc_loss(lp, tg.to("meta"), il, tl)


# --- torch 2.13's weight= of F.mse_loss and F.l1_loss -------------------------------------------------

@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
def test_mse_and_l1_take_torchs_elementwise_weight_with_its_gradients(name: str, jax_float64: None) -> None:
    """torch 2.13's F.mse_loss and F.l1_loss take weight= of the input's shape; "mean" is then
    Σ w·ℓ / Σ w. Values and the gradients of input, target and weight are torch's; NumPy and JAX
    give the same values."""
    jnp = pytest.importorskip("jax.numpy")
    for reduction in ("none", "mean", "sum"):
        x, y, w = (t.requires_grad_() for t in (_r(4, 3), _r(4, 3), _p(4, 3)))
        want = getattr(F, name)(x, y, weight=w, reduction=reduction)
        got = getattr(lossreg, name)(x, y, weight=w, reduction=reduction)
        _assert_like_torch(got, want, {"rtol": 1e-7, "atol": 1e-12})
        seed = torch.rand_like(want)
        for ours, theirs in zip(torch.autograd.grad((got * seed).sum(), (x, y, w)),
                                torch.autograd.grad((want * seed).sum(), (x, y, w))):
            torch.testing.assert_close(ours, theirs, rtol=1e-7, atol=1e-12)
        arrays = [t.detach().numpy() for t in (x, y, w)]
        np.testing.assert_allclose(getattr(lossreg, name)(*arrays[:2], weight=arrays[2], reduction=reduction),
                                   want.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(getattr(lossreg, name)(
            *map(jnp.asarray, arrays[:2]), weight=jnp.asarray(arrays[2]), reduction=reduction)),
            want.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "huber_loss"])
def test_a_weight_not_of_the_inputs_shape_is_refused_as_torch_refuses_it(name: str) -> None:
    x = _r(4, 3)
    with pytest.raises(ValueError, match="Weights and input must have the same size"):
        getattr(F, name)(x, x, weight=_p(3))
    with pytest.raises(lossreg.LossValueError,
                       match=rf"^{name}: argument 'weight' expected the shape of 'input' \(4, 3\), got shape \(3,\)"):
        getattr(lossreg, name)(x, x, weight=_p(3))


@pytest.mark.parametrize(("name", "target"), [("multi_margin_loss", torch.zeros(0, dtype=torch.long)),
                                              ("multilabel_margin_loss", torch.zeros(0, 4, dtype=torch.long))])
def test_margin_losses_sum_over_an_empty_batch_is_0_where_torch_reads_uninitialised_memory(name: str,
                                                                                          target: Any) -> None:
    """README (*Empty input*): torch's CPU kernels return whatever memory holds; lossreg 0, as every other sum."""
    got = getattr(lossreg, name)(torch.zeros(0, 4, dtype=D), target, reduction="sum")
    assert (got.dtype, got.shape, got.item()) == (D, (), 0.0)


# --- Smaller deliberate differences (README, "Where lossreg follows torch") --------------------------

def _differences() -> list[Any]:
    x, y = _p(4, 3), (_p(4, 3) > 0.5).to(D)
    a, b, s = x[:, 0], x[:, 1], y[:, 0] * 2 - 1
    return [
        pytest.param("binary_cross_entropy", (x, y), {"weight": torch.ones(3, dtype=torch.int64)},
                     lossreg.LossTypeError, "weight", id="integer BCE weight"),
        pytest.param("binary_cross_entropy_with_logits", (x, y), {"pos_weight": torch.full((3,), 2, dtype=torch.uint8)},
                     lossreg.LossTypeError, "pos_weight", id="uint8 pos_weight"),
        pytest.param("mse_loss", (x, y), {"reduction": "elementwise_mean"}, lossreg.LossValueError, "reduction",
                     id="legacy elementwise_mean"),
        pytest.param("margin_ranking_loss", (a, b, s), {"margin": True}, lossreg.LossValueError, "margin",
                     id="margin=True"),
        pytest.param("margin_ranking_loss", (a, b, s), {"margin": float("nan")}, lossreg.LossValueError, "margin",
                     id="margin=nan"),
    ]


@pytest.mark.parametrize(("name", "arrays", "options", "error", "argument"), _differences())
def test_options_torch_computes_with_are_refused_naming_the_argument(name, arrays, options, error, argument) -> None:
    getattr(F, name)(*arrays, **options)  # torch computes something
    with pytest.raises(error, match=rf"^{name}: argument '{argument}' expected "):
        getattr(lossreg, name)(*arrays, **options)


def test_int32_class_targets_are_taken_where_torch_wants_int64() -> None:
    x, t = _r(4, 3), torch.tensor([0, 1, 2, 1], dtype=torch.int32)
    with pytest.raises(RuntimeError, match="expected target dtype to be Long or Byte"):
        F.cross_entropy(x, t)
    torch.testing.assert_close(lossreg.cross_entropy(x, t), F.cross_entropy(x, t.long()))


def test_soft_margin_differentiates_a_target_that_requires_grad_where_torch_raises() -> None:
    x, t = _r(4, 3), (torch.rand(4, 3, dtype=D) > 0.5).to(D) * 2 - 1
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument 'target'"):
        torch.autograd.grad(F.soft_margin_loss(x, t.clone().requires_grad_()), [])
    target = t.clone().requires_grad_()
    got, = torch.autograd.grad(lossreg.soft_margin_loss(x, target), target)
    torch.testing.assert_close(got, -x * torch.sigmoid(-target * x) / x.numel())  # d/dy log(1 + e^{-yx}) / n


@pytest.mark.parametrize("call", [
    lambda m, x, t, w: m.cross_entropy(x, t, weight=w, label_smoothing=0.2),
    lambda m, x, t, w: m.nll_loss(x.log_softmax(1), t, weight=w),
    lambda m, x, t, w: m.multi_margin_loss(x, t, weight=w),
    lambda m, x, t, w: m.binary_cross_entropy_with_logits(x, (t[:, None] == torch.arange(4)).to(D), pos_weight=w),
], ids=["cross_entropy", "nll_loss", "multi_margin_loss", "bce_with_logits_pos_weight"])
def test_class_weights_that_require_grad_are_differentiated_where_torch_raises(call) -> None:
    """A learned class weighting: torch refuses to differentiate ``weight``/``pos_weight``; lossreg
    gives the gradient, checked against finite differences."""
    x, t = _r(5, 4), torch.tensor([0, 3, 1, 1, 2])
    w = torch.rand(4, dtype=D, generator=torch.Generator().manual_seed(1)) + 0.5
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument|not implemented"):
        torch.autograd.grad(call(F, x, t, w.clone().requires_grad_()), [])
    assert torch.autograd.gradcheck(lambda w: call(lossreg, x, t, w), (w.clone().requires_grad_(),))


def test_a_string_number_option_is_a_lossreg_value_error_where_torch_raises_type_error() -> None:
    a, b, s = _r(4), _r(4), torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=D)
    with pytest.raises(TypeError, match="must be float, not str"):
        F.margin_ranking_loss(a, b, s, margin="1")
    with pytest.raises(lossreg.LossValueError, match=r"^margin_ranking_loss: argument 'margin' expected a number, got '1'"):
        lossreg.margin_ranking_loss(a, b, s, margin="1")


@pytest.mark.parametrize("bias", ["linear_bias", "bias"])
def test_a_torch_error_with_a_bias_given_as_none_is_torchs_and_a_sparse_input_is_named(bias: str) -> None:
    # A linear probe trained on features computed under torch.inference_mode: torch refuses to save
    # them for backward. An owned layer without bias passes linear_bias=None, as may the user: the
    # error was lossreg's "argument 'linear_bias' expected an array, got NoneType".
    with torch.inference_mode():
        features = torch.randn(10, 6)
    w = torch.randn(9, 6, requires_grad=True)
    y = torch.randint(0, 9, (10,))
    with pytest.raises(RuntimeError, match="Inference tensors cannot be saved for backward") as torchs:
        F.linear_cross_entropy(features, w, y)
    assert not isinstance(torchs.value, lossreg.LossError)
    for call in (lambda: lossreg.linear_cross_entropy(features, w, y, **{bias: None}),
                 lambda: lt.LinearCrossEntropyLoss(6, 9)(features, y)):
        with pytest.raises(RuntimeError, match="Inference tensors cannot be saved for backward") as ours:
            call()
        assert not isinstance(ours.value, lossreg.LossError)
    with pytest.raises(lossreg.LossTypeError, match="argument 'input' expected a dense"):
        lossreg.linear_cross_entropy(torch.randn(10, 6).to_sparse(), w, y, **{bias: None})
