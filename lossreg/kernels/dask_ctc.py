"""Dask kernel of ctc_loss: each batch chunk's sequences computed by one task, whatever T.

The standard has no loop construct, so on Dask the portable recursion over the T frames is
recorded in the graph frame after frame: a task per frame and batch chunk, and the frame's two
slices, each built and then scheduled on its own (T=200 in 4 chunks: 2,828 tasks, 0.5 s to build
and 1.4 s to compute, where this kernel's 20 tasks take 0.1 s; ``benchmarks/results/dask_ctc.md``).
A sequence's loss reads only its own row of each input, so:

- padded targets (N, S): one task per batch chunk runs the portable definition on that chunk's
  own arrays (NumPy, or CuPy), invalid values poisoned rather than raised, as on any lazy array;
  the sequences' losses are then reduced on Dask;
- concatenated targets, whose rows are found only from the lengths' values: the portable
  definition on Dask, but for the loop over the frames, which is one task per batch chunk.

The argument checks run on the Dask arrays first, so a bad shape or dtype raises at the call,
and invalid values make their sequences NaN exactly as the portable path does. A task holds all
frames and classes of its sequences: the inputs' chunks along those axes are merged.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import dask.array as da

from .. import toolkit
from ..losses import sequence


def _chunk_losses(log_probs: Any, targets: Any, input_lengths: Any, target_lengths: Any, *, blank: int,
                  zero_infinity: bool) -> Any:
    if log_probs.shape[1] == 0:  # an empty chunk (boolean indexing leaves them): no sequences, no losses
        return array_api_compat.array_namespace(log_probs).zeros((0,), dtype=log_probs.dtype)
    with toolkit.value_checks("poison"):  # a lazy array's invalid values: NaN, not an error at compute
        return sequence.ctc(log_probs, targets, input_lengths, target_lengths, blank, "none", zero_infinity,
                            sequence.unrolled, sequence.gathered)


def _chunk_frames(alpha: Any, emit: Any, running: Any, sources: Any, barred: Any, *,
                  came_from: sequence.Predecessors) -> Any:
    xp = array_api_compat.array_namespace(alpha, emit)
    return sequence.unrolled(xp, came_from, alpha, emit, running, sources, barred)


def _frames_per_chunk(xp: Any, came_from: sequence.Predecessors, alpha: Any, emit: Any, running: Any,
                      sources: Any, barred: Any) -> Any:
    # Indices: n the batch (the chunks), t the frames, l the states, j the three predecessors,
    # m the flat (3L) sources, k running's axis of one. All but n are merged into one chunk.
    return da.blockwise(_chunk_frames, "nl",
                        alpha.rechunk({1: -1}), "nl",
                        emit.rechunk({0: -1, 2: -1}), "tnl",
                        running.rechunk({0: -1, 2: -1}), "tnk",
                        sources.rechunk(-1), "m",
                        barred.rechunk({1: -1, 2: -1}), "njl",
                        came_from=came_from, concatenate=True, meta=alpha._meta)


def ctc_loss(log_probs: Any, targets: Any, input_lengths: Any, target_lengths: Any, /, *, blank: int = 0,
             reduction: str = "mean", zero_infinity: bool = False) -> Any:
    if log_probs.ndim == 3 and getattr(targets, "ndim", None) == 1:  # concatenated; ctc checks the arguments
        # The portable setup runs on Dask here, and Dask's own operations fail on an empty chunk
        # (boolean indexing leaves them): the batch's chunks without them.
        log_probs = toolkit.dense_chunks(log_probs, 1)
        input_lengths, target_lengths = (toolkit.dense_chunks(x, 0) for x in (input_lengths, target_lengths))
        return sequence.ctc(log_probs, targets, input_lengths, target_lengths, blank, reduction, zero_infinity,
                            _frames_per_chunk, sequence.gathered)
    arg = sequence.checked("ctc_loss", log_probs, targets, input_lengths, target_lengths, blank, reduction,
                           zero_infinity)
    xp, n = arg.xp, arg.tl.shape[0]
    work = toolkit.compute_dtype(xp, log_probs.dtype)
    lp = xp.reshape(toolkit.as_dtype(xp, log_probs, work), (log_probs.shape[0], n, log_probs.shape[-1]))
    # The targets as given (each task checks and casts its own): arg.targets, cast, is a task of
    # the checks, which are not computed here (their masks are not used, see below).
    labels = xp.reshape(targets, arg.targets.shape)
    losses = da.blockwise(_chunk_losses, "n", lp, "tnc", labels, "ns", arg.il, "n", arg.tl, "n",
                          blank=blank, zero_infinity=zero_infinity, concatenate=True,
                          meta=lp._meta.reshape((0,)))
    # Each task poisons the sequences its own checks flag (_chunk_losses), the same masks as
    # ``arg.bad``'s on the same whole rows: poisoned again here, they were a second copy of every
    # check in the graph computed (twenty layers of the thirty) for nothing.
    return sequence.reduced(arg._replace(bad=[]), losses, reduction, log_probs.dtype)


KERNELS = {"ctc_loss": ctc_loss}
