"""A computer-vision practitioner moving from segmentation-models-pytorch (smp) losses, timm's
classification losses and pytorch-metric-learning (pml) to lossreg and its two plugins, checking
each swap against the loss used before: values and gradients, float64 and float32, awkward inputs
(empty masks, all-background batches, logits of ±30 and ±inf, soft labels, ignore_index, class
weights, smoothing). The peers are imported without torchvision (see ``peer_module``).

What this file pins (the mappings the plugins' READMEs state):

- smp ``DiceLoss``/``TverskyLoss``/``JaccardLoss`` score each class over the whole batch (sums over
  the batch and the pixels), zero a class absent from the batch's target and average the classes
  (``class_weights``: a weighted mean): lossreg's ``dice_loss``/``tversky_loss`` on the rows
  ``x.transpose(0, 1).reshape(C, -1)`` with ``reduction="none"``, Dice's ``smooth`` twice smp's
  (Tversky's equal), Jaccard = Tversky α = β = 1, ``ignore_index`` = both arrays times the kept
  mask, ``log_loss`` = ``-log(max(1 - loss, eps))``; values and gradients, binary, multiclass and
  multilabel modes, from logits and from probabilities.
- smp's overlap is ``(Σx + Σy - Σ|x - y|) / 2 = Σ min(x, y)``: equal to lossreg's Σ x·y on hard masks
  only, and its gradient where a probability equals its target (a saturated sigmoid or softmax:
  float32 logits past ~17) takes ½ for ∂TP/∂x, where lossreg's is the derivative y; an empty class
  contributes 0 to smp's loss whatever the prediction, to lossreg's its false positives.
- smp ``FocalLoss``: binary mode is ``binary_focal_loss`` (smp's default ``alpha=None``, lossreg's
  0.25; ``ignore_index`` = the mean over kept elements); its multiclass mode is a one-vs-rest
  *sigmoid* focal loss on the one-hot target, ``binary_focal_loss(x, one_hot, alpha=None)``, not
  lossreg's softmax ``focal_loss``; on soft targets smp's factor is ``(1 - σ(x)^y σ(-x)^(1-y))^γ``,
  lossreg's ``(1 - p_t)^γ``; in float32 at a confident logit smp's ``1 - exp(-bce)`` cancels to 0,
  whose ``pow(γ < 1)`` gives smp a NaN gradient, where lossreg's is finite (the derivative).
- smp ``SoftBCEWithLogitsLoss(smooth_factor=s, ignore_index=i)`` is
  ``binary_cross_entropy_with_logits(x, y (1 - 2s) + s, weight=kept)`` (its mean counts the ignored
  elements, as torch's weighted mean does); ``SoftCrossEntropyLoss(smooth_factor=s)`` is
  ``cross_entropy(label_smoothing=s)``, and with ignored pixels its mean divides by every pixel:
  lossreg's (torch's) mean times kept / total.
- timm: ``LabelSmoothingCrossEntropy(s)`` is ``cross_entropy(label_smoothing=s)`` (at s = 0 a -inf logit
  makes timm's NaN, torch's and lossreg's the cross-entropy; smp's ``SoftCrossEntropyLoss`` likewise);
  ``SoftTargetCrossEntropy`` of ``Mixup``'s targets is ``cross_entropy`` of probability targets, and
  Mixup's smoothing is ``label_smoothing`` of the unsmoothed mixed targets; ``BinaryCrossEntropy``
  (smoothing, pos_weight, sum_classes, target_threshold) is ``binary_cross_entropy_with_logits`` of
  ``one_hot (1 - s) + s / C``; ``PolyCrossEntropy(epsilon)`` is ``poly1_cross_entropy`` (timm computes
  in float32).
- pml ``NTXentLoss(temperature=τ)`` of the stacked views with labels ``[0..N-1, 0..N-1]`` is
  ``nt_xent_loss(u, v, temperature=τ)``, values and gradients; pml caps each loss at
  ``-log(finfo.tiny)`` (87.3 in float32: small temperatures, opposite views) with a zero gradient,
  where lossreg's float32 is the float64 answer. pml ``TripletMarginLoss`` (all triplets, no miner)
  is ``triplet_margin_loss(eps=0)`` of the L2-normalized rows, averaged over the non-zero losses; pml
  ``ContrastiveLoss(pos_margin=1, neg_margin=m, distance=CosineSimilarity())`` is ``cosine_embedding_loss(margin=m)``
  of the positive pairs (y = 1) plus that of the negative pairs (y = -1), each reduced by pml's reducer.
- The same lossreg calls on NumPy and JAX arrays in float64 give the torch answers (and on JAX its gradients).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lossreg

torch = pytest.importorskip("torch", reason="the peers are torch libraries")
F = torch.nn.functional

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
RTOL = {torch.float64: 1e-10, torch.float32: 2e-5}


# smp's and timm's losses need torch (and numpy) only; their packages' own requirements add
# torchvision, whose wheel beside this CPU build of torch is a CUDA one (0.28.0+cu130). So where they
# are not installed, the files are pip-installed without dependencies into a throwaway folder.
PINNED = {"segmentation_models_pytorch": "segmentation-models-pytorch==0.6.0", "timm": "timm==1.0.31"}


@pytest.fixture(scope="session")
def peer_site(tmp_path_factory: pytest.TempPathFactory) -> None:
    """smp and timm importable by file: installed here with ``pip install --no-deps --target`` where
    missing (appended to ``sys.path``, so that an installed copy always wins); skips, saying why, when
    pip cannot fetch them (no package index)."""
    missing = [requirement for name, requirement in PINNED.items() if importlib.util.find_spec(name) is None]
    if not missing:
        return
    target = tmp_path_factory.mktemp("cv-peers")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
                           "--disable-pip-version-check", "--target", str(target), *missing],
                          capture_output=True, text=True, timeout=600)
    if done.returncode:
        pytest.skip(f"pip install --no-deps {' '.join(missing)} failed: {done.stderr.strip()[-300:]}")
    sys.path.append(str(target))
    importlib.invalidate_caches()


def peer_module(distribution: str, module: str):
    """``distribution.module`` (a subpackage or a file), imported without the distribution's top-level
    package when torchvision is missing or fails to import: smp's and timm's ``__init__`` import
    torchvision (for their models), which their losses and Mixup never use."""
    if importlib.util.find_spec("torchvision") is not None:
        try:
            return importlib.import_module(f"{distribution}.{module}")
        except (ImportError, OSError, RuntimeError):  # a torchvision built for another torch: the files alone
            pass
    alias = f"_lossreg_peer_{distribution}_{module.replace('.', '_')}"
    if alias in sys.modules:
        return sys.modules[alias]
    root = Path(importlib.util.find_spec(distribution).submodule_search_locations[0], *module.split("."))
    if root.is_dir():
        spec = importlib.util.spec_from_file_location(alias, root / "__init__.py", submodule_search_locations=[str(root)])
    else:
        spec = importlib.util.spec_from_file_location(alias, root.with_suffix(".py"))
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[alias] = loaded
    spec.loader.exec_module(loaded)
    return loaded


@pytest.fixture(scope="module")
def smp(peer_site):
    return peer_module("segmentation_models_pytorch", "losses")


@pytest.fixture(scope="module")
def timm_loss(peer_site):
    return peer_module("timm", "loss")


@pytest.fixture(scope="module")
def timm_mixup(peer_site):
    return peer_module("timm", "data.mixup")


@pytest.fixture(scope="module")
def pml():
    return pytest.importorskip("pytorch_metric_learning.losses",
                               reason="pip install pytorch-metric-learning (needs torch, numpy, scikit-learn, tqdm)")


def value_and_grads(fn, *arrays):
    """``fn(*leaves)`` and its gradients with respect to fresh leaves copied from ``arrays``."""
    leaves = [a.detach().clone().requires_grad_() for a in arrays]
    value = fn(*leaves)
    return value.detach(), torch.autograd.grad(value, leaves, allow_unused=True)


def assert_close(got, want, dtype, *, atol=0.0):
    torch.testing.assert_close(got, want, rtol=RTOL[dtype], atol=atol, equal_nan=True, check_dtype=False)


def class_rows(x):
    """``(N, C, ...)`` as ``(C, N·...)``: one row per class, every pixel of the batch, smp's ``dims=(0, 2)``."""
    return x.transpose(0, 1).reshape(x.shape[1], -1)


# --------------------------------------------------------------------------------------------------
# smp overlap losses


@st.composite
def overlap_problems(draw):
    """Logits at a drawn scale (±30, ±40, ±inf included), hard masks, some classes absent from the batch."""
    dtype = draw(st.sampled_from([torch.float64, torch.float32]))
    mode = draw(st.sampled_from(["binary", "multiclass", "multilabel"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, c, h, w = draw(st.integers(1, 3)), (1 if mode == "binary" else draw(st.integers(2, 4))), 3, draw(st.integers(1, 4))
    scale = draw(st.sampled_from([0.1, 1.0, 4.0, 30.0]))
    x = rng.normal(size=(n, c, h, w)) * scale
    if draw(st.booleans()):  # saturated and infinite logits (+inf in a softmax is NaN for both)
        x = np.where(rng.uniform(size=x.shape) < 0.2, rng.choice([-math.inf, math.inf, -40.0, 40.0], size=x.shape), x)
    x = torch.tensor(x, dtype=dtype)
    if mode == "multiclass":
        present = rng.permutation(c)[: draw(st.integers(1, c))]  # some classes absent from the batch
        y = torch.tensor(rng.choice(present, size=(n, h, w)))
    else:
        y = torch.tensor(rng.uniform(size=(n, c, h, w)) < draw(st.sampled_from([0.0, 0.2, 0.6])), dtype=dtype)
        if mode == "multilabel" and draw(st.booleans()):
            y[:, 0] = 0  # an empty channel in every image
    options = {
        "smooth": draw(st.sampled_from([0.0, 0.5, 1.0])),
        "from_logits": draw(st.booleans()),
        "log_loss": draw(st.booleans()),
        "ignore_index": draw(st.sampled_from([None, 255])) if mode != "binary" else None,
        # smp keeps class_weights in float32: weights whose float32 sums are exact
        "class_weights": None if mode == "binary" or not draw(st.booleans()) else list(rng.choice([0.5, 1.0, 1.5, 3.0], size=c)),
    }
    if options["ignore_index"] is not None:
        drop = torch.tensor(rng.uniform(size=y.shape) < 0.2)
        y = torch.where(drop, torch.tensor(255, dtype=y.dtype), y)
    loss = draw(st.sampled_from(["dice", "tversky", "jaccard"]))
    return mode, loss, x, y, options


def smp_overlap(smp, mode, loss, options):
    if loss == "dice":
        return smp.DiceLoss(mode, **options)
    if loss == "jaccard":
        return smp.JaccardLoss(mode, **options)
    return smp.TverskyLoss(mode, alpha=0.3, beta=0.7, **options)


def lossreg_overlap(segmentation, mode, loss, x, y, options):
    """The smp loss, computed with lossreg as its README row says."""
    c = x.shape[1]
    p = (x.softmax(1) if mode == "multiclass" else torch.sigmoid(x)) if options["from_logits"] else x
    if mode == "multiclass":
        kept = y != 255 if options["ignore_index"] is not None else torch.ones_like(y, dtype=torch.bool)
        t = F.one_hot(torch.where(kept, y, 0), c).movedim(-1, 1).to(x.dtype) * kept[:, None]
        kept = kept[:, None]
    else:
        kept = y != 255 if options["ignore_index"] is not None else torch.ones_like(y, dtype=torch.bool)
        t = torch.where(kept, y, 0)
    p, t = class_rows(p * kept), class_rows(t)
    if loss == "dice":
        losses = segmentation.dice_loss(p, t, smooth=2 * options["smooth"], reduction="none")
    else:
        a, b = (1.0, 1.0) if loss == "jaccard" else (0.3, 0.7)
        losses = segmentation.tversky_loss(p, t, alpha=a, beta=b, smooth=options["smooth"], reduction="none")
    if options["log_loss"]:
        losses = -torch.log(torch.clamp(1 - losses, min=1e-7))
    losses = losses * (t.sum(1) > 0)  # smp: a class absent from the batch's target counts 0
    if options["class_weights"] is None:
        return losses.mean()
    w = torch.tensor(options["class_weights"], dtype=torch.float32).to(x.dtype)
    return (losses * w).sum() / w.sum()


def probabilities_as_smp_sees_them(mode, x, options):
    if not options["from_logits"]:
        return x
    return x.log_softmax(1).exp() if mode == "multiclass" else F.logsigmoid(x).exp()


@SETTINGS
@given(problem=overlap_problems())
def test_smp_dice_tversky_jaccard_are_lossreg_overlap_losses_on_class_rows_of_the_batch(segmentation, smp, problem):
    mode, loss, x, y, options = problem
    if not options["from_logits"]:
        x = torch.sigmoid(x) if mode != "multiclass" else x.softmax(1)
    want, want_grad = value_and_grads(lambda z: smp_overlap(smp, mode, loss, options)(z, y), x)
    if probabilities_as_smp_sees_them(mode, x, options).isnan().any():
        # A +inf logit in a softmax: NaN probabilities, smp's loss NaN; lossreg refuses them on eager
        # CPU arrays, as every invalid probability (README: "Invalid values").
        assert want.isnan()
        with pytest.raises(lossreg.LossValueError, match="expected values in \\[0, 1\\], got nan"):
            lossreg_overlap(segmentation, mode, loss, x, y, options)
        return
    got, grad = value_and_grads(lambda z: lossreg_overlap(segmentation, mode, loss, z, y, options), x)
    assert_close(got, want, x.dtype, atol=1e-7 if options["log_loss"] else 0.0)
    # Gradients: equal where no probability equals its target exactly (smp's Σ|x - y| has a kink
    # there: the next test); a saturated float32 sigmoid or softmax rounds to exactly 0 or 1.
    p = probabilities_as_smp_sees_them(mode, x, options)
    target = y if mode != "multiclass" else F.one_hot(torch.where(y == 255, 0, y), x.shape[1]).movedim(-1, 1)
    if not bool((p == target).any()):
        if x.dtype == torch.float64:
            assert_close(grad[0], want_grad[0], x.dtype, atol=1e-12)
        else:
            assert_as_near_in_float32(grad[0], want_grad[0], lambda z: smp_overlap(smp, mode, loss, options)(
                z, y.double() if y.is_floating_point() else y), x)


def assert_as_near_in_float32(got, want, peer, x):
    """A float32 gradient within 2e-5 of the peer's, or as near the float64 answer as the peer's:
    with -log(dice) of a batch whose one positive pixel has probability 0.002, smp's own float32
    gradient is 1.5e-5 off the float64 one (and lossreg's 2e-6)."""
    exact = value_and_grads(peer, x.double())[1][0]
    ours, theirs = (got.double() - exact).abs(), (want.double() - exact).abs()
    near = (got.double() - want.double()).abs() <= RTOL[torch.float32] * want.double().abs() + 1e-7
    assert bool((near | (ours <= 2 * theirs + 1e-7)).all()), f"{got} against smp's {want} and float64's {exact}"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_smp_overlap_gradient_takes_half_where_a_probability_equals_its_target(segmentation, smp, dtype):
    # Probabilities of 0 and 1 on a hard mask (a saturated sigmoid), ties and non-ties.
    p = torch.tensor([[[0.0, 1.0, 0.3, 1.0, 0.0, 0.8]]], dtype=dtype)
    y = torch.tensor([[[0.0, 1.0, 1.0, 0.0, 1.0, 0.0]]], dtype=dtype)
    s = 0.5
    want, (smp_grad,) = value_and_grads(lambda z: smp.DiceLoss("binary", from_logits=False, smooth=s)(z, y), p)
    got, (grad,) = value_and_grads(lambda z: segmentation.dice_loss(z.reshape(1, -1), y.reshape(1, -1), smooth=2 * s), p)
    assert_close(got, want, dtype)  # equal values on a hard mask
    # smp's ∂TP/∂x = (1 - sign(x - y)) / 2 is ½ at a tie, lossreg's is y: the loss 1 - (2 TP + 2s) / (Σx + Σy + 2s)
    # then differs there by -2 (½ - y) / (Σx + Σy + 2s), and nowhere else.
    tie = p == y
    shift = torch.where(tie, -2 * (0.5 - y) / (p.sum() + y.sum() + 2 * s), torch.zeros_like(p))
    assert tie.sum() == 2
    assert_close(smp_grad, grad + shift, dtype, atol=1e-15)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_smp_overlap_on_soft_targets_is_the_sum_of_minima_where_lossreg_takes_products(segmentation, smp, dtype):
    rng = np.random.default_rng(0)
    p = torch.tensor(rng.uniform(size=(2, 1, 4, 4)), dtype=dtype)
    y = torch.tensor(rng.uniform(size=(2, 1, 4, 4)), dtype=dtype)
    want = smp.DiceLoss("binary", from_logits=False)(p, y)
    got = segmentation.dice_loss(p.reshape(1, -1), y.reshape(1, -1), smooth=0.0)
    total = p.sum() + y.sum()
    assert_close(want, 1 - 2 * torch.minimum(p, y).sum() / total, dtype)
    assert_close(got, 1 - 2 * (p * y).sum() / total, dtype)
    assert abs(float(want) - float(got)) > 0.05
    # The same on hard masks: min(x, y) = x·y for y in {0, 1}.
    hard = (y > 0.5).to(dtype)
    assert_close(segmentation.dice_loss(p.reshape(1, -1), hard.reshape(1, -1), smooth=0.0),
                 smp.DiceLoss("binary", from_logits=False)(p, hard), dtype)


@pytest.mark.parametrize("smooth", [0.0, 1.0])
def test_smp_counts_an_empty_class_as_zero_where_lossreg_counts_its_false_positives(segmentation, smp, smooth):
    p = torch.tensor([[[[0.9, 0.2], [0.0, 0.4]]], [[[0.1, 0.0], [0.3, 0.7]]]], dtype=torch.float64)
    background = torch.zeros_like(p)
    assert smp.DiceLoss("binary", from_logits=False, smooth=smooth)(p, background) == 0
    got = segmentation.dice_loss(p.reshape(1, -1), background.reshape(1, -1), smooth=2 * smooth)
    assert_close(got, 1 - 2 * smooth / (p.sum() + 2 * smooth), torch.float64)  # its false positives: > 0
    empty = segmentation.dice_loss(background.reshape(1, -1), background.reshape(1, -1), smooth=2 * smooth)
    # An empty prediction of an empty mask: lossreg 0 with smoothing, 0 / 0 = NaN without; smp 0 (its eps
    # clamps the denominator to 1e-7 and the absent class is zeroed).
    assert (math.isnan(empty) if smooth == 0 else empty == 0)
    assert smp.DiceLoss("binary", from_logits=False, smooth=smooth)(background, background) == 0


# --------------------------------------------------------------------------------------------------
# smp focal, soft BCE and soft cross-entropy

EDGE_LOGITS = [-math.inf, -40.0, -30.0, -17.0, -2.0, 0.0, 0.5, 17.0, 30.0, 40.0, math.inf]


@st.composite
def focal_problems(draw):
    dtype = draw(st.sampled_from([torch.float64, torch.float32]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, c, h, w = draw(st.integers(1, 3)), draw(st.integers(2, 4)), 2, draw(st.integers(1, 3))
    x = rng.normal(size=(n, c, h, w)) * draw(st.sampled_from([0.1, 1.0, 5.0, 30.0]))
    if draw(st.booleans()):
        x = np.where(rng.uniform(size=x.shape) < 0.2, rng.choice(EDGE_LOGITS[1:-1], size=x.shape), x)
    labels = torch.tensor(rng.integers(0, c, size=(n, h, w)))
    ignore = draw(st.sampled_from([None, -1]))
    if ignore is not None:
        labels = torch.where(torch.tensor(rng.uniform(size=labels.shape) < 0.3), -1, labels)
    options = {"gamma": draw(st.sampled_from([0.0, 1.0, 2.0, 3.5])), "ignore_index": ignore}
    return torch.tensor(x, dtype=dtype), labels, options


def one_vs_rest_focal(segmentation, x, labels, *, gamma, ignore_index, weights=None):
    """smp's multiclass FocalLoss, written with lossreg: binary_focal_loss of the one-hot target,
    each class averaged over the kept pixels, then the classes averaged (or weighted)."""
    kept = labels != ignore_index if ignore_index is not None else torch.ones_like(labels, dtype=torch.bool)
    one_hot = F.one_hot(torch.where(kept, labels, 0), x.shape[1]).movedim(-1, 1).to(x.dtype)
    losses = segmentation.binary_focal_loss(x, one_hot, alpha=None, gamma=gamma, reduction="none")
    per_class = (losses * kept[:, None]).sum((0, 2, 3)) / kept.sum()
    if weights is None:
        return per_class.mean()
    w = torch.tensor(weights, dtype=torch.float32).to(x.dtype)
    return (per_class * w).sum() / w.sum()


@SETTINGS
@given(problem=focal_problems(), weighted=st.booleans())
def test_smp_multiclass_focal_is_one_vs_rest_binary_focal_not_softmax_focal(segmentation, smp, problem, weighted):
    x, labels, options = problem
    weights = [0.5, 2.0, 1.0, 3.0][: x.shape[1]] if weighted else None
    peer = smp.FocalLoss("multiclass", class_weights=weights, **options)
    want, (want_grad,) = value_and_grads(lambda z: peer(z, labels), x)
    got, (grad,) = value_and_grads(lambda z: one_vs_rest_focal(segmentation, z, labels, weights=weights, **options), x)
    if not (labels == -1).all():
        assert_close(got, want, x.dtype, atol=1e-30)
        finite = torch.isfinite(want_grad)  # smp's (1 - exp(-bce))^γ: see the float32 test below
        assert_close(grad[finite], want_grad[finite], x.dtype, atol=1e-12 if x.dtype == torch.float64 else 1e-7)
    # Not lossreg's focal_loss, the softmax focal loss (its gamma=0 is cross_entropy).
    if options["gamma"] == 0 and not (labels == -1).all():
        ce = lossreg.cross_entropy(x, labels, ignore_index=-1 if options["ignore_index"] is not None else -100)
        assert_close(segmentation.focal_loss(x, labels, gamma=0.0, ignore_index=options["ignore_index"] or -100), ce, x.dtype)
        assert not torch.isclose(want, ce)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("alpha", [None, 0.25, 0.9])
@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_smp_binary_focal_is_binary_focal_loss_with_its_alpha_and_a_kept_mean(segmentation, smp, dtype, alpha, gamma):
    x, t = (torch.tensor(a, dtype=dtype).reshape(2, 1, -1) for a in np.meshgrid(EDGE_LOGITS[1:-1], [0.0, 1.0]))
    t = t.clone()
    t[0, 0, :3] = -7  # ignored
    kept = t != -7
    peer = smp.FocalLoss("binary", alpha=alpha, gamma=gamma, ignore_index=-7)
    want, (want_grad,) = value_and_grads(lambda z: peer(z, t), x)
    got, (grad,) = value_and_grads(
        lambda z: segmentation.binary_focal_loss(z, torch.where(kept, t, 0), alpha=alpha, gamma=gamma,
                                                 reduction="none")[kept].mean(), x)
    assert_close(got, want, dtype, atol=1e-12 if dtype == torch.float64 else 1e-7)
    assert_close(grad, want_grad, dtype, atol=1e-12 if dtype == torch.float64 else 1e-7)
    # The defaults differ: smp alpha=None, lossreg 0.25.
    assert_close(segmentation.binary_focal_loss(x[1], t[1], alpha=None), smp.FocalLoss("binary")(x[1], t[1]), dtype)


def test_smp_focal_factor_on_soft_targets_is_one_minus_exp_of_minus_bce(segmentation, smp):
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.normal(size=(3, 1, 5)) * 3)
    t = torch.tensor(rng.uniform(size=(3, 1, 5)))
    bce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    p = torch.sigmoid(x)
    want = smp.FocalLoss("binary", gamma=2.0)(x, t)
    got = segmentation.binary_focal_loss(x, t, alpha=None, gamma=2.0)
    assert_close(want, ((1 - p**t * (1 - p) ** (1 - t)) ** 2 * bce).mean(), torch.float64)  # smp: 1 - geometric p_t
    assert_close(got, ((1 - (p * t + (1 - p) * (1 - t))) ** 2 * bce).mean(), torch.float64)  # lossreg: 1 - p_t
    assert abs(float(want) - float(got)) > 1e-3


@pytest.mark.parametrize("gamma", [0.25, 0.5])
def test_smp_focal_gradient_is_nan_at_confident_float32_logits_where_lossregs_is_the_derivative(segmentation, smp, gamma):
    x = torch.tensor([20.0, 30.0, 40.0, -25.0, 1.0], dtype=torch.float32)
    t = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0], dtype=torch.float32)
    _, (smp_grad,) = value_and_grads(lambda z: smp.FocalLoss("binary", gamma=gamma)(z, t), x)
    _, (grad,) = value_and_grads(lambda z: segmentation.binary_focal_loss(z, t, alpha=None, gamma=gamma), x)
    _, (exact,) = value_and_grads(lambda z: segmentation.binary_focal_loss(z, t.double(), alpha=None, gamma=gamma),
                                  x.double())
    assert torch.isnan(smp_grad[:4]).all()  # 1 - exp(-bce) rounds to 0, and pow(0, γ < 1)' = inf times bce = 0
    assert_close(grad, exact.float(), torch.float32, atol=1e-30)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("smooth_factor", [None, 0.1])
@pytest.mark.parametrize("ignore_index", [None, -100])
def test_smp_soft_bce_is_bce_with_logits_of_smoothed_targets_and_a_kept_weight(dtype, smooth_factor, ignore_index,
                                                                               smp):
    rng = np.random.default_rng(2)
    x = torch.tensor(rng.choice([-30.0, -3.0, 0.0, 0.7, 4.0, 30.0], size=(2, 3, 4)), dtype=dtype)
    y = torch.tensor(rng.uniform(size=(2, 3, 4)) < 0.4, dtype=dtype)
    y[0, 0] = -100
    pos_weight = torch.tensor([[2.0], [0.5], [1.0]], dtype=dtype)
    peer = smp.SoftBCEWithLogitsLoss(smooth_factor=smooth_factor, ignore_index=ignore_index, pos_weight=pos_weight)
    want, (want_grad,) = value_and_grads(lambda z: peer(z, y), x)
    s = smooth_factor or 0.0
    kept = (y != ignore_index).to(dtype) if ignore_index is not None else torch.ones_like(y)
    got, (grad,) = value_and_grads(
        lambda z: lossreg.binary_cross_entropy_with_logits(z, y * (1 - 2 * s) + s, weight=kept, pos_weight=pos_weight), x)
    assert_close(got, want, dtype)
    assert_close(grad, want_grad, dtype, atol=1e-15)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("smooth_factor", [0.0, 0.1])
def test_smp_soft_cross_entropy_mean_divides_by_every_pixel_ignored_ones_too(smp, dtype, smooth_factor):
    rng = np.random.default_rng(3)
    x = torch.tensor(rng.normal(size=(2, 4, 3, 3)) * 5, dtype=dtype)
    x[0, 1, 0, 0] = -math.inf  # a masked class
    y = torch.tensor(rng.integers(0, 4, size=(2, 3, 3)))
    y[0, 0, 0] = 0
    ignored = y.clone()
    ignored[1, :2] = -100
    want, (want_grad,) = value_and_grads(lambda z: smp.SoftCrossEntropyLoss(smooth_factor=smooth_factor)(z, y), x)
    got, (grad,) = value_and_grads(lambda z: lossreg.cross_entropy(z, y, label_smoothing=smooth_factor), x)
    torch_value, (torch_grad,) = value_and_grads(lambda z: F.cross_entropy(z, y, label_smoothing=smooth_factor), x)
    assert_close(got, torch_value, dtype)
    assert_close(grad, torch_grad, dtype, atol=1e-15)
    if smooth_factor == 0:
        # A -inf logit (a masked class) without smoothing: smp adds 0 · (Σ -log p = inf), NaN; torch and lossreg
        # give the cross-entropy.
        assert torch.isnan(want) and torch.isfinite(got)
    else:  # with smoothing both are inf (its term ε / C · -log 0), with torch's finite gradients
        assert_close(got, want, dtype)
        assert_close(grad, want_grad, dtype, atol=1e-15)
    x = x.clamp(min=-50)
    assert_close(lossreg.cross_entropy(x, y, label_smoothing=smooth_factor),
                 smp.SoftCrossEntropyLoss(smooth_factor=smooth_factor)(x, y), dtype)
    want = smp.SoftCrossEntropyLoss(smooth_factor=smooth_factor, ignore_index=-100)(x, ignored)
    got = lossreg.cross_entropy(x, ignored, label_smoothing=smooth_factor, ignore_index=-100)
    kept = (ignored != -100).sum()
    assert_close(want, got * kept / ignored.numel(), dtype)  # smp's mean counts the ignored pixels


# --------------------------------------------------------------------------------------------------
# timm


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.4])
def test_timm_label_smoothing_cross_entropy_is_cross_entropy_label_smoothing(timm_loss, dtype, smoothing):
    rng = np.random.default_rng(4)
    x = torch.tensor(rng.normal(size=(16, 10)) * rng.choice([1.0, 30.0], size=(16, 1)), dtype=dtype)
    t = torch.tensor(rng.integers(0, 10, size=16))
    x[0, (t[0] + 1) % 10] = -math.inf  # a masked class: with smoothing both are inf, with finite gradients
    want, (want_grad,) = value_and_grads(lambda z: timm_loss.LabelSmoothingCrossEntropy(smoothing)(z, t), x)
    got, (grad,) = value_and_grads(lambda z: lossreg.cross_entropy(z, t, label_smoothing=smoothing), x)
    torch_value, (torch_grad,) = value_and_grads(lambda z: F.cross_entropy(z, t, label_smoothing=smoothing), x)
    assert_close(got, torch_value, dtype)
    assert_close(grad, torch_grad, dtype, atol=1e-15)
    if smoothing == 0:  # timm adds 0 · (-mean log p = inf): NaN, where torch's is the cross-entropy
        assert want.isnan() and got.isfinite()
        x[0, (t[0] + 1) % 10] = -1e4
        want, (want_grad,) = value_and_grads(lambda z: timm_loss.LabelSmoothingCrossEntropy(smoothing)(z, t), x)
        got, (grad,) = value_and_grads(lambda z: lossreg.cross_entropy(z, t, label_smoothing=smoothing), x)
    assert_close(got, want, dtype)
    assert_close(grad, want_grad, dtype, atol=1e-15)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("mode", ["mixup", "cutmix"])
def test_timm_mixup_targets_with_soft_target_cross_entropy_are_cross_entropy_probability_targets(
        timm_loss, timm_mixup, dtype, smoothing, mode):
    torch.manual_seed(5)
    np.random.seed(5)  # Mixup draws its λ from NumPy's global generator
    mixup = timm_mixup.Mixup(mixup_alpha=0.8 if mode == "mixup" else 0.0, cutmix_alpha=1.0 if mode == "cutmix" else 0.0,
                             label_smoothing=smoothing, num_classes=10)
    images, labels = torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))
    _, target = mixup(images, labels)
    target = target.to(dtype)
    x = torch.randn(8, 10, dtype=dtype) * 4
    want, (want_grad,) = value_and_grads(lambda z: timm_loss.SoftTargetCrossEntropy()(z, target), x)
    got, (grad,) = value_and_grads(lambda z: lossreg.cross_entropy(z, target), x)
    assert_close(got, want, dtype)
    assert_close(grad, want_grad, dtype, atol=1e-15)
    # Mixup's smoothing is cross_entropy's label_smoothing of the unsmoothed mixed target (smoothing is linear).
    with torch.device("cpu"):
        lam = 0.3
        smoothed = timm_mixup.mixup_target(labels, 10, lam=lam, smoothing=smoothing).to(dtype)
        plain = timm_mixup.mixup_target(labels, 10, lam=lam, smoothing=0.0).to(dtype)
    assert_close(lossreg.cross_entropy(x, plain, label_smoothing=smoothing), lossreg.cross_entropy(x, smoothed), dtype,
                 atol=1e-6)  # timm builds its targets in float32


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("options", [{}, {"smoothing": 0.0}, {"smoothing": 0.2, "pos_weight": 2.0},
                                     {"smoothing": 0.1, "sum_classes": True}, {"smoothing": 0.1, "target_threshold": 0.2},
                                     {"smoothing": 0.1, "weight": "classes"}])
def test_timm_binary_cross_entropy_is_bce_with_logits_of_smoothed_one_hot(timm_loss, dtype, options):
    rng = np.random.default_rng(6)
    c = 5
    x = torch.tensor(rng.choice([-30.0, -2.0, 0.0, 1.5, 30.0], size=(6, c)), dtype=dtype)
    t = torch.tensor(rng.integers(0, c, size=6))
    options = dict(options)
    weight = None
    if options.get("weight") == "classes":
        weight = options["weight"] = torch.tensor(rng.uniform(0.5, 2, size=c), dtype=dtype)
    s = options.get("smoothing", 0.1)  # timm's default
    target = F.one_hot(t, c).to(dtype) * (1 - s) + s / c
    if "target_threshold" in options:
        target = (target > options["target_threshold"]).to(dtype)
    pos_weight = torch.tensor(options["pos_weight"], dtype=dtype) if "pos_weight" in options else None
    want, (want_grad,) = value_and_grads(lambda z: timm_loss.BinaryCrossEntropy(**options)(z, t), x)

    def mine(z):
        losses = lossreg.binary_cross_entropy_with_logits(z, target, weight=weight, pos_weight=pos_weight,
                                                          reduction="none" if options.get("sum_classes") else "mean")
        return losses.sum(-1).mean() if options.get("sum_classes") else losses

    got, (grad,) = value_and_grads(mine, x)
    assert_close(got, want, dtype)
    assert_close(grad, want_grad, dtype, atol=1e-15)


@pytest.mark.parametrize("epsilon", [-1.0, 1.0, 2.0])
def test_timm_poly_cross_entropy_is_poly1_cross_entropy_computed_in_float32(extras, timm_loss, epsilon):
    rng = np.random.default_rng(7)
    x = torch.tensor(rng.normal(size=(12, 7)) * rng.choice([0.1, 3.0, 30.0], size=(12, 1)), dtype=torch.float64)
    t = torch.tensor(rng.integers(0, 7, size=12))
    want, (want_grad,) = value_and_grads(lambda z: timm_loss.PolyCrossEntropy(epsilon=epsilon)(z, t), x.float())
    got, (grad,) = value_and_grads(lambda z: extras.poly1_cross_entropy(z, t, epsilon=epsilon), x.float())
    assert_close(got, want, torch.float32)
    assert_close(grad, want_grad, torch.float32, atol=1e-7)
    # In float64 timm still computes in float32 (x.float()); lossreg in float64: the same to float32's precision.
    assert want.dtype == timm_loss.PolyCrossEntropy(epsilon=epsilon)(x, t).dtype == torch.float32
    assert_close(extras.poly1_cross_entropy(x, t, epsilon=epsilon), want.double(), torch.float32)
    # timm's default epsilon is 2, lossreg's 1.
    assert_close(extras.poly1_cross_entropy(x.float(), t, epsilon=2.0), timm_loss.PolyCrossEntropy()(x.float(), t),
                 torch.float32)


# --------------------------------------------------------------------------------------------------
# pytorch-metric-learning


@st.composite
def view_pairs(draw):
    dtype = draw(st.sampled_from([torch.float64, torch.float32]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, d = draw(st.integers(1, 6)), draw(st.integers(1, 5))
    u = rng.normal(size=(n, d)) * draw(st.sampled_from([1e-6, 1.0, 1e3]))
    kind = draw(st.sampled_from(["random", "noisy", "same", "zero_row"]))
    v = {"random": rng.normal(size=(n, d)), "noisy": u + 0.1 * rng.normal(size=(n, d)) * np.abs(u).max(),
         "same": u.copy(), "zero_row": rng.normal(size=(n, d))}[kind]
    if kind == "zero_row":
        u[0] = 0
    return torch.tensor(u, dtype=dtype), torch.tensor(v, dtype=dtype), draw(st.sampled_from([0.07, 0.1, 0.5, 1.0]))


@SETTINGS
@given(problem=view_pairs())
def test_pml_ntxent_of_stacked_views_labelled_by_pair_is_nt_xent_loss(extras, pml, problem):
    u, v, tau = problem
    n = u.shape[0]
    labels = torch.arange(n).repeat(2)
    want, want_grads = value_and_grads(lambda a, b: pml.NTXentLoss(temperature=tau)(torch.cat([a, b]), labels), u, v)
    got, grads = value_and_grads(lambda a, b: extras.nt_xent_loss(a, b, temperature=tau), u, v)
    if float(want) > 80:  # pml's cap, -log(tiny): the next test
        return
    if n == 1:  # no negatives: pml returns its zero loss, lossreg -s_p + log exp(s_p) = 0
        assert want == 0 and abs(float(got)) < 1e-6
        return
    tol = {"rtol": 1e-9, "atol": 1e-12} if u.dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-4}
    torch.testing.assert_close(got, want, **tol)
    norms = torch.cat([u, v]).norm(dim=1)
    scale = max(1.0, float(1 / norms[norms > 0].min()))  # the gradient of z / |z| grows as 1 / |z|
    for g, w in zip(grads, want_grads):
        torch.testing.assert_close(g, w, rtol=tol["rtol"], atol=tol["atol"] * scale)


@pytest.mark.parametrize("tau", [0.01, 0.005])
def test_pml_ntxent_caps_each_float32_loss_at_minus_log_tiny_where_lossreg_keeps_the_float64_answer(extras, pml, tau):
    rng = np.random.default_rng(8)
    u = torch.tensor(rng.normal(size=(5, 3)), dtype=torch.float32)
    v = -u  # opposite views: each loss about 2 / τ
    labels = torch.arange(5).repeat(2)
    exact = extras.nt_xent_loss(u.double(), v.double(), temperature=tau)
    assert float(exact) > 150
    pml32 = pml.NTXentLoss(temperature=tau)(torch.cat([u, v]), labels)
    assert_close(pml32, torch.tensor(-math.log(torch.finfo(torch.float32).tiny)), torch.float32)  # 87.34
    assert_close(pml.NTXentLoss(temperature=tau)(torch.cat([u, v]).double(), labels), exact, torch.float64)
    got, (grad,) = value_and_grads(lambda a: extras.nt_xent_loss(a, v, temperature=tau), u)
    _, (exact_grad,) = value_and_grads(lambda a: extras.nt_xent_loss(a, v.double(), temperature=tau), u.double())
    _, (pml_grad,) = value_and_grads(lambda a: pml.NTXentLoss(temperature=tau)(torch.cat([a, v]), labels), u)
    assert_close(got, exact.float(), torch.float32)
    torch.testing.assert_close(grad, exact_grad.float(), rtol=1e-4, atol=1e-4 * float(exact_grad.abs().max()))
    assert (pml_grad == 0).all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("margin", [0.05, 0.5])
def test_pml_triplet_margin_loss_is_triplet_margin_loss_of_normalized_rows_over_nonzero_losses(pml, dtype, swap, margin):
    utils = pytest.importorskip("pytorch_metric_learning.utils.loss_and_miner_utils", reason="pytorch-metric-learning")
    reducers = pytest.importorskip("pytorch_metric_learning.reducers", reason="pytorch-metric-learning")
    rng = np.random.default_rng(9)
    e = torch.tensor(rng.normal(size=(10, 4)) * rng.choice([1e-3, 1.0, 50.0], size=(10, 1)), dtype=dtype)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 3, 3])
    a, p, n = utils.get_all_triplets_indices(labels)

    def mine(z, reduction):
        z = F.normalize(z)  # pml's LpDistance normalizes the embeddings
        return lossreg.triplet_margin_loss(z[a], z[p], z[n], margin=margin, eps=0.0, swap=swap, reduction=reduction)

    want, (want_grad,) = value_and_grads(lambda z: pml.TripletMarginLoss(margin=margin, swap=swap)(z, labels), e)
    got, (grad,) = value_and_grads(lambda z: (lambda l: l.sum() / (l > 0).sum())(mine(z, "none")), e)
    assert_close(got, want, dtype)
    assert_close(grad, want_grad, dtype, atol=1e-12 if dtype == torch.float64 else 1e-6)
    mean = pml.TripletMarginLoss(margin=margin, swap=swap, reducer=reducers.MeanReducer())(e, labels)
    assert_close(mine(e, "mean"), mean, dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("neg_margin", [0.0, 0.3])
@pytest.mark.parametrize("reducer", ["AvgNonZeroReducer", "MeanReducer"])
def test_pml_cosine_contrastive_loss_is_cosine_embedding_loss_of_the_positive_and_negative_pairs(pml, dtype, neg_margin,
                                                                                              reducer):
    utils = pytest.importorskip("pytorch_metric_learning.utils.loss_and_miner_utils", reason="pytorch-metric-learning")
    reducers = pytest.importorskip("pytorch_metric_learning.reducers", reason="pytorch-metric-learning")
    distances = pytest.importorskip("pytorch_metric_learning.distances", reason="pytorch-metric-learning")
    rng = np.random.default_rng(11)
    e = torch.tensor(rng.normal(size=(9, 4)) * rng.choice([0.5, 1.0, 50.0], size=(9, 1)), dtype=dtype)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 0])
    a1, p, a2, n = utils.get_all_pairs_indices(labels)
    peer = pml.ContrastiveLoss(pos_margin=1, neg_margin=neg_margin, distance=distances.CosineSimilarity(),
                               reducer=getattr(reducers, reducer)())

    def reduce(losses):
        return losses.sum() / (losses > 0).sum() if reducer == "AvgNonZeroReducer" else losses.mean()

    def mine(z):
        ones = torch.ones(len(a1), dtype=dtype)
        pos = lossreg.cosine_embedding_loss(z[a1], z[p], ones, margin=neg_margin, reduction="none")
        neg = lossreg.cosine_embedding_loss(z[a2], z[n], -torch.ones(len(a2), dtype=dtype), margin=neg_margin,
                                            reduction="none")
        return reduce(pos) + reduce(neg)

    want, (want_grad,) = value_and_grads(lambda z: peer(z, labels), e)
    got, (grad,) = value_and_grads(mine, e)
    torch.testing.assert_close(got, want, rtol=1e-9 if dtype == torch.float64 else 1e-5, atol=0)
    torch.testing.assert_close(grad, want_grad, rtol=1e-7 if dtype == torch.float64 else 1e-4,
                               atol=1e-12 if dtype == torch.float64 else 1e-6)
    # Short embeddings: torch's cosine_embedding_loss (and so lossreg's) adds ε = 1e-12 to each squared norm,
    # pml's cosine (F.normalize) is exact: 1e-5 long rows give another loss.
    short = e.clone()
    short[:4] *= 1e-5
    assert_close(mine(short.double()), torch_cosine_pairs(short.double(), a1, p, a2, n, neg_margin, reduce), torch.float64)
    assert abs(float(mine(short)) - float(peer(short, labels))) > 1e-4


def torch_cosine_pairs(e, a1, p, a2, n, margin, reduce):
    """The same pairs through torch's own ``F.cosine_embedding_loss``."""
    pos = F.cosine_embedding_loss(e[a1], e[p], torch.ones(len(a1), dtype=e.dtype), margin=margin, reduction="none")
    neg = F.cosine_embedding_loss(e[a2], e[n], -torch.ones(len(a2), dtype=e.dtype), margin=margin, reduction="none")
    return reduce(pos) + reduce(neg)


# --------------------------------------------------------------------------------------------------
# The same calls on NumPy and JAX


def portable_calls(segmentation, extras):
    """(name, call, arrays): lossreg calls of this file, on float64 arrays."""
    rng = np.random.default_rng(10)
    p, mask = rng.uniform(size=(3, 20)), (rng.uniform(size=(3, 20)) < 0.3) * 1.0
    mask[0] = 0
    logits = rng.normal(size=(4, 3, 2, 2)) * 30
    labels = rng.integers(0, 3, size=(4, 2, 2))
    labels[0, 0, 0] = -1
    soft = rng.dirichlet(np.ones(5), size=6)
    x5 = rng.normal(size=(6, 5)) * 4
    e = rng.normal(size=(5, 3))
    return [
        ("dice", lambda a, b: segmentation.dice_loss(a, b, smooth=1.0, reduction="none"), (p, mask)),
        ("tversky", lambda a, b: segmentation.tversky_loss(a, b, alpha=0.3, beta=0.7, smooth=0.5, reduction="none"), (p, mask)),
        ("binary_focal", lambda a, b: segmentation.binary_focal_loss(a, b, alpha=None, gamma=2.0, reduction="none"),
         (logits, (logits > 0) * 1.0)),
        ("focal", lambda a, b: segmentation.focal_loss(a, b, gamma=2.0, ignore_index=-1), (logits, labels)),
        ("ce_soft_smoothed", lambda a, b: lossreg.cross_entropy(a, b, label_smoothing=0.1), (x5, soft)),
        ("bce_logits_weighted", lambda a, b, w: lossreg.binary_cross_entropy_with_logits(a, b * 0.8 + 0.1, weight=w),
         (logits, (logits > 0) * 1.0, (logits < 20) * 1.0)),
        ("poly1", lambda a, b: extras.poly1_cross_entropy(a, b, epsilon=2.0), (x5, rng.integers(0, 5, size=6))),
        ("nt_xent", lambda a, b: extras.nt_xent_loss(a, b, temperature=0.1, reduction="none"), (e, e + 0.1 * rng.normal(size=e.shape))),
        ("triplet", lambda a, b, c: lossreg.triplet_margin_loss(a, b, c, margin=0.5, eps=0.0, reduction="none"), (e, e[::-1].copy(), -e)),
    ]


@pytest.mark.parametrize("library", ["numpy", "jax"])
def test_the_same_calls_on_numpy_and_jax_in_float64_give_the_torch_answers(segmentation, extras, library, request):
    if library == "jax":
        jnp = pytest.importorskip("jax.numpy", reason="pip install jax")
        request.getfixturevalue("jax_float64")
        convert = jnp.asarray
    else:
        convert = np.asarray
    for name, call, arrays in portable_calls(segmentation, extras):
        _, (want_grad,) = value_and_grads(lambda first: call(first, *(torch.as_tensor(a) for a in arrays[1:])).sum(),
                                          torch.as_tensor(arrays[0]))
        got = call(*(convert(a) for a in arrays))
        np.testing.assert_allclose(np.asarray(got), call(*(torch.as_tensor(a) for a in arrays)).numpy(), rtol=1e-12,
                                   atol=1e-300, err_msg=name)
        if library == "jax":  # and the gradient with respect to the first array
            import jax

            rest = [convert(a) for a in arrays[1:]]
            grad = np.asarray(jax.grad(lambda first: call(first, *rest).sum())(convert(arrays[0])))
            np.testing.assert_allclose(grad, want_grad.numpy(), rtol=1e-9, atol=1e-14 * float(want_grad.abs().max()),
                                       err_msg=name)


# --------------------------------------------------------------------------------------------------
# What the READMEs say


ROOT = Path(__file__).resolve().parents[1]


def readme_row(plugin: str, start: str) -> str:
    (row,) = [line for line in (ROOT / "plugins" / plugin / "README.md").read_text().splitlines()
              if line.startswith(start)]
    return row


@pytest.mark.parametrize("dtype", [torch.int64, torch.uint8, torch.bool])
def test_integer_masks_are_a_loss_type_error_naming_the_target_as_the_smp_row_says(segmentation, smp, dtype):
    p = torch.rand(2, 1, 4, 4, dtype=torch.float64)
    mask = (torch.rand(2, 1, 4, 4) > 0.5).to(dtype)
    smp.DiceLoss("binary", from_logits=False)(p, mask)  # smp casts the mask
    with pytest.raises(lossreg.LossTypeError, match=r"dice_loss: argument 'target' expected a real floating"):
        segmentation.dice_loss(p, mask)
    assert "`LossTypeError`" in readme_row("lossreg-segmentation", "| `dice_loss`, `tversky_loss` | segmentation-models-pytorch")


def test_the_plugin_readmes_state_the_cv_peer_mappings_pinned_here():
    overlap = readme_row("lossreg-segmentation", "| `dice_loss`, `tversky_loss` | segmentation-models-pytorch")
    for claim in ("dims=(0, 2)", "twice smp's", "Tversky's equal", "tversky_loss(alpha=1, beta=1)", "Σ min(x, y)",
                  "½", "1e-7", "log_loss=True"):
        assert claim in overlap, claim
    focal = readme_row("lossreg-segmentation", "| `binary_focal_loss` | smp `FocalLoss`")
    for claim in ("alpha=None", "one-vs-rest *sigmoid*", "not `focal_loss`", "σ(x)^t σ(-x)^(1-t)", "NaN"):
        assert claim in focal, claim
    soft = readme_row("lossreg-segmentation", "| `binary_cross_entropy_with_logits`, `cross_entropy` (lossreg) | smp")
    assert "y (1 - 2s) + s" in soft and "kept / total" in soft and "0 · inf" in soft
    extras = " ".join((ROOT / "plugins" / "lossreg-extras" / "README.md").read_text().split())
    for claim in ("`PolyCrossEntropy(epsilon=ε)`", "timm computes in float32", "torch.arange(N).repeat(2)", "87.3 in float32",
                  "`cross_entropy(label_smoothing=s)` (at `s = 0` a -inf logit makes timm's NaN", "one_hot * (1 - s) + s / C", "eps=0)` of the L2-normalized",
                  "AvgNonZeroReducer", "`ContrastiveLoss(pos_margin=1, neg_margin=m, distance=CosineSimilarity())`",
                  "ε = 1e-12 on each squared norm"):
        assert claim in extras, claim
