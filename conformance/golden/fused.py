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


def reference(hidden: Any, weight: Any, target: Any, *, bias: Any = None, linear_bias: Any = None,
              ignore_index: int = -100, label_smoothing: float = 0.0, reduction: str = "mean", z_loss: float = 0.0,
              softcap: Any = None, chunk_size: Any = None) -> Any:
    """The unfused definition in torch (``chunk_size`` only changes how lossreg computes it)."""
    z = F.linear(hidden, weight, bias if linear_bias is None else linear_bias)
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


def _torch_case(id: str, inputs: dict[str, Any], options: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """A case of torch's own ``F.linear_cross_entropy`` (torch ≥ 2.13), on its reference path."""
    return golden("linear_cross_entropy", _torch_reference, id, inputs, options,
                  source="torch.nn.functional.linear_cross_entropy", **kw)


def _torch_reference(*arrays: Any, chunk_size: Any = None, **options: Any) -> Any:
    """torch's function (``chunk_size`` only changes how lossreg computes it)."""
    return F.linear_cross_entropy(*arrays, **options)


def torch_form_cases(rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    """torch's forms beyond lossreg's first: class weights (chunked), probability targets and
    K-dimensional outputs (computed through the logits), and its keyword names."""
    d, c = 4, 6
    w, b = rng.normal(size=(c, d)), rng.normal(size=(c,))
    cw = rng.uniform(0.2, 2.0, size=(c,))
    x = rng.normal(size=(5, d))
    t = rng.integers(0, c, size=(5,))
    t[1] = -100
    for reduction in REDUCTIONS:
        yield _torch_case(f"class-weights-{reduction}", {"input": x, "linear_weight": w, "target": t},
                          {"reduction": reduction, "weight": cw, "linear_bias": b, "label_smoothing": 0.15})
    yield _torch_case("class-weights-c2x4-mean", {"input": x, "linear_weight": w, "target": t},
                      {"weight": cw, "label_smoothing": 0.3, "chunk_size": [2, 4]})
    yield _torch_case("class-weights-ignore-2", {"input": x, "linear_weight": w, "target": np.array([2, 0, 2, 5, 1])},
                      {"weight": cw, "ignore_index": 2})
    yield _torch_case("linear-bias-none", {"input": x, "linear_weight": w, "target": t},
                      {"reduction": "none", "linear_bias": b})
    q = rng.dirichlet(np.ones(c), size=5)
    for reduction in REDUCTIONS:
        yield _torch_case(f"probabilities-{reduction}", {"input": x, "linear_weight": w, "target": q},
                          {"reduction": reduction, "label_smoothing": 0.1, "weight": cw})
    yield _torch_case("probabilities-unbatched", {"input": x[0], "linear_weight": w, "target": q[0]},
                      {"reduction": "none", "linear_bias": b})
    yield _torch_case("class-index-unbatched", {"input": x[0], "linear_weight": w, "target": np.array(3)},
                      {"weight": cw})
    # K-dimensional outputs: a (C, d1, d2, D) weight gives (N, C, d1, d2) logits.
    wk, bk = rng.normal(size=(3, 2, 2, d)), rng.normal(size=(3, 2, 2))
    tk = rng.integers(0, 3, size=(5, 2, 2))
    tk[0, 1, 0] = -100
    for reduction in REDUCTIONS:
        yield _torch_case(f"k2-{reduction}", {"input": x, "linear_weight": wk, "target": tk},
                          {"reduction": reduction, "linear_bias": bk, "label_smoothing": 0.05})
    yield _torch_case("k2-probabilities-mean", {"input": x, "linear_weight": wk,
                                                "target": rng.dirichlet(np.ones(3), size=(5, 2, 2)).transpose(0, 3, 1, 2)},
                      {})
    # Refused: ignore_index with probabilities (torch raises too), a K-dimensional weight on one
    # unbatched input, class weights of the wrong length, a target of the wrong shape.
    yield raises("linear_cross_entropy", "ignore-index-with-probabilities", "LossValueError",
                 {"input": x, "linear_weight": w, "target": q}, {"ignore_index": 1})
    yield raises("linear_cross_entropy", "k-dimensional-unbatched", "LossValueError",
                 {"input": x[0], "linear_weight": wk, "target": tk[0]})
    yield raises("linear_cross_entropy", "class-weights-length", "LossValueError",
                 {"input": x, "linear_weight": w, "target": t}, {"weight": cw[:4]})
    yield raises("linear_cross_entropy", "k2-target-shape", "LossValueError",
                 {"input": x, "linear_weight": wk, "target": tk[:, 0]})
    yield raises("linear_cross_entropy", "class-weights-with-z-loss", "LossValueError",
                 {"input": x, "linear_weight": w, "target": t}, {"weight": cw, "z_loss": 0.1})


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
            yield _case(f"smooth-z-cap-{tag}-{reduction}", {"input": h, "linear_weight": weight, "target": t}, options)
    yield _case("plain-c3x4-mean", {"input": h, "linear_weight": weight, "target": t}, {"chunk_size": [3, 4]})
    yield _case("bias-c3-mean", {"input": h, "linear_weight": weight, "target": t}, {"chunk_size": 3, "bias": bias})
    yield _case("linear-bias-c3-sum", {"input": h, "linear_weight": weight, "target": t},
                {"chunk_size": 3, "linear_bias": bias, "reduction": "sum"})
    for name, extra in (("smooth1", {"label_smoothing": 1.0}), ("zloss0.1", {"z_loss": 0.1}),
                        ("softcap", {"softcap": 1.5})):
        yield _case(f"{name}-c3x4-mean", {"input": h, "linear_weight": weight, "target": t},
                    {"chunk_size": [3, 4], **extra})
    # Leading axes: (B, T, D) hidden states take (B, T) targets; unbatched (D) takes ().
    h3, t3 = rng.normal(size=(2, 3, d)), rng.integers(0, v, size=(2, 3))
    for reduction in ("none", "mean"):
        yield _case(f"btd-{reduction}", {"input": h3, "linear_weight": weight, "target": t3},
                    {"reduction": reduction, "chunk_size": 4, "bias": bias})
    yield _case("unbatched-none", {"input": h[0], "linear_weight": weight, "target": np.array(4)}, {"reduction": "none"})
    # The (N, 1) labels cross_entropy accepts (torch refuses them): read as (N,).
    yield _case("n1-target-none", {"input": h[:4], "linear_weight": weight, "target": t[:4, None]},
                {"reduction": "none", "chunk_size": 3})
    # ignore_index other than -100; all targets ignored (mean: NaN, gradients 0, as torch); no tokens.
    t_ign = np.array([0, 3, 1, 3, 4, 3, 10])
    for reduction in REDUCTIONS:
        if reduction != "sum":
            yield _case(f"ignore-3-{reduction}", {"input": h, "linear_weight": weight, "target": t_ign},
                        {"reduction": reduction, "ignore_index": 3, "label_smoothing": 0.1, "z_loss": 1e-2,
                         "chunk_size": [2, 5]})
        yield _case(f"all-ignored-{reduction}", {"input": h[:5], "linear_weight": weight, "target": np.full(5, -100)},
                    {"reduction": reduction, "chunk_size": 2, "z_loss": 1e-2})
        if reduction != "sum":
            yield _case(f"empty-batch-{reduction}", {"input": np.zeros((0, d)), "linear_weight": weight,
                                                     "target": np.zeros((0,), dtype="int64")}, {"reduction": reduction})
    # A vocabulary of one entry, and large logits (the online log-sum-exp rescales without overflow).
    yield _case("vocab-1", {"input": h, "linear_weight": weight[:1], "target": np.zeros(7, dtype="int64")}, {})
    big = h * 60.0
    yield _case("logits-large-c3x4", {"input": big, "linear_weight": weight, "target": rng.integers(0, v, size=(7,))},
                {"reduction": "none", "chunk_size": [3, 4]}, dtypes=["float32", "float64"])
    yield _case("logits-large-softcap", {"input": big, "linear_weight": weight, "target": rng.integers(0, v, size=(7,))},
                {"reduction": "none", "chunk_size": [3, 4], "softcap": 30.0}, dtypes=["float32", "float64"])
    # Every class index must be in [0, V) or be ignore_index.
    yield raises("linear_cross_entropy", "target-out-of-range", "LossValueError",
                 {"input": h[:3], "linear_weight": weight, "target": np.array([0, 11, 2])})


def cases() -> Iterator[dict[str, Any]]:
    rng = np.random.default_rng(14)
    yield from linear_cross_entropy_cases(rng)
    yield from torch_form_cases(np.random.default_rng(213))
