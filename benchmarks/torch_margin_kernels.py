"""The torch kernels of soft_margin_loss, margin_ranking_loss and multilabel_soft_margin_loss
against their portable definitions, both as ratios to ``torch.nn.functional`` in the same run.

    python benchmarks/torch_margin_kernels.py            # writes benchmarks/results/torch_margin_kernels.md

The portable forms select with ``where`` (torch's gradient at the kinks, on every library), which
torch's CPU runs far slower than a plain elementwise operation; the kernels use torch's fused
``softplus``/``logsigmoid``/``clamp_min``. float32, one thread, medians of
``torch.utils.benchmark.Timer.blocked_autorange``; each row checks the kernel's value against the
portable definition's first.
"""

from __future__ import annotations

import datetime
import os
import platform
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer

import lossreg


def _cases(n: int) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    x, y = torch.randn(n, 1000), torch.randint(0, 2, (n, 1000)).float()
    return [("soft_margin_loss", (x, 2 * y - 1), {}),
            ("margin_ranking_loss", (x.reshape(-1), torch.randn(n * 1000), (2 * y - 1).reshape(-1)), {"margin": 0.1}),
            ("multilabel_soft_margin_loss", (x, y), {})]


def _time(fn: Any, arrays: tuple[Any, ...], options: dict[str, Any], backward: bool, kernels: bool) -> float:
    a = [arrays[0].clone().requires_grad_(backward), *arrays[1:]]
    with lossreg.use_kernels(kernels):
        return Timer("fn(*a, **kw).backward()" if backward else "fn(*a, **kw)",
                     globals={"fn": fn, "a": a, "kw": options}).blocked_autorange(min_run_time=0.5).median


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    lines = ["| loss | N × C | pass | native | kernel | portable |", "|---|---|---|---|---|---|"]
    for n in (8, 1000):
        for name, arrays, options in _cases(n):
            with lossreg.use_kernels(True):
                fast = getattr(lossreg, name)(*arrays, **options)
            with lossreg.use_kernels(False):
                torch.testing.assert_close(fast, getattr(lossreg, name)(*arrays, **options))
            for backward in (False, True):
                native = _time(getattr(F, name), arrays, options, backward, True)
                ours = [_time(getattr(lossreg, name), arrays, options, backward, k) for k in (True, False)]
                lines.append(f"| {name} | {n} × 1000 | {'forward+backward' if backward else 'forward'} | "
                             f"{native * 1e6:.0f} µs | {ours[0] / native:.2f}× | {ours[1] / native:.2f}× |")
                print(lines[-1], flush=True)
    head = (f"# torch kernels of the margin losses against torch.nn.functional\n\n`python benchmarks/torch_margin_kernels.py`"
            f", {datetime.date.today()}, torch {torch.__version__}, {platform.machine()}, 1 thread, "
            f"load {os.getloadavg()[0]:.2f}. Ratios to torch.nn.functional in the same run (lower is faster).\n\n")
    path = os.path.join(os.path.dirname(__file__), "results", "torch_margin_kernels.md")
    with open(path, "w") as f:
        f.write(head + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
