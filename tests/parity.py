"""Randomized comparison against torch.nn: the harness the parity tests share.

``check_parity`` runs a lossreg loss and its torch reference on the same float64 inputs and
compares values and the gradients of ``sum(loss)`` with respect to every floating input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

import lossreg

RTOL, ATOL = 1e-6, 1e-9


def _tensor(x: Any, grad: bool) -> torch.Tensor:
    t = torch.from_numpy(np.array(x))
    return t.requires_grad_(True) if grad and t.is_floating_point() else t


def check_parity(
    loss: str,
    reference: Callable[..., torch.Tensor],
    inputs: dict[str, np.ndarray],
    options: dict[str, Any] | None = None,
    *,
    grads: bool = True,
    torch_options: dict[str, Any] | None = None,
    numpy: bool = True,
) -> None:
    """Assert lossreg's ``loss`` equals ``reference`` on torch float64 tensors, gradients included.

    With ``numpy=True`` the NumPy result must equal torch's value too. Array options are NumPy
    arrays and are converted for each library.
    """
    options = options or {}
    fn = lossreg.spec(loss).function  # the portable definition: kernels are checked elsewhere
    ours_in = {k: _tensor(v, grads) for k, v in inputs.items()}
    ref_in = {k: _tensor(v, grads) for k, v in inputs.items()}
    conv = {k: torch.from_numpy(np.array(v)) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    ref_opts = {**conv, **(torch_options or {})}
    want = reference(*ref_in.values(), **ref_opts)
    got = fn(*ours_in.values(), **conv)
    context = f"{loss} with options {options} on shapes {[np.shape(v) for v in inputs.values()]}"
    assert got.dtype == want.dtype, context
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg=context)
    if grads:
        leaves = [k for k, t in ref_in.items() if t.requires_grad]
        if leaves:
            g_want = torch.autograd.grad(want.sum(), [ref_in[k] for k in leaves], allow_unused=True)
            g_got = torch.autograd.grad(got.sum(), [ours_in[k] for k in leaves], allow_unused=True)
            for k, a, b in zip(leaves, g_got, g_want):
                a = np.zeros(np.shape(inputs[k])) if a is None else a.numpy()
                b = np.zeros(np.shape(inputs[k])) if b is None else b.numpy()
                np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=f"gradient of {k}: {context}")
    if numpy:
        np_opts = {k: np.array(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
        got_np = fn(*(np.array(v) for v in inputs.values()), **np_opts)
        np.testing.assert_allclose(np.asarray(got_np), want.detach().numpy(), rtol=RTOL, atol=ATOL,
                                   err_msg=f"numpy: {context}")
