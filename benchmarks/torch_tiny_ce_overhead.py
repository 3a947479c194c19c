"""lossreg's per-call overhead on torch cross-entropy (issue 13, point 3), interleaved in one process.

For each size, F.cross_entropy, lossreg.cross_entropy (default kernels) and the torch kernel
called directly (lossreg's dispatch left out), on one thread; ratios against F in the same run.
Target: ≤1.3× at 4×5 float32 on the CPU.

    python benchmarks/torch_tiny_ce_overhead.py [--rounds 3] [--budget 1.0]
"""
import argparse

import torch
import torch.nn.functional as F

import lossreg
from lossreg.kernels import torch as kernels
from lossreg.timing import measure

parser = argparse.ArgumentParser()
parser.add_argument("--rounds", type=int, default=3)
parser.add_argument("--budget", type=float, default=1.0)
args = parser.parse_args()
torch.set_num_threads(1)
for n, c in [(4, 5), (256, 1000)]:
    x, y = torch.randn(n, c), torch.randint(0, c, (n,))
    calls = {"F": lambda: F.cross_entropy(x, y), "lossreg": lambda: lossreg.cross_entropy(x, y),
             "kernel": lambda: kernels.cross_entropy(x, y)}
    for _ in range(args.rounds):
        med, samples, batch = measure(calls, args.budget)
        print(f"{n}×{c}: F {med['F'] * 1e6:.2f} µs, lossreg {med['lossreg'] * 1e6:.2f} µs "
              f"({med['lossreg'] / med['F']:.2f}×), kernel alone {med['kernel'] * 1e6:.2f} µs "
              f"({med['kernel'] / med['F']:.2f}×)  [{samples}×{batch}]")
