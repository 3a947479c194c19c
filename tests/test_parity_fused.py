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
def test_jax_custom_vjp_under_jit_matches_torch(lead: tuple[int, ...], v: int, chunks: Any,
                                                options: dict[str, Any]):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    ex = _example(lead, v, (lead, v, chunks), ignore=options.get("ignore_index", -100))
    want, want_grads = _torch_answer(ex, options)
    jax.config.update("jax_enable_x64", True)  # as lossreg's JAX backend does
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
