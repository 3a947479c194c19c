"""An optax and MONAI maintainer reviewing lossreg's two plugins against their own libraries'
source, line by line: options the READMEs do not mention, thresholds that depend on the dtype, and
the plugins' conformance case files, whose expected values must be what the peers compute.

What this file pins:

- Every value and gradient in lossreg-extras' case file (extras.json) for ``log_cosh_loss``,
  ``poly1_cross_entropy``, ``sparsemax_loss`` (ties, ignored targets, logits of 1e4 included) and
  ``nt_xent_loss`` is optax's (``log_cosh``, ``poly_loss_cross_entropy``,
  ``multiclass_sparsemax_loss``, ``ntxent`` on the stacked views), computed here by optax in float64.
- Every value and input gradient in lossreg-segmentation's case file (segmentation.json) for
  ``dice_loss``, ``tversky_loss``, ``generalized_dice_loss`` (absent classes, empty targets, soft
  targets) is MONAI's, and for ``binary_focal_loss`` (every alpha and gamma case) optax's.
- MONAI 1.4+ has ``soft_label``: with it, MONAI's overlap of soft targets is Σ min(x, y), not Σ x·y.
  lossreg's ``dice_loss``, ``tversky_loss`` and ``generalized_dice_loss`` are MONAI's default
  ``soft_label=False`` (on soft targets too) and ``soft_label=True`` only on hard masks; the
  segmentation README said "equal" without naming the option; nor did it name ``squared_pred=False``
  (MONAI's True sums x² and y² in Dice's denominator).
- Keras' ``Tversky`` is ``tversky_loss`` with α and β swapped and ``smooth=0`` (its ε in the denominator
  only), as for Keras' ``Dice``; the README row named only the swap.
- ``log_cosh_loss`` keeps the small errors it promised to keep: in float32 a residual below 1e-7 cost 0
  (|d| + log1p(expm1(-2|d|) / 2) cancels to d²/2) and torch autograd's gradient was 40% off there; now
  log1p(expm1(-c)² eᶜ / 2), c = min(|d|, 40): mpmath's log cosh and the derivative tanh, on torch (portable),
  the JAX kernel, the portable JAX and NumPy, float32 and float64.
- optax's ``ntxent`` divides each embedding by ``max(|z|, √ε)`` of its dtype: in float32 embeddings
  shorter than 3.5e-4 (not "about 1e-8", as the extras README said) already give another loss,
  where lossreg, as torch's ``F.normalize``, is scale-invariant down to 1e-12.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import lossreg

torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[1]
EXTRAS_README = ROOT / "plugins" / "lossreg-extras" / "README.md"
SEGMENTATION_README = ROOT / "plugins" / "lossreg-segmentation" / "README.md"


@pytest.fixture(scope="module")
def jax():
    jax = pytest.importorskip("jax")
    pytest.importorskip("optax")
    return jax


@pytest.fixture(scope="module")
def monai():
    return pytest.importorskip("monai.losses")


def cases(package, file: str, losses: tuple[str, ...]) -> list[dict]:
    """The cases of ``losses`` in the plugin's case file that have a value (not an expected error)."""
    path = Path(package.__file__).parent / "cases" / file
    return [c for c in json.loads(path.read_text())["cases"] if c["loss"] in losses and "raises" not in c]


def arrays(case: dict) -> dict[str, np.ndarray]:
    return {k: np.array(v["data"], dtype="float64" if v["dtype"] == "float" else "int64")
            for k, v in case["inputs"].items()}


def reduced(losses, reduction: str, kept=None):
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / (math.prod(losses.shape) if kept is None else kept.sum())


# --- lossreg-extras' case file against optax ----------------------------------------------------

def optax_extras(jax, case: dict):
    """The case's loss as optax computes it, a function of the case's float arrays (jax.grad-able)."""
    import optax

    jnp = jax.numpy
    loss, options = case["loss"], case["options"]
    reduction = options.get("reduction", "mean")
    if loss == "log_cosh_loss":
        return lambda x, y: reduced(optax.losses.log_cosh(x, y), reduction)
    if loss == "nt_xent_loss":
        def ntxent(x, p):
            n = x.shape[0]
            labels = jnp.concatenate([jnp.arange(n)] * 2)
            tau = options.get("temperature", 0.5)
            mean = optax.losses.ntxent(jnp.concatenate([x, p]), labels, temperature=tau)
            return mean if reduction == "mean" else 2 * n * mean
        return ntxent

    target = arrays(case)["target"]
    batched = target.ndim > 0
    t = jnp.asarray(target if batched else target[None])
    kept = t != options.get("ignore_index", -100)
    t = jnp.where(kept, t, 0)

    def classification(x):
        x = jnp.moveaxis(x if batched else x[None], 1, -1)  # optax: classes last
        c = x.shape[-1]
        if loss == "poly1_cross_entropy":
            each = optax.losses.poly_loss_cross_entropy(x, jax.nn.one_hot(t, c), epsilon=options.get("epsilon", 1.0))
        else:
            each = optax.losses.multiclass_sparsemax_loss(x.reshape(-1, c), t.reshape(-1)).reshape(t.shape)
        each = jnp.where(kept, each, 0.0)
        return reduced(each if batched else each[0], reduction, kept)
    return classification


EXTRAS_WITH_OPTAX = ("log_cosh_loss", "poly1_cross_entropy", "sparsemax_loss", "nt_xent_loss")


def test_extras_case_file_values_and_gradients_are_optaxs(extras, jax):
    """Each case's expected value and gradients (mpmath, from the papers) equal optax's on its inputs;
    nt_xent's "none" cases have no optax form (ntxent returns the mean) and are left out."""
    jnp = jax.numpy
    checked = 0
    with jax.enable_x64(True):
        for case in cases(extras, "extras.json", EXTRAS_WITH_OPTAX):
            if case["loss"] == "nt_xent_loss" and case["options"].get("reduction", "mean") == "none":
                continue
            data = arrays(case)
            names = [k for k in data if data[k].dtype == np.float64]
            peer = optax_extras(jax, case)
            inputs = [jnp.asarray(data[k]) for k in names]
            want = np.array(case["expected"], dtype=float)
            np.testing.assert_allclose(np.asarray(peer(*inputs)), want, rtol=1e-10, atol=1e-12, equal_nan=True,
                                       err_msg=f"{case['loss']} {case['id']}")
            if "grads" in case and np.isfinite(want).all():
                grads = jax.grad(lambda *a: jnp.sum(peer(*a)), argnums=tuple(range(len(names))))(*inputs)
                for name, grad in zip(names, grads):
                    if name in case["grads"]:
                        np.testing.assert_allclose(np.asarray(grad), case["grads"][name], rtol=1e-9, atol=1e-12,
                                                   err_msg=f"{case['loss']} {case['id']} d/d{name}")
            checked += 1
    assert checked >= 40


# --- lossreg-segmentation's case file against MONAI and optax ----------------------------------

def test_segmentation_case_file_values_and_gradients_are_monais_and_optaxs(segmentation, monai, jax):
    """Dice and Tversky: MONAI on one channel per sample (its smooth_nr = smooth_dr = ``smooth``);
    generalized Dice: MONAI (class weights in float32 there: 1e-6); binary focal: optax."""
    import optax

    checked = 0
    for case in cases(segmentation, "segmentation.json", ("dice_loss", "tversky_loss", "generalized_dice_loss",
                                                           "binary_focal_loss")):
        loss, options, data = case["loss"], case["options"], arrays(case)
        reduction = options.get("reduction", "mean")
        want = np.array(case["expected"], dtype=float)
        x = torch.tensor(data["input"], requires_grad=True)
        y = torch.tensor(data["target"])
        n = x.shape[0]
        rtol = 1e-9
        if loss == "binary_focal_loss":
            with jax.enable_x64(True):
                t = jax.numpy.asarray(data["target"])

                def focal(z):
                    return reduced(optax.losses.sigmoid_focal_loss(z, t, alpha=options.get("alpha", 0.25),
                                                                   gamma=options.get("gamma", 2.0)), reduction)
                z = jax.numpy.asarray(data["input"])
                got, grad = np.asarray(focal(z)), np.asarray(jax.grad(lambda a: focal(a).sum())(z))
        else:
            if loss == "generalized_dice_loss":
                s = options.get("smooth", 1e-5)
                each = monai.GeneralizedDiceLoss(smooth_nr=s, smooth_dr=s, reduction="none")(x, y).reshape(n)
                rtol = 1e-6
            else:
                s = options.get("smooth", 1.0)
                peer = (monai.DiceLoss(smooth_nr=s, smooth_dr=s, reduction="none") if loss == "dice_loss" else
                        monai.TverskyLoss(alpha=options.get("alpha", 0.5), beta=options.get("beta", 0.5),
                                          smooth_nr=s, smooth_dr=s, reduction="none"))
                each = peer(x.reshape(n, 1, -1), y.reshape(n, 1, -1)).reshape(n)
            value = reduced(each, reduction)
            grad = torch.autograd.grad(value.sum(), x)[0].numpy() if np.isfinite(want).all() else None
            got = value.detach().numpy()
        np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-12, equal_nan=True, err_msg=f"{loss} {case['id']}")
        if grad is not None and "input" in case.get("grads", {}):
            np.testing.assert_allclose(grad, case["grads"]["input"], rtol=10 * rtol if rtol > 1e-9 else 1e-8,
                                       atol=1e-9 if rtol > 1e-9 else 1e-12, err_msg=f"{loss} {case['id']} d/dinput")
        checked += 1
    assert checked >= 40


# --- MONAI's soft_label -------------------------------------------------------------------------

@pytest.mark.parametrize("loss", ["dice_loss", "tversky_loss", "generalized_dice_loss"])
def test_overlap_losses_are_monai_soft_label_false_and_soft_label_true_only_on_hard_masks(segmentation, monai, loss):
    """MONAI's ``soft_label=True`` computes TP as (|x|₁ + |y|₁ - |x - y|₁) / 2 = Σ min(x, y): the same as
    Σ x·y on hard masks, not on soft targets. lossreg is the default ``soft_label=False``; the README
    says so where it maps these losses to MONAI."""
    if "soft_label" not in monai.DiceLoss.__init__.__code__.co_varnames:
        pytest.skip("this MONAI has no soft_label (added in MONAI 1.4)")
    g = torch.Generator().manual_seed(31)
    x = torch.rand(3, 1, 5, 4, dtype=torch.float64, generator=g)
    soft = torch.rand(3, 1, 5, 4, dtype=torch.float64, generator=g)
    hard = (soft > 0.5).to(torch.float64)

    def both(y: torch.Tensor, soft_label: bool):
        if loss == "generalized_dice_loss":  # two classes: the mask and its complement
            p, t = torch.cat([x, 1 - x], 1), torch.cat([y, 1 - y], 1)
            return (segmentation.generalized_dice_loss(p, t, reduction="none"),
                    monai.GeneralizedDiceLoss(reduction="none", soft_label=soft_label)(p, t).reshape(-1))
        if loss == "dice_loss":
            peer = monai.DiceLoss(smooth_nr=1.0, smooth_dr=1.0, reduction="none", soft_label=soft_label)
            return segmentation.dice_loss(x, y, reduction="none"), peer(x, y).reshape(-1)
        peer = monai.TverskyLoss(alpha=0.3, beta=0.7, smooth_nr=1.0, smooth_dr=1.0, reduction="none",
                                 soft_label=soft_label)
        return segmentation.tversky_loss(x, y, alpha=0.3, beta=0.7, reduction="none"), peer(x, y).reshape(-1)

    rtol = 1e-6 if loss == "generalized_dice_loss" else 1e-12  # MONAI's class weights are float32
    for y, soft_label in ((soft, False), (hard, False), (hard, True)):
        ours, theirs = both(y, soft_label)
        torch.testing.assert_close(ours, theirs, rtol=rtol, atol=1e-12)
    ours, theirs = both(soft, True)
    assert ((ours - theirs).abs() > 0.05).all()
    start = ("| `generalized_dice_loss` | MONAI" if loss == "generalized_dice_loss"
             else "| `dice_loss`, `tversky_loss` | MONAI")
    (row,) = [line for line in SEGMENTATION_README.read_text().splitlines() if line.startswith(start)]
    assert "soft_label" in row and "min(x, y)" in row


def test_dice_is_monai_squared_pred_false_and_the_readme_names_the_option(segmentation, monai):
    """MONAI's ``squared_pred=True`` sums x² and y² in the denominator, lossreg's Dice x and y: equal on
    hard masks and hard predictions only."""
    g = torch.Generator().manual_seed(41)
    x = torch.rand(3, 1, 6, dtype=torch.float64, generator=g)
    y = (torch.rand(3, 1, 6, dtype=torch.float64, generator=g) > 0.5).to(torch.float64)
    ours = segmentation.dice_loss(x, y, reduction="none")

    def monai_dice(p: torch.Tensor, squared: bool) -> torch.Tensor:
        return monai.DiceLoss(smooth_nr=1.0, smooth_dr=1.0, reduction="none", squared_pred=squared)(p, y).reshape(-1)

    torch.testing.assert_close(ours, monai_dice(x, False), rtol=1e-12, atol=0)
    assert ((ours - monai_dice(x, True)).abs() > 0.01).all()
    hard = (x > 0.5).to(torch.float64)
    torch.testing.assert_close(segmentation.dice_loss(hard, y, reduction="none"), monai_dice(hard, True),
                               rtol=1e-12, atol=0)
    (row,) = [line for line in SEGMENTATION_README.read_text().splitlines()
              if line.startswith("| `dice_loss`, `tversky_loss` | MONAI")]
    assert "squared_pred=False" in row


# --- optax's ntxent at short embeddings ---------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_optax_ntxent_departs_below_the_square_root_of_its_dtypes_epsilon_as_the_readme_says(extras, jax, dtype):
    """optax's cosine similarity clips each squared norm at the dtype's ε: an embedding shorter than
    √ε (3.5e-4 in float32, 1.5e-8 in float64) is divided by √ε, not by its norm. lossreg, as torch's
    F.normalize, divides by max(norm, 1e-12): scale-invariant down there."""
    import optax

    jnp = jax.numpy
    rng = np.random.default_rng(37)
    a, b = (r / np.linalg.norm(r, axis=1, keepdims=True) for r in rng.normal(size=(2, 4, 3)))
    root = math.sqrt(float(np.finfo(dtype).eps))
    with jax.enable_x64(dtype == "float64"):
        def peer(u, v):
            return float(optax.losses.ntxent(jnp.concatenate([u, v]), jnp.concatenate([jnp.arange(4)] * 2),
                                             temperature=0.5))

        unit = float(extras.nt_xent_loss(jnp.asarray(a, dtype=dtype), jnp.asarray(b, dtype=dtype)))
        rtol = 1e-5 if dtype == "float32" else 1e-12
        for scale in (2 * root, 0.3 * root, 1e-3 * root, 1e-6):
            u, v = jnp.asarray(a * scale, dtype=dtype), jnp.asarray(b * scale, dtype=dtype)
            ours = float(extras.nt_xent_loss(u, v))
            assert ours == pytest.approx(unit, rel=rtol)
            assert (peer(u, v) == pytest.approx(unit, rel=rtol)) == (scale > root), scale
    readme = " ".join(EXTRAS_README.read_text().split())
    assert "3.5e-4 in float32" in readme and "about 1e-8" not in readme


# --- Keras' Tversky -----------------------------------------------------------------------------

def test_keras_tversky_is_tversky_with_alpha_and_beta_swapped_and_no_smoothing_as_the_readme_says(segmentation):
    """Keras' ``tversky`` is ``TP / (TP + α Σ y (1 - x) + β Σ (1 - y) x + ε)``: besides the swapped α and β,
    no smoothing in the numerator, so lossreg's default ``smooth=1`` gives another number; the README
    row said only "swap alpha and beta"."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "numpy")
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(43)
    p = rng.uniform(size=(3, 16)).astype("float32")
    y = (rng.uniform(size=(3, 16)) < 0.3).astype("float32")
    peer = float(keras.losses.Tversky(alpha=0.3, beta=0.7)(y, p))
    whole = (p.reshape(1, -1), y.reshape(1, -1))
    assert float(segmentation.tversky_loss(*whole, alpha=0.7, beta=0.3, smooth=0.0)) == pytest.approx(peer, rel=1e-5)
    assert float(segmentation.tversky_loss(*whole, alpha=0.7, beta=0.3)) != pytest.approx(peer, rel=1e-3)
    (row,) = [line for line in SEGMENTATION_README.read_text().splitlines()
              if line.startswith("| `tversky_loss` | Keras `Tversky`")]
    assert "swap `alpha` and `beta`" in row and "`smooth=0` here" in row


# --- log_cosh at small errors -------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_log_cosh_keeps_small_errors_and_their_gradient_tanh_in_float32_and_float64(extras, jax, dtype):
    """log cosh(d) ≈ d²/2 near 0. Computed as |d| + log1p(expm1(-2|d|) / 2), the two terms cancel: in
    float32 a residual below 1e-7 cost 0 and had no gradient, one of 1e-5 was 4e-4 off, and torch
    autograd's gradient (the portable definition: torch has no log-cosh kernel) was 40% off at 1e-7, 0.1%
    at 1e-5. The reference is mpmath's log(cosh(d)) and the derivative tanh(d); optax's
    ``d + softplus(-2d) - log 2`` cancels the same way and is no reference here."""
    mp = pytest.importorskip("mpmath").mp
    d = np.array([1e-30, 1e-12, 1e-9, 3e-8, -1e-7, 1e-6, -1e-5, 1e-4, 1e-3, -0.01, 0.3, 0.99, -1.0, 1.01, 3.0,
                  -20.0, 100.0, 1e4], dtype=dtype)
    with mp.workdps(100):  # cosh(1e-30) = 1 + 5e-61: more than 61 digits to see it
        want = np.array([float(mp.log(mp.cosh(mp.mpf(float(v))))) for v in d])
    want_grad = np.tanh(d.astype("float64"))
    rtol = 4 * float(np.finfo(dtype).eps)
    tiny = float(np.finfo(dtype).tiny)

    x = torch.tensor(d, requires_grad=True)
    for kernels in (True, False):
        with lossreg.use_kernels(kernels):
            got = extras.log_cosh_loss(x, torch.zeros_like(x), reduction="none")
        (grad,) = torch.autograd.grad(got.sum(), x)
        np.testing.assert_allclose(got.detach().numpy(), want, rtol=rtol, atol=tiny)
        np.testing.assert_allclose(grad.numpy(), want_grad, rtol=rtol, atol=tiny)
    with jax.enable_x64(dtype == "float64"):
        z = jax.numpy.asarray(d)
        for loss in (extras.log_cosh_loss, extras.log_cosh_loss.portable):  # the JAX kernel, the definition
            value, grad = jax.value_and_grad(lambda a: loss(a, jax.numpy.zeros_like(a), reduction="none").sum())(z)
            np.testing.assert_allclose(np.asarray(loss(z, jax.numpy.zeros_like(z), reduction="none")), want,
                                       rtol=rtol, atol=tiny)
            np.testing.assert_allclose(np.asarray(grad), want_grad, rtol=rtol, atol=tiny)
    np.testing.assert_allclose(extras.log_cosh_loss(d, np.zeros_like(d), reduction="none"), want, rtol=rtol, atol=tiny)
