"""User-style hunt: leftovers of earlier reviews, each checked against torch 2.13.

- ``linear_cross_entropy`` with the vocabulary split into chunks: a chunk whose logits are all
  -inf (classes masked out by a -inf bias) followed by chunks whose logits are all below about
  -88 (float32) / -745 (float64) made the running log-sum-exp underflow (lse = -inf, loss -inf).
- An unbatched ``ctc_loss`` whose 1-d targets are longer than ``target_length`` (padded): what
  each sample of ``jax.vmap`` / ``torch.func.vmap`` over a padded batch gets. It was NaN on JAX
  (and under torch.func) and an error on eager arrays; it now reads the first ``target_length``
  labels, the batched call's per-sample loss (torch refuses this form: it takes an unbatched
  row of exactly ``target_length`` labels, or a padded ``(1, S)`` one).
- ``huber_loss`` and ``smooth_l1_loss`` overflowed in float32 for residuals past about 1.8e19
  inside the quadratic part (``0.5 · (q · q)``), where torch computes ``(0.5 · q) · q``.
- ``gaussian_nll_loss`` in forward mode with ``var < eps`` (a documented difference, pinned
  here): lossreg's tangent is the straight-through clamp, i.e. torch's reverse-mode gradient
  applied to the tangent; torch's own forward mode sees its in-place clamp and drops var's
  tangent there, so torch's two modes disagree.
- Gradients with respect to ±inf targets: the target gradients are torch's wherever torch
  differentiates the target.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lossreg

jax = pytest.importorskip("jax")
jnp = jax.numpy

INF = float("inf")


def _x64(dtype: str):
    """JAX's x64 mode as the dtype needs, whatever another test left set."""
    return jax.enable_x64(dtype == "float64")


# --- linear_cross_entropy: a masked vocabulary chunk, then very negative logits ----------------


def _masked_head(dtype: str) -> tuple[np.ndarray, ...]:
    """(N, D) states, a (V, D) head and a (V,) bias whose first vocabulary chunk (4 classes) is
    masked out (-inf) and whose other logits are all far below 0 (-200 in float32, -800 in
    float64: exp underflows against 0), with targets among them."""
    rng = np.random.default_rng(0)
    n, d, v = 4, 3, 12
    h = rng.standard_normal((n, d)).astype(dtype)
    w = (rng.standard_normal((v, d)) * 0.01).astype(dtype)
    b = np.full(v, -200.0 if dtype == "float32" else -800.0, dtype=dtype)
    b[:4] = -np.inf
    return h, w, b, np.array([5, 6, 11, 4])


def _torch_lce(h, w, b, t):
    """torch's value (reduction "none") and the gradients of its sum for h and w."""
    ht, wt = (torch.tensor(a, requires_grad=True) for a in (h, w))
    losses = F.cross_entropy(F.linear(ht, wt, torch.tensor(b)), torch.tensor(t), reduction="none")
    return losses.detach().numpy(), [g.numpy() for g in torch.autograd.grad(losses.sum(), (ht, wt))]


def _tol(dtype: str) -> dict:
    return {"rtol": 1e-5, "atol": 1e-6} if dtype == "float32" else {"rtol": 1e-10, "atol": 1e-12}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", ["numpy", "torch-kernel", "torch-portable", "jax"])
def test_linear_cross_entropy_masked_vocabulary_chunk_then_very_negative_logits(backend, dtype):
    h, w, b, t = _masked_head(dtype)
    want, (want_dh, want_dw) = _torch_lce(h, w, b, t)
    assert np.all(np.isfinite(want))
    chunks = (4, 4)  # 4 tokens, 4 classes a block: the first block is all -inf
    if backend == "numpy":
        got = lossreg.linear_cross_entropy(h, w, t, linear_bias=b, reduction="none", chunk_size=chunks)
        _, (dh, dw, _) = lossreg.linear_cross_entropy_value_and_grad(h, w, t, linear_bias=b, reduction="sum",
                                                                      chunk_size=chunks)
    elif backend.startswith("torch"):
        ht, wt = (torch.tensor(a, requires_grad=True) for a in (h, w))
        with lossreg.use_kernels(backend == "torch-kernel"):
            out = lossreg.linear_cross_entropy(ht, wt, torch.tensor(t), linear_bias=torch.tensor(b),
                                               reduction="none", chunk_size=chunks)
            dh, dw = torch.autograd.grad(out.sum(), (ht, wt))
        got = out.detach().numpy()
    else:
        with _x64(dtype):
            def total(hj, wj):
                return lossreg.linear_cross_entropy(hj, wj, jnp.asarray(t), linear_bias=jnp.asarray(b),
                                                    reduction="sum", chunk_size=chunks)
            hj, wj = jnp.asarray(h), jnp.asarray(w)
            got = lossreg.linear_cross_entropy(hj, wj, jnp.asarray(t), linear_bias=jnp.asarray(b),
                                               reduction="none", chunk_size=chunks)
            assert got.dtype == np.dtype(dtype)
            dh, dw = jax.grad(total, argnums=(0, 1))(hj, wj)
    np.testing.assert_allclose(np.asarray(got), want, **_tol(dtype))
    np.testing.assert_allclose(np.asarray(dh), want_dh, **_tol(dtype))
    np.testing.assert_allclose(np.asarray(dw), want_dw, **_tol(dtype))


@pytest.mark.parametrize("kernels", [True, False], ids=["kernel", "portable"])
def test_linear_cross_entropy_very_negative_chunks_around_a_few_likely_classes(kernels):
    """A head whose logits are about -200 for most classes and near 0 for a few, in chunks of
    the vocabulary: float32 values and gradients are torch's."""
    rng = np.random.default_rng(1)
    h = rng.standard_normal((6, 4)).astype("float32")
    w = (rng.standard_normal((40, 4)) * 0.01).astype("float32")
    b = np.full(40, -200.0, dtype="float32")
    b[[5, 37, 39]] = 0.0
    t = np.array([37, 39, 5, 0, 38, 12])
    ht, wt, bt = (torch.tensor(a, requires_grad=True) for a in (h, w, b))
    want = F.cross_entropy(F.linear(ht, wt, bt), torch.tensor(t), reduction="none")
    want_g = torch.autograd.grad(want.sum(), (ht, wt, bt))
    for chunks in [(2, 8), (3, 5), (6, 3)]:
        with lossreg.use_kernels(kernels):
            got = lossreg.linear_cross_entropy(ht, wt, torch.tensor(t), linear_bias=bt, reduction="none",
                                               chunk_size=chunks)
            got_g = torch.autograd.grad(got.sum(), (ht, wt, bt))
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-5)
        for g, wg in zip(got_g, want_g):
            torch.testing.assert_close(g, wg, rtol=1e-5, atol=1e-6)


# --- ctc_loss: unbatched padded targets, and vmap over a padded batch ----------------------------


def _ctc_batch():
    """(T, N, C) float64 log-probabilities, (N, S) padded targets (0 = blank as padding), lengths."""
    g = torch.Generator().manual_seed(0)
    lp = torch.randn(7, 3, 5, dtype=torch.float64, generator=g).log_softmax(-1)
    targets = torch.tensor([[1, 2, 3, 0], [4, 0, 0, 0], [2, 2, 1, 3]])
    return lp, targets, torch.tensor([7, 5, 6]), torch.tensor([3, 1, 4])


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_ctc_unbatched_padded_targets_read_the_first_target_length_labels(backend):
    lp, targets, il, tl = _ctc_batch()
    lp1, row, i1, t1 = lp[:, 1], targets[1], il[1], tl[1]  # (T, C), (S,) with S = 4 > target length 1
    with pytest.raises(RuntimeError):  # torch refuses the 1-d padded form ...
        F.ctc_loss(lp1, row, i1, t1, reduction="none")
    want = F.ctc_loss(lp1, row[None], i1, t1, reduction="none")  # ... and takes it as a (1, S) row
    if backend == "numpy":
        got = lossreg.ctc_loss(lp1.numpy(), row.numpy(), i1.numpy(), t1.numpy(), reduction="none")
    elif backend == "torch":
        got = lossreg.ctc_loss(lp1, row, i1, t1, reduction="none").numpy()
    else:
        with _x64("float64"):
            got = lossreg.ctc_loss(*(jnp.asarray(x.numpy()) for x in (lp1, row, i1, t1)), reduction="none")
    assert np.shape(got) == ()
    np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-10)


def test_ctc_unbatched_targets_shorter_than_target_length_are_still_refused():
    lp, targets, il, _ = _ctc_batch()
    with pytest.raises(lossreg.LossValueError, match="target_lengths"):
        lossreg.ctc_loss(lp[:, 0].numpy(), targets[0, :2].numpy(), il[0].numpy(), np.int64(3))


def test_ctc_jax_vmap_over_a_padded_batch_gives_the_batched_losses_and_gradients():
    lp, targets, il, tl = _ctc_batch()
    want = F.ctc_loss(lp, targets, il, tl, reduction="none")
    lpg = lp.clone().requires_grad_()
    want_g = torch.autograd.grad(F.ctc_loss(lpg, targets, il, tl, reduction="sum"), lpg)[0]
    with _x64("float64"):
        def one(lp1, row, i1, t1):
            return lossreg.ctc_loss(lp1, row, i1, t1, reduction="none")
        args = [jnp.asarray(x.numpy()) for x in (lp, targets, il, tl)]
        got = jax.vmap(one, in_axes=(1, 0, 0, 0))(*args)
        got_g = jax.vmap(jax.grad(one), in_axes=(1, 0, 0, 0), out_axes=1)(*args)
    np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(got_g), want_g.numpy(), rtol=1e-8, atol=1e-12)


def test_ctc_torch_func_vmap_over_a_padded_batch_gives_the_batched_losses():
    lp, targets, il, tl = _ctc_batch()
    want = F.ctc_loss(lp, targets, il, tl, reduction="none")
    got = torch.func.vmap(lambda a, b, c, d: lossreg.ctc_loss(a, b, c, d, reduction="none"),
                          in_dims=(1, 0, 0, 0))(lp, targets, il, tl)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=0)


# --- huber_loss and smooth_l1_loss: large residuals inside the quadratic part --------------------


@pytest.mark.parametrize("loss,option", [("huber_loss", {"delta": 1e30}), ("smooth_l1_loss", {"beta": 1e30}),
                                         ("huber_loss", {"delta": 1.0})])
@pytest.mark.parametrize("backend", ["numpy", "array_api_strict", "torch-portable", "jax"])
def test_huber_and_smooth_l1_float32_residuals_past_1e19_do_not_overflow(loss, option, backend):
    x = np.array([1e19, 3.0, -2e19], dtype="float32")
    t = np.array([-1e19, 0.0, 1e18], dtype="float32")
    xt = torch.tensor(x, requires_grad=True)
    want = getattr(F, loss)(xt, torch.tensor(t), reduction="none", **option)
    want_g = torch.autograd.grad(want.sum(), xt)[0].numpy()
    want = want.detach().numpy()
    assert np.all(np.isfinite(want))
    fn = getattr(lossreg, loss)
    got_g = None
    if backend == "numpy":
        got = fn(x, t, reduction="none", **option)
    elif backend == "array_api_strict":
        xs = pytest.importorskip("array_api_strict")
        got = np.asarray(fn(xs.asarray(x), xs.asarray(t), reduction="none", **option))
    elif backend == "torch-portable":
        xl = torch.tensor(x, requires_grad=True)
        with lossreg.use_kernels(False):
            out = fn(xl, torch.tensor(t), reduction="none", **option)
            got_g = torch.autograd.grad(out.sum(), xl)[0].numpy()
        got = out.detach().numpy()
    else:
        with _x64("float32"):
            got = fn(jnp.asarray(x), jnp.asarray(t), reduction="none", **option)
            got_g = jax.grad(lambda a: fn(a, jnp.asarray(t), reduction="sum", **option))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(got), want, rtol=2e-6)
    if got_g is not None:
        np.testing.assert_allclose(np.asarray(got_g), want_g, rtol=2e-6)


# --- gaussian_nll_loss in forward mode below eps (documented difference) -------------------------


def test_gaussian_nll_forward_mode_below_eps_is_torchs_reverse_gradient_applied_to_the_tangent():
    x = torch.tensor([0.3, -1.0, 2.0, 0.5], dtype=torch.float64)
    t = torch.tensor([0.1, 0.2, 1.0, 0.5], dtype=torch.float64)
    v = torch.tensor([1e-9, 0.5, 1e-7, 2e-6], dtype=torch.float64)  # two below eps = 1e-6
    tangents = [torch.tensor(a, dtype=torch.float64) for a in ([1., 2, 3, 4], [.5, -1, 2, 1], [1e-3, 2, 5e-4, 3])]
    primals = [a.clone().requires_grad_() for a in (x, t, v)]
    want_value = F.gaussian_nll_loss(*primals, reduction="none")
    grads = [torch.autograd.grad(want_value[i], primals, retain_graph=True) for i in range(4)]
    want_tangent = torch.stack([sum((g * d).sum() for g, d in zip(gi, tangents)) for gi in grads])
    # torch's own forward mode disagrees with its reverse mode where var < eps (its clamp, done in
    # place under no_grad, is seen by forward AD): lossreg keeps one derivative for both modes.
    torch_jvp = torch.func.jvp(lambda a, b, c: F.gaussian_nll_loss(a, b, c, reduction="none"), (x, t, v),
                               tuple(tangents))[1]
    assert not torch.allclose(torch_jvp[[0, 2]], want_tangent[[0, 2]])
    torch.testing.assert_close(torch_jvp[[1, 3]], want_tangent[[1, 3]])
    for kernels in (True, False):
        with lossreg.use_kernels(kernels):
            value, tangent = torch.func.jvp(lambda a, b, c: lossreg.gaussian_nll_loss(a, b, c, reduction="none"),
                                            (x, t, v), tuple(tangents))
        torch.testing.assert_close(value, want_value.detach(), rtol=1e-12, atol=0)
        torch.testing.assert_close(tangent, want_tangent, rtol=1e-10, atol=0)
    with _x64("float64"):
        value, tangent = jax.jvp(lambda a, b, c: lossreg.gaussian_nll_loss(a, b, c, reduction="none"),
                                 [jnp.asarray(a.numpy()) for a in (x, t, v)],
                                 [jnp.asarray(a.numpy()) for a in tangents])
    np.testing.assert_allclose(np.asarray(value), want_value.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(tangent), want_tangent.numpy(), rtol=1e-10)


# --- gradients with respect to ±inf targets ------------------------------------------------------


_INF_TARGET_CASES = [
    ("multilabel_soft_margin_loss", {}),
    ("binary_cross_entropy_with_logits", {}),
    ("mse_loss", {}),
    ("l1_loss", {}),
    ("huber_loss", {}),
    ("smooth_l1_loss", {}),
    ("kl_div", {}),
    ("poisson_nll_loss", {"log_input": False}),
    ("gaussian_nll_loss", {}),
]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("backend", ["torch-kernel", "torch-portable", "jax"])
@pytest.mark.parametrize("loss,options", _INF_TARGET_CASES, ids=[c[0] + "".join(c[1]) for c in _INF_TARGET_CASES])
def test_target_gradient_at_infinite_targets_is_torchs(loss, options, backend):
    x = torch.tensor([[0.5, -2.0, 1.0, 0.0], [3.0, 0.1, 0.2, 5.0]], dtype=torch.float64)
    y = torch.tensor([[INF, -INF, 1.0, INF], [-INF, INF, 0.5, -INF]], dtype=torch.float64)
    if loss == "poisson_nll_loss":
        y = y.abs()
    args = [x, y] + ([torch.ones_like(x)] if loss == "gaussian_nll_loss" else [])
    want_args = [a.clone().requires_grad_(i == 1) for i, a in enumerate(args)]
    want = torch.autograd.grad(getattr(F, loss)(*want_args, reduction="sum", **options), want_args[1])[0]
    fn = getattr(lossreg, loss)
    if backend == "jax":
        with _x64("float64"):
            got = jax.grad(lambda *a: fn(*a, reduction="sum", **options), argnums=1)(
                *(jnp.asarray(a.numpy()) for a in args))
    else:
        got_args = [a.clone().requires_grad_(i == 1) for i, a in enumerate(args)]
        with lossreg.use_kernels(backend == "torch-kernel"):
            got = torch.autograd.grad(fn(*got_args, reduction="sum", **options), got_args[1])[0]
    np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-12)


@pytest.mark.parametrize("number", [np.float64(2.0), np.float32(2.0), np.int64(2)], ids=type)
def test_a_numpy_scalar_cotangent_is_the_number_as_a_python_one_is(number) -> None:
    """``cotangent=`` of a scalar result may be a Python number; a NumPy scalar (what ``np.sum`` or
    a config's ``np.float64`` gives) is taken as that number, as every number option takes one. It
    was refused as an array of another library than the inputs' (np.float64 is even a float)."""
    jnp = jax.numpy
    h, w, y = jnp.linspace(-1, 1, 12).reshape(3, 4), jnp.linspace(0, 1, 20).reshape(5, 4), jnp.array([0, 4, 2])
    value, grads = lossreg.linear_cross_entropy_value_and_grad(h, w, y, cotangent=number)
    want, want_grads = lossreg.linear_cross_entropy_value_and_grad(h, w, y, cotangent=2.0)
    np.testing.assert_array_equal(value, want)
    for got, expected in zip(grads[:2], want_grads[:2]):
        np.testing.assert_array_equal(got, expected)
