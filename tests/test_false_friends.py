"""Names that another library gives to a different quantity are not lossreg names.

optax's ``l2_loss`` is half the squared error; optax's and scikit-learn's multi-class hinge is
Crammer and Singer's largest violation, not torch's sum of violations. Answering to such a name
would give a user a silently other number, so ``lossreg.get`` refuses it and says what the
name means there and what to call instead. A plugin may still register a loss of that name.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

import lossreg
from lossreg import define_loss, toolkit


@pytest.mark.parametrize("name, closest, says", [
    ("l2_loss", "mse_loss", "half of mse_loss"),
    ("L2Loss", "mse_loss", "half of mse_loss"),
    ("multiclass_hinge", "multi_margin_loss", "Crammer and Singer"),
    ("multiclass-hinge-loss", "multi_margin_loss", "Crammer and Singer"),
    ("categorical_crossentropy", "cross_entropy", "take probabilities by default .*from_logits=True"),
    ("SparseCategoricalCrossentropy", "cross_entropy", "take probabilities by default .*from_logits=True"),
])
def test_a_false_friend_is_refused_with_what_it_means_elsewhere(name, closest, says):
    with pytest.raises(lossreg.UnknownLossError, match=rf"no loss named {name!r}, on purpose: .*{says}.*'{closest}'"):
        lossreg.get(name)


def test_the_false_friends_are_not_aliases():
    for spec in map(lossreg.spec, lossreg.names()):
        assert not {*map(lossreg.core.normalize, spec.false_friends)} & {*map(lossreg.core.normalize, spec.all_names)}


def test_optax_l2_loss_is_half_of_mse():
    optax = pytest.importorskip("optax")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 3), dtype=np.float32), rng.standard_normal((4, 3), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(optax.l2_loss(x, y)), 0.5 * lossreg.mse_loss(x, y, reduction="none"),
                               rtol=1e-6)


def test_optax_multiclass_hinge_takes_the_largest_violation_where_multi_margin_sums_them():
    optax = pytest.importorskip("optax")
    scores = np.array([[2.0, 1.5, 1.8, -1.0], [0.1, 0.2, 0.3, 0.4]])
    labels = np.array([0, 3])
    theirs = np.asarray(optax.losses.multiclass_hinge_loss(scores, labels))
    violations = np.maximum(0.0, 1.0 - scores[np.arange(2), labels][:, None] + scores)
    violations[np.arange(2), labels] = 0.0
    np.testing.assert_allclose(theirs, violations.max(axis=1), rtol=1e-6)  # Crammer and Singer
    ours = lossreg.multi_margin_loss(scores, labels, reduction="none")
    np.testing.assert_allclose(ours, violations.sum(axis=1) / 4, rtol=1e-12)  # Weston and Watkins, over C
    assert not np.allclose(ours, theirs)


def test_keras_categorical_crossentropy_takes_probabilities_where_cross_entropy_takes_logits():
    # The names were aliases of cross_entropy: lossreg.keras.get("sparse_categorical_crossentropy") on a
    # softmax model's output took the probabilities for logits, softmax twice, with no error (1.08 for
    # Keras' 1.35 on a 3-class batch), where the Keras user meant Keras' default, from_logits=False.
    import os

    os.environ.setdefault("KERAS_BACKEND", "numpy")  # any backend computes a loss; this one needs nothing more
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((6, 3))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, 3, size=6)
    theirs = np.asarray(keras.losses.sparse_categorical_crossentropy(labels, p))
    np.testing.assert_allclose(theirs, lossreg.nll_loss(np.log(p), labels, reduction="none"), rtol=1e-5)
    assert not np.allclose(theirs, lossreg.cross_entropy(p, labels, reduction="none"), rtol=1e-2)
    hot = np.eye(3)[labels]
    np.testing.assert_allclose(np.asarray(keras.losses.categorical_crossentropy(hot, p)), theirs, rtol=1e-5)
    from_logits = np.asarray(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    np.testing.assert_allclose(from_logits, lossreg.cross_entropy(logits, labels, reduction="none"), rtol=1e-5)


@define_loss(class_name="HalfSquaredError", aliases=("l2_loss",), differentiable=("input", "target"))
def half_squared_error(input, target, /, *, reduction="mean"):  # noqa: ANN001, ANN201
    """``½ (x - y)²``, optax's l2_loss."""
    xp, x, y, dtype = toolkit.pointwise_inputs("half_squared_error", input, target, reduction)
    return toolkit.reduce(xp, 0.5 * (x - y) ** 2, reduction, dtype)


def test_a_plugin_may_register_a_loss_under_a_false_friend_name():
    lossreg.register_plugin(types.SimpleNamespace(lossreg_losses=lossreg.hookimpl(lambda: [half_squared_error])),
                            name="half")
    try:
        assert lossreg.spec("l2_loss").name == "half_squared_error"
        assert lossreg.get("l2_loss")(np.array([1.0, 3.0]), np.zeros(2)) == pytest.approx(2.5)
    finally:
        lossreg.unregister_plugin("half")
    with pytest.raises(lossreg.UnknownLossError, match="on purpose"):
        lossreg.get("l2_loss")


def test_a_spec_naming_its_own_alias_a_false_friend_is_a_plugin_fault():
    @define_loss(class_name="Confused", aliases=("confused",), false_friends={"Confused": "a name of its own"})
    def confused_loss(input, target, /, *, reduction="mean"):  # noqa: ANN001, ANN202
        return input

    with pytest.warns(lossreg.LossregPluginWarning, match="false_friends names"):
        lossreg.register_plugin(types.SimpleNamespace(lossreg_losses=lossreg.hookimpl(lambda: [confused_loss])),
                                name="confused")
    try:
        assert "confused_loss" not in lossreg.names()
    finally:
        lossreg.unregister_plugin("confused")
