"""Contrastive representation losses: NT-Xent (the InfoNCE of SimCLR)."""

from __future__ import annotations

import math
from typing import Any


from lossreg import LossValueError, define_loss, toolkit


def _unit_rows(xp: Any, x: Any, eps: float = 1e-12) -> Any:
    """Rows scaled to unit length, as ``torch.nn.functional.normalize``; a zero row stays zero."""
    squared = xp.sum(x * x, axis=1, keepdims=True)
    nonzero = squared > 0
    norm = xp.where(nonzero, xp.sqrt(xp.where(nonzero, squared, xp.ones_like(squared))), xp.zeros_like(squared))
    return x / xp.where(norm > eps, norm, eps * xp.ones_like(norm))


@define_loss(
    class_name="NTXentLoss",
    aliases=("nt_xent", "ntxent", "simclr_loss", "info_nce", "infonce"),
    differentiable=("input", "positive"),
    reference="Chen et al. 2020, 'A Simple Framework for Contrastive Learning of Visual Representations' "
              "(SimCLR), eq. 1",
    views=2,
)
def nt_xent_loss(input: Any, positive: Any, /, *, temperature: float = 0.5, reduction: str = "mean") -> Any:
    r"""Normalized temperature-scaled cross-entropy of two views of a batch of N examples.

    The 2N embeddings ``z = [input; positive]`` are scaled to unit length, ``s_ij = z_i·z_j / τ``,
    and each one's loss is ``ℓ_i = -s_{i,p(i)} + log Σ_{k≠i} exp(s_ik)``, ``p(i)`` its other view:
    the other 2N - 2 embeddings are its negatives. Shapes: ``input`` and ``positive`` (N, D),
    N ≥ 1; "none" gives (2N,), the losses of the ``input`` rows first.

    $$\ell_i = -s_{i, p(i)} + \log \sum_{k \ne i} e^{s_{ik}}, \qquad
      s_{ik} = \frac{z_i \cdot z_k}{\tau\, \lVert z_i \rVert\, \lVert z_k \rVert}$$

    Options:
        temperature: τ, a positive number dividing the cosine similarities.
    """
    name = "nt_xent_loss"
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 < temperature < math.inf:
        raise LossValueError(name, "temperature", "a positive, finite number", repr(temperature))
    xp = toolkit.namespace(name, input=input, positive=positive)
    toolkit.check_floating(name, "input", input, xp)
    toolkit.check_floating(name, "positive", positive, xp)
    toolkit.check_reduction(name, reduction)
    toolkit.check_shape(name, "input", input, (None, None), "embeddings of shape (N, D)")
    toolkit.check_same_shape(name, "positive", positive, "input", input)
    n = input.shape[0]
    if n == 0:
        raise LossValueError(name, "input", "at least one pair of embeddings (N ≥ 1)", f"shape {tuple(input.shape)}")
    dtype = toolkit.result_type(xp, input, positive)
    work = toolkit.compute_dtype(xp, dtype)
    u, v = _unit_rows(xp, toolkit.as_dtype(xp, input, work)), _unit_rows(xp, toolkit.as_dtype(xp, positive, work))
    u = toolkit.placed_like(xp, u, v)  # one view split over a JAX mesh's batch axis, the other not
    v = toolkit.placed_like(xp, v, u)
    z = toolkit.dense_chunks(xp.concat([u, v], axis=0), 0)  # Dask's cumulative sum below fails on an empty chunk
    similarity = xp.matmul(z, xp.permute_dims(toolkit.whole(xp, z), (1, 0))) / temperature
    # Each row's position counted along z's own rows, so that the mask is split as the similarities
    # are: on Dask an arange compared with itself was one (2N, 2N) chunk, a task as large as the
    # whole mask, however small the embeddings' chunks. Counted whole on a JAX mesh of explicit
    # axes, which refuses a cumulative sum along a split axis (placed_like splits the mask after).
    index = xp.cumulative_sum(toolkit.whole(xp, xp.ones_like(z[:, 0], dtype=xp.int32)))
    itself = toolkit.placed_like(xp, xp.expand_dims(index, axis=1) == xp.expand_dims(index, axis=0), similarity)
    similarity = xp.where(itself, xp.full_like(similarity, -math.inf), similarity)
    m, _, lse = toolkit.log_softmax_parts(xp, similarity)
    pair = xp.sum(u * v, axis=1) / temperature
    losses = (m - xp.concat([pair, pair], axis=0)) + lse  # subtract first: m and the pair are both near 1/τ
    return toolkit.reduce(xp, losses, reduction, dtype)
