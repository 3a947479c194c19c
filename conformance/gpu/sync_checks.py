"""On CUDA: lossreg never synchronises with the host in its default mode, and a training step that
uses it can be captured in a CUDA graph. Prints one line per check; exits 1 if any failed.

    python3 conformance/gpu/sync_checks.py      (run.py runs it)
    DEVICE=cpu python3 conformance/gpu/sync_checks.py   (a dry run of what needs no GPU)

- every registered loss (the built-in ones and the losses of the two plugin packages under
  ``plugins/``), forward and backward, on CUDA tensors under
  ``torch.cuda.set_sync_debug_mode("error")``, which raises on any host synchronisation;
- invalid values (a class index out of range, a probability of 1.5) in the default mode give NaN
  without a device-side assert and without a synchronisation; ``value_checks("sync")`` raises
  lossreg's error instead;
- a training step (an MLP, ``lossreg.cross_entropy``, SGD) under the same debug mode;
- that step captured in a CUDA graph and replayed on a new batch: the parameters equal those of
  the same step taken eagerly with ``torch.nn.functional.cross_entropy``;
- ``torch.compile`` (inductor, so Triton on CUDA) of ``lossreg.cross_entropy`` forward and
  backward equals the compiled ``F.cross_entropy``; the time ratio is printed, not judged.

With ``DEVICE=cpu`` the same losses, step and compiled comparison run on the CPU, and the checks
that only CUDA can make (sync debug mode, graph capture) print "not run" with the reason.
"""

from __future__ import annotations

import copy
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from checks import RESULTS, _plain_inputs, check, raises

import lossreg

ROOT = Path(__file__).resolve().parents[2]
DEVICE = os.environ.get("DEVICE", "cuda")
CUDA = DEVICE == "cuda"


class _NoSync:
    """``torch.cuda.set_sync_debug_mode("error")`` within the block, on CUDA; nothing on the CPU."""

    def __enter__(self) -> None:
        if CUDA:
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")

    def __exit__(self, *exc: Any) -> None:
        if CUDA:
            torch.cuda.set_sync_debug_mode(0)


def _register_plugins() -> list[str]:
    """The plugin packages of this checkout, registered in-process (unless installed already)."""
    added = []
    for source in sorted((ROOT / "plugins").glob("*/src")):
        sys.path.insert(0, str(source))
        for package in source.iterdir():
            if (package / "__init__.py").is_file():
                module = __import__(package.name)
                losses = [f.spec.name for f in getattr(module, "LOSSES", [])]
                if losses and not any(n in lossreg.registry().specs for n in losses):
                    lossreg.register_plugin(module, name=package.name)
                    added.append(package.name)
    return added


def _inputs(name: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """A case's inputs on the device (floats in float32), and those that are differentiated."""
    spec = lossreg.spec(name)
    arrays, leaves = [], []
    for key, data in zip(spec.inputs, _plain_inputs(name)):
        t = torch.asarray(np.asarray(data), device=DEVICE)
        if t.is_floating_point():
            t = t.float()
            if key in spec.differentiable:
                t.requires_grad_(True)
                leaves.append(t)
        arrays.append(t)
    return arrays, leaves


def main() -> int:
    if CUDA and not torch.cuda.is_available():
        print("NOT RUN: torch sees no CUDA device (set DEVICE=cpu for a dry run)")
        return 2
    plugins = _register_plugins()
    print(f"# device {DEVICE}; plugins registered here: {', '.join(plugins) or 'none'}; "
          f"{len(lossreg.names())} losses")

    for name in lossreg.names():
        @check(f"{name}: forward and backward on {DEVICE}" + (" with sync debug mode 'error'" if CUDA else ""))
        def _(name: str = name) -> str:
            arrays, leaves = _inputs(name)  # copied to the device before the no-sync block
            with _NoSync():
                out = getattr(lossreg, name)(*arrays)
                if leaves:
                    torch.autograd.grad(out.sum(), leaves, allow_unused=True)
            assert out.device.type == DEVICE, out.device
            return f"value {float(out.detach().sum()):.6g}"

    x = torch.randn(64, 10, device=DEVICE)
    bad_target = torch.randint(0, 10, (64,), device=DEVICE)
    bad_target[5] = 12
    probabilities = torch.rand(64, device=DEVICE)
    probabilities[3] = 1.5
    invalid = {"cross_entropy": (x, bad_target), "nll_loss": (x.log_softmax(1), bad_target),
               "binary_cross_entropy": (probabilities, torch.rand(64, device=DEVICE)),
               "multi_margin_loss": (x, bad_target)}
    for name, arrays in invalid.items():
        @check(f"{name}: an invalid value gives NaN in the default mode (no sync, no device assert); "
               "value_checks('sync') raises")
        def _(name: str = name, arrays: tuple = arrays) -> str:
            f = getattr(lossreg, name)
            if CUDA:
                with _NoSync():
                    out = f(*arrays, reduction="none")
                nan = out.isnan().cpu()
            else:  # on the CPU the default mode reads values: poison is asked for
                with lossreg.value_checks("poison"):
                    nan = f(*arrays, reduction="none").isnan()
            assert int(nan.sum()) == 1, f"{int(nan.sum())} NaN"
            with lossreg.value_checks("sync"):
                return raises(lossreg.LossValueError, lambda: f(*arrays), name)

    for name in ("mse_loss", "binary_cross_entropy", "cross_entropy", "soft_margin_loss"):
        @check(f"{name}: torch.compile(fullgraph=True) in bfloat16 on {DEVICE} = eager (the kernels' autocast "
               "probe traced by Dynamo)")
        def _(name: str = name) -> str:
            torch._dynamo.reset()
            arrays = [torch.asarray(a, device=DEVICE) for a in _plain_inputs(name)]
            arrays = [a.to(torch.bfloat16) if a.is_floating_point() else a for a in arrays]
            f = getattr(lossreg, name)
            got = torch.compile(f, fullgraph=True, backend="aot_eager")(*arrays)
            torch.testing.assert_close(got, f(*arrays))
            return f"{float(got):.4f}"

    def model_and_batch(seed: int) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
        torch.manual_seed(seed)
        model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)).to(DEVICE)
        return model, torch.randn(256, 32, device=DEVICE), torch.randint(0, 10, (256,), device=DEVICE)

    @check("a training step with lossreg.cross_entropy" + (" under sync debug mode 'error'" if CUDA else ""))
    def _() -> str:
        model, xs, ys = model_and_batch(0)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        with _NoSync():
            for _ in range(3):
                opt.zero_grad(set_to_none=True)
                loss = lossreg.cross_entropy(model(xs), ys)
                loss.backward()
                opt.step()
        return f"loss {float(loss):.4f}"

    @check("a training step captured in a CUDA graph, replayed on a new batch = the same step eagerly with F")
    def _() -> str:
        if not CUDA:
            return "not run: CUDA graphs need a CUDA device (CPU dry run)"
        model, static_x, static_y = model_and_batch(1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up, as torch's CUDA graph recipe asks
            for _ in range(3):
                opt.zero_grad(set_to_none=True)
                lossreg.cross_entropy(model(static_x), static_y).backward()
                opt.step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            static_loss = lossreg.cross_entropy(model(static_x), static_y)
            static_loss.backward()
            opt.step()
        reference = copy.deepcopy(model)
        ref_opt = torch.optim.SGD(reference.parameters(), lr=0.1)
        new_x, new_y = torch.randn_like(static_x), torch.randint(0, 10, static_y.shape, device=DEVICE)
        static_x.copy_(new_x)
        static_y.copy_(new_y)
        graph.replay()
        ref_opt.zero_grad(set_to_none=True)
        want = F.cross_entropy(reference(new_x), new_y)
        want.backward()
        ref_opt.step()
        torch.testing.assert_close(static_loss, want)
        for p, q in zip(model.parameters(), reference.parameters()):
            torch.testing.assert_close(p, q)
        return f"loss {float(static_loss):.4f} = F's {float(want):.4f}"

    @check(f"torch.compile(inductor) lossreg.cross_entropy = compiled F.cross_entropy on {DEVICE}, fwd+bwd")
    def _() -> str:
        n, c = (8192, 32768) if CUDA else (512, 1000)
        logits = torch.randn(n, c, device=DEVICE, requires_grad=True)
        target = torch.randint(0, c, (n,), device=DEVICE)
        ours = torch.compile(lambda a, b: lossreg.cross_entropy(a, b), fullgraph=True)
        theirs = torch.compile(lambda a, b: F.cross_entropy(a, b), fullgraph=True)
        got, want = ours(logits, target), theirs(logits, target)
        g_got, = torch.autograd.grad(got, logits)
        g_want, = torch.autograd.grad(want, logits)
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(g_got, g_want)
        times = {"lossreg": [], "F": []}
        for _ in range(20):  # interleaved
            for label, fn in (("lossreg", ours), ("F", theirs)):
                if CUDA:
                    torch.cuda.synchronize()
                start = time.perf_counter()
                torch.autograd.grad(fn(logits, target), logits)
                if CUDA:
                    torch.cuda.synchronize()
                times[label].append(time.perf_counter() - start)
        ours_ms, theirs_ms = (1e3 * float(np.median(times[k])) for k in ("lossreg", "F"))
        return f"{n}x{c} fwd+bwd median: lossreg {ours_ms:.3f} ms, F {theirs_ms:.3f} ms, ratio {ours_ms / theirs_ms:.2f}"

    @check(f"torch.compile(fullgraph=True, dynamic=True) linear_cross_entropy on {DEVICE}, bfloat16: one graph for "
           "two batch sizes, value and gradients = eager")
    def _() -> str:
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        compiled = torch.compile(lambda h, w, t: lossreg.linear_cross_entropy(h, w, t), fullgraph=True, dynamic=True)
        w = (torch.randn(5000, 256, device=DEVICE) / 16).to(torch.bfloat16).requires_grad_(True)
        notes = []
        for n in (700, 1100):
            h = torch.randn(n, 256, device=DEVICE).to(torch.bfloat16).requires_grad_(True)
            t = torch.randint(0, 5000, (n,), device=DEVICE)
            t[::9] = -100
            results = []
            for fn in (compiled, lambda h, w, t: lossreg.linear_cross_entropy(h, w, t)):
                value = fn(h, w, t)
                results.append((value.float(), *(g.float() for g in torch.autograd.grad(value, (h, w)))))
            for got, want in zip(*results):
                torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-3)
            notes.append(f"N={n}: {float(results[0][0]):.4f}")
        graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
        assert graphs == 1, f"{graphs} graphs"
        return ", ".join(notes) + f"; {graphs} graph"

    failed = [r for r in RESULTS if not r[1]]
    skipped = [r for r in RESULTS if r[1] and r[2].startswith("not run")]
    for name, ok, note in RESULTS:
        status = "FAIL" if not ok else "skip" if note.startswith("not run") else "ok  "
        print(f"{status} {name}" + (f"  [{note}]" if note else ""))
    print(f"{len(RESULTS) - len(failed) - len(skipped)} passed, {len(failed)} failed, {len(skipped)} not run")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
