"""torch 2.13's ``F.linear_cross_entropy`` and ``nn.LinearCrossEntropyLoss``, as lossreg gives them.

Class weights are computed in chunks like the rest of lossreg's form (class indices, a (C, D)
weight); torch's two other forms, probability targets and K-dimensional outputs, go through the
logits, as torch's own reference path does, on every array library. torch's keyword names
(``linear_bias``, ``weight``, ``ignore_index=None``, ``options``) are lossreg's, and its module
owns its linear layer. The values and gradients are torch's (float64, every backend with
autodiff); the conformance cases (``conformance/golden/fused.py``) check the same on every
backend, these tests the surrounding behaviour.
"""

from __future__ import annotations

import pickle
import warnings
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not hasattr(torch.nn.functional, "linear_cross_entropy"):
    pytest.skip("torch < 2.13 has no F.linear_cross_entropy to compare with", allow_module_level=True)

import torch.nn.functional as F  # noqa: E402

import lossreg  # noqa: E402
import lossreg.torch as lossreg_torch  # noqa: E402
from lossreg.chunked import torch_arguments  # noqa: E402
from lossreg.kernels import torch_lce  # noqa: E402

RNG = np.random.default_rng(2130)
X = RNG.normal(size=(5, 4))
W = RNG.normal(size=(6, 4))
B = RNG.normal(size=(6,))
CLASS_WEIGHTS = RNG.uniform(0.5, 2.0, size=(6,))
T = np.array([0, 5, -100, 2, 3])
Q = RNG.dirichlet(np.ones(6), size=5)
WK, BK = RNG.normal(size=(3, 2, 4)), RNG.normal(size=(3, 2))
TK = np.array([[0, 1], [2, -100], [1, 1], [0, 2], [2, 0]])

FORMS = {
    "class weights, smoothing, bias": (X, W, T, {"weight": CLASS_WEIGHTS, "linear_bias": B, "label_smoothing": 0.1}),
    "probability targets": (X, W, Q, {"weight": CLASS_WEIGHTS, "label_smoothing": 0.2}),
    "one unbatched input, probabilities": (X[0], W, Q[0], {"reduction": "none"}),
    "K-dimensional outputs": (X, WK, TK, {"linear_bias": BK, "reduction": "none"}),
    "K-dimensional, sum": (X, WK, TK, {"reduction": "sum", "label_smoothing": 0.3}),
}


def _torch(x: Any, grad: bool = False) -> Any:
    if isinstance(x, np.ndarray):
        return torch.tensor(x, requires_grad=grad and x.dtype.kind == "f")
    return x


def _torch_answer(x: Any, w: Any, t: Any, options: dict[str, Any]) -> tuple[np.ndarray, list[np.ndarray]]:
    xt, wt = _torch(x, True), _torch(w, True)
    value = F.linear_cross_entropy(xt, wt, _torch(t), **{k: _torch(v) for k, v in options.items()})
    grads = torch.autograd.grad(value.sum(), (xt, wt))
    return value.detach().numpy(), [g.numpy() for g in grads]


@pytest.mark.parametrize("form", FORMS)
def test_torchs_other_forms_give_torchs_value_and_gradients_on_torch(form: str) -> None:
    x, w, t, options = FORMS[form]
    want, want_grads = _torch_answer(x, w, t, options)
    for kernels in (True, False):  # the torch kernel hands these calls back to the portable definition
        with lossreg.use_kernels(kernels):
            xt, wt = _torch(x, True), _torch(w, True)
            got = lossreg.linear_cross_entropy(xt, wt, _torch(t), **{k: _torch(v) for k, v in options.items()})
            grads = torch.autograd.grad(got.sum(), (xt, wt))
        np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-12, atol=1e-12)
        for g, wg in zip(grads, want_grads):
            np.testing.assert_allclose(g.numpy(), wg, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("form", FORMS)
def test_torchs_other_forms_under_jax_jit_and_grad(form: str) -> None:
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    x, w, t, options = FORMS[form]
    want, want_grads = _torch_answer(x, w, t, options)
    with jax.enable_x64(True):
        opts = {k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
        target = jnp.asarray(t)

        def total(a: Any, b: Any) -> Any:
            return lossreg.linear_cross_entropy(a, b, target, **opts).sum()

        value = jax.jit(lambda a, b: lossreg.linear_cross_entropy(a, b, target, **opts))(jnp.asarray(x), jnp.asarray(w))
        grads = jax.jit(jax.grad(total, argnums=(0, 1)))(jnp.asarray(x), jnp.asarray(w))
    np.testing.assert_allclose(np.asarray(value), want, rtol=1e-12, atol=1e-12)
    for g, wg in zip(grads, want_grads):
        np.testing.assert_allclose(np.asarray(g), wg, rtol=1e-10, atol=1e-12)


def test_torch_compile_fullgraph_and_torch_func_take_the_other_forms() -> None:
    x, w, t, options = FORMS["class weights, smoothing, bias"]
    opts = {k: _torch(v) for k, v in options.items()}
    target = _torch(t)

    def total(a: Any, b: Any) -> Any:
        return lossreg.linear_cross_entropy(a, b, target, **opts)

    want, want_grads = _torch_answer(x, w, t, options)
    compiled = torch.compile(total, fullgraph=True, backend="aot_eager")
    np.testing.assert_allclose(compiled(_torch(x), _torch(w)).numpy(), want, rtol=1e-12)
    grads = torch.func.grad(total, argnums=(0, 1))(_torch(x), _torch(w))
    for g, wg in zip(grads, want_grads):
        np.testing.assert_allclose(g.numpy(), wg, rtol=1e-10, atol=1e-12)


def test_numpy_and_dask_give_the_same_values() -> None:
    da = pytest.importorskip("dask.array")
    for form, (x, w, t, options) in FORMS.items():
        want, _ = _torch_answer(x, w, t, options)
        np.testing.assert_allclose(lossreg.linear_cross_entropy(x, w, t, **options), want, rtol=1e-12, err_msg=form)
        lazy = {k: da.from_array(v, chunks=2) if isinstance(v, np.ndarray) else v for k, v in options.items()}
        got = lossreg.linear_cross_entropy(da.from_array(x, chunks=2), da.from_array(w, chunks=3),
                                           da.from_array(t, chunks=2), **lazy)
        np.testing.assert_allclose(got.compute(), want, rtol=1e-12, err_msg=form)


def test_ignore_index_none_means_minus_100_for_class_indices() -> None:
    t = np.array([0, -100, 3, 1, 1])
    got = lossreg.linear_cross_entropy(X, W, t)
    assert got == lossreg.linear_cross_entropy(X, W, t, ignore_index=-100)
    assert np.isclose(got, F.linear_cross_entropy(_torch(X), _torch(W), _torch(t)).item(), rtol=1e-12)


def test_linear_bias_is_torchs_name_for_lossregs_bias() -> None:
    assert lossreg.linear_cross_entropy(X, W, T, linear_bias=B) == lossreg.linear_cross_entropy(X, W, T, bias=B)
    with pytest.raises(lossreg.LossValueError, match="argument 'bias' expected either linear_bias"):
        lossreg.linear_cross_entropy(X, W, T, linear_bias=B, bias=B)


def test_torchs_options_choose_the_tokens_per_chunk_unless_chunk_size_does() -> None:
    options = torch.nn.LinearCrossEntropyOptions(batch_chunk_size=2)
    assert torch_arguments("linear_cross_entropy", None, None, None, options, None).chunk_size == 2
    assert torch_arguments("linear_cross_entropy", None, None, None, options, (3, 4)).chunk_size == (3, 4)
    assert torch_arguments("linear_cross_entropy", None, None, None, torch.nn.LinearCrossEntropyOptions(),
                           None).chunk_size is None
    xt, wt, tt = _torch(X, True), _torch(W, True), _torch(T)
    got = lossreg.linear_cross_entropy(xt, wt, tt, options=options, reduction="sum")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = F.linear_cross_entropy(xt, wt, tt, options=options, reduction="sum")
    assert torch.allclose(got, want, rtol=1e-12)


def test_the_value_and_grad_form_refuses_what_it_cannot_chunk() -> None:
    with pytest.raises(lossreg.UnsupportedError, match="autodiff library"):
        lossreg.linear_cross_entropy_value_and_grad(X, WK, TK)
    with pytest.raises(lossreg.UnsupportedError, match="autodiff library"):
        lossreg.linear_cross_entropy_value_and_grad(X, W, Q)


def _made_by_the_operator(value: Any) -> bool:
    """Whether autograd's record of ``value`` leads (through views) to lossreg's operator."""
    node = value.grad_fn
    while node is not None and not type(node).__name__.startswith("GeneratedBackwardFor_lossreg_linear_cross_entropy"):
        node = node.next_functions[0][0] if node.next_functions else None
    return node is not None


@pytest.mark.parametrize("chunks", [None, 2, (2, 4), (3, 1)])
@pytest.mark.parametrize(("reduction", "smoothing"), [("mean", 0.0), ("mean", 0.2), ("sum", 0.1), ("none", 0.3)])
def test_class_weights_are_chunked_with_torchs_value_and_gradients(chunks: Any, reduction: str, smoothing: float):
    """The NumPy ``value_and_grad`` form, the torch operators (forward-time and recomputed
    gradients) and the JAX kernel (``custom_vjp``) take class weights in chunks of tokens and of
    classes; "mean" divides by Σ w[y] over the tokens not ignored."""
    jax = pytest.importorskip("jax")
    from lossreg.kernels import jax_lce

    options = {"weight": CLASS_WEIGHTS, "linear_bias": B, "label_smoothing": smoothing, "reduction": reduction}
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (X, W, B))
    want = F.linear_cross_entropy(xt, wt, _torch(T), **{**{k: _torch(v) for k, v in options.items()},
                                                         "linear_bias": bt})
    want_grads = [g.numpy() for g in torch.autograd.grad(want.sum(), (xt, wt, bt))]
    value, grads = lossreg.linear_cross_entropy_value_and_grad(X, W, T, chunk_size=chunks, **options)
    np.testing.assert_allclose(value, want.detach().numpy(), rtol=1e-12)
    for g, wg in zip(grads, want_grads):
        np.testing.assert_allclose(g, wg, rtol=1e-10, atol=1e-12)
    for recompute in (False, True):
        xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (X, W, B))
        got = torch_lce.linear_cross_entropy(xt, wt, _torch(T), chunk_size=chunks, recompute=recompute,
                                             **{**{k: _torch(v) for k, v in options.items()}, "linear_bias": bt})
        assert got is not NotImplemented  # the operators themselves, not the portable definition
        assert _made_by_the_operator(got)  # ... and not torch's reference path (the logits made whole)
        np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-12)
        for g, wg in zip(torch.autograd.grad(got.sum(), (xt, wt, bt)), want_grads):
            np.testing.assert_allclose(g.numpy(), wg, rtol=1e-10, atol=1e-12)
    with jax.enable_x64(True):
        jnp = jax.numpy
        jopts = {k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}

        def total(a: Any, w: Any, b: Any) -> Any:
            out = jax_lce.linear_cross_entropy(a, w, jnp.asarray(T), chunk_size=chunks, **{**jopts, "linear_bias": b})
            assert out is not NotImplemented  # the kernel itself, not the portable definition
            return out.sum()

        jv, jg = jax.jit(jax.value_and_grad(total, argnums=(0, 1, 2)))(jnp.asarray(X), jnp.asarray(W), jnp.asarray(B))
    np.testing.assert_allclose(float(jv), float(want.detach().sum()), rtol=1e-12)
    for g, wg in zip(jg, want_grads):
        np.testing.assert_allclose(np.asarray(g), wg, rtol=1e-10, atol=1e-12)


def _module_pair(**kwargs: Any) -> tuple[Any, Any]:
    """torch.nn's module and lossreg's, built alike, lossreg's with torch's parameter values."""
    torch.manual_seed(0)
    theirs = torch.nn.LinearCrossEntropyLoss(4, 3, **kwargs).double()
    ours = lossreg_torch.LinearCrossEntropyLoss(4, 3, **kwargs).double()
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


def test_the_module_owns_its_linear_layer_as_torch_nns_does() -> None:
    theirs, ours = _module_pair(out_features=(2,), bias=True, weight=torch.tensor([1.0, 2.0, 0.5]),
                                label_smoothing=0.1)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight", "linear.weight", "linear.bias"]
    x, t = torch.randn(5, 4, dtype=torch.float64), torch.randint(0, 3, (5, 2))
    want, got = theirs(x, t), ours(x, t)
    assert torch.allclose(got, want, rtol=1e-12)
    want.backward()
    got.backward()
    for p, q in zip(ours.parameters(), theirs.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-10)
    assert ours(input=x, target=t) == got


def test_the_module_trains_compiles_and_pickles() -> None:
    _, crit = _module_pair(bias=True)
    x, t = torch.randn(16, 4, dtype=torch.float64), torch.randint(0, 3, (16,))
    opt = torch.optim.SGD(crit.parameters(), lr=0.5)
    first = crit(x, t).item()
    for _ in range(20):
        opt.zero_grad()
        crit(x, t).backward()
        opt.step()
    assert crit(x, t).item() < first
    compiled = torch.compile(crit, fullgraph=True, backend="aot_eager")
    assert torch.allclose(compiled(x, t), crit(x, t), rtol=1e-12)
    again = pickle.loads(pickle.dumps(crit))
    assert type(again) is type(crit) and torch.allclose(again(x, t), crit(x, t))


def test_without_a_layer_the_module_takes_the_weight_in_forward() -> None:
    options = torch.nn.LinearCrossEntropyOptions(batch_chunk_size=2)
    crit = lossreg_torch.LinearCrossEntropyLoss(label_smoothing=0.1, options=options, z_loss=1e-3)
    assert crit.options is options and crit.loss_options()["options"] is options
    assert not list(crit.parameters())
    xt, wt, tt = _torch(X), _torch(W), _torch(T)
    assert crit(xt, wt, tt) == lossreg.linear_cross_entropy(xt, wt, tt, label_smoothing=0.1, z_loss=1e-3)


def test_module_misuse_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="give in_features and num_classes"):
        lossreg_torch.LinearCrossEntropyLoss(out_features=(2,))
    with pytest.raises(TypeError, match="whether the owned layer has a bias"):
        lossreg_torch.LinearCrossEntropyLoss(4, 3, bias=torch.zeros(3))
    with pytest.raises(TypeError, match="owned layer has its own"):
        lossreg_torch.LinearCrossEntropyLoss(4, 3, linear_bias=torch.zeros(3))
    with pytest.raises(TypeError, match=r"takes \(input, target\)"):
        lossreg_torch.LinearCrossEntropyLoss(4, 3)(torch.zeros(2, 4), torch.zeros(3, 4), torch.zeros(2))


@pytest.mark.parametrize("layer_dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_states_and_a_layer_of_different_dtypes_are_promoted_where_torch_refuses_them(layer_dtype) -> None:
    """A documented difference: float32 hidden states against a layer of another floating dtype
    give the promoted dtype's loss (accumulated in float64 if either is, else float32), where
    torch's matmul raises."""
    h, t = torch.randn(6, 4, dtype=torch.float32), torch.randint(0, 5, (6,))
    w = torch.randn(5, 4, dtype=layer_dtype, requires_grad=True)
    with pytest.raises(RuntimeError, match="same dtype"):
        F.linear_cross_entropy(h, w, t)
    got = lossreg.linear_cross_entropy(h, w, t)
    assert got.dtype == torch.promote_types(torch.float32, layer_dtype)
    want = F.cross_entropy(h.double() @ w.double().T, t)
    torch.testing.assert_close(got.double(), want, rtol=1e-6 if layer_dtype == torch.float64 else 1e-5, atol=0)
    got.backward()
    assert w.grad is not None and w.grad.dtype == layer_dtype


class _Shapes(torch.utils._python_dispatch.TorchDispatchMode):
    """The shapes of the tensors torch's operators write while it is on (views and aliases of
    existing tensors, which write nothing, left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.made: list[tuple[int, ...]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        if not (func.is_view or func.overloadpacket in (torch.ops.aten.detach, torch.ops.aten.alias)):
            self.made += [tuple(x.shape) for x in (out if isinstance(out, (tuple, list)) else [out])
                          if isinstance(x, torch.Tensor)]
        return out


@pytest.mark.parametrize("frozen", ["linear_weight", "input", "linear_bias"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_a_frozen_head_or_frozen_states_get_no_gradient_made_for_them(frozen: str, reduction: str) -> None:
    """Training only the hidden states (a frozen or tied lm head, LoRA) or only the head (a linear
    probe on frozen features): the kernel makes only the gradients asked for (no V×D d_weight for
    a frozen head) and those are torch's, as for the unfused F.linear + F.cross_entropy."""
    n, d, v = 48, 8, 200
    gen = torch.Generator().manual_seed(0)
    arrays = {"input": torch.randn(n, d, generator=gen, dtype=torch.float64),
              "linear_weight": torch.randn(v, d, generator=gen, dtype=torch.float64),
              "linear_bias": torch.randn(v, generator=gen, dtype=torch.float64)}
    for name, x in arrays.items():
        x.requires_grad_(name != frozen)
    t = torch.randint(0, v, (n,), generator=gen)
    with _Shapes() as seen:
        ours = lossreg.linear_cross_entropy(arrays["input"], arrays["linear_weight"], t,
                                            linear_bias=arrays["linear_bias"], reduction=reduction, chunk_size=16)
        seed = torch.rand(ours.shape, generator=gen, dtype=torch.float64)
        trained = [x for x in arrays.values() if x.requires_grad]
        got = torch.autograd.grad((ours * seed).sum(), trained)
    frozen_shape = tuple(arrays[frozen].shape)
    assert frozen_shape not in seen.made, f"a gradient of the frozen {frozen} was made"
    theirs = F.cross_entropy(F.linear(arrays["input"], arrays["linear_weight"], arrays["linear_bias"]), t,
                             reduction=reduction)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    for g, want in zip(got, torch.autograd.grad((theirs * seed).sum(), trained)):
        torch.testing.assert_close(g, want, rtol=1e-10, atol=1e-12)
