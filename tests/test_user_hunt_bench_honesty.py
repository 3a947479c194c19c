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
