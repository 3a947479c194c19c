"""User-style hunt: the exact points where a loss is not smooth, or where its terms tie or vanish.

Beyond tests/test_user_hunt_extremes.py (which covers the kinks of Huber, the margin losses and
the embedding losses on every backend): the edges found by constructing inputs *at* a clamp, a
tie or a vanishing term of each loss, with torch.nn.functional's value and gradient as the
reference, computed in each test. "Portable" below is the definition every library but torch
(and torch with ``lossreg.use_kernels(False)``) runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lossreg

jax = pytest.importorskip("jax")
jnp = jax.numpy
xps = pytest.importorskip("array_api_strict")


def _portable(name: str, args: list[np.ndarray], library: str, **options):
    """lossreg's ``name`` of NumPy ``args`` converted to ``library``, as a float64 NumPy array,
    through the portable definition."""
    if library == "torch, kernels off":
        with lossreg.use_kernels(False):
            return getattr(lossreg, name)(*map(torch.from_numpy, args), **options).double().numpy()
    convert = {"jax": jnp.asarray, "array-api-strict": xps.asarray}[library]
    return np.asarray(getattr(lossreg, name)(*map(convert, args), **options), dtype="float64")


PORTABLE = ["torch, kernels off", "jax", "array-api-strict"]


# --- binary_cross_entropy: the loss of a confident right prediction ------------------------------------


@pytest.mark.parametrize("library", PORTABLE)
def test_bce_of_a_confident_right_prediction_keeps_its_small_loss(library: str) -> None:
    """At y = 1 the loss is -log x, about 1 - x as x nears 1: each log keeps its own coefficient,
    as in torch's (y - 1) log(1 - x) - y log x, so that log(1 - x) (-11.5 at x = 0.99999) is not
    added and subtracted again, which left its float32 rounding as the loss (1.049e-5 for 1.0e-5)."""
    x = np.array([0.9999, 0.99999, 0.999999, 1e-4, 1e-5, 1e-6], dtype="float32")
    y = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0], dtype="float32")
    want = F.binary_cross_entropy(torch.from_numpy(x), torch.from_numpy(y), reduction="none").double().numpy()
    got = _portable("binary_cross_entropy", [x, y], library, reduction="none")
    np.testing.assert_allclose(got, want, rtol=2e-7)


# --- binary_cross_entropy_with_logits: an infinite logit with pos_weight ----------------------------


def _bce_logits_target_gradient(library: str, x: np.ndarray, y: np.ndarray, pos_weight: np.ndarray) -> np.ndarray:
    """The gradient of the summed loss with respect to the target, in float64."""
    if library == "jax":
        with jax.enable_x64(True):
            grad = jax.grad(lambda t: lossreg.binary_cross_entropy_with_logits(
                jnp.asarray(x), t, pos_weight=jnp.asarray(pos_weight), reduction="sum"))(jnp.asarray(y))
            return np.asarray(grad)
    target = torch.tensor(y, requires_grad=True)
    fn = F if library == "torch.nn.functional" else lossreg
    with lossreg.use_kernels(library != "torch, kernels off"):
        loss = fn.binary_cross_entropy_with_logits(torch.tensor(x), target, pos_weight=torch.tensor(pos_weight),
                                                   reduction="sum")
    return torch.autograd.grad(loss, target)[0].numpy()


@pytest.mark.parametrize("library", ["torch", "torch, kernels off", "jax"])
def test_bce_with_logits_target_gradient_at_an_infinite_logit_with_pos_weight_is_torchs(library: str) -> None:
    """At x = +∞ the loss is (1 - y) x, 0 for y = 1, and its target gradient is -x = -∞, as
    torch's; with a pos_weight it was NaN off torch's kernel (the positive term's weight reached
    the target through a product with the mask of negative logits, ∞ · 0)."""
    x = np.array([np.inf, np.inf, -np.inf, 2.0])
    y = np.array([1.0, 0.0, 0.0, 1.0])
    for pos_weight in (np.full(4, 3.0), np.full(4, 0.0)):
        want = _bce_logits_target_gradient("torch.nn.functional", x, y, pos_weight)
        assert want[0] == want[1] == -np.inf
        np.testing.assert_allclose(_bce_logits_target_gradient(library, x, y, pos_weight), want, rtol=1e-12)


@pytest.mark.parametrize("library", PORTABLE)
def test_bce_with_logits_keeps_a_confident_right_answers_small_loss_where_torchs_cancels(library: str) -> None:
    """The README's "Numerically safer than torch": at y = 0 the loss is log1p(e^x) (4.5e-5 at
    x = -10, 3.1e-7 at -15), which torch's (1 - y) x + log(1 + e^-x) loses in float32 (0.8 %
    off, then 0); the portable definition keeps it to float32's precision. Torch tensors, through
    the kernel, get torch's own numbers."""
    x = np.array([-10.0, -15.0, -20.0], dtype="float32")
    y = np.zeros(3, dtype="float32")
    exact = np.log1p(np.exp(x.astype("float64")))
    theirs = F.binary_cross_entropy_with_logits(torch.from_numpy(x), torch.from_numpy(y), reduction="none").numpy()
    assert abs(theirs[0] / exact[0] - 1) > 5e-3 and theirs[1] == theirs[2] == 0
    np.testing.assert_allclose(_portable("binary_cross_entropy_with_logits", [x, y], library, reduction="none"), exact,
                               rtol=1e-6)
    ours = lossreg.binary_cross_entropy_with_logits(torch.from_numpy(x), torch.from_numpy(y), reduction="none")
    np.testing.assert_array_equal(ours.numpy(), theirs)


# --- the Triton BCE (CUDA's default path), in Triton's CPU interpreter ------------------------------

TRITON_SMALL_PROBABILITIES = """
import torch, torch.nn.functional as F
from lossreg.kernels import triton_bce
x = torch.tensor([1e-8, 3e-8, 1e-6, 1e-4, 0.999, 0.5, 0.0, 1.0])
t = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.25, 0.0, 0.0])
got = triton_bce.binary_cross_entropy(x, t, None, "none")
torch.testing.assert_close(got, F.binary_cross_entropy(x, t, reduction="none"), rtol=1e-6, atol=0.0)
print("ok")
"""


def test_triton_bce_of_a_small_probability_against_0_is_torchs() -> None:
    """-log(1 - x) ≈ x for a small x (a confident right negative): the kernel takes log1p(-x),
    as torch's CUDA kernel does; log(1 - x) in float32 gave 0 for x = 1e-8 and 1.3 % off at 1e-6."""
    pytest.importorskip("triton", reason="triton is not installed (pip install triton)")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", TRITON_SMALL_PROBABILITIES], env=env,
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
