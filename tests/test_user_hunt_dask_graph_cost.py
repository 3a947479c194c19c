"""What a loss costs to build on Dask: graph layers per call.

On Dask a loss only builds a graph, and each operation it records is a layer that Dask builds
(tokenizing its arguments, inferring its output's type), copies into every later layer's graph,
then materializes and schedules when computed: about a millisecond per layer, whatever the size
of the data. A user who calls a loss once per batch of a Dask pipeline, and ``lossreg
conformance --backend dask``, pay it per call. So the toolkit's Dask paths record as few layers
as give the same values:

- a pick by class index (``take_class``, ``take_each``, ``take_rows``: cross-entropy, NLL, the
  margin losses, CTC's emissions) and a class-weight ``lookup`` are one task per block, a take
  within the block (a one-hot mask summed over the classes was 8 layers, CTC's one-hot product
  31; Dask's own take from a Dask index pairs every chunk of the index with every chunk of the
  table); with the class axis split in chunks, a pick per block summed over the blocks;
- ``sign`` and ``safe_abs`` (``smooth_l1_loss``'s at the tiniest beta) are Dask's own, one
  layer: the eight ``where``s elsewhere are there for torch's ``vmap`` and gradients, which Dask
  has neither of;
- a function whose rows are independent (``along_rows``: CTC's frame, recorded at every frame)
  or that reduces the last axis (``over_last_axis``: ``triplet_margin_loss``'s p-norms with their
  guards) is one task per block, its operations run there on NumPy's blocks;
- ``divide`` (a weighted mean: cross-entropy's over the class weights, MSE's over a weight) is
  one layer, each block dividing as torch does, without NumPy's warnings, where the guarded
  form was nine.

Values are NumPy's exactly (non-finite entries, float16, empty batches, chunked class axes).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lossreg
from lossreg import toolkit

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
compat = pytest.importorskip("array_api_compat")

rng = np.random.default_rng(13)


def added_layers(result: Any, *inputs: Any) -> int:
    """The layers ``result``'s graph holds beyond those of its inputs."""
    known = set()
    for x in inputs:
        known |= set(x.__dask_graph__().layers)
    return len(set(result.__dask_graph__().layers) - known)


def scores(*shape: int, dtype: str = "float64") -> np.ndarray:
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[:4] = [np.inf, -np.inf, np.nan, -0.0]
    return x


def xp_of(x: Any) -> Any:
    return compat.array_namespace(x)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_take_class_on_dask_is_one_layer_with_numpys_values(dtype):
    x, index = scores(6, 5, 3, dtype=dtype), rng.integers(0, 5, (6, 3))
    index[0, :3] = [0, 0, 0]  # the non-finite entries (and -0) are picked as they are
    lazy_x, lazy_index = da.from_array(x, chunks=(3, 5, 3)), da.from_array(index, chunks=(3, 3))
    got = toolkit.take_class(xp_of(lazy_x), lazy_x, lazy_index)
    assert added_layers(got, lazy_x, lazy_index) == 1
    want = toolkit.take_class(np, x, index)
    computed = got.compute()
    assert computed.dtype == want.dtype
    np.testing.assert_array_equal(computed, want)
    assert np.array_equal(np.signbit(computed), np.signbit(want))


def test_take_class_on_dask_with_the_classes_in_chunks_picks_block_by_block():
    # A vocabulary split in chunks stays split: no task holds more than a block of the scores.
    x, index = scores(6, 7), rng.integers(0, 7, (6,))
    lazy_x, lazy_index = da.from_array(x, chunks=(3, 3)), da.from_array(index, chunks=3)
    got = toolkit.take_class(xp_of(lazy_x), lazy_x, lazy_index)
    assert added_layers(got, lazy_x, lazy_index) <= 4  # the blocks' class numbers, the picks, their sum
    np.testing.assert_array_equal(got.compute(), toolkit.take_class(np, x, index))
    assert max(got.chunks[0]) == 3


@pytest.mark.parametrize("dtype", ["uint8", "int32", "int64"])
def test_take_class_on_dask_with_the_classes_in_chunks_takes_any_integer_index(dtype):
    x, index = scores(4, 300), rng.integers(0, 300, (4,)).astype(dtype if dtype != "uint8" else "int64")
    index = np.minimum(index, 255).astype(dtype) if dtype == "uint8" else index
    lazy_x, lazy_index = da.from_array(x, chunks=(2, 100)), da.from_array(index, chunks=2)
    got = toolkit.take_class(xp_of(lazy_x), lazy_x, lazy_index)
    np.testing.assert_array_equal(got.compute(), x[np.arange(4), index.astype("int64")])


def test_take_class_on_dask_with_an_empty_chunk_of_classes():
    # Boolean indexing, then compute_chunk_sizes(), leaves empty chunks: none of their entries is picked.
    x, index = scores(6, 5), rng.integers(0, 5, (6,))
    lazy_x = da.from_array(x, chunks=((3, 3), (2, 0, 3)))
    assert lazy_x.chunks[1] == (2, 0, 3)
    got = toolkit.take_class(xp_of(lazy_x), lazy_x, da.from_array(index, chunks=3))
    np.testing.assert_array_equal(got.compute(), toolkit.take_class(np, x, index))


@pytest.mark.parametrize("class_chunks", [6, 4])
def test_take_each_and_take_rows_on_dask_are_one_layer_with_numpys_values(class_chunks):
    x, index = scores(4, 6), rng.integers(0, 6, (4, 5))
    lazy_x, lazy_index = da.from_array(x, chunks=(2, class_chunks)), da.from_array(index, chunks=(2, 3))
    got = toolkit.take_each(xp_of(lazy_x), lazy_x, lazy_index)
    assert added_layers(got, lazy_x, lazy_index) <= (1 if class_chunks == 6 else 4)
    np.testing.assert_array_equal(got.compute(), toolkit.take_each(np, x, index))

    frames = scores(3, 4, 6)  # (T, N, C): CTC's emissions of the extended labels
    lazy_frames = da.from_array(frames, chunks=(2, 2, class_chunks))
    got = toolkit.take_rows(xp_of(lazy_frames), lazy_frames, lazy_index)
    assert added_layers(got, lazy_frames, lazy_index) <= (1 if class_chunks == 6 else 4)  # was 31
    np.testing.assert_array_equal(got.compute(), toolkit.take_rows(np, frames, index))


@pytest.mark.parametrize("shape", [(6,), (6, 2), (0,)])
def test_lookup_on_dask_is_one_layer(shape):
    table, index = rng.standard_normal(5), rng.integers(0, 5, shape)
    lazy_table, lazy_index = da.from_array(table, chunks=2), da.from_array(index, chunks=3)
    got = toolkit.lookup(xp_of(lazy_index), lazy_table, lazy_index)
    assert added_layers(got, lazy_table, lazy_index) == 1
    np.testing.assert_array_equal(got.compute(), toolkit.lookup(np, table, index))


def test_sign_and_safe_abs_on_dask_are_one_layer_with_numpys_values():
    x = np.array([-2.0, -0.0, 0.0, 3.0, np.inf, -np.inf, np.nan], dtype="float32")
    lazy = da.from_array(x, chunks=4)
    for f in (toolkit.sign, toolkit.safe_abs):
        got = f(xp_of(lazy), lazy)
        assert added_layers(got, lazy) == 1, f.__name__
        assert got.dtype == x.dtype
        np.testing.assert_array_equal(got.compute(), f(np, x))  # -0 and 0 compare equal (sign's zero)
    assert not np.signbit(toolkit.safe_abs(xp_of(lazy), lazy).compute()).any()


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_divide_on_dask_is_one_layer_with_torchs_quotient_and_no_warning(dtype):
    import warnings

    for total in (3.0, -2.0, 0.0, np.nan, np.inf):
        for count in (0.0, -0.0, 2.0, np.inf):
            t, c = np.asarray(total, dtype=dtype), np.asarray(count, dtype=dtype)
            lazy_t, lazy_c = da.from_array(t), da.from_array(c)
            got = toolkit.divide(xp_of(lazy_t), lazy_t, lazy_c)
            assert added_layers(got, lazy_t, lazy_c) == 1
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # 0 / 0 and x / 0 are answers here, not warnings
                computed = got.compute()
            want = (torch.tensor(t) / torch.tensor(c)).numpy()  # ±inf by the signs, NaN for 0 / 0
            assert computed.dtype == want.dtype
            np.testing.assert_array_equal(computed, want)


def test_weighted_cross_entropy_on_dask_with_split_classes_is_torchs():
    # Every pick of the loss (the target's score, its class weight) on chunked classes and batch.
    x, target, weight = rng.standard_normal((8, 7)), rng.integers(0, 7, (8,)), rng.random(7)
    target[1] = -100
    lazy = [da.from_array(x, chunks=(3, 3)), da.from_array(target, chunks=3), da.from_array(weight, chunks=4)]
    for reduction in ("none", "mean", "sum"):
        got = lossreg.cross_entropy(lazy[0], lazy[1], weight=lazy[2], reduction=reduction).compute()
        want = F.cross_entropy(torch.tensor(x), torch.tensor(target), weight=torch.tensor(weight), reduction=reduction)
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-12, atol=1e-12)


def test_ctc_on_dask_builds_fewer_layers_than_before_and_matches_torch():
    # The portable definition on Dask (kernels off): its emissions pick was 31 layers.
    t, n, c, s = 6, 4, 5, 2
    log_probs = np.log(rng.dirichlet(np.ones(c), (t, n)))
    targets = rng.integers(1, c, (n, s))
    lengths = [np.full(n, t), np.full(n, s)]
    lazy = [da.from_array(log_probs, chunks=(t, 2, c)), da.from_array(targets, chunks=(2, s)),
            *(da.from_array(v, chunks=2) for v in lengths)]
    with lossreg.use_kernels(False):
        got = lossreg.ctc_loss(*lazy, reduction="none")
    assert not any(name.startswith("matmul") for name in got.__dask_graph__().layers)
    want = F.ctc_loss(torch.tensor(log_probs), torch.tensor(targets), torch.tensor(lengths[0]),
                      torch.tensor(lengths[1]), reduction="none")
    np.testing.assert_allclose(got.compute(), want.numpy(), rtol=1e-10)


def _ctc_frames(t: int, *, chunks: tuple[int, int], seed: int = 3) -> tuple[Any, np.ndarray]:
    """The portable CTC (kernels off) on Dask, T frames, and torch's losses."""
    n, c, s = 5, 4, 2
    r = np.random.default_rng(seed)
    log_probs = np.log(r.dirichlet(np.ones(c), (t, n)))
    targets = r.integers(1, c, (n, s))
    input_lengths, target_lengths = np.array([t, t - 1, 1, t, 0]), np.array([2, 1, 1, 0, 0])
    lazy = [da.from_array(log_probs, chunks=(t, chunks[0], c)), da.from_array(targets, chunks=(chunks[0], 1)),
            da.from_array(input_lengths, chunks=chunks[1]), da.from_array(target_lengths, chunks=chunks[1])]
    with lossreg.use_kernels(False):
        got = lossreg.ctc_loss(*lazy, reduction="none")
    want = F.ctc_loss(torch.tensor(log_probs), torch.tensor(targets), torch.tensor(input_lengths),
                      torch.tensor(target_lengths), reduction="none")
    return got, want.numpy()


@pytest.mark.parametrize("chunks", [(2, 2), (3, 4), (5, 5)])
def test_the_portable_ctc_on_dask_records_each_frame_as_one_task_per_batch_chunk(chunks):
    # A frame reads only each sequence's own rows (toolkit.along_rows): its predecessors' gather,
    # log-sum-exp and emission were twenty layers, recorded again at every frame. Now one, and the
    # frame's two slices (its emissions and which sequences still run). Batch chunks of the
    # inputs that differ (and a label axis in chunks) are paired once, in the setup (see
    # toolkit.by_rows), where each frame rechunked the running sequences' slice to them.
    short, long = _ctc_frames(4, chunks=chunks), _ctc_frames(10, chunks=chunks)
    per_frame = (len(long[0].__dask_graph__().layers) - len(short[0].__dask_graph__().layers)) / 6
    assert per_frame == 3
    for got, want in (short, long):
        np.testing.assert_allclose(got.compute(), want, rtol=1e-12)


def test_along_rows_on_dask_is_one_layer_with_the_functions_values():
    # Rows of (N, ...) arrays in chunks paired by Dask; their other axes, and 1-D arrays, whole.
    def f(xp: Any, a: Any, b: Any, shared: Any, *, scale: float) -> Any:
        return xp.where(b[:, :1, 0] > 0, a * scale + xp.sum(shared), xp.max(a, axis=1, keepdims=True))

    a, b, shared = rng.standard_normal((7, 3)), rng.standard_normal((7, 2, 2)), rng.standard_normal(5)
    lazy = [da.from_array(a, chunks=(3, 2)), da.from_array(b, chunks=(2, 1, 2)), da.from_array(shared, chunks=2)]
    got = toolkit.along_rows(xp_of(lazy[0]), f, *lazy, scale=2.0)
    assert got.chunks[1] == (3,)  # the rows in the chunks Dask pairs them in (here (2, 1, 1, 2, 1))
    assert sum(name.startswith("rows_block") for name in got.__dask_graph__().layers) == 1
    np.testing.assert_array_equal(got.compute(), f(np, a, b, shared, scale=2.0))
    # Any other library: the function as it is.
    assert toolkit.along_rows(np, f, a, b, shared, scale=2.0).shape == (7, 3)


@pytest.mark.parametrize("p", [2.0, 1.0, 0.0, np.inf, -np.inf, 3.0, -0.5])
@pytest.mark.parametrize("swap", [False, True])
def test_triplet_margin_loss_on_dask_records_each_chunk_of_triplets_as_one_task(p, swap):
    # A p-norm's guards (for torch's gradients at 0) were up to twelve layers per distance, then
    # one per distance (toolkit.over_last_axis) beside the differences, the margin and the clamp:
    # 15 (20 with swap). A triplet's loss reads its own rows only, so a chunk of triplets is one
    # task (toolkit.by_rows), the embedding axis merged. NumPy's values, chunked or not.
    shape = (7, 5)
    x = [scores(*shape), scores(*shape)[::-1].copy(), rng.standard_normal(shape)]
    lazy = [da.from_array(v, chunks=(3, 2)) for v in x]
    got = lossreg.triplet_margin_loss(*lazy, p=p, swap=swap, reduction="none")
    names = set(got.__dask_graph__().layers) - {n for v in lazy for n in v.__dask_graph__().layers}
    # Each input's embedding axis merged into one chunk, the tasks, the losses taken from them.
    assert sorted(n.split("-")[0] for n in names) == ["rechunk", "rechunk", "rechunk", "triplet_losses",
                                                      "triplet_losses"]
    assert got.chunks == ((3, 3, 1),)
    np.testing.assert_allclose(got.compute(), lossreg.triplet_margin_loss(*x, p=p, swap=swap, reduction="none"),
                               rtol=1e-13, equal_nan=True)


@pytest.mark.parametrize("name", ["triplet_margin_loss", "triplet_margin_with_distance_loss"])
@pytest.mark.parametrize("shapes", [[(1, 5), (7, 5), (7, 5)], [(7, 5), (7, 1), (7, 5)], [(5,), (5,), (5,)],
                                    [(2, 3, 5), (2, 3, 5), (2, 3, 5)]])
def test_triplets_broadcast_or_of_one_axis_on_dask_give_numpys_values(name, shapes):
    # One anchor against seven pairs has no chunk of rows for each of theirs: those are built op
    # by op, as are embeddings of one axis (a single triplet, whose one axis is not its rows).
    x = [rng.standard_normal(s) for s in shapes]
    lazy = [da.from_array(v, chunks=2) for v in x]
    for reduction in ("none", "mean"):
        got = getattr(lossreg, name)(*lazy, swap=True, reduction=reduction).compute()
        np.testing.assert_allclose(got, getattr(lossreg, name)(*x, swap=True, reduction=reduction), rtol=1e-13)


def test_over_last_axis_on_dask_is_one_layer_with_the_functions_values():
    def f(xp: Any, x: Any, *, k: float) -> Any:
        return xp.sum(x * k, axis=-1) + xp.max(x, axis=-1)

    x = rng.standard_normal((5, 4, 6))
    lazy = da.from_array(x, chunks=(2, 3, 4))
    got = toolkit.over_last_axis(xp_of(lazy), f, lazy, k=3.0)
    assert added_layers(got, lazy) == 2  # the merge of the last axis' chunks, the tasks
    assert got.chunks == ((2, 2, 1), (3, 1))
    np.testing.assert_allclose(got.compute(), f(np, x, k=3.0), rtol=1e-15)
    assert toolkit.over_last_axis(xp_of(lazy), f, lazy[0, 0], k=3.0).compute().shape == ()  # a 1-D row: one number


def test_the_dask_backend_reads_back_an_input_it_made_without_computing_a_graph(monkeypatch):
    # The conformance suite reads every input of a float32 case back (its float64 answer is
    # computed at the rounded inputs): a Dask compute each, a millisecond however tiny the graph.
    import dask.core
    import dask.local

    from lossreg.backends import DaskBackend

    runs = []  # every graph run, by Dask's schedulers (get_async) or its plain executor (dask.core.get)
    for module, name in ((dask.local, "get_async"), (dask.core, "execute_graph")):
        def counted(*args: Any, _run: Any = getattr(module, name), **kwargs: Any) -> Any:
            runs.append(1)
            return _run(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)
    backend = DaskBackend()
    data = rng.standard_normal((5, 3))
    made = backend.asarray(data, "float32", "cpu")
    held = backend.to_numpy(made)
    assert not runs
    assert held.dtype == np.float32
    np.testing.assert_array_equal(held, data.astype("float32"))
    held[0, 0] = 7.0  # the caller's own copy
    np.testing.assert_array_equal(backend.to_numpy(made), data.astype("float32"))
    # Anything computed from it is computed, as before.
    np.testing.assert_array_equal(backend.to_numpy(made * 2), data.astype("float32") * 2)
    assert runs


def test_the_dask_ctc_kernel_checks_each_sequence_once_in_its_tasks():
    # Padded targets: each batch chunk's task runs the portable definition, which poisons the
    # sequences its checks flag; the graph computed holds no second copy of those checks.
    from lossreg.kernels import dask_ctc

    t, n, c, s = 6, 4, 5, 3
    log_probs = np.log(rng.dirichlet(np.ones(c), (t, n)))
    targets = rng.integers(1, c, (n, s))
    targets[1, 0] = 0  # a blank label: sequence 1 is invalid
    input_lengths, target_lengths = np.array([t, t, t, t + 1]), np.array([3, 2, 2, 1])  # sequence 3: too long an input
    lazy = [da.from_array(log_probs, chunks=(t, 2, c)), da.from_array(targets, chunks=(2, s)),
            da.from_array(input_lengths, chunks=2), da.from_array(target_lengths, chunks=2)]
    got = dask_ctc.ctc_loss(*lazy, reduction="none")
    assert added_layers(got, *lazy) == 1  # the tasks (was 22: the checks again, and their poisoning)
    losses = got.compute()
    assert np.isnan(losses[[1, 3]]).all()
    valid = [0, 2]  # torch refuses the others (lossreg raises on eager arrays, gives NaN on lazy ones)
    want = F.ctc_loss(torch.tensor(log_probs[:, valid]), torch.tensor(targets[valid]),
                      torch.tensor(input_lengths[valid]), torch.tensor(target_lengths[valid]), reduction="none")
    np.testing.assert_allclose(losses[valid], want.numpy(), rtol=1e-10)
    for reduction in ("mean", "sum"):
        assert np.isnan(dask_ctc.ctc_loss(*lazy, reduction=reduction).compute())


def test_by_rows_on_dask_is_one_task_per_chunk_of_rows_with_the_functions_values():
    # Rows on axis 0 of one array and axis 1 of another, in chunks that differ (an empty one
    # among them): the tasks take the rows where either array splits them, every other axis
    # and an array read whole in one chunk. Each result is split along the axis that follows
    # the rows; one without such an axis is the first task's; a None passes through.
    def f(xp: Any, a: Any, t: Any, shared: Any, *, k: float) -> Any:
        per_row = xp.sum(a, axis=1) * k + xp.sum(shared)
        frames = t + xp.reshape(a[:, 0], (1, -1))
        return per_row, frames, shared * k, None

    a, t, shared = rng.standard_normal((7, 3)), rng.standard_normal((4, 7)), rng.standard_normal(5)
    lazy = [da.from_array(a, chunks=((3, 0, 4), (2, 1))), da.from_array(t, chunks=((2, 2), (2, 5))),
            da.from_array(shared, chunks=2)]
    got = toolkit.by_rows(xp_of(lazy[0]), f, *lazy, rows=(0, 1, None), k=2.0)
    want = f(np, a, t, shared, k=2.0)
    assert got[3] is None
    assert got[0].chunks == ((2, 1, 4),) and got[1].chunks == ((4,), (2, 1, 4)) and got[2].chunks == ((5,),)
    for result in got[:3]:
        # The tasks and this result's part of them; the rest merges or splits the inputs' chunks.
        added = set(result.__dask_graph__().layers) - {n for x in lazy for n in x.__dask_graph__().layers}
        assert sorted(n for n in added if not n.startswith("rechunk")) == sorted(
            n for n in result.__dask_graph__().layers if n.startswith("f-"))
        assert sum(n.startswith("f-") for n in result.__dask_graph__().layers) == 2
    for result, expected in zip(got[:3], want[:3]):
        np.testing.assert_array_equal(result.compute(), expected)
    # Any other library: the function as it is.
    assert toolkit.by_rows(np, f, a, t, shared, rows=(0, 1, None), k=2.0)[1].shape == (4, 7)
    # Rows in chunks of unknown size (boolean indexing) cannot be paired: op by op, the same values.
    kept = lazy[0][da.from_array(a[:, 0], chunks=3) > -np.inf]
    assert np.isnan(kept.chunks[0][0])
    got = toolkit.by_rows(xp_of(kept), lambda xp, x: (xp.sum(x, axis=1), x.T * 2), kept, rows=(0,))
    np.testing.assert_array_equal(got[0].compute(), np.sum(a, axis=1))
    np.testing.assert_array_equal(got[1].compute(), a.T * 2)


def test_by_rows_learns_its_results_layout_from_no_row_and_one():
    # by_rows runs the function where the graph is built, on zeros, to learn its results' shapes
    # and which axis the rows split. A row of CTC's log-probabilities is all its T x C entries:
    # probes of one row and of two held three such rows in the caller's memory before anything
    # was computed; of no row and of one, one.
    probed: list[int] = []

    def f(xp: Any, a: Any) -> Any:
        probed.append(a.shape[0])
        return xp.sum(a, axis=1), a * 2

    a = rng.standard_normal((6, 3))
    lazy = da.from_array(a, chunks=2)
    got = toolkit.by_rows(xp_of(lazy), f, lazy, rows=(0,))
    assert sorted(probed) == [0, 1]
    assert got[0].chunks == ((2, 2, 2),) and got[1].chunks == ((2, 2, 2), (3,))
    np.testing.assert_array_equal(got[0].compute(), np.sum(a, axis=1))
    np.testing.assert_array_equal(got[1].compute(), a * 2)


def test_by_rows_gives_closures_of_one_def_tasks_of_their_own():
    # Dask takes tasks of one key for one computation. by_rows named its tasks by the function's
    # module and qualified name, its options and arrays: two closures of one def (a plugin's
    # scaled(k)) on the same rows shared their keys, and a graph holding both computed one of
    # them for each (6a where 2a + 3a is 5a). A module's own function keeps its name.
    def scaled(k: float) -> Any:
        def times(xp: Any, a: Any) -> Any:
            return a * k
        return times

    a = rng.standard_normal((6, 3))
    lazy = da.from_array(a, chunks=2)
    two, three = (toolkit.by_rows(xp_of(lazy), scaled(k), lazy, rows=(0,)) for k in (2.0, 3.0))
    assert two.name != three.name
    np.testing.assert_array_equal((two + three).compute(), a * 2 + a * 3)
    again = toolkit.by_rows(xp_of(lazy), scaled(2.0), lazy, rows=(0,))
    assert again.name == two.name  # the same computation, the same keys (Dask's cache and culling rely on it)


def test_by_rows_refuses_a_result_that_is_not_split_by_the_rows():
    def doubled(xp: Any, a: Any) -> Any:
        return xp.concat([a, a])

    lazy = da.from_array(rng.standard_normal(6), chunks=3)
    with pytest.raises(ValueError, match="result 0 is not split by the rows"):
        toolkit.by_rows(xp_of(lazy), doubled, lazy, rows=(0,))


@pytest.mark.parametrize("form", ["padded", "concatenated"])
def test_the_portable_ctc_on_dask_runs_its_setup_and_each_loss_as_one_task_per_batch_chunk(form):
    # The labels, lengths and transitions (toolkit.fused with rows), the emissions and the start,
    # and each sequence's loss from its last alpha (toolkit.by_rows) read only their sequences'
    # rows: a task per batch chunk each, where their operations were 102 layers (padded; 106
    # concatenated). Concatenated targets' checks, and their labels read as rows from offsets
    # summed over the batch, stay on Dask (each task reads its own rows, not every label).
    t, n, c, s = 4, 5, 4, 2
    r = np.random.default_rng(5)
    log_probs = np.log(r.dirichlet(np.ones(c), (t, n)))
    input_lengths, target_lengths = np.array([t, t - 1, 1, t, 0]), np.array([2, 1, 1, 0, 0])
    padded = r.integers(1, c, (n, s))
    flat = np.concatenate([row[:k] for row, k in zip(padded, target_lengths)])
    targets = padded if form == "padded" else flat
    lazy = [da.from_array(log_probs, chunks=(t, 2, c)), da.from_array(targets, chunks=2),
            da.from_array(input_lengths, chunks=2), da.from_array(target_lengths, chunks=2)]
    with lossreg.use_kernels(False):
        got = lossreg.ctc_loss(*lazy, reduction="none")
    # padded: the four frames' tasks and their 10 slices, 21 tasks and parts of the setup and the
    # losses, 5 of the checks' poisoning; concatenated: 29 more of the checks and the rows.
    assert added_layers(got, *lazy) == (40 if form == "padded" else 69)  # were 126 and 146
    want = F.ctc_loss(torch.tensor(log_probs), torch.tensor(padded), torch.tensor(input_lengths),
                      torch.tensor(target_lengths), reduction="none")
    np.testing.assert_allclose(got.compute(), want.numpy(), rtol=1e-12)


@pytest.mark.parametrize("target_shape", [(7,), (7, 2), ()])
def test_class_index_masks_on_dask_are_one_task_per_chunk_of_targets(target_shape):
    # Which targets are kept, valid, and safe to gather with (toolkit.fused with rows): one task
    # per chunk of targets and its three results, where they were eight layers (a single target
    # is read as a batch of one). torch's values, ignored and unbatched targets included.
    x = np.log(rng.dirichlet(np.ones(5), target_shape[:1] + target_shape[1:])).transpose(
        *((0, 2, 1) if len(target_shape) == 2 else range(len(target_shape) + 1)))
    t = rng.integers(0, 5, target_shape)
    if t.ndim:
        t.flat[2] = -100
    lazy = [da.from_array(x, chunks=3), da.from_array(t, chunks=3)]
    got = lossreg.nll_loss(*lazy, reduction="none")
    assert added_layers(got, *lazy) == 13 + 3 * (not t.ndim)  # were 17 (20 for a 0-d target)
    want = F.nll_loss(torch.tensor(x), torch.tensor(t), reduction="none")
    np.testing.assert_allclose(got.compute(), want.numpy(), rtol=1e-12)


def test_a_fused_function_with_rows_runs_op_by_op_on_dask_rows_it_cannot_pair():
    # Rows in chunks of unknown size (boolean indexing) and 0-d arrays: the function as it is.
    @toolkit.fused(rows=(0,))
    def doubled(xp: Any, x: Any) -> Any:
        return x * 2

    x = rng.standard_normal(6)
    lazy = da.from_array(x, chunks=3)
    assert sum(n.startswith("doubled-") for n in doubled(xp_of(lazy), lazy).__dask_graph__().layers) == 2
    kept = lazy[lazy > -np.inf]
    for y, want in ((kept, x * 2), (lazy[0], x[0] * 2)):
        got = doubled(xp_of(y), y)
        assert not any(n.startswith("doubled-") for n in got.__dask_graph__().layers)
        np.testing.assert_array_equal(got.compute(), want)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("chunk_size", [3, (3, 4), (2, 5)])
def test_linear_cross_entropy_in_chunks_on_dask_is_one_task_per_chunk_of_tokens(chunk_size, reduction):
    # The loop over chunks of tokens and vocabulary blocks recorded some 25 layers per chunk and
    # block (235-420 a call here); a token's loss reads its own row and the whole weight, so each
    # chunk of tokens is one task running the chunks asked for on its rows. The tokens' chunks
    # (4, 3) are not the loop's, and the weight is split over its classes: NumPy's values.
    h, w, b, cw = scores(7, 5), scores(11, 5), scores(11), np.linspace(0.5, 2.0, 11)
    t = np.array([3, 0, 10, -100, 7, 7, 1])
    lazy = [da.from_array(h, chunks=(4, 2)), da.from_array(w, chunks=(6, 5)), da.from_array(t, chunks=4)]
    options = dict(chunk_size=chunk_size, reduction=reduction, label_smoothing=0.1, softcap=3.0)
    for extra in ({}, {"linear_bias": b, "weight": cw}):
        arrays = {k: da.from_array(v, chunks=6) for k, v in extra.items()}
        got = lossreg.linear_cross_entropy(*lazy, **options, **arrays)
        assert added_layers(got, *lazy, *arrays.values()) < 40  # 235-420 before, by options
        names = [n for n in got.__dask_graph__().layers if n.startswith("token_losses")]
        assert len(names) == 2  # the tasks, the losses taken from them
        assert len(got.__dask_graph__().layers[min(names, key=len)]) == 2  # the tokens' two chunks
        want = lossreg.linear_cross_entropy(h, w, t, **options, **extra)
        np.testing.assert_allclose(got.compute(), want, rtol=1e-13, atol=1e-15)


def test_linear_cross_entropy_keeps_a_head_larger_than_a_dask_chunk_in_its_blocks():
    # One task per chunk of tokens reads the whole weight, merged into one chunk; a head split by
    # vocabulary past Dask's own chunk size (out of core) is left in its blocks, op by op, the
    # chunks asked for bounding the logits as before: NumPy's values either way.
    h, w, t = scores(7, 5), scores(11, 5), np.array([3, 0, 10, -100, 7, 7, 1])
    lazy = [da.from_array(h, chunks=(4, 5)), da.from_array(w, chunks=(6, 5)), da.from_array(t, chunks=4)]
    with dask.config.set({"array.chunk-size": "256B"}):  # the weight is 440 bytes, in two blocks
        got = lossreg.linear_cross_entropy(*lazy, chunk_size=(3, 4), reduction="none")
    assert not [n for n in got.__dask_graph__().layers if n.startswith("token_losses")]
    assert added_layers(got, *lazy) > 40  # the loop's operations, recorded one by one
    want = lossreg.linear_cross_entropy(h, w, t, chunk_size=(3, 4), reduction="none")
    np.testing.assert_allclose(got.compute(), want, rtol=1e-13, atol=1e-15)


def test_linear_cross_entropy_keeps_hidden_states_wider_than_a_dask_chunk_in_their_blocks():
    # One task per chunk of tokens merges their hidden states' D into one block: split along D
    # past Dask's own chunk size, that block held all of their chunks, where the loop, op by op,
    # kept Dask's blocks (its products summed over D's chunks). Those run op by op: NumPy's values.
    r = np.random.default_rng(8)
    h, w, t = r.standard_normal((7, 40)), r.standard_normal((11, 40)), np.array([3, 0, 10, -100, 7, 7, 1])
    lazy = [da.from_array(h, chunks=(4, 10)), da.from_array(w, chunks=(11, 40)), da.from_array(t, chunks=4)]
    with dask.config.set({"array.chunk-size": "1KiB"}):  # 4 tokens' states merged are 1280 bytes
        got = lossreg.linear_cross_entropy(*lazy, chunk_size=(3, 4), reduction="none")
    assert not [n for n in got.__dask_graph__().layers if n.startswith("token_losses")]
    rechunked = [layer.collection_annotations["chunks"] for n, layer in got.__dask_graph__().layers.items()
                 if n.startswith("rechunk")]  # the weight's blocks, transposed (40 x 4): 320 bytes
    assert max(math.prod(map(max, chunks)) * 8 for chunks in rechunked) <= 1024
    want = lossreg.linear_cross_entropy(h, w, t, chunk_size=(3, 4), reduction="none")
    np.testing.assert_allclose(got.compute(), want, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("shapes", [[(7, 5), (7, 5), (7,)], [(1, 5), (7, 5), (7,)], [(7, 5), (7, 5), (1,)],
                                    [(5,), (5,), ()]])
def test_cosine_embedding_loss_on_dask_is_one_task_per_chunk_of_pairs(shapes):
    # Its products, sums, cosine and two cases were 27 layers a call; a pair reads its own rows,
    # so a chunk of pairs is one task. Broadcast pairs (one row against seven, one label for
    # all) and a single pair are built op by op. NumPy's values either way.
    x1, x2 = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    y = rng.choice(np.array([1, -1, 0]), size=shapes[2])
    lazy = [da.from_array(v, chunks=3) for v in (x1, x2, y)]
    paired = shapes[0] == shapes[1] and shapes[2] == (7,)
    for reduction in ("none", "mean"):
        got = lossreg.cosine_embedding_loss(*lazy, margin=0.2, reduction=reduction)
        if paired:
            assert added_layers(got, *lazy) <= (5 if reduction == "none" else 8)  # 30 and 33 before
        want = lossreg.cosine_embedding_loss(x1, x2, y, margin=0.2, reduction=reduction)
        np.testing.assert_allclose(got.compute(), want, rtol=1e-13, atol=1e-15)


def elementwise_rows(got: Any, *lazy: Any) -> int:
    """``got``'s layers beyond its inputs', less the rechunks that put each input in chunks of rows."""
    names = set(got.__dask_graph__().layers) - set().union(*(x.__dask_graph__().layers for x in lazy))
    return len([n for n in names if not n.startswith("rechunk")])


@pytest.mark.parametrize("weight_shape", [None, (5,), (1, 5), (7, 5), (7, 1)])
def test_multilabel_soft_margin_loss_on_dask_is_one_task_per_chunk_of_samples(weight_shape):
    # Its log-sigmoids, products and class sum were 24 (26 weighted) layers a call; a sample reads
    # its own row and the class weights, read whole when they are one row for all (1, 5).
    x, y = scores(7, 5), (rng.random((7, 5)) > 0.5).astype("float64")
    w = None if weight_shape is None else rng.random(weight_shape)
    lazy = [da.from_array(v, chunks=(3, 2)) for v in (x, y) + (() if w is None else (w,))]
    for reduction in ("none", "mean", "sum"):
        got = lossreg.multilabel_soft_margin_loss(lazy[0], lazy[1], weight=None if w is None else lazy[2],
                                                  reduction=reduction)
        # the tasks and their result; a weight's reshape to (1, 5); the sum's tree (up to 3), the mean's division
        limit = 2 + (weight_shape == (5,)) + {"none": 0, "sum": 3, "mean": 4}[reduction]
        assert elementwise_rows(got, *lazy) <= limit
        want = lossreg.multilabel_soft_margin_loss(x, y, weight=w, reduction=reduction)
        np.testing.assert_allclose(got.compute(), want, rtol=1e-13, atol=0)


def test_multilabel_soft_margin_loss_on_dask_of_one_sample_reads_it_whole():
    # One sample (C): no rows to split, its loss is 0-d; NumPy's value.
    x, y, w = scores(5), (rng.random(5) > 0.5).astype("float64"), rng.random(5)
    got = lossreg.multilabel_soft_margin_loss(*(da.from_array(v, chunks=2) for v in (x, y)),
                                              weight=da.from_array(w, chunks=2), reduction="none")
    assert got.shape == ()
    np.testing.assert_allclose(got.compute(), lossreg.multilabel_soft_margin_loss(x, y, weight=w, reduction="none"),
                               rtol=1e-13, atol=0)


@pytest.mark.parametrize("shapes", [((7, 5), None, None), ((7, 5), (5,), (7, 5)), ((7, 5), (1, 5), (1, 5)),
                                    ((7, 5), (7, 1), None), ((7,), (), ()), ((), None, None)])
def test_bce_with_logits_on_dask_is_one_task_per_chunk_of_rows(shapes):
    # Its terms were 14 (23 with both weights) layers a call; an element reads its own row and
    # weights of one row for all (read whole). A 0-d input has no rows: op by op. NumPy's values
    # (non-finite logits, infinite weights) either way.
    x_shape, pw_shape, w_shape = shapes
    x, y = scores(*x_shape), rng.random(x_shape)
    pw = None if pw_shape is None else rng.random(pw_shape) * 3
    w = None if w_shape is None else rng.random(w_shape)
    if pw is not None and pw.ndim:
        pw.flat[0] = np.inf
    lazy = {k: None if v is None else da.from_array(v, chunks=3) for k, v in dict(x=x, y=y, pw=pw, w=w).items()}
    for reduction in ("none", "mean"):
        got = lossreg.binary_cross_entropy_with_logits(lazy["x"], lazy["y"], weight=lazy["w"], pos_weight=lazy["pw"],
                                                       reduction=reduction)
        if x.ndim:
            reshapes = sum(v is not None and v.ndim < x.ndim for v in (pw, w))
            limit = 2 + reshapes + (4 if reduction == "mean" else 0)
            assert elementwise_rows(got, *(v for v in lazy.values() if v is not None)) <= limit
        want = lossreg.binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=pw, reduction=reduction)
        np.testing.assert_allclose(got.compute(), want, rtol=1e-13, atol=0)


@pytest.mark.parametrize("shapes", [((7, 5), None), ((7, 5), (5,)), ((7, 5), (7, 5)), ((7, 5), (7, 1)), ((7,), ()),
                                    ((), None)])
def test_bce_on_dask_is_one_task_per_chunk_of_rows_with_its_checks(shapes):
    # Its logs, products and the checks of input and target in [0, 1] were 23 to 25 graph layers a
    # call; an element reads its own row, and weights of one row for all (read whole).
    # A probability outside [0, 1] (or NaN), in the input or the target, poisons its own element
    # where it cannot raise. A 0-d input has no rows: op by op. torch's values either way.
    x_shape, w_shape = shapes
    x, y = rng.random(x_shape), rng.random(x_shape)
    if x.ndim:
        x.flat[:3], y.flat[3:5] = [0.0, 1.0, 1.5], [np.nan, 1.0]
    w = None if w_shape is None else rng.random(w_shape)
    lazy = {k: None if v is None else da.from_array(v, chunks=3) for k, v in dict(x=x, y=y, w=w).items()}
    for reduction in ("none", "mean"):
        got = lossreg.binary_cross_entropy(lazy["x"], lazy["y"], weight=lazy["w"], reduction=reduction)
        if x.ndim:
            reshapes = w is not None and w.ndim < x.ndim
            limit = 2 + reshapes + (4 if reduction == "mean" else 0)
            assert elementwise_rows(got, *(v for v in lazy.values() if v is not None)) <= limit
        computed = got.compute()
        if x.ndim and reduction == "none":
            outside = np.zeros(x.shape, dtype=bool)
            outside.flat[[2, 3]] = True  # the input's 1.5, the target's NaN
            assert np.isnan(computed[outside]).all()
            x.flat[2], y.flat[3] = 0.5, 0.5  # valid elsewhere: torch's values there
            want = F.binary_cross_entropy(torch.tensor(x), torch.tensor(y), reduction="none",
                                          weight=None if w is None else torch.tensor(w)).numpy()
            np.testing.assert_allclose(computed[~outside], want[~outside], rtol=1e-13, atol=0)
            x.flat[2], y.flat[3] = 1.5, np.nan
        elif x.ndim:
            assert np.isnan(computed)
        else:
            want = F.binary_cross_entropy(torch.tensor(x), torch.tensor(y), reduction=reduction)
            np.testing.assert_allclose(computed, want.numpy(), rtol=1e-13, atol=0)


@pytest.mark.parametrize("shapes", [((7, 5), (7, 5), (7, 5)), ((7, 5), (1, 5), (7,)), ((7, 5), (7, 1), (1, 5)),
                                    ((7, 5), (7, 5), "scalar"), ((5,), (5,), (5,)), ((), (), ())])
@pytest.mark.parametrize("full", [False, True])
def test_gaussian_nll_loss_on_dask_is_one_task_per_chunk_of_rows(shapes, full):
    # Its clamp, log and quotient were 19 layers a call (the clamp's straight-through gradient is
    # 8 of them); an element reads its own row, and a target or variances of one row for all
    # (read whole). A negative variance is NaN where it cannot raise, below eps it is eps.
    x_shape, t_shape, v_shape = shapes
    x, t = scores(*x_shape), rng.standard_normal(t_shape)
    v = 0.5 if v_shape == "scalar" else rng.random(v_shape)
    if not isinstance(v, float) and v.ndim:
        v.flat[:3] = [0.0, 1e-9, 2.0]
    lazy = [da.from_array(a, chunks=3) for a in (x, t) + (() if isinstance(v, float) else (v,))]
    for reduction in ("none", "mean"):
        got = lossreg.gaussian_nll_loss(*lazy[:2], lazy[2] if len(lazy) == 3 else v, full=full, eps=1e-6,
                                        reduction=reduction)
        if x.ndim:
            # the tasks and their result, the variances' check, (N,)'s axis added; a mean's 4
            checks = 0 if isinstance(v, float) else 1 + (len(v_shape) < len(x_shape))
            assert elementwise_rows(got, *lazy) <= 2 + checks + (4 if reduction == "mean" else 0)
        want = lossreg.gaussian_nll_loss(x, t, v, full=full, eps=1e-6, reduction=reduction)
        np.testing.assert_allclose(got.compute(), want, rtol=1e-13, atol=0)


@pytest.mark.parametrize("strict", ["warnings as errors", "np.seterr raise"])
def test_gaussian_nll_loss_at_eps_0_on_dask_builds_its_graph_without_numpys_warnings(strict):
    # by_rows learns its results' layout by running the loss on zeros where the graph is built;
    # at eps=0 nothing clamps their variance of 0, whose log(0) and 0/0 warned (RuntimeWarning) to
    # a caller whose variances are all positive, and raised under -W error or np.seterr(all="raise"),
    # where op by op Dask ran nothing. The zeros are no caller's data: NumPy's values, silently.
    x, t, v = rng.standard_normal((6, 4)), rng.standard_normal((6, 4)), rng.random((6, 4)) + 0.1
    lazy = [da.from_array(a, chunks=(3, 4)) for a in (x, t, v)]
    with warnings.catch_warnings(), np.errstate(all="raise" if strict == "np.seterr raise" else "warn"):
        warnings.simplefilter("error")
        got = lossreg.gaussian_nll_loss(*lazy, eps=0.0, reduction="none")
        computed = got.compute()
    assert any(n.startswith("gaussian_losses") for n in got.__dask_graph__().layers)  # one task per chunk of rows
    np.testing.assert_allclose(computed, lossreg.gaussian_nll_loss(x, t, v, eps=0.0, reduction="none"), rtol=1e-13,
                               atol=0)


def test_gaussian_nll_loss_on_dask_poisons_a_negative_variance_in_its_tasks():
    x, t, v = rng.standard_normal((6, 4)), rng.standard_normal((6, 4)), rng.random((6, 4))
    v[4, 1] = -1.0
    got = lossreg.gaussian_nll_loss(*(da.from_array(a, chunks=(3, 4)) for a in (x, t, v)), reduction="none")
    computed = got.compute()
    assert np.isnan(computed[4, 1]) and np.isfinite(np.delete(computed.ravel(), 4 * 4 + 1)).all()
    v[4, 1] = 1.0
    np.testing.assert_allclose(np.delete(computed.ravel(), 17),
                               np.delete(lossreg.gaussian_nll_loss(x, t, v, reduction="none").ravel(), 17),
                               rtol=1e-13, atol=0)


def test_cosine_embedding_loss_on_dask_keeps_embeddings_wider_than_a_chunk_in_their_blocks():
    # One task per chunk of pairs merges each pair's D into one block: for embeddings wider than
    # Dask's own chunk size, split along D (out of core), that block held all of a row's chunks,
    # where the loss's sums, recorded one by one, kept Dask's blocks (as before one task per chunk
    # of pairs). Such embeddings are run op by op, in their blocks: NumPy's values.
    x1, x2, y = rng.standard_normal((4, 600)), rng.standard_normal((4, 600)), np.array([1, -1, 1, -1])
    lazy = [da.from_array(x1, chunks=(4, 100)), da.from_array(x2, chunks=(4, 100)), da.from_array(y, chunks=4)]
    with dask.config.set({"array.chunk-size": "4KiB"}):  # a block of 4 rows is 19 KiB merged
        got = lossreg.cosine_embedding_loss(*lazy, margin=0.1, reduction="none")
    assert not any(n.startswith(("cosine_losses", "rechunk")) for n in got.__dask_graph__().layers)
    np.testing.assert_allclose(got.compute(), lossreg.cosine_embedding_loss(x1, x2, y, margin=0.1, reduction="none"),
                               rtol=1e-13, atol=1e-15)
    got = lossreg.cosine_embedding_loss(*lazy, margin=0.1, reduction="none")  # within the chunk size: tasks
    assert any(n.startswith("cosine_losses") for n in got.__dask_graph__().layers)


@pytest.mark.parametrize("shape", [(7, 5), (7,)])
@pytest.mark.parametrize("log_input", [True, False])
def test_poisson_nll_loss_with_stirlings_term_on_dask_is_one_task_per_chunk_of_rows(shape, log_input):
    # Its rate term and Stirling's approximation (where t > 1) were 22 to 23 graph layers a call;
    # an element reads its own row. torch's values, at targets of 0, 1 and past 1.
    x = rng.standard_normal(shape) if log_input else rng.random(shape) * 3
    t = rng.integers(0, 6, shape).astype("float64")
    t.flat[:3] = [0.0, 1.0, 1.5]
    lazy = [da.from_array(a, chunks=3) for a in (x, t)]
    for reduction in ("none", "mean"):
        got = lossreg.poisson_nll_loss(*lazy, log_input=log_input, full=True, reduction=reduction)
        assert sum(n.startswith("poisson_losses-") for n in got.__dask_graph__().layers) == 2  # tasks, losses
        assert elementwise_rows(got, *lazy) <= 2 + (4 if reduction == "mean" else 0)
        want = F.poisson_nll_loss(torch.tensor(x), torch.tensor(t), log_input=log_input, full=True,
                                  reduction=reduction)
        np.testing.assert_allclose(got.compute(), want.numpy(), rtol=1e-12)


@pytest.mark.parametrize("shapes", [((6,), (6,), (6,)), ((2, 3), (2, 3), (2, 3)), ((3, 1), (1, 4), (1, 1)),
                                    ((1, 4), (3, 1), (1, 1)), ((), (), ())])
def test_margin_ranking_and_hinge_embedding_losses_on_dask_are_one_task_per_chunk_of_rows(shapes):
    # Their terms and clamps were 9 and 12 graph layers a call; an element reads its own row of
    # each array with the result's rows, and an array of one row (broadcast) whole, whichever
    # argument it is. A 0-d input has no rows: op by op. torch's values, at NaN and ±inf too.
    x1, x2 = scores(*shapes[0]), rng.standard_normal(shapes[1])
    y = np.where(rng.random(shapes[2]) < 0.5, -1.0, 1.0)
    lazy = [da.from_array(a, chunks=3) for a in (x1, x2, y)]
    hinge_target = (x2 > 0) * 2.0 - 1  # ±1 labels, broadcast as x2 is
    lazy_hinge_target = da.from_array(hinge_target, chunks=3)
    for reduction in ("none", "mean"):
        ranking = lossreg.margin_ranking_loss(*lazy, margin=0.3, reduction=reduction)
        hinge = lossreg.hinge_embedding_loss(lazy[0], lazy_hinge_target, margin=0.7, reduction=reduction)
        if len(shapes[0]):
            assert elementwise_rows(ranking, *lazy) <= 2 + (3 if reduction == "mean" else 0)
            assert elementwise_rows(hinge, lazy[0], lazy_hinge_target) <= 2 + (3 if reduction == "mean" else 0)
        t = [torch.tensor(a) for a in (x1, x2, y)]
        want = F.margin_ranking_loss(*torch.broadcast_tensors(*t), margin=0.3, reduction=reduction)
        np.testing.assert_allclose(ranking.compute(), want.numpy(), rtol=1e-12)
        want = F.hinge_embedding_loss(*torch.broadcast_tensors(t[0], torch.tensor(hinge_target)), margin=0.7,
                                      reduction=reduction)
        np.testing.assert_allclose(hinge.compute(), want.numpy(), rtol=1e-12)


@pytest.mark.parametrize("shape", [(7, 5), (7,)])
def test_kl_div_of_probabilities_on_dask_is_one_task_per_chunk_of_rows(shape):
    # t log t - t x (torch's xlogy, 0 at t = 0) was 10 graph layers a call; an element reads its
    # own row. torch's values, at targets of 0 and NaN inputs too.
    x, t = np.log(rng.random(shape)), rng.random(shape)
    x.flat[0], t.flat[1:3] = np.nan, 0.0
    lazy = [da.from_array(a, chunks=3) for a in (x, t)]
    for reduction in ("none", "mean", "batchmean"):
        got = lossreg.kl_div(*lazy, reduction=reduction)
        assert sum(n.startswith("kl_losses-") for n in got.__dask_graph__().layers) == 2  # tasks, losses
        assert elementwise_rows(got, *lazy) <= 2 + (4 if reduction != "none" else 0)
        want = F.kl_div(torch.tensor(x), torch.tensor(t), reduction=reduction)
        np.testing.assert_allclose(got.compute(), want.numpy(), rtol=1e-12)


@pytest.mark.parametrize("name", ["binary_cross_entropy", "binary_cross_entropy_with_logits", "gaussian_nll_loss",
                                  "multilabel_soft_margin_loss"])
def test_elementwise_losses_on_dask_keep_wide_rows_in_their_column_chunks(name):
    # Rows wider than Dask's chunk size, split by columns: one task per chunk of rows would merge
    # each into one block, so they run op by op in their own blocks (as before), NumPy's values.
    x, y = scores(4, 600), (rng.random((4, 600)) > 0.5).astype("float64")
    x = rng.random((4, 600)) if name == "binary_cross_entropy" else x  # probabilities
    arrays = (x, y, rng.random((4, 600))) if name == "gaussian_nll_loss" else (x, y)
    lazy = [da.from_array(a, chunks=(4, 100)) for a in arrays]
    with dask.config.set({"array.chunk-size": "4KiB"}):  # a block of 4 rows is 19 KiB merged
        got = getattr(lossreg, name)(*lazy, reduction="none")
    assert not any(n.startswith("rechunk") for n in got.__dask_graph__().layers)
    if got.ndim > 1:  # multilabel's losses are one per row
        assert max(got.chunks[1]) == 100
    want = getattr(lossreg, name)(*arrays, reduction="none")
    np.testing.assert_allclose(got.compute(), want, rtol=1e-13, atol=0)


@pytest.mark.parametrize("shape", [(7, 5), (7, 5, 2)])
@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.2}, {"weight": True},
                                     {"weight": True, "label_smoothing": 0.2}])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_cross_entropy_on_dask_runs_each_rows_log_softmax_and_pick_as_one_task(shape, options, reduction):
    # An element's loss reads its own row of scores: its log-softmax, pick, class weight and
    # smoothing term are one task per chunk of rows (toolkit.by_rows), 13 to 20 graph layers fewer
    # a call. torch's values, an ignored target included.
    x, t = scores(*shape), rng.integers(0, 5, (shape[0], *shape[2:]))
    t.flat[2] = -100
    lazy = [da.from_array(x, chunks=3), da.from_array(t, chunks=3)]
    w = {"weight": da.from_array(np.linspace(0.5, 2.0, 5), chunks=2)} if options.get("weight") else {}
    smoothing = {k: v for k, v in options.items() if k == "label_smoothing"}
    got = lossreg.cross_entropy(*lazy, reduction=reduction, **w, **smoothing)
    # The tasks, and the losses (and smoothing terms) taken from them.
    assert sum(n.startswith("index_losses-") for n in got.__dask_graph__().layers) == 2 + bool(smoothing)
    # The most of either shape, by (class weights, smoothing): with the rows' operations each a
    # layer they were none 22, 29, 25, 36; sum 25, 32, 28, 39; mean 30, 37, 32, 49.
    most = {"none": (9, 13, 11, 16), "sum": (12, 16, 14, 19), "mean": (17, 21, 18, 29)}[reduction]
    assert added_layers(got, *lazy, *w.values()) <= most[2 * bool(w) + bool(smoothing)]
    want = F.cross_entropy(torch.tensor(x), torch.tensor(t), reduction=reduction, **smoothing,
                           **{k: torch.tensor(v.compute()) for k, v in w.items()})
    np.testing.assert_allclose(got.compute(), want.numpy(), rtol=1e-12)


@pytest.mark.parametrize("shape", [(7, 5), (7, 5, 2), (5,)])
@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.2}, {"weight": True}])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_cross_entropy_of_probabilities_on_dask_runs_each_rows_terms_as_one_task(shape, options, reduction):
    # Probability targets: an element's log-softmax, smoothing, class weights and sum over the
    # classes read its own row of scores and target, one task per chunk of rows, where they were
    # 12 to 16 graph layers a call (an unbatched input (C) is one row). torch's values.
    x, t = scores(*shape), rng.dirichlet(np.ones(5), (shape[0], *shape[2:]) if len(shape) > 1 else ())
    t = np.moveaxis(t, -1, 1) if len(shape) > 1 else t
    lazy = [da.from_array(x, chunks=3), da.from_array(t, chunks=3)]
    w = {"weight": da.from_array(np.linspace(0.5, 2.0, 5), chunks=2)} if options.get("weight") else {}
    smoothing = {k: v for k, v in options.items() if k == "label_smoothing"}
    got = lossreg.cross_entropy(*lazy, reduction=reduction, **w, **smoothing)
    assert sum(n.startswith("probability_losses-") for n in got.__dask_graph__().layers) == 2  # tasks, losses
    # The most of the three shapes; with the rows' operations each a layer: 12 to 16 more.
    assert added_layers(got, *lazy, *w.values()) <= {"none": 7, "sum": 9, "mean": 10}[reduction] + bool(w)
    want = F.cross_entropy(torch.tensor(x), torch.tensor(t), reduction=reduction, **smoothing,
                           **{k: torch.tensor(v.compute()) for k, v in w.items()})
    np.testing.assert_allclose(got.compute(), want.numpy(), rtol=1e-12)


def test_cross_entropy_on_dask_keeps_the_blocks_of_rows_too_wide_to_merge():
    # Scores split by their classes whose rows, merged into one block, would pass Dask's
    # array.chunk-size (a vocabulary out of core) stay in their blocks, op by op: torch's values.
    x, t = scores(6, 40), rng.integers(0, 40, 6)
    lazy = [da.from_array(x, chunks=(3, 10)), da.from_array(t, chunks=3)]
    with dask.config.set({"array.chunk-size": "512B"}):
        got = lossreg.cross_entropy(*lazy, reduction="none")
    assert not any(n.startswith("index_losses-") for n in got.__dask_graph__().layers)
    assert got.chunks == ((3, 3),)
    want = F.cross_entropy(torch.tensor(x), torch.tensor(t), reduction="none")
    np.testing.assert_allclose(got.compute(), want.numpy(), rtol=1e-12)
