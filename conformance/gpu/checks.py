"""Checks on a CUDA machine that the conformance matrix does not make: mixed libraries and devices
raise lossreg errors, results stay on the inputs' device, and kernels agree with the portable path
on larger random inputs than the cases hold. Prints one line per check; exits 1 if any failed.

    python3 conformance/gpu/checks.py       (run.py runs it)
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

import lossreg
from lossreg.errors import LossTypeError, LossValueError

RESULTS: list[tuple[str, bool, str]] = []
# torch's own ctc_loss takes CPU targets and lengths beside CUDA log-probabilities (cuDNN's form).
TAKES_CPU_INDICES = {"ctc_loss"}
# Kernels that hand CUDA calls to the portable path on purpose, and why.
CPU_ONLY = {("multi_margin_loss", "torch"): "torch's CUDA kernel signals a class out of range with a device-side "
            "assert, which ends the process; the portable path gives NaN (or lossreg's error under "
            "value_checks('sync'))"}


def check(name: str) -> Callable[[Callable[[], str | None]], None]:
    def run(test: Callable[[], str | None]) -> None:
        try:
            note = test() or ""
            RESULTS.append((name, True, note))
        except Exception as exc:  # report and go on: every check gets its line
            RESULTS.append((name, False, f"{type(exc).__name__}: {exc}".splitlines()[0][:300]))
            traceback.print_exc(file=sys.stderr)

    return run


def raises(error: type[Exception], function: Callable[[], Any], *words: str) -> str:
    try:
        got = function()
    except error as exc:
        missing = [w for w in words if w not in str(exc)]
        if missing:
            raise AssertionError(f"the message lacks {missing}: {exc}") from None
        return str(exc)
    raise AssertionError(f"no {error.__name__}; returned {type(got).__module__}.{type(got).__name__}")


def main() -> int:
    import cupy as cp
    import torch

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 10)), rng.normal(size=(64, 10))
    labels = rng.integers(0, 10, size=64)

    @check("cupy input with a torch CUDA target -> LossTypeError naming the loss and both libraries")
    def _() -> str:
        return raises(LossTypeError, lambda: lossreg.mse_loss(cp.asarray(x), torch.asarray(y, device="cuda")),
                      "mse_loss", "cupy", "torch")

    @check("torch CUDA input with a cupy target (cross_entropy) -> LossTypeError")
    def _() -> str:
        return raises(LossTypeError, lambda: lossreg.cross_entropy(torch.asarray(x, device="cuda"), cp.asarray(labels)),
                      "cross_entropy", "target")

    @check("cupy weight option with torch CUDA arrays -> LossTypeError naming 'weight'")
    def _() -> str:
        return raises(LossTypeError, lambda: lossreg.cross_entropy(torch.asarray(x, device="cuda"),
                                                                   torch.asarray(labels, device="cuda"),
                                                                   weight=cp.ones(10)), "weight")

    @check("cupy with numpy -> LossTypeError")
    def _() -> str:
        return raises(LossTypeError, lambda: lossreg.l1_loss(cp.asarray(x), y), "l1_loss")

    for name in lossreg.names():
        spec = lossreg.spec(name)
        if len(spec.inputs) < 2:
            continue
        if name in TAKES_CPU_INDICES:
            @check(f"{name}: torch CUDA input, CPU {', '.join(spec.inputs[1:])} -> torch's answer, kernels on and off")
            def _(name: str = name) -> str:
                arrays = _plain_inputs(name)
                mixed = [torch.asarray(a, device="cuda" if i == 0 else "cpu") for i, a in enumerate(arrays)]
                want = float(getattr(lossreg, name)(*(torch.asarray(a, device="cuda") for a in arrays)))
                for kernels in (True, False):
                    with lossreg.use_kernels(kernels):
                        got = getattr(lossreg, name)(*mixed)
                    assert got.device.type == "cuda" and abs(float(got) - want) <= 1e-6 * (1 + abs(want)), \
                        f"kernels={kernels}: {got} != {want}"
                return f"{want:.6g}"
            continue

        @check(f"{name}: torch CUDA input, CPU {spec.inputs[1]} -> LossValueError naming it")
        def _(name: str = name, spec: Any = spec) -> str:
            arrays = _plain_inputs(name)
            tensors = [torch.asarray(a, device="cuda" if i == 0 else "cpu") for i, a in enumerate(arrays)]
            return raises(LossValueError, lambda: getattr(lossreg, name)(*tensors), name, spec.inputs[1], "cpu")

    @check("0-d CPU tensor next to a CUDA tensor (torch accepts it) -> LossValueError")
    def _() -> str:
        return raises(LossValueError, lambda: lossreg.mse_loss(torch.tensor(1.0), torch.tensor(2.0, device="cuda")),
                      "mse_loss")

    @check("results stay on the inputs' device (torch cuda, cupy)")
    def _() -> str:
        t = lossreg.cross_entropy(torch.asarray(x, device="cuda"), torch.asarray(labels, device="cuda"))
        c = lossreg.cross_entropy(cp.asarray(x), cp.asarray(labels))
        assert t.device.type == "cuda", t.device
        assert isinstance(c, cp.ndarray) and c.device.id == cp.cuda.runtime.getDevice()
        return f"torch {t.device}, cupy device {c.device.id}"

    big = rng.normal(size=(4096, 1000)) * 5
    target = rng.integers(0, 1000, size=4096)
    for library in ("torch", "cupy"):
        for dtype in ("float16", "bfloat16", "float32", "float64"):
            if library == "cupy" and dtype == "bfloat16":
                continue

            @check(f"cross_entropy 4096x1000 {library} {dtype}: kernels on = off = float64 NumPy")
            def _(library: str = library, dtype: str = dtype) -> str:
                if library == "torch":
                    xs = torch.asarray(big, device="cuda").to(getattr(torch, dtype))
                    ts = torch.asarray(target, device="cuda")
                    back = lambda v: v.double().cpu().numpy()  # noqa: E731
                    held = xs.double().cpu().numpy()
                else:
                    xs, ts = cp.asarray(big.astype(dtype)), cp.asarray(target)
                    back = lambda v: cp.asnumpy(v).astype("float64")  # noqa: E731
                    held = cp.asnumpy(xs).astype("float64")
                want = lossreg.cross_entropy(held, target, reduction="none", label_smoothing=0.1)
                notes = []
                for kernels in (True, False):
                    with lossreg.use_kernels(kernels):
                        got = back(lossreg.cross_entropy(xs, ts, reduction="none", label_smoothing=0.1))
                    eps = float(np.finfo(np.float16).eps) if dtype == "float16" else \
                        2.0**-7 if dtype == "bfloat16" else float(np.finfo(dtype).eps)
                    err = float(np.max(np.abs(got - want) / (np.abs(want) + np.abs(want).max())))
                    assert err <= 32 * eps, f"kernels={kernels}: error {err:.3g} = {err / eps:.3g} eps"
                    notes.append(f"kernels={kernels}: {err / eps:.2f} eps")
                return ", ".join(notes)

    @check("cross_entropy on CUDA: the Triton kernel (no logits-sized temporary) from its size gate up, "
           "torch's operator below it")
    def _() -> str:
        from lossreg.kernels import torch as torch_kernels

        notes = []
        for dtype, gate in ((torch.bfloat16, torch_kernels.TRITON_CE_MIN_HALF),
                            (torch.float32, torch_kernels.TRITON_CE_MIN_FLOAT32)):
            for n, expect_triton in ((gate // 4096, True), (gate // 4096 - 1, False)):
                logits = torch.randn(n, 4096, device="cuda", dtype=dtype)
                labels_ = torch.randint(0, 4096, (n,), device="cuda")
                with torch.no_grad():
                    lossreg.cross_entropy(logits, labels_)  # compiled and loaded outside the measure
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                    before = torch.cuda.memory_allocated()
                    lossreg.cross_entropy(logits, labels_)
                    torch.cuda.synchronize()
                extra = (torch.cuda.max_memory_allocated() - before) / (logits.numel() * logits.element_size())
                assert (extra < 0.1) is expect_triton, f"{dtype} {n}x4096: extra peak {extra:.2f} of the logits"
                notes.append(f"{str(dtype)[6:]} {n}x4096: {extra:.3f}")
                del logits, labels_
        return "extra peak / logits: " + ", ".join(notes)

    @check("cupy mse_loss, l1_loss, binary_cross_entropy over 2^22 + 5 elements (the row-sum path) = float64 NumPy")
    def _() -> str:
        from lossreg.kernels import cupy as cupy_kernels

        a, b = rng.random(2**22 + 5), rng.random(2**22 + 5)
        notes = []
        for loss in ("mse_loss", "l1_loss", "binary_cross_entropy"):
            want = float(getattr(lossreg, loss)(a, b))
            for reduction, scale in (("mean", 1), ("sum", a.size)):
                got = cupy_kernels.KERNELS[loss](cp.asarray(a, cp.float32), cp.asarray(b, cp.float32), reduction=reduction)
                assert got is not NotImplemented, cupy_kernels.FAILURES.get(loss)
                err = abs(float(got) / scale - want) / abs(want)
                assert err <= 1e-5, f"{loss} {reduction}: relative error {err:.2e}"
                notes.append(f"{loss} {reduction} {err:.1e}")
        bad = cp.asarray(a, cp.float32)
        bad[12345] = 1.5
        assert np.isnan(float(cupy_kernels.binary_cross_entropy(bad, cp.asarray(b, cp.float32)))), \
            "an input above 1 must poison BCE's sum"
        return "; ".join(notes)

    # A kernel that fails declines, and the portable path answers in its place: the matrix would
    # pass either way, so each GPU kernel must be seen to answer a plain call itself.
    for (loss, backend), kernels in sorted(lossreg.registry().kernels.items()):
        if backend not in ("cupy", "torch"):
            continue
        for kernel in kernels:
            @check(f"{loss}: the {backend} kernel '{kernel.name}' answers a plain float32 CUDA call itself")
            def _(loss: str = loss, backend: str = backend, kernel: Any = kernel) -> str:
                arrays = [a.astype("float32") if a.dtype.kind == "f" else a for a in _plain_inputs(loss)]
                if backend == "torch":
                    args = [torch.asarray(a, device="cuda") for a in arrays]
                    with lossreg.use_kernels(False):
                        want = float(getattr(lossreg, loss)(*args).double().sum())
                else:
                    args = [cp.asarray(a) for a in arrays]
                    want = float(getattr(lossreg, loss)(*arrays).sum())
                got = kernel.function(*args)
                note = ""
                if got is NotImplemented:  # a kernel that must read values declines unless allowed to
                    with lossreg.value_checks("sync"):
                        got = kernel.function(*args)
                    note = " (answers under value_checks('sync') only: it reads values)"
                if got is NotImplemented and (loss, backend) in CPU_ONLY:
                    return f"declines on CUDA, by design: {CPU_ONLY[loss, backend]}"
                if got is NotImplemented:
                    from lossreg.kernels import cupy as cupy_kernels

                    why = cupy_kernels.FAILURES.get(loss, "no error recorded") if backend == "cupy" else "-"
                    raise AssertionError(f"declined (NotImplemented); last error: {why}")
                value = float(got.double().sum()) if backend == "torch" else float(got.sum())
                assert abs(value - want) <= 1e-4 * (1 + abs(want)), f"{value} != {want}"
                return f"{value:.6g}{note}"

    failed = [r for r in RESULTS if not r[1]]
    for name, ok, note in RESULTS:
        print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f"  [{note}]" if note else ""))
    print(f"{len(RESULTS) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def _plain_inputs(name: str) -> list[np.ndarray]:
    from lossreg import conformance
    from lossreg.registry import registry

    spec = lossreg.spec(name)
    for case in conformance.cases_for(spec, registry().cases):
        if not case.raises and all(n in case.inputs for n in spec.inputs) and not case.options:
            return [conformance._data(case.inputs[n]) for n in spec.inputs]
    for case in conformance.cases_for(spec, registry().cases):
        if not case.raises and all(n in case.inputs for n in spec.inputs):
            return [conformance._data(case.inputs[n]) for n in spec.inputs]
    raise AssertionError(f"{name} has no case to take inputs from")


if __name__ == "__main__":
    sys.exit(main())
