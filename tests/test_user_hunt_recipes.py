"""A user-style hunt: whole training recipes migrated from torch.nn to lossreg.

Each recipe trains a tiny model twice from the same seed, once with torch.nn's criteria (modules
or ``torch.nn.functional``) and once with lossreg's (``lossreg.torch`` modules or ``lossreg``
functions on torch tensors), for about 20 optimizer steps, and checks that the two runs are the
same run: every parameter after every step, and the final loss. float64 runs must agree to a
few ulps; float32 runs to a few float32 epsilons scaled by the parameters' size."""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

import lossreg
import lossreg.torch as LT

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# The two sides of every recipe: (module namespace, functional namespace).
SIDES = {"torch": (nn, F), "lossreg": (LT, lossreg)}

STEPS = 20


def _tolerance(dtype: torch.dtype) -> dict[str, float]:
    if dtype == torch.float64:
        return {"rtol": 1e-10, "atol": 1e-12}
    eps = torch.finfo(dtype).eps
    return {"rtol": 64 * eps, "atol": 64 * eps}


def _snapshot(*parts: nn.Module | torch.Tensor) -> torch.Tensor:
    """The parameters of modules (and parameters given alone), flattened into one vector."""
    params = [p for part in parts for p in (part.parameters() if isinstance(part, nn.Module) else [part])]
    return torch.cat([p.detach().reshape(-1).clone() for p in params])


def _step(opt: torch.optim.Optimizer, loss: torch.Tensor, *parts: nn.Module | torch.Tensor) -> torch.Tensor:
    """One optimizer step on ``loss``; then the parameters of ``parts``, as :func:`_snapshot`."""
    opt.zero_grad()
    loss.backward()
    opt.step()
    return _snapshot(*parts)


def _same_run(recipe: Callable[..., tuple[list[torch.Tensor], torch.Tensor]], dtype: torch.dtype,
              **options: Any) -> None:
    """Trains ``recipe`` with torch.nn's criteria and with lossreg's; the trajectories must agree."""
    runs = {}
    for side, (nn_, F_) in SIDES.items():
        torch.manual_seed(0)
        runs[side] = recipe(nn_, F_, dtype, **options)
    (want_traj, want_loss), (got_traj, got_loss) = runs["torch"], runs["lossreg"]
    assert len(got_traj) == len(want_traj) == STEPS
    assert got_loss.dtype == want_loss.dtype
    tol = _tolerance(dtype)
    for step, (got, want) in enumerate(zip(got_traj, want_traj)):
        assert torch.isfinite(want).all()
        torch.testing.assert_close(got, want, **tol, msg=lambda m: f"parameters after step {step + 1}: {m}")
    torch.testing.assert_close(got_loss, want_loss, **tol)


# ---------------------------------------------------------------------------------------------
# 1. Image classification: label smoothing + class weights + mixup (probability targets), AdamW,
#    gradient clipping and gradient accumulation over two micro-batches.


class _ConvNet(nn.Module):
    def __init__(self, classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4 * 4 * 4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.max_pool2d(F.relu(self.conv(x)), 2).flatten(1))


def _image_classification(nn_, F_, dtype, *, soft_targets: bool):
    classes = 5
    model = nn.ModuleDict({
        "net": _ConvNet(classes),
        # The criterion lives in the model: its class-weight buffer moves with .to(dtype).
        "loss": nn_.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 0.5, 1.5, 1.0]), label_smoothing=0.1),
    }).to(dtype)
    assert model["loss"].weight.dtype == dtype
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.05)
    g = torch.Generator().manual_seed(1)
    beta = torch.distributions.Beta(torch.tensor(0.4), torch.tensor(0.4))
    traj = []
    for step in range(STEPS):
        opt.zero_grad()
        for _micro in range(2):
            x = torch.randn(6, 1, 8, 8, generator=g, dtype=dtype)
            y = torch.randint(0, classes, (6,), generator=g)
            perm = torch.randperm(6, generator=g)
            lam = float(beta.sample()) if step else 0.5
            x = lam * x + (1 - lam) * x[perm]
            logits = model["net"](x)
            if soft_targets:  # mixup as one probability target
                target = lam * F.one_hot(y, classes).to(dtype) + (1 - lam) * F.one_hot(y[perm], classes).to(dtype)
                loss = model["loss"](logits, target)
            else:  # mixup as two class-index losses
                loss = lam * model["loss"](logits, y) + (1 - lam) * model["loss"](logits, y[perm])
            (loss / 2).backward()
        nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.5)
        opt.step()
        traj.append(_snapshot(model))
    return traj, loss.detach()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("soft_targets", [True, False], ids=["mixup-probabilities", "mixup-two-losses"])
def test_image_classification_with_smoothing_weights_mixup_adamw_clipping_accumulation(dtype, soft_targets):
    _same_run(_image_classification, dtype, soft_targets=soft_targets)


# ---------------------------------------------------------------------------------------------
# 2. Knowledge distillation: KL between temperature-softened student and teacher (log targets,
#    "batchmean") scaled by T², plus the hard-label cross-entropy.


def _distillation(nn_, F_, dtype, *, module: bool):
    T, alpha = 3.0, 0.7
    teacher = nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 4)).to(dtype).eval()
    student = nn.Sequential(nn.Linear(10, 4)).to(dtype)
    opt = torch.optim.SGD(student.parameters(), lr=0.3, momentum=0.9, nesterov=True)
    kl = nn_.KLDivLoss(reduction="batchmean", log_target=True)
    ce = nn_.CrossEntropyLoss()
    g = torch.Generator().manual_seed(2)
    traj = []
    for _ in range(STEPS):
        x, y = torch.randn(8, 10, generator=g, dtype=dtype), torch.randint(0, 4, (8,), generator=g)
        with torch.no_grad():
            t = teacher(x)
        s = student(x)
        log_s, log_t = F.log_softmax(s / T, dim=1), F.log_softmax(t / T, dim=1)
        if module:
            soft = kl(log_s, log_t)
            hard = ce(s, y)
        else:
            soft = F_.kl_div(log_s, log_t, reduction="batchmean", log_target=True)
            hard = F_.cross_entropy(s, y)
        loss = alpha * soft * T * T + (1 - alpha) * hard
        traj.append(_step(opt, loss, student))
    return traj, loss.detach()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("module", [True, False], ids=["modules", "functional"])
def test_knowledge_distillation_with_log_target_batchmean_kl(dtype, module):
    _same_run(_distillation, dtype, module=module)


# ---------------------------------------------------------------------------------------------
# 3. A detection-style head: multi-label classification per anchor with BCE-with-logits
#    (pos_weight and weight) and box regression on the positive anchors only (smooth L1 with beta,
#    Huber with delta); some batches have no positive anchor at all.


def _detection(nn_, F_, dtype, *, box_loss: str):
    anchors, classes = 6, 3
    model = nn.ModuleDict({
        "body": nn.Linear(8, 16),
        "cls": nn.Linear(16, anchors * classes),
        "box": nn.Linear(16, anchors * 4),
        "bce": nn_.BCEWithLogitsLoss(weight=torch.tensor([1.0, 0.5, 2.0]), pos_weight=torch.tensor([3.0, 1.0, 0.25]),
                                    reduction="sum"),
    }).to(dtype)
    assert model["bce"].pos_weight.dtype == model["bce"].weight.dtype == dtype
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    g = torch.Generator().manual_seed(3)
    traj = []
    for step in range(STEPS):
        x = torch.randn(4, 8, generator=g, dtype=dtype)
        labels = (torch.rand(4, anchors, classes, generator=g) < 0.2).to(dtype)
        if step % 4 == 1:
            labels.zero_()  # a batch of images with no object
        boxes = torch.randn(4, anchors, 4, generator=g, dtype=dtype)
        h = F.relu(model["body"](x))
        cls = model["cls"](h).view(4, anchors, classes)
        box = model["box"](h).view(4, anchors, 4)
        positive = labels.amax(-1) > 0
        npos = max(int(positive.sum()), 1)
        cls_loss = model["bce"](cls, labels) / npos
        if box_loss == "smooth_l1":
            reg = F_.smooth_l1_loss(box[positive], boxes[positive], beta=0.5, reduction="sum") / npos
        else:
            reg = F_.huber_loss(box[positive], boxes[positive], delta=0.3, reduction="sum") / npos
        loss = cls_loss + reg
        traj.append(_step(opt, loss, model))
    return traj, loss.detach()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("box_loss", ["smooth_l1", "huber"])
def test_detection_head_with_pos_weight_bce_and_masked_box_regression(dtype, box_loss):
    _same_run(_detection, dtype, box_loss=box_loss)


@pytest.mark.parametrize("name", ["smooth_l1_loss", "huber_loss", "l1_loss", "mse_loss"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_box_losses_of_a_batch_without_positives_are_torchs(name, reduction):
    # Indexing with an all-False mask gives (0, 4) tensors: torch's mean is NaN, its sum 0, both
    # with a zero gradient flowing back to the box head.
    want_box, got_box = (torch.randn(3, 4, dtype=torch.float64, requires_grad=True) for _ in range(2))
    with torch.no_grad():
        got_box.copy_(want_box)
    boxes, none = torch.randn(3, 4, dtype=torch.float64), torch.zeros(3, dtype=torch.bool)
    want = getattr(F, name)(want_box[none], boxes[none], reduction=reduction)
    got = getattr(lossreg, name)(got_box[none], boxes[none], reduction=reduction)
    assert got.shape == want.shape and got.dtype == want.dtype
    torch.testing.assert_close(got, want, equal_nan=True)
    want.sum().backward()
    got.sum().backward()
    torch.testing.assert_close(got_box.grad, want_box.grad, equal_nan=True)


# ---------------------------------------------------------------------------------------------
# 4. Metric learning: triplets (swap, p=1 and p=2), a custom-distance triplet loss, cosine
#    embedding and margin ranking, on one embedding network.


def _cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 1.0 - F.cosine_similarity(a, b, dim=-1)


def _metric_learning(nn_, F_, dtype, *, p: float):
    net = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 5)).to(dtype)
    scorer = nn.Linear(5, 1).to(dtype)
    opt = torch.optim.SGD([*net.parameters(), *scorer.parameters()], lr=0.05, momentum=0.9)
    triplet = nn_.TripletMarginLoss(margin=0.5, p=p, swap=True)
    custom = nn_.TripletMarginWithDistanceLoss(distance_function=_cosine_distance, margin=0.2, swap=True)
    cosine = nn_.CosineEmbeddingLoss(margin=0.1)
    ranking = nn_.MarginRankingLoss(margin=0.3)
    g = torch.Generator().manual_seed(4)
    traj = []
    for _ in range(STEPS):
        a, pos, neg = (net(torch.randn(8, 6, generator=g, dtype=dtype)) for _ in range(3))
        same = torch.randint(0, 2, (8,), generator=g) * 2 - 1
        order = (torch.randint(0, 2, (8,), generator=g) * 2 - 1).to(dtype)
        loss = (triplet(a, pos, neg) + custom(a, pos, neg) + cosine(a, pos, same)
                + ranking(scorer(a).squeeze(1), scorer(neg).squeeze(1), order)
                + F_.triplet_margin_loss(a, pos, neg, margin=1.0, p=p, swap=True, reduction="sum") / 8
                + F_.triplet_margin_with_distance_loss(a, pos, neg, distance_function=nn.PairwiseDistance(p=p),
                                                       swap=True, reduction="mean"))
        traj.append(_step(opt, loss, net, scorer))
    return traj, loss.detach()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("p", [1.0, 2.0])
def test_metric_learning_with_swapped_triplets_cosine_and_ranking(dtype, p):
    _same_run(_metric_learning, dtype, p=p)


# ---------------------------------------------------------------------------------------------
# 5. A VAE: Bernoulli pixels (BCE on sigmoid outputs) and a Gaussian head with a learned variance
#    (gaussian_nll_loss, full=True, eps), plus the analytic KL of the posterior.


def _vae(nn_, F_, dtype, *, var_shape: str):
    enc = nn.Linear(12, 2 * 3).to(dtype)
    dec = nn.Linear(3, 12 + 4 + 4).to(dtype)
    params = [*enc.parameters(), *dec.parameters()]
    opt = torch.optim.Adam(params, lr=1e-2)
    bce = nn_.BCELoss(reduction="sum")
    gnll = nn_.GaussianNLLLoss(full=True, eps=1e-3, reduction="mean")
    g = torch.Generator().manual_seed(5)
    traj = []
    for _ in range(STEPS):
        x = (torch.rand(8, 12, generator=g) < 0.4).to(dtype)
        y = torch.randn(8, 4, generator=g, dtype=dtype)
        mu, logvar = enc(x).chunk(2, dim=1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=g, dtype=dtype)
        out = dec(z)
        pixels, mean, var = torch.sigmoid(out[:, :12]), out[:, 12:16], F.softplus(out[:, 16:]) * 1e-2
        if var_shape == "column":
            var = var[:, :1]  # one variance per sample, (N, 1)
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / 8
        loss = bce(pixels, x) / 8 + gnll(mean, y, var) + F_.gaussian_nll_loss(mean, y, var, full=True, eps=1e-2) + kl
        traj.append(_step(opt, loss, *params))
    return traj, loss.detach()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("var_shape", ["full", "column"])
def test_vae_with_bce_on_sigmoid_gaussian_nll_full_and_kl(dtype, var_shape):
    _same_run(_vae, dtype, var_shape=var_shape)


# ---------------------------------------------------------------------------------------------
# 6. Sequence models: CTC (zero_infinity, mean) on a GRU acoustic model, with one utterance whose
#    transcript cannot fit its frames; and a seq2seq decoder trained with nll_loss in (N, C, T)
#    layout with padding ignored and class weights.


def _ctc(nn_, F_, dtype, *, targets_form: str):
    vocab, frames = 5, 7
    rnn = nn.GRU(4, 8, batch_first=False).to(dtype)
    head = nn.Linear(8, vocab).to(dtype)
    params = [*rnn.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=1e-2)
    ctc = nn_.CTCLoss(blank=0, reduction="mean", zero_infinity=True)
    g = torch.Generator().manual_seed(6)
    traj = []
    for _ in range(STEPS):
        x = torch.randn(frames, 3, 4, generator=g, dtype=dtype)
        log_probs = F.log_softmax(head(rnn(x)[0]), dim=-1)  # (T, N, C)
        input_lengths = torch.tensor([frames, 5, 3])
        target_lengths = torch.tensor([3, 2, 3])  # the third: "1 1 2" needs 4 frames, it has 3: infinite
        padded = torch.randint(1, vocab, (3, 3), generator=g)
        padded[2] = torch.tensor([1, 1, 2])
        if targets_form == "padded":
            loss = ctc(log_probs, padded, input_lengths, target_lengths)
        else:  # concatenated targets and plain int lists, through the functional form
            flat = torch.cat([padded[i, :n] for i, n in enumerate(target_lengths.tolist())])
            loss = F_.ctc_loss(log_probs, flat, input_lengths.tolist(), target_lengths.tolist(),
                               reduction="mean", zero_infinity=True)
        traj.append(_step(opt, loss, *params))
    return traj, loss.detach()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("targets_form", ["padded", "concatenated"])
def test_ctc_acoustic_model_with_zero_infinity(dtype, targets_form):
    _same_run(_ctc, dtype, targets_form=targets_form)


def _seq2seq(nn_, F_, dtype, *, module: bool):
    vocab, pad, length = 6, 0, 5
    emb = nn.Embedding(vocab, 8).to(dtype)
    proj = nn.Conv1d(8, vocab, 1).to(dtype)  # logits in (N, C, T), as a convolutional decoder gives them
    params = [*emb.parameters(), *proj.parameters()]
    opt = torch.optim.RMSprop(params, lr=1e-2)
    weight = torch.tensor([0.0, 1.0, 1.0, 2.0, 0.5, 1.0], dtype=dtype)
    nll = nn_.NLLLoss(weight=weight, ignore_index=pad).to(dtype)
    g = torch.Generator().manual_seed(7)
    traj = []
    for step in range(STEPS):
        src = torch.randint(1, vocab, (4, length), generator=g)
        tgt = torch.randint(1, vocab, (4, length), generator=g)
        lengths = torch.randint(1, length + 1, (4,), generator=g)
        tgt[torch.arange(length) >= lengths[:, None]] = pad  # padded tails
        logp = F.log_softmax(proj(emb(src).transpose(1, 2)), dim=1)  # (N, C, T)
        if module:
            loss = nll(logp, tgt)
        else:
            loss = F_.nll_loss(logp, tgt, weight=weight, ignore_index=pad)
        traj.append(_step(opt, loss, *params))
    return traj, loss.detach()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("module", [True, False], ids=["module", "functional"])
def test_seq2seq_nll_in_nct_layout_with_ignored_padding(dtype, module):
    _same_run(_seq2seq, dtype, module=module)


# ---------------------------------------------------------------------------------------------
# 7. Count regression (Poisson NLL, log_input True and False, full Stirling term) and margin
#    classifiers (multi-class hinge with p, margin and class weights; multi-label hinge).


def _counts(nn_, F_, dtype, *, log_input: bool):
    model = nn.Linear(5, 3).to(dtype)
    opt = torch.optim.Adagrad(model.parameters(), lr=0.1)
    pois = nn_.PoissonNLLLoss(log_input=log_input, full=True, eps=1e-6)
    g = torch.Generator().manual_seed(8)
    traj = []
    for _ in range(STEPS):
        x = torch.randn(10, 5, generator=g, dtype=dtype)
        counts = torch.poisson(torch.full((10, 3), 2.0, dtype=dtype), generator=g)
        out = model(x)
        rate = out if log_input else F.softplus(out)
        loss = pois(rate, counts) + F_.poisson_nll_loss(rate, counts, log_input=log_input, reduction="sum") / 30
        traj.append(_step(opt, loss, model))
    return traj, loss.detach()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("log_input", [True, False])
def test_count_regression_with_poisson_nll(dtype, log_input):
    _same_run(_counts, dtype, log_input=log_input)


def _margins(nn_, F_, dtype, *, p: int):
    classes = 4
    model = nn.ModuleDict({
        "net": nn.Linear(6, classes),
        "mm": nn_.MultiMarginLoss(p=p, margin=0.7, weight=torch.tensor([1.0, 2.0, 0.5, 1.0])),
        "ml": nn_.MultiLabelMarginLoss(),
    }).to(dtype)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(9)
    traj = []
    for _ in range(STEPS):
        x = torch.randn(8, 6, generator=g, dtype=dtype)
        y = torch.randint(0, classes, (8,), generator=g)
        labels = torch.full((8, classes), -1)
        labels[:, 0] = y
        labels[::2, 1] = (y[::2] + 1) % classes  # every other sample has two labels
        labels[5, 0] = -1  # and one has none
        s = model["net"](x)
        loss = (model["mm"](s, y) + model["ml"](s, labels)
                + F_.multi_margin_loss(s, y, p=p, reduction="sum") / 8
                + F_.multilabel_margin_loss(s, labels, reduction="mean"))
        traj.append(_step(opt, loss, model))
    return traj, loss.detach()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("p", [1, 2])
def test_margin_classifiers_multi_margin_and_multilabel_margin(dtype, p):
    _same_run(_margins, dtype, p=p)


class _LearnedDistance(nn.Module):
    """A distance with parameters: torch.nn registers it as a submodule of the loss, so a model
    holding the loss trains it."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(5, 5, bias=False)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (self.proj(a) - self.proj(b)).pow(2).sum(-1).add(1e-9).sqrt()


def _learned_distance(nn_, F_, dtype):
    model = nn.ModuleDict({
        "net": nn.Linear(6, 5),
        "loss": nn_.TripletMarginWithDistanceLoss(distance_function=_LearnedDistance(), margin=0.5, swap=True),
    }).to(dtype)
    assert model["loss"].distance_function.proj.weight.dtype == dtype
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(10)
    traj = []
    for _ in range(STEPS):
        a, p, n = (model["net"](torch.randn(8, 6, generator=g, dtype=dtype)) for _ in range(3))
        loss = model["loss"](a, p, n)
        traj.append(_step(opt, loss, model))
    return traj, loss.detach()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_triplet_loss_with_a_learned_distance_module_trains_it_as_part_of_the_model(dtype):
    _same_run(_learned_distance, dtype)


# ---------------------------------------------------------------------------------------------
# 8. Training machinery around the loss: CPU autocast (bfloat16), activation checkpointing,
#    torch.compile (aot_eager), and a state_dict save / load / resume in the middle of a run.


def _autocast(nn_, F_, dtype):
    model = nn.ModuleDict({
        "body": nn.Linear(8, 16), "cls": nn.Linear(16, 4), "tags": nn.Linear(16, 3), "reg": nn.Linear(16, 2),
        "ce": nn_.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 1.0, 0.5]), label_smoothing=0.05),
        "bce": nn_.BCEWithLogitsLoss(pos_weight=torch.tensor([2.0, 1.0, 0.5])),
        "mse": nn_.MSELoss(),
    })
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(11)
    traj = []
    for _ in range(STEPS):
        x = torch.randn(8, 8, generator=g)
        y, tags = torch.randint(0, 4, (8,), generator=g), (torch.rand(8, 3, generator=g) < 0.5).float()
        reg_t = torch.randn(8, 2, generator=g)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            h = F.relu(model["body"](x))
            logits, tag_logits, reg = model["cls"](h), model["tags"](h), model["reg"](h)
            assert logits.dtype == torch.bfloat16
            parts = [model["ce"](logits, y), model["bce"](tag_logits, tags), model["mse"](reg, reg_t),
                     F_.cross_entropy(logits, y, label_smoothing=0.1),
                     F_.binary_cross_entropy_with_logits(tag_logits, tags),
                     F_.mse_loss(reg, reg_t)]
            # autocast runs these losses in float32, and returns float32, for torch and for lossreg
            assert [p.dtype for p in parts] == [torch.float32] * 6
            loss = sum(parts)
        opt.zero_grad()
        loss.backward()
        assert all(p.grad.dtype == torch.float32 for p in model.parameters())
        opt.step()
        traj.append(_snapshot(model))
    return traj, loss.detach()


def test_cpu_autocast_bfloat16_training_steps_are_torchs():
    _same_run(_autocast, torch.float32)


def test_autocast_loss_and_gradient_dtypes_of_each_loss_equal_torchs():
    g = torch.Generator().manual_seed(12)
    lin = nn.Linear(4, 3)
    x, y = torch.randn(5, 4, generator=g), torch.randint(0, 3, (5,), generator=g)
    t = torch.rand(5, 3, generator=g)
    results = {}
    for side, (nn_, F_) in SIDES.items():
        row = []
        for make in (lambda o: F_.cross_entropy(o, y), lambda o: F_.binary_cross_entropy_with_logits(o, t),
                     lambda o: F_.mse_loss(o, t), lambda o: nn_.CrossEntropyLoss(reduction="none")(o, y),
                     lambda o: F_.smooth_l1_loss(o, t, reduction="sum")):
            lin.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = lin(x)
                out.retain_grad()
                value = make(out)
            value.sum().backward()
            row.append((value.dtype, out.grad.dtype, lin.weight.grad.dtype, value.detach(), lin.weight.grad.clone()))
        results[side] = row
    for got, want in zip(results["lossreg"], results["torch"]):
        assert got[:3] == want[:3]
        torch.testing.assert_close(got[3], want[3])
        torch.testing.assert_close(got[4], want[4])


class _ModelAndLoss(nn.Module):
    def __init__(self, nn_) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 12), nn.GELU(), nn.Linear(12, 4))
        self.loss = nn_.CrossEntropyLoss(weight=torch.tensor([1.0, 0.5, 2.0, 1.0]), ignore_index=3, label_smoothing=0.1)
        self.aux = nn_.HuberLoss(delta=0.5)

    def forward(self, x: torch.Tensor, y: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return self.loss(out, y) + self.aux(out[:, :2], r)


def _machinery(nn_, F_, dtype, *, how: str):
    model = _ModelAndLoss(nn_).to(dtype)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    step_fn: Callable[..., torch.Tensor] = model
    if how == "compile":
        step_fn = torch.compile(model, backend="aot_eager", fullgraph=True)
    elif how == "checkpoint":
        step_fn = lambda *a: checkpoint(model, *a, use_reentrant=False)  # noqa: E731
    elif how == "reentrant-checkpoint":
        step_fn = lambda *a: checkpoint(model, *a, use_reentrant=True)  # noqa: E731
    g = torch.Generator().manual_seed(13)
    traj = []
    for step in range(STEPS):
        x = torch.randn(8, 6, generator=g, dtype=dtype, requires_grad=how == "reentrant-checkpoint")
        y, r = torch.randint(0, 4, (8,), generator=g), torch.randn(8, 2, generator=g, dtype=dtype)
        if how == "resume" and step == STEPS // 2:
            buffer = io.BytesIO()
            torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
            buffer.seek(0)
            state = torch.load(buffer)
            # A fresh process would build the model anew, with default class weights, then load.
            model = _ModelAndLoss(nn_).to(dtype)
            model.loss.weight.fill_(1.0)
            model.load_state_dict(state["model"])
            opt = torch.optim.Adam(model.parameters(), lr=1e-2)
            opt.load_state_dict(state["opt"])
            step_fn = model
        loss = step_fn(x, y, r)
        traj.append(_step(opt, loss, model))
    return traj, loss.detach()


@pytest.mark.parametrize("how", ["checkpoint", "reentrant-checkpoint", "resume", "compile"])
def test_model_and_loss_under_checkpoint_compile_and_resume(how):
    if how == "compile":
        torch.compiler.reset()
    _same_run(_machinery, torch.float64, how=how)


def test_state_dicts_of_a_model_holding_criteria_load_across_torch_nn_and_lossreg():
    theirs, ours = _ModelAndLoss(nn), _ModelAndLoss(LT)
    assert list(theirs.state_dict()) == list(ours.state_dict())
    assert [n for n, _ in theirs.named_parameters()] == [n for n, _ in ours.named_parameters()]
    assert [n for n, _ in theirs.named_buffers()] == [n for n, _ in ours.named_buffers()]
    assert [n for n, _ in theirs.named_modules()] == [n for n, _ in ours.named_modules()]
    theirs.loss.weight.mul_(3.0)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    torch.testing.assert_close(ours.loss.weight, theirs.loss.weight)
    theirs.load_state_dict(ours.double().state_dict(), strict=True)  # a float64 checkpoint into float32
    assert theirs.loss.weight.dtype == torch.float32 and ours.loss.weight.dtype == torch.float64


# ---------------------------------------------------------------------------------------------
# 9. A tiny language model whose head is a fused linear + cross-entropy: torch 2.13's
#    nn.LinearCrossEntropyLoss owning the head, or F.linear_cross_entropy with the embedding's
#    weight tied as the head, with padding ignored, class weights and label smoothing.


def _language_model(nn_, F_, dtype, *, tied: bool, bias: bool):
    vocab, dim, pad = 7, 6, 0
    class_weight = torch.tensor([1.0, 1.0, 2.0, 0.5, 1.0, 1.5, 1.0])
    model = nn.ModuleDict({"emb": nn.Embedding(vocab, dim), "mix": nn.Linear(dim, dim)})
    if not tied:
        model["head"] = nn_.LinearCrossEntropyLoss(dim, vocab, bias=bias, weight=class_weight, ignore_index=pad,
                                                   label_smoothing=0.1)
    model = model.to(dtype)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(14)
    traj = []
    for _ in range(STEPS):
        tokens = torch.randint(1, vocab, (3, 6), generator=g)
        tokens[0, 4:] = pad
        hidden = torch.tanh(model["mix"](model["emb"](tokens[:, :-1]))).flatten(0, 1)  # (N·T, D)
        target = tokens[:, 1:].flatten()
        if tied:
            loss = F_.linear_cross_entropy(hidden, model["emb"].weight, target, weight=class_weight.to(dtype),
                                           ignore_index=pad, label_smoothing=0.1)
        else:
            loss = model["head"](hidden, target)
        traj.append(_step(opt, loss, model))
    return traj, loss.detach()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("tied, bias", [(True, False), (False, False), (False, True)],
                         ids=["tied-embedding", "owned-head", "owned-head-with-bias"])
def test_language_model_with_fused_linear_cross_entropy_head(dtype, tied, bias):
    _same_run(_language_model, dtype, tied=tied, bias=bias)


# ---------------------------------------------------------------------------------------------
# 10. MAML: an inner SGD step taken with create_graph=True, the outer step differentiating
#     through it (second derivatives of the loss), with torch.func.functional_call.


def _maml(nn_, F_, dtype, *, loss: str):
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).to(dtype)
    outer = torch.optim.Adam(net.parameters(), lr=1e-2)
    crit = {
        "cross_entropy": nn_.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 0.5], dtype=dtype), label_smoothing=0.1),
        "bce_with_logits": nn_.BCEWithLogitsLoss(pos_weight=torch.tensor([2.0, 1.0, 0.5], dtype=dtype)),
        "huber": nn_.HuberLoss(delta=0.5),
        "smooth_l1": nn_.SmoothL1Loss(beta=0.5),
        "poisson": nn_.PoissonNLLLoss(full=True),
        "gaussian_nll": nn_.GaussianNLLLoss(full=True),
        "kl_div": nn_.KLDivLoss(reduction="batchmean", log_target=True),
        "cosine_embedding": nn_.CosineEmbeddingLoss(margin=0.2),
    }[loss]
    g = torch.Generator().manual_seed(15)

    def task_loss(params, x, y):
        out = torch.func.functional_call(net, params, (x,))
        if loss == "cosine_embedding":
            return crit(out, y, torch.where(y[:, 0] > 0, 1, -1))
        if loss == "cross_entropy":
            return crit(out, y.argmax(1))
        if loss == "bce_with_logits":
            return crit(out, (y > 0).to(dtype))
        if loss == "poisson":
            return crit(out, y.abs().round())
        if loss == "gaussian_nll":
            return crit(out[:, :2], y[:, :2], F.softplus(out[:, 2:]) + 0.1)
        if loss == "kl_div":
            return crit(out.log_softmax(1), y.log_softmax(1))
        return crit(out, y)

    traj = []
    for _ in range(STEPS):
        params = dict(net.named_parameters())
        support, query = (torch.randn(6, 4, generator=g, dtype=dtype) for _ in range(2))
        ys, yq = (torch.randn(6, 3, generator=g, dtype=dtype) for _ in range(2))
        grads = torch.autograd.grad(task_loss(params, support, ys), list(params.values()), create_graph=True)
        fast = {k: v - 0.4 * gr for (k, v), gr in zip(params.items(), grads)}
        meta = task_loss(fast, query, yq)
        outer.zero_grad()
        meta.backward()
        outer.step()
        traj.append(_snapshot(net))
    return traj, meta.detach()


@pytest.mark.parametrize("loss", ["cross_entropy", "bce_with_logits", "huber", "smooth_l1", "poisson",
                                  "gaussian_nll", "kl_div", "cosine_embedding"])
def test_maml_second_order_meta_training(loss):
    _same_run(_maml, torch.float64, loss=loss)


# ---------------------------------------------------------------------------------------------
# 11. Schedules that change a criterion between steps (label smoothing warm-up, a margin
#     annealed, class weights re-estimated in place), eager and under torch.compile.


def _schedules(nn_, F_, dtype, *, compiled: bool):
    torch.compiler.reset()
    model = nn.ModuleDict({
        "net": nn.Linear(5, 4),
        "ce": nn_.CrossEntropyLoss(weight=torch.ones(4), label_smoothing=0.0),
        "triplet": nn_.TripletMarginLoss(margin=0.1),
    }).to(dtype)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def step_loss(x, y):
        out = model["net"](x)
        return model["ce"](out, y) + model["triplet"](out, out.roll(1, 0), out.flip(0))

    run = torch.compile(step_loss, backend="aot_eager") if compiled else step_loss
    g = torch.Generator().manual_seed(16)
    traj = []
    for step in range(STEPS):
        x, y = torch.randn(8, 5, generator=g, dtype=dtype), torch.randint(0, 4, (8,), generator=g)
        if step % 5 == 0:
            model["ce"].label_smoothing = 0.05 * step / 5
            model["triplet"].margin = 0.1 + 0.2 * step / 5
            counts = torch.bincount(y, minlength=4).to(dtype) + 1
            model["ce"].weight.copy_(counts.sum() / counts)
        loss = run(x, y)
        traj.append(_step(opt, loss, model))
    return traj, loss.detach()


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_criterion_options_changed_between_steps_take_effect(compiled):
    _same_run(_schedules, torch.float64, compiled=compiled)


# ---------------------------------------------------------------------------------------------
# 12. Variable shapes from step to step (bucketed batches: the batch size and the number of frames
#     change), and a model switched from float32 to float64 in the middle of a run.


def _variable_shapes(nn_, F_, dtype):
    vocab = 5
    model = nn.ModuleDict({"head": nn.Linear(3, vocab), "ctc": nn_.CTCLoss(zero_infinity=True),
                           "ce": nn_.CrossEntropyLoss(weight=torch.tensor([0.5, 1.0, 1.0, 2.0, 1.0]))})
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(17)
    traj = []
    for step in range(STEPS):
        if step == STEPS // 2:
            model.double()  # the rest of the run in float64; the optimizer holds the same parameters
        dt = next(model.parameters()).dtype
        n, frames = 2 + step % 3, 4 + (step * 3) % 5
        x = torch.randn(frames, n, 3, generator=g).to(dt)
        logp = model["head"](x).log_softmax(-1)
        lengths = torch.randint(1, 3, (n,), generator=g)
        targets = torch.randint(1, vocab, (n, 2), generator=g)
        loss = (model["ctc"](logp, targets, torch.full((n,), frames), lengths)
                + model["ce"](logp.permute(1, 2, 0), targets[:, :1].expand(n, frames)))
        traj.append(_step(opt, loss, model).double())
    return traj, loss.detach()


def test_variable_batch_and_sequence_shapes_and_a_dtype_switch_mid_run():
    _same_run(_variable_shapes, torch.float32)


def _graphs_compiled_for_frame_counts(nn_, frames: tuple[int, ...]) -> int:
    """How many graphs torch.compile(dynamic=True) builds for a CTC training step over sequences
    of the given numbers of frames."""
    torch.compiler.reset()
    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    head, ctc = nn.Linear(3, 4).double(), nn_.CTCLoss(zero_infinity=True)
    step = torch.compile(lambda x, t, il, tl: ctc(head(x).log_softmax(-1), t, il, tl),
                         backend=counting_backend, dynamic=True)
    for t_max in frames:
        x = torch.randn(t_max, 2, 3, dtype=torch.float64)
        step(x, torch.tensor([[1, 2], [3, 0]]), torch.tensor([t_max, t_max - 1]), torch.tensor([2, 1])).backward()
    return len(graphs)


# A documented limit (README, "Inside torch.compile"): under tracing CTC runs the portable
# recursion, a Python loop over the frames that Dynamo unrolls, so a graph is compiled per number
# of frames, where torch.nn.CTCLoss breaks the graph around torch's CTC (an output shape that
# depends on the target lengths) and compiles its two pieces once. The unrolled loop is what
# makes fullgraph=True possible.
@pytest.mark.xfail(strict=True, reason="CTC under torch.compile unrolls its frames: one graph per length")
def test_compiled_ctc_training_step_compiles_once_for_every_number_of_frames():
    frames = (3, 4, 5)
    assert _graphs_compiled_for_frame_counts(LT, frames) == _graphs_compiled_for_frame_counts(nn, frames)


def _checkpointed_autocast(nn_, F_, dtype):
    model = _ModelAndLoss(nn_)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(19)
    traj = []
    for _ in range(STEPS):
        x = torch.randn(8, 6, generator=g)
        y, r = torch.randint(0, 4, (8,), generator=g), torch.randn(8, 2, generator=g)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = checkpoint(model, x, y, r, use_reentrant=False)
        assert loss.dtype == torch.float32
        traj.append(_step(opt, loss, model))
    return traj, loss.detach()


def test_checkpointed_model_and_loss_under_autocast():
    _same_run(_checkpointed_autocast, torch.float32)


# ---------------------------------------------------------------------------------------------
# What a model holding lossreg's criteria shows to optimizers and to people reading it.


def test_a_distance_module_is_a_submodule_shown_once_in_the_models_repr():
    # torch.nn registers a distance given as a module as a child: its parameters train with the
    # model and print(model) shows it once, as a child. lossreg printed it a second time, as an option.
    for nn_ in (nn, LT):
        crit = nn_.TripletMarginWithDistanceLoss(distance_function=nn.PairwiseDistance(p=1.0), margin=0.5)
        assert [name for name, _ in crit.named_modules()] == ["", "distance_function"]
        assert repr(nn.Sequential(nn.Linear(2, 2), crit)).count("PairwiseDistance") == 1, repr(crit)


@pytest.mark.parametrize("name, options", [
    ("CrossEntropyLoss", {"weight": torch.tensor([1.0, 2.0, 0.5]), "label_smoothing": 0.1}),
    ("NLLLoss", {"weight": torch.tensor([1.0, 2.0, 0.5]), "ignore_index": 0}),
    ("BCEWithLogitsLoss", {"weight": torch.tensor([1.0, 0.5, 2.0]), "pos_weight": torch.tensor([3.0, 1.0, 0.5])}),
    ("BCEWithLogitsLoss", {}),
    ("BCELoss", {"weight": torch.tensor([1.0, 0.5, 2.0])}),
    ("MultiMarginLoss", {"p": 2, "weight": torch.tensor([1.0, 2.0, 0.5])}),
    ("MultiLabelSoftMarginLoss", {"weight": torch.tensor([1.0, 2.0, 0.5])}),
    ("CTCLoss", {"zero_infinity": True}),
    ("TripletMarginWithDistanceLoss", {"distance_function": _LearnedDistance()}),
])
def test_criteria_add_no_parameters_or_buffers_and_convert_as_torch_nns(name, options):
    theirs, ours = getattr(nn, name)(**copy.deepcopy(options)), getattr(LT, name)(**copy.deepcopy(options))
    for model in (theirs, ours):
        model.double()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [(n, b.dtype) for n, b in ours.named_buffers()] == [(n, b.dtype) for n, b in theirs.named_buffers()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for model in (theirs, ours):
        model.to(torch.bfloat16)
    assert [(n, t.dtype) for n, t in ours.state_dict().items()] == [(n, t.dtype) for n, t in theirs.state_dict().items()]
