"""lossreg's per-call overhead on torch cross-entropy (issue 13, point 3), interleaved in one process.

For each size, F.cross_entropy, lossreg.cross_entropy (default kernels) and the torch kernel
called directly (lossreg's dispatch left out), on one thread, forward alone and forward+backward
(``loss.backward()`` on an input that requires grad); ratios against F in the same run.
Target: ≤1.3× at 4×5 float32 on the CPU. Then the module forms, forward alone:
lossreg.torch.CrossEntropyLoss() against torch.nn.CrossEntropyLoss() (no target).

    python benchmarks/torch_tiny_ce_overhead.py [--rounds 3] [--budget 1.0]
"""
import argparse
import os

import torch
import torch.nn.functional as F

import lossreg
import lossreg.torch
from lossreg.kernels import torch as kernels
from lossreg.timing import measure

parser = argparse.ArgumentParser()
parser.add_argument("--rounds", type=int, default=3)
parser.add_argument("--budget", type=float, default=1.0)
args = parser.parse_args()
torch.set_num_threads(1)
print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
for n, c in [(4, 5), (256, 1000)]:
    x, y = torch.randn(n, c), torch.randint(0, c, (n,))
    xg = x.clone().requires_grad_()
    losses = {"F": F.cross_entropy, "lossreg": lossreg.cross_entropy, "kernel": kernels.cross_entropy}
    for mode in ("forward", "forward+backward"):
        if mode == "forward":
            calls = {k: (lambda f=f: f(x, y)) for k, f in losses.items()}
        else:
            calls = {k: (lambda f=f: f(xg, y).backward()) for k, f in losses.items()}
        for _ in range(args.rounds):
            med, samples, batch = measure(calls, args.budget)
            print(f"{n}×{c} {mode}: F {med['F'] * 1e6:.2f} µs, lossreg {med['lossreg'] * 1e6:.2f} µs "
                  f"({med['lossreg'] / med['F']:.2f}×), kernel alone {med['kernel'] * 1e6:.2f} µs "
                  f"({med['kernel'] / med['F']:.2f}×)  [{samples}×{batch}]")
    modules = {"torch.nn": torch.nn.CrossEntropyLoss(), "lossreg.torch": lossreg.torch.CrossEntropyLoss()}
    calls = {k: (lambda m=m: m(x, y)) for k, m in modules.items()}
    for _ in range(args.rounds):
        med, samples, batch = measure(calls, args.budget)
        print(f"{n}×{c} modules, forward: torch.nn {med['torch.nn'] * 1e6:.2f} µs, lossreg.torch "
              f"{med['lossreg.torch'] * 1e6:.2f} µs ({med['lossreg.torch'] / med['torch.nn']:.2f}×)  [{samples}×{batch}]")
