"""What the example scripts share: scikit-learn's bundled digits, the curve check and the plot.

The digits (1797 8×8 images, 10 classes) ship inside scikit-learn: nothing is downloaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RTOL, ATOL = 1e-4, 1e-5  # float32 training: the two curves may differ in the last bits, never more


def arguments(description: str, steps: int, small_steps: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--small", action="store_true", help=f"{small_steps} steps on part of the data (CI)")
    parser.add_argument("--steps", type=int, default=None, help=f"training steps (default {steps})")
    parser.add_argument("--out", type=Path, default=HERE / "img", help="folder for the PNG (default examples/img)")
    args = parser.parse_args()
    args.steps = args.steps or (small_steps if args.small else steps)
    return args


def digits(small: bool = False, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardized float32 features and int64 labels: ``(x_train, y_train, x_test, y_test)``."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order].astype(np.float32), y[order].astype(np.int64)
    if small:
        x, y = x[:400], y[:400]
    split = int(0.8 * len(x))
    mean, std = x[:split].mean(0), x[:split].std(0) + 1.0
    x = (x - mean) / std
    return x[:split], y[:split], x[split:], y[split:]


def check_and_plot(curves: dict[str, list[float]], title: str, path: Path) -> int:
    """Compare the two curves step by step, plot them; the exit status: 0 if they agree."""
    (name_a, a), (name_b, b) = curves.items()
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    worst = float(np.max(np.abs(a - b) / (ATOL + RTOL * np.abs(b)))) if len(a) == len(b) else np.inf
    agree = len(a) == len(b) and bool(np.allclose(a, b, rtol=RTOL, atol=ATOL))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    ax.plot(a, label=name_a, linewidth=2.5, alpha=0.6)
    ax.plot(b, label=name_b, linestyle="--", linewidth=1.2, color="black")
    ax.set(xlabel="training step", ylabel="loss", title=title, yscale="log")
    ax.legend()
    ax.text(0.02, 0.04, f"largest difference: {np.max(np.abs(a - b)):.2g}" if len(a) == len(b) else "lengths differ",
            transform=ax.transAxes, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    print(f"{len(a)} steps; {name_a} {a[0]:.5f} -> {a[-1]:.5f}; {name_b} {b[0]:.5f} -> {b[-1]:.5f}; "
          f"worst step {worst:.3g} of the tolerance (rtol {RTOL}, atol {ATOL}); plot: {path}")
    if not agree:
        print("FAIL: the two loss curves differ", file=sys.stderr)
        return 1
    return 0
