"""The JAX kernels run the portable definition under ``jax.jit``: same values, gradients and errors.

The conformance suite runs them against every case (``lossreg conformance --backend jax,jax_jit``);
these tests add random inputs, the hand-back to the portable path, and calls inside transforms.
No timings (those are in ``lossreg bench --library jax``).
"""

from __future__ import annotations

import numpy as np
import pytest

import lossreg

jax = pytest.importorskip("jax")
jnp = jax.numpy

from lossreg.kernels import jax as jax_kernels  # noqa: E402

rng = np.random.default_rng(13)


def _arrays(loss: str) -> tuple[list, dict]:
    x = jnp.asarray(rng.standard_normal((6, 5)) * 4, dtype=jnp.float32)
    if loss == "cross_entropy":
        return [x, jnp.asarray(rng.integers(0, 5, 6), dtype=jnp.int32)], {"label_smoothing": 0.1,
                                                                         "weight": jnp.linspace(0.5, 2.0, 5)}
    if loss == "kl_div":
        return [jax.nn.log_softmax(x, axis=1), jax.nn.softmax(x[::-1], axis=1)], {"reduction": "batchmean"}
    if loss == "triplet_margin_loss":
        return [x, x[::-1], x * 0.5], {"margin": 0.5}
    return [x, jnp.asarray(rng.random((6, 5)) < 0.5, dtype=jnp.float32)], {"pos_weight": jnp.full((5,), 2.0)}


@pytest.mark.parametrize("loss", jax_kernels.KERNELS)
def test_kernel_agrees_with_the_portable_definition_in_value_and_gradient(loss):
    arrays, options = _arrays(loss)
    kernel, portable = jax_kernels.KERNELS[loss], getattr(lossreg, loss).portable
    np.testing.assert_allclose(kernel(*arrays, **options), portable(*arrays, **options), rtol=1e-6)
    got = jax.grad(lambda x: kernel(x, *arrays[1:], **options))(arrays[0])
    want = jax.grad(lambda x: portable(x, *arrays[1:], **options))(arrays[0])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_the_kernel_is_chosen_for_jax_arrays_and_inlined_under_jit_and_vmap():
    x = jnp.asarray(rng.standard_normal((4, 3)), dtype=jnp.float32)
    y = jnp.asarray([0, 2, 1, 2], dtype=jnp.int32)
    eager = lossreg.cross_entropy(x, y, reduction="none")
    with lossreg.use_kernels(False):
        np.testing.assert_allclose(eager, lossreg.cross_entropy(x, y, reduction="none"), rtol=1e-6)
    np.testing.assert_allclose(jax.jit(lambda a, b: lossreg.cross_entropy(a, b, reduction="none"))(x, y), eager,
                               rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(lambda a, b: lossreg.cross_entropy(a, b))(x, y), eager, rtol=1e-6)


# Equations of triplet_margin_loss's program under jit, swap on (three distances): each is lowered
# to MLIR for every program, and eager JAX's conformance run compiles the kernel once per case
# (shapes × p × swap × reduction). They were 64, 43, 43, 82 and 43, when each norm's sign was
# seven where-equations and its fills *_like arrays.
TRIPLET_EQUATIONS = {0.0: 31, 1.0: 25, 2.0: 37, 3.0: 52, float("inf"): 25}


@pytest.mark.parametrize("p", TRIPLET_EQUATIONS)
def test_the_triplet_kernels_program_takes_jaxs_sign_and_number_fills(p):
    x = jnp.ones((4, 5))
    portable = lossreg.triplet_margin_loss.portable  # what the kernel runs under jax.jit
    jaxpr = jax.make_jaxpr(lambda a, b, c: portable(a, b, c, p=p, swap=True))(x, x, x)
    assert len(jaxpr.eqns) <= TRIPLET_EQUATIONS[p]


def test_bad_input_raises_the_same_lossreg_error_through_the_kernel():
    x = jnp.zeros((4, 3))
    with pytest.raises(lossreg.LossValueError, match="target.*shape"):
        lossreg.cross_entropy(x, jnp.zeros((3,), dtype=jnp.int32))
    with pytest.raises(lossreg.LossValueError, match="reduction"):
        lossreg.binary_cross_entropy_with_logits(x, x, reduction="average")


def test_an_option_given_as_an_array_is_refused_naming_that_array_not_a_tracer():
    x, y = jnp.zeros((4, 3)), jnp.zeros((4,), dtype=jnp.int32)
    with pytest.raises(lossreg.LossValueError, match=r"'label_smoothing' expected a number .*got Array\(0\.1"):
        lossreg.cross_entropy(x, y, label_smoothing=jnp.asarray(0.1))


def test_invalid_class_indices_are_poisoned_as_on_the_portable_path():
    x = jnp.zeros((2, 3))
    got = lossreg.cross_entropy(x, jnp.asarray([0, 7], dtype=jnp.int32), reduction="none")
    assert np.isfinite(got[0]) and np.isnan(got[1])


def test_options_it_cannot_compile_are_handed_back_to_the_portable_path():
    x = jnp.zeros((2, 3))
    y = jnp.asarray([0, 1], dtype=jnp.int32)
    assert jax_kernels.KERNELS["cross_entropy"](x, y, weight=[1.0, 2.0, 3.0]) is NotImplemented
    assert jax_kernels.KERNELS["cross_entropy"](np.zeros((2, 3)), y) is NotImplemented
    # The class form turns a list of weights into an array first, so the kernel still runs.
    np.testing.assert_allclose(lossreg.CrossEntropyLoss(weight=[1.0, 2.0, 3.0])(x, y), np.log(3), rtol=1e-6)


def _ctc_gradient_program(frames: int) -> int:
    """Lines of the StableHLO of ``jit(grad(ctc_loss))`` over ``frames`` frames (batch 2, 5 classes)."""
    targets = jnp.asarray([[1, 2, 3], [4, 4, 0]], dtype=jnp.int32)
    lengths = jnp.asarray([frames, frames - 1], dtype=jnp.int32), jnp.asarray([3, 2], dtype=jnp.int32)
    log_probs = jax.nn.log_softmax(jnp.zeros((frames, 2, 5)), axis=-1)
    step = jax.jit(jax.grad(lambda x: lossreg.ctc_loss(x, targets, *lengths)))
    return len(step.lower(log_probs).as_text().splitlines())


def test_ctc_under_jit_is_one_loop_over_the_frames_whatever_their_number():
    # The kernel's scan: the program (and its compile time) does not grow with T ...
    scanned = _ctc_gradient_program(40)
    assert _ctc_gradient_program(3) == _ctc_gradient_program(8) == scanned
    # ... where the portable definition's Python loop is unrolled, T frames written out.
    with lossreg.use_kernels(False):
        assert _ctc_gradient_program(40) > 2 * scanned


def test_ctc_kernel_gives_the_portable_value_and_gradient():
    t, n, c = 12, 3, 6
    log_probs = jax.nn.log_softmax(jnp.asarray(rng.standard_normal((t, n, c))), axis=-1)
    targets = jnp.asarray(rng.integers(1, c, (n, 4)), dtype=jnp.int32)
    lengths = jnp.asarray([12, 9, 3], dtype=jnp.int32), jnp.asarray([4, 2, 3], dtype=jnp.int32)

    def loss(x):
        return lossreg.ctc_loss(x, targets, *lengths, reduction="sum", zero_infinity=True)

    fused = jax.value_and_grad(loss)(log_probs)
    with lossreg.use_kernels(False):
        portable = jax.value_and_grad(loss)(log_probs)
    np.testing.assert_allclose(fused[0], portable[0], rtol=1e-6)
    np.testing.assert_allclose(fused[1], portable[1], rtol=1e-5, atol=1e-7)
