"""A JAX/optax user moving a training loop to lossreg: behaviour such a user meets, checked
against optax on the same arrays."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
optax = pytest.importorskip("optax")

import lossreg  # noqa: E402

_COMPILES: list[str] = []
_EVENT = "/jax/core/compile/backend_compile_duration"


@pytest.fixture(scope="module")
def compiles() -> list[str]:
    """XLA compilations, one entry each, from the first use in this module on."""
    jax.monitoring.register_event_duration_secs_listener(
        lambda e, _d, **_k: _COMPILES.append(e) if e == _EVENT else None)
    return _COMPILES


def test_an_eager_gradient_step_with_a_label_smoothing_schedule_stops_compiling(compiles: list[str]) -> None:
    # A training step run without jit: jax.value_and_grad of the loss with this step's label
    # smoothing. The JAX kernel took the tracers of an eager jax.grad for an enclosing jit's, which
    # inlines its program, so it never counted the values: every new value compiled two programs
    # (forward and backward), at every step, and kept them. Past a few values it now runs op by
    # op, as a plain eager call does, and as optax's (uncompiled) functions run.
    logits = jax.random.normal(jax.random.key(0), (16, 5))
    y = jnp.arange(16, dtype=jnp.int32) % 5
    schedule = [0.0043 + 0.0067 * i for i in range(24)]  # values no other test uses

    def ours(value):
        return jax.value_and_grad(lambda z: lossreg.cross_entropy(z, y, label_smoothing=value))(logits)

    def theirs(value):
        smoothed = optax.smooth_labels(jax.nn.one_hot(y, 5), value)
        return jax.value_and_grad(lambda z: optax.softmax_cross_entropy(z, smoothed).mean())(logits)

    counts = {}
    for name, step in (("lossreg", ours), ("optax", theirs)):
        results = [step(value) for value in schedule[:12]]
        before = len(compiles)
        results += [step(value) for value in schedule[12:]]
        counts[name] = len(compiles) - before
        counts[name + " results"] = results
    assert counts["lossreg"] == counts["optax"] == 0
    for (v1, g1), (v2, g2) in zip(counts["lossreg results"], counts["optax results"]):
        np.testing.assert_allclose(v1, v2, rtol=1e-6)
        np.testing.assert_allclose(g1, g2, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name, call", [
    ("cross_entropy", lambda z, y: lossreg.cross_entropy(z, y)),
    ("cross_entropy", lambda z, y: lossreg.cross_entropy(z, y, label_smoothing=0.1)),
    ("nll_loss", lambda z, y: lossreg.nll_loss(jax.nn.log_softmax(z), y)),
    ("linear_cross_entropy", lambda z, y: lossreg.linear_cross_entropy(z, jnp.eye(5), y)),
])
def test_value_checks_sync_raises_inside_an_eager_gradient_for_every_loss(name: str, call) -> None:
    # Under value_checks("sync") a concrete JAX array is read and an invalid label raises. Inside
    # jax.value_and_grad called eagerly the values are known too (nll_loss, which has no JAX
    # kernel, raised), but the losses with a JAX kernel took the gradient's tracer for jit's and
    # gave a NaN loss (and a finite gradient) instead.
    logits = jax.random.normal(jax.random.key(1), (3, 5))
    labels = jnp.asarray([0, 1, 9], dtype=jnp.int32)
    with lossreg.value_checks("sync"):
        with pytest.raises(lossreg.LossValueError, match=rf"{name}: argument 'target' .* got 9"):
            call(logits, labels)
        with pytest.raises(lossreg.LossValueError, match=rf"{name}: argument 'target' .* got 9"):
            jax.value_and_grad(lambda z: call(z, labels))(logits)
        # Under jit the values are not known: the loss is NaN, as without "sync".
        assert np.isnan(jax.jit(lambda z: call(z, labels))(logits))


def test_a_jax_scalar_given_for_a_number_option_says_to_pass_a_python_number() -> None:
    # optax takes jnp.float32(0.1) for its smoothing; lossreg's number options are static. The
    # error said "expected a number in [0.0, 1.0], got Array(0.1, dtype=float32)", which reads as
    # if 0.1 were out of range; it now says what is wrong and what to pass, for the functional
    # and the class form alike.
    logits, labels = jnp.zeros((4, 3)), jnp.zeros((4,), dtype=jnp.int32)
    said = r"got Array\(0\.1, dtype=float32\), a 0-d array: this option is static, pass a Python number"
    with pytest.raises(lossreg.LossValueError, match=r"'label_smoothing' expected a number in \[0\.0, 1\.0\], " + said):
        lossreg.cross_entropy(logits, labels, label_smoothing=jnp.float32(0.1))
    with pytest.raises(lossreg.LossValueError, match=r"'margin' expected a number, got .*a 0-d array: this option "
                                                     r"is static, pass a Python number"):
        lossreg.TripletMarginLoss(margin=jnp.float32(0.5))
    with pytest.raises(lossreg.LossTypeError, match=r"'log_target' expected True or False, got .*a 0-d array: "
                                                    r"this option is static, pass True or False"):
        lossreg.kl_div(logits, logits, log_target=jnp.bool_(True))
