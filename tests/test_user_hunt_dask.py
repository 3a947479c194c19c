"""Losses on Dask arrays, as a data engineer whose data outgrows one machine uses them.

Each answer is compared with ``torch.nn.functional`` on the same data in float64 (the reference)
and with lossreg on NumPy arrays. On Dask a loss only builds a graph: nothing may compute during
the call (README, "Data larger than memory: Dask"), the result is a lazy Dask array, and its
chunks stay as small as the inputs' (no task may hold the whole batch at once).
"""

from __future__ import annotations

import tracemalloc
import warnings
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from strategies import REFERENCES, make_good
from sweep import sweep

import lossreg

da = pytest.importorskip("dask.array")
pytest.importorskip("dask")
from dask.callbacks import Callback  # noqa: E402

NAMES = [name for name in lossreg.names() if lossreg.spec(name).plugin == "lossreg"]
REDUCTIONS = ("none", "mean", "sum")
# Losses that take class indices; the others' integer inputs (CTC's lengths) are not classes.
CLASS_INDEX = ("cross_entropy", "nll_loss", "multi_margin_loss", "multilabel_margin_loss", "linear_cross_entropy")


class CountComputes(Callback):
    """Counts the graphs Dask starts to compute while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.computes = 0

    def _start(self, dsk: Any) -> None:
        self.computes += 1


def lazily(loss: Any, *arrays: Any, **options: Any) -> Any:
    """``loss(*arrays, **options)``, checking that the call computed nothing and returned a Dask array."""
    with CountComputes() as count:
        result = loss(*arrays, **options)
    assert count.computes == 0, f"the call computed {count.computes} Dask graph(s); it must only build one"
    assert isinstance(result, da.Array), f"returned {type(result).__name__}, not a lazy Dask array"
    return result


def torch_reference(name: str, arrays: list[np.ndarray], **options: Any) -> np.ndarray:
    tensors = [torch.from_numpy(np.array(a)) for a in arrays]  # a contiguous copy, 0-d kept 0-d
    opts = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kl_div's "mean" warning: lossreg follows torch's mean
        return REFERENCES[name](*tensors, **opts).numpy()


def batch_axis(name: str, x: np.ndarray) -> int:
    return 1 if name == "ctc_loss" and x.ndim == 3 else 0


def example(name: str, seed: int = 1, n: int = 7, c: int = 5) -> list[np.ndarray]:
    return [np.asarray(v) for v in make_good(name, seed=seed, n=n, c=c).inputs.values()]


def _uneven(size: int) -> tuple[int, ...]:
    """Chunks of 1, 2, 3, ... adding up to ``size``."""
    sizes, k = [], 1
    while size > 0:
        sizes.append(min(k, size))
        size -= sizes[-1]
        k += 1
    return tuple(sizes) or (0,)


# How each input is chunked: (the k-th input's chunks), given the input and its position.
CHUNKINGS = {
    "one chunk": lambda name, x, k: -1,
    "batch axis in twos": lambda name, x, k: tuple(2 if i == batch_axis(name, x) else s for i, s in enumerate(x.shape)),
    "every element its own chunk": lambda name, x, k: tuple(1 for _ in x.shape),
    "class axis in ones, batch whole": lambda name, x, k: tuple(1 if i == x.ndim - 1 and x.ndim > 1 else s
                                                             for i, s in enumerate(x.shape)),
    "uneven, each input chunked differently": lambda name, x, k: tuple(
        _uneven(s) if (i + k) % 2 == 0 else (s,) for i, s in enumerate(x.shape)),
    "an empty chunk in the middle of every axis": lambda name, x, k: tuple(
        (s // 2, 0, s - s // 2) if s > 1 else (s,) for s in x.shape),
}


def chunked(name: str, arrays: list[np.ndarray], scheme: str) -> list[Any]:
    return [da.from_array(a, chunks=CHUNKINGS[scheme](name, a, k) if a.ndim else -1) for k, a in enumerate(arrays)]


@pytest.mark.parametrize("scheme", list(CHUNKINGS))
@pytest.mark.parametrize("name", sweep(NAMES))
def test_every_chunking_gives_torchs_value_and_numpys_lazily(name: str, scheme: str) -> None:
    arrays = example(name)
    for reduction in REDUCTIONS:
        want = torch_reference(name, arrays, reduction=reduction)
        on_numpy = np.asarray(lossreg.get(name, reduction=reduction)(*arrays))
        lazy = lazily(lossreg.get(name, reduction=reduction), *chunked(name, arrays, scheme))
        got = lazy.compute(scheduler="sync")
        assert got.dtype == want.dtype and got.shape == want.shape, (reduction, got.dtype, got.shape)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=reduction)
        np.testing.assert_allclose(got, on_numpy, rtol=1e-12, atol=1e-14, err_msg=reduction)


@pytest.mark.parametrize("dtype", ["int64", "int32", "uint8", "int16"])
@pytest.mark.parametrize("name", CLASS_INDEX + ("ctc_loss",))
def test_integer_targets_of_every_width_give_torchs_value(name: str, dtype: str) -> None:
    arrays = [a.astype(dtype) if a.dtype.kind == "i" and (dtype != "uint8" or a.min() >= 0) else a
              for a in example(name, seed=4)]
    for reduction in REDUCTIONS:
        want = torch_reference(name, arrays, reduction=reduction)
        got = lazily(lossreg.get(name, reduction=reduction), *chunked(name, arrays, "batch axis in twos")).compute()
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=reduction)


@pytest.mark.parametrize("name", NAMES)
def test_float32_inputs_give_torchs_dtype_and_value(name: str) -> None:
    arrays = [a.astype(np.float32) if a.dtype.kind == "f" else a for a in example(name, seed=6)]
    for reduction in REDUCTIONS:
        want = torch_reference(name, arrays, reduction=reduction)
        got = lazily(lossreg.get(name, reduction=reduction), *chunked(name, arrays, "batch axis in twos")).compute()
        assert got.dtype == want.dtype == np.float32, (reduction, got.dtype, want.dtype)
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6, err_msg=reduction)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_chunk_sizes_are_refused_with_the_fix(name: str) -> None:
    arrays = chunked(name, example(name, n=8), "batch axis in twos")
    keep = da.from_array(np.array([True, False, True, True, False, True, True, True]), chunks=3)
    first = arrays[0]
    arrays[0] = first[:, keep] if batch_axis(name, first) == 1 else first[keep]  # boolean indexing: shape nan
    for reduction in REDUCTIONS:
        with pytest.raises(lossreg.LossValueError, match=r"known shape .*compute_chunk_sizes\(\).*nan"):
            lossreg.get(name, reduction=reduction)(*arrays)


@pytest.mark.parametrize("name", NAMES)
def test_rows_picked_by_a_boolean_mask_give_numpys_answer(name: str) -> None:
    """Boolean indexing, then ``compute_chunk_sizes()`` (as the refusal above says), leaves empty
    chunks where a chunk had no row picked: on them Dask's own ``max`` fails when computed, so
    the losses that take one (a log-softmax, CTC's recursion, the ∞-norm) drop them first."""
    arrays = chunked(name, example(name, n=8), "batch axis in twos")
    n = arrays[0].shape[batch_axis(name, arrays[0])]
    keep = da.from_array(np.arange(n) % 4 != 2, chunks=2) & da.from_array(np.arange(n) % 4 != 3, chunks=2)
    picked = [x if name == "linear_cross_entropy" and k == 1 else
              (x[:, keep] if batch_axis(name, x) == 1 else x[keep]) for k, x in enumerate(arrays)]
    picked = [x.compute_chunk_sizes() if np.isnan(x.shape).any() else x for x in picked]
    assert 0 in picked[0].chunks[batch_axis(name, picked[0])]  # rows 2 and 3, 6 and 7: chunks of two, empty
    rows = [np.asarray(x) for x in picked]
    for reduction in REDUCTIONS:
        want = np.asarray(lossreg.get(name, reduction=reduction)(*rows))
        got = lazily(lossreg.get(name, reduction=reduction), *picked).compute()
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14, err_msg=reduction)


@pytest.mark.parametrize("option", ["weight", "linear_bias", "bias"])
def test_an_array_option_of_unknown_size_is_refused(option: str) -> None:
    x, w, t = chunked("linear_cross_entropy", example("linear_cross_entropy"), "batch axis in twos")
    b = da.from_array(np.array([1.0, 2.0, -1.0, 3.0, 4.0, 5.0]), chunks=2)
    with pytest.raises(lossreg.LossValueError, match=f"argument '{option}' expected an array of known shape"):
        lossreg.linear_cross_entropy(x, w, t, **{option: b[b > 0]})


@pytest.mark.parametrize("name", NAMES)
def test_timedelta64_durations_are_refused_as_on_numpy(name: str) -> None:
    # NumPy's timedelta64 is an integer to array-api-compat's Dask isdtype (not to NumPy's): Dask took
    # durations as CTC lengths and targets or ±1 labels, silently, and crashed on class indices
    # with an AttributeError from iinfo. NumPy refuses them; so does Dask now, naming the argument.
    arrays = example(name)
    for k, a in enumerate(arrays):
        if a.dtype.kind not in "iu":
            continue
        argument = lossreg.spec(name).inputs[k]
        durations = [a.astype("timedelta64[s]") if j == k else v for j, v in enumerate(arrays)]
        with pytest.raises(lossreg.LossTypeError, match=rf"^{name}: argument '{argument}' expected .*timedelta64"):
            lossreg.get(name)(*durations)
        with pytest.raises(lossreg.LossTypeError, match=rf"^{name}: argument '{argument}' expected a numeric array, "
                                                        r"not NumPy timedelta64 durations.*got dask array"):
            lazily(lossreg.get(name), *(da.from_array(v, chunks=2) for v in durations))


@pytest.mark.parametrize("name", NAMES)
def test_an_empty_batch_gives_numpys_answer(name: str) -> None:
    arrays = example(name, n=3, c=4)
    if name == "linear_cross_entropy":  # the classifier's weights are not batched
        empty = [arrays[0][:0], arrays[1], arrays[2][:0]]
    else:
        empty = [np.take(a, np.arange(0), axis=batch_axis(name, a)) for a in arrays]
    if name == "ctc_loss":  # torch requires frames, sequences and classes; so do NumPy and Dask, before any graph
        with pytest.raises(lossreg.LossValueError, match="a non-empty array"):
            lossreg.ctc_loss(*(da.from_array(a) for a in empty))
        return
    for reduction in REDUCTIONS:
        want = np.asarray(lossreg.get(name, reduction=reduction)(*empty))
        got = lazily(lossreg.get(name, reduction=reduction), *(da.from_array(a) for a in empty)).compute()
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want, err_msg=reduction)  # NaN for a mean over nothing, 0 for a sum
        if name not in ("multi_margin_loss", "multilabel_margin_loss"):  # torch's CPU kernels: uninitialised memory
            np.testing.assert_array_equal(got, torch_reference(name, empty, reduction=reduction), err_msg=reduction)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_empty_image_batches_split_in_chunks_with_class_weights_give_torchs_answer(name: str, reduction: str) -> None:
    """(N, C, 0) scores, the batch in two chunks, Dask class weights: weight[y] of no targets
    is empty (Dask could not flatten the empty, chunked targets to pick it)."""
    x, t, w = np.zeros((2, 5, 0)), np.zeros((2, 0), dtype=np.int64), np.linspace(0.5, 2.0, 5)
    want = getattr(F, name)(torch.tensor(x), torch.tensor(t), weight=torch.tensor(w), reduction=reduction)
    loss = lossreg.get(name, reduction=reduction, weight=da.from_array(w, chunks=2))
    got = lazily(loss, da.from_array(x, chunks=(1, 2, 0)), da.from_array(t, chunks=(1, 0))).compute()
    np.testing.assert_array_equal(got, want.numpy())


ZERO_D = ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy",
          "binary_cross_entropy_with_logits", "soft_margin_loss", "kl_div", "poisson_nll_loss",
          "hinge_embedding_loss", "gaussian_nll_loss", "margin_ranking_loss"]


@pytest.mark.parametrize("name", ZERO_D)
def test_zero_dimensional_arrays_give_torchs_value(name: str) -> None:
    n_inputs = len(lossreg.spec(name).inputs)
    target = 1.0 if name in ("soft_margin_loss", "hinge_embedding_loss") else 0.6
    arrays = [np.asarray(0.3), np.asarray(target)] + [np.asarray(1.0)] * (n_inputs - 2)
    for reduction in REDUCTIONS:
        got = lazily(lossreg.get(name, reduction=reduction), *map(da.from_array, arrays)).compute()
        want = torch_reference(name, arrays, reduction=reduction)
        assert got.shape == want.shape == ()
        np.testing.assert_allclose(got, want, rtol=1e-12)


def _weighted_cases() -> list[Any]:
    rng = np.random.default_rng(8)
    n, c = 7, 5
    x, w, full = rng.normal(size=(n, c)), rng.uniform(0.1, 2.0, c), rng.uniform(0.1, 2.0, (n, c))
    p, y, t = rng.uniform(0.05, 0.95, (n, c)), rng.uniform(size=(n, c)), rng.integers(0, c, n)
    log_p = np.log(rng.uniform(0.05, 1.0, (n, c)))
    return [
        pytest.param("cross_entropy", [x, t], {"weight": w, "label_smoothing": 0.2, "ignore_index": 2}, id="ce"),
        pytest.param("cross_entropy", [x, y / y.sum(1, keepdims=True)], {"weight": w, "label_smoothing": 0.1},
                     id="ce-probabilities"),
        pytest.param("nll_loss", [log_p, t], {"weight": w}, id="nll"),
        pytest.param("multi_margin_loss", [x, t], {"weight": w, "p": 2, "margin": 0.5}, id="multi_margin"),
        pytest.param("binary_cross_entropy", [p, y], {"weight": full}, id="bce"),
        pytest.param("binary_cross_entropy_with_logits", [x, y], {"weight": w, "pos_weight": full[0]}, id="bce-logits"),
        pytest.param("multilabel_soft_margin_loss", [x, (y > 0.5).astype(float)], {"weight": w}, id="multilabel-soft"),
        pytest.param("huber_loss", [x, y], {"weight": full, "delta": 0.4}, id="huber"),
    ]


@pytest.mark.parametrize("name, arrays, options", _weighted_cases())
def test_array_options_as_dask_arrays_give_torchs_value(name: str, arrays: list[np.ndarray],
                                                        options: dict[str, Any]) -> None:
    for reduction in REDUCTIONS:
        want = torch_reference(name, arrays, reduction=reduction, **options)
        for chunks in (-1, 1, 3):
            lazy_options = {k: da.from_array(v, chunks=chunks) if isinstance(v, np.ndarray) else v
                            for k, v in options.items()}
            got = lazily(lossreg.get(name, reduction=reduction, **lazy_options),
                         *(da.from_array(a, chunks=(3, 2)[: a.ndim]) for a in arrays)).compute()
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=f"{reduction}, chunks {chunks}")


@pytest.mark.parametrize("name, arrays, options", _weighted_cases())
def test_a_numpy_array_option_with_dask_inputs_is_refused_naming_both_libraries(
        name: str, arrays: list[np.ndarray], options: dict[str, Any]) -> None:
    with pytest.raises(lossreg.LossTypeError, match=r"expected arrays of one array library, got 'input' from dask.*"
                                                    r"from numpy"):
        lossreg.get(name, **options)(*(da.from_array(a, chunks=3) for a in arrays))


@pytest.mark.parametrize("name", NAMES)
def test_a_dask_input_with_a_numpy_target_is_refused_naming_both_libraries(name: str) -> None:
    first, *rest = example(name)
    inputs = lossreg.spec(name).inputs
    with pytest.raises(lossreg.LossTypeError, match=rf"expected arrays of one array library, got '{inputs[0]}' from "
                                                    rf"dask, '{inputs[1]}' from numpy"):
        lossreg.get(name)(da.from_array(first, chunks=2), *rest)


@pytest.mark.parametrize("mode", ["auto", "poison", "sync"])
@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss", "multi_margin_loss", "linear_cross_entropy"])
def test_out_of_range_class_indices_make_their_loss_nan_in_the_graph(name: str, mode: str) -> None:
    # README: lazy arrays (Dask) cannot be read, so an invalid value poisons its own loss, whatever
    # the mode ("sync" reads only what it can), and never reads outside the scores.
    x, *weights, t = example(name, n=6, c=4)
    classes = weights[0].shape[0] if weights else x.shape[1]
    bad = t.copy()
    bad[[1, 4]] = [classes, -3]
    lazy = [da.from_array(a, chunks=2) for a in (x, *weights, bad)]
    with lossreg.value_checks(mode):
        losses = lazily(lossreg.get(name, reduction="none"), *lazy).compute()
        means = [lazily(lossreg.get(name, reduction=r), *lazy).compute() for r in ("mean", "sum")]
    good = np.delete(np.arange(6), [1, 4])
    assert np.isnan(losses[[1, 4]]).all() and not np.isnan(losses[good]).any()
    np.testing.assert_allclose(losses[good], torch_reference(name, [x, *weights, t], reduction="none")[good],
                               rtol=1e-10)
    assert all(np.isnan(m) for m in means)


def test_ctc_labels_that_torch_refuses_make_their_loss_nan_in_the_graph() -> None:
    log_probs, targets, input_lengths, target_lengths = example("ctc_loss", n=6, c=4)
    bad_targets = targets.copy()
    bad_targets[3, 0] = 0  # the blank, inside target_lengths[3] = 3
    bad_input_lengths = input_lengths.copy()
    bad_input_lengths[1] = log_probs.shape[0] + 1  # longer than the frames
    lazy = [da.from_array(log_probs, chunks=(3, 2, 4)), da.from_array(bad_targets, chunks=(2, 1)),
            da.from_array(bad_input_lengths, chunks=2), da.from_array(target_lengths, chunks=4)]
    losses = lazily(lossreg.ctc_loss, *lazy, reduction="none").compute()
    want = torch_reference("ctc_loss", [log_probs, targets, input_lengths, target_lengths], reduction="none")
    assert np.isnan(losses[[1, 3]]).all()
    np.testing.assert_allclose(np.delete(losses, [1, 3]), np.delete(want, [1, 3]), rtol=1e-10)
    with pytest.raises(lossreg.LossValueError, match="other than blank=0"):  # NumPy reads, and raises
        lossreg.ctc_loss(log_probs, bad_targets, input_lengths, target_lengths)


@pytest.mark.parametrize("scheduler", ["sync", "threads", "processes"])
@pytest.mark.parametrize("name", ["cross_entropy", "ctc_loss", "linear_cross_entropy", "triplet_margin_loss",
                                  "multilabel_margin_loss", "gaussian_nll_loss"])
def test_every_scheduler_computes_the_same_value(name: str, scheduler: str) -> None:
    arrays = example(name, n=8)
    lazy = lazily(lossreg.get(name, reduction="mean"), *chunked(name, arrays, "batch axis in twos"))
    got = lazy.compute(scheduler=scheduler, num_workers=2)
    np.testing.assert_allclose(got, torch_reference(name, arrays, reduction="mean"), rtol=1e-10)


def whole_batch_float_layers(result: Any, n: int, rows: int) -> set[tuple[str, tuple[int, ...]]]:
    """The graph's floating-point arrays of ``n`` rows that hold more than ``rows`` of them in one chunk."""
    found = set()
    for key, layer in result.__dask_graph__().layers.items():
        meta = getattr(layer, "collection_annotations", None) or {}
        chunks, shape, dtype = meta.get("chunks"), meta.get("shape"), meta.get("dtype")
        if chunks and shape and shape[0] == n and max(chunks[0]) > rows and np.dtype(dtype).kind == "f":
            found.add((key.rsplit("-", 1)[0], tuple(meta["chunksize"])))
    return found


@pytest.mark.parametrize("name", [n for n in NAMES if n != "ctc_loss"])  # CTC: batch axis 1, see below
def test_no_floating_array_of_the_graph_holds_the_whole_batch_in_one_chunk(name: str) -> None:
    # array-api-compat's Dask clip broadcast a scalar bound to the whole result in one chunk:
    # binary_cross_entropy's clamp of log(x) at -100 made an (N, C) chunk, cross_entropy's
    # maximum an (N, 1, d1, ...) one.
    n, rows = 64, 8
    arrays = [np.asarray(v) for v in make_good(name, seed=0, n=n, c=6).inputs.values()]
    lazy = [da.from_array(a) if name == "linear_cross_entropy" and k == 1 else
            da.from_array(a, chunks=(rows, *a.shape[1:])) for k, a in enumerate(arrays)]
    for reduction in REDUCTIONS:
        assert not whole_batch_float_layers(lazily(lossreg.get(name, reduction=reduction), *lazy), n, rows)


def test_cross_entropy_over_images_keeps_the_pixels_chunked() -> None:
    rng = np.random.default_rng(2)
    x, t = rng.normal(size=(16, 3, 8, 8)), rng.integers(0, 3, (16, 8, 8))
    got = lazily(lossreg.cross_entropy, da.from_array(x, chunks=(4, 3, 8, 8)), da.from_array(t, chunks=(4, 8, 8)),
                 reduction="none")
    assert not whole_batch_float_layers(got, 16, 4)
    np.testing.assert_allclose(got.compute(), torch_reference("cross_entropy", [x, t], reduction="none"), rtol=1e-10)


def test_binary_cross_entropy_over_200k_rows_needs_far_less_memory_than_its_input() -> None:
    n, c, rows = 200_000, 64, 10_000
    p = da.random.default_rng(0).uniform(0.05, 0.95, (n, c), chunks=(rows, c))
    y = da.random.default_rng(1).uniform(0.0, 1.0, (n, c), chunks=(rows, c))
    loss = lazily(lossreg.binary_cross_entropy, p, y)
    tracemalloc.start()
    try:
        got = loss.compute(scheduler="sync")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    whole = n * c * 8
    assert peak < whole / 2, f"computing took {peak / 2**20:.0f} MiB; the input alone is {whole / 2**20:.0f} MiB"
    want = F.binary_cross_entropy(torch.from_numpy(p.compute()), torch.from_numpy(y.compute())).item()
    np.testing.assert_allclose(got, want, rtol=1e-10)


@pytest.mark.parametrize("index_dtype, ignore_index", [("int64", -100), ("int64", 2), ("int32", -1), ("uint8", 255)])
def test_cross_entropy_and_linear_cross_entropy_ignore_and_smooth_on_class_chunks(index_dtype: str,
                                                                                 ignore_index: int) -> None:
    rng = np.random.default_rng(9)
    n, c, h = 11, 6, 4
    x, w = rng.normal(size=(n, c)), rng.uniform(0.1, 2.0, c)
    features, classifier, bias = rng.normal(size=(n, h)), rng.normal(size=(c, h)), rng.normal(size=c)
    t = rng.integers(0, c, n).astype(index_dtype)
    t[[1, 4, 7]] = np.array(ignore_index).astype(index_dtype)
    for reduction in REDUCTIONS:
        for smoothing in (0.0, 0.25):
            options = {"reduction": reduction, "ignore_index": ignore_index, "label_smoothing": smoothing}
            want = torch_reference("cross_entropy", [x, t], weight=w, **options)
            got = lazily(lossreg.cross_entropy, da.from_array(x, chunks=((5, 6), (1, 2, 3))),
                         da.from_array(t, chunks=(3, 8)), weight=da.from_array(w, chunks=4), **options).compute()
            np.testing.assert_allclose(got, want, rtol=1e-10, err_msg=str(options))
            want = torch_reference("linear_cross_entropy", [features, classifier, t], linear_bias=bias, weight=w,
                                   **options)
            got = lazily(lossreg.linear_cross_entropy, da.from_array(features, chunks=(4, 2)),
                         da.from_array(classifier, chunks=(2, 3)), da.from_array(t, chunks=1),
                         linear_bias=da.from_array(bias, chunks=4), weight=da.from_array(w, chunks=(1, 5)),
                         **options).compute()
            np.testing.assert_allclose(got, want, rtol=1e-10, err_msg=f"linear: {options}")


@pytest.mark.parametrize("zero_infinity", [False, True])
def test_ctc_with_concatenated_targets_in_any_chunks_gives_torchs_value(zero_infinity: bool) -> None:
    log_probs, targets, input_lengths, target_lengths = example("ctc_loss", n=6, c=4)
    target_lengths[2] = 3  # and an impossible one: more labels than frames allow
    input_lengths[2] = 2
    flat = np.concatenate([targets[i, :target_lengths[i]] for i in range(6)])
    for reduction in REDUCTIONS:
        want = torch_reference("ctc_loss", [log_probs, flat, input_lengths, target_lengths], reduction=reduction,
                               zero_infinity=zero_infinity)
        for chunks in (1, 3, -1):
            got = lazily(lossreg.ctc_loss, da.from_array(log_probs, chunks=(4, 2, 2)),
                         da.from_array(flat, chunks=chunks), da.from_array(input_lengths, chunks=4),
                         da.from_array(target_lengths, chunks=1),
                         reduction=reduction, zero_infinity=zero_infinity).compute()
            np.testing.assert_allclose(got, want, rtol=1e-10, err_msg=f"{reduction}, chunks {chunks}")
