"""lossreg on JAX against the libraries a JAX user would otherwise pick: optax and Keras (JAX backend).

On JAX no kernel stands in for lossreg's portable definition, so the portable code is what runs.
Each row times one loss at one size in one mode, lossreg and its peers on the same arrays,
interleaved round by round, each after each other equally often (so that a busy machine, or a
peer that slows the next call, slows all alike; see :func:`lossreg.timing.measure`), and
reports the median time per call and the ratios lossreg / peer.

Modes: ``jit forward`` and ``jit forward+grad`` (``jax.value_and_grad`` with respect to the
first input, inside ``jax.jit``; compiled before timing), ``eager forward`` and ``eager
forward+grad`` (op by op, as in a notebook). Peers compute the same formula as lossreg's
default options: optax's per-example values reduced by ``.mean()`` (Keras's likewise), e.g.
``optax.losses.softmax_cross_entropy_with_integer_labels(x, y).mean()`` for ``cross_entropy(x, y)``.
Inputs are prepared outside the timed call (one-hot labels for optax's poly-1, say).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .timing import SAME, SIZES, differ, largest_difference, measure as _measure, report, us as _us

MODES = ("jit forward", "jit forward+grad", "eager forward", "eager forward+grad")
# Targets of issue 13, for lossreg / optax: (mode, size or None for every size) -> ratio.
TARGETS = {("jit forward", None): 1.1, ("jit forward+grad", None): 1.2,
           ("eager forward", "tiny"): 1.5, ("eager forward+grad", "tiny"): 1.5}


@dataclass(frozen=True)
class Pair:
    """One loss and its peers. ``make(rng, shape)`` returns lossreg's arrays and each peer's."""

    loss: str  # lossreg's name
    call: str  # how lossreg is called, for the report
    lossreg: Callable[..., Any]
    optax: Callable[..., Any] | None
    keras: Callable[..., Any] | None
    make: Callable[[Any, tuple[int, int]], dict[str, tuple[Any, ...]]]
    sizes: tuple[str, ...] = tuple(SIZES)


def _pairs() -> dict[str, Pair]:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    import lossreg

    keras = _keras()
    kl = keras.losses if keras is not None else None

    def normal(rng: Any, shape: tuple[int, ...]) -> Any:
        return jnp.asarray(rng.standard_normal(shape, dtype=np.float32))

    def labels(rng: Any, shape: tuple[int, int]) -> Any:
        return jnp.asarray(rng.integers(0, shape[1], size=shape[0]).astype(np.int32))

    def same(rng: Any, shape: tuple[int, int], y: Any = None) -> dict[str, tuple[Any, ...]]:
        x = normal(rng, shape)
        y = normal(rng, shape) if y is None else y
        return {"lossreg": (x, y), "optax": (x, y), "keras": (x, y)}

    def index(rng: Any, shape: tuple[int, int]) -> dict[str, tuple[Any, ...]]:
        x, y = normal(rng, shape), labels(rng, shape)
        return {"lossreg": (x, y), "optax": (x, y), "keras": (x, y)}

    def index_onehot(rng: Any, shape: tuple[int, int]) -> dict[str, tuple[Any, ...]]:
        x, y = normal(rng, shape), labels(rng, shape)
        return {"lossreg": (x, y), "optax": (x, jax.nn.one_hot(y, shape[1], dtype=x.dtype)), "keras": (x, y)}

    def probabilities(rng: Any, shape: tuple[int, int]) -> dict[str, tuple[Any, ...]]:
        x, t = normal(rng, shape), jax.nn.softmax(normal(rng, shape), axis=1)
        return {"lossreg": (x, t), "optax": (x, t), "keras": (x, t)}

    def log_probabilities(rng: Any, shape: tuple[int, int]) -> dict[str, tuple[Any, ...]]:
        x, t = jax.nn.log_softmax(normal(rng, shape), axis=1), jax.nn.softmax(normal(rng, shape), axis=1)
        return {"lossreg": (x, t), "optax": (x, t), "keras": (x, t)}

    def binary(rng: Any, shape: tuple[int, int]) -> dict[str, tuple[Any, ...]]:
        return same(rng, shape, jnp.asarray((rng.random(shape) < 0.5).astype(np.float32)))

    def triplets(rng: Any, shape: tuple[int, int]) -> dict[str, tuple[Any, ...]]:
        a, p, n = normal(rng, shape), normal(rng, shape), normal(rng, shape)
        return {"lossreg": (a, p, n), "optax": (a, p, n)}

    # CTC at its own sizes, by the row's size: (batch, frames, classes, labels per sequence).
    ctc_dims = dict(zip(SIZES.values(), [(2, 5, 5, 2), (8, 50, 32, 20), (16, 200, 128, 60)]))

    def sequences(rng: Any, shape: tuple[int, int]) -> dict[str, tuple[Any, ...]]:
        b, t, k, s = ctc_dims.get(shape, (2, shape[0], shape[1], 2))
        logits = normal(rng, (b, t, k))
        labels = jnp.asarray(rng.integers(1, k, size=(b, s)).astype(np.int32))
        frames = jnp.asarray(rng.integers(t // 2, t + 1, size=b).astype(np.int32))
        used = jnp.asarray(rng.integers(1, s + 1, size=b).astype(np.int32))
        logit_pad = (jnp.arange(t)[None, :] >= frames[:, None]).astype(jnp.float32)
        label_pad = (jnp.arange(s)[None, :] >= used[:, None]).astype(jnp.float32)
        return {"lossreg": (logits, labels, frames, used), "optax": (logits, logit_pad, labels, label_pad)}

    def ctc(logits: Any, labels: Any, frames: Any, used: Any) -> Any:
        log_probs = jnp.transpose(jax.nn.log_softmax(logits, axis=-1), (1, 0, 2))  # (T, B, K), as torch's
        return lossreg.ctc_loss(log_probs, labels, frames, used, reduction="sum") / logits.shape[0]

    extras: dict[str, Callable[..., Any]] = {}
    for name in ("log_cosh_loss", "poly1_cross_entropy", "sparsemax_loss"):
        try:
            extras[name] = (lambda loss: lambda *arrays: loss(*arrays))(lossreg.get(name))
        except Exception:  # the lossreg-extras plugin is not installed
            pass

    def keras_mean(f: Callable[..., Any], **kw: Any) -> Callable[..., Any] | None:
        # Keras takes (y_true, y_pred) and returns per-example values.
        return None if kl is None else (lambda x, y: jnp.mean(f(y, x, **kw)))

    pairs = [
        Pair("cross_entropy", "cross_entropy(x, labels)", lossreg.cross_entropy,
             lambda x, y: optax.losses.softmax_cross_entropy_with_integer_labels(x, y).mean(),
             keras_mean(kl.sparse_categorical_crossentropy, from_logits=True) if kl else None, index),
        Pair("cross_entropy", "cross_entropy(x, probabilities)", lossreg.cross_entropy,
             lambda x, t: optax.losses.softmax_cross_entropy(x, t).mean(),
             keras_mean(kl.categorical_crossentropy, from_logits=True) if kl else None, probabilities),
        Pair("binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits(x, y)",
             lossreg.binary_cross_entropy_with_logits,
             lambda x, y: optax.losses.sigmoid_binary_cross_entropy(x, y).mean(),
             keras_mean(kl.binary_crossentropy, from_logits=True) if kl else None, binary),
        Pair("mse_loss", "mse_loss(x, y)", lossreg.mse_loss, lambda x, y: optax.losses.squared_error(x, y).mean(),
             keras_mean(kl.mean_squared_error) if kl else None, same),
        Pair("l1_loss", "l1_loss(x, y)", lossreg.l1_loss, None,
             keras_mean(kl.mean_absolute_error) if kl else None, same),
        Pair("huber_loss", "huber_loss(x, y)", lossreg.huber_loss, lambda x, y: optax.losses.huber_loss(x, y).mean(),
             keras_mean(kl.huber) if kl else None, same),
        Pair("kl_div", "kl_div(log_p, t, reduction='batchmean')",
             lambda x, t: lossreg.kl_div(x, t, reduction="batchmean"),
             lambda x, t: optax.losses.kl_divergence(x, t).mean(), None, log_probabilities),
        Pair("triplet_margin_loss", "triplet_margin_loss(a, p, n)", lossreg.triplet_margin_loss,
             lambda a, p, n: optax.losses.triplet_margin_loss(a, p, n).mean(), None, triplets),
        # optax takes logits and paddings; lossreg torch's log-probabilities and lengths.
        Pair("ctc_loss", "ctc_loss(log_softmax(x), y, lengths, 'sum') / B [B,T,K,S: 2,5,5,2|8,50,32,20|16,200,128,60]",
             ctc,
             lambda x, xp, y, yp: optax.losses.ctc_loss(x, xp, y, yp).mean(), None, sequences),
    ]
    if "log_cosh_loss" in extras:
        pairs.append(Pair("log_cosh_loss", "log_cosh_loss(x, y) [extras]", extras["log_cosh_loss"],
                          lambda x, y: optax.losses.log_cosh(x, y).mean(), keras_mean(kl.log_cosh) if kl else None, same))
    if "poly1_cross_entropy" in extras:
        pairs.append(Pair("poly1_cross_entropy", "poly1_cross_entropy(x, labels) [extras]",
                          extras["poly1_cross_entropy"],
                          lambda x, t: optax.losses.poly_loss_cross_entropy(x, t, epsilon=1.0).mean(), None, index_onehot))
    if "sparsemax_loss" in extras:
        pairs.append(Pair("sparsemax_loss", "sparsemax_loss(x, labels) [extras]", extras["sparsemax_loss"],
                          lambda x, y: optax.losses.multiclass_sparsemax_loss(x, y).mean(), None, index))
    return {p.call.split(" [")[0]: p for p in pairs}


def _keras() -> Any:
    """Keras on its JAX backend, or None (not installed, or already imported with another backend)."""
    import sys

    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "jax")
    try:
        import keras
    except ImportError:
        return None
    return keras if keras.backend.backend() == "jax" else None


@dataclass
class PeerRow:
    loss: str
    call: str
    size: str
    shape: tuple[int, ...]
    mode: str
    lossreg_us: float
    optax_us: float | None
    keras_us: float | None
    samples: int
    calls_per_sample: int
    target: float | None = None
    load: float | None = None  # the 1-minute load average when the row was taken (a shared machine)
    # The largest difference of a peer's outputs (value, and gradient in forward+grad) from
    # lossreg's, relative to lossreg's largest: beyond timing.SAME the row compares different
    # formulas, meets no target and says so.
    max_rel_diff: float = 0.0
    same_values: bool = field(init=False)
    optax_ratio: float | None = field(init=False)
    keras_ratio: float | None = field(init=False)
    met: bool | None = field(init=False)

    def __post_init__(self) -> None:
        self.optax_ratio = None if self.optax_us is None else self.lossreg_us / self.optax_us
        self.keras_ratio = None if self.keras_us is None else self.lossreg_us / self.keras_us
        self.same_values = self.max_rel_diff <= SAME
        self.met = (None if self.target is None or self.optax_ratio is None or not self.same_values
                    else self.optax_ratio <= self.target)


def _timed(fn: Callable[..., Any], args: tuple[Any, ...], mode: str) -> Callable[[], Any]:
    import jax

    f = jax.value_and_grad(fn) if mode.endswith("grad") else fn
    if mode.startswith("jit"):
        f = jax.jit(f)

    def call() -> Any:
        return jax.block_until_ready(f(*args))

    return call


def _load1() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def target_for(mode: str, size: str) -> float | None:
    return TARGETS.get((mode, size), TARGETS.get((mode, None)))


def loss_names() -> list[str]:
    """What ``run(losses=...)`` takes: each timed pair's loss, and its call's name."""
    pairs = _pairs()
    return list(dict.fromkeys([p.loss for p in pairs.values()] + [k.split("(")[0] for k in pairs]))


def run(losses: Sequence[str] | None = None, sizes: Sequence[str] = tuple(SIZES), modes: Sequence[str] = MODES,
        budget_s: float = 0.5, log: Callable[[str], None] | None = None, seed: int = 0) -> list[PeerRow]:
    import numpy as np

    pairs = _pairs()
    chosen = [pairs[k] for k in pairs if losses is None or pairs[k].loss in losses or k.split("(")[0] in losses]
    rows = []
    for size in sizes:
        for pair in chosen:
            if size not in pair.sizes:
                continue
            arrays = pair.make(np.random.default_rng(seed), SIZES[size])
            for mode in modes:
                calls = {"lossreg": _timed(pair.lossreg, arrays["lossreg"], mode)}
                for peer in ("optax", "keras"):
                    fn = getattr(pair, peer)
                    if fn is not None:
                        calls[peer] = _timed(fn, arrays[peer], mode)
                # One warm-up call: a JAX function is compiled (whole under jit, per operation
                # eagerly) on its first call, and the timing round after it is a second warm one.
                # A second warm-up would add a sixth call of several seconds to each large row.
                diff: list[float] = []
                med, samples, batch = _measure(
                    calls, budget_s, warmups=1, check=lambda out: diff.append(largest_difference(out, "lossreg")))
                # The shape of lossreg's first array as timed: CTC's (B, T, K) are its own, not the size's.
                shape = tuple(int(d) for d in arrays["lossreg"][0].shape)
                row = PeerRow(pair.loss, pair.call, size, shape, mode, med["lossreg"] * 1e6,
                              med["optax"] * 1e6 if "optax" in med else None,
                              med["keras"] * 1e6 if "keras" in med else None, samples, batch,
                              target_for(mode, size) if "optax" in med else None, _load1(),
                              diff[0])
                rows.append(row)
                if log:
                    log("  ".join(_cells(row)))
    return rows


HEADER = ("call", "size", "mode", "lossreg µs", "optax µs", "ratio", "target", "keras µs", "ratio", "load")


def _cells(r: PeerRow) -> tuple[str, ...]:
    def maybe(v: float | None, fmt: Callable[[float], str]) -> str:
        return "—" if v is None else fmt(v)

    target = ("VALUES DIFFER" if not r.same_values else
              "" if r.target is None else f"≤{r.target} " + ("met" if r.met else "MISSED"))
    return (r.call, f"{r.size} {'×'.join(map(str, r.shape))}", r.mode, _us(r.lossreg_us), maybe(r.optax_us, _us),
            maybe(r.optax_ratio, lambda v: f"{v:.2f}"), target, maybe(r.keras_us, _us),
            maybe(r.keras_ratio, lambda v: f"{v:.2f}"), maybe(r.load, lambda v: f"{v:.1f}"))


def markdown(rows: Sequence[PeerRow], context: dict[str, Any]) -> str:
    return report(
        "lossreg on JAX against optax and Keras", context, f"{context['cpu']} ({context['cores']} cores)",
        "float32 on the CPU. Median time per call; ratio = lossreg / peer on the same arrays, sampled "
        "interleaved. Peers compute the same formula: optax's (Keras's) per-example values reduced by "
        "`.mean()`. `forward+grad` is `jax.value_and_grad` with respect to the first input. "
        "Targets (issue 13) apply to the optax ratio. `load`: the 1-minute load average as the row "
        "finished; on a shared machine the ratios, interleaved, are what counts. Each call is timed to "
        "completion, so a tiny row is latency, and on JAX's asynchronous CPU dispatch a program's "
        "latency depends on the program that ran before it (`benchmarks/jax_tiny_latency.py`).",
        HEADER, rows, _cells,
        lambda r: f"{r.call} {r.size} {r.mode} {r.optax_ratio:.2f}× (target {r.target}×)"
    ) + differ(rows, lambda r: f"{r.call} {r.size} {r.mode}")


def versions() -> dict[str, str]:
    from .timing import CORE
    from .timing import versions as _versions

    return _versions(*CORE, "jax", "jaxlib", "optax", "keras")
