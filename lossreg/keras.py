"""Keras 3 forms of every registered loss, plugins' included (``pip install "lossreg[keras]"``).

    import os; os.environ.setdefault("KERAS_BACKEND", "jax")    # before keras is imported
    import lossreg.keras
    model.compile(optimizer="adam", loss=lossreg.keras.CrossEntropyLoss(weight=[1.0, 2.0, 0.5]))

Each class is a ``keras.losses.Loss`` named as the class form, called as Keras calls a loss,
``loss(y_true, y_pred, sample_weight=None)``, and computes ``lossreg``'s function of
``(y_pred, y_true)``: the value a torch user gets from ``torch.nn`` for the same arrays. It works
on the Keras backends whose tensors lossreg reads through array-api-compat: JAX, torch and NumPy
(inference only). TensorFlow tensors are not covered by array-api-compat: on the tensorflow
backend a loss raises :class:`lossreg.UnsupportedError` saying so.

Reductions. The ``reduction`` option is lossreg's (torch.nn's: "mean", "sum", "none", and
"batchmean" for kl_div), applied by lossreg; Keras's own reduction is not applied on top. So
without ``sample_weight`` the value is exactly torch.nn's, e.g. weighted cross-entropy's mean
divides by the sum of the weights of the targets, not by the batch size.

``sample_weight`` (Keras's per-sample weights, also what ``fit(class_weight=...)`` passes) weights
the unreduced loss (``reduction="none"``), broadcast over its leading axes as Keras does; then
"none" returns the weighted values, "sum" their sum, "batchmean" their sum over the batch size,
and "mean" their sum divided by what the loss's own mean divides by, weighted alike: the number of
values for most losses (Keras's "sum_over_batch_size"), Σ sᵢ·wᵢ for mse_loss and l1_loss given a
per-element ``weight``, Σ sᵢ·weight[yᵢ] over the non-ignored
targets for the losses of class-index targets with ``ignore_index`` (cross_entropy, nll_loss, and
plugins' losses such as focal_loss or poly1_cross_entropy), and for ctc_loss each sequence's
loss is divided by its target length first. Where those weights sum to 0 (a batch whose sample
weights are all 0, or whose targets are all ignored, with or without sample weights) that mean is 0, as Keras's own losses give,
not torch's 0 / 0 = NaN, which in ``fit`` would turn the model's weights to NaN. Otherwise, with
all sample weights 1, the value is torch.nn's.
A plugin loss whose "mean" is none of these gets the plain weighted mean (``sample_weight=None``
is always exact).
A loss whose unreduced values stack several views of the batch (``define_loss(views=2)``: NT-Xent's
2N values for N pairs) takes a weight per sample, ``(N,)`` as ``fit`` passes them, for each of its
values (one per value, ``(2N,)``, is taken too).

The Keras mask of ``y_pred`` (``Embedding(mask_zero=True)``, ``Masking``) weighs the unreduced
loss as sample weights do, 0 at masked steps, and "mean" divides by the unmasked count (0 when
everything is masked), as Keras's own losses do.

Losses of more than two arrays take dicts keyed by the argument names:
``GaussianNLLLoss()({"target": y}, {"input": mu, "var": var})``; a bare ``y_pred`` is the first
argument (``input``) and a bare ``y_true`` the ``target`` (else the second argument). Class-index targets keep their
integer dtype (Keras would cast them to floats), and floating ones not of the scores' shape are class indices,
cast to integers as Keras's sparse losses cast them; floating ``y_true`` is cast to ``y_pred``'s dtype, and
so is an integer one where the loss takes floats (BCE's 0/1 labels, say), as Keras's own losses cast it,
a boolean one of the soft-margin losses (which take integer labels), and one-hot rows of a class-index
loss stored as integers or booleans (probabilities then).

Classes are registered with ``keras.saving`` as ``"lossreg>ClassName"`` when this module is
imported, so ``keras.models.load_model`` restores a model compiled with one.
"""

from __future__ import annotations

import inspect
import numbers
from typing import Any

import keras

from .errors import DefinitionError, LossError, LossTypeError, LossValueError, UnsupportedError
from .registry import ForkSafeLock, LossSpec, by_class_name, registry, signed_copy
from .toolkit import FLOATING, FLOATING_OR_COMPLEX, LABELS, describe, not_an_array
from .registry import from_config as lossreg_from_config

__all__ = ["KerasLoss", "get", "from_config", "SUPPORTED_BACKENDS"]

SUPPORTED_BACKENDS = ("jax", "torch", "numpy")


def check_backend(loss: str, backend: str) -> None:
    """Raise :class:`UnsupportedError` unless lossreg can read the tensors of Keras backend ``backend``."""
    if backend not in SUPPORTED_BACKENDS:
        raise UnsupportedError(
            f"{loss}: the Keras backend '{backend}' is not supported: its tensors are not covered by "
            f"array-api-compat, so lossreg cannot compute on them; set KERAS_BACKEND to one of "
            f"{', '.join(SUPPORTED_BACKENDS)} before importing keras")


class KerasLoss(keras.losses.Loss):
    """Base of the generated Keras losses; ``spec`` is the loss's :class:`lossreg.LossSpec`."""

    spec: LossSpec
    _call_weights: tuple[Any, Any] | None = None  # (sample_weight, mask) while a subclass's call runs

    def __init__(self, *args: Any, name: str | None = None, dtype: Any = None, **options: Any) -> None:
        check_backend(self.spec.name, keras.backend.backend())
        # keras.losses.Loss takes name= and dtype= itself: an option of either name could never be
        # set here (the keyword went to Keras, the option kept its default, silently).
        taken = [k for k in ("name", "dtype") if k in self.spec.options]
        if taken:
            raise DefinitionError(f"lossreg.keras.{self.spec.class_name}: option {taken[0]!r} of {self.spec.name} "
                                  f"is keras.losses.Loss's own argument ({taken[0]}=), so the Keras loss cannot "
                                  "take it; rename the option in the definition (the functional and class forms "
                                  "take it as it is)")
        # Checks the option names, and refuses options by position with the class form's error (not
        # Python's "takes 1 positional argument"): Keras's own losses take (reduction, name) so.
        self.lossreg = registry().loss_class(self.spec.name)(*args, **options)
        super().__init__(name=name or self.spec.name, reduction="none", dtype=dtype)  # lossreg reduces

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        check_backend(self.spec.name, keras.backend.backend())
        # .get: a dict without the first argument is _arrays' LossValueError naming the arrays, not a KeyError
        first = y_pred.get(self.spec.inputs[0]) if isinstance(y_pred, dict) else y_pred
        mask = None if first is None else _keras_mask(first)
        if type(self).call is not KerasLoss.call:
            # A subclass's own call (Keras's way to customise a loss: super().call plus a penalty,
            # say) gives the value, as keras.losses.Loss.__call__ calls it; it was skipped, silently.
            # Its super().call is this loss weighted by this call's sample weights and mask.
            self._call_weights = (sample_weight, mask)
            try:
                return self.call(y_true, y_pred)
            finally:
                self._call_weights = None
        return self._value(y_true, y_pred, sample_weight, mask)

    def _value(self, y_true: Any, y_pred: Any, sample_weight: Any, mask: Any) -> Any:
        arrays, hot = self._arrays(y_true, y_pred)
        options = self._options(arrays[0])
        while True:
            try:
                return self._compute(arrays, options, sample_weight, mask)
            except LossError as error:
                argument = str(getattr(error, "argument", ""))
                index = self.spec.inputs.index(argument) if argument in self.spec.inputs else 0
                if index and index == hot:
                    # Integer rows of the scores' shape, read as one-hot probabilities, which this
                    # loss does not take: the integers as given, and the loss's own word on them.
                    arrays, hot = self._arrays(y_true, y_pred, one_hot=False)
                    continue
                # Integer labels where the loss takes floats (BCE's 0/1, a regression's whole numbers),
                # or boolean ones where it takes integer or floating labels (multi-hot rows from
                # pandas.get_dummies for MultiLabelSoftMarginLoss): Keras's own losses cast y_true to
                # y_pred's dtype, and so does this one from now on (labels are exact as floats).
                # Each such argument once (GaussianNLL's target and var, say).
                if not (index and isinstance(error, LossTypeError)
                        and error.expected in (FLOATING, FLOATING_OR_COMPLEX, LABELS) and _integer(arrays[index])):
                    raise
                _FLOAT_LABELS.setdefault(self.spec.name, set()).add(argument)
                arrays[index] = keras.ops.cast(arrays[index], arrays[0].dtype)

    def _compute(self, arrays: list[Any], options: dict[str, Any], sample_weight: Any, mask: Any) -> Any:
        function = self.lossreg._dispatch
        if sample_weight is not None or mask is not None:
            return self._weighted(function, arrays, options, sample_weight, mask)
        kind, rule = _mean_rule(self.spec)
        # A mean of per-value divisions (ctc_loss's) is never over nothing: its value as computed.
        # .get: a plugin's loss may have no reduction option (its value as computed, as _weighted says).
        d = rule(arrays, options, None) if rule and kind == "count" and options.get("reduction") == "mean" else None
        if d is None:
            return function(*arrays, **options)
        # A mean over nothing (every target ignored, or of weight 0): 0, as Keras's own losses
        # give and the weighted path does, not torch's 0 / 0 = NaN (which stops fit's
        # TerminateOnNaN). Its gradient is 0 too: there the loss is computed with weights of 1,
        # since the 0 / 0 of the unselected branch would make the gradient NaN all the same.
        # torch.nn's value otherwise, exactly.
        nothing = keras.ops.sum(d) == 0
        if options.get("weight") is not None:
            w = keras.ops.convert_to_tensor(options["weight"])  # a list where a plugin's is no array option
            options = {**options, "weight": keras.ops.where(nothing, keras.ops.ones_like(w), w)}
        out = function(*arrays, **options)
        return keras.ops.where(nothing, keras.ops.zeros_like(out), out)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        """The loss of ``y_pred`` (reduced, torch.nn's value); in a subclass's own ``call``, weighted
        by the sample weights and Keras mask its ``__call__`` was given."""
        weights = self._call_weights
        if weights is None:
            first = y_pred.get(self.spec.inputs[0]) if isinstance(y_pred, dict) else y_pred
            weights = (None, None if first is None else _keras_mask(first))
        return self._value(y_true, y_pred, *weights)

    def _arrays(self, y_true: Any, y_pred: Any, one_hot: bool = True) -> tuple[list[Any], int | None]:
        """The loss's arrays in its order, and the index of integer one-hot rows read as
        probabilities (cast to the scores' dtype), if any."""
        names = self.spec.inputs
        truth = next((n for n in ("target", "targets") if n in names), names[1] if len(names) > 1 else None)
        given: dict[str, Any] = {}
        for part, default in ((y_pred, names[0]), (y_true, truth)):
            if isinstance(part, dict):
                given.update(part)
            elif default is not None:
                given[default] = part
        if set(given) != set(names):
            raise LossValueError(self.spec.name, "y_true/y_pred", f"the arrays {', '.join(names)} (pass dicts "
                                 "keyed by these names when the loss takes more than two)",
                                 ", ".join(sorted(given)) or "nothing")
        first = self._tensor(names[0], given[names[0]], dtype=self.dtype)
        arrays, hot = [first], None
        floating = _FLOAT_LABELS.get(self.spec.name, ())
        for index, name in enumerate(names[1:], 1):
            x = self._tensor(name, given[name])
            if name == truth and self._float_indices(x, first):
                x = keras.ops.cast(x, "int32")
            if one_hot and name == truth and _integer(x) and name not in floating and self._one_hot(x, first):
                hot = index
            if not _integer(x) or name in floating or hot == index:
                x = keras.ops.cast(x, first.dtype)  # class indices stay integers
            arrays.append(x)
        return arrays, hot

    def _tensor(self, name: str, x: Any, dtype: Any = None) -> Any:
        """``x`` as a tensor of the Keras backend. What the backend cannot convert (None where a
        target belongs, as ``fit(x)`` without ``y`` passes it, strings, objects) is a LossTypeError
        naming the argument, as the functional form's, not the backend's conversion error (JAX's
        "None is not a valid value for jnp.array", torch's "Invalid dtype: str32")."""
        try:
            tensor = keras.ops.convert_to_tensor(x)
        except (TypeError, ValueError) as error:
            raise LossTypeError(self.spec.name, name, "an array of numbers (NumPy, JAX, torch, a Keras tensor, "
                                "a list of numbers)", describe(x)) from error
        if "complex" in keras.backend.standardize_dtype(tensor.dtype):
            # Refused, as the functional forms refuse it: a cast to y_pred's dtype drops the imaginary
            # part. L1Loss's too, whose functional form takes complex input as torch's does: Keras's
            # own losses are real (its MeanAbsoluteError casts complex arrays to floats).
            raise LossTypeError(self.spec.name, name, "real numbers", describe(x if hasattr(x, "dtype") else tensor))
        return tensor if dtype is None else keras.ops.cast(tensor, dtype)

    def _float_indices(self, target: Any, scores: Any) -> bool:
        """Floating labels of a class-index loss not of the scores' shape (so not probabilities):
        class indices stored as floats, as Keras's sparse losses read them (cast to integers).
        Keras makes them: a keras.losses.Loss subclass's __call__ casts y_true to its float dtype
        before its call (a loss combining this one with others), and fit passes float label
        columns as they are; they were a LossValueError, where SparseCategoricalCrossentropy trains."""
        return ("ignore_index" in self.spec.options and "float" in keras.backend.standardize_dtype(target.dtype)
                and tuple(target.shape) != tuple(scores.shape))

    def _one_hot(self, target: Any, scores: Any) -> bool:
        """Integer or boolean labels of a class-index loss with the scores' own shape (N, C, ...):
        one-hot (or multi-hot) rows, e.g. from ``pandas.get_dummies``, which are probabilities, as
        Keras's CategoricalCrossentropy reads them (class indices have no class axis). A class
        axis of 1 is left alone: there (N, 1) are Keras's sparse labels."""
        return ("ignore_index" in self.spec.options and target.ndim == scores.ndim >= 2
                and tuple(target.shape) == tuple(scores.shape) and scores.shape[1] != 1)

    def _options(self, like: Any) -> dict[str, Any]:
        options = dict(self.lossreg.options)
        for key in self.spec.array_options:
            value = options[key]
            if value is None:
                continue
            if isinstance(value, (list, tuple, int, float)) and not isinstance(value, bool):
                # Numbers, as the class form checked them: an array of y_pred's dtype, as the class form makes.
                options[key] = keras.ops.convert_to_tensor(_plain(value), dtype=like.dtype)
                continue
            try:
                # The backend's own tensor as it is (moved to Keras's device), and a Keras Variable's
                # value (a layer's bias as linear_bias: inside fit's step, JAX's traced value): through
                # NumPy, a JAX tracer (weights made under jit or grad) could not be read, and a torch
                # tensor or Variable lost its gradient. Other arrays (NumPy, another library's) through NumPy.
                native = keras.ops.is_tensor(value) or isinstance(value, keras.Variable)
                tensor = keras.ops.convert_to_tensor(value if native else _plain(value))
            except (TypeError, ValueError) as error:  # a string, a dict: named, in the class form's words
                raise not_an_array(self.spec.name, key, value) from error
            # A floating array takes y_pred's dtype; integer, bool and complex ones are left as they
            # are, for the loss to refuse as the functional and class forms do (a cast to y_pred's
            # dtype took them, and dropped a complex weight's imaginary part).
            floating = "float" in keras.backend.standardize_dtype(tensor.dtype)
            options[key] = keras.ops.cast(tensor, like.dtype) if floating else tensor
        return options

    def _weighted(self, function: Any, arrays: list[Any], options: dict[str, Any], sample_weight: Any,
                  mask: Any) -> Any:
        ops = keras.ops
        if "reduction" not in options:  # a plugin's loss may have none: its values cannot be weighted
            argument = "sample_weight" if sample_weight is not None else "mask (the Keras mask of y_pred)"
            raise LossValueError(self.spec.name, argument, "a loss with a reduction option (the weights multiply "
                                 "its unreduced values, reduction='none')", "a loss without one")
        reduction = options["reduction"]
        if reduction not in ("none", "sum", "mean"):  # the loss's own check of its reduction, as unweighted:
            function(*arrays, **options)  # Keras's "sum_over_batch_size" or None, "batchmean" but for kl_div
        values = function(*arrays, **{**options, "reduction": "none"})
        s = None if sample_weight is None else self._leading("sample_weight", sample_weight, values)
        m = None if mask is None else self._leading("mask", mask, values)
        w = m if s is None else s if m is None else s * m
        if reduction == "none":
            return values * w
        # Half-precision values are reduced in float32, as the functional forms reduce them (torch's
        # accumulation dtype), and the result cast back: summed in float16, the losses and weights of
        # more than 65504 values (a 300×300 label map) were inf, and their mean NaN.
        dtype = values.dtype
        if keras.backend.standardize_dtype(dtype) in ("float16", "bfloat16"):
            values, w, m = (None if a is None else ops.cast(a, "float32") for a in (values, w, m))
        return ops.cast(self._reduced(arrays, options, values, w, m), dtype)

    def _reduced(self, arrays: list[Any], options: dict[str, Any], values: Any, w: Any, m: Any) -> Any:
        """The unreduced ``values`` weighted by ``w`` (sample weights times the mask ``m``), reduced."""
        ops = keras.ops
        reduction = options["reduction"]
        weighted = values * w
        if reduction == "sum":
            return ops.sum(weighted)
        if reduction == "batchmean":
            return ops.sum(weighted) / values.shape[0]
        kind, rule = _mean_rule(self.spec)
        d = rule(arrays, options, values) if rule else None
        total = ops.sum(weighted / d) if kind == "divide" else ops.sum(weighted)
        if kind == "count" and d is not None:
            # 0 where the weights sum to 0 (a batch of zero sample weights, every step masked), as
            # Keras's own weighted means: torch's 0 / 0 would turn the model's weights to NaN in fit.
            return ops.divide_no_nan(total, ops.sum(d * w))
        if m is None:
            return total / _size(values)
        # Over the unmasked values only, and 0 when all are masked: Keras's masked mean.
        return ops.divide_no_nan(total, ops.sum(m * ops.ones_like(values)))

    def _leading(self, what: str, w: Any, values: Any) -> Any:
        """``w`` (sample weights or a mask) as weights of ``values``' leading axes, broadcast over the rest.

        Each axis of ``w`` is that of ``values`` or 1, as Keras broadcasts; Keras's (N, 1) weights
        of N values lose their last axis.
        """
        w = keras.ops.cast(self._tensor(what, w), values.dtype)
        if w.ndim == values.ndim + 1 and w.shape[-1] == 1:
            w = keras.ops.squeeze(w, axis=-1)
        views = self.spec.views
        if views > 1 and w.ndim and values.ndim and w.shape[0] * views == values.shape[0]:
            w = keras.ops.concatenate([w] * views, axis=0)  # a sample's weight on each of its views' values
        if w.ndim > values.ndim or any(a not in (b, 1) for a, b in zip(w.shape, values.shape)):
            name = "mask (the Keras mask of y_pred)" if what == "mask" else what
            per = "" if views == 1 or not values.ndim else \
                f", or ({values.shape[0] // views},): one per sample, for each of its {views} views"
            raise LossValueError(self.spec.name, name, f"a shape matching the leading axes of the unreduced loss "
                                 f"{tuple(values.shape)}, each axis of that length or 1{per}",
                                 f"shape {tuple(w.shape)}")
        return keras.ops.reshape(w, (*w.shape, *(1,) * (values.ndim - w.ndim)))

    def get_config(self) -> dict[str, Any]:
        """Keras's name and dtype, and lossreg's options (array options as lists, as the class form's)."""
        return {"name": self.name, "dtype": self.dtype, **self.lossreg.get_config()["options"]}

    def lossreg_config(self) -> dict[str, Any]:
        """The class form's config: ``lossreg.from_config`` (or ``lossreg.torch.from_config``) rebuilds it."""
        return self.lossreg.get_config()

    def __repr__(self) -> str:
        return f"lossreg.keras.{self.lossreg!r}"


# Arguments found to take floats only (by the lossreg error an integer one raised), per loss:
# Keras's integer labels for them are cast to y_pred's dtype.
_FLOAT_LABELS: dict[str, set[str]] = {}


def _integer(x: Any) -> bool:
    dtype = keras.backend.standardize_dtype(x.dtype)
    return "int" in dtype or dtype == "bool"


def _plain(value: Any) -> Any:
    import numpy as np

    from .backends import to_numpy

    return value if isinstance(value, (list, tuple)) else np.asarray(to_numpy(value))


def _keras_mask(x: Any) -> Any:
    """The Keras mask of ``x`` (set by ``Embedding(mask_zero=True)``, ``Masking``, ...), or None.

    Keras's own losses read it so; it is an attribute, or for arrays that take none (JAX's) an
    entry in a table by id, which only Keras's (internal) getter reads.
    """
    try:
        from keras.src.backend import get_keras_mask
    except ImportError:  # pragma: no cover - a Keras that moved it
        return getattr(x, "_keras_mask", None)
    return get_keras_mask(x)


def _size(values: Any) -> Any:
    n = 1
    for d in values.shape:
        n *= d
    return n


# A mean rule, (arrays, options, values) -> d or None (the plain count), is given the unreduced
# values where the loss was weighted, and None where it was computed reduced (the unweighted
# call): d's dtype is then the scores'. Its kind says what the mean does with d: "count" divides
# the sum by that of d (times the sample weights), "divide" averages the values each divided by d.
def _dtype(arrays: list[Any], values: Any) -> Any:
    return arrays[0].dtype if values is None else values.dtype


def _per_target(target: Any, options: dict[str, Any], dtype: Any, classes: int) -> Any:
    """weight[y] per target (1 without class weights), 0 where y is ignored: what a class-index
    mean divides by, taken from the targets alone (O(N), not an N×C pass). A target out of
    [0, classes) counts 1, where its own loss is already NaN or an error; and no take reads out
    of range, which torch's take would raise at (a device assert on CUDA)."""
    ops = keras.ops
    ignore = options["ignore_index"]
    if ignore is not None:
        if not isinstance(ignore, numbers.Integral) or isinstance(ignore, bool):
            return None  # not an index (ignore_index='1'): the loss itself refuses it, with its error
        ignore = int(ignore)  # a NumPy integer too, as the loss takes it
    target = _holding(target, ignore)
    kept = ops.ones_like(target, dtype="bool") if ignore is None else ops.not_equal(target, ignore)
    if options.get("weight") is None:
        return ops.cast(kept, dtype)
    inside = ops.logical_and(ops.greater_equal(target, 0), ops.less(target, classes))
    weight = ops.take(ops.cast(options["weight"], dtype), ops.where(inside, target, 0))
    return ops.where(kept, ops.where(inside, weight, 1), 0)


def _holding(target: Any, value: int | None) -> Any:
    """Integer ``target`` in a dtype that holds ``value`` (as :func:`lossreg.toolkit.holding` for the
    loss itself): a comparison converts the int to the labels' dtype, so a uint8 label map against
    the default ignore_index -100 compared with 156 on JAX and torch, and class 156 counted as ignored."""
    dtype = keras.backend.standardize_dtype(target.dtype)
    fits = value is None or -2**31 <= value < 2**31
    if dtype == "int64" or (dtype == "int32" and fits):
        return target
    return keras.ops.cast(target, "int32" if fits else "int64")


def _class_weights(arrays: list[Any], options: dict[str, Any], values: Any) -> Any:
    """cross-entropy's and NLL's mean (and that of plugins' class-index losses): per target
    weight[y], 0 where y is ignored; the plain mean for probability targets. Classes on axis 1
    (axis 0 unbatched); the document's (N, 1) labels read as (N,)."""
    x, target = arrays[0], arrays[1]
    batched = x.ndim > 1
    classes = x.shape[1] if batched else x.shape[0] if x.ndim else None
    if (classes is None or "int" not in keras.backend.standardize_dtype(target.dtype)
            or _size(target) != _size(x) // max(classes, 1) or not _class_weight_fits(options, classes)):
        return None  # probabilities, or arguments the loss itself refuses, with its error
    target = keras.ops.reshape(target, (-1, *x.shape[2:]) if batched else ())
    return _per_target(target, options, _dtype(arrays, values), classes)


def _class_weight_fits(options: dict[str, Any], classes: int) -> bool:
    """No class weights, or a vector of one per class, that the rule can index."""
    import numpy as np

    weight = options.get("weight")
    # A plugin's weight not declared an array option reaches here as given (a list has no .shape).
    return weight is None or tuple(getattr(weight, "shape", None) or np.shape(weight)) == (classes,)


def _target_lengths(arrays: list[Any], options: dict[str, Any], values: Any) -> Any:
    """ctc_loss's mean divides each sequence's loss by its target length (at least 1), then averages."""
    lengths = keras.ops.cast(keras.ops.convert_to_tensor(arrays[3]), _dtype(arrays, values))
    return keras.ops.maximum(lengths, 1)


def _token_weights(arrays: list[Any], options: dict[str, Any], values: Any) -> Any:
    """linear_cross_entropy's mean, as cross-entropy's, over the vocabulary of the lm head
    (V, H): the tokens' class weights, never the logits this loss does not make."""
    target, head = arrays[2], arrays[1]
    if ("int" not in keras.backend.standardize_dtype(target.dtype) or head.ndim < 2
            or not _class_weight_fits(options, head.shape[0])):
        return None
    options = {**options, "ignore_index": -100 if options["ignore_index"] is None else options["ignore_index"]}
    # Of the targets' shape, the unreduced loss's, which sample weights broadcast against.
    return _per_target(target, options, _dtype(arrays, values), head.shape[0])


def _element_weights(arrays: list[Any], options: dict[str, Any], values: Any) -> Any:
    """mse_loss's and l1_loss's mean with their per-element ``weight``: divided by the weights."""
    weight = options.get("weight")
    if weight is None or tuple(getattr(weight, "shape", ())) != tuple(arrays[0].shape):
        return None  # a weight the loss itself refuses, with its error
    return keras.ops.cast(keras.ops.convert_to_tensor(weight), _dtype(arrays, values))


_MEAN_RULES = {"ctc_loss": ("divide", _target_lengths), "linear_cross_entropy": ("count", _token_weights),
               "mse_loss": ("count", _element_weights), "l1_loss": ("count", _element_weights)}


def _mean_rule(spec: LossSpec) -> tuple[str, Any]:
    """What the "mean" of ``spec`` divides by, weighted as its values are: (kind, rule), with
    rule None for the count of values.

    A loss of (N, C, ...) scores and class-index targets with ``ignore_index`` (cross_entropy,
    nll_loss, and plugins' losses reduced by :func:`lossreg.toolkit.reduce_classes`) divides by
    the class weights of its non-ignored targets.
    """
    if spec.name in _MEAN_RULES:
        return _MEAN_RULES[spec.name]
    return "count", _class_weights if "ignore_index" in spec.options and len(spec.inputs) == 2 else None


_classes: dict[str, type[KerasLoss]] = {}
_lock = ForkSafeLock()


def loss_class(name: str) -> type[KerasLoss]:
    """The Keras class of the loss registered under ``name`` (any of its names), registered for saving."""
    spec = registry().lookup(name)
    with _lock:
        cls = _classes.get(spec.name)
        if cls is None or cls.spec != spec:
            cls = type(spec.class_name, (KerasLoss,), {
                "spec": spec,
                "__module__": __name__,
                "__qualname__": spec.class_name,
                "__doc__": (spec.function.__doc__ or "").strip(),
                "__init__": _init_signed(spec),
            })
            cls = keras.saving.register_keras_serializable(package="lossreg", name=spec.class_name)(cls)
            _minimised(cls)
            _classes[spec.name] = cls
    return cls


def _init_signed(spec: LossSpec) -> Any:
    """``KerasLoss.__init__`` (the same code) under the loss's options, keyword-only with their
    defaults, then Keras's ``name`` and ``dtype``: ``inspect.signature(CrossEntropyLoss)`` was
    ``(*args, name=None, dtype=None, **options)``, so what builds a loss from its signature (a config
    system's checks, ``help()``, an IDE) found no option, as the class form and torch module show them."""
    kind = inspect.Parameter
    return signed_copy(KerasLoss.__init__, "__init__", f"{spec.class_name}.__init__",
                       [kind("self", kind.POSITIONAL_OR_KEYWORD)]
                       + [kind(k, kind.KEYWORD_ONLY, default=v) for k, v in spec.options.items()]
                       + [kind(k, kind.KEYWORD_ONLY, default=None) for k in ("name", "dtype") if k not in spec.options])


def _minimised(cls: type[KerasLoss]) -> None:
    """Mark ``cls`` as a loss to minimise, as Keras's built-in losses are. A loss given as a metric
    (``metrics=[lossreg.keras.CrossEntropyLoss()]``, or in ``keras.metrics.MeanMetricWrapper``) is
    marked "down" only if its class is in Keras's table of built-in losses; unmarked,
    ``EarlyStopping`` and ``ModelCheckpoint`` in their default mode="auto" raised "Keras isn't able
    to automatically determine whether that metric should be maximized or minimized"."""
    try:
        from keras.src.losses import ALL_OBJECTS
    except ImportError:  # pragma: no cover - a Keras that moved it: the user passes mode="min"
        return
    if isinstance(ALL_OBJECTS, set):  # read only by that check (Keras's names table is built apart)
        ALL_OBJECTS.add(cls)


def get(name: str, /, **options: Any) -> KerasLoss:
    """The Keras loss of ``name``, configured: ``lossreg.keras.get("mse", reduction="sum")``."""
    return loss_class(name)(**options)


def from_config(config: dict[str, Any]) -> KerasLoss:
    """A Keras loss from the class form's ``get_config()`` (``{"name": ..., "options": ...}``)."""
    loss = lossreg_from_config(config)  # checks the config as the class form does
    return get(loss.spec.name, **config.get("options", {}))


def __getattr__(name: str) -> type[KerasLoss]:
    """``lossreg.keras.MSELoss``: the Keras class of each registered loss, by its class name."""
    return loss_class(by_class_name("lossreg.keras", name).name)


def __dir__() -> list[str]:
    return sorted({*globals(), *(s.class_name for s in registry().specs.values())})


for _spec in list(registry().specs.values()):  # registered for keras.saving before any model is loaded
    loss_class(_spec.name)
