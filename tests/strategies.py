"""Hypothesis strategies for every registered loss: shapes, dtypes, options and values.

Each loss is one entry of ``STRATEGIES``: a strategy of :class:`Example` (NumPy inputs in
``spec.inputs`` order, options with array options as NumPy arrays) plus the torch reference in
``REFERENCES``. Hypothesis draws the structure (shapes, options, magnitudes, special values and
a seed); the values come from a NumPy generator seeded by the draw, so a case is small to
shrink and reproduces from its repr. ``make_good`` returns one valid example per loss without
Hypothesis, for the bad-input, extreme-value and precision tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import strategies as st

import lossreg

REDUCTIONS = ("none", "mean", "sum")
# The losses these strategies know: the built-in catalogue's (a plugin installed beside lossreg
# brings losses of its own, which its own tests cover).
BUILT_IN = [name for name in lossreg.names() if lossreg.spec(name).plugin == "lossreg"]


@dataclass
class Example:
    """One call: ``loss(*inputs.values(), **options)``; ``dtype`` is the floating dtype used."""

    inputs: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float64"
    rtol: float = 1e-6  # extra slack for a case whose reference is ill-conditioned


class Draw:
    """Values from a NumPy generator, at a drawn magnitude, with a few special values sprinkled in."""

    def __init__(self, seed: int, scale: float = 1.0, dtype: str = "float64"):
        self.rng = np.random.default_rng(seed)
        self.scale, self.dtype = scale, dtype

    def normal(self, shape: tuple[int, ...], scale: float | None = None) -> np.ndarray:
        s = self.scale if scale is None else scale
        return (self.rng.normal(size=shape) * s).astype(self.dtype)

    def uniform(self, shape: tuple[int, ...], lo: float = 0.0, hi: float = 1.0, *, exact: bool = False) -> np.ndarray:
        """Uniform in [lo, hi]; with ``exact`` about one in five entries is exactly lo or hi."""
        u = self.rng.uniform(lo, hi, size=shape)
        if exact:
            pick = self.rng.uniform(size=shape)
            u = np.where(pick < 0.1, lo, np.where(pick < 0.2, hi, u))
        return u.astype(self.dtype)

    def signs(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.where(self.rng.uniform(size=shape) < 0.5, -1.0, 1.0).astype(self.dtype)

    def integers(self, lo: int, hi: int, shape: tuple[int, ...]) -> np.ndarray:
        return self.rng.integers(lo, hi, size=shape)


seeds = st.integers(0, 2**32 - 1)
reductions = st.sampled_from(REDUCTIONS)
# Magnitudes: mostly ordinary, sometimes tiny or huge (logits of 1e4 must not overflow).
magnitudes = st.sampled_from([1.0, 1.0, 1.0, 3.0, 1e-3, 30.0, 1e4])
batch = st.integers(0, 4)  # 0: an empty batch
side = st.integers(1, 4)


def shapes(max_dims: int = 3, min_dims: int = 0, *, empty: bool = True) -> st.SearchStrategy[tuple[int, ...]]:
    return st.lists(st.integers(0 if empty else 1, 4), min_size=min_dims, max_size=max_dims).map(tuple)


# --- regression ---------------------------------------------------------------------------------


@st.composite
def pointwise(draw: Any, extra: Callable[[Any], dict[str, Any]] | None = None) -> Example:
    shape, d = draw(shapes()), Draw(draw(seeds), draw(magnitudes))
    options = {"reduction": draw(reductions), **(extra(draw) if extra else {})}
    x, t = d.normal(shape), d.normal(shape)
    if draw(st.booleans()):  # ties: the non-differentiable points of |x - t|
        t = np.where(d.rng.uniform(size=shape) < 0.3, x, t)
    return Example({"input": x, "target": t}, options)


@st.composite
def huber(draw: Any) -> Example:
    ex = draw(pointwise(lambda dr: {"delta": dr(st.sampled_from([1.0, 0.5, 2.0, 1e-3, 10.0]))}))
    if draw(st.booleans()):  # an elementwise weight, broadcast from the trailing axes
        shape = ex.inputs["input"].shape
        # torch wants the input's own shape (other losses' weights broadcast)
        ex.options["weight"] = Draw(draw(seeds)).uniform(shape, 0.1, 2.0)
    return ex


def smooth_l1() -> st.SearchStrategy[Example]:
    return pointwise(lambda dr: {"beta": dr(st.sampled_from([1.0, 0.0, 0.5, 2.0, 1e-3]))})


# --- classification -----------------------------------------------------------------------------


@st.composite
def class_layout(draw: Any, *, k_dims: bool = True, empty: bool = True) -> tuple[tuple[int, ...], int]:
    """Scores of shape (C), (N, C) or (N, C, d1, ..., dK); returns (shape, C)."""
    c = draw(st.integers(1, 6))
    kind = draw(st.sampled_from(["unbatched", "batch", "batch", "kdim"] if k_dims else ["unbatched", "batch"]))
    if kind == "unbatched":
        return (c,), c
    n = draw(batch if empty else side)
    if kind == "batch":
        return (n, c), c
    return (n, c, *draw(st.lists(side, min_size=1, max_size=2))), c


def _indices(d: Draw, shape: tuple[int, ...], c: int, ignore: int | None) -> np.ndarray:
    t_shape = () if len(shape) == 1 else (shape[0], *shape[2:])
    t = d.integers(0, c, t_shape)
    if ignore is not None:
        t = np.where(d.rng.uniform(size=t_shape) < 0.3, ignore, t)
    return t


@st.composite
def index_options(draw: Any, c: int, d: Draw) -> tuple[dict[str, Any], int | None]:
    options: dict[str, Any] = {"reduction": draw(reductions)}
    if draw(st.booleans()):
        options["weight"] = d.uniform((c,), 0.1, 3.0)
    ignore = draw(st.sampled_from([None, -100, 0, c - 1, c + 3, -1]))
    if ignore is not None and ignore != -100:
        options["ignore_index"] = ignore
    return options, (-100 if ignore is None else ignore) if draw(st.booleans()) else None


@st.composite
def nll(draw: Any) -> Example:
    shape, c = draw(class_layout())
    d = Draw(draw(seeds), draw(magnitudes))
    options, ignore = draw(index_options(c, d))
    x = np.log(d.uniform(shape, 1e-6, 1.0)) if draw(st.booleans()) else d.normal(shape)
    t = _indices(d, shape, c, ignore if len(shape) > 1 else None)
    return Example({"input": x, "target": t.astype(draw(st.sampled_from(["int64", "int32"])))}, options)


@st.composite
def cross_entropy(draw: Any) -> Example:
    shape, c = draw(class_layout())
    d = Draw(draw(seeds), draw(magnitudes))
    x = d.normal(shape)
    if draw(st.booleans()) and len(shape) > 1:  # -inf in some non-target classes
        x = np.where(d.rng.uniform(size=shape) < 0.2, -np.inf, x)
        x[:, :1] = d.normal(x[:, :1].shape)  # class 0 stays finite: the targets below
        finite_target = True
    else:
        finite_target = False
    smoothing = draw(st.sampled_from([0.0, 0.0, 0.1, 0.5, 1.0]))
    if draw(st.booleans()) and not finite_target:  # probability (soft) targets
        options: dict[str, Any] = {"reduction": draw(reductions)}
        if draw(st.booleans()):
            options["weight"] = d.uniform((c,), 0.1, 3.0)
        t = d.uniform(shape, 0.0, 1.0, exact=True)
        if draw(st.booleans()):  # normalised, as a distribution
            t = t / np.maximum(t.sum(axis=1 if len(shape) > 1 else 0, keepdims=True), 1e-12)
    else:
        options, ignore = draw(index_options(c, d))
        t = _indices(d, shape, c, ignore if len(shape) > 1 else None)
        if finite_target:
            t = np.where(t == options.get("ignore_index", -100), t, 0)
            options.pop("weight", None) if smoothing else None  # -inf·w in the smoothing sum is -inf
            smoothing = 0.0
    if smoothing:
        options["label_smoothing"] = smoothing
    return Example({"input": x, "target": t}, options)


@st.composite
def bce(draw: Any) -> Example:
    shape, d = draw(shapes()), Draw(draw(seeds))
    # Inputs of exactly 0 or 1 are test_extremes' business: torch's gradient there is ±(t-x)/1e-12.
    x = d.uniform(shape, 0.0, 1.0)
    t = d.uniform(shape, 0.0, 1.0, exact=draw(st.booleans()))
    options: dict[str, Any] = {"reduction": draw(reductions)}
    if draw(st.booleans()):
        options["weight"] = d.uniform(shape[len(shape) - draw(st.integers(0, len(shape))):], 0.0, 2.0)
    return Example({"input": x, "target": t}, options)


@st.composite
def bce_logits(draw: Any) -> Example:
    shape, d = draw(shapes(min_dims=1)), Draw(draw(seeds), draw(magnitudes))
    options: dict[str, Any] = {"reduction": draw(reductions)}
    if draw(st.booleans()):
        options["weight"] = d.uniform(shape[len(shape) - draw(st.integers(0, len(shape))):], 0.0, 2.0)
    if draw(st.booleans()):
        options["pos_weight"] = d.uniform(shape[-1:], 0.1, 4.0)
    return Example({"input": d.normal(shape), "target": d.uniform(shape, 0.0, 1.0, exact=True)}, options)


@st.composite
def soft_margin(draw: Any) -> Example:
    # Not 1e4: torch's log(1 + exp(-y x)) overflows beyond |x| ≈ 709 (88 in float32); lossreg's does not.
    shape, d = draw(shapes()), Draw(draw(seeds), draw(st.sampled_from([1.0, 3.0, 1e-3, 10.0])))
    return Example({"input": d.normal(shape), "target": d.signs(shape)}, {"reduction": draw(reductions)})


@st.composite
def multilabel_soft_margin(draw: Any) -> Example:
    shape, c = draw(class_layout(k_dims=False))
    d = Draw(draw(seeds), draw(magnitudes))
    options: dict[str, Any] = {"reduction": draw(reductions)}
    if draw(st.booleans()):
        options["weight"] = d.uniform((c,), 0.1, 3.0)
    t = d.uniform(shape, 0.0, 1.0, exact=True) if draw(st.booleans()) else d.integers(0, 2, shape).astype("float64")
    return Example({"input": d.normal(shape), "target": t}, options)


@st.composite
def multi_margin(draw: Any) -> Example:
    # No empty batch: torch's mean of nothing reads uninitialised memory (test_extremes).
    shape, c = draw(class_layout(k_dims=False, empty=False))
    d = Draw(draw(seeds), draw(magnitudes))
    options: dict[str, Any] = {"reduction": draw(reductions), "p": draw(st.sampled_from([1, 2])),
                               "margin": draw(st.sampled_from([1.0, 0.0, 0.5, 2.0, -0.5]))}
    if draw(st.booleans()):
        options["weight"] = d.uniform((c,), 0.1, 3.0)
    return Example({"input": d.normal(shape), "target": _indices(d, shape, c, None)}, options)


@st.composite
def multilabel_margin(draw: Any) -> Example:
    # No empty batch: torch gives 0 for its mean (bug report in test_extremes), not NaN.
    shape, c = draw(class_layout(k_dims=False, empty=False))
    d = Draw(draw(seeds), draw(magnitudes))
    rows = 1 if len(shape) == 1 else shape[0]
    t = np.full((rows, c), -1, dtype="int64")
    for r in range(rows):  # some labels, then -1 padding (and junk after it, which torch ignores)
        k = int(d.integers(0, c + 1, ()))
        t[r, :k] = d.rng.choice(c, size=k, replace=bool(d.rng.uniform() < 0.3))
        if k + 1 < c:
            t[r, k + 1:] = d.integers(0, c, (c - k - 1,))
    t = t[0] if len(shape) == 1 else t
    return Example({"input": d.normal(shape), "target": t}, {"reduction": draw(reductions)})


# --- embedding ------------------------------------------------------------------------------------


@st.composite
def margin_ranking(draw: Any) -> Example:
    shape, d = draw(st.sampled_from([(), (1,), (3,), (0,), (5,)])), Draw(draw(seeds), draw(magnitudes))
    options = {"reduction": draw(reductions), "margin": draw(st.sampled_from([0.0, 0.5, 1.0, -0.3]))}
    return Example({"input1": d.normal(shape), "input2": d.normal(shape), "target": d.signs(shape)}, options)


@st.composite
def hinge_embedding(draw: Any) -> Example:
    shape, d = draw(shapes()), Draw(draw(seeds), draw(magnitudes))
    options = {"reduction": draw(reductions), "margin": draw(st.sampled_from([1.0, 0.0, 0.5, 2.0, -1.0]))}
    return Example({"input": d.normal(shape), "target": d.signs(shape)}, options)


@st.composite
def cosine_embedding(draw: Any) -> Example:
    n, dim = draw(batch), draw(side)
    unbatched = draw(st.booleans())
    d = Draw(draw(seeds), draw(magnitudes))
    shape = (dim,) if unbatched else (n, dim)
    x1, x2 = d.normal(shape), d.normal(shape)
    if draw(st.booleans()):  # parallel and anti-parallel pairs
        x2 = np.where(d.rng.uniform(size=shape[:-1] + (1,)) < 0.5, 2.0 * x1, -x1)
    options = {"reduction": draw(reductions), "margin": draw(st.sampled_from([0.0, 0.5, -0.5, 1.0]))}
    return Example({"input1": x1, "input2": x2, "target": d.signs(shape[:-1])}, options)


@st.composite
def triplet_inputs(draw: Any) -> tuple[Draw, dict[str, np.ndarray]]:
    n, dim = draw(batch), draw(side)
    shape = (dim,) if draw(st.booleans()) else (n, dim)
    d = Draw(draw(seeds), draw(magnitudes))
    return d, {"anchor": d.normal(shape), "positive": d.normal(shape), "negative": d.normal(shape)}


@st.composite
def triplet(draw: Any) -> Example:
    _, arrays = draw(triplet_inputs())
    options = {"reduction": draw(reductions), "margin": draw(st.sampled_from([1.0, 0.5, 2.0])),
               "p": draw(st.sampled_from([2.0, 1.0, 3.0])), "eps": draw(st.sampled_from([1e-6, 0.0, 1e-2])),
               "swap": draw(st.booleans())}
    return Example(arrays, options)


@st.composite
def triplet_distance(draw: Any) -> Example:
    _, arrays = draw(triplet_inputs())
    options = {"reduction": draw(reductions), "margin": draw(st.sampled_from([1.0, 0.5, 2.0])),
               "swap": draw(st.booleans())}
    return Example(arrays, options)


# --- probabilistic --------------------------------------------------------------------------------


@st.composite
def kl_div(draw: Any) -> Example:
    shape, d = draw(shapes(min_dims=1)), Draw(draw(seeds))
    log_target = draw(st.booleans())
    x = np.log(d.uniform(shape, 1e-6, 1.0))
    t = np.log(d.uniform(shape, 1e-6, 1.0)) if log_target else d.uniform(shape, 0.0, 1.0, exact=True)
    options = {"reduction": draw(st.sampled_from([*REDUCTIONS, "batchmean"])), "log_target": log_target}
    return Example({"input": x, "target": t}, options)


@st.composite
def poisson_nll(draw: Any) -> Example:
    shape, d = draw(shapes()), Draw(draw(seeds))
    log_input = draw(st.booleans())
    x = d.normal(shape) if log_input else d.uniform(shape, 0.0, 5.0, exact=True)
    t = d.integers(0, 6, shape).astype("float64") + (d.uniform(shape) if draw(st.booleans()) else 0.0)
    options = {"reduction": draw(reductions), "log_input": log_input, "full": draw(st.booleans()),
               "eps": draw(st.sampled_from([1e-8, 1e-3, 0.5]))}
    return Example({"input": x, "target": t}, options)


@st.composite
def gaussian_nll(draw: Any) -> Example:
    shape, d = draw(shapes(min_dims=1, empty=False)), Draw(draw(seeds), draw(st.sampled_from([1.0, 1e-2, 10.0])))
    var_shape = draw(st.sampled_from(["same", "last1", "dropped"]))
    v_shape = {"same": shape, "last1": (*shape[:-1], 1), "dropped": shape[:-1]}[var_shape]
    var = d.uniform(v_shape, 0.0, 2.0, exact=True) if draw(st.booleans()) else d.uniform(v_shape, 0.05, 3.0)
    options = {"reduction": draw(reductions), "full": draw(st.booleans()),
               "eps": draw(st.sampled_from([1e-6, 1e-2, 0.5]))}
    return Example({"input": d.normal(shape), "target": d.normal(shape), "var": var}, options)


# --- sequence ---------------------------------------------------------------------------------------


@st.composite
def ctc(draw: Any) -> Example:
    c, s = draw(st.integers(2, 5)), draw(st.integers(1, 4))
    unbatched = draw(st.booleans())
    n = 1 if unbatched else draw(st.integers(1, 3))
    d = Draw(draw(seeds), draw(st.sampled_from([1.0, 3.0, 10.0])))
    blank = draw(st.sampled_from([0, c - 1]))
    zero_infinity = draw(st.booleans())
    labels = d.integers(0, c - 1, (n, s))
    labels = np.where(labels >= blank, labels + 1, labels)  # never the blank
    if draw(st.booleans()):  # repeats need an extra frame
        labels[:, 1:] = np.where(d.rng.uniform(size=(n, s - 1)) < 0.4, labels[:, :1], labels[:, 1:])
    # Unbatched, torch refuses a target length of 0 ("Expected tensor to have size 0").
    target_lengths = d.integers(1 if unbatched else 0, s + 1, (n,))
    # Frames an alignment needs: one per label, one more between equal neighbours.
    needed = np.array([k + int(np.sum(labels[i, 1:k] == labels[i, :max(k - 1, 0)]))
                       for i, k in enumerate(target_lengths)])
    t_len = max(draw(st.integers(1, 8)), int(needed.max()))
    input_lengths = d.integers(1, t_len + 1, (n,))
    input_lengths[0] = t_len
    if not zero_infinity:
        # An impossible alignment has an infinite loss, whose gradient torch makes NaN
        # (test_extremes covers it); here every alignment is possible.
        input_lengths = np.maximum(input_lengths, np.maximum(needed, 1))
    logits = d.normal((t_len, n, c))
    m = logits.max(-1, keepdims=True)
    log_probs = logits - m - np.log(np.exp(logits - m).sum(-1, keepdims=True))
    options = {"reduction": draw(reductions), "blank": blank, "zero_infinity": zero_infinity}
    if unbatched:
        # torch reads unbatched targets as concatenated: exactly target_lengths labels.
        return Example({"log_probs": log_probs[:, 0], "targets": labels[0, :target_lengths[0]],
                        "input_lengths": input_lengths[0],
                        "target_lengths": target_lengths[0]}, options)
    return Example({"log_probs": log_probs, "targets": labels, "input_lengths": input_lengths,
                    "target_lengths": target_lengths}, options)


@st.composite
def linear_ce(draw: Any) -> Example:
    """Inputs (*lead, D), a (C, D) weight, targets of the leading shape, every option, and chunk
    sizes that cut N and C anywhere (a pair also splits the classes); one example in four in one
    of torch's forms computed through the logits: class weights, probability targets, or a
    K-dimensional (C, d1, D) weight for an (N, D) input."""
    lead = draw(shapes(max_dims=2))
    dim, vocab = draw(side), draw(st.integers(1, 7))
    d = Draw(draw(seeds), draw(magnitudes))
    ignore = draw(st.sampled_from([-100, 0, 2]))
    form = draw(st.sampled_from(["chunked"] * 3 + ["class-weights", "probabilities", "k-dimensional"]))
    out = (draw(st.integers(1, 3)),) if form == "k-dimensional" else ()
    if out:
        lead = lead[:1] or (3,)
    t = np.where(d.rng.uniform(size=(*lead, *out)) < 0.25, ignore, d.integers(0, vocab, (*lead, *out)))
    options: dict[str, Any] = {"reduction": draw(reductions), "ignore_index": ignore,
                               "chunk_size": draw(st.sampled_from([None, 1, 2, 5, (2, 3), (3, 1), (4, 4)]))}
    if form == "probabilities":
        t = d.rng.dirichlet(np.ones(vocab), size=lead) if lead else d.rng.dirichlet(np.ones(vocab))
        del options["ignore_index"]
    if form == "class-weights":
        options["weight"] = d.rng.uniform(0.1, 3.0, size=(vocab,))
    if draw(st.booleans()):
        options[draw(st.sampled_from(["bias", "linear_bias"]))] = d.normal((vocab, *out))
    for key, values in (("label_smoothing", [0.0, 0.1, 1.0]), ("z_loss", [0.0, 1e-4, 0.1]),
                        ("softcap", [None, 1.0, 30.0])):
        value = draw(st.sampled_from(values))
        if value and not (key == "z_loss" and form != "chunked"):  # the z-loss is the chunked form's
            options[key] = value
    return Example({"input": d.normal((*lead, dim)), "linear_weight": d.normal((vocab, *out, dim)), "target": t},
                   options)


@st.composite
def some_float32(draw: Any, examples: st.SearchStrategy[Example]) -> Example:
    """About one example in five in float32 (compared with torch in float32, at float32 tolerance)."""
    ex = draw(examples)
    if draw(st.integers(0, 4)) == 0:
        ex.dtype = "float32"
    return ex


_FLOAT64: dict[str, st.SearchStrategy[Example]] = {
    "mse_loss": pointwise(),
    "l1_loss": pointwise(),
    "smooth_l1_loss": smooth_l1(),
    "huber_loss": huber(),
    "nll_loss": nll(),
    "cross_entropy": cross_entropy(),
    "binary_cross_entropy": bce(),
    "binary_cross_entropy_with_logits": bce_logits(),
    "soft_margin_loss": soft_margin(),
    "multilabel_soft_margin_loss": multilabel_soft_margin(),
    "multi_margin_loss": multi_margin(),
    "multilabel_margin_loss": multilabel_margin(),
    "margin_ranking_loss": margin_ranking(),
    "hinge_embedding_loss": hinge_embedding(),
    "cosine_embedding_loss": cosine_embedding(),
    "triplet_margin_loss": triplet(),
    "triplet_margin_with_distance_loss": triplet_distance(),
    "kl_div": kl_div(),
    "poisson_nll_loss": poisson_nll(),
    "gaussian_nll_loss": gaussian_nll(),
    "ctc_loss": ctc(),
    "linear_cross_entropy": linear_ce(),
}
STRATEGIES: dict[str, st.SearchStrategy[Example]] = {name: some_float32(s) for name, s in _FLOAT64.items()}


def _ctc(log_probs: torch.Tensor, targets: torch.Tensor, input_lengths: torch.Tensor,
         target_lengths: torch.Tensor, **options: Any) -> torch.Tensor:
    return F.ctc_loss(log_probs, targets.long(), input_lengths.long(), target_lengths.long(), **options)


def _indexed(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """torch wants int64 class indices; lossreg takes any integer dtype."""
    def call(input: torch.Tensor, target: torch.Tensor, **options: Any) -> torch.Tensor:
        return fn(input, target.long() if not target.is_floating_point() else target, **options)
    return call


def _linear_ce(input: torch.Tensor, linear_weight: torch.Tensor, target: torch.Tensor, *, bias: Any = None,
               linear_bias: Any = None, weight: Any = None, ignore_index: int = -100, label_smoothing: float = 0.0,
               reduction: str = "mean", z_loss: float = 0.0, softcap: Any = None, chunk_size: Any = None) -> torch.Tensor:
    """``F.cross_entropy`` of the (soft-capped) logits ``F.linear(x, W, b)`` reshaped to (N, C,
    d1, ..., dK), over the leading axes of ``x``, plus the z-loss (class indices only)."""
    b = bias if linear_bias is None else linear_bias
    c, out, lead = linear_weight.shape[0], linear_weight.shape[1:-1], input.shape[:-1]
    z = F.linear(input, linear_weight.reshape(-1, linear_weight.shape[-1]), None if b is None else b.reshape(-1))
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    if target.is_floating_point():  # probabilities (N, C, ...), or (C,) for one input
        flat = z.reshape(-1, c, *out) if lead else z
        losses = F.cross_entropy(flat, target.reshape(flat.shape), weight=weight, label_smoothing=label_smoothing,
                                 reduction=reduction)
        return losses.reshape((*lead, *out)) if reduction == "none" else losses
    flat, t = z.reshape(-1, c, *out), target.reshape(-1, *out).long()
    if weight is not None or out:
        losses = F.cross_entropy(flat, t, weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing,
                                 reduction=reduction)
        return losses.reshape((*lead, *out)) if reduction == "none" else losses
    losses = F.cross_entropy(flat, t, ignore_index=ignore_index, label_smoothing=label_smoothing, reduction="none")
    active = t != ignore_index
    if z_loss:
        losses = losses + z_loss * torch.where(active, torch.logsumexp(flat, dim=-1) ** 2, 0.0)
    if reduction == "none":
        return losses.reshape(input.shape[:-1])
    return losses.sum() if reduction == "sum" else losses.sum() / active.sum()


REFERENCES: dict[str, Callable[..., torch.Tensor]] = {
    "mse_loss": F.mse_loss,
    "l1_loss": F.l1_loss,
    "smooth_l1_loss": F.smooth_l1_loss,
    "huber_loss": F.huber_loss,
    "nll_loss": _indexed(F.nll_loss),
    "cross_entropy": _indexed(F.cross_entropy),
    "binary_cross_entropy": F.binary_cross_entropy,
    "binary_cross_entropy_with_logits": F.binary_cross_entropy_with_logits,
    "soft_margin_loss": F.soft_margin_loss,
    "multilabel_soft_margin_loss": F.multilabel_soft_margin_loss,
    "multi_margin_loss": _indexed(F.multi_margin_loss),
    "multilabel_margin_loss": _indexed(F.multilabel_margin_loss),
    "margin_ranking_loss": F.margin_ranking_loss,
    "hinge_embedding_loss": F.hinge_embedding_loss,
    "cosine_embedding_loss": F.cosine_embedding_loss,
    "triplet_margin_loss": F.triplet_margin_loss,
    "triplet_margin_with_distance_loss": F.triplet_margin_with_distance_loss,
    "kl_div": F.kl_div,
    "poisson_nll_loss": F.poisson_nll_loss,
    "gaussian_nll_loss": F.gaussian_nll_loss,
    "ctc_loss": _ctc,
    "linear_cross_entropy": _linear_ce,
}


def make_good(name: str, seed: int = 0, n: int = 4, c: int = 3) -> Example:
    """A valid, non-empty example of ``name`` with default options, without Hypothesis.

    Scores are (n, c) (c ≥ 3); sequences for ctc_loss have n samples of at most 3 labels.
    """
    d = Draw(seed)
    x = d.normal((n, c))
    sign = d.signs((n,))
    pointwise_ = {"input": x, "target": d.normal((n, c))}
    labels = np.full((n, c), -1)
    for r in range(n):  # distinct labels, then -1 padding
        k = r % (c + 1)
        labels[r, :k] = d.rng.permutation(c)[:k]
    t_len = 7
    target_lengths = np.arange(n) % 4
    logits = d.normal((t_len, n, 4))
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    goods: dict[str, Callable[[], dict[str, Any]]] = {
        "mse_loss": lambda: pointwise_, "l1_loss": lambda: pointwise_,
        "smooth_l1_loss": lambda: pointwise_, "huber_loss": lambda: pointwise_,
        "nll_loss": lambda: {"input": np.log(d.uniform((n, c), 0.05, 1.0)), "target": d.integers(0, c, (n,))},
        "cross_entropy": lambda: {"input": x, "target": d.integers(0, c, (n,))},
        "binary_cross_entropy": lambda: {"input": d.uniform((n, c), 0.05, 0.95), "target": d.uniform((n, c))},
        "binary_cross_entropy_with_logits": lambda: {"input": x, "target": d.uniform((n, c))},
        "soft_margin_loss": lambda: {"input": x, "target": d.signs((n, c))},
        "multilabel_soft_margin_loss": lambda: {"input": x, "target": d.integers(0, 2, (n, c)).astype("float64")},
        "multi_margin_loss": lambda: {"input": x, "target": d.integers(0, c, (n,))},
        "multilabel_margin_loss": lambda: {"input": x, "target": labels},
        "margin_ranking_loss": lambda: {"input1": d.normal((n,)), "input2": d.normal((n,)), "target": sign},
        "hinge_embedding_loss": lambda: {"input": x, "target": d.signs((n, c))},
        "cosine_embedding_loss": lambda: {"input1": x, "input2": d.normal((n, c)), "target": sign},
        "triplet_margin_loss": lambda: {"anchor": x, "positive": d.normal((n, c)), "negative": d.normal((n, c))},
        "triplet_margin_with_distance_loss": lambda: {"anchor": x, "positive": d.normal((n, c)),
                                                      "negative": d.normal((n, c))},
        "kl_div": lambda: {"input": np.log(d.uniform((n, c), 0.05, 1.0)), "target": d.uniform((n, c))},
        "poisson_nll_loss": lambda: {"input": x, "target": d.integers(0, 5, (n, c)).astype("float64")},
        "gaussian_nll_loss": lambda: {"input": x, "target": d.normal((n, c)), "var": d.uniform((n, c), 0.1, 2.0)},
        "ctc_loss": lambda: {"log_probs": log_probs, "targets": d.integers(1, 4, (n, 3)),
                             "input_lengths": np.full(n, t_len), "target_lengths": target_lengths},
        "linear_cross_entropy": lambda: {"input": x, "linear_weight": d.normal((5, c)),
                                          "target": d.integers(0, 5, (n,))},
    }
    return Example(dict(goods[name]()))
