"""Drop-in for torch.nn.functional: every input form torch documents gives torch's value and gradients.

Each row is one documented form (shapes, argument types) of one loss, called through lossreg's
default path (kernels included) and through ``torch.nn.functional`` on the same float64
tensors. The forms torch accepts only by broadcasting (or truncating) silently stay errors in
lossreg; the second table checks that each is a clear lossreg error, as listed in the README.
So do integer targets of the pointwise losses that compare values, which torch promotes to
floats (MSELoss, L1Loss, SmoothL1Loss, the Poisson loss): the conformance cases make them a
``LossTypeError`` (a contract of the catalogue, ``conformance/golden``), kept here. Integer
*labels* (±1, multi-hot 0/1) are exact as floats and are taken as torch takes them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lossreg

D = torch.float64


def r(*shape: int) -> torch.Tensor:
    return torch.randn(shape, dtype=D)


def u(*shape: int) -> torch.Tensor:
    return torch.rand(shape, dtype=D) * 0.9 + 0.05


def i(*values: Any) -> torch.Tensor:
    """A tensor of ``values``; a single number gives a 0-d tensor."""
    return torch.tensor(values[0] if len(values) == 1 else values)


def log_probs(*shape: int) -> torch.Tensor:
    return r(*shape).log_softmax(-1)


# (loss, documented form, arrays, options)
FORMS: list[tuple[str, str, Callable[[], tuple], dict[str, Any]]] = [
    ("ctc_loss", "lengths as lists", lambda: (log_probs(6, 2, 5), i([1, 2, 3], [4, 1, 0]), [6, 5], [3, 2]), {}),
    ("ctc_loss", "lengths as tuples", lambda: (log_probs(6, 2, 5), i([1, 2, 3], [4, 1, 0]), (6, 5), (3, 2)), {}),
    ("ctc_loss", "lengths as lists of NumPy ints (list(array))",
     lambda: (log_probs(6, 2, 5), i([1, 2, 3], [4, 1, 0]), list(np.array([6, 5])), list(np.array([3, 2]))), {}),
    ("ctc_loss", "concatenated targets, list lengths", lambda: (log_probs(6, 2, 5), i(1, 2, 3, 4, 1), [6, 6], [3, 2]),
     {"reduction": "sum"}),
    ("ctc_loss", "unbatched, tuple lengths", lambda: (log_probs(6, 5), i(1, 2, 2), (6,), (3,)), {}),
    ("ctc_loss", "unbatched, 0-d lengths", lambda: (log_probs(6, 5), i(1, 2, 2), i(6), i(3)), {"reduction": "none"}),
    ("ctc_loss", "int32 lengths", lambda: (log_probs(6, 2, 5), i([1, 2], [3, 0]), i(6, 4).int(), i(2, 1).int()), {}),
    ("cross_entropy", "unbatched (C), 0-d target", lambda: (r(4), i(2)), {}),
    ("cross_entropy", "K-dimensional", lambda: (r(2, 4, 3, 2), torch.randint(0, 4, (2, 3, 2))), {"weight": u(4)}),
    ("cross_entropy", "probability targets", lambda: (r(3, 4), u(3, 4).softmax(-1)), {"label_smoothing": 0.1}),
    ("cross_entropy", "uint8 targets", lambda: (r(3, 4), i(0, 3, 1).to(torch.uint8)), {}),
    ("nll_loss", "unbatched (C), 0-d target", lambda: (log_probs(4), i(1)), {}),
    ("nll_loss", "K-dimensional, ignore_index", lambda: (log_probs(2, 3, 4).transpose(1, 2).contiguous(),
                                                         i([0, 2, 1], [1, 1, -100])), {}),
    ("binary_cross_entropy", "0-d", lambda: (u(), u()), {}),
    ("binary_cross_entropy", "weight broadcast over the batch", lambda: (u(3, 4), u(3, 4)), {"weight": u(4)}),
    ("binary_cross_entropy_with_logits", "pos_weight per class", lambda: (r(3, 4), u(3, 4)), {"pos_weight": u(4)}),
    ("smooth_l1_loss", "beta=0", lambda: (r(5), r(5)), {"beta": 0.0}),
    ("soft_margin_loss", "±1 labels", lambda: (r(2, 3), i([1.0, -1.0, 1.0], [-1.0, -1.0, 1.0]).double()), {}),
    ("multilabel_soft_margin_loss", "(C) unbatched, weight", lambda: (r(3), i(1.0, 0.0, 1.0).double()), {"weight": u(3)}),
    ("poisson_nll_loss", "counts, full", lambda: (r(4), i(0.0, 1.0, 3.0, 7.0).double()), {"full": True}),
    ("huber_loss", "0-d", lambda: (r(), r()), {"delta": 0.5}),
    ("poisson_nll_loss", "rates, not log-rates", lambda: (u(4), u(4) * 5), {"log_input": False}),
    ("gaussian_nll_loss", "var of the input's shape", lambda: (r(3, 2), r(3, 2), u(3, 2)), {}),
    ("gaussian_nll_loss", "var (N, 1)", lambda: (r(3, 2), r(3, 2), u(3, 1)), {}),
    ("gaussian_nll_loss", "var (N): one per sample", lambda: (r(3, 2), r(3, 2), u(3)), {"full": True}),
    ("gaussian_nll_loss", "var a Python float", lambda: (r(3, 2), r(3, 2), 0.7), {}),
    ("gaussian_nll_loss", "var 0-d for unbatched input", lambda: (r(4), r(4), u()), {}),
    ("gaussian_nll_loss", "target (N, 1)", lambda: (r(3, 2), r(3, 1), u(3, 2)), {}),
    ("kl_div", "log_target, batchmean", lambda: (log_probs(3, 4), log_probs(3, 4)),
     {"log_target": True, "reduction": "batchmean"}),
    ("margin_ranking_loss", "0-d", lambda: (r(), r(), i(1.0).double()), {"margin": 0.2}),
    ("margin_ranking_loss", "integer labels", lambda: (r(4), r(4), i(1, -1, 1, -1)), {}),
    ("hinge_embedding_loss", "integer labels", lambda: (r(2, 3), i([1, -1, 1], [-1, 1, 1])), {"margin": 0.5}),
    ("soft_margin_loss", "integer ±1 labels", lambda: (r(3), i(1, -1, 1)), {}),
    ("multilabel_soft_margin_loss", "integer multi-hot labels, as torch's own tests pass them",
     lambda: (r(2, 3), i([1, 0, 1], [0, 0, 1])), {"reduction": "none"}),
    ("multi_margin_loss", "unbatched (C), 0-d target", lambda: (r(4), i(2)), {}),
    ("multi_margin_loss", "unbatched (C), (1) target, as torch's own tests pass it", lambda: (r(4), i([2])),
     {"p": 2, "reduction": "none"}),
    ("multi_margin_loss", "one score (0-d), as torch's own tests pass it", lambda: (r(), i(0)), {}),
    ("multi_margin_loss", "a batch of one (1, C) with a 0-d target: a 0-d loss", lambda: (r(1, 4), i(2)),
     {"reduction": "none", "weight": u(4)}),
    ("multilabel_margin_loss", "one score (0-d), as torch's own tests pass it", lambda: (r(), i(0)), {}),
    ("multi_margin_loss", "p=2, weight", lambda: (r(3, 4), i(0, 3, 1)), {"p": 2, "weight": u(4), "margin": 0.5}),
    ("multilabel_margin_loss", "unbatched (C)", lambda: (r(4), i(3, 0, -1, 1)), {}),
    ("cosine_embedding_loss", "unbatched (D), 0-d target", lambda: (r(5), r(5), i(-1)), {"margin": 0.1}),
    ("triplet_margin_loss", "unbatched (D), swap, p=1", lambda: (r(5), r(5), r(5)), {"swap": True, "p": 1.0}),
    ("triplet_margin_with_distance_loss", "unbatched (D)", lambda: (r(5), r(5), r(5)), {}),
]


def _leaves(name: str, arrays: tuple) -> tuple:
    """Fresh copies of ``arrays``; those the loss differentiates (its spec says which) require grad."""
    wanted = lossreg.spec(name).differentiable
    return tuple(a.detach().clone().requires_grad_(True) if isinstance(a, torch.Tensor) and a.dtype == D
                 and key in wanted else a for key, a in zip(lossreg.spec(name).inputs, arrays))


@pytest.mark.parametrize(("name", "form", "make", "options"), FORMS, ids=[f"{n}: {f}" for n, f, _, _ in FORMS])
def test_documented_form_gives_torchs_value_and_gradients(name: str, form: str, make: Callable[[], tuple],
                                                         options: dict[str, Any]) -> None:
    torch.manual_seed(0)
    arrays = make()
    ours, theirs = _leaves(name, arrays), _leaves(name, arrays)
    got = getattr(lossreg, name)(*ours, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = getattr(F, name)(*theirs, **options)
    torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-10)
    leaves = [k for k, a in enumerate(theirs) if isinstance(a, torch.Tensor) and a.requires_grad]
    g_got = torch.autograd.grad(got.sum(), [ours[k] for k in leaves], allow_unused=True)
    g_want = torch.autograd.grad(want.sum(), [theirs[k] for k in leaves], allow_unused=True)
    for k, a, b in zip(leaves, g_got, g_want):
        a = torch.zeros_like(ours[k]) if a is None else a
        b = torch.zeros_like(ours[k]) if b is None else b
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-10, equal_nan=True,
                                   msg=lambda m: f"gradient of argument {k}: {m}")


# (loss, what torch does silently, arrays, options, argument named by the error)
REFUSED: list[tuple[str, str, Callable[[], tuple], dict[str, Any], str]] = [
    ("mse_loss", "broadcasts (3, 1) to (3, 2)", lambda: (r(3, 2), r(3, 1)), {}, "target"),
    ("l1_loss", "broadcasts (2,) to (3, 2)", lambda: (r(3, 2), r(2)), {}, "target"),
    ("smooth_l1_loss", "broadcasts (3, 1) to (3, 2)", lambda: (r(3, 2), r(3, 1)), {}, "target"),
    ("huber_loss", "broadcasts (3, 1) to (3, 2)", lambda: (r(3, 2), r(3, 1)), {}, "target"),
    ("kl_div", "broadcasts (1, 4) to (3, 4)", lambda: (log_probs(3, 4), u(1, 4)), {}, "target"),
    ("poisson_nll_loss", "broadcasts (3, 1) to (3, 2)", lambda: (r(3, 2), u(3, 1)), {}, "target"),
    ("soft_margin_loss", "broadcasts (1, 2) to (3, 2)", lambda: (r(3, 2), i([1.0, -1.0]).double()), {}, "target"),
    ("gaussian_nll_loss", "broadcasts the input (3, 1) up to a target (3, 2)", lambda: (r(3, 1), r(3, 2), u(3, 1)), {},
     "target"),
    ("mse_loss", "promotes an integer target", lambda: (r(3), i(1, 0, 2)), {}, "target"),
    ("poisson_nll_loss", "promotes integer counts", lambda: (r(3), i(0, 1, 3)), {}, "target"),
    ("ctc_loss", "truncates float targets to integers", lambda: (log_probs(6, 2, 5), i([1.5, 2.0], [3.0, 1.0]).double(),
                                                               [6, 6], [2, 2]), {}, "targets"),
]


@pytest.mark.parametrize(("name", "silently", "make", "options", "argument"), REFUSED,
                         ids=[f"{n}: {s}" for n, s, *_ in REFUSED])
def test_what_torch_does_silently_is_a_clear_error(name: str, silently: str, make: Callable[[], tuple],
                                                   options: dict[str, Any], argument: str) -> None:
    arrays = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        getattr(F, name)(*arrays, **options)  # torch answers something
    with pytest.raises(lossreg.LossError, match=f"{name}: argument '{argument}'"):
        getattr(lossreg, name)(*arrays, **options)
