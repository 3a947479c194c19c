"""The claims lossreg makes to its users, checked as worded: the docs site's equivalence tables
(``lossreg/docsite/equivalents.py``) and the README.

What this file pins:

- ``keras.losses.CTC`` (Keras 3) takes logits, blank = class 0 and labels padded with 0, and averages
  over the batch: the docs' mapping used to say probabilities with the blank last (tf.keras'
  ``ctc_batch_cost``), which gives another number; the equality the mapping now states is evaluated
  as written.
- ``multi_margin_loss`` is not "close" to Keras' ``CategoricalHinge`` or optax's ``multiclass_hinge_loss``,
  as the mappings said: those take the largest violation, torch the sum of the violations divided by C
  (C times apart with one violation), and Keras floors the largest other score at 0 (its one-hot product
  leaves a 0 at the true class), so with every other score negative it is not optax's either. The
  mappings now state the formulas and the one relation that holds.
- README "Precision": a float16 ``mse_loss`` mean is finite where torch's squares overflow only when the
  mean itself fits float16: the README said "with one difference of 300 is 900", which holds for 100
  values (the case its test uses), not for that one difference alone (90,000: inf in both).
- The docstrings of ``mse_loss`` and ``l1_loss`` define ``ℓ_i = w_i (x_i - y_i)²`` (what "none" returns)
  and said "mean" is ``Σ w_i ℓ_i / Σ w_i``: by that formula the weights count twice (0.48 where the mean
  is 0.25). It is ``Σ ℓ_i / Σ w_i``. And the loss pages of these and of ``cross_entropy``/``nll_loss``
  read the docs' generic "mean: their mean" for ``reduction``, where the mean is weighted: each now
  documents its own.
- README "Gradients", at ±inf targets: ``SoftMarginLoss``'s loss is 0 where x·y = +inf (the README said
  "inf or NaN"), and its input gradient there is NaN as torch's, not the limit it has where the loss
  is inf.
- ``keras.losses.KLDivergence()(p, q) == kl_div(log q, p, reduction="batchmean")`` holds for (N, C)
  arrays only: Keras averages over every axis but the last, so a (C,) pair is C times apart and (N, T, C)
  sequences 1/T times. The mapping now says for which shapes, and the general equality; both are
  evaluated as written on 1-, 2- and 3-D inputs.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lossreg
from lossreg.docsite import equivalents, pages

ENV = {**os.environ, "LOSSREG_DISABLE_PLUGIN_AUTOLOAD": "1", "KERAS_BACKEND": "jax"}

KERAS_CTC = """
import json, sys
import jax, keras, numpy as np
import lossreg
rng = np.random.default_rng(0)
N, T, C, S = 4, 11, 6, 5
z = rng.normal(size=(N, T, C))                       # logits, batch-major
y = rng.integers(1, C, size=(N, S))                  # labels 1..C-1, padded with 0 (Keras' blank)
y[1, 3:] = 0
y[2, 1:] = 0
y[3, 2] = y[3, 1]                                    # a repeated label
log_softmax = lambda a: np.asarray(jax.nn.log_softmax(a, axis=-1))
claim = sys.argv[1]
left, right = claim.split(" == ")
names = {"CTC": keras.losses.CTC, "ctc_loss": lossreg.ctc_loss, "log_softmax": log_softmax,
         "y": y, "z": z, "N": N, "T": T}
per_sequence = np.asarray(keras.losses.CTC(reduction=None)(y, z), float)
print(json.dumps({"left": float(eval(left, names)), "right": float(eval(right, names)),
                  "keras_none": per_sequence.tolist(),
                  "lossreg_none": np.asarray(lossreg.ctc_loss(log_softmax(z).transpose(1, 0, 2), y, [T] * N,
                                                              (y != 0).sum(1), reduction="none")).tolist()}))
"""


def test_keras_ctc_mapping_states_logits_blank_0_and_its_equality_holds_as_written() -> None:
    if importlib.util.find_spec("keras") is None or importlib.util.find_spec("jax") is None:
        pytest.skip("keras and jax are not installed")
    mapping = equivalents.KERAS["ctc_loss"].mapping
    assert "probabilities" not in mapping and "last class" not in mapping  # tf.keras' ctc_batch_cost, not Keras 3
    stated = [span for span in re.findall(r"`([^`]*)`", mapping) if " == " in span]
    assert len(stated) == 1, mapping  # the mapping gives the equality to check
    done = subprocess.run([sys.executable, "-c", KERAS_CTC, stated[0]], capture_output=True, text=True, env=ENV,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["left"] == pytest.approx(got["right"], rel=1e-5)  # Keras computes in float32
    assert got["keras_none"] == pytest.approx(got["lossreg_none"], rel=1e-5)


# Scores of C = 4 classes, target 0: no violation, one, several; all other scores negative (row 3).
HINGE_SCORES = np.array([[3.0, 0.5, 1.0, 0.2], [1.0, 1.5, 0.0, -0.5], [0.0, 0.9, 0.4, 2.0], [-1.0, -3.0, -2.0, -2.5]])
HINGE_TARGETS = np.array([0, 0, 0, 0])
C = HINGE_SCORES.shape[1]
LARGEST_OTHER = np.max(HINGE_SCORES[:, 1:], axis=1)
ONE_VIOLATION = (1 - HINGE_SCORES[:, :1] + HINGE_SCORES[:, 1:] > 0).sum(1) <= 1
WESTON_WATKINS = np.maximum(0, 1 - HINGE_SCORES[:, :1] + HINGE_SCORES[:, 1:]).sum(1) / C


def test_multi_margin_is_the_mean_of_the_violations_where_optax_takes_the_largest_as_the_mapping_says() -> None:
    jax = pytest.importorskip("jax")
    optax = pytest.importorskip("optax")
    mapping = equivalents.OPTAX["multi_margin_loss"].mapping
    assert "close" not in mapping and "/ C" in mapping and "C times lossreg's" in mapping
    mine = np.asarray(lossreg.multi_margin_loss(HINGE_SCORES, HINGE_TARGETS, reduction="none"))
    np.testing.assert_allclose(mine, WESTON_WATKINS, rtol=1e-15)
    with jax.enable_x64(True):
        theirs = np.asarray(optax.losses.multiclass_hinge_loss(HINGE_SCORES, HINGE_TARGETS))
    np.testing.assert_allclose(theirs, np.maximum(0, 1 + LARGEST_OTHER - HINGE_SCORES[:, 0]), rtol=1e-15)
    np.testing.assert_allclose(theirs[ONE_VIOLATION], C * mine[ONE_VIOLATION], rtol=1e-15)  # rows 0, 1, 3
    assert theirs[2] < C * mine[2]  # two violations: the largest alone is less than their sum


KERAS_HINGE = """
import json, sys
import keras, numpy as np
scores, targets = np.array(json.loads(sys.argv[1])), np.array(json.loads(sys.argv[2]))
one_hot = np.eye(scores.shape[1])[targets]
print(json.dumps(np.asarray(keras.losses.CategoricalHinge(reduction=None)(one_hot, scores), float).tolist()))
"""


def test_keras_categorical_hinge_floors_the_largest_other_score_at_0_as_the_mapping_says() -> None:
    if importlib.util.find_spec("keras") is None or importlib.util.find_spec("jax") is None:
        pytest.skip("keras and jax are not installed")
    mapping = equivalents.KERAS["multi_margin_loss"].mapping
    assert "close" not in mapping and "max(0, max_{i≠y} x_i)" in mapping and "C times lossreg's" in mapping
    done = subprocess.run([sys.executable, "-c", KERAS_HINGE, json.dumps(HINGE_SCORES.tolist()),
                           json.dumps(HINGE_TARGETS.tolist())], capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    theirs = np.array(json.loads(done.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(theirs, np.maximum(0, 1 + np.maximum(0, LARGEST_OTHER) - HINGE_SCORES[:, 0]), rtol=1e-6)
    assert theirs[3] == 2.0  # every other score negative: 1 + 0 - (-1), where optax's largest violation is 0
    mine = np.asarray(lossreg.multi_margin_loss(HINGE_SCORES, HINGE_TARGETS, reduction="none"))
    some_other_non_negative = LARGEST_OTHER >= 0
    rows = ONE_VIOLATION & some_other_non_negative  # rows 0 and 1
    np.testing.assert_allclose(theirs[rows], C * mine[rows], rtol=1e-6)


def test_readme_float16_mse_example_states_the_100_values_it_holds_for() -> None:
    torch = pytest.importorskip("torch")
    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    assert '`mse_loss` "mean" of 100 values, one a difference of 300, is 900 here, inf in torch' in readme
    hundred = torch.zeros(100, dtype=torch.float16)
    hundred[0] = 300
    assert lossreg.mse_loss(hundred, torch.zeros_like(hundred)).item() == 900
    assert torch.isinf(torch.nn.functional.mse_loss(hundred, torch.zeros_like(hundred)))
    alone = torch.tensor([300.0], dtype=torch.float16)  # 90,000 > 65504: no dtype trick makes that mean finite
    assert torch.isinf(lossreg.mse_loss(alone, torch.zeros_like(alone)))
    assert torch.isinf(torch.nn.functional.mse_loss(alone, torch.zeros_like(alone)))


def reduction_meaning(name: str) -> str:
    """What the loss's docs page says ``reduction`` does (its docstring's line, else the generic one)."""
    spec = lossreg.spec(name)
    return pages.option_meaning(spec, "reduction", pages.parse_docstring(inspect.getdoc(spec.function) or ""))


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
def test_weighted_pointwise_mean_is_the_sum_of_the_weighted_terms_over_the_weights_as_documented(name) -> None:
    doc = lossreg.spec(name).function.__doc__ or ""
    assert "Σ w_i ℓ_i" not in doc  # ℓ_i already holds w_i: that would weigh twice
    assert "Σ_i ℓ_i / Σ_i w_i" in doc and "Σ_i ℓ_i / Σ_i w_i" in reduction_meaning(name)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(2, 3, 4))
    w = rng.uniform(0.1, 3.0, size=(3, 4))
    terms = np.asarray(getattr(lossreg, name)(x, y, weight=w, reduction="none"))
    np.testing.assert_allclose(terms, w * ((x - y) ** 2 if name == "mse_loss" else np.abs(x - y)), rtol=1e-15)
    mean = float(getattr(lossreg, name)(x, y, weight=w))
    assert mean == pytest.approx(terms.sum() / w.sum(), rel=1e-14)
    assert mean != pytest.approx((w * terms).sum() / w.sum(), rel=1e-3)


@pytest.mark.parametrize(("name", "label_smoothing"), [("cross_entropy", 0.0), ("cross_entropy", 0.2), ("nll_loss", 0.0)])
def test_class_weighted_mean_over_kept_targets_is_what_the_page_says(name, label_smoothing) -> None:
    assert "Σ_n ℓ_n / Σ_n w[y_n]" in reduction_meaning(name)
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(6, 4, 3))
    targets = np.array([[0, 1, 3], [2, -100, 1], [3, 3, 0], [-100, -100, 2], [1, 0, 0], [2, 2, 3]])
    w = np.array([0.5, 2.0, 1.0, 3.0])
    options = {"label_smoothing": label_smoothing} if label_smoothing else {}
    loss = getattr(lossreg, name)
    terms = np.asarray(loss(scores, targets, weight=w, reduction="none", **options))
    kept = targets != -100
    assert np.all(terms[~kept] == 0)
    expected = terms.sum() / w[targets[kept]].sum()
    assert float(loss(scores, targets, weight=w, **options)) == pytest.approx(expected, rel=1e-14)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_soft_margin_at_infinite_targets_is_0_with_torchs_nan_gradient_where_x_y_is_plus_inf() -> None:
    torch = pytest.importorskip("torch")
    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    assert "or 0 for `SoftMarginLoss` where x·y = +inf" in readme
    assert "NaN, as torch's, where its loss is 0" in readme
    inf = float("inf")
    x = torch.tensor([2.0, -2.0, 2.0, -2.0], dtype=torch.float64)
    y = torch.tensor([inf, inf, -inf, -inf], dtype=torch.float64)  # x·y: +inf, -inf, -inf, +inf
    mine, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    losses = lossreg.soft_margin_loss(mine, y, reduction="none")
    torch_losses = torch.nn.functional.soft_margin_loss(theirs, y, reduction="none")
    assert losses.tolist() == torch_losses.tolist() == [0.0, inf, inf, 0.0]
    (grad,) = torch.autograd.grad(losses.sum(), mine)
    (torch_grad,) = torch.autograd.grad(torch_losses.sum(), theirs)
    assert torch.isnan(torch_grad).all()
    assert grad[1].item() == -inf and grad[2].item() == inf  # the limit, -y·σ(-x·y) → -y, where the loss is inf
    assert torch.isnan(grad[[0, 3]]).all()  # 0 · inf where the loss is 0: NaN, as torch's


KERAS_KL = """
import json, sys
import keras, numpy as np
import lossreg
rng = np.random.default_rng(0)
out = {}
for shape in [(5,), (4, 5), (4, 3, 5)]:
    p = rng.dirichlet(np.ones(5), size=shape[:-1]) if len(shape) > 1 else rng.dirichlet(np.ones(5))
    q = rng.dirichlet(np.ones(5), size=shape[:-1]) if len(shape) > 1 else rng.dirichlet(np.ones(5))
    names = {"KLDivergence": keras.losses.KLDivergence, "kl_div": lossreg.kl_div, "p": p, "q": q, "log": np.log}
    out[str(len(shape))] = [[float(eval(side.replace("log q", "log(q)"), names)) for side in claim.split(" == ")]
                            for claim in json.loads(sys.argv[1])]
print(json.dumps(out))
"""


def test_keras_kl_divergence_equalities_hold_for_the_shapes_the_mapping_names() -> None:
    if importlib.util.find_spec("keras") is None or importlib.util.find_spec("jax") is None:
        pytest.skip("keras and jax are not installed")
    mapping = equivalents.KERAS["kl_div"].mapping
    batchmean, general = [span for span in re.findall(r"`([^`]*)`", mapping) if " == " in span]
    assert "batchmean" in batchmean and "for (N, C) arrays" in mapping
    done = subprocess.run([sys.executable, "-c", KERAS_KL, json.dumps([batchmean, general])], capture_output=True,
                          text=True, env=ENV, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    for ndim, ((keras_2d, lossreg_batchmean), (keras_any, lossreg_general)) in got.items():
        assert keras_any == pytest.approx(lossreg_general, rel=1e-5), ndim  # Keras in float32
        if ndim == "2":
            assert keras_2d == pytest.approx(lossreg_batchmean, rel=1e-5)
        else:  # (C,): C times apart; (N, T, C): 1/T
            assert keras_2d != pytest.approx(lossreg_batchmean, rel=1e-2), ndim
