"""The curves of the site: each loss and its gradient against one scalar (error, margin, logit).

A *recipe* says how a scalar ``t`` becomes the arguments of a loss (``t`` as the error of a
regression loss, as the true-class logit of a classifier, ...), and which option values are
typical. Values come from lossreg itself on NumPy float64 with ``reduction="none"`` (one
loss per point), gradients from central finite differences of those values in ``t``. A
plugin's loss without a recipe gets the first generic layout under which it returns one finite
loss per point, or no plot, with the reason on its page.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..registry import LossSpec

Arrays = Callable[[np.ndarray], tuple[Any, ...]]


@dataclass(frozen=True)
class Recipe:
    """How to plot a loss: the x axis, the arguments made from it, and typical option values."""

    xlabel: str
    lo: float
    hi: float
    arrays: Arrays  # t (N,) -> the positional arrays, one loss per point of t
    variants: Sequence[tuple[str, dict[str, Any], Arrays | None]] = field(default_factory=tuple)
    # each variant: (legend label, options, other arrays or None for ``arrays``)


def _pair(t: np.ndarray, other: float = 0.0) -> np.ndarray:
    return np.stack([t, np.full_like(t, other)], axis=1)


def _zeros_int(t: np.ndarray) -> np.ndarray:
    return np.zeros(t.shape, dtype=np.int64)


def _ctc(t: np.ndarray) -> tuple[Any, ...]:
    # one frame, classes (blank, a): log_softmax of the logits (0, t), target "a"
    logits = np.stack([np.zeros_like(t), t], axis=1)[None]
    log_probs = logits - np.log(np.sum(np.exp(logits), axis=-1, keepdims=True))
    n = t.shape[0]
    return log_probs, np.ones((n, 1), np.int64), np.ones(n, np.int64), np.ones(n, np.int64)


def _angle(t: np.ndarray) -> np.ndarray:
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _error(t: np.ndarray) -> tuple[Any, ...]:
    return t, np.zeros_like(t)


def _vary(option: str, values: Sequence[Any]) -> list[tuple[str, dict[str, Any], None]]:
    return [(f"{option}={v}", {option: v}, None) for v in values]


def _targets(values: Sequence[float], make: Callable[[np.ndarray, float], tuple[Any, ...]],
             name: str = "y") -> list[tuple[str, dict[str, Any], Arrays]]:
    def bound(v: float) -> Arrays:
        return lambda t: make(t, v)

    return [(f"{name}={v:g}", {}, bound(v)) for v in values]


ERROR = "error d = input − target"
RECIPES: dict[str, Recipe] = {
    "mse_loss": Recipe(ERROR, -3, 3, _error),
    "l1_loss": Recipe(ERROR, -3, 3, _error),
    "smooth_l1_loss": Recipe(ERROR, -3, 3, _error, _vary("beta", [0.5, 1.0, 2.0])),
    "huber_loss": Recipe(ERROR, -3, 3, _error, _vary("delta", [0.5, 1.0, 2.0])),
    "gaussian_nll_loss": Recipe(ERROR, -3, 3, lambda t: (t, np.zeros_like(t), np.ones_like(t)),
                                _targets([0.5, 1.0, 2.0], lambda t, v: (t, np.zeros_like(t), np.full_like(t, v)),
                                         "var")),
    "poisson_nll_loss": Recipe("input (log of the rate)", -3, 3, lambda t: (t, np.full_like(t, 2.0)),
                               _targets([0.0, 1.0, 3.0], lambda t, v: (t, np.full_like(t, v)), "target")),
    "kl_div": Recipe("input (log q)", -4, 0, lambda t: (t, np.full_like(t, 0.5)),
                     _targets([0.2, 0.5, 0.8], lambda t, v: (t, np.full_like(t, v)), "target p")),
    "binary_cross_entropy": Recipe("input (probability)", 0.02, 0.98, lambda t: (t, np.ones_like(t)),
                                   _targets([1.0, 0.0], lambda t, v: (t, np.full_like(t, v)), "target")),
    "binary_cross_entropy_with_logits": Recipe(
        "input (logit)", -5, 5, lambda t: (t, np.ones_like(t)),
        [*_targets([1.0, 0.0], lambda t, v: (t, np.full_like(t, v)), "target"),
         ("target=1, pos_weight=3", {"pos_weight": np.asarray(3.0)}, lambda t: (t, np.ones_like(t)))]),
    "soft_margin_loss": Recipe("margin y·x (target y = 1)", -5, 5, lambda t: (t, np.ones_like(t))),
    "multilabel_soft_margin_loss": Recipe(
        "input (logit of the one class)", -5, 5, lambda t: (t[:, None], np.ones((t.size, 1))),
        _targets([1.0, 0.0], lambda t, v: (t[:, None], np.full((t.size, 1), v)), "target")),
    "cross_entropy": Recipe("logit of the true class (the other 4 at 0)", -6, 6,
                            lambda t: (np.concatenate([t[:, None], np.zeros((t.size, 4))], axis=1), _zeros_int(t)),
                            _vary("label_smoothing", [0.0, 0.1, 0.3])),
    "nll_loss": Recipe("input (log-probability of the true class)", -5, 0,
                       lambda t: (_pair(t, math.log(0.5)), _zeros_int(t))),
    "multi_margin_loss": Recipe(
        "score of the true class − the other's", -3, 3, lambda t: (_pair(t), _zeros_int(t)),
        [("p=1, margin=1", {}, None), ("p=2, margin=1", {"p": 2}, None), ("p=1, margin=0.5", {"margin": 0.5}, None)]),
    "multilabel_margin_loss": Recipe(
        "score of the listed class − the other's", -3, 3,
        lambda t: (_pair(t), np.tile(np.asarray([[0, -1]], np.int64), (t.size, 1)))),
    "hinge_embedding_loss": Recipe(
        "input (a distance)", 0, 3, lambda t: (t, np.ones_like(t)),
        [*_targets([1.0, -1.0], lambda t, v: (t, np.full_like(t, v)), "target"),
         ("target=-1, margin=2", {"margin": 2.0}, lambda t: (t, -np.ones_like(t)))]),
    "margin_ranking_loss": Recipe("x1 − x2 (target 1: x1 should rank higher)", -3, 3,
                                  lambda t: (t, np.zeros_like(t), np.ones_like(t)), _vary("margin", [0.0, 0.5, 1.0])),
    "cosine_embedding_loss": Recipe(
        "angle between x1 and x2 (radians)", 0, math.pi,
        lambda t: (_angle(t), _angle(np.zeros_like(t)), np.ones_like(t)),
        [("target=1", {}, None),
         *[(f"target=-1, margin={m}", {"margin": m}, lambda t: (_angle(t), _angle(np.zeros_like(t)), -np.ones_like(t)))
           for m in (0.0, 0.5)]]),
    "triplet_margin_loss": Recipe(
        "d(anchor, positive), with d(anchor, negative) = 1", 0.02, 3,
        lambda t: (np.zeros((t.size, 1)), t[:, None], np.ones((t.size, 1))), _vary("margin", [0.5, 1.0, 2.0])),
    "triplet_margin_with_distance_loss": Recipe(
        "d(anchor, positive), with d(anchor, negative) = 1", 0.02, 3,
        lambda t: (np.zeros((t.size, 1)), t[:, None], np.ones((t.size, 1))), _vary("margin", [0.5, 1.0, 2.0])),
    "linear_cross_entropy": Recipe(
        "logit of the true class, h·w_y (the other 4 at 0)", -6, 6,
        lambda t: (t[:, None], np.eye(5, 1), _zeros_int(t)),
        [("defaults", {}, None), ("softcap=2", {"softcap": 2.0}, None), ("z_loss=0.1", {"z_loss": 0.1}, None)]),
    "ctc_loss": Recipe("logit of the label, blank at 0 (one frame)", -6, 6, _ctc),
}

# Layouts tried for a loss without a recipe, in order: the first giving one finite loss per point wins.
GENERIC: list[tuple[str, float, float, Arrays]] = [
    ("error d = input − target (target 1)", -0.9, 3, lambda t: (1 + t, np.ones_like(t))),
    ("logit of the true class (the other at 0)", -6, 6, lambda t: (_pair(t), _zeros_int(t))),
    ("input (probability, target 1)", 0.001, 0.999, lambda t: (t, np.ones_like(t))),
    ("logit of the first class (the other at 0)", -6, 6, lambda t: (_pair(t),)),
]

ROBUST = ["mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss", "log_cosh_loss", "quantile_loss"]


def _generic_variants(spec: LossSpec) -> list[tuple[str, dict[str, Any], None]]:
    """Halve and double the first real-valued option, when its default is a non-zero number."""
    for name, default in spec.options.items():
        if isinstance(default, float) and default != 0.0 and math.isfinite(default):
            return _vary(name, [default / 2, default, default * 2])
    return []


def recipe_for(spec: LossSpec) -> tuple[Recipe | None, str]:
    """The recipe of a loss, or ``(None, why there is no plot)``."""
    if spec.name in RECIPES:
        return RECIPES[spec.name], ""
    for xlabel, lo, hi, arrays in GENERIC:
        recipe = Recipe(xlabel, lo, hi, arrays, _generic_variants(spec))
        try:
            values = _values(spec, recipe, arrays, {}, np.linspace(lo, hi, 7))
        except Exception:  # this layout is not what the loss takes; try the next
            continue
        if np.all(np.isfinite(values)):
            return recipe, ""
    return None, ("no plot: the loss has no recipe in lossreg/docsite/plots.py, and none of the generic "
                  "layouts (error, logit, probability) gives it one finite loss per point")


def _values(spec: LossSpec, recipe: Recipe, arrays: Arrays, options: dict[str, Any], t: np.ndarray) -> np.ndarray:
    opts = dict(options)
    if "reduction" in spec.options:
        opts["reduction"] = "none"
    out = np.asarray(spec.function(*arrays(t), **opts), dtype=np.float64)
    if out.shape != t.shape:
        raise ValueError(f"{spec.name}: {out.shape} values for {t.shape} points")
    return out


def curves(spec: LossSpec, recipe: Recipe, points: int = 241) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """``[(label, t, loss, d loss / d t)]`` for each variant whose call succeeds."""
    t = np.linspace(recipe.lo, recipe.hi, points)
    h = 1e-6 * max(1.0, recipe.hi - recipe.lo)
    found = []
    for label, options, arrays in recipe.variants or [("", {}, None)]:
        make = arrays or recipe.arrays
        try:
            value = _values(spec, recipe, make, options, t)
            grad = (_values(spec, recipe, make, options, t + h) - _values(spec, recipe, make, options, t - h)) / (2 * h)
            grad = np.round(grad, 6)  # the differences' rounding noise (~1e-9) is no part of the curve
        except Exception:  # a typical value the loss refuses (a generic guess): leave that curve out
            continue
        found.append((label, t, value, grad))
    return found


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
                         "axes.grid": True, "grid.alpha": 0.3, "svg.hashsalt": "lossreg"})
    return plt


def plot_loss(spec: LossSpec, recipe: Recipe, path: Path) -> None:
    """The page figure: the loss (left) and its gradient (right), one line per typical option value."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.0, 3.0), layout="constrained")
    for label, t, value, grad in curves(spec, recipe):
        left.plot(t, value, label=label or None, lw=1.6)
        right.plot(t, grad, lw=1.6)
    left.set(title=f"{spec.class_name}", xlabel=recipe.xlabel, ylabel="loss")
    right.set(title="gradient d loss / d x", xlabel=recipe.xlabel, ylabel="gradient")
    right.ticklabel_format(axis="y", useOffset=False)
    if any(v[0] for v in recipe.variants):
        left.legend(frameon=False, fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_thumbnail(spec: LossSpec, recipe: Recipe, path: Path) -> None:
    """A small loss-only curve (default options) for the catalogue."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(2.0, 1.3), layout="constrained")
    t = np.linspace(recipe.lo, recipe.hi, 121)
    try:
        ax.plot(t, _values(spec, recipe, recipe.arrays, {}, t), lw=1.4)
    except Exception:  # the defaults do not fit the generic layout: the first variant that does
        for _, t, value, _ in curves(spec, recipe, points=121)[:1]:
            ax.plot(t, value, lw=1.4)
    ax.tick_params(labelsize=6)
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_robust(specs: dict[str, LossSpec], path: Path) -> list[str]:
    """Regression losses on one axis (loss and gradient against the error); returns the ones drawn."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.5, 3.4), layout="constrained")
    drawn = []
    t = np.linspace(-4, 4, 321)
    styles = iter(["-", "-", "-", "--", "-.", ":", "-", "--"])
    for name in ROBUST:
        if name not in specs:
            continue
        spec = specs[name]
        recipe = RECIPES.get(name) or Recipe(ERROR, -4, 4, lambda t: (1 + t, np.ones_like(t)))
        arrays = recipe.arrays
        h = 1e-6
        try:
            value = _values(spec, recipe, arrays, {}, t)
            grad = (_values(spec, recipe, arrays, {}, t + h) - _values(spec, recipe, arrays, {}, t - h)) / (2 * h)
        except Exception:
            continue
        typical = ", ".join(f"{k}={v}" for k, v in spec.options.items() if isinstance(v, float))
        label = f"{spec.class_name} ({typical})" if typical else spec.class_name
        style = next(styles)
        left.plot(t, value, style, lw=1.6, label=label)
        right.plot(t, grad, style, lw=1.6)
        drawn.append(name)
    left.set(xlabel=ERROR, ylabel="loss", ylim=(-0.2, 4.5), title="loss")
    right.set(xlabel=ERROR, ylabel="gradient", title="gradient (how hard an outlier pulls)")
    left.legend(frameon=False, fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn
