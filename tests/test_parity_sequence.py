"""ctc_loss against torch.nn.functional.ctc_loss: random alignments, every option, errors."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from parity import check_parity

import lossreg
from lossreg.errors import LossTypeError, LossValueError

REDUCTIONS = ("none", "mean", "sum")
SEEDS = range(12)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def _concatenate(targets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    return np.concatenate([targets[i, :k] for i, k in enumerate(lengths)] + [np.zeros(0, dtype="int64")])


def _problem(seed: int, layout: str) -> tuple[dict[str, np.ndarray], int]:
    """A random batch: T ≤ 30, N ≤ 4, C ≤ 8, S ≤ 10, any blank; some alignments impossible."""
    rng = np.random.default_rng(seed)
    t, n, c, s = int(rng.integers(1, 31)), int(rng.integers(1, 5)), int(rng.integers(2, 9)), int(rng.integers(0, 11))
    blank = int(rng.integers(0, c)) if seed % 3 else 0
    labels = [k for k in range(c) if k != blank]
    few = labels[: 1 + seed % 2]  # few distinct labels: many repeats, which need blanks between
    targets = rng.choice(few if seed % 4 == 1 else labels, size=(n, s)).astype("int64")
    target_lengths = rng.integers(0, s + 1, size=n)
    input_lengths = np.where(rng.random(n) < 0.6, t, rng.integers(0, t + 1, size=n))
    log_probs = _log_softmax((1 + seed % 3) * rng.normal(size=(t, n, c)))
    if layout == "concatenated":
        targets = _concatenate(targets, target_lengths)
    return {"log_probs": log_probs, "targets": targets, "input_lengths": input_lengths,
            "target_lengths": target_lengths}, blank


def _finite(inputs: dict[str, np.ndarray], blank: int) -> bool:
    return bool(torch.isfinite(F.ctc_loss(*(torch.from_numpy(v) for v in inputs.values()), blank=blank,
                                          reduction="none")).all())


@pytest.mark.parametrize(("layout", "reduction", "zero_infinity"),
                         list(itertools.product(("padded", "concatenated"), REDUCTIONS, (False, True))))
def test_ctc_matches_torch(layout, reduction, zero_infinity):
    for seed in SEEDS:
        inputs, blank = _problem(seed, layout)
        # torch's gradient of an infinite loss is NaN; zero_infinity makes it 0.
        grads = zero_infinity or _finite(inputs, blank)
        check_parity("ctc_loss", F.ctc_loss, inputs,
                     {"blank": blank, "reduction": reduction, "zero_infinity": zero_infinity}, grads=grads)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_unbatched_matches_torch(reduction):
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        t, c = int(rng.integers(2, 20)), int(rng.integers(2, 7))
        lp = _log_softmax(rng.normal(size=(t, c)))
        k = int(rng.integers(0, min(t, 6)))
        targets = rng.integers(1, c, size=(k,))
        options = {"reduction": reduction, "zero_infinity": True}
        for target_form, lengths in itertools.product((targets, np.concatenate([targets, [1, 1]])[None]),
                                                      ((np.array(t), np.array(k)), (np.array([t - 1]), np.array([k])))):
            inputs = {"log_probs": lp, "targets": target_form, "input_lengths": lengths[0], "target_lengths": lengths[1]}
            check_parity("ctc_loss", F.ctc_loss, inputs, options)


def test_impossible_alignments():
    lp = _log_softmax(np.random.default_rng(1).normal(size=(4, 4, 5)))
    inputs = {"log_probs": lp, "targets": np.array([[1, 1, 2, 0, 0], [2, 3, 0, 0, 0], [1, 2, 3, 4, 1], [3, 0, 0, 0, 0]]),
              "input_lengths": np.array([3, 0, 4, 2]), "target_lengths": np.array([3, 2, 5, 1])}
    for reduction in REDUCTIONS:
        check_parity("ctc_loss", F.ctc_loss, inputs, {"reduction": reduction, "zero_infinity": True})
        check_parity("ctc_loss", F.ctc_loss, inputs, {"reduction": reduction}, grads=False)
    got = lossreg.ctc_loss(*inputs.values(), reduction="none")
    assert np.isinf(got[:3]).all() and np.isfinite(got[3])
    lp_t = torch.tensor(lp, requires_grad=True)
    loss = lossreg.ctc_loss(lp_t, *(torch.from_numpy(v) for v in list(inputs.values())[1:]), zero_infinity=True,
                            reduction="sum")
    (grad,) = torch.autograd.grad(loss, lp_t)
    assert torch.all(grad[:, :3] == 0) and torch.isfinite(grad).all()


def test_gradient_of_the_logits_matches_torch():
    """Through log_softmax, the gradient every trainer uses is torch's exactly."""
    for seed in SEEDS:
        inputs, blank = _problem(seed, "padded")
        logits = torch.tensor(np.random.default_rng(seed + 99).normal(size=inputs["log_probs"].shape), requires_grad=True)
        rest = [torch.from_numpy(v) for v in list(inputs.values())[1:]]
        want = F.ctc_loss(F.log_softmax(logits, -1), *rest, blank=blank, zero_infinity=True)
        got = lossreg.ctc_loss(F.log_softmax(logits, -1), *rest, blank=blank, zero_infinity=True)
        (g_want,), (g_got,) = torch.autograd.grad(want, logits), torch.autograd.grad(got, logits)
        np.testing.assert_allclose(got.detach(), want.detach(), rtol=1e-9)
        np.testing.assert_allclose(g_got, g_want, rtol=1e-6, atol=1e-9)


def test_unnormalized_log_probs_match_torch():
    # torch's value is the alignment sum whatever the rows sum to; its gradient exp(x) - γ.
    for seed in SEEDS:
        inputs, blank = _problem(seed, "padded")
        inputs["log_probs"] = np.random.default_rng(seed).normal(size=inputs["log_probs"].shape) - 1.0
        check_parity("ctc_loss", F.ctc_loss, inputs, {"blank": blank, "zero_infinity": True})


def test_frames_past_the_input_length_are_never_read():
    lp = _log_softmax(np.random.default_rng(3).normal(size=(6, 2, 4)))
    garbage = lp.copy()
    garbage[4:, 1] = np.nan
    args = (np.array([[1, 2, 3], [3, 3, 0]]), np.array([6, 4]), np.array([3, 2]))
    np.testing.assert_array_equal(lossreg.ctc_loss(garbage, *args, reduction="none"),
                                  lossreg.ctc_loss(lp, *args, reduction="none"))
    x = torch.tensor(garbage, requires_grad=True)
    (grad,) = torch.autograd.grad(lossreg.ctc_loss(x, *(torch.from_numpy(a) for a in args)), x)
    assert torch.isfinite(grad).all() and torch.all(grad[4:, 1] == 0)


def test_half_precision_is_computed_in_float32():
    inputs, _ = _problem(2, "padded")
    lp = torch.from_numpy(inputs["log_probs"]).half()
    rest = [torch.from_numpy(v) for v in list(inputs.values())[1:]]
    got = lossreg.ctc_loss(lp, *rest, zero_infinity=True, reduction="none")
    assert got.dtype == torch.float16
    want = F.ctc_loss(lp.float(), *rest, zero_infinity=True, reduction="none")
    np.testing.assert_allclose(got.float(), want.half().float(), rtol=2e-3)


def test_lazy_arrays_poison_invalid_values():
    da = pytest.importorskip("dask.array")
    lp = _log_softmax(np.random.default_rng(0).normal(size=(5, 2, 4)))
    bad = [(np.array([[1, 0], [2, 3]]), np.array([5, 5]), np.array([2, 2])),  # a blank label
           (np.array([[1, 2], [2, 3]]), np.array([6, 5]), np.array([2, 2])),  # input length above T
           (np.array([1, 2, 3]), np.array([5, 5]), np.array([2, 2]))]  # lengths do not sum to 3
    for targets, il, tl in bad:
        got = lossreg.ctc_loss(da.from_array(lp), da.from_array(targets), da.from_array(il), da.from_array(tl))
        assert np.isnan(got.compute())


def _dask_problem(frames: int, layout: str = "padded", seed: int = 0) -> list:
    """Four sequences in two batch chunks, as Dask arrays."""
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(seed)
    targets, lengths = rng.integers(1, 5, size=(4, 6)), np.array([3, 2, 6, 1])
    if layout == "concatenated":
        targets = _concatenate(targets, lengths)
    return [da.from_array(_log_softmax(rng.normal(size=(frames, 4, 5))), chunks=(frames, 2, 5)),
            da.from_array(targets, chunks=(2, 6) if layout == "padded" else 5),
            da.from_array(np.full(4, frames), chunks=2), da.from_array(lengths, chunks=2)]


def _tasks(lazy) -> tuple[int, int]:
    tasks = dict(lazy.__dask_graph__())
    return len(tasks), sum("rechunk" in (k[0] if isinstance(k, tuple) else k) for k in tasks)


def test_the_portable_path_on_dask_adds_a_few_tasks_per_frame_and_no_rechunk():
    """The portable definition records the frame loop, so what one frame adds to the graph is
    paid T times over. Each frame stays within the batch chunks its inputs came in: about 20
    tasks per chunk, and no rechunk (arrays made whole would be rechunked to the inputs' chunks
    at every frame)."""
    with lossreg.use_kernels(False):
        (short, short_rechunks), (long, long_rechunks) = (
            _tasks(lossreg.ctc_loss(*_dask_problem(frames), reduction="none")) for frames in (3, 23))
    assert (long - short) / 20 < 50  # tasks per frame, two chunks (212 when frames rechunked)
    assert (long_rechunks - short_rechunks) / 20 < 5  # the setup's, along T (48 per frame then)


@pytest.mark.parametrize("layout", ["padded", "concatenated"])
def test_the_dask_kernel_runs_each_chunks_frames_in_one_task_whatever_T(layout):
    """lossreg's Dask kernel (the default on Dask arrays) puts no frame in the graph: T=3 and
    T=300 build graphs of the same size (but for a chunk more of an arange over the frames),
    and give the eager answer."""
    sizes = []
    for frames in (3, 300):
        arrays = _dask_problem(frames, layout)
        lazy = lossreg.ctc_loss(*arrays, reduction="none")
        sizes.append(_tasks(lazy)[0])
        np.testing.assert_allclose(lazy.compute(), lossreg.ctc_loss(*(np.asarray(a) for a in arrays),
                                                                    reduction="none"), rtol=1e-12)
    assert sizes[1] - sizes[0] <= 2


def _refusing_scheduler(*args, **kwargs):
    raise AssertionError("computed during the call")


# Concatenated targets take the portable setup on Dask (its graph building is most of the time),
# and the dtypes are that setup's: one dtype, two seeds.
@pytest.mark.parametrize(("layout", "dtype"), [("padded", "float16"), ("padded", "float32"), ("padded", "float64"),
                                               ("concatenated", "float32")])
def test_the_dask_kernel_agrees_with_the_portable_definition_to_the_last_nan(layout, dtype):
    """Values, dtypes and the sequences that invalid values turn to NaN are the portable
    definition's (eager, in "poison" mode: what a lazy array gets), for every reduction and
    zero_infinity, with the frames and classes in chunks of their own too; nothing is computed
    during the call."""
    da = pytest.importorskip("dask.array")
    import dask
    for seed in range(4 if layout == "padded" else 2):
        inputs, blank = _problem(seed, layout)
        lp, targets, il, tl = inputs.values()
        variants = [(targets, il, tl), (targets, np.where(np.arange(il.size) == 0, lp.shape[0] + 1, il), tl),
                    (np.where(targets == targets.flat[0], blank, targets) if targets.size else targets, il, tl),
                    (targets, il, np.where(np.arange(tl.size) == 0, -1, tl))]
        for targets_, il_, tl_ in variants:
            arrays = [da.from_array(lp.astype(dtype), chunks=(max(1, lp.shape[0] // 2), 1, 3)),
                      da.from_array(targets_, chunks=(1, 4) if layout == "padded" else 3),
                      da.from_array(il_, chunks=1), da.from_array(tl_, chunks=1)]
            for reduction, zero_infinity in itertools.product(REDUCTIONS, (False, True)):
                options = {"blank": blank, "reduction": reduction, "zero_infinity": zero_infinity}
                with dask.config.set(scheduler=_refusing_scheduler):
                    lazy = lossreg.ctc_loss(*arrays, **options)
                with lossreg.value_checks("poison"):
                    want = lossreg.ctc_loss(lp.astype(dtype), targets_, il_, tl_, **options)
                got = lazy.compute(scheduler="sync")
                assert got.dtype == want.dtype == np.dtype(dtype)
                np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
                np.testing.assert_allclose(got, want, rtol=1e-12 if dtype == "float64" else 1e-3)


def test_the_dask_kernel_takes_empty_batch_chunks_as_boolean_indexing_leaves_them():
    """Sequences filtered by a mask, then ``compute_chunk_sizes()``: batch chunks (3, 0, 3)."""
    da = pytest.importorskip("dask.array")
    inputs, blank = _problem(5, "padded")
    keep = da.from_array((np.arange(9) < 3) | (np.arange(9) >= 6), chunks=3)  # the middle chunk goes

    def filtered(x: np.ndarray, axis: int):
        nine = np.take(x, np.arange(9) % x.shape[axis], axis=axis)  # nine sequences, in chunks of 3
        out = da.from_array(nine, chunks={axis: 3})[(slice(None),) * axis + (keep,)]
        out.compute_chunk_sizes()
        return out

    arrays = [filtered(inputs["log_probs"], 1)] + [filtered(v, 0) for k, v in inputs.items() if k != "log_probs"]
    assert arrays[0].chunks[1] == (3, 0, 3)
    # The same sequences' labels concatenated, in chunks of 2: the portable setup on Dask, the
    # frames per batch chunk.
    labels, lengths = (np.asarray(a) for a in arrays[1:4:2])
    joined = da.from_array(np.concatenate([row[:k] for row, k in zip(labels, lengths)]), chunks=2)
    for targets in (arrays[1], joined):
        for reduction in REDUCTIONS:
            got = lossreg.ctc_loss(arrays[0], targets, *arrays[2:], blank=blank, reduction=reduction,
                                   zero_infinity=True).compute()
            want = F.ctc_loss(*(torch.from_numpy(np.asarray(a)) for a in arrays), blank=blank, reduction=reduction,
                              zero_infinity=True)
            np.testing.assert_allclose(got, want.numpy(), rtol=1e-10)


def test_the_dask_kernel_raises_bad_arguments_at_the_call():
    pytest.importorskip("dask.array")
    import dask
    arrays = _dask_problem(5)
    with dask.config.set(scheduler=_refusing_scheduler):
        with pytest.raises(LossValueError, match="target_lengths"):
            lossreg.ctc_loss(*arrays[:3], arrays[3][:3])
        with pytest.raises(LossTypeError, match="targets"):
            lossreg.ctc_loss(arrays[0], arrays[1].astype("float64"), *arrays[2:])
        with pytest.raises(LossValueError, match="blank"):
            lossreg.ctc_loss(*arrays, blank=5)


def _backward_nodes(out: torch.Tensor) -> set[str]:
    seen, stack = set(), [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None and type(node).__name__ not in seen:
            seen.add(type(node).__name__)
            stack.extend(next_fn for next_fn, _ in node.next_functions)
    return seen


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_values_left_unread_still_go_through_torchs_ctc_and_poison_the_bad_samples(reduction):
    """In "poison" mode (and on CUDA in "auto") nothing is read back to check: torch's CTC still
    computes, with the checks done in the graph, and a sample with a blank label or a length
    past T becomes NaN, as the portable definition makes it."""
    lp = torch.randn(6, 3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    lp = lp.log_softmax(-1).requires_grad_()
    targets, lengths = torch.tensor([[1, 2, 3], [4, 4, 0], [2, 0, 0]]), torch.tensor([3, 2, 1])
    with lossreg.value_checks("poison"):
        got = lossreg.ctc_loss(lp, targets, torch.tensor([6, 5, 4]), lengths, reduction=reduction)
        bad = lossreg.ctc_loss(lp, torch.tensor([[1, 2, 3], [0, 4, 0], [2, 0, 0]]), torch.tensor([6, 9, 4]),
                               lengths, reduction="none")
    want = F.ctc_loss(lp, targets, torch.tensor([6, 5, 4]), lengths, reduction=reduction)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(torch.autograd.grad(got.sum(), lp)[0], torch.autograd.grad(want.sum(), lp)[0])
    assert "CtcLossBackward0" in _backward_nodes(got)
    assert torch.isnan(bad[1]) and torch.isfinite(bad[[0, 2]]).all()


def test_on_dask_the_graph_grows_linearly_with_the_batch_chunks():
    """Data that outgrows one machine comes in many batch chunks. On the portable path (the
    kernel's graph is a few tasks per chunk, whatever T) each chunk's log-probabilities,
    targets and lengths are read by that chunk's tasks only: no gather pairs every chunk with
    every chunk (Dask's take with computed indices does, and says so in a PerformanceWarning)."""
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(0)

    def graph(chunks: int) -> dict:
        n, frames = 2 * chunks, 5
        arrays = [da.from_array(_log_softmax(rng.normal(size=(frames, n, 6))), chunks=(frames, 2, 6)),
                  da.from_array(rng.integers(1, 6, size=(n, 3)), chunks=(2, 3)),
                  da.from_array(np.full(n, frames), chunks=2), da.from_array(rng.integers(0, 4, size=n), chunks=2)]
        with warnings.catch_warnings(), lossreg.use_kernels(False):
            warnings.simplefilter("error")
            lazy = lossreg.ctc_loss(*arrays, reduction="none")
        eager = lossreg.ctc_loss(*(np.asarray(a) for a in arrays), reduction="none")
        np.testing.assert_allclose(lazy.compute(), eager, rtol=1e-12)
        return dict(lazy.__dask_graph__().layers)

    few, many = graph(4), graph(32)
    assert max(len(layer) for layer in many.values()) <= 2 * 32  # a few tasks per chunk, never 32 × 32
    assert sum(map(len, many.values())) / sum(map(len, few.values())) < 32 / 4 * 1.05


def test_jax_jit(jax_float64: None):
    jax = pytest.importorskip("jax")
    inputs, blank = _problem(4, "concatenated")
    arrays = [jax.numpy.asarray(v) for v in inputs.values()]
    loss = jax.jit(lambda *a: lossreg.ctc_loss(*a, blank=blank, zero_infinity=True))
    want = F.ctc_loss(*(torch.from_numpy(v) for v in inputs.values()), blank=blank, zero_infinity=True)
    np.testing.assert_allclose(np.asarray(loss(*arrays)), want.numpy(), rtol=1e-9)


def test_names_and_class_form():
    for alias in ("ctc", "CTCLoss", "connectionist-temporal-classification", "ctc_loss"):
        assert lossreg.spec(alias).name == "ctc_loss"
    crit = lossreg.get("ctc", blank=2, reduction="sum", zero_infinity=True)
    assert lossreg.from_config(crit.get_config()) == crit
    inputs = {"log_probs": _log_softmax(np.random.default_rng(6).normal(size=(9, 3, 5))),
              "targets": np.array([[1, 3, 3, 4], [0, 4, 0, 0], [4, 4, 1, 0]]), "input_lengths": np.array([9, 7, 2]),
              "target_lengths": np.array([4, 3, 3])}
    want = F.ctc_loss(*(torch.from_numpy(v) for v in inputs.values()), blank=2, reduction="sum", zero_infinity=True)
    np.testing.assert_allclose(crit(*inputs.values()), want.numpy(), rtol=1e-9)

OK = {"log_probs": _log_softmax(np.random.default_rng(0).normal(size=(5, 2, 4))),
      "targets": np.array([[1, 2, 3], [2, 2, 0]]), "input_lengths": np.array([5, 4]), "target_lengths": np.array([3, 2])}


def _call(options=None, **changes):
    return lambda: lossreg.ctc_loss(*{**OK, **changes}.values(), **(options or {}))


@pytest.mark.parametrize(("call", "error", "argument", "got"), [
    (_call(input_lengths=np.array([6, 4])), LossValueError, "input_lengths", "6"),
    (_call(input_lengths=np.array([5, -1])), LossValueError, "input_lengths", "-1"),
    (_call(target_lengths=np.array([4, 2])), LossValueError, "target_lengths", "4"),
    (_call(targets=np.array([1, 2, 3, 2, 2]), target_lengths=np.array([3, 3])), LossValueError, "target_lengths", "6"),
    (_call(targets=np.array([[1, 0, 3], [2, 2, 0]])), LossValueError, "targets", "0"),
    (_call(targets=np.array([[1, 2, 3], [2, 7, 0]])), LossValueError, "targets", "7"),
    (_call({"blank": 3}), LossValueError, "targets", "3"),
    (_call({"blank": 4}), LossValueError, "blank", "4"),
    (_call(log_probs=np.zeros((5, 2, 4, 1))), LossValueError, "log_probs", "shape (5, 2, 4, 1)"),
    (_call(log_probs=np.zeros((0, 2, 4))), LossValueError, "log_probs", "shape (0, 2, 4)"),
    (_call(targets=np.array([[1, 2, 3]])), LossValueError, "targets", "shape (1, 3)"),
    (_call(target_lengths=np.array([3, 2, 1])), LossValueError, "target_lengths", "shape (3,)"),
    (_call(targets=np.array([[1.0, 2.0, 3.0], [2.0, 2.0, 0.0]])), LossTypeError, "targets", "numpy array of dtype float64"),
    (_call(input_lengths=np.array([5.0, 4.0])), LossTypeError, "input_lengths", "numpy array of dtype float64"),
    (_call({"zero_infinity": None}), LossTypeError, "zero_infinity", "NoneType"),
    (_call({"reduction": "batchmean"}), LossValueError, "reduction", "'batchmean'"),
])
def test_errors_name_the_argument_and_the_value(call, error, argument, got):
    with pytest.raises(error) as info:
        call()
    assert info.value.argument == argument
    assert got in info.value.got
