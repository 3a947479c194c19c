"""The benchmarks' interleaved sampling (``lossreg.timing.measure``) times no callable after another more often.

A call can slow the next one (on JAX, a call after Keras's at 2048x8192 takes 10-15 % longer),
so a ratio is fair only if each callable follows each other one equally often.
"""

from __future__ import annotations

from collections import Counter
from itertools import groupby

import pytest

from lossreg.timing import measure


@pytest.mark.parametrize("names", ["ab", "abc"])
def test_each_callable_follows_each_other_one_equally_often(names: str) -> None:
    sequence: list[str] = []
    calls = {name: (lambda name=name: sequence.append(name)) for name in names}
    _, samples, _ = measure(calls, budget_s=10.0, max_samples=12, warmups=0)
    assert samples == 12
    # After the untimed round that sizes the batches; a batch is timed as one: a run of one name.
    timed = [name for name, _ in groupby(sequence[len(names):])]
    after = Counter(zip(timed, timed[1:]))
    for name in names:
        counts = {before: after[before, name] for before in names if before != name}
        assert max(counts.values()) - min(counts.values()) <= 1, (name, counts)  # 1: the last round
