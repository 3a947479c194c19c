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
