"""Golden cases for lossreg.losses.fused: torch float64 ``F.cross_entropy(F.linear(h, W, b), t)``.

The z-loss and the soft cap are written out in torch next to its cross-entropy: ``softcap ·
tanh(z / softcap)`` before it, ``z_loss · logsumexp(z)²`` over the tokens not ignored after it.
Shapes are chosen so that N and V are not multiples of the chunk sizes, and the vocabulary is
split into blocks, so that every boundary of the chunked computation is crossed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from generate import golden, raises

REDUCTIONS = ("none", "mean", "sum")


def reference(hidden: Any, weight: Any, target: Any, *, bias: Any = None, ignore_index: int = -100,
              label_smoothing: float = 0.0, reduction: str = "mean", z_loss: float = 0.0, softcap: Any = None,
              chunk_size: Any = None) -> Any:
    """The unfused definition in torch (``chunk_size`` only changes how lossreg computes it)."""
    z = F.linear(hidden, weight, bias)
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    v = z.shape[-1]
    flat, t = z.reshape(-1, v), target.reshape(-1)
    losses = F.cross_entropy(flat, t, ignore_index=ignore_index, label_smoothing=label_smoothing, reduction="none")
    active = t != ignore_index
    if z_loss:
        losses = losses + z_loss * torch.where(active, torch.logsumexp(flat, dim=-1) ** 2, 0.0)
    if reduction == "none":
        return losses.reshape(hidden.shape[:-1])
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / active.sum()  # all ignored: 0 / 0 = NaN, as F.cross_entropy


def _case(id: str, inputs: dict[str, Any], options: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return golden("linear_cross_entropy", reference, id, inputs, options, **kw)


def linear_cross_entropy_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    d, v = 5, 11
    weight, bias = rng.normal(size=(v, d)), rng.normal(size=(v,))
    # N=7 tokens in chunks of 3 (7 = 3 + 3 + 1), and V=11 in blocks of 4 (4 + 4 + 3) or whole.
    h = rng.normal(size=(7, d))
    t = rng.integers(0, v, size=(7,))
    t[2] = -100
    # Every feature at once, through each way of cutting the work (JAX compiles each case anew:
    # the cases are kept few, each covering much).
    for chunks in (None, 3, [3, 4]):
        tag = "auto" if chunks is None else f"c{chunks}" if isinstance(chunks, int) else "c{}x{}".format(*chunks)
        for reduction in (("mean",) if chunks is None else REDUCTIONS):
            options: dict[str, Any] = {"reduction": reduction, "bias": bias, "label_smoothing": 0.2,
                                       "z_loss": 1e-2, "softcap": 2.5}
            if chunks is not None:
                options["chunk_size"] = chunks
            yield _case(f"smooth-z-cap-{tag}-{reduction}", {"hidden": h, "weight": weight, "target": t}, options)
    yield _case("plain-c3x4-mean", {"hidden": h, "weight": weight, "target": t}, {"chunk_size": [3, 4]})
    yield _case("bias-c3-mean", {"hidden": h, "weight": weight, "target": t}, {"chunk_size": 3, "bias": bias})
    for name, extra in (("smooth1", {"label_smoothing": 1.0}), ("zloss0.1", {"z_loss": 0.1}),
                        ("softcap", {"softcap": 1.5})):
        yield _case(f"{name}-c3x4-mean", {"hidden": h, "weight": weight, "target": t},
                    {"chunk_size": [3, 4], **extra})
    # Leading axes: (B, T, D) hidden states take (B, T) targets; unbatched (D) takes ().
    h3, t3 = rng.normal(size=(2, 3, d)), rng.integers(0, v, size=(2, 3))
    for reduction in ("none", "mean"):
        yield _case(f"btd-{reduction}", {"hidden": h3, "weight": weight, "target": t3},
                    {"reduction": reduction, "chunk_size": 4, "bias": bias})
    yield _case("unbatched-none", {"hidden": h[0], "weight": weight, "target": np.array(4)}, {"reduction": "none"})
    # The (N, 1) labels cross_entropy accepts (torch refuses them): read as (N,).
    yield _case("n1-target-none", {"hidden": h[:4], "weight": weight, "target": t[:4, None]},
                {"reduction": "none", "chunk_size": 3})
    # ignore_index other than -100; all targets ignored (mean: NaN, gradients 0, as torch); no tokens.
    t_ign = np.array([0, 3, 1, 3, 4, 3, 10])
    for reduction in REDUCTIONS:
        if reduction != "sum":
            yield _case(f"ignore-3-{reduction}", {"hidden": h, "weight": weight, "target": t_ign},
                        {"reduction": reduction, "ignore_index": 3, "label_smoothing": 0.1, "z_loss": 1e-2,
                         "chunk_size": [2, 5]})
        yield _case(f"all-ignored-{reduction}", {"hidden": h[:5], "weight": weight, "target": np.full(5, -100)},
                    {"reduction": reduction, "chunk_size": 2, "z_loss": 1e-2})
        if reduction != "sum":
            yield _case(f"empty-batch-{reduction}", {"hidden": np.zeros((0, d)), "weight": weight,
                                                     "target": np.zeros((0,), dtype="int64")}, {"reduction": reduction})
    # A vocabulary of one entry, and large logits (the online log-sum-exp rescales without overflow).
    yield _case("vocab-1", {"hidden": h, "weight": weight[:1], "target": np.zeros(7, dtype="int64")}, {})
    big = h * 60.0
    yield _case("logits-large-c3x4", {"hidden": big, "weight": weight, "target": rng.integers(0, v, size=(7,))},
                {"reduction": "none", "chunk_size": [3, 4]}, dtypes=["float32", "float64"])
    yield _case("logits-large-softcap", {"hidden": big, "weight": weight, "target": rng.integers(0, v, size=(7,))},
                {"reduction": "none", "chunk_size": [3, 4], "softcap": 30.0}, dtypes=["float32", "float64"])
    # Every class index must be in [0, V) or be ignore_index.
    yield raises("linear_cross_entropy", "target-out-of-range", "LossValueError",
                 {"hidden": h[:3], "weight": weight, "target": np.array([0, 11, 2])})


def cases() -> Iterator[dict[str, Any]]:
    rng = np.random.default_rng(14)
    yield from linear_cross_entropy_cases(rng)
