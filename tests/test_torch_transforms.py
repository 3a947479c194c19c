"""Every registered loss inside torch's transforms: torch.compile, torch.func, meta tensors.

Each loss (built-in, and those of the two plugin packages, registered in-process) is called as a
user calls it, through its dispatching form, kernels included, and compared with the same call
in eager torch: values, and gradients of every differentiable input.

- ``torch.compile(fullgraph=True)`` on ``aot_eager``, forward and backward, at two batch sizes
  under ``dynamic=True``, with one graph for both, and in bfloat16: for the representative losses
  of :mod:`sweep` in CI, every loss under ``LOSSREG_SLOW=1``; on ``inductor`` for four losses
  (every loss under ``LOSSREG_SLOW=1``).
- ``torch.func``: ``vmap`` against a loop over the batch, ``grad`` and ``vjp`` against autograd,
  ``jacrev`` against ``torch.autograd.functional.jacobian``.
- ``meta`` tensors: every loss runs without reading a value and gives the right shape and dtype.
- Checks that need values cannot read them under tracing: they poison the result (NaN) in the graph.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
from sweep import SLOW, sweep
from torch._dynamo.utils import counters
from torch_examples import NAMES, differentiable, example, function, plugins_registered, tensors, torch_options

import lossreg

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
# Three kernels (cross_entropy; BCE, with its in-graph value check; linear_cross_entropy, two custom
# operators) and portable code (huber):
# inductor compiles C++ for each, several seconds apiece, so CI takes four.
INDUCTOR = ["cross_entropy", "binary_cross_entropy", "huber_loss", "linear_cross_entropy"]
TOL = {"rtol": 1e-7, "atol": 1e-10}  # float64; compiled code may associate sums differently


@pytest.fixture(scope="module", autouse=True)
def _plugins() -> Iterator[None]:
    with plugins_registered(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Dynamo's notes on traced lru_caches, functorch fallbacks
        yield


def _eager(name: str, inputs: dict[str, Any], options: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The value and the gradients of ``sum(loss)`` in eager torch."""
    diff = differentiable(name, inputs)
    ins = tensors(inputs, diff)
    out = function(name)(*ins.values(), **torch_options(options))
    grads = torch.autograd.grad(out.sum(), [ins[k] for k in diff], allow_unused=True) if diff else ()
    return out.detach(), dict(zip(diff, grads))


def _assert_same(got: tuple[torch.Tensor, dict], want: tuple[torch.Tensor, dict], what: str) -> None:
    torch.testing.assert_close(got[0], want[0], **TOL, msg=lambda m: f"value, {what}: {m}")
    for k, g in want[1].items():
        if g is None:
            assert got[1][k] is None or not got[1][k].any(), f"gradient of {k}, {what}"
        else:
            torch.testing.assert_close(got[1][k], g, **TOL, equal_nan=True, msg=lambda m: f"gradient of {k}, {what}: {m}")


def _compiled_run(compiled: Callable[..., Any], name: str, inputs: dict[str, Any]) -> tuple[torch.Tensor, dict]:
    diff = differentiable(name, inputs)
    ins = tensors(inputs, diff)
    out = compiled(*ins.values())
    grads = torch.autograd.grad(out.sum(), [ins[k] for k in diff], allow_unused=True) if diff else ()
    return out.detach(), dict(zip(diff, grads))


def _check_compiled(name: str, backend: str) -> None:
    """Forward and backward at two batch sizes, against eager; one graph serves both sizes."""
    torch._dynamo.reset()
    options = example(name)[1]
    f, opts = function(name), torch_options(options)
    compiled = torch.compile(lambda *arrays: f(*arrays, **opts), fullgraph=True, backend=backend, dynamic=True)
    before = counters["stats"]["unique_graphs"]
    for size in (0, 1):
        inputs = example(name, size)[0]
        _assert_same(_compiled_run(compiled, name, inputs), _eager(name, inputs, options), f"{name} on {backend}")
    assert counters["stats"]["unique_graphs"] - before == 1, f"{name} recompiled for another batch size"


# Known gaps, each a strict expected failure (it fails loudly once fixed).
RECOMPILES: dict[str, str] = {}


def _marked(names: list[str], xfail: dict[str, str]) -> list:
    return [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=xfail[n])) if n in xfail else n
            for n in names]


@pytest.mark.parametrize("name", _marked(sweep(NAMES), RECOMPILES))
def test_compiles_with_fullgraph_on_aot_eager(name: str) -> None:
    _check_compiled(name, "aot_eager")


@pytest.mark.parametrize("name", _marked(NAMES, RECOMPILES) if SLOW else INDUCTOR)
def test_compiles_with_fullgraph_on_inductor(name: str) -> None:
    import torch._inductor.config

    with torch._inductor.config.patch(compile_threads=1):  # no worker pool to start on a small CI machine
        _check_compiled(name, "inductor")


def _half(inputs: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {k: v.detach().to(dtype).requires_grad_(v.requires_grad) if v.is_floating_point() else v
            for k, v in inputs.items()}


@pytest.mark.parametrize("name", sweep(NAMES))
def test_compiles_with_fullgraph_in_bfloat16(name: str) -> None:
    """Half-precision training compiles too: dtype promotion is answered in the graph, not by a
    ``torch.result_type`` call Dynamo cannot trace; the compiled value and gradients are eager's."""
    torch._dynamo.reset()
    inputs, options = example(name)
    f, opts = function(name), torch_options(options)
    diff = differentiable(name, inputs)
    ins = _half(tensors(inputs, diff), torch.bfloat16)
    compiled = torch.compile(lambda *arrays: f(*arrays, **opts), fullgraph=True, backend="aot_eager")
    runs = []
    for call in (compiled, lambda *arrays: f(*arrays, **opts)):
        out = call(*ins.values())
        assert out.dtype == torch.bfloat16, f"{name}: bfloat16 in, {out.dtype} out"
        grads = torch.autograd.grad(out.float().sum(), [ins[k] for k in diff], allow_unused=True) if diff else ()
        runs.append((out.detach().float(), [None if g is None else g.float() for g in grads]))
    (got, got_grads), (want, want_grads) = runs
    # bfloat16 keeps 8 bits: compiled code may round intermediate sums differently
    torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2, equal_nan=True)
    for k, g, w in zip(diff, got_grads, want_grads):
        if w is not None:
            torch.testing.assert_close(g, w, rtol=2e-2, atol=2e-2, equal_nan=True, msg=lambda m: f"gradient of {k}: {m}")


def test_first_call_inside_a_compiled_region_loads_the_registry() -> None:
    """The registry (plugins, kernels) loads at trace time, outside the graph: no break, no recompile."""
    torch._dynamo.reset()
    lossreg.reload()
    compiled = torch.compile(lambda x, t: lossreg.cross_entropy(x, t), fullgraph=True, backend="aot_eager",
                             dynamic=True)
    before = counters["stats"]["unique_graphs"]
    for n in (3, 5, 8):
        x, t = torch.randn(n, 4, dtype=torch.float64), torch.arange(n) % 4
        torch.testing.assert_close(compiled(x, t), torch.nn.functional.cross_entropy(x, t))
    assert counters["stats"]["unique_graphs"] - before == 1


# --- checks that need values become in-graph poison under tracing ----------------------------------

INVALID = {  # a call whose values are invalid: eager CPU raises, traced code gives NaN
    "cross_entropy": lambda: (torch.randn(3, 4, dtype=torch.float64), torch.tensor([0, 7, 1])),
    "nll_loss": lambda: (torch.randn(3, 4, dtype=torch.float64), torch.tensor([0, -3, 1])),
    "binary_cross_entropy": lambda: (torch.tensor([0.2, 1.5, 0.3], dtype=torch.float64), torch.rand(3, dtype=torch.float64)),
    "multi_margin_loss": lambda: (torch.randn(3, 4, dtype=torch.float64), torch.tensor([0, 4, 1])),
    "gaussian_nll_loss": lambda: (torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float64),
                                  torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)),
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_values_raise_eagerly_and_poison_under_tracing(name: str) -> None:
    f, arrays = function(name), INVALID[name]()
    with pytest.raises(lossreg.LossValueError, match=name):
        f(*arrays)
    torch._dynamo.reset()
    compiled = torch.compile(lambda *a: f(*a, reduction="none"), fullgraph=True, backend="aot_eager")
    out = compiled(*arrays)
    assert out.isnan().any() and not out.isnan().all(), out  # only the invalid element
    batched = torch.func.vmap(lambda *a: f(*a, reduction="none"))(*(torch.stack([a, a]) for a in arrays))
    assert torch.equal(batched.isnan(), torch.stack([out, out]).isnan())
    assert f(*(a.to("meta") for a in arrays)).is_meta
    with lossreg.value_checks("poison"):
        assert f(*arrays).isnan()


VALUE_TRANSFORMS = {  # each differentiates the loss in its first argument, the others held as plain tensors
    "grad": lambda f, x: torch.func.grad_and_value(f)(x)[1],
    "vjp": lambda f, x: torch.func.vjp(f, x)[0],
    "jvp": lambda f, x: torch.func.jvp(f, (x,), (torch.ones_like(x),))[0],
}
TRANSFORMS = {**VALUE_TRANSFORMS, "jacrev": lambda f, x: torch.func.jacrev(f)(x),
              "vmap of grad": lambda f, x: torch.func.vmap(torch.func.grad(f))(torch.stack([x, x]))}


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "portable"])
@pytest.mark.parametrize(("name", "transform"), [(n, t) for n in sorted(INVALID) for t in TRANSFORMS
                                                 if (n, t) != ("binary_cross_entropy", "vmap of grad")])
def test_grad_vjp_and_jvp_run_eagerly_so_invalid_values_raise_as_in_eager_code(name, transform, kernels):
    """Their wrappers hold values that can be read (torch's own kernels read them and raise), be
    the invalid value in the plain target beside the differentiated input or in that input itself
    (but not in an input vmap batches: see the next test but one)."""
    f, (x, *rest) = function(name), INVALID[name]()
    with lossreg.use_kernels(kernels), pytest.raises(lossreg.LossValueError, match=name):
        TRANSFORMS[transform](lambda a: f(a, *rest, reduction="sum"), x)


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "portable"])
@pytest.mark.parametrize("transform", VALUE_TRANSFORMS)
@pytest.mark.parametrize("name", sorted(INVALID))
def test_a_target_made_inside_the_transformed_function_is_checked_too(name, transform, kernels):
    f, (x, *rest) = function(name), INVALID[name]()
    values = [r.tolist() for r in rest]
    with lossreg.use_kernels(kernels), pytest.raises(lossreg.LossValueError, match=name):
        VALUE_TRANSFORMS[transform](
            lambda a: f(a, *(torch.tensor(v, dtype=r.dtype) for v, r in zip(values, rest)), reduction="sum"), x)


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "portable"])
def test_under_vmap_of_grad_an_invalid_value_of_the_batched_input_makes_its_loss_nan(kernels):
    f, (x, y) = function("binary_cross_entropy"), INVALID["binary_cross_entropy"]()  # the probability 1.5
    with lossreg.use_kernels(kernels):
        value = torch.func.vmap(lambda a: torch.func.grad_and_value(lambda b: f(b, y, reduction="sum"))(a)[1])
        assert value(torch.stack([x, x.clamp(max=1)])).isnan().tolist() == [True, False]


# --- torch.func -------------------------------------------------------------------------------------


def _with(options: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {**torch_options(options), **more}


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("name", NAMES)
def test_vmap_matches_a_loop(name: str, reduction: str) -> None:
    """vmap over a stack of independent calls gives each call's own answer."""
    draws = [example(name, seed=s) for s in range(3)]
    f, opts = function(name), _with(draws[0][1], reduction=reduction)
    stacked = [torch.stack(list(ts)) for ts in zip(*(tensors(inputs).values() for inputs, _ in draws))]
    want = torch.stack([f(*tensors(inputs).values(), **opts) for inputs, _ in draws])
    got = torch.func.vmap(lambda *arrays: f(*arrays, **opts))(*stacked)
    torch.testing.assert_close(got, want, **TOL)


@pytest.mark.parametrize("name", NAMES)
def test_grad_vjp_and_jacrev_match_autograd(name: str) -> None:
    inputs, options = example(name)
    f, diff = function(name), differentiable(name, inputs)
    if not diff:
        pytest.fail(f"{name} has no differentiable floating input in its example")

    def call(*varying: torch.Tensor, reduction: str) -> torch.Tensor:
        arrays = dict(tensors(inputs))
        arrays.update(zip(diff, varying))
        return f(*arrays.values(), **_with(options, reduction=reduction))

    fresh = tensors(inputs, diff)
    leaves = [fresh[k] for k in diff]
    eager_sum = f(*fresh.values(), **_with(options, reduction="sum"))
    want = torch.autograd.grad(eager_sum, leaves, allow_unused=True)
    want = [torch.zeros_like(x) if g is None else g for x, g in zip(leaves, want)]
    primals = [tensors(inputs)[k] for k in diff]

    got = torch.func.grad(lambda *v: call(*v, reduction="sum"), argnums=tuple(range(len(diff))))(*primals)
    for k, a, b in zip(diff, got, want):
        torch.testing.assert_close(a, b, **TOL, equal_nan=True, msg=lambda m: f"grad of {k}: {m}")

    out, pullback = torch.func.vjp(lambda *v: call(*v, reduction="none"), *primals)
    cotangent = torch.linspace(-1.0, 2.0, out.numel(), dtype=out.dtype).reshape(out.shape)
    fresh = tensors(inputs, diff)
    eager = f(*fresh.values(), **_with(options, reduction="none"))
    want_vjp = torch.autograd.grad(eager, [fresh[k] for k in diff], cotangent, allow_unused=True)
    for k, a, b, x in zip(diff, pullback(cotangent), want_vjp, primals):
        torch.testing.assert_close(a, torch.zeros_like(x) if b is None else b, **TOL, equal_nan=True,
                                   msg=lambda m: f"vjp of {k}: {m}")

    first = primals[0]
    jac = torch.func.jacrev(lambda v: call(v, *primals[1:], reduction="none"))(first)
    want_jac = torch.autograd.functional.jacobian(lambda v: call(v, *primals[1:], reduction="none"), first)
    torch.testing.assert_close(jac, want_jac, **TOL, equal_nan=True)


# --- meta tensors -----------------------------------------------------------------------------------


# Empty batches a loss refuses, as torch does, or as its definition must.
REFUSES_EMPTY = {"ctc_loss": "torch refuses an empty batch", "nt_xent_loss": "N ≥ 1: an embedding needs another view"}
BATCH_AXIS = {"log_probs": 1}  # CTC's (T, N, C)
NO_BATCH_AXIS = {"linear_weight"}  # linear_cross_entropy's vocabulary rows


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", [n for n in NAMES if n not in REFUSES_EMPTY])
def test_a_batch_filtered_to_nothing_still_backpropagates(name: str, reduction: str) -> None:
    """An empty batch gives its value (NaN for "mean", 0 for "sum", as torch) still joined to the
    inputs' graph: ``backward`` runs and leaves each differentiable input an empty gradient."""
    inputs, options = example(name)
    empty = {k: v if k in NO_BATCH_AXIS else np.take(v, [], axis=BATCH_AXIS.get(k, 0)) for k, v in inputs.items()}
    diff = differentiable(name, empty)
    ins = tensors(empty, diff)
    out = function(name)(*ins.values(), **{**torch_options(options), "reduction": reduction})
    assert out.requires_grad, f"{name}: the empty batch's result is cut off from its inputs"
    out.sum().backward()
    for k in diff:
        assert ins[k].grad is not None and ins[k].grad.shape == ins[k].shape, k


@pytest.mark.parametrize("mode", ["auto", "sync"])
@pytest.mark.parametrize("name", NAMES)
def test_runs_on_meta_tensors(name: str, mode: str) -> None:
    """No value is read (not even in the "sync" mode, which has none to read): shapes and dtypes only."""
    inputs, options = example(name)
    f = function(name)
    for reduction in ("none", "mean"):
        want = f(*tensors(inputs).values(), **_with(options, reduction=reduction))
        with lossreg.value_checks(mode):
            got = f(*tensors(inputs, device="meta").values(), **_with(torch_options(options, "meta"),
                                                                      reduction=reduction))
        assert got.is_meta and got.shape == want.shape and got.dtype == want.dtype, (reduction, got)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_runs_on_half_precision_meta_tensors(name: str, dtype: torch.dtype) -> None:
    """Deferred initialisation of a half-precision model: meta tensors in bfloat16 and float16
    (where the kernels ask whether autocast runs, which torch answers only for real devices)."""
    inputs, options = example(name)
    f = function(name)
    want = f(*_half(tensors(inputs), dtype).values(), **torch_options(options))
    got = f(*_half(tensors(inputs, device="meta"), dtype).values(), **torch_options(options, "meta"))
    assert got.is_meta and got.shape == want.shape and got.dtype == want.dtype, got


# --- the switches, read by traced code ----------------------------------------------------------------


def test_use_kernels_is_followed_by_compiled_code() -> None:
    """BCE at exactly 0 tells the paths apart: torch's gradient (the kernel) is -(t - x) · 1e12,
    the portable definition's (1 - t) / (1 - x) = 0.2. Dynamo guards on the switch."""
    torch._dynamo.reset()
    x = torch.tensor([0.0, 0.5], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.8, 0.5], dtype=torch.float64)
    compiled = torch.compile(lambda a, b: lossreg.binary_cross_entropy(a, b, reduction="sum"), fullgraph=True,
                             backend="aot_eager")

    def slope() -> float:
        return float(torch.autograd.grad(compiled(x, t), x)[0][0])

    assert slope() == pytest.approx(-0.8e12)
    with lossreg.use_kernels(False):
        assert slope() == pytest.approx(0.2)
    assert slope() == pytest.approx(-0.8e12)


def test_switches_are_thread_local() -> None:
    import threading

    seen = {}
    with lossreg.use_kernels(False), lossreg.value_checks("poison"):
        worker = threading.Thread(target=lambda: seen.update(kernels=lossreg.kernels_enabled(),
                                                             mode=lossreg.toolkit.check_mode()))
        worker.start()
        worker.join()
        assert not lossreg.kernels_enabled() and lossreg.toolkit.check_mode() == "poison"
    assert seen == {"kernels": True, "mode": "auto"}
    assert lossreg.kernels_enabled() and lossreg.toolkit.check_mode() == "auto"


WEIGHTED = {  # a loss with a trainable weight option, its other inputs, and the weight's shape
    "cross_entropy": (lambda: (torch.randn(5, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 1])), "weight", (4,)),
    "nll_loss": (lambda: (torch.randn(5, 4, dtype=torch.float64).log_softmax(1), torch.tensor([0, 1, 2, 3, 1])),
                 "weight", (4,)),
    "binary_cross_entropy": (lambda: (torch.rand(5, 4, dtype=torch.float64) * 0.8 + 0.1,
                                      torch.rand(5, 4, dtype=torch.float64)), "weight", (5, 4)),
    "binary_cross_entropy_with_logits": (lambda: (torch.randn(5, 4, dtype=torch.float64),
                                                  torch.rand(5, 4, dtype=torch.float64)), "pos_weight", (4,)),
    "multi_margin_loss": (lambda: (torch.randn(5, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 1])),
                          "weight", (4,)),
}
FORWARD_MODES = {
    "jvp": lambda f, w, t: torch.func.jvp(f, (w,), (t,))[1],
    "jacfwd": lambda f, w, t: (torch.func.jacfwd(f)(w) * t).sum(),
    "dual tensor": lambda f, w, t: _dual(f, w, t),
}


def _dual(f, w, t):
    import torch.autograd.forward_ad as fwAD

    with fwAD.dual_level():
        return fwAD.unpack_dual(f(fwAD.make_dual(w, t))).tangent


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "portable"])
@pytest.mark.parametrize("mode", FORWARD_MODES)
@pytest.mark.parametrize("name", sorted(WEIGHTED))
def test_forward_mode_differentiates_a_weight_as_reverse_mode_does(name, mode, kernels):
    """torch's kernels drop a weight's tangent (its forward mode gives 0, or no tangent, where its
    reverse mode refuses the weight); lossreg's kernels leave such a weight to the portable path."""
    make, option, shape = WEIGHTED[name]
    torch.manual_seed(0)
    arrays, w = make(), torch.rand(shape, dtype=torch.float64) + 0.5
    t = torch.randn(shape, dtype=torch.float64)
    f = lambda weight: getattr(lossreg, name)(*arrays, **{option: weight})  # noqa: E731
    trainable = w.clone().requires_grad_()
    (g,) = torch.autograd.grad(f(trainable), trainable)
    with lossreg.use_kernels(kernels):
        got = FORWARD_MODES[mode](f, w, t)
    assert got is not None
    torch.testing.assert_close(got, (g * t).sum(), rtol=1e-10, atol=1e-12)


# An ensemble of weighted criteria (a weight per member, batched by vmap, as torch.func.stack_module_state
# gives a module's buffers) inside forward mode: the weight check looked for a tangent on vmap's batched
# tensor, whose unpack_dual has no batching rule (torch's RuntimeError "Batching rule not implemented for
# aten::_unpack_dual" where torch.nn.functional answers).
FORWARD_OVER_VMAP = {
    "jvp": lambda f, x, t: torch.func.jvp(f, (x,), (t,))[1],
    "jacfwd": lambda f, x, t: torch.func.jacfwd(f)(x),
    "hessian": lambda f, x, t: torch.func.hessian(lambda x: f(x).sum())(x),
    "dual tensor": lambda f, x, t: _dual(f, x, t),
}


@pytest.mark.parametrize("mode", FORWARD_OVER_VMAP)
@pytest.mark.parametrize("name", sorted(WEIGHTED))
def test_forward_mode_over_a_vmap_of_weights_gives_torchs_answer(name, mode):
    make, option, shape = WEIGHTED[name]
    torch.manual_seed(0)
    (x, *rest), weights = make(), torch.rand(3, *shape, dtype=torch.float64) + 0.5
    tangent = torch.randn_like(x)

    def ensemble(loss):
        return lambda x: torch.func.vmap(lambda w: loss(x, *rest, **{option: w}, reduction="none"))(weights)

    def looped(loss):
        return lambda x: torch.stack([loss(x, *rest, **{option: w}, reduction="none") for w in weights])

    transform = FORWARD_OVER_VMAP[mode]
    want = [transform(looped(getattr(lossreg, name)), x, tangent)]
    if name != "multi_margin_loss":  # torch's has no forward mode
        want.append(transform(ensemble(getattr(torch.nn.functional, name)), x, tangent))
    got = transform(ensemble(getattr(lossreg, name)), x, tangent)
    for w in want:
        torch.testing.assert_close(got, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(WEIGHTED))
def test_forward_mode_differentiates_a_weight_vmap_batches(name):
    """The weight's tangent beneath vmap's batching: the reverse-mode gradient applied to it."""
    make, option, shape = WEIGHTED[name]
    torch.manual_seed(0)
    arrays, w = make(), torch.rand(shape, dtype=torch.float64) + 0.5
    t = torch.randn(shape, dtype=torch.float64)
    f = lambda weight: torch.func.vmap(  # noqa: E731
        lambda w: getattr(lossreg, name)(*arrays, **{option: w}))(weight.expand(2, *shape)).sum()
    trainable = w.clone().requires_grad_()
    (g,) = torch.autograd.grad(f(trainable), trainable)
    for mode in FORWARD_MODES.values():
        torch.testing.assert_close(mode(f, w, t), (g * t).sum(), rtol=1e-10, atol=1e-12)
