"""CTC on torch CPU tensors: native ``F.ctc_loss`` against lossreg's kernel and its portable path.

    python benchmarks/bench_ctc.py --out benchmarks/results/ctc_cpu

The kernel is torch's CTC after lossreg's checks, in the input's dtype for a forward pass and
in float64 when differentiated (torch's float32 gradient can be 10 % off); native is torch's
float32 CTC on the same float32 tensors. The portable path is the alpha recursion written
against the Array API, one batched step per frame. Same sampling as ``lossreg bench``:
interleaved rounds, medians.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from typing import Any

import torch
import torch.nn.functional as F

import lossreg
from lossreg.timing import cpu, load, measure, us, versions

SIZES = {"small": (50, 8, 20, 10), "medium": (100, 16, 30, 30), "large": (400, 32, 80, 100)}  # T, N, C, S


def _inputs(t: int, n: int, c: int, s: int) -> tuple[Any, ...]:
    g = torch.Generator().manual_seed(0)
    log_probs = torch.randn(t, n, c, generator=g).log_softmax(-1)
    targets = torch.randint(1, c, (n, s), generator=g)
    return log_probs, targets, torch.full((n,), t), torch.randint(s // 2, s + 1, (n,), generator=g)


def _calls(mode: str, log_probs: Any, *rest: Any) -> dict[str, Any]:
    def portable(*a: Any) -> Any:
        with lossreg.use_kernels(False):
            return lossreg.ctc_loss(*a)

    fns = {"native": F.ctc_loss, "kernel": lossreg.ctc_loss, "portable": portable}
    if mode == "forward":
        return {k: (lambda f=f: f(log_probs, *rest)) for k, f in fns.items()}
    leaf = log_probs.clone().requires_grad_(True)

    def backward(f: Any) -> Any:
        def run() -> Any:
            leaf.grad = None
            f(leaf, *rest).backward()
            return leaf.grad
        return run

    return {k: backward(f) for k, f in fns.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--size", default=",".join(SIZES))
    parser.add_argument("--budget", type=float, default=2.0, help="seconds of sampling per row")
    parser.add_argument("--out", default=None, metavar="STEM")
    args = parser.parse_args()
    context = {"command": " ".join(["python", *sys.argv]),
               "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "cpu": cpu(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
               "load_start": load(), "versions": versions()}
    rows = []
    for size in args.size.split(","):
        shape = SIZES[size]
        arrays = _inputs(*shape)
        for mode in ("forward", "forward+backward"):
            med, samples, batch = measure(_calls(mode, *arrays), args.budget, min_samples=3)
            row = {"size": size, "T,N,C,S": shape, "mode": mode, "samples": samples,
                   **{f"{k}_us": v * 1e6 for k, v in med.items()},
                   "kernel_ratio": med["kernel"] / med["native"], "portable_ratio": med["portable"] / med["native"]}
            rows.append(row)
            print(f"{size} {shape} {mode}: native {us(row['native_us'])} µs, kernel {us(row['kernel_us'])} µs "
                  f"({row['kernel_ratio']:.2f}×), portable {us(row['portable_us'])} µs ({row['portable_ratio']:.1f}×)")
    context["load_end"] = load()
    if args.out:
        with open(args.out + ".json", "w", encoding="utf-8") as f:
            json.dump({**context, "rows": rows}, f, indent=1)
        lines = ["# CTC on torch CPU tensors", "", f"Command: `{context['command']}`  ", f"Date: {context['date']}  ",
                 f"CPU: {context['cpu']} ({context['cores']} cores, torch threads {context['torch_threads']}); "
                 f"load average at start {context['load_start']}, at end {context['load_end']}  ",
                 "Versions: " + ", ".join(f"{k} {v}" for k, v in context["versions"].items()), "",
                 __doc__.split("\n\n", 2)[2].strip(), "",
                 "| size | T, N, C, S | mode | native µs | lossreg µs | ratio | portable µs | ratio |",
                 "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['size']} | {', '.join(map(str, r['T,N,C,S']))} | {r['mode']} | {us(r['native_us'])} | "
                  f"{us(r['kernel_us'])} | {r['kernel_ratio']:.2f} | {us(r['portable_us'])} | "
                  f"{r['portable_ratio']:.1f} |" for r in rows]
        with open(args.out + ".md", "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        print(f"wrote {args.out}.json and {args.out}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
