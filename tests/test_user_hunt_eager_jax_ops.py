"""Eager JAX compiles each operation as its own program, once per new shape and dtype (~10 ms
apiece on a CPU): a portable loss called without ``jax.jit`` on a new shape costs its number of
distinct operations in compiles (issue 13, items 2 and 5). The setup of a loss, masks and
indices computed from small integer arrays (labels, lengths, class indices), was most of them:
one ``ctc_loss`` call on a new shape compiled 115 programs, and cross_entropy's class-index
checks six. ``toolkit.fused`` runs such setup as one compiled program on concrete JAX arrays,
and as it is everywhere else (NumPy, torch, Dask, traced JAX), with the same values.

Compiles are counted with JAX's own monitoring event, on shapes no other test uses.
"""

from __future__ import annotations

import numpy as np
import pytest

import lossreg
from lossreg import toolkit
from lossreg.registry import use_kernels

jax = pytest.importorskip("jax")
jnp = jax.numpy

_COMPILES = [0]


def _count(event: str, duration: float, **_: object) -> None:
    if event == "/jax/core/compile/backend_compile_duration":
        _COMPILES[0] += 1


jax.monitoring.register_event_duration_secs_listener(_count)


def compiles(call):
    """The programs XLA compiled while ``call()`` ran (its result made ready), and the result."""
    before = _COMPILES[0]
    out = jax.block_until_ready(call())
    return _COMPILES[0] - before, out


def _plain_setup(xp, labels, lengths, *, c):
    """Six operations of the kind a loss's setup is made of."""
    valid = (labels >= 0) & (labels < c)
    n, s = labels.shape
    within = xp.reshape(xp.arange(s, dtype=labels.dtype), (1, s)) < xp.reshape(lengths, (n, 1))
    return xp.where(valid & within, labels, 0), ~valid & within


def _setup(xp, *arrays, **options):
    return _fused_setup()(xp, *arrays, **options)


def _fused_setup(made=[]):  # noqa: B006 (made once, on first use)
    if not made:
        made.append(toolkit.fused(_plain_setup))
    return made[0]


def _setup_arrays(module, n, s, c):
    rng = np.random.default_rng(n * s)
    labels = rng.integers(-1, c + 1, (n, s))
    lengths = rng.integers(0, s + 1, n)
    return module.asarray(labels), module.asarray(lengths)


def test_fused_setup_is_one_program_on_concrete_jax_arrays():
    labels, lengths = _setup_arrays(jnp, 19, 23, 5)
    n, (safe, wrong) = compiles(lambda: _setup(jnp, labels, lengths, c=5))
    assert n == 1
    direct_safe, direct_wrong = _plain_setup(jnp, labels, lengths, c=5)
    np.testing.assert_array_equal(safe, direct_safe)
    np.testing.assert_array_equal(wrong, direct_wrong)
    n, _ = compiles(lambda: _setup(jnp, labels, lengths, c=5))
    assert n == 0  # the second call on that shape compiles nothing


def test_fused_setup_runs_as_it_is_on_other_libraries_and_traced_jax():
    labels, lengths = _setup_arrays(np, 19, 23, 5)
    want = _plain_setup(np, labels, lengths, c=5)
    got = _setup(np, labels, lengths, c=5)
    assert all(type(g) is np.ndarray for g in got)  # NumPy's own arrays, no JAX round trip
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    torch = pytest.importorskip("torch")
    got = _setup(lossreg.toolkit.namespace("t", x=torch.asarray(labels)), torch.asarray(labels),
                 torch.asarray(lengths), c=5)
    assert all(isinstance(g, torch.Tensor) for g in got)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.numpy(), w)
    # Under jax.jit and jax.vmap the arrays are tracers: the function is traced into the caller's program.
    jitted = jax.jit(lambda a, b: _setup(jnp, a, b, c=5))(jnp.asarray(labels), jnp.asarray(lengths))
    for g, w in zip(jitted, want):
        np.testing.assert_array_equal(g, w)
    mapped = jax.vmap(lambda a, b: _setup(jnp, a[None], b[None], c=5))(jnp.asarray(labels), jnp.asarray(lengths))
    for g, w in zip(mapped, want):
        np.testing.assert_array_equal(np.asarray(g)[:, 0], w)


def _ctc_arrays(t, n, c, s):
    rng = np.random.default_rng(t * n * c * s)
    log_probs = jnp.asarray(rng.standard_normal((t, n, c)), jnp.float32)
    targets = jnp.asarray(rng.integers(1, c, (n, s)))
    return log_probs, targets, jnp.asarray(rng.integers(s, t + 1, n)), jnp.asarray(rng.integers(0, s + 1, n))


# At most this many programs for one eager call (kernels off) on a new shape, after a first call
# on another: the loss's own operations, with its setup as a few programs. Before toolkit.fused
# (the same calls): 110, 125, 24, 27 and 35; with it 53, 54, 18, 21 and 26. CTC's opening, frame
# and ending fused too (each a dozen operations, compiled again for every shape): 14 and 15, where
# they were 49 and 50; GaussianNLLLoss's clamp of var, KLDivLoss's t·log t and the margin losses' clamp at 0
# fused: 11, 5 and 7, where they were 17, 10 and 10.
# linear_cross_entropy's chunk of one vocabulary block (its forward, some forty operations) one program,
# each block of several one: 8 and 29, where they were 32 and 67.
BUDGETS = {"ctc_loss": 20, "ctc_loss concatenated": 21, "cross_entropy": 20, "multi_margin_loss": 23,
           "multilabel_margin_loss": 30, "gaussian_nll_loss": 13, "kl_div": 6,
           "margin_ranking_loss": 8, "linear_cross_entropy": 12, "linear_cross_entropy vocabulary blocks": 34}


def _eager_call(case, size):
    """One eager call of ``case`` whose every array has a shape made from ``size`` (no two sizes alike)."""
    rng = np.random.default_rng(size)
    if case.startswith("ctc_loss"):
        log_probs, targets, il, tl = _ctc_arrays(size, size // 3, size - 4, size // 3 + 1)
        if case.endswith("concatenated"):
            targets = jnp.concatenate([targets[i, :int(tl[i])] for i in range(size // 3)])
        return lambda: lossreg.ctc_loss(log_probs, targets, il, tl)
    x = jnp.asarray(rng.standard_normal((size, size + 4)), jnp.float32)
    if case.startswith("linear_cross_entropy"):  # hidden states (N, D), an LM head (V, D), smoothing and a cap
        w = jnp.asarray(rng.standard_normal((size // 2, size + 4)), jnp.float32)
        target = jnp.asarray(rng.integers(0, size // 2, size))
        chunks = (size // 3, size // 5) if case.endswith("blocks") else None
        return lambda: lossreg.linear_cross_entropy(x, w, target, label_smoothing=0.1, softcap=30.0, chunk_size=chunks)
    if case == "margin_ranking_loss":  # its clamp at 0, torch's gradient at 0 and NaN: five operations
        y = jnp.sign(jnp.asarray(rng.standard_normal(x.shape), jnp.float32))
        return lambda: lossreg.margin_ranking_loss(x, x[::-1], y, margin=0.5)
    if case in ("gaussian_nll_loss", "kl_div"):  # a positive second array: variances, probabilities
        y = jnp.asarray(rng.uniform(0.01, 1.0, (size, size + 4)), jnp.float32)
        # var near 0 too, so that the clamp at eps takes some (and a target of 0 for t·log t)
        z = jnp.asarray(rng.standard_normal((size, size + 4)), jnp.float32)
        return (lambda: lossreg.gaussian_nll_loss(x, z, y.at[0, 0].set(0.0))) if case == "gaussian_nll_loss" \
            else (lambda: lossreg.kl_div(x, y.at[0, 0].set(0.0)))
    if case == "multilabel_margin_loss":
        target = jnp.asarray(rng.integers(-1, size + 4, (size, size + 4)))
    else:
        target = jnp.asarray(rng.integers(0, size + 4, size))
    return lambda: getattr(lossreg, case)(x, target)


@pytest.mark.parametrize("case", list(BUDGETS))
def test_an_eager_call_on_a_new_shape_compiles_the_loss_not_each_setup_step(case):
    size = 20 + 10 * list(BUDGETS).index(case)  # shapes of this case only
    call = _eager_call(case, size + 3)
    with use_kernels(False):
        compiles(_eager_call(case, size))  # what a process compiles once, whatever the shape
        n, value = compiles(call)
        again, second = compiles(call)
    assert n <= BUDGETS[case], f"{case}: {n} programs compiled for one eager call"
    assert again == 0
    assert not np.isnan(np.asarray(value)).any()
    np.testing.assert_array_equal(value, second)


def test_invalid_values_still_raise_in_sync_mode_and_poison_otherwise():
    """The masks are computed in one program, then read (value_checks("sync")) or applied as NaN,
    as before: the first invalid argument in the loss's order of checks is the one named."""
    log_probs, targets, il, tl = _ctc_arrays(6, 2, 5, 3)
    bad_lengths, bad_targets = il.at[1].set(9), targets.at[0, 0].set(0)  # past T; the blank as a label
    with use_kernels(False):
        with lossreg.value_checks("sync"):
            with pytest.raises(lossreg.LossValueError, match="input_lengths.*got 9"):
                lossreg.ctc_loss(log_probs, bad_targets, bad_lengths, tl)
            with pytest.raises(lossreg.LossValueError, match="targets.*other than blank=0.*got 0"):
                lossreg.ctc_loss(log_probs, bad_targets, il, tl)
            with pytest.raises(lossreg.LossValueError, match="target.*got 7"):
                lossreg.cross_entropy(jnp.ones((2, 5)), jnp.asarray([1, 7]))
            with pytest.raises(lossreg.LossValueError, match="target.*got 5"):
                lossreg.multilabel_margin_loss(jnp.ones((2, 5)), jnp.asarray([[1, -1, 0, 0, 0], [5, 0, 0, 0, 0]]))
        losses = lossreg.ctc_loss(log_probs, bad_targets, il, tl, reduction="none")
        assert np.isnan(losses[0]) and np.isfinite(losses[1])
        losses = lossreg.multi_margin_loss(jnp.ones((2, 5)), jnp.asarray([1, 7]), reduction="none")
        assert np.isfinite(losses[0]) and np.isnan(losses[1])
