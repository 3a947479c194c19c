"""Kernels agree with the portable definitions, are chosen for their library, and can be switched off.

The conformance suite runs every kernel against every case (``lossreg conformance --backend
torch``); these tests add random inputs, gradients, and the selection machinery. No timings.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import lossreg

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]


def _inputs(loss: str, shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> tuple[list, dict]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype) * 3
    if loss in ("cross_entropy", "nll_loss"):
        c = shape[1] if len(shape) > 1 else shape[0]
        target = torch.randint(0, c, shape[:1] + shape[2:] if len(shape) > 1 else (), generator=g)
        if loss == "nll_loss":
            x = torch.log_softmax(x.double(), dim=1 if len(shape) > 1 else 0).to(dtype)
        return [x, target], {}
    if loss == "binary_cross_entropy":
        p = torch.rand(shape, generator=g, dtype=torch.float64).clamp(0.01, 0.99).to(dtype)
        return [p, torch.rand(shape, generator=g, dtype=torch.float64).to(dtype)], {}
    return [x, torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)], {}


CASES = [
    ("mse_loss", {}), ("mse_loss", {"reduction": "sum"}), ("mse_loss", {"reduction": "none"}),
    ("l1_loss", {}), ("l1_loss", {"reduction": "none"}),
    ("smooth_l1_loss", {}), ("smooth_l1_loss", {"beta": 0.5, "reduction": "none"}), ("smooth_l1_loss", {"beta": 0.0}),
    ("huber_loss", {"reduction": "sum"}), ("huber_loss", {"delta": 2.5, "reduction": "none"}),
    ("binary_cross_entropy", {}), ("binary_cross_entropy", {"reduction": "sum"}),
    ("binary_cross_entropy_with_logits", {}), ("binary_cross_entropy_with_logits", {"reduction": "none"}),
    ("nll_loss", {}), ("nll_loss", {"reduction": "none", "ignore_index": 1}),
    ("cross_entropy", {}), ("cross_entropy", {"reduction": "sum", "label_smoothing": 0.1}),
    ("cross_entropy", {"ignore_index": 2, "label_smoothing": 0.3}), ("cross_entropy", {"reduction": "none"}),
]


def _run(loss: str, arrays: list, options: dict, kernels: bool) -> tuple:
    leaf = arrays[0].detach().clone().requires_grad_(True)
    with lossreg.use_kernels(kernels):
        value = getattr(lossreg, loss)(leaf, *arrays[1:], **options)
    value.sum().backward()
    return value.detach(), leaf.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("shape", [(7, 5), (3, 4, 6)])
@pytest.mark.parametrize(("loss", "options"), CASES)
def test_kernel_matches_portable(loss: str, options: dict, shape: tuple, dtype: torch.dtype) -> None:
    arrays, _ = _inputs(loss, shape, dtype, seed=hash((loss, shape)) % 1000)
    kernel = lossreg.registry().kernel_for(loss, arrays[0])
    assert kernel is not None
    assert kernel(arrays[0], *arrays[1:], **options) is not NotImplemented
    value, grad = _run(loss, arrays, options, kernels=True)
    want, want_grad = _run(loss, arrays, options, kernels=False)
    assert value.dtype == want.dtype == dtype and value.shape == want.shape
    tol = {torch.float64: 1e-10, torch.float32: 1e-5, torch.bfloat16: 2e-2}[dtype]
    torch.testing.assert_close(value.double(), want.double(), rtol=tol, atol=tol)
    torch.testing.assert_close(grad.double(), want_grad.double(), rtol=tol, atol=tol)


@pytest.mark.parametrize("weighted", [False, True])
def test_weighted_class_losses(weighted: bool) -> None:
    x, t = torch.randn(9, 4, dtype=torch.float64), torch.randint(0, 4, (9,))
    w = torch.rand(4, dtype=torch.float64) + 0.5 if weighted else None
    for loss, opts in [("cross_entropy", {"label_smoothing": 0.2}), ("nll_loss", {})]:
        got = getattr(lossreg, loss)(x, t, weight=w, **opts)
        with lossreg.use_kernels(False):
            want = getattr(lossreg, loss)(x, t, weight=w, **opts)
        torch.testing.assert_close(got, want)


def test_kernels_are_chosen_and_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    reg = lossreg.reload()  # a loss keeps the kernels it chose per registry: a fresh one chooses anew
    x, y = torch.randn(3, 2), torch.randn(3, 2)
    kernel = reg.kernel_for("mse_loss", x)
    assert kernel is not None and reg.kernel_for("mse_loss", x.numpy()) not in (None, kernel)
    assert reg.kernel_for("gaussian_nll_loss", x) is None

    def spy(*a, **k):
        calls.append(1)
        return kernel(*a, **k)

    monkeypatch.setitem(reg._kernel_cache, ("mse_loss", torch.Tensor), spy)
    lossreg.mse_loss(x, y)
    assert calls == [1]
    with lossreg.use_kernels(False):
        lossreg.mse_loss(x, y)
    assert calls == [1]
    monkeypatch.setenv("LOSSREG_KERNELS", "0")
    lossreg.mse_loss(x, y)  # the environment is read at import and at reload, not at every call
    assert calls == [1, 1]
    reg = lossreg.reload()
    try:
        reg._kernel_cache[("mse_loss", torch.Tensor)] = spy
        lossreg.mse_loss(x, y)
        assert calls == [1, 1]
        with lossreg.use_kernels(True):  # the argument wins over the environment
            lossreg.mse_loss(x, y)
        assert calls == [1, 1, 1]
    finally:
        monkeypatch.delenv("LOSSREG_KERNELS")
        lossreg.reload()


@pytest.mark.parametrize(("loss", "arrays", "options"), [
    ("mse_loss", lambda: [torch.randn(3, 2), torch.randn(3, 1)], {}),  # torch would broadcast
    ("mse_loss", lambda: [torch.randn(3), np.zeros(3, dtype=np.float32)], {}),  # two libraries
    ("mse_loss", lambda: [torch.randn(3), torch.arange(3)], {}),  # integer target
    ("l1_loss", lambda: [torch.randn(3), torch.randn(3)], {"reduction": "avg"}),
    ("binary_cross_entropy", lambda: [torch.tensor([0.5, 1.5]), torch.tensor([1.0, 0.0])], {}),
    ("binary_cross_entropy", lambda: [torch.tensor([0.5, float("nan")]), torch.tensor([1.0, 0.0])], {}),
    ("binary_cross_entropy", lambda: [torch.rand(2, 3), torch.rand(2, 3)], {"weight": torch.rand(4)}),
    ("cross_entropy", lambda: [torch.randn(3, 4), torch.tensor([0, 1, 4])], {}),
    ("cross_entropy", lambda: [torch.randn(3, 4), torch.tensor([0, 1, 2])], {"label_smoothing": 1.5}),
    ("cross_entropy", lambda: [torch.randn(3, 4), torch.tensor([0, 1, 2])], {"weight": torch.rand(3)}),
    ("cross_entropy", lambda: [torch.randn(3, 4), torch.tensor([0.0, 1.0, 2.0])], {}),
    ("nll_loss", lambda: [torch.randn(3, 4), torch.tensor([[0, 1, 2]])], {}),
])
def test_bad_input_raises_the_lossreg_error(loss: str, arrays, options: dict) -> None:
    args = arrays()
    with lossreg.use_kernels(False), pytest.raises(lossreg.LossError) as portable:
        getattr(lossreg, loss)(*args, **options)
    with pytest.raises(type(portable.value)) as kernel:
        getattr(lossreg, loss)(*args, **options)
    assert str(kernel.value) == str(portable.value)


def test_mixed_dtypes_fall_back_to_the_portable_promotion() -> None:
    x, y = torch.randn(3), torch.randn(3, dtype=torch.float64)
    assert lossreg.registry().kernel_for("mse_loss", x)(x, y) is NotImplemented
    assert lossreg.mse_loss(x, y).dtype == torch.float64


def test_document_shaped_targets() -> None:
    """The source document's (N, 1) class labels go through the kernel too."""
    x, t = torch.randn(4, 3), torch.tensor([[0], [2], [1], [2]])
    kernel = lossreg.registry().kernel_for("cross_entropy", x)
    assert kernel(x, t) is not NotImplemented
    with lossreg.use_kernels(False):
        want = lossreg.cross_entropy(x, t)
    torch.testing.assert_close(lossreg.cross_entropy(x, t), want)


def _ctc_inputs(layout: str, dtype: torch.dtype, seed: int) -> list:
    """Log-probabilities (T=12, N=4, C=6) with targets padded, concatenated or unbatched.

    The lengths include an empty target and a target too long to align (an infinite loss).
    """
    g = torch.Generator().manual_seed(seed)
    lp = torch.log_softmax(torch.randn(12, 4, 6, generator=g, dtype=torch.float64), -1).to(dtype)
    targets = torch.randint(1, 6, (4, 7), generator=g)
    il, tl = torch.tensor([12, 9, 5, 12]), torch.tensor([7, 0, 4, 3])
    if layout == "unbatched":
        return [lp[:, 0], targets[0, :5], il[0], torch.tensor(5)]
    if layout == "concatenated":
        return [lp, torch.cat([targets[i, :n] for i, n in enumerate(tl.tolist())]), il, tl]
    return [lp, targets, il, tl]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("layout", ["padded", "concatenated", "unbatched"])
@pytest.mark.parametrize("options", [{}, {"reduction": "sum", "zero_infinity": True},
                                     {"reduction": "none", "zero_infinity": True}, {"reduction": "none"}])
def test_ctc_kernel_matches_portable(options: dict, layout: str, dtype: torch.dtype) -> None:
    """The CTC kernel is torch's CTC in float64: the portable values, and its gradients where finite.

    Without ``zero_infinity`` an impossible alignment has an infinite loss, whose gradient torch
    makes NaN and the portable definition finite (README, "Errors and edge cases").
    """
    arrays = _ctc_inputs(layout, dtype, seed=len(options))
    assert lossreg.registry().kernel_for("ctc_loss", arrays[0])(*arrays, **options) is not NotImplemented
    value, grad = _run("ctc_loss", arrays, options, kernels=True)
    want, want_grad = _run("ctc_loss", arrays, options, kernels=False)
    assert value.dtype == want.dtype == dtype and value.shape == want.shape
    tol = {torch.float64: 1e-10, torch.float32: 1e-5, torch.bfloat16: 2e-2}[dtype]
    torch.testing.assert_close(value.double(), want.double(), rtol=tol, atol=tol)
    if torch.isfinite(value).all():
        torch.testing.assert_close(grad.double(), want_grad.double(), rtol=tol, atol=tol)
    else:
        assert grad.isnan().any() and want_grad.isfinite().all()


@pytest.mark.parametrize("change", [
    {"targets": lambda t: t.index_fill(1, torch.tensor([2]), 0)},  # a label equal to blank
    {"targets": lambda t: t.index_fill(1, torch.tensor([2]), 6)},  # a label out of range
    {"input_lengths": lambda x: x + 1},  # longer than T
    {"target_lengths": lambda x: x.masked_fill(x == 7, 8)},  # longer than the padded targets
    {"target_lengths": lambda x: x[:3]},  # one length short
    {"targets": lambda t: t.double()},  # float labels
])
def test_ctc_kernel_leaves_errors_to_the_portable_path(change: dict) -> None:
    lp, targets, il, tl = _ctc_inputs("padded", torch.float64, seed=0)
    args = dict(targets=targets, input_lengths=il, target_lengths=tl)
    args.update({k: f(args[k]) for k, f in change.items()})
    with lossreg.use_kernels(False), pytest.raises(lossreg.LossError) as portable:
        lossreg.ctc_loss(lp, *args.values())
    assert lossreg.registry().kernel_for("ctc_loss", lp)(lp, *args.values()) is NotImplemented
    with pytest.raises(type(portable.value)) as kernel:
        lossreg.ctc_loss(lp, *args.values())
    assert str(kernel.value) == str(portable.value)


TRITON_CHECK = textwrap.dedent("""
    import torch, lossreg
    from lossreg.kernels import triton_ce
    torch.manual_seed(0)
    for dtype, tol in [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)]:
        for n, c in [(6, 5), (5, 300), (3, 9000)]:  # 9000: more than one block of a row
            for opts in [{}, {"reduction": "sum"}, {"reduction": "none"}, {"ignore_index": 1},
                         {"label_smoothing": 0.2}, {"weight": True, "label_smoothing": 0.1, "ignore_index": 0},
                         {"weight": True, "reduction": "none"}]:
                opts = dict(opts)
                if opts.pop("weight", False):
                    opts["weight"] = (torch.rand(c) + 0.5).to(dtype)
                x = (torch.randn(n, c) * 3).to(dtype)
                t = torch.randint(0, c, (n,))
                results = []
                for use in (True, False):
                    leaf = x.clone().requires_grad_(True)
                    if use:
                        value = triton_ce.cross_entropy(leaf, t, **opts)
                        assert value is not NotImplemented
                    else:
                        with lossreg.use_kernels(False):
                            value = lossreg.cross_entropy(leaf, t, **opts)
                    (value * torch.arange(1, value.numel() + 1).reshape(value.shape)).sum().backward()
                    results.append((value.detach().double(), leaf.grad.double()))
                (v, g), (w, h) = results
                torch.testing.assert_close(v, w, rtol=tol, atol=tol)
                torch.testing.assert_close(g, h, rtol=tol, atol=tol)
                with torch.no_grad():  # the forward-only launch writes no gradient
                    torch.testing.assert_close(triton_ce.cross_entropy(x, t, **opts).double(), w, rtol=tol, atol=tol)
    # A row whose first block of 8192 logits is all -inf (masked classes): finite, as torch's.
    x = torch.randn(2, 9000)
    x[1, :8192] = -float("inf")
    t = torch.tensor([3, 8500])
    for opts in [{}, {"reduction": "none"}]:
        got = triton_ce.cross_entropy(x, t, **opts)
        torch.testing.assert_close(got, torch.nn.functional.cross_entropy(x, t, **opts), rtol=1e-5, atol=1e-5)
    # create_graph=True (a gradient penalty): torch's second derivative, not an error.
    x0, t = torch.randn(4, 5), torch.tensor([0, 1, -100, 3])
    for opts in [{}, {"reduction": "none", "label_smoothing": 0.1}, {"weight": torch.rand(5) + 0.5}]:
        penalties = []
        for f in (triton_ce.cross_entropy, torch.nn.functional.cross_entropy):
            x = x0.clone().requires_grad_(True)
            g, = torch.autograd.grad(f(x, t, **opts).sum(), x, create_graph=True)
            penalties.append(torch.autograd.grad(g.pow(2).sum(), x)[0])
        torch.testing.assert_close(*penalties, rtol=1e-5, atol=1e-6)
    # torch.func's transforms and forward-mode dual tensors are left to torch's operator.
    import torch.autograd.forward_ad as fwAD
    declined = []
    torch.func.grad(lambda x: declined.append(triton_ce.cross_entropy(x, t)) or x.sum())(x0)
    torch.func.vmap(lambda x: declined.append(triton_ce.cross_entropy(x, t)) or x.sum())(x0[None])
    with fwAD.dual_level():
        declined.append(triton_ce.cross_entropy(fwAD.make_dual(x0, torch.ones_like(x0)), t))
    assert declined == [NotImplemented] * 3, declined
    print("ok")
""")


def test_triton_cross_entropy_in_interpreter() -> None:
    """The Triton kernel, run by Triton's CPU interpreter, against the portable definition."""
    pytest.importorskip("triton", reason="triton is not installed (pip install triton)")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", TRITON_CHECK], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


TRITON_BCE_CHECK = textwrap.dedent("""
    import math, torch, lossreg
    import torch.nn.functional as F
    from lossreg.kernels import triton_bce
    torch.manual_seed(0)
    for dtype, tol in [(torch.float32, 1e-5), (torch.float16, 2e-3), (torch.bfloat16, 2e-2)]:
        for shape in [(5,), (3, 7), (2, 4097)]:  # 2 x 4097: more than one block
            x = torch.rand(shape).to(dtype)
            x.view(-1)[:3] = torch.tensor([0.0, 1.0, 0.5])  # log 0 clamped to -100; the gradient at 0 and 1
            t = torch.rand(shape).to(dtype)
            for reduction in ("mean", "sum", "none"):
                for weighted in (False, True):
                    w = (torch.rand(shape[-1]) + 0.5).to(dtype) if weighted else None
                    # torch's in float32, as lossreg's torch kernel computes half precision.
                    leaf, ref = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
                    got = triton_bce.binary_cross_entropy(leaf, t, w, reduction)
                    want = F.binary_cross_entropy(ref.float(), t.float(), None if w is None else w.float(),
                                                  reduction=reduction).to(dtype)
                    assert got.dtype == dtype and got.shape == want.shape, (got.dtype, got.shape)
                    scale = torch.arange(1, got.numel() + 1, dtype=torch.float64).reshape(got.shape)
                    (got.double() * scale).sum().backward()
                    (want.double() * scale).sum().backward()
                    torch.testing.assert_close(got.detach(), want.detach(), rtol=tol, atol=tol)
                    torch.testing.assert_close(leaf.grad, ref.grad, rtol=tol, atol=tol)
                    with torch.no_grad():
                        torch.testing.assert_close(triton_bce.binary_cross_entropy(x, t, w, reduction),
                                                   want.detach(), rtol=tol, atol=tol)
    # Out of [0, 1] (or NaN), input or target: NaN where torch's CUDA kernel would assert.
    for bad in ("input", "target", "nan"):
        x, t = torch.rand(9), torch.rand(9)
        if bad == "input":
            x[4] = 1.5
        elif bad == "target":
            t[4] = -0.5
        else:
            x[4] = math.nan
        leaf = x.clone().requires_grad_(True)
        none = triton_bce.binary_cross_entropy(leaf, t, None, "none")
        assert torch.isnan(none[4]) and not torch.isnan(torch.cat([none[:4], none[5:]])).any(), none
        none.sum().backward()
        assert torch.isnan(leaf.grad[4]) and not torch.isnan(torch.cat([leaf.grad[:4], leaf.grad[5:]])).any()
        for reduction in ("mean", "sum"):
            assert torch.isnan(triton_bce.binary_cross_entropy(x, t, None, reduction))
    # Declined: float64, empty, a target that needs a gradient.
    assert triton_bce.binary_cross_entropy(torch.rand(3, dtype=torch.float64), torch.rand(3, dtype=torch.float64),
                                           None, "mean") is NotImplemented
    assert triton_bce.binary_cross_entropy(torch.rand(0), torch.rand(0), None, "mean") is NotImplemented
    assert triton_bce.binary_cross_entropy(torch.rand(3), torch.rand(3, requires_grad=True), None,
                                           "mean") is NotImplemented
    # create_graph=True (a gradient penalty): torch's second derivative, not a silent zero.
    x0, t = torch.randn(4, 5, dtype=torch.float64).float(), torch.rand(4, 5).round()
    for reduction in ("mean", "sum", "none"):
        penalties = []
        for f in (lambda p: triton_bce.binary_cross_entropy(p, t, None, reduction),
                  lambda p: F.binary_cross_entropy(p, t, reduction=reduction)):
            x = x0.clone().requires_grad_(True)
            g, = torch.autograd.grad(f(torch.sigmoid(x)).sum(), x, create_graph=True)
            penalties.append(torch.autograd.grad(g.pow(2).sum(), x)[0])
        torch.testing.assert_close(*penalties, rtol=1e-5, atol=1e-6)
    # torch.func's transforms and forward-mode dual tensors are left to torch's operator.
    import torch.autograd.forward_ad as fwAD
    p0, declined = torch.rand(4, 5), []
    torch.func.grad(lambda p: declined.append(triton_bce.binary_cross_entropy(p, t, None, "mean")) or p.sum())(p0)
    torch.func.vmap(lambda p: declined.append(triton_bce.binary_cross_entropy(p, t[0], None, "mean")) or p.sum())(p0)
    with fwAD.dual_level():
        declined.append(triton_bce.binary_cross_entropy(fwAD.make_dual(p0, torch.ones_like(p0)), t, None, "mean"))
    assert declined == [NotImplemented] * 3, declined
    print("ok")
""")


def test_triton_binary_cross_entropy_in_interpreter() -> None:
    """The Triton BCE (CUDA's default path), run by Triton's CPU interpreter, against torch in
    float64: values and gradients at 0 and 1 too, and NaN where torch's CUDA kernel asserts."""
    pytest.importorskip("triton", reason="triton is not installed (pip install triton)")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", TRITON_BCE_CHECK], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


TRITON_LCE_CHECK = textwrap.dedent("""
    import itertools, torch
    from lossreg.kernels.triton_lce import rows
    torch.manual_seed(0)
    for (b, v), ls, zl, cap, grad, dtype in itertools.product(
            [(5, 37), (3, 9000)], [0.0, 0.1], [0.0, 1e-3], [None, 3.0], [False, True], [torch.float32, torch.bfloat16]):
        z = (torch.randn(b, v) * 4).to(dtype)
        t = torch.randint(0, v, (b,))
        t[0] = -100
        act = t != -100
        coef = torch.rand(b) * act if grad else None
        # The definition: soft cap, then (1 - ls) (lse - z_t) + ls (lse - mean z) + zl lse², for active tokens.
        zd = z.double().requires_grad_(True)
        zz = cap * torch.tanh(zd / cap) if cap else zd
        lse = torch.logsumexp(zz, 1)
        want = (1 - ls) * (lse - zz.gather(1, t.clamp(0)[:, None])[:, 0]) + ls * (lse - zz.mean(1)) + zl * lse**2
        want = torch.where(act, want, 0.0)
        if grad:
            (want * coef.double()).sum().backward()
        got_z = z.clone()
        losses, got_lse = rows(got_z, t, act, coef, ls, zl, cap)
        tol = 1e-4 if dtype == torch.float32 else 5e-2
        torch.testing.assert_close(losses.double(), want.detach(), rtol=tol, atol=tol)
        torch.testing.assert_close(got_lse.double(), lse.detach(), rtol=tol, atol=tol)
        if grad:  # written over the logits
            torch.testing.assert_close(got_z.double(), zd.grad, rtol=tol, atol=tol * float(zd.grad.abs().max()))
    # A row whose first block of 8192 logits is all -inf (classes masked by a -inf bias).
    z = torch.randn(2, 9000)
    z[1, :8192] = -float("inf")
    t = torch.tensor([3, 8500])
    losses, got_lse = rows(z.clone(), t, t >= 0, None, 0.0, 0.0, None)
    torch.testing.assert_close(got_lse, torch.logsumexp(z, 1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(losses, torch.nn.functional.cross_entropy(z, t, reduction="none"), rtol=1e-5, atol=1e-5)
    print("ok")
""")


def test_triton_linear_cross_entropy_rows_in_interpreter() -> None:
    """The Triton row kernel of linear_cross_entropy (losses, log-sum-exp and the gradient written
    over the logits, with smoothing, z-loss and soft cap), in Triton's CPU interpreter."""
    pytest.importorskip("triton", reason="triton is not installed (pip install triton)")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", TRITON_LCE_CHECK], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


def test_triton_kernel_declines_on_cpu() -> None:
    pytest.importorskip("triton", reason="triton is not installed (pip install triton)")
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("the interpreter accepts CPU tensors on purpose")
    from lossreg.kernels import _triton_ce  # the registered function, on or off by its switch

    assert _triton_ce(torch.randn(3, 4), torch.tensor([0, 1, 2])) is NotImplemented


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", [{}, {"reduction": "sum"}, {"reduction": "none"}, {"ignore_index": 1},
                                     {"label_smoothing": 0.2}, {"weighted": True, "label_smoothing": 0.1},
                                     {"weighted": True, "reduction": "none", "ignore_index": 0}])
def test_numpy_kernels_match_portable(options: dict, dtype: type) -> None:
    rng = np.random.default_rng(0)
    options = dict(options)
    x = (rng.standard_normal((9, 6)) * 4).astype(dtype)
    t = rng.integers(0, 6, 9)
    if options.pop("weighted", False):
        options["weight"] = (rng.random(6) + 0.5).astype(dtype)
    p, y = (rng.random((9, 6)).astype(dtype) for _ in range(2))
    p[0, :2] = (0.0, 1.0)  # the clamped logs
    bce_options = {k: v for k, v in options.items() if k in ("reduction", "weight")}
    pointwise = {k: v for k, v in options.items() if k == "reduction"}
    for loss, args, opts in [("cross_entropy", (x, t), options), ("cross_entropy", (x, t[:, None]), options),
                             ("binary_cross_entropy", (p, y), bce_options),
                             ("mse_loss", (x, p * 4), pointwise), ("l1_loss", (x, p * 4), pointwise)]:
        kernel = lossreg.registry().kernel_for(loss, x)
        got = kernel(*args, **opts)
        assert got is not NotImplemented
        with lossreg.use_kernels(False):
            want = getattr(lossreg, loss)(*args, **opts)
        assert type(got) is type(want) and got.dtype == want.dtype and np.shape(got) == np.shape(want)
        np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 1e-13)


@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.1}, {"weight": np.array([1.0, 2.0, 3.0])}])
@pytest.mark.parametrize("target", [[1, 0, 2], [0, -100, 2], [1, 0, -100]])
def test_numpy_cross_entropy_kernel_on_infinite_logits(target: list, options: dict) -> None:
    """A +inf logit, or a row of -inf, makes the loss NaN as in torch, unless the target is ignored."""
    x = np.array([[np.inf, 0.0, 1.0], [0.0, 1.0, 2.0], [-np.inf, -np.inf, -np.inf]])
    t = np.array(target)
    with np.errstate(all="ignore"):
        got = lossreg.registry().kernel_for("cross_entropy", x)(x, t, reduction="none", **options)
    torch_options = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    want = torch.nn.functional.cross_entropy(torch.from_numpy(x), torch.from_numpy(t), reduction="none",
                                             **torch_options)
    np.testing.assert_array_equal(got, want.numpy())


@pytest.mark.parametrize(("loss", "args", "options"), [
    ("cross_entropy", lambda: (np.zeros((3, 4)), np.array([0, 1, 4])), {}),
    ("cross_entropy", lambda: (np.zeros((3, 4)), np.array([0, -1, 2])), {}),
    ("cross_entropy", lambda: (np.zeros((3, 4)), np.array([0, -1, 2], dtype=np.int32)), {"ignore_index": 1}),
    ("cross_entropy", lambda: (np.zeros((3, 4)), np.array([0, 1, 2])), {"weight": np.ones(3)}),
    ("cross_entropy", lambda: (np.zeros((3, 4)), np.array([0, 1, 2])), {"reduction": "avg"}),
    ("binary_cross_entropy", lambda: (np.array([0.5, 1.5]), np.array([1.0, 0.0])), {}),
    ("binary_cross_entropy", lambda: (np.array([0.5, np.nan]), np.array([1.0, 0.0])), {}),
    ("binary_cross_entropy", lambda: (np.full((2, 3), 0.5), np.ones((2, 3))), {"weight": np.ones(4)}),
    ("mse_loss", lambda: (np.zeros((3, 2)), np.zeros((3, 1))), {}),  # NumPy would broadcast
    ("l1_loss", lambda: (np.zeros(3), np.arange(3)), {}),  # an integer target
    ("l1_loss", lambda: (np.zeros(3), np.zeros(3)), {"reduction": "avg"}),
])
def test_numpy_kernels_leave_errors_to_the_portable_path(loss: str, args, options: dict) -> None:
    kernel = lossreg.registry().kernel_for(loss, np.zeros(1))
    assert kernel(*args(), **options) is NotImplemented
    with pytest.raises(lossreg.LossError):
        getattr(lossreg, loss)(*args(), **options)


def test_torch_kernels_do_not_import_the_triton_module() -> None:
    """No import cycle: kernels/torch.py loads the Triton kernel on first CUDA use, not at import,
    so importing either module first never meets the other half-initialised."""
    import subprocess
    import sys

    code = ("import sys, lossreg.kernels.torch as k; assert 'lossreg.kernels.triton_ce' not in sys.modules; "
            "assert k.KERNELS['cross_entropy'] is k.cross_entropy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_each_triton_switch_names_a_kernel_that_exists() -> None:
    """The switch → (module, function) table that ``_triton`` imports from on CUDA: read from the
    modules' source, since importing them needs Triton and the lookup runs only with a GPU."""
    import ast
    import importlib.util

    from lossreg.kernels import torch as torch_kernels

    for switch, (module, function) in torch_kernels.TRITON_KERNELS.items():
        spec = importlib.util.find_spec(f"lossreg.kernels.{module}")
        assert spec is not None and spec.origin, (switch, module)
        with open(spec.origin, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        assert function in defined, (switch, module, function)


def test_a_keyword_only_a_kernel_takes_is_refused_as_with_kernels_off() -> None:
    """A kernel may have knobs of its own (linear_cross_entropy's ``recompute``, for its benchmark);
    a call through the loss reaches only the loss's options, kernels on or off."""
    import types

    seen = []

    def knobbed(input, target, /, *, reduction="mean", fast=False):
        seen.append(fast)
        return lossreg.mse_loss.portable(input, target, reduction=reduction)

    plugin = types.SimpleNamespace(lossreg_kernels=lossreg.hookimpl(lambda: [lossreg.Kernel("mse_loss", "torch", knobbed)]))
    lossreg.register_plugin(plugin, name="knobbed-kernel")
    try:
        x, y = torch.randn(3, 2), torch.randn(3, 2)
        assert lossreg.mse_loss(x, y) == torch.nn.functional.mse_loss(x, y) and seen == [False]
        for kernels in (True, False):
            with lossreg.use_kernels(kernels), pytest.raises(lossreg.LossTypeError, match=r"mse_loss.*'fast'.*unknown"):
                lossreg.mse_loss(x, y, fast=True)
        assert seen == [False]
    finally:
        lossreg.unregister_plugin("knobbed-kernel")

    h, w, t = torch.randn(4, 8, requires_grad=True), torch.randn(10, 8), torch.tensor([0, 3, 9, 1])
    arrays = [(h, w, t)]
    if importlib.util.find_spec("jax") is not None:
        import jax.numpy as jnp

        arrays.append(tuple(jnp.asarray(a.detach().numpy()) for a in (h, w, t)))
    for args in arrays:
        for kernels in (True, False):
            with lossreg.use_kernels(kernels), pytest.raises(lossreg.LossTypeError, match="'recompute'"):
                lossreg.linear_cross_entropy(*args, recompute=True)
