"""linear_cross_entropy against torch's unfused ``F.cross_entropy(F.linear(h, W, b), t)`` in float64.

Every path is compared, values and the gradients of hidden, weight and bias: the portable
definition (NumPy), its public ``value_and_grad`` form, the torch ``autograd.Function`` (both
splits of the work: gradients made in the forward pass, or recomputed in the backward pass), and
the JAX ``custom_vjp`` under ``jax.jit``. Chunk sizes cut N and V off their multiples and split
the vocabulary. Also: the torch kernel under ``torch.compile(fullgraph=True)``, and the memory
that the NumPy form actually uses (no N×V array).
"""

from __future__ import annotations

import itertools
import tracemalloc
import zlib
from typing import Any

import numpy as np
import pytest
import torch
from strategies import REFERENCES

import lossreg
from lossreg.kernels import torch_lce

reference = REFERENCES["linear_cross_entropy"]
RTOL, ATOL = 1e-10, 1e-12
# (leading shape, V, chunk_size): N and V off the chunk multiples, the vocabulary split or whole.
SHAPES = [((7,), 11, 3), ((2, 5), 13, (4, 5)), ((9,), 10, None), ((6,), 7, (2, 3)), ((), 6, (1, 4))]
OPTIONS = [
    {"reduction": "mean"},
    {"reduction": "sum", "label_smoothing": 0.1, "z_loss": 1e-2},
    {"reduction": "none", "label_smoothing": 0.2, "z_loss": 0.1, "softcap": 3.0},
    {"reduction": "mean", "softcap": 2.0, "ignore_index": 1},
]


def _example(lead: tuple[int, ...], v: int, key: Any, bias: bool = True, ignore: int = -100) -> dict[str, Any]:
    rng = np.random.default_rng(zlib.crc32(repr(key).encode()))
    d = 4
    t = rng.integers(0, v, size=lead)
    if t.ndim:
        t.reshape(-1)[1 % t.size] = ignore
    return {"hidden": rng.normal(size=(*lead, d)), "weight": rng.normal(size=(v, d)), "target": t,
            "bias": rng.normal(size=(v,)) if bias else None}


def _torch_answer(ex: dict[str, Any], options: dict[str, Any]) -> tuple[np.ndarray, list[np.ndarray]]:
    h, w = (torch.tensor(ex[k], requires_grad=True) for k in ("hidden", "weight"))
    b = None if ex["bias"] is None else torch.tensor(ex["bias"], requires_grad=True)
    value = reference(h, w, torch.tensor(ex["target"]), bias=b, **options)
    value.sum().backward()
    return value.detach().numpy(), [x.grad.numpy() for x in (h, w, b) if x is not None]


def _close(got: list[Any], want: list[Any]) -> None:
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(g), w, rtol=RTOL, atol=ATOL)


CASES = [(lead, v, chunks, opts) for (lead, v, chunks), opts in itertools.product(SHAPES, OPTIONS)
         if not (lead == () and opts.get("ignore_index") == 1)]
IDS = [f"{lead}-V{v}-c{chunks}-{'-'.join(f'{k}{o}' for k, o in opts.items())}" for lead, v, chunks, opts in CASES]


@pytest.mark.parametrize(("lead", "v", "chunks", "options"), CASES, ids=IDS)
def test_numpy_value_and_grad_match_torch(lead: tuple[int, ...], v: int, chunks: Any, options: dict[str, Any]):
    ex = _example(lead, v, (lead, v, chunks), ignore=options.get("ignore_index", -100))
    want, want_grads = _torch_answer(ex, options)
    args = (ex["hidden"], ex["weight"], ex["target"])
    opts = {**options, "bias": ex["bias"], "chunk_size": chunks}
    _close([lossreg.linear_cross_entropy(*args, **opts)], [want])
    value, grads = lossreg.linear_cross_entropy_value_and_grad(*args, **opts)
    _close([value, *grads], [want, *want_grads])


@pytest.mark.parametrize("recompute", [False, True], ids=["forward-time", "recomputed"])
@pytest.mark.parametrize(("lead", "v", "chunks", "options"), CASES, ids=IDS)
def test_torch_autograd_function_matches_torch(lead: tuple[int, ...], v: int, chunks: Any,
                                               options: dict[str, Any], recompute: bool):
    ex = _example(lead, v, (lead, v, chunks), ignore=options.get("ignore_index", -100))
    want, want_grads = _torch_answer(ex, options)
    h, w, b = (torch.tensor(ex[k], requires_grad=True) for k in ("hidden", "weight", "bias"))
    value = torch_lce.linear_cross_entropy(h, w, torch.tensor(ex["target"]), bias=b, chunk_size=chunks,
                                           recompute=recompute, **options)
    value.sum().backward()
    _close([value.detach(), h.grad, w.grad, b.grad], [want, *want_grads])


def test_torch_tensors_dispatch_to_the_custom_operator():
    """Autograd records one node, the ``lossreg::linear_cross_entropy`` operator's formula."""
    ex = _example((5,), 7, "dispatch")
    h = torch.tensor(ex["hidden"], requires_grad=True)
    node = "GeneratedBackwardFor_lossreg_linear_cross_entropy_default"
    value = lossreg.linear_cross_entropy(h, torch.tensor(ex["weight"]), torch.tensor(ex["target"]))
    assert type(value.grad_fn).__name__.startswith(node)
    with lossreg.use_kernels(False):  # the portable definition, differentiated by autograd op by op
        portable = lossreg.linear_cross_entropy(h, torch.tensor(ex["weight"]), torch.tensor(ex["target"]))
        assert not type(portable.grad_fn).__name__.startswith(node)


@pytest.mark.parametrize(("lead", "v", "chunks", "options"), CASES[::5], ids=IDS[::5])
def test_jax_custom_vjp_under_jit_matches_torch(jax_float64: None, lead: tuple[int, ...], v: int, chunks: Any,
                                                options: dict[str, Any]):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    ex = _example(lead, v, (lead, v, chunks), ignore=options.get("ignore_index", -100))
    want, want_grads = _torch_answer(ex, options)
    t = jnp.asarray(ex["target"])

    def total(h: Any, w: Any, b: Any) -> Any:
        value = lossreg.linear_cross_entropy(h, w, t, bias=b, chunk_size=chunks, **options)
        return value.sum(), value

    (_, value), grads = jax.jit(jax.value_and_grad(total, argnums=(0, 1, 2), has_aux=True))(
        *(jnp.asarray(ex[k]) for k in ("hidden", "weight", "bias")))
    assert value.dtype == jnp.float64
    _close([value, *grads], [want, *want_grads])


def test_all_targets_ignored_gives_nan_mean_and_zero_gradients_as_torch():
    ex = _example((4,), 5, "ignored", bias=False)
    ex["target"] = np.full(4, -100)
    want, want_grads = _torch_answer(ex, {})
    assert np.isnan(want) and not any(g.any() for g in want_grads)
    h, w = (torch.tensor(ex[k], requires_grad=True) for k in ("hidden", "weight"))
    value = torch_lce.linear_cross_entropy(h, w, torch.tensor(ex["target"]), chunk_size=3)
    value.backward()
    _close([value.detach(), h.grad, w.grad], [want, *want_grads])
    value, grads = lossreg.linear_cross_entropy_value_and_grad(ex["hidden"], ex["weight"], ex["target"])
    _close([value, *grads[:2]], [want, *want_grads])


ONE_CLASS = [{"reduction": "mean", "label_smoothing": 0.1}, {"reduction": "sum", "label_smoothing": 0.3},
             {"reduction": "mean", "label_smoothing": 0.1, "weight": np.array([0.7])},
             {"reduction": "none", "label_smoothing": 0.2}]


@pytest.mark.parametrize("chunks", [None, 1, 7])
@pytest.mark.parametrize("options", ONE_CLASS, ids=[str(i) for i in range(len(ONE_CLASS))])
def test_one_class_gives_torchs_zero_gradients_at_logits_of_minus_5e300(jax_float64: None, options: dict[str, Any],
                                                                         chunks: Any) -> None:
    """With one class the loss is 0 whatever the logits, and torch's gradients are exactly 0. With
    label smoothing the gradient of the logits, a p - (1 - ε) w_y - ε w_y, once left a rounding
    residue (1e-18) that the weight's gradient multiplied by hidden states of 1e300: 1e282."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    rng = np.random.default_rng(5)
    h = rng.normal(size=(24, 6)) * 1e300
    w = -np.abs(rng.normal(size=(1, 6)))
    b = np.array([-5e300])
    t = np.zeros(24, dtype=np.int64)
    t[::5] = -100
    ex = {"hidden": h, "weight": w, "target": t, "bias": b}
    topts = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    want, want_grads = _torch_answer(ex, topts)
    assert not np.any(want) and not any(np.any(g) for g in want_grads)
    th, tw, tb = (torch.tensor(ex[k], requires_grad=True) for k in ("hidden", "weight", "bias"))
    value = torch_lce.linear_cross_entropy(th, tw, torch.tensor(t), bias=tb, chunk_size=chunks, **topts)
    value.sum().backward()
    _close([value.detach(), th.grad, tw.grad, tb.grad], [want, *want_grads])
    value, grads = lossreg.linear_cross_entropy_value_and_grad(h, w, t, bias=b, chunk_size=chunks, **options)
    _close([value, *grads], [want, *want_grads])
    jopts = {k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}

    def total(h: Any, w: Any, b: Any) -> Any:
        return lossreg.linear_cross_entropy(h, w, jnp.asarray(t), bias=b, chunk_size=chunks, **jopts).sum()

    args = [jnp.asarray(x) for x in (h, w, b)]
    for fn in (total, jax.jit(total)):
        value, grads = jax.value_and_grad(fn, argnums=(0, 1, 2))(*args)
        _close([value, *grads], [np.sum(want), *want_grads])


HUGE = [{"label_smoothing": 0.3, "reduction": "none"},
        {"label_smoothing": 0.3, "weight": np.array([1.0, 0.5, 0.25]), "reduction": "none"},
        {"label_smoothing": 0.1, "reduction": "sum", "ignore_index": 2}]


@pytest.mark.parametrize("chunks", [None, 1, 2])
@pytest.mark.parametrize("options", HUGE, ids=[str(i) for i in range(len(HUGE))])
def test_label_smoothing_at_logits_near_the_largest_float_is_torchs(jax_float64: None, options: dict[str, Any],
                                                                    chunks: Any) -> None:
    """torch sums the smoothing term as Σ_c w_c (lse - z_c), terms of one sign; as W lse - Σ_c w_c z_c
    it was inf - inf = NaN (or inf) for logits within a factor V of float64's largest, where torch's
    loss is finite. Several vocabulary blocks (chunks of 1 and 2 classes) sum it across blocks."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    h = np.array([[1.5, 0.2], [1.67, 0.9], [0.3, 1.2]]) * 1e154
    w = -np.array([[1.0, 0.1], [0.2, 1.0], [0.6, 0.6]]) * 1e154
    t = np.array([1, 0, 2])
    ex = {"hidden": h, "weight": w, "target": t, "bias": None}
    topts = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    want, want_grads = _torch_answer(ex, topts)
    assert np.all(np.isfinite(want)) and np.max(np.abs(h @ w.T)) > 1e307
    th, tw = (torch.tensor(ex[k], requires_grad=True) for k in ("hidden", "weight"))
    value = torch_lce.linear_cross_entropy(th, tw, torch.tensor(t), chunk_size=chunks, **topts)
    value.sum().backward()
    _close([value.detach(), th.grad, tw.grad], [want, *want_grads])
    value, grads = lossreg.linear_cross_entropy_value_and_grad(h, w, t, chunk_size=chunks, **options)
    _close([value, *grads[:2]], [want, *want_grads])
    jopts = {k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}

    def loss(h: Any, w: Any) -> Any:
        return lossreg.linear_cross_entropy(h, w, jnp.asarray(t), chunk_size=chunks, **jopts)

    for fn in (loss, jax.jit(loss)):
        _close([fn(jnp.asarray(h), jnp.asarray(w))], [want])


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_a_scalar_results_cotangent_may_be_a_python_number(reduction: str) -> None:
    ex = _example((5,), 7, "float64", bias=False)
    args = (ex["hidden"], ex["weight"], ex["target"])
    value, grads = lossreg.linear_cross_entropy_value_and_grad(*args, reduction=reduction, cotangent=2.5)
    same, scaled = lossreg.linear_cross_entropy_value_and_grad(*args, reduction=reduction, cotangent=np.asarray(2.5))
    _close([value, *grads[:2]], [same, *scaled[:2]])
    _, ones = lossreg.linear_cross_entropy_value_and_grad(*args, reduction=reduction)
    _close(grads[:2], [2.5 * g for g in ones[:2]])
    with pytest.raises(lossreg.LossTypeError, match="cotangent"):  # "none": an array of the tokens' shape
        lossreg.linear_cross_entropy_value_and_grad(*args, reduction="none", cotangent=2.5)


def test_half_precision_is_accumulated_in_float32():
    """bfloat16 inputs: the result is the float32 computation at the rounded inputs, rounded once."""
    ex = _example((64,), 300, "half", bias=False)
    h, w = (torch.tensor(ex[k]).bfloat16() for k in ("hidden", "weight"))
    t = torch.tensor(ex["target"])
    got = torch_lce.linear_cross_entropy(h, w, t, chunk_size=(16, 64))
    exact = reference(h.double(), w.double(), t)
    assert got.dtype == torch.bfloat16
    assert abs(float(got) - float(exact)) <= 2**-8 * abs(float(exact))


def test_torch_compile_fullgraph_through_the_public_function():
    """lossreg.linear_cross_entropy (dispatch, checks, the autograd.Function) in one graph, and
    the gradients of the compiled backward pass are torch's."""
    ex = _example((2, 5), 13, "compile")
    h, w, b = (torch.tensor(ex[k], requires_grad=True) for k in ("hidden", "weight", "bias"))
    t = torch.tensor(ex["target"])

    def loss(h: Any, w: Any, b: Any) -> Any:
        return lossreg.linear_cross_entropy(h, w, t, bias=b, chunk_size=(4, 5), z_loss=1e-2, softcap=3.0)

    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    value = compiled(h, w, b)
    assert type(value.grad_fn).__name__ == "CompiledFunctionBackward"
    value.backward()
    want, want_grads = _torch_answer(ex, {"z_loss": 1e-2, "softcap": 3.0})
    _close([value.detach(), h.grad, w.grad, b.grad], [want, *want_grads])


def test_the_numpy_gradients_never_hold_the_logits():
    """Peak traced memory of value_and_grad stays well under one N×V float64 array."""
    n, d, v = 1024, 16, 2048
    rng = np.random.default_rng(0)
    h, w, t = rng.normal(size=(n, d)), rng.normal(size=(v, d)) * 0.1, rng.integers(0, v, size=n)
    logits_bytes = n * v * 8
    lossreg.linear_cross_entropy_value_and_grad(h[:8], w, t[:8])  # loads the registry outside the count
    tracemalloc.start()
    try:
        lossreg.linear_cross_entropy_value_and_grad(h, w, t, chunk_size=64, z_loss=1e-4, label_smoothing=0.1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    grads_bytes = (n * d + v * d + v) * 8
    assert peak - grads_bytes < logits_bytes / 4, (peak, logits_bytes)  # about 6 chunks of 64 × V


# --- the torch operators under torch.compile(dynamic=True) and torch.func ----------------------------

# (options, chunk_size): each split of the work (forward-time gradients for "mean"/"sum", recomputed
# for "none" and recompute=True), every option, chunks cutting N and the vocabulary.
COMPILED = [
    ({"reduction": "mean", "z_loss": 1e-2, "softcap": 3.0}, (4, 5)),
    ({"reduction": "sum", "label_smoothing": 0.1, "ignore_index": 1}, 3),
    ({"reduction": "none", "label_smoothing": 0.2, "softcap": 2.0}, None),
    ({"reduction": "mean", "recompute": True, "z_loss": 0.1}, (2, 4)),
    # Class weights (V = 11) stay inside the operators too.
    ({"reduction": "mean", "label_smoothing": 0.1, "weight": torch.linspace(0.5, 1.5, 11, dtype=torch.float64)}, 3),
    ({"reduction": "none", "ignore_index": 1, "weight": torch.linspace(1.5, 0.5, 11, dtype=torch.float64)}, (4, 5)),
]
MATMULS = {torch.ops.aten.mm.default, torch.ops.aten.addmm.default, torch.ops.aten.bmm.default,
           torch.ops.aten.matmul.default}


def _recording_backend(graphs: list[Any]) -> Any:
    """aot_eager that keeps the forward and backward graphs AOTAutograd hands to the compiler."""
    from torch._dynamo.backends.common import aot_autograd
    from torch._functorch.aot_autograd import make_boxed_func

    def keep(gm: torch.fx.GraphModule, _: Any) -> Any:
        graphs.append(gm)
        return make_boxed_func(gm.forward)

    return aot_autograd(fw_compiler=keep, bw_compiler=keep)


@pytest.mark.parametrize(("options", "chunks"), COMPILED, ids=[str(i) for i in range(len(COMPILED))])
def test_one_compiled_graph_serves_every_batch_size_without_the_logits(options: dict[str, Any], chunks: Any):
    """Under torch.compile(fullgraph=True, dynamic=True) the kernel is one operator call: the same
    graph for N = 6, 9, 14, values and gradients equal to torch's, no matmul outside the operators."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    opts = {k: o for k, o in options.items() if k != "recompute"}
    graphs: list[Any] = []

    def loss(h: Any, w: Any, b: Any, t: Any) -> Any:
        return torch_lce.linear_cross_entropy(h, w, t, bias=b, chunk_size=chunks, **options)

    compiled = torch.compile(loss, fullgraph=True, dynamic=True, backend=_recording_backend(graphs))
    before = counters["stats"]["unique_graphs"]
    for n in (6, 9, 14):
        ex = _example((n,), 11, ("compiled", n), ignore=opts.get("ignore_index", -100))
        want, want_grads = _torch_answer(ex, opts)
        h, w, b = (torch.tensor(ex[k], requires_grad=True) for k in ("hidden", "weight", "bias"))
        value = compiled(h, w, b, torch.tensor(ex["target"]))
        value.sum().backward()
        _close([value.detach(), h.grad, w.grad, b.grad], [want, *want_grads])
    assert counters["stats"]["unique_graphs"] - before == 1
    forward, backward = graphs  # compiled once each
    targets = {node.target for g in graphs for node in g.graph.nodes if node.op == "call_function"}
    assert torch.ops.lossreg.linear_cross_entropy.default in targets
    recomputed = options.get("recompute") or options["reduction"] == "none"
    assert (torch.ops.lossreg.linear_cross_entropy_backward.default in targets) == bool(recomputed)
    assert not targets & MATMULS, targets & MATMULS


def test_batches_either_side_of_the_automatic_chunk_share_one_compiled_graph():
    """With chunk_size left automatic, the public call compiles once for a batch smaller than one
    chunk of tokens (64 at V=65536) and for batches of several chunks: the plan is the operator's,
    taken when it runs, not a guard on the batch size."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    compiled = torch.compile(lambda h, w, t: lossreg.linear_cross_entropy(h, w, t), fullgraph=True, dynamic=True,
                             backend="aot_eager")
    before = counters["stats"]["unique_graphs"]
    rng = np.random.default_rng(7)
    w = torch.tensor(rng.normal(size=(65536, 3)), requires_grad=True)
    for n in (30, 100, 200):
        h = torch.tensor(rng.normal(size=(n, 3)), requires_grad=True)
        t = torch.tensor(rng.integers(0, 65536, size=n))
        value = compiled(h, w, t)
        got = torch.autograd.grad(value, (h, w))
        want = reference(h, w, t)
        _close([value.detach(), *got], [want.detach(), *torch.autograd.grad(want, (h, w))])
    assert counters["stats"]["unique_graphs"] - before == 1


def test_inductor_compiles_the_training_step_once():
    """inductor (C++ code for the elementwise work around the operators) at two batch sizes."""
    import torch._inductor.config
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    before = counters["stats"]["unique_graphs"]
    with torch._inductor.config.patch(compile_threads=1):
        compiled = torch.compile(lambda h, w, b, t: torch_lce.linear_cross_entropy(
            h, w, t, bias=b, chunk_size=(4, 5), z_loss=1e-2, label_smoothing=0.1), fullgraph=True, dynamic=True)
        for n in (6, 9):
            ex = _example((n,), 11, ("inductor", n))
            want, want_grads = _torch_answer(ex, {"z_loss": 1e-2, "label_smoothing": 0.1})
            h, w, b = (torch.tensor(ex[k], requires_grad=True) for k in ("hidden", "weight", "bias"))
            value = compiled(h, w, b, torch.tensor(ex["target"]))
            value.backward()
            _close([value.detach(), h.grad, w.grad, b.grad], [want, *want_grads])
    assert counters["stats"]["unique_graphs"] - before == 1


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_compiled_half_precision_equals_eager(dtype: torch.dtype):
    """The compiled graph calls the same operator: float32 accumulation, the same rounding."""
    torch._dynamo.reset()
    ex = _example((12,), 40, ("half", str(dtype)))
    t = torch.tensor(ex["target"])

    def run(f: Any) -> list[torch.Tensor]:
        h, w, b = (torch.tensor(ex[k]).to(dtype).requires_grad_(True) for k in ("hidden", "weight", "bias"))
        value = f(h, w, b)
        value.backward()
        return [value.detach(), h.grad, w.grad, b.grad]

    def loss(h: Any, w: Any, b: Any) -> Any:
        return torch_lce.linear_cross_entropy(h, w, t, bias=b, chunk_size=(5, 16), softcap=3.0)

    eager = run(loss)
    compiled = run(torch.compile(loss, fullgraph=True, dynamic=True, backend="aot_eager"))
    assert all(x.dtype == dtype for x in eager)
    for a, b in zip(compiled, eager):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def _ran_the_operator(call: Any) -> Any:
    """``call()``, asserting that the ``lossreg::linear_cross_entropy`` operator ran (no fallback)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        out = call()
    assert "lossreg::linear_cross_entropy" in {e.name for e in prof.events()}
    return out


@pytest.mark.parametrize(("lead", "v", "chunks", "options"), CASES[::3], ids=IDS[::3])
def test_torch_func_grad_and_vjp_use_the_operator(lead: tuple[int, ...], v: int, chunks: Any,
                                                  options: dict[str, Any]):
    ex = _example(lead, v, ("func", lead, v, chunks), ignore=options.get("ignore_index", -100))
    want, want_grads = _torch_answer(ex, options)
    t = torch.tensor(ex["target"])
    primals = [torch.tensor(ex[k]) for k in ("hidden", "weight", "bias")]

    def loss(h: Any, w: Any, b: Any) -> Any:
        return lossreg.linear_cross_entropy(h, w, t, bias=b, chunk_size=chunks, **options)

    grads = _ran_the_operator(lambda: torch.func.grad(lambda *p: loss(*p).sum(), argnums=(0, 1, 2))(*primals))
    _close(grads, want_grads)
    value, pullback = _ran_the_operator(lambda: torch.func.vjp(loss, *primals))
    _close([value], [want])
    cotangent = torch.linspace(-1.0, 2.0, value.numel(), dtype=value.dtype).reshape(value.shape)
    fresh = [x.clone().requires_grad_(True) for x in primals]
    expected = torch.autograd.grad(reference(fresh[0], fresh[1], t, bias=fresh[2], **options), fresh, cotangent)
    _close(pullback(cotangent), [x.numpy() for x in expected])


def test_functional_call_over_a_module_with_the_loss_module():
    """torch.func.grad of a head (nn.Linear's parameters, lossreg.torch.LinearCrossEntropyLoss) through
    functional_call: the parameters' gradients are autograd's of the unfused float64 head."""
    import lossreg.torch

    class Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(4, 9, dtype=torch.float64)
            self.crit = lossreg.torch.LinearCrossEntropyLoss(z_loss=1e-3, label_smoothing=0.1, chunk_size=5)

        def forward(self, h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.crit(h, self.proj.weight, t) + 0.0 * self.proj.bias.sum()

    torch.manual_seed(0)
    head, h, t = Head(), torch.randn(2, 7, 4, dtype=torch.float64), torch.randint(0, 9, (2, 7))
    params = {k: p.detach() for k, p in head.named_parameters()}
    grads = _ran_the_operator(lambda: torch.func.grad(lambda p: torch.func.functional_call(head, p, (h, t)))(params))
    z = torch.nn.functional.linear(h, head.proj.weight)
    want = torch.nn.functional.cross_entropy(z.reshape(-1, 9), t.reshape(-1), label_smoothing=0.1) + \
        1e-3 * (torch.logsumexp(z, -1) ** 2).mean()
    want.backward()
    torch.testing.assert_close(grads["proj.weight"], head.proj.weight.grad, rtol=1e-12, atol=1e-12)
    assert not grads["proj.bias"].any()


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_vmap_of_grad_gives_per_sample_gradients(reduction: str):
    """vmap runs the operators once per problem of the batch (each still chunked): per-example
    gradients of a shared weight equal a loop of autograd over the examples."""
    torch.manual_seed(1)
    hs, w, ts = torch.randn(3, 6, 4, dtype=torch.float64), torch.randn(7, 4, dtype=torch.float64), torch.randint(0, 7, (3, 6))

    def loss(h: Any, w: Any, t: Any) -> Any:
        return lossreg.linear_cross_entropy(h, w, t, chunk_size=4, softcap=2.0, reduction=reduction).sum()

    got = _ran_the_operator(lambda: torch.func.vmap(torch.func.grad(loss, argnums=(0, 1)), in_dims=(0, None, 0))(hs, w, ts))
    for i in range(3):
        h, wi = hs[i].clone().requires_grad_(True), w.clone().requires_grad_(True)
        want = torch.autograd.grad(reference(h, wi, ts[i], softcap=2.0, reduction=reduction).sum(), (h, wi))
        torch.testing.assert_close(got[0][i], want[0], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(got[1][i], want[1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.1, "softcap": 2.0, "z_loss": 1e-2},
                                     {"weight": "classes", "ignore_index": 2}], ids=["plain", "smoothed", "weighted"])
def test_second_derivatives_and_forward_mode_are_torchs(reduction: str, options: dict[str, Any]):
    """What torch's composite F.linear_cross_entropy differentiates, the kernel does too: a gradient
    penalty (create_graph=True, recomputed through the portable definition in the backward pass),
    torch.func's nested grad, hessian and jacfwd, and forward-mode dual tensors (the call declines
    to the portable definition). A first derivative still runs the operator."""
    torch.manual_seed(3)
    h, w, b = (torch.randn(*s, dtype=torch.float64) for s in ((2, 3, 4), (6, 4), (6,)))
    t = torch.tensor([[0, 2, 5], [2, 1, 3]])
    options = {**options, "weight": torch.rand(6, dtype=torch.float64)} if "weight" in options else options
    z_loss = options.get("z_loss", 0.0)
    torch_options = {k: v for k, v in options.items() if k not in ("softcap", "z_loss")}

    def ours(h: Any, w: Any, b: Any) -> Any:
        return lossreg.linear_cross_entropy(h, w, t, linear_bias=b, reduction=reduction, **options)

    def theirs(h: Any, w: Any, b: Any) -> Any:
        cap = options.get("softcap")
        z = torch.nn.functional.linear(h, w, b)
        z = z if cap is None else cap * torch.tanh(z / cap)
        loss = torch.nn.functional.cross_entropy(z.transpose(1, 2), t, reduction=reduction, **torch_options)
        if not z_loss:
            return loss
        sq = torch.where(t != -100, torch.logsumexp(z, dim=-1) ** 2, 0.0)
        return loss + z_loss * (sq if reduction == "none" else sq.sum() / (1 if reduction == "sum" else 6))

    leaves = [x.clone().requires_grad_(True) for x in (h, w, b)]
    _ran_the_operator(lambda: torch.autograd.grad(ours(*leaves).sum(), leaves))
    def penalty(f: Any) -> Any:  # ‖∂ℓ/∂h‖², differentiated with respect to h, W and b
        first = torch.autograd.grad(f(*leaves).sum(), leaves[0], create_graph=True)[0]
        return torch.autograd.grad(first.pow(2).sum(), leaves)

    for got, want in zip(penalty(ours), penalty(theirs)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    torch.autograd.gradgradcheck(ours, tuple(leaves), check_batched_grad=False)
    for transform in (torch.func.hessian, lambda f: torch.func.grad(lambda x: torch.func.grad(f)(x).pow(2).sum())):
        torch.testing.assert_close(transform(lambda x: ours(x, w, b).sum())(h),
                                   transform(lambda x: theirs(x, w, b).sum())(h), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(torch.func.jacfwd(lambda x: ours(h, x, b))(w),
                               torch.func.jacfwd(lambda x: theirs(h, x, b))(w), rtol=1e-10, atol=1e-12)
    fw, tangent = torch.autograd.forward_ad, torch.randn_like(h)
    with fw.dual_level():
        got = fw.unpack_dual(ours(fw.make_dual(h, tangent), w, b)).tangent
        want = fw.unpack_dual(theirs(fw.make_dual(h, tangent), w, b)).tangent
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
