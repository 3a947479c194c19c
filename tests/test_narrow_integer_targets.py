"""Class indices and ±1 labels in narrow integer dtypes (uint8 label maps, int8 classes).

A comparison converts its Python int to the array's dtype: JAX wraps it (a uint8 target compared
with ignore_index -100 compares with 156, so class 156 would silently count as ignored; int8
cannot say that 127 is below 130 classes), and array-api-strict refuses it. Every library must
give torch's answer for the same indices held as int64.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lossreg

rng = np.random.default_rng(5)


def _libraries() -> list[Any]:
    import array_api_strict
    import dask.array as da
    import jax
    import jax.numpy as jnp

    return [pytest.param(np.asarray, id="numpy"), pytest.param(array_api_strict.asarray, id="array_api_strict"),
            pytest.param(torch.asarray, id="torch"), pytest.param(jnp.asarray, id="jax"),
            pytest.param(lambda a: jax.jit(lambda b: b)(jnp.asarray(a)), id="jax_jit"),
            pytest.param(lambda a: da.from_array(np.asarray(a), chunks=2), id="dask")]


def _scores(n: int, c: int) -> np.ndarray:
    return rng.normal(size=(n, c)).astype(np.float32)


CASES: list[tuple[str, Callable[..., Any], tuple[np.ndarray, ...], Callable[..., Any]]] = []
_x200, _x130 = _scores(4, 200), _scores(3, 130)
_u8 = np.array([156, 3, 199, 10], np.uint8)  # 156 is -100 wrapped into uint8
_i8 = np.array([127, 3, 100], np.int8)
CASES += [
    ("cross_entropy uint8, class 156", lossreg.cross_entropy, (_x200, _u8), F.cross_entropy),
    ("cross_entropy uint8, only class 156", lossreg.cross_entropy, (_x200[:1], _u8[:1]), F.cross_entropy),
    ("cross_entropy int8, 130 classes", lossreg.cross_entropy, (_x130, _i8), F.cross_entropy),
    ("nll_loss uint8, class 156", lossreg.nll_loss, (_x200, _u8), F.nll_loss),
    ("multi_margin_loss int8, 130 classes", lossreg.multi_margin_loss, (_x130, _i8), F.multi_margin_loss),
]


@pytest.mark.parametrize("library", _libraries())
@pytest.mark.parametrize("what, loss, arrays, reference", CASES, ids=[c[0] for c in CASES])
def test_narrow_class_indices_are_the_classes_they_hold(library, what, loss, arrays, reference):
    want = reference(*(torch.from_numpy(a.astype(np.int64) if a.dtype.kind in "iu" else a) for a in arrays))
    got = loss(*map(library, arrays))
    np.testing.assert_allclose(np.asarray(lossreg.backends.to_numpy(got)), want.numpy(), rtol=1e-5, err_msg=what)


@pytest.mark.parametrize("library", _libraries())
def test_linear_cross_entropy_reads_uint8_class_156_as_a_class(library):
    hidden, weight = rng.normal(size=(4, 8)).astype(np.float32), rng.normal(size=(200, 8)).astype(np.float32)
    logits = torch.from_numpy(hidden) @ torch.from_numpy(weight).T
    want = F.cross_entropy(logits, torch.from_numpy(_u8.astype(np.int64)))
    got = lossreg.linear_cross_entropy(library(hidden), library(weight), library(_u8))
    np.testing.assert_allclose(np.asarray(lossreg.backends.to_numpy(got)), want.numpy(), rtol=1e-5)


@pytest.mark.parametrize("library", _libraries())
def test_unsigned_labels_of_one_are_compared_with_minus_one(library):
    x, x1, x2 = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    ones = np.ones(4, np.uint8)
    hinge = lossreg.hinge_embedding_loss(library(x), library(np.ones((4, 3), np.uint8)))
    cosine = lossreg.cosine_embedding_loss(library(x1), library(x2), library(ones))
    t = torch.from_numpy
    np.testing.assert_allclose(np.asarray(lossreg.backends.to_numpy(hinge)),
                               F.hinge_embedding_loss(t(x), torch.ones(4, 3, dtype=torch.float64)).numpy(), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(lossreg.backends.to_numpy(cosine)),
                               F.cosine_embedding_loss(t(x1), t(x2), torch.ones(4)).numpy(), rtol=1e-6)


_x5, _w5 = rng.normal(size=(4, 5)), rng.uniform(0.5, 2.0, 5)
_h, _vocab = rng.normal(size=(4, 3)), rng.normal(size=(5, 3))
WEIGHTED: list[tuple[str, Callable[..., Any], Callable[..., Any], dict[str, Any]]] = [
    ("cross_entropy", lambda x, t, **o: lossreg.cross_entropy(x, t, **o), F.cross_entropy, {}),
    ("cross_entropy, uint8 maps ignoring 255", lambda x, t, **o: lossreg.cross_entropy(x, t, **o), F.cross_entropy,
     {"ignore_index": 255}),
    ("nll_loss", lambda x, t, **o: lossreg.nll_loss(x, t, **o), F.nll_loss, {}),
    ("multi_margin_loss", lambda x, t, **o: lossreg.multi_margin_loss(x, t, **o), F.multi_margin_loss, {}),
]


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "portable"])
@pytest.mark.parametrize("learned", [False, True], ids=["weight", "learned weight"])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16])
@pytest.mark.parametrize("what, loss, reference, options", WEIGHTED, ids=[w[0] for w in WEIGHTED])
def test_narrow_class_indices_with_class_weights_on_torch(what, loss, reference, options, dtype, learned, kernels):
    """torch's ``index_select`` takes no int8, uint8 or int16 index: the class weights are still
    picked by the classes such targets hold (a uint8 label map with 255 ignored and class weights is
    the usual segmentation set-up), on torch's kernels and on the portable path."""
    labels = [0, 4, 255 if options.get("ignore_index") == 255 and dtype == torch.uint8 else 1, 2]
    target = torch.tensor(labels, dtype=dtype)
    weight = torch.from_numpy(_w5.copy()).requires_grad_(learned)
    want = reference(torch.from_numpy(_x5), target.long(), weight=weight.detach(), **options)
    with lossreg.use_kernels(kernels):
        got = loss(torch.from_numpy(_x5), target, weight=weight, **options)
    torch.testing.assert_close(got.detach(), want, rtol=1e-12, atol=0)
    if learned:  # the weights' gradient (torch's functions have none) is that of int64 targets
        with lossreg.use_kernels(kernels):
            wide = loss(torch.from_numpy(_x5), target.long(), weight=weight, **options)
        (wanted_grad,) = torch.autograd.grad(wide, weight)
        (grad,) = torch.autograd.grad(got, weight)
        torch.testing.assert_close(grad, wanted_grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16])
def test_linear_cross_entropy_with_narrow_targets_and_class_weights_on_torch(dtype):
    target = torch.tensor([0, 4, 1, 2], dtype=dtype)
    weight = torch.from_numpy(_w5.copy())
    want = F.cross_entropy(torch.from_numpy(_h) @ torch.from_numpy(_vocab).T, target.long(), weight=weight)
    got = lossreg.linear_cross_entropy(torch.from_numpy(_h), torch.from_numpy(_vocab), target, weight=weight)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
