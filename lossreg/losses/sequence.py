"""Sequence losses: alignments of unsegmented sequences (CTC)."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any, NamedTuple

from .. import toolkit
from ..errors import LossTypeError, LossValueError
from ..registry import define_loss


def _shifted_log(xp: Any, m: Any, exp_sum: Callable[[Any], Any]) -> Any:
    """``m + log exp_sum(m)``, with ``exp_sum(shift) = Σ exp(x - shift)``: log Σ exp(x) as torch's
    CTC computes it, m the maximum of the terms.

    All terms -inf gives -inf with finite gradients: the where-guards keep -inf - -inf = NaN and
    log(0) out of the backward pass. The gradient does not depend on how the maximum splits ties
    (the derivative through m cancels).
    """
    # The shift held constant (as optax's stop_gradient(max)): its derivative cancels, and
    # differentiated it only adds the maximum's masks to what the backward pass keeps per frame
    # (under jax.jit CTC's scan saved two boolean and two more float arrays per frame, 1.4x
    # optax's forward+grad at T, N, S = 200, 16, 60).
    m = toolkit.stop_gradient(xp, m)
    dead = m == -math.inf
    return m + xp.log(xp.where(dead, 1.0, exp_sum(xp.where(dead, 0.0, m))))


def _logsumexp(xp: Any, terms: Any) -> Any:
    """log Σ exp over axis 1, by one maximum and one sum over the stacked terms."""
    return _shifted_log(xp, xp.max(toolkit.dense_chunks(terms), axis=1),
                        lambda shift: xp.sum(xp.exp(terms - xp.expand_dims(shift, axis=1)), axis=1))


def _logsumexp3(xp: Any, a: Any, b: Any, c: Any) -> Any:
    """log Σ exp of three arrays, elementwise: no reduction, so a compiler fuses it whole."""
    return _shifted_log(xp, xp.maximum(xp.maximum(a, b), c),
                        lambda shift: xp.exp(a - shift) + xp.exp(b - shift) + xp.exp(c - shift))


def _clamp(xp: Any, x: Any, lo: int, hi: int) -> Any:
    """``clip(x, lo, hi)`` for integer arrays, as ``where``: a bound taken from a shape is symbolic
    under ``torch.compile(dynamic=True)``, which array-api-compat's torch ``clip`` cannot take."""
    return xp.where(x < lo, lo, xp.where(x > hi, hi, x))


def _lengths(name: str, key: str, x: Any, xp: Any, n: int, unbatched: bool, ints: Any) -> Any:
    toolkit.check_integer(name, key, x, xp, "an integer array of lengths")
    if tuple(x.shape) != (n,) and not (unbatched and x.ndim == 0):
        raise LossValueError(name, key, "one length per sequence, shape " + ("() or (1)" if unbatched else f"({n})"),
                             f"shape {tuple(x.shape)}")
    return xp.reshape(xp.astype(x, ints), (n,))


@define_loss(
    class_name="CTCLoss",
    aliases=("ctc", "connectionist_temporal_classification"),
    differentiable=("log_probs",),
    reference="torch.nn.CTCLoss",
)
def ctc_loss(log_probs: Any, targets: Any, input_lengths: Any, target_lengths: Any, /, *, blank: int = 0,
             reduction: str = "mean", zero_infinity: bool = False) -> Any:
    r"""Connectionist temporal classification: ``ℓ_n = -log Σ_{π ∈ B⁻¹(y_n)} Π_t p[t, n, π_t]``.

    $$\ell_n = -\log \sum_{\pi \in \mathcal{B}^{-1}(y_n)} \prod_t p_{t, n, \pi_t}$$

    The sum runs over every alignment π of the first ``input_lengths[n]`` frames that collapses
    (merge repeats, then drop blanks) to the first ``target_lengths[n]`` labels of ``y_n``;
    it is the alpha recursion in log space over the extended labels ``l' = (b, y_1, b, ...,
    y_S, b)``. An impossible alignment (too few frames) gives inf, or 0 with a zero gradient
    under ``zero_infinity``. "mean" divides each loss by its target length (at least 1), then
    averages over the batch.

    Shapes: ``log_probs`` (T, N, C) or unbatched (T, C) of log-probabilities (e.g. a
    log_softmax); ``targets`` padded (N, S) or concatenated (sum(target_lengths)) of labels in
    [0, C) other than ``blank``; ``input_lengths`` and ``target_lengths`` (N) (or () unbatched),
    integer arrays or lists or tuples of ints, each input length at most T. ``targets`` must be
    integers (torch also takes float targets, truncating them; lossreg refuses them).

    The gradient is torch's: over each sequence's frames torch's backward returns
    ``exp(log_probs) - γ`` (γ the alignment posteriors), the derivative of
    ``ctc(log_softmax(log_probs))``, rather than ``-γ``, the derivative of the value. The two
    agree for log-probabilities that come out of a log_softmax, through which gradients reach
    the logits.

    Args:
        blank: the class index of the blank label.
        reduction: "none", "sum", or "mean": each loss divided by its target length, then averaged over the
            batch.
        zero_infinity: give infinite losses (impossible alignments) and their gradients the value 0.
    """
    return ctc(log_probs, targets, input_lengths, target_lengths, blank, reduction, zero_infinity, unrolled, gathered)


# ``(xp, alpha, sources, barred) -> log Σ`` over each state's three predecessors (see ctc).
Predecessors = Callable[[Any, Any, Any, Any], Any]
# ``(xp, came_from, alpha, emit, running, sources, barred) -> alpha`` after the last frame (see ctc).
Frames = Callable[[Any, Predecessors, Any, Any, Any, Any, Any], Any]


def gathered(xp: Any, alpha: Any, sources: Any, barred: Any) -> Any:
    """log Σ over ``(alpha[s], alpha[s-1], alpha[s-2])``, stacked on axis 1 by one gather with fixed
    indices (clamped at 0: the transitions from s < 0 are barred anyway), then one reduction.
    Eager and lazy libraries run or record each operation of every frame, and this is the fewest;
    slices and a concatenation would also split Dask's chunks a little further at every frame."""
    n, length = alpha.shape
    return _logsumexp(xp, xp.reshape(xp.take(alpha, sources, axis=1), (n, 3, length)) + barred)


def sliced(xp: Any, alpha: Any, sources: Any, barred: Any, *,
           lse3: Callable[[Any, Any, Any, Any], Any] = _logsumexp3) -> Any:
    """:func:`gathered` as slices of ``alpha`` padded on the left and an elementwise log-sum-exp
    of the three, ``lse3(xp, a, b, c)`` (a kernel may give one with its derivative stated): under
    ``jax.jit`` a frame is then one loop fusion, where two reductions over an axis of 3 split it
    into four, and the gradient is slices too, not a scatter per frame."""
    n, length = alpha.shape
    # The padding is made like a column of alpha, so that it is placed (sharded) as alpha is.
    pad = xp.full_like(alpha[:, :1], -math.inf)
    padded = xp.concat([pad, pad, alpha], axis=1)
    return lse3(xp, alpha, padded[:, 1:length + 1] + barred[:, 1, :], padded[:, :length] + barred[:, 2, :])


def frame(xp: Any, came_from: Predecessors, alpha: Any, emit: Any, running: Any, sources: Any, barred: Any) -> Any:
    """One frame of the alpha recursion: each state's predecessors summed, times the frame's
    emission (a sum in log space), for the sequences still ``running``; the others keep ``alpha``."""
    # A sequence's frame reads only its own rows: on Dask one task per batch chunk, not the
    # twenty graph layers of its operations, recorded again at every frame (see toolkit.along_rows).
    return toolkit.along_rows(xp, _frame, alpha, emit, running, sources, barred, came_from=came_from)


@toolkit.fused
def _frame(xp: Any, alpha: Any, emit: Any, running: Any, sources: Any, barred: Any, *,
           came_from: Predecessors) -> Any:
    # Fused: on concrete JAX arrays (eager calls) a frame is one compiled program, where its dozen
    # operations were a dozen, each compiled again for every new shape; traced (jit, grad, the
    # kernel's scan) and on every other library it runs as written, the same operations.
    return xp.where(running, came_from(xp, alpha, sources, barred) + emit, alpha)


def unrolled(xp: Any, came_from: Predecessors, alpha: Any, emit: Any, running: Any, sources: Any,
             barred: Any) -> Any:
    """The frames in turn, ``alpha = frame(alpha, emit[t], running[t])``: a Python loop, which
    the standard leaves as the only way (a lazy or traced library records every frame; JAX's
    kernel runs the same frame in a ``lax.scan``, Dask's the loop itself on each batch chunk)."""
    # The frames are unstacked once, not indexed one by one: the gradient of ``emit[t, ...]`` is
    # an array of emit's whole (T, N, L) shape in torch, T of them summed in the backward pass,
    # O(T² N L) (T=1000, S=200, N=4: 25 s against torch's 0.1 s); unstack's is one stack.
    for emit_t, running_t in zip(toolkit.unstack(xp, emit), toolkit.unstack(xp, running)):
        alpha = frame(xp, came_from, alpha, emit_t, running_t, sources, barred)
    return alpha


class Checked(NamedTuple):
    """ctc's arguments, checked: lengths as (N,) integer arrays, the labels' (N, S) or
    concatenated array, and the masks of the sequences that invalid values spoil (lazy arrays)."""

    xp: Any
    ints: Any
    targets: Any
    il: Any
    tl: Any
    padded: bool
    unbatched: bool
    bad: list[Any]
    rows: Any = None  # concatenated targets: each sequence's first labels as a row, (N, min(sum, T))


def _check_listed_range(name: str, listed: dict[str, Any], log_probs: Any, targets: Any, info: Any) -> None:
    """A length given in a list past the index dtype's range (2**70, or a -1 marker read back from
    uint64 as 2**64 - 1) is no length of these arrays, whose sizes fit that dtype: refused as the
    array check refuses a length past T or the targets, where the conversion to an array would
    raise its own OverflowError."""
    for key, value in listed.items():
        far = next((v for v in value if not info.min <= v <= info.max), None)
        if far is None:
            continue
        if key == "input_lengths":
            t = log_probs.shape[0] if log_probs.ndim else "T"
            expected = f"lengths in [0, {t}] (T, the frames of log_probs)"
        else:
            s = targets.shape[-1] if targets.ndim else "S"
            expected = f"lengths in [0, {s}] (at most the targets' length)"
        raise LossValueError(name, key, expected, repr(far))


def _listed_length(v: Any) -> int | None:
    """One length of a list or tuple as torch reads it: an int, a NumPy int, or an integer tensor of one
    element (``list(lengths)`` of a tensor holds 0-d ones, which torch takes, and lossreg refused);
    None for anything else: a bool, a float, an array that cannot be read here (traced, meta)."""
    if isinstance(v, bool) or "bool" in str(getattr(v, "dtype", "")):
        return None
    try:
        return operator.index(v)
    except (TypeError, ValueError, RuntimeError):
        return None


def checked(name: str, log_probs: Any, targets: Any, input_lengths: Any, target_lengths: Any, blank: int,
             reduction: str, zero_infinity: bool) -> Checked:
    targets, input_lengths, target_lengths = (toolkit.beside(log_probs, x) for x in (targets, input_lengths, target_lengths))
    # Lengths may be sequences of ints, as torch.nn.functional.ctc_loss documents (NumPy's ints,
    # from list(array), and 0-d integer tensors, from list(tensor), included, as torch takes them).
    listed = {k: v for k, v in (("input_lengths", input_lengths), ("target_lengths", target_lengths))
              if isinstance(v, (list, tuple))}
    for key, value in listed.items():
        lengths = [_listed_length(v) for v in value]
        if None in lengths:
            raise LossTypeError(name, key, "an integer array or a list or tuple of ints",
                                f"{type(value).__name__} {value!r:.60}")
        listed[key] = lengths
    arrays = {"input_lengths": input_lengths, "target_lengths": target_lengths}
    xp = toolkit.namespace(name, log_probs=log_probs, targets=targets,
                           **{k: v for k, v in arrays.items() if k not in listed})
    # Flat indices reach T·N·C (log_probs) and N·(2S + 1) ≤ N·(2T + 1) (the states).
    ints = toolkit.index_dtype(name, "log_probs", xp, 3 * math.prod(log_probs.shape), log_probs.shape)
    if listed:
        _check_listed_range(name, listed, log_probs, targets, xp.iinfo(ints))
        dev = toolkit.device(log_probs)
        input_lengths, target_lengths = (xp.asarray(listed[k], dtype=ints, device=dev) if k in listed else v
                                         for k, v in arrays.items())
    toolkit.check_floating(name, "log_probs", log_probs, xp)
    toolkit.check_reduction(name, reduction)
    toolkit.check_flag(name, "zero_infinity", zero_infinity)
    if log_probs.ndim not in (2, 3):
        raise LossValueError(name, "log_probs", "log-probabilities of shape (T, N, C) or (T, C)",
                             f"shape {tuple(log_probs.shape)}")
    unbatched = log_probs.ndim == 2
    t_max, c = log_probs.shape[0], log_probs.shape[-1]
    n = 1 if unbatched else log_probs.shape[1]
    if t_max * n * c == 0:
        raise LossValueError(name, "log_probs", "a non-empty array (as torch requires)",
                             f"shape {tuple(log_probs.shape)}")
    toolkit.check_number(name, "blank", blank, 0, c - 1, integer=True)
    toolkit.check_integer(name, "targets", targets, xp, "an integer array of labels")
    if unbatched and targets.ndim == 1:
        # One sequence's labels, the first target_lengths of them read, as the padded form's one
        # row: torch takes a row of exactly that length, and a longer (padded) one is what each
        # sample of jax.vmap / torch.func.vmap over a padded batch gets.
        targets = xp.reshape(targets, (1, targets.shape[0]))
    padded = targets.ndim == 2
    if targets.ndim not in (1, 2) or (padded and targets.shape[0] != n):
        raise LossValueError(name, "targets", f"padded labels of shape ({n}, S) or concatenated ones of shape "
                             "(sum(target_lengths))", f"shape {tuple(targets.shape)}")
    il = _lengths(name, "input_lengths", input_lengths, xp, n, unbatched, ints)
    tl = _lengths(name, "target_lengths", target_lengths, xp, n, unbatched, ints)
    dev = toolkit.device(log_probs)

    # Invalid values raise on eager arrays; on lazy ones each flags the sequences it spoils.
    # Quoted from the lengths as given (flattened, as il): a uint64 one past int64 is negative in il.
    width = targets.shape[-1]  # S padded, sum(target_lengths) concatenated
    labels, il_wrong, tl_wrong, total, total_wrong, wrong, rows = _invalid(
        xp, targets, il, tl, padded=padded, t_max=t_max, c=c, blank=blank, ints=ints, dev=dev)
    bad = [toolkit.check_values(name, "input_lengths", il, il_wrong, xp,
                                lambda: f"lengths in [0, {t_max}] (T, the frames of log_probs)",
                                quote=input_lengths)]
    if padded:
        bad.append(toolkit.check_values(name, "target_lengths", tl, tl_wrong, xp,
                                        lambda: f"lengths in [0, {width}] (S, the padded targets' length)",
                                        quote=target_lengths))
    else:
        bad.append(toolkit.check_values(name, "target_lengths", tl, tl_wrong, xp, "non-negative lengths"))
        bad.append(toolkit.check_values(name, "target_lengths", total, total_wrong, xp,
                                    lambda: f"lengths summing to {width}, the length of the concatenated targets"))
    flagged = toolkit.check_values(name, "targets", targets, wrong, xp,
                               lambda: f"labels in [0, {c}) other than blank={blank} (within target_lengths)")
    if flagged is not None:
        bad.append(xp.any(flagged, axis=1) if padded else xp.reshape(xp.any(flagged), (1,)))
    return Checked(xp, ints, labels, il, tl, padded, unbatched, bad, rows)


@toolkit.fused(rows=lambda padded, **_: (0, 0, 0) if padded else None)  # concatenated: sums over the batch
def _invalid(xp: Any, targets: Any, il: Any, tl: Any, *, padded: bool, t_max: int, c: int, blank: int, ints: Any,
             dev: Any) -> tuple[Any, ...]:
    """:func:`checked`'s masks of invalid values, computed before any is checked: ``(labels, il_wrong,
    tl_wrong, total, total_wrong, wrong, rows)``, the labels in the index dtype, lengths out of
    range, the concatenated targets' summed lengths (1,) and whether they miss the targets' length
    (None for padded targets), labels out of range or blank within the lengths, and the first
    min(sum, T) of each sequence's concatenated labels as its row (None for padded targets: read
    at offsets summed over the batch, here, so that what reads the labels then reads only each
    sequence's own row). One compiled program on eager JAX, not a dozen, and with padded targets
    one task per batch chunk on Dask (see :func:`toolkit.fused`)."""
    n, width = tl.shape[0], targets.shape[-1]
    labels = xp.astype(targets, ints)
    il_wrong = (il < 0) | (il > t_max)
    total = total_wrong = rows = None
    if padded:
        tl_wrong = (tl < 0) | (tl > width)
        active = xp.reshape(xp.arange(width, dtype=ints, device=dev), (1, width)) < xp.reshape(tl, (n, 1))
    else:
        tl_wrong = tl < 0
        total = xp.reshape(xp.sum(tl), (1,))
        total_wrong = total != width
        active = xp.ones(labels.shape, dtype=xp.bool, device=dev)
        # Dask's cumulative sum fails when computed on an empty chunk ("operands could not be
        # broadcast together with shapes (0,) (2,)"), which lengths picked by a boolean mask, then
        # compute_chunk_sizes(), hold: summed without them (anything else as it is).
        dense = toolkit.dense_chunks(tl)
        rows = _spread(xp, labels, xp.cumulative_sum(dense) - dense, min(width, t_max), ints, dev)
    wrong = active & ((labels < 0) | (labels >= c) | (labels == blank))
    return labels, il_wrong, tl_wrong, total, total_wrong, wrong, rows


def _spread(xp: Any, flat: Any, offsets: Any, s_max: int, ints: Any, dev: Any) -> Any:
    """The concatenated labels ``flat`` as rows (N, s_max), each sequence's first ``s_max`` read
    from its ``offsets`` on (clamped into the array: what is read past a sequence's length is
    masked by :func:`_read_labels`)."""
    n = offsets.shape[0]
    if not s_max:  # Dask cannot take from an empty array
        return xp.zeros((n, 0), dtype=ints, device=dev)
    width = flat.shape[0]
    spots = xp.reshape(offsets, (n, 1)) + xp.reshape(xp.arange(s_max, dtype=ints, device=dev), (1, s_max))
    return xp.reshape(xp.take(flat, xp.reshape(_clamp(xp, spots, 0, width - 1), (-1,)), axis=0), (n, s_max))


def _read_labels(xp: Any, labels: Any, tl: Any, s_max: int, c: int, blank: int, ints: Any, dev: Any) -> Any:
    """The first ``s_max`` labels of each sequence, (N, s_max), from its row of ``labels`` (the
    padded targets, or the concatenated ones as rows: see :func:`_invalid`), padding (and, on lazy
    arrays, invalid labels) made blank, so that every gather stays in range."""
    n = tl.shape[0]
    labels = labels[:, :s_max]
    positions = xp.reshape(xp.arange(s_max, dtype=ints, device=dev), (1, s_max))
    usable = (positions < xp.reshape(tl, (n, 1))) & (labels >= 0) & (labels < c)
    return xp.where(usable, labels, blank)


def _transitions(xp: Any, labels: Any, blank: int, ints: Any, dev: Any) -> tuple[Any, Any, Any, Any]:
    """``(extended, s_row, sources, allowed)``: the extended labels l' = (b, y_1, b, ..., y_S, b)
    (N, L), the states 0..L-1 as a (1, L) row, and the three predecessors of each state, side by
    side: column j of ``sources`` (3L) holds state j mod L's predecessor j // L steps back, and
    ``allowed`` (N, 3, L) says whether that transition exists."""
    n, s_max = labels.shape
    length = 2 * s_max + 1
    s_index = xp.arange(length, dtype=ints, device=dev)
    # The states as a row, beside (N, L) arrays: JAX's rank_promotion="raise" refuses implicit ranks.
    s_row = xp.reshape(s_index, (1, length))
    if s_max:
        # One take along the labels, not a stack and a concatenation: on Dask these split the
        # states into chunks that every frame would then have to merge again. State s reads label
        # (s - 1) // 2, as a shift of s - 1 clipped at 0 (the even states' reads are masked, and
        # the last one, 2S, reads label S - 1): a floor division of a signed integer is some twenty
        # operations an entry under jax.jit, a shift of one that is not negative one.
        spread = toolkit.take_within(xp, labels, xp.clip(s_index - 1, 0, None) >> 1, axis=1)
        extended = xp.where((s_row & 1) == 1, spread, blank)
    else:  # Dask cannot take from an empty array
        extended = xp.full((n, 1), blank, dtype=ints, device=dev)
    # The skip l'[s-2] -> l'[s] is allowed between two different labels (never from or to a blank).
    # States 0 and 1 have no s - 2: each is compared with itself, which no skip passes.
    back2 = xp.where(s_index < 2, s_index, s_index - 2)
    skip = (extended != blank) & (extended != toolkit.take_within(xp, extended, back2, axis=1))
    # alpha[s], alpha[s-1] and alpha[s-2] side by side (see gathered): each frame is then a
    # handful of operations, which is what eager JAX dispatches (and compiles per shape), Dask
    # adds to its graph and an unrolled jit compiles, T times over. Built by broadcasting a
    # (3, 1) column of steps back against the states, not by dividing a (3L) arange by L (a
    # floor division and a remainder, each many operations an entry under jax.jit): on Dask
    # every operand is one chunk along the states, so no frame is rechunked.
    back = xp.reshape(xp.arange(3, dtype=ints, device=dev), (1, 3, 1))
    prior = xp.reshape(s_row, (1, 1, length)) - back
    sources = xp.reshape(xp.clip(prior, 0, None), (3 * length,))
    # Not allowed: from s - 1 < 0, or a skip from s - 2 between labels that may not skip (a
    # skip is from s >= 2: one select, not the two masks' and and or on (N, 3, L) arrays).
    allowed = xp.where(back < 2, prior >= 0, xp.reshape(skip, (n, 1, length)))
    return extended, s_row, sources, allowed


@toolkit.fused(rows=(0, 0, 0))
def _alignment(xp: Any, labels: Any, tl: Any, il: Any, *, s_max: int, t_max: int, c: int, blank: int, ints: Any,
               dev: Any) -> tuple[Any, ...]:
    """What :func:`ctc` reads from the labels' rows and the lengths, as masks and indices: ``extended``,
    ``sources`` and ``allowed`` (see :func:`_transitions`) of the first ``s_max`` labels; the
    frames each sequence runs, ``running`` (T, N, 1); the masks of the states ``start`` (1, L),
    the empty prefix, and ``at_blank``, ``at_label`` (N, L), the final blank and label (see
    :func:`ctc`); whether a sequence ``has_label`` (N), and the sequences whose target is
    ``too_long`` for the frames (N). Index arithmetic only, some forty operations on small
    arrays: one compiled program on eager JAX, not forty, and one task per batch chunk on Dask
    (a sequence's setup reads only its own row: see :func:`toolkit.fused`)."""
    n = tl.shape[0]
    extended, s_row, sources, allowed = _transitions(
        xp, _read_labels(xp, labels, tl, s_max, c, blank, ints, dev), blank, ints, dev)
    il = _clamp(xp, il, 0, t_max)
    frames = xp.reshape(xp.arange(t_max, dtype=ints, device=dev), (t_max, 1)) < xp.reshape(il, (1, n))
    last = xp.reshape(_clamp(xp, tl, 0, s_max) * 2, (n, 1))
    return (extended, sources, allowed, xp.reshape(frames, (t_max, n, 1)), s_row == 0, s_row == last,
            s_row == last - 1, last[:, 0] > 0, tl > s_max)


def ctc(log_probs: Any, targets: Any, input_lengths: Any, target_lengths: Any, blank: int, reduction: str,
        zero_infinity: bool, over_frames: Frames, came_from: Predecessors) -> Any:
    """:func:`ctc_loss`, with the loop over the frames, ``over_frames(xp, came_from, alpha, emit,
    running, sources, barred)`` (:func:`unrolled`, or a kernel's), and the sum over each state's
    three predecessors, ``came_from(xp, alpha, sources, barred)`` (:func:`gathered` or
    :func:`sliced`), given."""
    arg = checked("ctc_loss", log_probs, targets, input_lengths, target_lengths, blank, reduction, zero_infinity)
    xp, tl = arg.xp, arg.tl
    t_max, n, c = log_probs.shape[0], tl.shape[0], log_probs.shape[-1]
    dev = toolkit.device(log_probs)
    # A target longer than T cannot be aligned (inf), so at most T labels per sequence are read.
    s_max = min(arg.targets.shape[-1], t_max)
    extended, sources, allowed, running, start, at_blank, at_label, has_label, too_long = _alignment(
        xp, arg.targets if arg.padded else arg.rows, tl, arg.il, s_max=s_max, t_max=t_max, c=c, blank=blank,
        ints=arg.ints, dev=dev)
    length = 2 * s_max + 1

    dtype = log_probs.dtype
    work = toolkit.compute_dtype(xp, dtype)
    # The frames are read one by one, which JAX refuses on a time axis split over a mesh of
    # explicit axes; automatic axes gather it whole on their own.
    lp = toolkit.whole(xp, xp.reshape(toolkit.as_dtype(xp, log_probs, work), (t_max, n, c)), axis=0)
    # A sequence's emissions and start read only its own rows: on Dask one task per batch chunk,
    # not the ten graph layers of its operations (see toolkit.by_rows).
    emit, barred, alpha = toolkit.by_rows(xp, _opening, lp, extended, running, allowed, start, rows=(1, 0, 1, 0, None),
                                          work=work, dev=dev)

    alpha = over_frames(xp, came_from, alpha, emit, running, sources, barred)

    # A sequence's loss reads only its own rows: on Dask one task per batch chunk, not the thirty
    # graph layers of its operations (see toolkit.by_rows).
    losses = toolkit.by_rows(xp, _ending, alpha, lp, running, at_blank, at_label, has_label, too_long,
                             rows=(0, 1, 1, 0, 0, 0, 0), zero_infinity=zero_infinity)
    return reduced(arg, losses, reduction, dtype)


@toolkit.fused
def _opening(xp: Any, lp: Any, extended: Any, running: Any, allowed: Any, start: Any, *, work: Any,
             dev: Any) -> tuple[Any, Any, Any]:
    """``(emit, barred, alpha)``: each frame's log-probabilities of the extended labels (T, N, L),
    the transitions' log-weights (N, 3, L), and alpha before the first frame (see :func:`ctc`).
    Fused, as :func:`_frame` and :func:`_ending`: one program per shape on concrete JAX arrays."""
    emit = toolkit.take_rows(xp, lp, extended)
    # Frames past a sequence's length are never read; zeroing them keeps NaN padding out of the gradient.
    emit = xp.where(running, emit, 0.0)

    # Shaped like a frame, so that on Dask every frame's operands share emit's chunks (arrays
    # created whole would be rechunked to them at every frame).
    neg = xp.full_like(emit[0, ...], -math.inf)
    # zeros, not asarray(0.0): a tensor made from a Python number is a copy from the host, which
    # waits for the device (CUDA's sync debug mode flags it); zeros is a fill on the device.
    barred = xp.where(allowed, xp.zeros((), dtype=work, device=dev), -math.inf)

    # Before the first frame: the empty prefix, at s = 0 with probability 1.
    alpha = xp.where(start, 0.0, neg)
    return emit, barred, alpha


@toolkit.fused
def _ending(xp: Any, alpha: Any, lp: Any, running: Any, at_blank: Any, at_label: Any, has_label: Any, too_long: Any,
            *, zero_infinity: bool) -> Any:
    """Each sequence's loss from ``alpha`` after the last frame (see :func:`ctc`); fused, as :func:`_frame`."""
    # log p(y | x) = logaddexp(alpha[2S], alpha[2S - 1]) at the last frame.
    # Each picked by a mask summed over the states (the pick plus zeros, exactly), not a take: on
    # Dask a take would pair every batch chunk of the lengths with every one of alpha.
    end_blank = xp.sum(xp.where(at_blank, alpha, 0.0), axis=1)
    end_label = xp.where(has_label, xp.sum(xp.where(at_label, alpha, 0.0), axis=1), -math.inf)
    losses = -_logsumexp(xp, xp.stack([end_blank, end_label], axis=1))
    losses = xp.where(too_long, math.inf, losses)

    # torch's backward returns exp(x) - γ, not the derivative -γ of its value (see the docstring):
    # e - e held constant adds exactly 0 to the value and Σ exp(x) to what is differentiated.
    e = xp.sum(xp.exp(xp.where(running, lp, -math.inf)), axis=(0, 2)) + 1
    losses = losses + toolkit.zero_with_gradient(xp, e)
    if zero_infinity:
        losses = xp.where(losses == math.inf, 0.0, losses)
    return losses


def reduced(arg: Checked, losses: Any, reduction: str, dtype: Any) -> Any:
    """The sequences' ``losses`` (in the dtype computed in), NaN where ``arg``'s checks flagged
    them, reduced as ``reduction`` says, in ``dtype``."""
    xp = arg.xp
    for mask in arg.bad:
        losses = toolkit.poison(xp, losses, mask)
    if reduction == "mean":
        out = xp.mean(losses / xp.astype(toolkit.clip(xp, arg.tl, 1), losses.dtype))
    elif reduction == "sum":
        out = xp.sum(losses)
    else:
        out = losses[0] if arg.unbatched else losses
    return toolkit.as_dtype(xp, out, dtype)
