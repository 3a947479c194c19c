"""The source document's worked examples, through every form, on NumPy, array-api-strict and torch.

The document (shared/seeds/000_294737a8fbb1e7a8.txt) prints tensor(1.) for MSELoss and
tensor(2.) for L1Loss; its BCE examples, on (4,) and (4, 1) shapes, give 0.16425 in torch.
"""

from __future__ import annotations

import numpy as np
import pytest

import lossreg

EXAMPLES = [
    ("mse_loss", "MSELoss", [1.0, 2.0, 3.0], [2.0, 3.0, 4.0], (3,), 1.0),
    ("l1_loss", "L1Loss", [1.0, 2.0, 3.0], [3.0, 4.0, 5.0], (3,), 2.0),
    ("binary_cross_entropy", "BCELoss", [0.1, 0.2, 0.8, 0.9], [0.0, 0.0, 1.0, 1.0], (4,), 0.16425),
    ("binary_cross_entropy", "BCELoss", [0.1, 0.2, 0.8, 0.9], [0.0, 0.0, 1.0, 1.0], (4, 1), 0.16425),
]


@pytest.mark.parametrize("functional, cls, pred, target, shape, printed", EXAMPLES)
@pytest.mark.parametrize("form", ["class", "get", "functional"])
def test_document_examples(backend, device, functional, cls, pred, target, shape, printed, form):
    make = lambda v: backend.asarray(np.reshape(v, shape), "float32", device)  # noqa: E731
    loss = {"class": getattr(lossreg, cls)(), "get": lossreg.get(cls), "functional": getattr(lossreg, functional)}[form]
    value = loss(make(pred), make(target))
    assert value.shape == () and str(value.dtype).endswith("float32")
    assert backend.to_numpy(value) == pytest.approx(printed, abs=5e-6)


def test_cross_entropy_matches_torch_for_n_and_n1_targets(backend, device):
    torch = pytest.importorskip("torch")
    logits = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))  # the document's N, C = 3, 5
    y = torch.tensor([1, 0, 4], dtype=torch.long)
    expected = torch.nn.CrossEntropyLoss()(logits, y).item()
    x = backend.asarray(logits.numpy(), "float32", device)
    for labels in (y.numpy(), y.numpy().reshape(3, 1)):
        value = lossreg.CrossEntropyLoss()(x, backend.asarray(labels, "int64", device))
        assert backend.to_numpy(value) == pytest.approx(expected, rel=1e-6)


def test_cross_entropy_survives_logits_of_1e4(xp, backend, device):
    x = backend.asarray(np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]]), "float32", device)
    t = backend.asarray(np.array([0, 0]), "int64", device)
    np.testing.assert_allclose(backend.to_numpy(lossreg.cross_entropy(x, t, reduction="none")), [0.0, 2e4])
