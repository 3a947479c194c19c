"""``lossreg bench --library jax`` times lossreg against optax and Keras on the same arrays.

Only the machinery is checked here (which peers, which rows, the report); the figures themselves
are in benchmarks/results/jax_peers.md. Speed is never asserted.
"""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("jax")
pytest.importorskip("optax")

from lossreg import bench, bench_peers  # noqa: E402


# Each pair compiles its operations eagerly (seconds on a busy machine): four by default, every
# pair with LOSSREG_PEER_CHECK=all.
CHECKED = None if os.environ.get("LOSSREG_PEER_CHECK") == "all" else (
    "cross_entropy(x, labels)", "cross_entropy(x, probabilities)", "mse_loss(x, y)",
    "ctc_loss(log_softmax(x), y, lengths, 'sum') / B")  # lengths against optax's paddings


def test_every_pair_computes_the_same_value_as_its_peers():
    import numpy as np

    pairs = bench_peers._pairs()
    assert set(CHECKED or ()) <= set(pairs)
    for name, pair in pairs.items():
        if CHECKED is not None and name not in CHECKED:
            continue
        arrays = pair.make(np.random.default_rng(0), (8, 6))
        want = float(pair.lossreg(*arrays["lossreg"]))
        for peer in ("optax", "keras"):
            fn = getattr(pair, peer)
            if fn is not None:
                assert float(fn(*arrays[peer])) == pytest.approx(want, rel=2e-5, abs=1e-6), (name, peer)


def test_the_cli_writes_json_and_a_markdown_table(tmp_path, capsys):
    stem = tmp_path / "peers"
    code = bench.main(["--library", "jax", "--loss", "cross_entropy", "--size", "tiny", "--mode", "eager-forward",
                       "--budget", "0.01", "--out", str(stem)])
    assert code == 0
    data = json.loads((tmp_path / "peers.json").read_text())
    assert {r["call"] for r in data["rows"]} == {"cross_entropy(x, labels)", "cross_entropy(x, probabilities)"}
    row = data["rows"][0]
    assert row["lossreg_us"] > 0 and row["optax_us"] > 0 and row["keras_us"] > 0
    assert row["optax_ratio"] == pytest.approx(row["lossreg_us"] / row["optax_us"])
    assert row["target"] == 1.5 and row["met"] == (row["optax_ratio"] <= 1.5)
    assert "| cross_entropy(x, labels) | tiny 4×5 | eager forward |" in (tmp_path / "peers.md").read_text()


def test_an_unknown_mode_is_a_one_line_error(capsys):
    assert bench.main(["--library", "jax", "--mode", "jit-backward"]) == 2
    assert "unknown mode 'jit backward'" in capsys.readouterr().err
