"""Memory of the built-in losses, as an engineer who fears OOM more than slowness checks it.

Deterministic properties only: the largest array a call allocates (NumPy reports its arrays to
tracemalloc), the dtype results are computed in, what stays alive after a call, and what a
compiled JAX program keeps as temporaries. Timings and resident-set figures are not asserted.
"""

from __future__ import annotations

import gc
import tracemalloc
import weakref

import numpy as np
import pytest

import lossreg


def _peak_bytes(fn):
    """The peak of the memory NumPy allocated while ``fn()`` ran (beyond what existed before)."""
    fn()  # warm caches (row indices, namespaces) outside the measurement
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        out = fn()
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    return out, peak


# --- multilabel_margin_loss: (N, C) work like torch's, not (N, C, C) -------------------------


def _multilabel(n, c, labels, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c)).astype(np.float32)
    t = np.full((n, c), -1, dtype=np.int64)
    t[:, :labels] = np.stack([rng.choice(c, labels, replace=False) for _ in range(n)])
    return x, t


@pytest.mark.parametrize("kernels", [True, False])
def test_multilabel_margin_loss_with_few_labels_does_not_allocate_n_times_c_squared(kernels):
    # torch's MultiLabelMarginLoss works in O(N·C); the pairs (listed label, class) of every
    # row were an (N, C, C) array, 16 GiB at N = C = 1024. Two labels per row need (N, 2, C).
    x, t = _multilabel(16, 512, labels=2)
    with lossreg.use_kernels(kernels):
        _, peak = _peak_bytes(lambda: lossreg.multilabel_margin_loss(x, t))
    n, c = x.shape
    assert peak < n * c * c // 8, f"peak {peak} bytes for input of {x.nbytes} bytes"


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("labels", [0, 1, 3, 8])
def test_multilabel_margin_loss_with_short_label_lists_matches_torch(labels, reduction):
    torch = pytest.importorskip("torch")
    x, t = _multilabel(6, 8, labels, seed=labels)
    t[0, :] = -1  # a row with no label at all beside the others
    if labels < 8:
        t[1, labels] = 5 if labels else -1  # padding after the first -1 is ignored (torch's rule)
        t[1, labels:] = -1
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    expected = torch.nn.functional.multilabel_margin_loss(xt, torch.tensor(t), reduction=reduction)
    expected.sum().backward()
    got = lossreg.multilabel_margin_loss(x.astype(np.float64), t, reduction=reduction)
    np.testing.assert_allclose(got, expected.detach().numpy(), rtol=1e-12, atol=1e-12)
    xl = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    lossreg.multilabel_margin_loss(xl, torch.tensor(t), reduction=reduction).sum().backward()
    torch.testing.assert_close(xl.grad, xt.grad)


def test_multilabel_margin_loss_on_torch_saves_no_n_times_c_squared_for_backward():
    torch = pytest.importorskip("torch")
    x, t = _multilabel(16, 512, labels=2)
    xt = torch.tensor(x, requires_grad=True)
    saved = []

    def pack(tensor):
        saved.append(tensor.numel())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = lossreg.multilabel_margin_loss(xt, torch.tensor(t))
    loss.backward()
    n, c = x.shape
    assert max(saved, default=0) < n * c * c // 8


# --- multi_margin_loss on torch: torch's kernel keeps nothing of the input's size ----------------


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("weighted", [False, True])
def test_multi_margin_loss_on_torch_saves_nothing_of_the_inputs_size_for_backward(p, weighted):
    # The portable definition saved (N, C) masks for its backward pass and held several (N, C)
    # temporaries (4.5x torch's forward+backward peak at N·C = 2^24); torch's kernel saves its inputs.
    torch = pytest.importorskip("torch")
    gen = torch.Generator().manual_seed(p)
    x = torch.randn(64, 100, generator=gen, requires_grad=True)
    t = torch.randint(0, 100, (64,), generator=gen)
    w = torch.rand(100, generator=gen) if weighted else None
    saved = []

    def pack(tensor):
        saved.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = lossreg.multi_margin_loss(x, t, p=p, margin=0.5, weight=w)
    temporaries = [s.shape for s in saved if s is not x and s is not t and s is not w and s.numel() >= x.numel()]
    assert not temporaries, f"(N, C) temporaries saved for backward: {temporaries}"
    loss.backward()
    xr = x.detach().clone().requires_grad_(True)
    expected = torch.nn.functional.multi_margin_loss(xr, t, p=p, margin=0.5, weight=w)
    expected.backward()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(x.grad, xr.grad)


# --- linear_cross_entropy: no N×V array, on NumPy, torch and JAX ------------------------------

N, D, V = 256, 8, 1024  # logits N×V: 1 MiB in float32; 16 tokens per chunk: 64 KiB, 16 chunks


def _lce_inputs(dtype=np.float32):
    rng = np.random.default_rng(0)
    h = rng.standard_normal((N, D)).astype(dtype)
    w = (rng.standard_normal((V, D)) * 0.1).astype(dtype)
    b = (rng.standard_normal(V) * 0.1).astype(dtype)
    cw = rng.random(V).astype(dtype)
    t = rng.integers(0, V, N)
    t[::5] = -100
    return h, w, b, cw, t


LCE_OPTIONS = {
    "default": {},
    "none": {"reduction": "none"},
    "sum": {"reduction": "sum"},
    "bias": {"linear_bias": "b"},
    "class weights": {"weight": "cw"},
    "ignore_index": {"ignore_index": -100},
    "label smoothing": {"label_smoothing": 0.1},
    "everything": {"weight": "cw", "label_smoothing": 0.1, "linear_bias": "b", "reduction": "none"},
    "z-loss and soft cap": {"z_loss": 1e-3, "softcap": 20.0},
    "vocabulary blocks": {"chunk_size": (16, 256)},
}


def _options(name, b, cw):
    kw = {"chunk_size": 16, **LCE_OPTIONS[name]}
    return {k: b if v == "b" else cw if v == "cw" else v for k, v in kw.items()}


@pytest.mark.parametrize("name", list(LCE_OPTIONS))
def test_linear_cross_entropy_on_numpy_never_allocates_the_logits(name):
    h, w, b, cw, t = _lce_inputs()
    kw = _options(name, b, cw)
    logits = N * V * 4  # half of it is 8 chunks of logits: room for the few a chunk holds at once
    out, peak = _peak_bytes(lambda: lossreg.linear_cross_entropy(h, w, t, **kw))
    assert peak < logits / 2, f"forward peak {peak} bytes, logits {logits}"
    assert out.dtype == np.float32
    (value, grads), peak = _peak_bytes(lambda: lossreg.linear_cross_entropy_value_and_grad(h, w, t, **kw))
    outputs = sum(g.nbytes for g in grads if g is not None)
    assert peak - outputs < logits / 2, f"value_and_grad peak {peak} bytes beyond its gradients, logits {logits}"
    assert value.dtype == np.float32 and all(g.dtype == np.float32 for g in grads if g is not None)


@pytest.mark.parametrize("name", ["default", "none", "everything", "vocabulary blocks"])
def test_linear_cross_entropy_on_torch_saves_no_logits_and_keeps_nothing_after_backward(name):
    torch = pytest.importorskip("torch")
    h, w, b, cw, t = (torch.tensor(a) for a in _lce_inputs())
    kw = _options(name, b, cw)
    h.requires_grad_(True)
    w.requires_grad_(True)
    saved = []

    def pack(tensor):
        saved.append((tensor.numel(), weakref.ref(tensor)))
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = lossreg.linear_cross_entropy(h, w, t, **kw)
    assert max((numel for numel, _ in saved), default=0) < N * V // 4
    loss.sum().backward()
    assert h.grad.dtype == w.grad.dtype == torch.float32
    del loss
    gc.collect()
    inputs = {id(a) for a in (h, w, b, cw, t)}
    alive = [ref().shape for _, ref in saved if ref() is not None and id(ref()) not in inputs]
    assert not alive, f"tensors saved for backward still alive after it: {alive}"


@pytest.mark.parametrize("name", ["default", "none", "everything"])
def test_linear_cross_entropy_under_jax_jit_has_temporaries_well_below_the_logits(name):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    with jax.enable_x64(False):
        h, w, b, cw, t = (jnp.asarray(a) for a in _lce_inputs())
        kw = _options(name, b, cw)

        def step(h, w, t):
            return jax.value_and_grad(lambda h, w: lossreg.linear_cross_entropy(h, w, t, **kw).sum(),
                                      argnums=(0, 1))(h, w)

        analysis = jax.jit(step).lower(h, w, t).compile().memory_analysis()
        (value, (dh, dw)) = jax.jit(step)(h, w, t)
    if analysis is None:
        pytest.skip("this JAX backend gives no memory analysis")
    assert analysis.temp_size_in_bytes < N * V * 4 / 2
    assert value.dtype == dh.dtype == dw.dtype == jnp.float32


# --- float32 stays float32: no float64 intermediate on torch, kernels on or off ---------------


def _float32_calls(torch):
    gen = torch.Generator().manual_seed(0)
    n, c = 8, 5
    x = torch.randn(n, c, generator=gen, requires_grad=True)
    idx = torch.randint(0, c, (n,), generator=gen)
    w = torch.rand(c, generator=gen)
    prob = torch.softmax(torch.randn(n, c, generator=gen), 1)
    b = torch.rand(n, c, generator=gen)
    sign = torch.sign(b - 0.5)
    listed = torch.full((n, c), -1)
    listed[:, 0] = idx
    h = torch.randn(n, 3, generator=gen, requires_grad=True)
    lw = torch.randn(c, 3, generator=gen, requires_grad=True)
    return x, {
        "cross_entropy": lambda: lossreg.cross_entropy(x, idx, weight=w, label_smoothing=0.1),
        "cross_entropy (probabilities)": lambda: lossreg.cross_entropy(x, prob, weight=w, label_smoothing=0.1),
        "nll_loss": lambda: lossreg.nll_loss(x, idx, weight=w),
        "kl_div": lambda: lossreg.kl_div(x, prob),
        "binary_cross_entropy": lambda: lossreg.binary_cross_entropy(torch.sigmoid(x), b, weight=w),
        "binary_cross_entropy_with_logits": lambda: lossreg.binary_cross_entropy_with_logits(
            x, b, weight=w, pos_weight=w),
        "multilabel_soft_margin_loss": lambda: lossreg.multilabel_soft_margin_loss(x, (b > 0.5).float(), weight=w),
        "multi_margin_loss": lambda: lossreg.multi_margin_loss(x, idx, p=2, weight=w),
        "multilabel_margin_loss": lambda: lossreg.multilabel_margin_loss(x, listed),
        "huber_loss": lambda: lossreg.huber_loss(x, b),
        "poisson_nll_loss": lambda: lossreg.poisson_nll_loss(x, b, full=True),
        "gaussian_nll_loss": lambda: lossreg.gaussian_nll_loss(x, b, b + 0.1, full=True),
        "linear_cross_entropy": lambda: lossreg.linear_cross_entropy(h, lw, idx, weight=w, label_smoothing=0.1,
                                                                     chunk_size=3),
        "linear_cross_entropy (z-loss, soft cap, vocabulary blocks)": lambda: lossreg.linear_cross_entropy(
            h, lw, idx, z_loss=1e-3, softcap=5.0, chunk_size=(3, 2)),
    }


@pytest.mark.parametrize("kernels", [True, False])
def test_float32_losses_and_gradients_compute_nothing_in_float64_on_torch(kernels):
    # (CTCLoss is left out: its kernel differentiates in float64 on purpose, as the README says.)
    torch = pytest.importorskip("torch")
    from torch.utils._python_dispatch import TorchDispatchMode

    class Float64Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for o in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(o, torch.Tensor) and o.dtype == torch.float64:
                    self.ops.add(str(func))
            return out

    _, calls = _float32_calls(torch)
    upcast = {}
    with lossreg.use_kernels(kernels):
        for name, call in calls.items():
            with Float64Ops() as seen:
                out = call()
                out.sum().backward()
            assert out.dtype == torch.float32, name
            if seen.ops:
                upcast[name] = sorted(seen.ops)
    assert not upcast, upcast
