"""User-style hunt: leftovers of earlier reviews (second round), each checked against torch 2.13.

- ``linear_cross_entropy`` with an infinite class weight and label smoothing: torch's smoothing
  term Σ_c w_c (lse - z_c) is +inf, the streamed form (W (lse - a) - Σ_c w_c (z_c - a)) was
  inf - inf and 0 · inf: NaN losses where torch's are +inf.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lossreg
import lossreg.torch as lt

jax = pytest.importorskip("jax")
jnp = jax.numpy

INF = float("inf")


# --- linear_cross_entropy: an infinite class weight with label smoothing ----------------------


def _head_with_infinite_weight(dtype: str) -> tuple[np.ndarray, ...]:
    """(N, D) states, a (V, D) head, a (V,) bias, targets, and class weights with one +inf."""
    rng = np.random.default_rng(0)
    n, d, v = 6, 4, 5
    h, w, b = (rng.standard_normal(s).astype(dtype) for s in ((n, d), (v, d), (v,)))
    cw = np.ones(v, dtype=dtype)
    cw[2] = np.inf
    return h, w, b, np.array([0, 1, 2, 3, 4, 1]), cw


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("backend", ["numpy", "torch-kernel", "torch-portable", "torch-module", "jax"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_linear_cross_entropy_infinite_class_weight_with_smoothing_is_torchs_inf(backend, reduction, dtype):
    h, w, b, t, cw = _head_with_infinite_weight(dtype)
    want = F.cross_entropy(F.linear(torch.tensor(h), torch.tensor(w), torch.tensor(b)), torch.tensor(t),
                           weight=torch.tensor(cw), label_smoothing=0.1, reduction=reduction).numpy()
    assert np.isnan(want).all() if reduction == "mean" else np.isposinf(want).all()  # inf / inf for "mean"
    kw = {"weight": cw, "label_smoothing": 0.1, "reduction": reduction}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's, on the infinite sums
        if backend == "numpy":
            got = lossreg.linear_cross_entropy(h, w, t, linear_bias=b, **kw)
        elif backend == "jax":
            with jax.enable_x64(dtype == "float64"):
                got = lossreg.linear_cross_entropy(*map(jnp.asarray, (h, w, t)), linear_bias=jnp.asarray(b),
                                                   **{**kw, "weight": jnp.asarray(cw)})
                got = np.asarray(got)
        else:
            args = [torch.tensor(a) for a in (h, w, t)]
            kwt = {**kw, "weight": torch.tensor(cw)}
            if backend == "torch-module":
                got = lt.LinearCrossEntropyLoss(linear_bias=torch.tensor(b), **kwt)(*args)
            else:
                with lossreg.use_kernels(backend == "torch-kernel"):
                    got = lossreg.linear_cross_entropy(*args, linear_bias=torch.tensor(b), **kwt)
            got = got.numpy()
    np.testing.assert_array_equal(np.asarray(got), want)


def test_linear_cross_entropy_finite_weights_with_smoothing_unchanged():
    """The finite case, which the infinite weights' handling must not move: torch's value."""
    h, w, b, t, cw = _head_with_infinite_weight("float64")
    cw[2] = 3.0
    want = F.cross_entropy(F.linear(*map(torch.tensor, (h, w, b))), torch.tensor(t), weight=torch.tensor(cw),
                           label_smoothing=0.2, reduction="none").numpy()
    got = lossreg.linear_cross_entropy(h, w, t, linear_bias=b, weight=cw, label_smoothing=0.2, reduction="none")
    np.testing.assert_allclose(got, want, rtol=1e-12)
