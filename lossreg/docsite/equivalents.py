"""What each loss is called in torch.nn, Keras and optax, and how the arguments map.

One table, read by the loss pages and by the "coming from" pages. A loss absent from a library's
column has no equivalent there ("none" on its page). torch's entry defaults to the loss's
``reference`` when that names a ``torch.nn`` class. Keras names are ``keras.losses`` classes,
optax names ``optax.losses`` functions; ``tests/test_docsite.py`` checks that each exists and
that the mappings stated as equal give lossreg's values.
"""

from __future__ import annotations

from typing import NamedTuple

from ..registry import LossSpec


class Equivalent(NamedTuple):
    name: str  # the API, importable as written
    mapping: str  # how arguments and results correspond (markdown)


_KERAS_AXIS = "Keras takes `(y_true, y_pred)`, averages over the last axis, then over the batch"
_OPTAX_NONE = "optax returns one loss per element (`reduction=\"none\"`); take `.mean()` for the default"

# torch equivalents that a loss's ``reference`` does not name as a torch.nn class.
TORCH: dict[str, Equivalent] = {
    "linear_cross_entropy": Equivalent(
        "torch.nn.LinearCrossEntropyLoss",
        "torch ≥ 2.13, same signature and value; torch chunks only with `options=` set (and not with "
        "class weights or label smoothing); no `z_loss` or `softcap`"),
}

KERAS: dict[str, Equivalent] = {
    "mse_loss": Equivalent("keras.losses.MeanSquaredError", _KERAS_AXIS),
    "l1_loss": Equivalent("keras.losses.MeanAbsoluteError", _KERAS_AXIS),
    "huber_loss": Equivalent("keras.losses.Huber", f"`delta` as `delta`; {_KERAS_AXIS}"),
    "binary_cross_entropy": Equivalent(
        "keras.losses.BinaryCrossentropy", "`from_logits=False`; Keras clips probabilities to [1e-7, 1 - 1e-7] "
        "where torch clamps each log at -100; `(y_true, y_pred)` order"),
    "binary_cross_entropy_with_logits": Equivalent(
        "keras.losses.BinaryCrossentropy", "`from_logits=True`; no `pos_weight`; `(y_true, y_pred)` order"),
    "multilabel_soft_margin_loss": Equivalent(
        "keras.losses.BinaryCrossentropy", "`from_logits=True` averages over the classes as this loss does"),
    "cross_entropy": Equivalent(
        "keras.losses.SparseCategoricalCrossentropy",
        "class indices: `SparseCategoricalCrossentropy(from_logits=True)`; probabilities: "
        "`CategoricalCrossentropy(from_logits=True, label_smoothing=ε)`; Keras puts classes on the "
        "last axis, torch on axis 1; `ignore_index` as `ignore_class`"),
    "kl_div": Equivalent("keras.losses.KLDivergence",
                         "Keras takes probabilities `(y_true=p, y_pred=q)`, lossreg log-probabilities "
                         "`(input=log q, target=p)`: "
                         "`KLDivergence()(p, q) == kl_div(log q, p, reduction=\"batchmean\")` for (N, C) "
                         "arrays; Keras averages over every axis but the last, so in general (a (C,) pair, "
                         "(N, T, C) sequences) `KLDivergence()(p, q) == kl_div(log q, p, "
                         "reduction=\"sum\") * p.shape[-1] / p.size`"),
    "poisson_nll_loss": Equivalent("keras.losses.Poisson",
                                   "`log_input=False`: Keras takes the rate itself, `y_pred - y_true log(y_pred + 1e-7)`"),
    "cosine_embedding_loss": Equivalent("keras.losses.CosineSimilarity",
                                        "Keras gives `-cos`, lossreg `1 - cos` for target 1: "
                                        "`CosineSimilarity()(x2, x1) == cosine_embedding_loss(x1, x2, ones) - 1`"),
    # Keras 3's CTC (not tf.keras' ctc_batch_cost, of probabilities with the blank last): logits, blank 0.
    "ctc_loss": Equivalent("keras.losses.CTC",
                           "Keras takes `(y_true, y_pred)`: labels `(N, S)` padded with 0, each sequence's "
                           "length its count of non-zero labels; batch-major `(N, T, C)` logits (it takes "
                           "their log-softmax), every sequence all T frames; blank = class 0 (`blank=0`); its "
                           "mean is over the batch, `reduction=\"sum\"` / N (lossreg's \"mean\" divides each "
                           "loss by its target length first): `CTC()(y, z) == ctc_loss(log_softmax(z)"
                           ".transpose(1, 0, 2), y, [T] * N, (y != 0).sum(1), reduction=\"sum\") / N`"),
    # Not close either: the largest violation against the mean of the violations over C classes.
    "multi_margin_loss": Equivalent("keras.losses.CategoricalHinge",
                                    "another quantity: Keras' `max(0, 1 + max(0, max_{i≠y} x_i) - x_y)` of "
                                    "one-hot targets (the largest other score, floored at 0: its one-hot "
                                    "product leaves 0 at the true class), torch's `Σ_{i≠y} max(0, 1 - x_y + "
                                    "x_i) / C`; C times lossreg's (`reduction=\"none\"`) where at most one "
                                    "class violates the margin and some other score is ≥ 0"),
    "log_cosh_loss": Equivalent("keras.losses.LogCosh", _KERAS_AXIS),
    "mape_loss": Equivalent("keras.losses.MeanAbsolutePercentageError", _KERAS_AXIS),
    "msle_loss": Equivalent("keras.losses.MeanSquaredLogarithmicError", _KERAS_AXIS),
    "dice_loss": Equivalent("keras.losses.Dice", "`(y_true, y_pred)` order; Keras scores the whole batch as one "
                            "sample (`axis=None`; per sample with `axis=(1, ...)`) and adds its epsilon to the "
                            "denominator only: `smooth=0.0`"),
    "tversky_loss": Equivalent("keras.losses.Tversky", "`(y_true, y_pred)` order; Keras' `alpha` weighs the false "
                               "negatives: swap `alpha` and `beta`; `smooth=0.0`; whole batch as for `dice_loss`"),
    "binary_focal_loss": Equivalent("keras.losses.BinaryFocalCrossentropy",
                                    "`from_logits=True`, `alpha`, `gamma`; `apply_class_balancing=True` for `alpha`"),
    "focal_loss": Equivalent("keras.losses.CategoricalFocalCrossentropy",
                             "one-hot targets, `gamma`; Keras' `alpha` (0.25) is `weight=[alpha] * C`; "
                             "its mean divides by the batch (`reduction=\"sum\"` / N)"),
    "generalized_cross_entropy": Equivalent("keras.losses.CategoricalGeneralizedCrossEntropy",
                                            "`q` as `q` (Keras' default 0.5, here 0.7); Keras takes "
                                            "probabilities, lossreg logits: `(labels, softmax(x))`"),
}

OPTAX: dict[str, Equivalent] = {
    "mse_loss": Equivalent("optax.losses.squared_error", f"`(predictions, targets)`; {_OPTAX_NONE}"),
    "huber_loss": Equivalent("optax.losses.huber_loss", f"`(predictions, targets, delta)`; {_OPTAX_NONE}"),
    "smooth_l1_loss": Equivalent("optax.losses.huber_loss",
                                 f"`smooth_l1_loss(beta=β) = huber_loss(delta=β) / β`; {_OPTAX_NONE}"),
    "binary_cross_entropy_with_logits": Equivalent("optax.losses.sigmoid_binary_cross_entropy",
                                                   "`(logits, labels)`; torch's `(1 - y) x - log σ(x)` here: "
                                                   "NaN at a logit of -inf with y > 0 (optax: inf); for losses "
                                                   "below ~1e-16 at x ≪ 0, y = 0 torch's kernel (torch tensors) "
                                                   "gives 0, the portable definition optax's value (4e-18 at "
                                                   f"x = -40); {_OPTAX_NONE}"),
    "multilabel_soft_margin_loss": Equivalent("optax.losses.sigmoid_binary_cross_entropy",
                                              "then `.mean(axis=-1)` over the classes"),
    "cross_entropy": Equivalent(
        "optax.losses.softmax_cross_entropy_with_integer_labels",
        "class indices: `softmax_cross_entropy_with_integer_labels(logits, labels)`; probabilities: "
        "`softmax_cross_entropy(logits, labels)`; label smoothing: `optax.smooth_labels`; classes on "
        "the last axis; optax's `where=` and `safe_softmax_cross_entropy` give a class of logit -inf and "
        "probability 0 no loss where torch's `0 · -inf` (and lossreg's) is NaN: mask such classes with a "
        f"finite logit (e.g. -1e30) or use class indices; {_OPTAX_NONE}"),
    "kl_div": Equivalent("optax.losses.kl_divergence",
                         "`kl_divergence(log_predictions, targets)`, the same order as torch; "
                         "`log_target=True`: `kl_divergence_with_log_targets`; optax sums over the last axis"),
    "cosine_embedding_loss": Equivalent("optax.losses.cosine_distance", "`1 - cos`, the target-1 branch"),
    "multi_margin_loss": Equivalent("optax.losses.multiclass_hinge_loss",
                                    "another quantity: optax's `max(0, 1 + max_{i≠y} x_i - x_y)` (Crammer and "
                                    "Singer: the largest violation), torch's `Σ_{i≠y} max(0, 1 - x_y + x_i) / C` "
                                    "(Weston and Watkins: every violation, divided by C); C times lossreg's "
                                    "(`reduction=\"none\"`) where at most one class violates the margin"),
    "triplet_margin_loss": Equivalent("optax.losses.triplet_margin_loss",
                                      "`(anchors, positives, negatives, margin=, norm_degree=p)`, close, not "
                                      "equal: optax adds `eps` under the root (torch adds it to each difference) "
                                      "and takes no absolute value (so an odd `p` differs); " + _OPTAX_NONE),
    "ctc_loss": Equivalent("optax.losses.ctc_loss",
                           "`(logits, logit_paddings, labels, label_paddings, blank_id)`: batch-major, "
                           "paddings instead of lengths, logits instead of log-probabilities"),
    "log_cosh_loss": Equivalent("optax.losses.log_cosh", f"`(predictions, targets)`; {_OPTAX_NONE}"),
    "sparsemax_loss": Equivalent("optax.losses.multiclass_sparsemax_loss", "`(scores, labels)`"),
    "poly1_cross_entropy": Equivalent("optax.losses.poly_loss_cross_entropy", "`epsilon` as `epsilon`; one-hot labels"),
    "dice_loss": Equivalent("optax.losses.dice_loss",
                            "`(predictions, targets, apply_softmax=False)`, classes on the last axis, one score "
                            "per (sample, class) averaged over the classes: `dice_loss` on `(N·C, ...)` rows with "
                            "`smooth` = 2 × optax's"),
    "generalized_dice_loss": Equivalent("optax.losses.multiclass_generalized_dice_loss",
                                        "another loss under the name: optax averages a Dice score per (sample, "
                                        "class), classes last, weighted by `1 / (v² + 1e-7)` of each class's volume "
                                        "over the whole batch, scaled to sum to C: `dice_loss` on `(N·C, ...)` rows "
                                        "with `smooth` = 2 × optax's, times those weights, then the mean; here one "
                                        "ratio of weighted sums per sample, weights from its own target"),
    "binary_focal_loss": Equivalent("optax.losses.sigmoid_focal_loss", "`(logits, labels, alpha, gamma)`"),
    "nt_xent_loss": Equivalent("optax.losses.ntxent", "`(embeddings, labels, temperature)`"),
}

LIBRARIES = {"torch": "torch.nn", "keras": "Keras", "optax": "optax"}


def torch_equivalent(spec: LossSpec) -> Equivalent | None:
    if spec.name in TORCH:
        return TORCH[spec.name]
    if spec.reference.startswith("torch.nn."):
        return Equivalent(spec.reference, "the same arguments, names and defaults")
    return None


def equivalents(spec: LossSpec) -> dict[str, Equivalent | None]:
    return {"torch": torch_equivalent(spec), "keras": KERAS.get(spec.name), "optax": OPTAX.get(spec.name)}
