"""Train a small MLP on scikit-learn's digits under torch.compile, with lossreg's criterion and torch.nn's.

The model, criterion included, is compiled with ``fullgraph=True``: lossreg's module traces without
a graph break.

Both runs start from the same seed and see the same mini-batches; the script checks that the two
loss curves agree step by step and exits non-zero otherwise. The criterion is weighted,
label-smoothed cross-entropy, as a module: ``lossreg.torch.CrossEntropyLoss(weight=..., label_smoothing=0.1)``
against ``torch.nn.CrossEntropyLoss(weight=..., label_smoothing=0.1)``.

    python examples/torch_digits.py            # 300 steps, inductor; writes examples/img/torch_digits.png
    python examples/torch_digits.py --small    # 15 steps on part of the data (CI)
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from common import arguments, check_and_plot, digits

import lossreg.torch

BATCH = 128


class Classifier(torch.nn.Module):
    def __init__(self, criterion: torch.nn.Module) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
        self.criterion = criterion  # a submodule: its weight buffer moves and is saved with the model

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.criterion(self.net(x), y)


def train(make_criterion, data, steps: int, backend: str) -> tuple[list[float], float]:
    x_train, y_train, x_test, y_test = (torch.from_numpy(a) for a in data)
    weight = torch.linspace(0.5, 1.5, 10)  # class weights: "mean" divides by the summed weights
    torch.manual_seed(0)
    model = Classifier(make_criterion(weight=weight, label_smoothing=0.1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    compiled = torch.compile(model, backend=backend, fullgraph=True)  # no graph break, loss included
    order = np.random.default_rng(0)
    batches: list[np.ndarray] = []
    curve = []
    for _ in range(steps):
        if not batches:
            batches = list(np.array_split(order.permutation(len(x_train)), max(1, len(x_train) // BATCH)))
        index = torch.from_numpy(batches.pop())
        loss = compiled(x_train[index], y_train[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        curve.append(loss.item())
    with torch.no_grad():
        accuracy = (model.net(x_test).argmax(1) == y_test).float().mean().item()
    return curve, accuracy


def main() -> int:
    args = arguments(__doc__.splitlines()[0], steps=300, small_steps=15)
    data = digits(small=args.small)
    backend = "aot_eager" if args.small else "inductor"  # CI: no C++ compile, same traced graphs
    ours, acc_ours = train(lossreg.torch.CrossEntropyLoss, data, args.steps, backend)
    theirs, acc_theirs = train(torch.nn.CrossEntropyLoss, data, args.steps, backend)
    print(f"torch.compile backend {backend}; test accuracy: lossreg {acc_ours:.3f}, torch.nn {acc_theirs:.3f}")
    return check_and_plot({"lossreg.torch.CrossEntropyLoss": ours, "torch.nn.CrossEntropyLoss": theirs},
                          f"digits, torch.compile(fullgraph, {backend}): weighted, smoothed CE", args.out / "torch_digits.png")


if __name__ == "__main__":
    sys.exit(main())
