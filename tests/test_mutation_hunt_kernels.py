"""Behaviours of the torch kernels' decline and poison conditions that a mutation hunt found
unpinned (each test fails with the slip it is named for; see the notes of stops 42 and 43)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lossreg


def test_a_bce_target_of_another_shape_is_refused_not_broadcast():
    x = torch.tensor([[0.2, 0.7], [0.4, 0.9]], dtype=torch.float64)
    with pytest.raises(lossreg.LossValueError, match="target"):
        lossreg.binary_cross_entropy(x, torch.tensor([1.0, 0.0], dtype=torch.float64))


def test_poison_mode_keeps_a_bce_input_of_exactly_1_and_an_ignored_class_index():
    x = torch.tensor([0.2, 1.0, 0.0], dtype=torch.float64)
    t = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    torch.manual_seed(0)
    s, idx = torch.randn(3, 4, dtype=torch.float64), torch.tensor([0, -100, 2])
    with lossreg.value_checks("poison"):
        torch.testing.assert_close(lossreg.binary_cross_entropy(x, t, reduction="none"),
                                   F.binary_cross_entropy(x, t, reduction="none"))
        torch.testing.assert_close(lossreg.cross_entropy(s, idx, reduction="none"), F.cross_entropy(s, idx, reduction="none"))
        torch.testing.assert_close(lossreg.nll_loss(s, idx), F.nll_loss(s, idx))


def test_poison_mode_makes_a_ctc_label_equal_to_blank_nan_in_its_sample_only():
    torch.manual_seed(0)
    lp = torch.randn(6, 2, 4, dtype=torch.float64).log_softmax(2)
    with lossreg.value_checks("poison"):
        out = lossreg.ctc_loss(lp, torch.tensor([[1, 0, 2], [1, 2, 3]]), torch.tensor([6, 6]), torch.tensor([3, 3]),
                               reduction="none")
    assert torch.isnan(out[0]) and not torch.isnan(out[1])


def test_an_integer_pos_weight_is_a_type_error():
    x, t = torch.randn(3, dtype=torch.float64), torch.rand(3, dtype=torch.float64)
    with pytest.raises(lossreg.LossTypeError, match="pos_weight"):
        lossreg.binary_cross_entropy_with_logits(x, t, pos_weight=torch.tensor([2, 2, 2]))


@pytest.mark.parametrize("name", ["huber_loss", "multilabel_soft_margin_loss"])
def test_a_float64_weight_of_float32_input_promotes_on_the_kernel_as_off_it(name):
    x, y = torch.tensor([[1.0000001, 3.0, 0.3]]), torch.tensor([[1e-7, 0.0, 0.1]])
    if name == "multilabel_soft_margin_loss":
        y = torch.tensor([[1.0, 0.0, 1.0]])
    w = torch.tensor([[1.0, 0.5, 2.0]], dtype=torch.float64)
    if name == "multilabel_soft_margin_loss":
        w = w[0]
    got = getattr(lossreg, name)(x, y, weight=w, reduction="none")
    with lossreg.use_kernels(False):
        want = getattr(lossreg, name)(x, y, weight=w, reduction="none")
    assert got.dtype == want.dtype == torch.float64
    torch.testing.assert_close(got, want, rtol=1e-15, atol=0)


def test_multi_margin_mean_of_no_samples_is_nan_not_torchs_uninitialised_memory():
    assert torch.isnan(lossreg.multi_margin_loss(torch.zeros(0, 3, dtype=torch.float64),
                                                 torch.zeros(0, dtype=torch.long)))


def test_a_nan_margin_ranking_margin_is_refused():
    a, b = torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    with pytest.raises(lossreg.LossValueError, match="margin"):
        lossreg.margin_ranking_loss(a, b, torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64), margin=float("nan"))


def test_soft_margin_is_exact_past_softplus_threshold_20():
    x, y = torch.tensor([-21.0, -25.0, -30.0], dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    torch.testing.assert_close(lossreg.soft_margin_loss(x, y, reduction="none"), torch.log1p(torch.exp(-x * y)),
                               rtol=1e-15, atol=0)


def test_zero_dimensional_ctc_lengths_are_refused_for_a_batch_of_one():
    lp = torch.randn(5, 1, 4, dtype=torch.float64).log_softmax(2)
    with pytest.raises(lossreg.LossValueError, match="input_lengths"):
        lossreg.ctc_loss(lp, torch.tensor([[1, 2]]), torch.tensor(5), torch.tensor(2))


@pytest.mark.parametrize("kernels", [True, False])
def test_vmap_over_ctc_target_lengths_of_plain_targets_runs(kernels):
    torch.manual_seed(0)
    lp = torch.randn(5, 2, 4, dtype=torch.float64).log_softmax(2)
    with lossreg.use_kernels(kernels):
        out = torch.func.vmap(lambda tl: lossreg.ctc_loss(lp, torch.tensor([[1, 2], [1, 3]]), torch.tensor([5, 5]), tl))(
            torch.tensor([[2, 2], [1, 2]]))
    assert out.shape == (2,) and not torch.isnan(out).any()


@pytest.mark.parametrize("kernels", [True, False])
def test_half_precision_inputs_of_two_kinds_give_float32(kernels):
    a, b = torch.tensor([0.5, 1.5], dtype=torch.float16), torch.tensor([0.25, 1.0], dtype=torch.bfloat16)
    with lossreg.use_kernels(kernels):
        assert lossreg.mse_loss(a, b).dtype == torch.float32


def test_a_float16_array_of_the_other_byte_order_is_float16():
    got = lossreg.mse_loss(np.array([0.5, 1.5], ">f2"), np.array([0.25, 1.0], "<f2"), reduction="none")
    assert got.dtype == np.float16


def test_nested_grad_still_reads_and_checks_a_plain_target():
    x, t = torch.randn(3, 4, dtype=torch.float64), torch.tensor([0, 7, 2])
    with pytest.raises(lossreg.LossValueError, match="target"):
        torch.func.grad(torch.func.grad(lambda s: lossreg.cross_entropy(x * s, t)))(torch.tensor(1.0, dtype=torch.float64))


def test_smooth_l1_beta_beyond_float32_keeps_its_reciprocal_on_torch_without_kernels():
    d = torch.tensor([1.0, -3.0, 1e20], requires_grad=True)
    ref = d.detach().clone().requires_grad_()
    with lossreg.use_kernels(False):
        out = lossreg.smooth_l1_loss(d, torch.zeros(3), beta=1e39, reduction="none")
    assert out[2].item() == pytest.approx(5.0, rel=1e-6)
    want = F.smooth_l1_loss(ref, torch.zeros(3), beta=1e39, reduction="none")
    torch.testing.assert_close(torch.autograd.grad(out.sum(), d)[0], torch.autograd.grad(want.sum(), ref)[0],
                               rtol=1e-5, atol=0)


def test_multi_margin_p_traced_by_jax_is_a_lossreg_error():
    jax = pytest.importorskip("jax")
    x, y = jax.numpy.ones((2, 3)), jax.numpy.array([0, 1])
    with pytest.raises(lossreg.LossValueError, match="'p'"):
        jax.jit(lambda p: lossreg.multi_margin_loss(x, y, p=p))(2)


def _compiled(name):
    torch._dynamo.reset()
    return torch.compile(lambda *a: getattr(lossreg, name)(*a, reduction="none"), fullgraph=True, backend="aot_eager")


def test_compiled_bce_makes_a_target_outside_0_1_nan_in_its_element_only():
    # slip: the kernel's in-graph mask tests the input's range alone (or drops target >= 0): torch's
    # kernel then raises its own RuntimeError at run time instead of the poisoned element
    x = torch.tensor([0.3, 0.6, 0.2, 0.4], dtype=torch.float64)
    t = torch.tensor([1.5, -0.5, 1.0, 0.0], dtype=torch.float64)
    out = _compiled("binary_cross_entropy")(x, t)
    assert out.isnan().tolist() == [True, True, False, False]


@pytest.mark.parametrize("name", ["nll_loss", "cross_entropy"])
def test_compiled_class_index_equal_to_the_class_count_is_nan_in_its_element_only(name):
    # slip: the poison mask of _class_args tests target > C, not target >= C: torch's kernel then
    # raises "Target 4 is out of bounds" at run time
    torch.manual_seed(0)
    s = torch.randn(3, 4, dtype=torch.float64).log_softmax(1)
    out = _compiled(name)(s, torch.tensor([0, 4, 2]))
    assert out.isnan().tolist() == [False, True, False]


def _ctc_label_equal_to_c():
    torch.manual_seed(0)
    lp = torch.randn(6, 3, 4, dtype=torch.float64).log_softmax(2)
    return lp, torch.tensor([[1, 4, 2], [1, 2, 3], [2, 3, 1]]), torch.tensor([6, 6, 6]), torch.tensor([3, 3, 3])


def test_poison_mode_makes_a_ctc_label_equal_to_the_class_count_nan_in_its_sample_only():
    # slip: the kernel's in-graph label mask tests labels > C, not labels >= C: torch's CTC then
    # reads the label C and gives a finite number
    with lossreg.value_checks("poison"):
        out = lossreg.ctc_loss(*_ctc_label_equal_to_c(), reduction="none")
    assert out.isnan().tolist() == [True, False, False]


@pytest.mark.parametrize("which", ["input_lengths", "target_lengths"])
def test_poison_mode_makes_a_negative_ctc_length_nan_in_its_sample_only(which):
    # slip: the kernel's in-graph length mask drops il < 0 / tl < 0: the clamped length 0 then
    # gives torch's inf or a finite loss for that sample
    torch.manual_seed(0)
    lp = torch.randn(6, 3, 4, dtype=torch.float64).log_softmax(2)
    lengths = {"input_lengths": torch.tensor([6, 6, 6]), "target_lengths": torch.tensor([3, 2, 3])}
    lengths[which] = torch.tensor([-1, *lengths[which][1:].tolist()])
    with lossreg.value_checks("poison"):
        out = lossreg.ctc_loss(lp, torch.tensor([[1, 2, 2], [1, 2, 3], [2, 3, 1]]), lengths["input_lengths"],
                               lengths["target_lengths"], reduction="none")
    assert out.isnan().tolist() == [True, False, False]


def test_a_nan_multi_margin_margin_is_refused_on_the_kernel_path_too():
    # slip: multi_margin_loss's kernel drops its `-inf < margin < inf` decline: torch's kernel takes
    # margin=nan and returns 0 silently, where the portable path names the bad option
    x, y = torch.randn(3, 4, dtype=torch.float64), torch.tensor([0, 1, 2])
    with pytest.raises(lossreg.LossValueError, match="margin"):
        lossreg.multi_margin_loss(x, y, margin=float("nan"))
