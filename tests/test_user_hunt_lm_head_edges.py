"""Found by hunts with torch's own test inputs and as a JAX / Dask user: a language-model head of
no classes, the sum of no targets with label smoothing and no classes, the fused loss's graph on
Dask, and class weights picked by targets split over a JAX mesh of explicit axes (that one is
checked in ``fixtures/jax_sharding.py``)."""

from __future__ import annotations

import numpy as np
import pytest

import lossreg

torch = pytest.importorskip("torch")
da = pytest.importorskip("dask.array")
F = torch.nn.functional

LIBRARIES = {"numpy": np.asarray, "torch": torch.as_tensor, "dask": lambda a: da.from_array(a, chunks=2)}


def _numpy(out):
    out = out.compute() if hasattr(out, "compute") else out
    return np.asarray(out.detach() if hasattr(out, "detach") else out, dtype=np.float64)


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.2}], ids=["plain", "label_smoothing"])
@pytest.mark.parametrize("n", [3, 0])
def test_a_head_of_no_classes_gives_torchs_answer_where_every_target_is_ignored(n, options, reduction, library):
    # F.linear_cross_entropy takes a (0, D) weight as F.cross_entropy takes (N, 0) logits.
    conv = LIBRARIES[library]
    h, w, t = np.random.default_rng(0).normal(size=(n, 8)), np.zeros((0, 8)), np.full(n, -100)
    want = F.linear_cross_entropy(torch.tensor(h), torch.tensor(w), torch.tensor(t), reduction=reduction, **options)
    got = lossreg.linear_cross_entropy(conv(h), conv(w), conv(t), reduction=reduction, **options)
    np.testing.assert_array_equal(_numpy(got), want.numpy())


def test_a_head_of_no_classes_refuses_a_target_it_cannot_hold():
    with pytest.raises(lossreg.LossValueError, match="target"):
        lossreg.linear_cross_entropy(np.ones((2, 4)), np.zeros((0, 4)), np.array([0, -100]))


def test_the_gradient_of_a_head_of_no_classes_is_left_to_autodiff_saying_why():
    with pytest.raises(lossreg.UnsupportedError, match=r"a linear weight of no classes, \(0, D\)"):
        lossreg.linear_cross_entropy_value_and_grad(np.ones((2, 4)), np.zeros((0, 4)), np.full(2, -100))


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_no_targets_and_no_classes_with_label_smoothing_reduce_to_nan(reduction, library):
    # torch's ε / C times the sum over no targets: ε / 0 · 0.
    x, t = np.zeros((0, 0)), np.zeros(0, dtype=np.int64)
    with lossreg.use_kernels(False):
        got = lossreg.cross_entropy(LIBRARIES[library](x), LIBRARIES[library](t), reduction=reduction,
                                    label_smoothing=0.1)
    assert np.isnan(_numpy(got))
    assert np.isnan(F.cross_entropy(torch.tensor(x), torch.tensor(t), reduction=reduction, label_smoothing=0.1))


def test_the_fused_loss_on_dask_builds_the_graph_of_the_unfused_one():
    # Dask's blocks bound each task's logits; chunks of the in-memory plan (128 tokens) made ~60
    # tasks per chunk, 7,821 tasks for 16,384 tokens where the unfused loss makes 301.
    v, d, n = 32_000, 64, 2**14
    h = da.ones((n, d), chunks=(2**12, d), dtype="float32")
    w = da.ones((v, d), chunks=(8_000, d), dtype="float32")
    t = da.zeros((n,), chunks=2**12, dtype="int64")
    fused = len(lossreg.linear_cross_entropy(h, w, t).__dask_graph__())
    unfused = len(lossreg.cross_entropy(h @ w.T, t).__dask_graph__())
    assert fused <= 2 * unfused, (fused, unfused)


@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.1}, {"reduction": "none", "softcap": 5.0},
                                     {"reduction": "sum", "z_loss": 1e-3}], ids=str)
def test_the_fused_loss_on_dask_blocks_of_tokens_and_vocabulary_is_numpys(options):
    rng = np.random.default_rng(1)
    h, w = rng.normal(size=(300, 16)).astype("float32"), (0.3 * rng.normal(size=(77, 16))).astype("float32")
    t = rng.integers(0, 77, 300)
    t[::7] = -100
    want = lossreg.linear_cross_entropy(h, w, t, **options)
    got = lossreg.linear_cross_entropy(da.from_array(h, chunks=(70, 16)), da.from_array(w, chunks=(20, 16)),
                                       da.from_array(t, chunks=70), **options)
    np.testing.assert_allclose(_numpy(got), want, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_kept_tokens_of_weight_zero_have_torchs_nan_gradient_and_ignored_ones_its_zero(label_smoothing, kernels):
    # The mean divides by Σ w[y] = 0: torch's gradient is NaN on the kept tokens' rows, 0 on the ignored one.
    rng = np.random.default_rng(2)
    h, w = torch.tensor(rng.normal(size=(3, 4))), torch.tensor(rng.normal(size=(5, 4)))
    t, cw = torch.tensor([0, -100, 1]), torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    want = h.clone().requires_grad_()
    F.cross_entropy(want @ w.T, t, weight=cw, label_smoothing=label_smoothing).backward()
    got = h.clone().requires_grad_()
    with lossreg.use_kernels(kernels):
        lossreg.linear_cross_entropy(got, w, t, weight=cw, label_smoothing=label_smoothing).backward()
    assert torch.isnan(want.grad[[0, 2]]).all() and (want.grad[1] == 0).all()
    torch.testing.assert_close(got.grad, want.grad, equal_nan=True)
