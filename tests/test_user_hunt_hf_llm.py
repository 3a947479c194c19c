"""A user-style hunt: an engineer training Hugging Face ``transformers`` language models on torch who
swaps the model's loss for lossreg's (``lossreg.cross_entropy``, ``lossreg.linear_cross_entropy``,
``lossreg.torch.CrossEntropyLoss`` / ``LinearCrossEntropyLoss``), against the real peers:
transformers 5's own losses (``transformers.loss.loss_utils``), its ``Trainer`` (with accelerate),
and Cut Cross-Entropy's ``linear_cross_entropy`` (its ``torch_compile`` implementation, the one
that runs on a CPU; its Triton ``cce`` implementation needs a CUDA driver).

What the file pins:

- what the user writes with lossreg for ``ForCausalLMLoss`` / ``ForMaskedLMLoss`` /
  ``ForTokenClassification`` / ``fixed_cross_entropy`` (shift with ``F.pad``, ``reduction="sum"``
  divided by ``num_items_in_batch``, an int or a tensor) gives HF's value and gradient, bit for
  bit on torch's kernel path, float32/float64/bfloat16 logits; every label ignored gives HF's NaN
  and zero gradients;
- Trainer's ``LabelSmoother`` (``label_smoothing_factor``) is ``label_smoothing``;
- the question-answering loss's positive ``ignore_index`` (the sequence length, outside the
  classes), segmentation's 255, sequence classification's three problem types;
- tiny random Llama and GPT-2 models trained a few AdamW steps with the loss swapped through
  ``model.loss_function`` follow HF's parameters step by step, exactly; ``linear_cross_entropy``
  on the hidden states and the (tied or untied) ``lm_head.weight`` follows HF's logits + loss;
  ``Trainer(compute_loss_func=...)`` with gradient accumulation gives HF's parameters exactly;
- the same step compiled (``aot_eager``, ``fullgraph=True``) and under ``torch.autocast(bfloat16)``
  on the CPU gives HF's loss and gradients;
- Cut Cross-Entropy's ``linear_cross_entropy`` (``shift``, ``ignore_index``, reductions,
  ``softcap``, every token ignored) and lossreg's on the shifted slices give the same values and
  gradients (CCE's ``filter_eps`` gradient filtering is Triton-only, not lossreg's; CCE returns
  float32 for any input dtype, lossreg the input's dtype as torch);
- two bugs found: ``linear_cross_entropy`` compiled under ``torch.autocast`` ignored autocast (a
  float32 product of the unrounded inputs, where eager lossreg multiplied in bfloat16; now both are
  the float32 loss of the bfloat16-rounded inputs, as the README says of half-precision inputs);
  and a first torch call under ``torch.compile(fullgraph=True)`` failed in Dynamo when lossreg had
  been used before torch was imported (its deferred kernel imported with ``importlib``).

Needs ``transformers>=5``, ``accelerate`` and ``cut-cross-entropy`` (pyproject's ``test`` extra)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap

import pytest
import torch
import torch.nn.functional as F
from cut_cross_entropy import linear_cross_entropy as cce_linear_cross_entropy
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments
from transformers.loss.loss_utils import (
    ForCausalLMLoss,
    ForMaskedLMLoss,
    ForQuestionAnsweringLoss,
    ForSemanticSegmentationLoss,
    ForSequenceClassificationLoss,
    ForTokenClassification,
)

import lossreg
import lossreg.torch

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

V = 100  # the tiny models' vocabulary


def lossreg_causal_lm_loss(logits, labels, vocab_size, num_items_in_batch=None, ignore_index=-100,
                           shift_labels=None, **kwargs):
    """What the user sets as ``model.loss_function``: HF's ForCausalLMLoss written with lossreg."""
    if shift_labels is None:
        shift_labels = F.pad(labels, (0, 1), value=ignore_index)[..., 1:]
    z, y = logits.float().reshape(-1, vocab_size), shift_labels.reshape(-1)
    if num_items_in_batch is None:
        return lossreg.cross_entropy(z, y, ignore_index=ignore_index)
    return lossreg.cross_entropy(z, y, ignore_index=ignore_index, reduction="sum") / num_items_in_batch


def _tiny_llama(dtype=torch.float32, tie=True):
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, tie_word_embeddings=tie, bos_token_id=1, eos_token_id=2)
    return LlamaForCausalLM(cfg).to(dtype)


def _tiny_gpt2(dtype=torch.float32):
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=V, n_embd=32, n_layer=2, n_head=4, n_positions=64, resid_pdrop=0.0, embd_pdrop=0.0,
                     attn_pdrop=0.0, bos_token_id=1, eos_token_id=2)
    return GPT2LMHeadModel(cfg).to(dtype)


def _batch(g, t=12):
    """Token ids, an attention mask with right padding, and labels -100 on the padding."""
    ids = torch.randint(0, V, (3, t), generator=g)
    mask = torch.ones_like(ids)
    mask[1, t - 4:] = 0
    return ids, mask, ids.masked_fill(mask == 0, -100)


def _items(labels):
    """num_items_in_batch as Trainer counts it: the labels left after the shift."""
    return (F.pad(labels, (0, 1), value=-100)[..., 1:] != -100).sum()


# --- transformers' loss functions -------------------------------------------------------------------


@pytest.mark.parametrize("kernels", [True, False], ids=["kernel", "portable"])
@pytest.mark.parametrize("num_items", [None, 11, "tensor"], ids=["mean", "int", "tensor"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
def test_for_causal_lm_loss_is_the_sum_of_lossregs_cross_entropy_over_num_items_in_batch(dtype, num_items, kernels):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 9, V, generator=g).to(dtype).requires_grad_()
    labels = torch.randint(0, V, (3, 9), generator=g)
    labels[0, :4] = -100
    nib = torch.tensor(11) if num_items == "tensor" else num_items
    want = ForCausalLMLoss(logits, labels, V, num_items_in_batch=nib)
    (want_grad,) = torch.autograd.grad(want, logits)
    with lossreg.use_kernels(kernels):
        got = lossreg_causal_lm_loss(logits, labels, V, num_items_in_batch=nib)
        (got_grad,) = torch.autograd.grad(got, logits)
    assert got.dtype == want.dtype == torch.float32
    exact = {"rtol": 0, "atol": 0} if kernels else {}  # the kernel is torch's own operator
    torch.testing.assert_close(got, want, **exact)
    torch.testing.assert_close(got_grad, want_grad, **exact)


@pytest.mark.parametrize("num_items", [None, "zero"], ids=["mean", "num_items_0"])
def test_a_batch_with_every_label_ignored_is_hfs_nan_with_zero_gradients(num_items):
    logits = torch.randn(2, 6, V).requires_grad_()
    labels = torch.full((2, 6), -100)
    labels[:, 0] = 5  # only first tokens: nothing is left after the shift
    nib = torch.tensor(0) if num_items else None
    want = ForCausalLMLoss(logits, labels, V, num_items_in_batch=nib)
    got = lossreg_causal_lm_loss(logits, labels, V, num_items_in_batch=nib)
    assert torch.isnan(want) and torch.isnan(got)
    (want_grad,) = torch.autograd.grad(want, logits)
    (got_grad,) = torch.autograd.grad(got, logits)
    torch.testing.assert_close(got_grad, want_grad, rtol=0, atol=0)
    assert not got_grad.any()


def test_hfs_shift_labels_argument_and_the_masked_lm_and_token_classification_losses():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 7, V, generator=g, dtype=torch.float64)
    labels = torch.randint(0, V, (2, 7), generator=g)
    labels[:, ::3] = -100
    shifted = torch.roll(labels, -1, 1)
    torch.testing.assert_close(lossreg_causal_lm_loss(logits, labels, V, shift_labels=shifted),
                               ForCausalLMLoss(logits, labels, V, shift_labels=shifted), rtol=0, atol=0)
    flat = lossreg.cross_entropy(logits.float().reshape(-1, V), labels.reshape(-1), reduction="sum") / 9
    torch.testing.assert_close(flat, ForMaskedLMLoss(logits, labels, V, num_items_in_batch=9), rtol=0, atol=0)
    cfg = LlamaConfig(num_labels=V)
    torch.testing.assert_close(lossreg.torch.CrossEntropyLoss()(logits.float().reshape(-1, V), labels.reshape(-1)),
                               ForTokenClassification(logits, labels, cfg), rtol=0, atol=0)


@pytest.mark.parametrize("shift", [False, True], ids=["no-shift", "shift"])
def test_trainers_label_smoother_is_lossregs_label_smoothing(shift):
    from transformers.trainer_pt_utils import LabelSmoother

    g = torch.Generator().manual_seed(12)
    logits = torch.randn(3, 8, 50, generator=g).requires_grad_()
    labels = torch.randint(0, 50, (3, 8), generator=g)
    labels[0, :5] = -100
    want = LabelSmoother(epsilon=0.1)({"logits": logits}, labels, shift_labels=shift)
    z, y = (logits[:, :-1], labels[:, 1:]) if shift else (logits, labels)
    got = lossreg.cross_entropy(z.reshape(-1, 50), y.reshape(-1), label_smoothing=0.1)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(torch.autograd.grad(got, logits)[0], torch.autograd.grad(want, logits)[0])


@pytest.mark.parametrize("kernels", [True, False], ids=["kernel", "portable"])
def test_question_answering_ignores_positions_past_the_sequence_as_hf_with_a_positive_ignore_index(kernels):
    # HF clamps out-of-range positions to the sequence length and ignores that class index (C, not -100).
    g = torch.Generator().manual_seed(2)
    start, end = (torch.randn(4, 10, generator=g, dtype=torch.float64).requires_grad_() for _ in range(2))
    sp, ep = torch.tensor([1, 12, 3, 10]), torch.tensor([[2], [5], [30], [9]])
    want = ForQuestionAnsweringLoss(start, end, sp, ep)
    with lossreg.use_kernels(kernels):
        got = (lossreg.cross_entropy(start, sp.clamp(0, 10), ignore_index=10)
               + lossreg.cross_entropy(end, ep.squeeze(-1).clamp(0, 10), ignore_index=10)) / 2
        got_grads = torch.autograd.grad(got, (start, end))
    torch.testing.assert_close(got, want)
    for a, b in zip(got_grads, torch.autograd.grad(want, (start, end))):
        torch.testing.assert_close(a, b)


def test_semantic_segmentation_ignores_255_with_and_without_num_items_in_batch():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 5, 8, 8, generator=g, dtype=torch.float64).requires_grad_()
    labels = torch.randint(0, 5, (2, 16, 16), generator=g)
    labels[0, :4] = 255
    up = F.interpolate(logits, size=(16, 16), mode="bilinear", align_corners=False)
    for nib, ours in ((None, lossreg.cross_entropy(up, labels, ignore_index=255)),
                      (torch.tensor(100), lossreg.cross_entropy(up, labels, ignore_index=255, reduction="sum") / 100)):
        want = ForSemanticSegmentationLoss(logits, labels, num_items_in_batch=nib)
        torch.testing.assert_close(ours, want, rtol=0, atol=0)
        torch.testing.assert_close(torch.autograd.grad(ours, logits, retain_graph=True)[0],
                                   torch.autograd.grad(want, logits)[0], rtol=0, atol=0)


@pytest.mark.parametrize("num_labels,labels", [
    (1, torch.randn(1)), (1, torch.randn(3)), (3, torch.tensor([0, 2, 1])),
    (3, torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]))],
    ids=["regression-batch-1", "regression", "single-label", "multi-label"])
def test_sequence_classification_problem_types_are_lossregs_mse_ce_and_bce_with_logits(num_labels, labels):
    cfg = LlamaConfig(num_labels=num_labels)
    pooled = torch.randn(labels.shape[0], num_labels, generator=torch.Generator().manual_seed(4)).requires_grad_()
    want = ForSequenceClassificationLoss(labels, pooled, cfg)
    got = {"regression": lambda: lossreg.mse_loss(pooled.squeeze(), labels.squeeze()),
           "single_label_classification": lambda: lossreg.cross_entropy(pooled.view(-1, num_labels), labels.view(-1)),
           "multi_label_classification": lambda: lossreg.binary_cross_entropy_with_logits(pooled, labels),
           }[cfg.problem_type]()
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(torch.autograd.grad(got, pooled)[0], torch.autograd.grad(want, pooled)[0], rtol=0, atol=0)


# --- tiny models trained with HF's loss and with lossreg's ---------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("make", [_tiny_llama, _tiny_gpt2], ids=["llama-tied", "gpt2"])
def test_a_model_whose_loss_function_is_lossregs_follows_hfs_parameters_step_by_step(make, dtype):
    theirs, ours = make(dtype), make(dtype)
    ours.loss_function = lossreg_causal_lm_loss
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-2) for m in (theirs, ours)]
    g = torch.Generator().manual_seed(5)
    for step in range(3):
        ids, mask, labels = _batch(g)
        kw = {"num_items_in_batch": _items(labels)} if step % 2 else {}
        losses = [m(input_ids=ids, attention_mask=mask, labels=labels, **kw).loss for m in (theirs, ours)]
        torch.testing.assert_close(losses[1], losses[0], rtol=0, atol=0)
        for opt, loss in zip(opts, losses):
            opt.zero_grad()
            loss.backward()
            opt.step()
        for (name, p), q in zip(theirs.named_parameters(), ours.parameters()):
            torch.testing.assert_close(q, p, rtol=0, atol=0, msg=f"step {step}: {name}")


@pytest.mark.parametrize("form", ["function", "module"])
@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_linear_cross_entropy_on_the_hidden_states_and_lm_head_weight_is_hfs_loss(tie, form):
    theirs, ours = _tiny_llama(tie=tie), _tiny_llama(tie=tie)
    assert (ours.lm_head.weight is ours.model.embed_tokens.weight) == tie
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-2) for m in (theirs, ours)]
    g = torch.Generator().manual_seed(6)
    for step in range(3):
        ids, mask, labels = _batch(g)
        nib = _items(labels) if step % 2 else None
        want = theirs(input_ids=ids, attention_mask=mask, labels=labels, num_items_in_batch=nib).loss
        h = ours.model(input_ids=ids, attention_mask=mask).last_hidden_state
        reduction = "mean" if nib is None else "sum"
        if form == "function":  # the user's shift: slices of the hidden states and labels
            got = lossreg.linear_cross_entropy(h[:, :-1], ours.lm_head.weight, labels[:, 1:], reduction=reduction)
        else:  # HF's shift, padding the labels, and a module that owns no layer, in chunks of 5 tokens
            loss = lossreg.torch.LinearCrossEntropyLoss(reduction=reduction, chunk_size=5)
            got = loss(h, ours.lm_head.weight, F.pad(labels, (0, 1), value=-100)[..., 1:])
        got = got if nib is None else got / nib
        torch.testing.assert_close(got, want)
        for opt, loss in zip(opts, (want, got)):
            opt.zero_grad()
            loss.backward()
        for (name, p), q in zip(theirs.named_parameters(), ours.parameters()):
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-7, msg=f"step {step}: {name}")
        for opt in opts:
            opt.step()


def test_trainer_with_lossregs_compute_loss_func_and_gradient_accumulation_gives_hfs_parameters():
    g = torch.Generator().manual_seed(7)
    data = []
    for i in range(8):
        ids = torch.randint(0, V, (12,), generator=g)
        labels = ids.clone()
        labels[:i] = -100
        if i == 3:
            labels[:] = -100  # a sample with nothing to learn
        data.append({"input_ids": ids, "labels": labels, "attention_mask": torch.ones_like(ids)})

    def compute_loss_func(outputs, labels, num_items_in_batch=None):
        return lossreg_causal_lm_loss(outputs.logits, labels, outputs.logits.shape[-1], num_items_in_batch)

    trained = []
    for func in (None, compute_loss_func):
        model = _tiny_llama()
        with tempfile.TemporaryDirectory() as out:
            args = TrainingArguments(output_dir=out, per_device_train_batch_size=2, gradient_accumulation_steps=2,
                                     max_steps=2, learning_rate=1e-2, report_to=[], use_cpu=True, save_strategy="no",
                                     seed=0, disable_tqdm=True, logging_steps=1)
            trainer = Trainer(model=model, args=args, train_dataset=data, compute_loss_func=func)
            result = trainer.train()
        trained.append((result.training_loss, [p.detach() for p in model.parameters()]))
    assert trained[0][0] == trained[1][0]
    for p, q in zip(trained[0][1], trained[1][1]):
        torch.testing.assert_close(q, p, rtol=0, atol=0)


def test_a_first_call_inside_torch_compile_fullgraph_after_lossreg_was_used_before_torch_was_imported():
    # Was: Dynamo's "Attempted to call function marked as skipped: import_module" (the deferred
    # torch kernel imported its module with importlib inside the traced call). A fresh process:
    # lossreg used on NumPy (its tables built before torch is imported), then a compiled HF-style loss.
    script = textwrap.dedent("""
        import numpy as np
        import lossreg
        lossreg.cross_entropy(np.zeros((2, 3)), np.array([0, 2]))
        import torch
        import torch.nn.functional as F
        import lossreg.torch

        smoothed = lossreg.torch.CrossEntropyLoss(label_smoothing=0.1)

        def loss(h, w, y):
            return lossreg.linear_cross_entropy(h, w, y) + lossreg.cross_entropy(h @ w.T, y) + smoothed(h @ w.T, y)

        h, w = torch.randn(6, 4, requires_grad=True), torch.randn(7, 4, requires_grad=True)
        y = torch.tensor([0, 1, 2, -100, 4, 6])
        got = torch.compile(loss, fullgraph=True, backend="aot_eager")(h, w, y)
        want = 2 * F.cross_entropy(h @ w.T, y) + F.cross_entropy(h @ w.T, y, label_smoothing=0.1)
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(torch.autograd.grad(got, (h, w)), torch.autograd.grad(want, (h, w)))
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


@pytest.mark.parametrize("mode", ["compiled", "autocast"])
def test_a_compiled_or_autocast_hf_training_step_with_lossregs_loss_is_hfs(mode):
    theirs, ours = _tiny_llama(), _tiny_llama()
    ours.loss_function = lossreg_causal_lm_loss
    run = [theirs, ours]
    if mode == "compiled":
        run = [torch.compile(m, backend="aot_eager", fullgraph=True) for m in run]
    g = torch.Generator().manual_seed(8)
    for step in range(2):
        ids, mask, labels = _batch(g)
        kw = {"num_items_in_batch": _items(labels)} if step else {}
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "autocast"):
            out = [m(input_ids=ids, attention_mask=mask, labels=labels, **kw) for m in run]
        if mode == "autocast":
            assert out[0].logits.dtype == torch.bfloat16
        torch.testing.assert_close(out[1].loss, out[0].loss, rtol=0, atol=0)
        for m, o in zip((theirs, ours), out):
            m.zero_grad()
            o.loss.backward()
        for (name, p), q in zip(theirs.named_parameters(), ours.parameters()):
            torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=0, msg=name)


# --- Cut Cross-Entropy --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("softcap", [None, 3.0], ids=["no-cap", "softcap-3"])
@pytest.mark.parametrize("ignore_index", [-100, 0])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shift", [False, True], ids=["no-shift", "shift"])
def test_cut_cross_entropys_linear_cross_entropy_is_lossregs_on_the_shifted_slices(shift, reduction, ignore_index,
                                                                                    softcap, dtype):
    g = torch.Generator().manual_seed(9)
    e = torch.randn(3, 9, 16, generator=g, dtype=dtype).requires_grad_()
    c = (torch.randn(130, 16, generator=g, dtype=dtype) * 0.3).requires_grad_()
    y = torch.randint(1, 130, (3, 9), generator=g)
    y[0, :4] = ignore_index
    y[2, 5:] = ignore_index
    # CCE's torch_compile implementation is its Python code under torch.compile(inductor): run
    # eagerly here (the same code, without minutes of compiling a graph per case).
    with torch.compiler.set_stance("force_eager"):
        want = cce_linear_cross_entropy(e, c, y, ignore_index=ignore_index, softcap=softcap, reduction=reduction,
                                        shift=shift, impl="torch_compile")
    e_in, y_in = (e[:, :-1], y[:, 1:]) if shift else (e, y)
    got = lossreg.linear_cross_entropy(e_in, c, y_in, ignore_index=ignore_index, softcap=softcap, reduction=reduction,
                                       chunk_size=4)
    assert want.dtype == torch.float32 and got.dtype == dtype  # CCE: float32 whatever the inputs
    assert got.shape == want.shape
    tol = {"rtol": 2e-6, "atol": 1e-5}  # CCE's cross-entropy runs in float32 even for float64 inputs
    torch.testing.assert_close(got.float(), want, **tol)
    cot = torch.randn(want.shape, generator=g)
    for a, b in zip(torch.autograd.grad(got, (e, c), cot.to(dtype)), torch.autograd.grad(want, (e, c), cot)):
        torch.testing.assert_close(a.float(), b.float(), **tol)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_every_token_ignored_is_cut_cross_entropys_nan_or_zero_with_zero_gradients(reduction):
    e = torch.randn(2, 5, 8).requires_grad_()
    c = torch.randn(20, 8).requires_grad_()
    y = torch.full((2, 5), -100)
    with torch.compiler.set_stance("force_eager"):
        want = cce_linear_cross_entropy(e, c, y, reduction=reduction, shift=True, impl="torch_compile")
    got = lossreg.linear_cross_entropy(e[:, :-1], c, y[:, 1:], reduction=reduction)
    torch.testing.assert_close(got, want, equal_nan=True)
    for grad in torch.autograd.grad(got.sum(), (e, c)):
        assert not grad.any()


# --- mixed precision ---------------------------------------------------------------------------------


def _lm_head(dtype=torch.float32):
    g = torch.Generator().manual_seed(10)
    h = torch.randn(64, 32, generator=g).to(dtype).requires_grad_()
    w = (torch.randn(500, 32, generator=g) * 0.5).to(dtype).requires_grad_()
    y = torch.randint(0, 500, (64,), generator=g)
    y[:5] = -100
    return h, w, y


def _under_autocast(loss, h, w, y, cot, compiled):
    fn = torch.compile(loss, backend="aot_eager", fullgraph=True) if compiled else loss
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = fn(h, w, y)
    return value, torch.autograd.grad(value, (h, w), cot.to(value.dtype))


@pytest.mark.parametrize("reduction", ["mean", "none"])  # "none": the gradients recomputed in the backward pass
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_linear_cross_entropy_under_autocast_is_the_float32_loss_of_bfloat16_inputs_eager_and_compiled(
        dtype, reduction):
    # torch under autocast runs F.linear on the bfloat16-rounded hidden states and weight and the
    # cross-entropy in float32 (a float32 result). lossreg does the same, with float32 logits (not
    # rounded to bfloat16 as torch's), eager and compiled alike. Was: compiled, the operator ran
    # with autocast off (a float32 product of the unrounded inputs), eager with its matmuls in bfloat16.
    def torchs(h, w, y):
        return F.cross_entropy(F.linear(h, w), y, reduction=reduction)

    def ours(h, w, y):
        return lossreg.linear_cross_entropy(h, w, y, reduction=reduction)

    h, w, y = _lm_head(dtype)
    rounded = [x.detach().bfloat16().double().requires_grad_() for x in (h, w)]
    exact = torchs(*rounded, y)
    cot = torch.rand(exact.shape, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    exact_grads = torch.autograd.grad(exact, rounded, cot)
    want, want_grads = _under_autocast(torchs, h, w, y, cot, compiled=False)
    results = [_under_autocast(ours, h, w, y, cot, compiled) for compiled in (False, True)]
    for got, got_grads in results:
        assert got.dtype == want.dtype == torch.float32
        torch.testing.assert_close(got.double(), exact, rtol=1e-5, atol=1e-5)  # torch: ~1e-3 off
        torch.testing.assert_close(got, want, rtol=2**-7, atol=0.05)
        for mine, theirs, ref in zip(got_grads, want_grads, exact_grads):
            assert mine.dtype == theirs.dtype == dtype
            scale = ref.abs().max()
            assert (mine.double() - ref).abs().max() <= 2**-8 * scale  # bfloat16's rounding of them
            assert (mine.double() - ref).abs().max() <= (theirs.double() - ref).abs().max()
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-6, atol=0)
