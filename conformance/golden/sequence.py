"""Golden cases for lossreg.losses.sequence (CTC), from torch.nn.functional in float64."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch.nn.functional as F

from generate import golden, raises

REDUCTIONS = ("none", "mean", "sum")
LOSS = "ctc_loss"


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def _log_probs(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return _log_softmax(1.5 * rng.normal(size=shape))


def _concatenate(targets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    return np.concatenate([targets[i, :k] for i, k in enumerate(lengths)] + [np.zeros(0, dtype="int64")])


def _case(id: str, log_probs: np.ndarray, targets: np.ndarray, input_lengths: Any, target_lengths: Any,
          options: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    inputs = {"log_probs": log_probs, "targets": np.asarray(targets, dtype="int64"),
              "input_lengths": np.asarray(input_lengths, dtype="int64"),
              "target_lengths": np.asarray(target_lengths, dtype="int64")}
    kwargs.setdefault("grads", ["log_probs"])
    return golden(LOSS, F.ctc_loss, id, inputs, options, **kwargs)


def _both_layouts(id: str, log_probs: np.ndarray, targets: np.ndarray, input_lengths: Any, target_lengths: Any,
                  options: dict[str, Any] | None = None, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """The case with padded (N, S) targets and with the same targets concatenated."""
    yield _case(f"{id}-padded", log_probs, targets, input_lengths, target_lengths, options, **kwargs)
    yield _case(f"{id}-concatenated", log_probs, _concatenate(targets, np.asarray(target_lengths)), input_lengths,
                target_lengths, options, **kwargs)


def batch_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    # Varying input and target lengths, a repeated label (which needs a blank between), a
    # zero-length target; padding values past a target's length are never read.
    lp = _log_probs(rng, 8, 4, 5)
    # Padding past each length: out of range (7), -1, and blanks.
    valid = np.array([[1, 1, 2, 7], [3, -1, -1, -1], [0, 0, 0, 0], [2, 3, 2, 1]])
    il, tl = [8, 5, 6, 7], [3, 1, 0, 4]
    for reduction, zero_infinity in itertools.product(REDUCTIONS, (False, True)):
        yield from _both_layouts(f"batch-{reduction}-zi{zero_infinity}", lp, valid, il, tl,
                                 {"reduction": reduction, "zero_infinity": zero_infinity})
    yield _case("defaults", lp, valid, il, tl)
    # A blank other than 0: the last class, and one in the middle.
    for blank in (4, 2):
        labels = [c for c in range(5) if c != blank]
        t = rng.choice(labels, size=(4, 4))
        for reduction in REDUCTIONS:
            yield from _both_layouts(f"blank{blank}-{reduction}", lp, t, il, tl, {"blank": blank, "reduction": reduction})
    # Realistic sizes: T = 30, N = 4, C = 6, S = 10.
    lp = _log_probs(rng, 30, 4, 6)
    t = rng.integers(1, 6, size=(4, 10))
    for reduction in REDUCTIONS:
        yield from _both_layouts(f"long-{reduction}", lp, t, [30, 25, 30, 18], [10, 7, 4, 9], {"reduction": reduction})
    # Every label repeated: the tightest alignment needs 2S - 1 frames.
    lp = _log_probs(rng, 5, 2, 3)
    for reduction in REDUCTIONS:
        yield from _both_layouts(f"repeats-tight-{reduction}", lp, np.array([[2, 2, 2], [1, 1, 0]]), [5, 3], [3, 2],
                                 {"reduction": reduction})
    # Uniform log-probabilities: many alphas tie exactly.
    lp = np.full((6, 2, 4), -np.log(4.0))
    for reduction in REDUCTIONS:
        yield from _both_layouts(f"uniform-{reduction}", lp, np.array([[1, 1, 2], [3, 2, 1]]), [6, 6], [3, 2],
                                 {"reduction": reduction})


def unbatched_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    lp = _log_probs(rng, 7, 5)
    for reduction, zero_infinity in itertools.product(REDUCTIONS, (False, True)):
        opts = {"reduction": reduction, "zero_infinity": zero_infinity}
        yield _case(f"unbatched-{reduction}-zi{zero_infinity}", lp, [3, 1, 1, 4], np.array(6), np.array(4), opts)
    for reduction in REDUCTIONS:
        yield _case(f"unbatched-padded-{reduction}", lp, [[3, 1, 4, 2, 2]], np.array(7), np.array(3),
                    {"reduction": reduction})
        yield _case(f"unbatched-lengths-1-{reduction}", lp, [2, 4], np.array([7]), np.array([2]),
                    {"reduction": reduction, "blank": 3})
        yield _case(f"unbatched-empty-target-{reduction}", lp, np.zeros(0, dtype="int64"), np.array(5), np.array(0),
                    {"reduction": reduction})


def edge_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    # Zero-length targets everywhere: (N, 0) padded and (0,) concatenated; mean divides by max(0, 1).
    lp = _log_probs(rng, 5, 3, 4)
    for reduction in REDUCTIONS:
        yield from _both_layouts(f"all-targets-empty-{reduction}", lp, np.zeros((3, 0), dtype="int64"), [5, 2, 0],
                                 [0, 0, 0], {"reduction": reduction})
    # Impossible alignments: too few frames for the repeats, a target longer than T, an empty input.
    lp = _log_probs(rng, 4, 4, 5)
    targets = np.array([[1, 1, 2, 0, 0, 0], [2, 3, 0, 0, 0, 0], [1, 2, 3, 4, 1, 2], [3, 0, 0, 0, 0, 0]])
    il, tl = [3, 0, 4, 2], [3, 2, 6, 1]
    for reduction in REDUCTIONS:
        yield from _both_layouts(f"impossible-zero-infinity-{reduction}", lp, targets, il, tl,
                                 {"reduction": reduction, "zero_infinity": True})
        # torch's gradient of an infinite loss is NaN; the value (inf) is what is compared.
        yield from _both_layouts(f"impossible-{reduction}", lp, targets, il, tl, {"reduction": reduction},
                                 grads=False)
    # An empty input with an empty target is certain (loss 0); with a label, impossible.
    yield from _both_layouts("empty-input", lp, np.array([[1], [2], [3], [4]]), [0, 0, 4, 1], [0, 1, 1, 0],
                             {"reduction": "none", "zero_infinity": True})
    # Frames past a sequence's length are never read, whatever they hold.
    lp = _log_probs(rng, 6, 2, 4)
    lp[4:, 1, :] = 50.0
    for reduction in REDUCTIONS:
        yield _case(f"garbage-past-input-length-{reduction}", lp, [[1, 2, 3], [3, 3, 0]], [6, 4], [3, 2],
                    {"reduction": reduction})
    # Log-probabilities that do not sum to 1: torch's value is still the alignment sum, and its
    # gradient exp(log_probs) - γ; lossreg follows both.
    x = rng.normal(size=(6, 2, 4)) - 1.0
    for reduction in REDUCTIONS:
        yield _case(f"unnormalized-{reduction}", x, [[1, 2, 3], [3, 3, 0]], [6, 5], [3, 2], {"reduction": reduction})
    # A class that is never possible (log-probability -inf): torch's gradient there is NaN
    # (exp(-inf - -inf)), lossreg's 0; values only.
    lp = _log_softmax(np.where(np.arange(5) == 4, -np.inf, rng.normal(size=(6, 2, 5))))
    for reduction in REDUCTIONS:
        yield _case(f"minus-inf-class-{reduction}", lp, [[1, 2, 3], [3, 3, 0]], [6, 5], [3, 2],
                    {"reduction": reduction}, grads=False)
    # Narrower integer dtypes.
    lp = _log_probs(rng, 6, 2, 4)
    yield golden(LOSS, F.ctc_loss, "int32-indices", {"log_probs": lp, "targets": np.array([[1, 2], [3, 3]], dtype="int32"),
                 "input_lengths": np.array([6, 5], dtype="int32"), "target_lengths": np.array([2, 2], dtype="int32")},
                 {"reduction": "none"}, grads=["log_probs"])


def error_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    lp = _log_probs(rng, 5, 2, 4)
    ok = {"log_probs": lp, "targets": np.array([[1, 2, 3], [2, 2, 0]]), "input_lengths": np.array([5, 4]),
          "target_lengths": np.array([3, 2])}
    concat = {**ok, "targets": np.array([1, 2, 3, 2, 2])}
    bad = {
        "input-length-above-T": ({**ok, "input_lengths": np.array([6, 4])}, {}),
        "negative-input-length": ({**ok, "input_lengths": np.array([5, -1])}, {}),
        "target-length-above-S": ({**ok, "target_lengths": np.array([4, 2])}, {}),
        "negative-target-length": ({**ok, "target_lengths": np.array([3, -2])}, {}),
        "concatenated-length-mismatch": ({**concat, "target_lengths": np.array([3, 3])}, {}),
        "concatenated-negative-length": ({**concat, "target_lengths": np.array([6, -1])}, {}),
        "label-is-blank": ({**ok, "targets": np.array([[1, 0, 3], [2, 2, 0]])}, {}),
        "label-is-blank-2": ({**ok, "targets": np.array([[1, 2, 3], [2, 2, 0]])}, {"blank": 2}),
        "label-out-of-range": ({**ok, "targets": np.array([[1, 4, 3], [2, 2, 0]])}, {}),
        "negative-label": ({**concat, "targets": np.array([1, 2, 3, -2, 2])}, {}),
        "blank-out-of-range": (ok, {"blank": 4}),
        "negative-blank": (ok, {"blank": -1}),
        "log-probs-1d": ({**ok, "log_probs": lp[:, 0, 0]}, {}),
        "log-probs-4d": ({**ok, "log_probs": lp[None]}, {}),
        "empty-log-probs": ({**ok, "log_probs": np.zeros((0, 2, 4))}, {}),
        "targets-3d": ({**ok, "targets": ok["targets"][None]}, {}),
        "targets-rows": ({**ok, "targets": np.array([[1, 2, 3]])}, {}),
        "lengths-shape": ({**ok, "input_lengths": np.array([5, 4, 3])}, {}),
        "bad-reduction": (ok, {"reduction": "batchmean"}),
    }
    for id, (inputs, options) in bad.items():
        yield raises(LOSS, id, "LossValueError", inputs, options)
    types = {
        "float-targets": ({**ok, "targets": np.array([[1.0, 2.0, 3.0], [2.0, 2.0, 0.0]])}, {}),
        "float-lengths": ({**ok, "input_lengths": np.array([5.0, 4.0])}, {}),
        "integer-log-probs": ({**ok, "log_probs": np.zeros((5, 2, 4), dtype="int64")}, {}),
        "zero-infinity-not-bool": (ok, {"zero_infinity": 1}),
    }
    for id, (inputs, options) in types.items():
        yield raises(LOSS, id, "LossTypeError", inputs, options)


def cases() -> Iterator[dict[str, Any]]:
    rng = np.random.default_rng(4242)
    yield from batch_cases(rng)
    yield from unbatched_cases(rng)
    yield from edge_cases(rng)
    yield from error_cases(rng)
