"""What ``lossreg bench`` promises a reader of its figures: the budget it is given, and like for like.

Only the benchmark's structure is checked here; speed is never asserted. The clock is a fake one
where a test needs time to pass: each call advances it by a fixed step.
"""

from __future__ import annotations

import pytest

from lossreg import timing


class FakeClock:
    """``time.perf_counter`` for :func:`lossreg.timing.measure`: each timed call takes ``step`` seconds."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def perf_counter(self) -> float:
        return self.now

    def call(self) -> None:
        self.now += self.step


@pytest.mark.parametrize("budget_s", [0.5, 2.0])
def test_budget_is_the_seconds_of_sampling_per_row(monkeypatch, budget_s):
    # `--budget` is "seconds of sampling per row": a fast row (three callables of 0.1 ms) is
    # sampled for the whole budget, however many rounds that takes; it used to stop at 200
    # rounds, 0.12 s here, whatever the budget above that.
    clock = FakeClock(1e-4)
    monkeypatch.setattr(timing.time, "perf_counter", clock.perf_counter)
    calls = {name: clock.call for name in "abc"}
    warm = 3 * 2 + 3  # two warm-up calls each, then the round that sizes the batches
    _, samples, batch = timing.measure(calls, budget_s)
    one_round = 3 * batch * clock.step
    sampled = clock.now - warm * clock.step
    assert budget_s <= sampled < budget_s + one_round + 1e-9
    assert samples == pytest.approx(budget_s / one_round, abs=1)


def test_a_slow_row_still_takes_its_minimum_rounds(monkeypatch):
    # The other end, as the help of --budget says: a row never takes fewer than 3 rounds (of
    # half a second or more each) however small the budget.
    clock = FakeClock(0.5)
    monkeypatch.setattr(timing.time, "perf_counter", clock.perf_counter)
    _, samples, batch = timing.measure({"a": clock.call, "b": clock.call}, 0.01, warmups=1)
    assert (samples, batch) == (3, 1)


# Like for like: a ratio is worth reading only if both sides computed the same thing. Each row
# compares the outputs of the calls it times (the value, and the gradient where one is taken)
# and flags a row whose outputs differ: no target is judged on it, the table says VALUES DIFFER.


def test_every_torch_row_checks_that_lossreg_and_native_agree():
    from lossreg import bench

    rows = bench.run(["cross_entropy"], ["tiny"], ["torch", "numpy"], budget_s=0.01)
    assert [(r.library, r.mode) for r in rows] == [("torch", "forward"), ("torch", "forward+backward"),
                                                   ("numpy", "forward")]
    for r in rows:
        assert r.same_values and 0 <= r.max_rel_diff <= timing.SAME
        assert r.met is not None


def test_a_torch_row_whose_native_computes_another_formula_is_flagged(monkeypatch):
    import torch.nn.functional as F

    from lossreg import bench

    calls = bench._calls

    def summed_native(loss, library, mode, x, y):  # the native given reduction="sum": another formula
        import torch

        out = calls(loss, library, mode, x, y)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        out["native"] = lambda: F.mse_loss(tx, ty, reduction="sum")
        return out

    monkeypatch.setattr(bench, "_calls", summed_native)
    (row,) = bench.run(["mse"], ["tiny"], ["torch"], budget_s=0.01)[:1]
    assert not row.same_values and row.max_rel_diff > 0.5
    assert row.met is None and row.portable_met is None
    assert "VALUES DIFFER" in bench._line(row)
    text = bench.markdown([row], {"command": "c", "date": "d", "cpu": "cpu", "cores": 1, "torch_threads": 1,
                                  "load_start": "0", "load_end": "0", "versions": {}})
    assert "Targets met: 0 of 0." in text and "Values differ" in text and "torch mse tiny forward" in text


jax_needed = pytest.mark.skipif(not all(__import__("importlib").util.find_spec(m) for m in ("jax", "optax")),
                                reason="needs jax and optax")


@jax_needed
def test_every_peer_row_compares_values_and_gradients():
    from lossreg import bench_peers

    rows = bench_peers.run(["mse_loss"], ["tiny"], ["jit forward+grad"], budget_s=0.01)
    (row,) = rows
    assert row.same_values and row.max_rel_diff <= timing.SAME and row.met is not None


@jax_needed
def test_a_peer_row_computing_another_formula_is_flagged(monkeypatch):
    import dataclasses

    import optax

    from lossreg import bench_peers

    pairs = bench_peers._pairs

    def wrong() -> dict:
        pair = pairs()["mse_loss(x, y)"]  # optax's per-example values summed, not averaged
        return {"mse_loss(x, y)": dataclasses.replace(
            pair, optax=lambda x, y: optax.losses.squared_error(x, y).sum(), keras=None)}

    monkeypatch.setattr(bench_peers, "_pairs", wrong)
    (row,) = bench_peers.run(["mse_loss"], ["tiny"], ["jit forward+grad"], budget_s=0.01)
    assert not row.same_values and row.met is None
    assert "VALUES DIFFER" in bench_peers._cells(row)


def test_largest_difference_reads_values_and_gradients_of_each_library():
    import numpy as np
    import torch

    ref = (np.float32(1.0), np.array([1.0, 2.0], dtype=np.float32))
    assert timing.largest_difference({"a": ref, "b": (torch.tensor(1.0), torch.tensor([1.0, 2.0]))}, "a") == 0
    assert timing.largest_difference({"a": ref, "b": (1.0, np.array([1.0, 2.2]))}, "a") == pytest.approx(0.1)
    assert timing.largest_difference({"a": ref, "b": (1.0, np.array([1.0, 2.0, 3.0]))}, "a") == float("inf")
    assert timing.largest_difference({"a": np.array([np.nan, 1.0]), "b": np.array([np.nan, 1.0])}, "a") == 0
    assert timing.largest_difference({"a": np.array([np.nan, 1.0]), "b": np.array([0.0, 1.0])}, "a") == float("inf")


@jax_needed
def test_a_ctc_row_gives_the_shape_it_timed():
    # CTC runs at its own sizes, (B, T, K) = (2, 5, 5) for "tiny": the row (table and JSON) gives
    # that, not the 4×5 of the other losses' tiny rows.
    from lossreg import bench_peers

    (row,) = bench_peers.run(["ctc_loss"], ["tiny"], ["jit forward"], budget_s=0.01)
    assert row.shape == (2, 5, 5)
    assert "tiny 2×5×5" in bench_peers._cells(row)


@jax_needed
def test_the_json_stays_valid_json_when_outputs_differ_in_shape(monkeypatch, tmp_path):
    # A peer that returns per-example values (no mean) differs from lossreg in shape: inf, which
    # JSON cannot hold; the file gives null there, not Python's `Infinity`.
    import dataclasses
    import json

    import optax

    from lossreg import bench, bench_peers

    pairs = bench_peers._pairs

    def unreduced() -> dict:
        pair = pairs()["mse_loss(x, y)"]
        return {"mse_loss(x, y)": dataclasses.replace(pair, optax=lambda x, y: optax.losses.squared_error(x, y),
                                                     keras=None)}

    monkeypatch.setattr(bench_peers, "_pairs", unreduced)
    stem = tmp_path / "peers"
    assert bench.main(["--library", "jax", "--loss", "mse_loss", "--size", "tiny", "--mode", "eager-forward",
                       "--budget", "0.01", "--out", str(stem)]) == 0

    def refuse(name: str) -> None:
        raise ValueError(f"not JSON: {name}")

    data = json.loads((tmp_path / "peers.json").read_text(), parse_constant=refuse)
    (row,) = data["rows"]
    assert row["max_rel_diff"] is None and row["same_values"] is False and row["met"] is None


@pytest.mark.parametrize("module", ["optax", "jax"])
def test_library_jax_without_its_peers_is_a_usage_error(monkeypatch, capsys, module):
    # `--library jax` compares against optax: without it installed, one line and status 2 before
    # anything is timed, not a ModuleNotFoundError traceback (after the torch rows, or at --loss).
    from lossreg import bench

    monkeypatch.setitem(__import__("sys").modules, module, None)  # as if not installed
    for argv in (["--library", "jax", "--size", "tiny"], ["--library", "torch,jax", "--loss", "mse"]):
        assert bench.main([*argv, "--budget", "0.01"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("lossreg bench: --library jax") and module in err and "Traceback" not in err
