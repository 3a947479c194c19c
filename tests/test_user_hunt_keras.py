"""lossreg.keras as a Keras 3 user trains with it, on the JAX and torch backends, each in its own interpreter.

Keras reads KERAS_BACKEND once, when it is first imported, so each backend runs
``fixtures/keras_hunt.py`` in a subprocess: compile by object and class, ``lossreg.keras.get`` with
Keras's ``name=``, evaluate over a partial last batch (as Keras's own SparseCategoricalCrossentropy),
multi-output dicts and lists with loss_weights and lossreg metrics, jit_compile and
steps_per_execution, mixed_float16/mixed_bfloat16, int32/int64/uint8 and (N, 1) labels, uint8 label
maps with ignore_index=255 into LinearCrossEntropyLoss, uint8 labels of class 156 kept by the
default ignore_index -100, Keras-style reductions refused with sample
weights too, a fully masked batch and a batch of zero sample weights giving 0 (not NaN) in fit, config round trips of every loss, MSE
and L1 with per-element weights and sample weights, integer labels of BCE, regression and Poisson
losses cast as Keras casts them, a batch of ignored targets 0 without weights too, one-hot rows
stored as integers or booleans, targets and sample weights the backend cannot convert (None from
fit(x) without y, strings) and complex ones a lossreg error naming them, a saved model loaded in a fresh interpreter,
and (JAX) keras.distribution.DataParallel on 4 CPU devices.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from fixtures.keras_run import checks_passed

if importlib.util.find_spec("keras") is None:  # not imported here: that would fix this process's Keras backend
    pytest.skip("the keras extra is not installed: pip install 'lossreg[keras]'", allow_module_level=True)

CHECKS = ["check_compile_by_object_and_by_class", "check_get_takes_keras_name_and_dtype",
          "check_partial_last_batch_is_weighted_as_keras_does", "check_multi_output_losses_loss_weights_and_metrics",
          "check_jit_compile_and_steps_per_execution", "check_mixed_precision_policies",
          "check_integer_label_dtypes_and_trailing_axis_of_one",
          "check_linear_cross_entropy_takes_uint8_labels_with_ignore_index",
          "check_reduction_is_checked_with_sample_weight_and_mask", "check_fully_masked_batch_is_zero_not_nan",
          "check_dict_arguments_name_what_is_missing", "check_config_round_trips_for_every_loss",
          "check_element_weights_of_mse_and_l1_with_sample_weights", "check_zero_sample_weight_batch_is_zero_not_nan",
          "check_integer_labels_of_losses_that_take_floats_are_cast_as_keras_casts_them",
          "check_a_batch_of_ignored_targets_is_zero_without_weights_too",
          "check_one_hot_labels_as_integers_or_booleans_are_probabilities",
          "check_class_weighted_means_over_label_maps_and_out_of_range_targets",
          "check_uint8_labels_of_class_156_are_not_the_default_ignore_index",
          "check_a_mean_over_nothing_trains_on_with_finite_weights",
          "check_two_integer_arguments_that_take_floats_are_cast_on_the_first_call",
          "check_integer_one_hot_rows_for_a_class_index_loss_are_reported_as_given",
          "check_linear_cross_entropy_means_of_k_dimensional_heads_and_token_grids",
          "check_float_targets_take_the_predictions_dtype_and_one_class_labels_are_checked",
          "check_what_the_backend_cannot_convert_is_a_lossreg_error_naming_it",
          "check_complex_arrays_are_refused_as_the_functional_form_refuses_them",
          "check_saved_model_loads_in_a_fresh_process"]


@pytest.mark.parametrize("keras_backend", ["jax", "torch"])
def test_keras_user_hunt_on_backend(keras_backend: str, tmp_path: Path) -> None:
    expected = CHECKS + (["check_data_parallel_on_four_devices"] if keras_backend == "jax" else [])
    assert checks_passed("keras_hunt.py", keras_backend, tmp_path) == expected


@pytest.mark.parametrize(("dtype", "ignore_index"), [("uint8", 255), ("int8", 100), ("int16", 255)])
def test_torch_linear_cross_entropy_takes_narrow_labels_holding_ignore_index(dtype: str, ignore_index: int) -> None:
    """The cause of the Keras uint8 failure, on torch tensors directly: narrow labels whose dtype holds
    ignore_index (a uint8 map with 255) reach the torch kernel as they are; its chunks gather by them.
    Value and gradients are torch.nn's cross-entropy of h @ Wᵀ, for each reduction."""
    torch = pytest.importorskip("torch")
    import numpy as np
    import torch.nn.functional as F

    import lossreg

    rng = np.random.default_rng(7)
    labels = rng.integers(0, 5, size=9)
    labels[[1, 6]] = ignore_index
    for reduction in ("mean", "sum", "none"):
        h = torch.from_numpy(rng.normal(size=(9, 4))).requires_grad_()
        w = torch.from_numpy(rng.normal(size=(5, 4))).requires_grad_()
        got = lossreg.linear_cross_entropy(h, w, torch.from_numpy(labels.astype(dtype)), ignore_index=ignore_index,
                                           reduction=reduction)
        want = F.cross_entropy(h @ w.T, torch.from_numpy(labels), ignore_index=ignore_index, reduction=reduction)
        torch.testing.assert_close(got, want)
        for a, b in zip(torch.autograd.grad(got.sum(), (h, w)), torch.autograd.grad(want.sum(), (h, w))):
            torch.testing.assert_close(a, b)
