"""Forward-mode and higher-order derivatives of every built-in loss, as a user of them asks for them.

A user who computes Hessians (Newton steps, Laplace approximations, influence functions),
Jacobians of unreduced losses, or Jacobian-vector products calls the loss inside
``torch.func.jvp``/``jacfwd``/``hessian``/``linearize``, ``torch.autograd.functional.hessian`` and
``jacobian(vectorize=True)``, ``torch.autograd.forward_ad`` dual tensors, ``gradgradcheck``,
``torch.func.vmap`` over ``jacrev``; or inside ``jax.jvp``/``jacfwd``/``hessian``/``linearize``
and nested ``jax.grad``, under ``jit`` and ``vmap``. Each must give what the same transform gives
through ``torch.nn.functional`` (float64). Where torch itself refuses a transform, lossreg may
refuse it too, or must give its own reverse-mode answer (forward and reverse mode agree).
``linear_cross_entropy``'s JAX kernel defines first derivatives by reverse mode only: forward mode
raises ``lossreg.UnsupportedError`` there (documented), and the portable path
(``use_kernels(False)``) gives the answer. Its torch kernel gives every mode torch's does (it
declines forward mode and nested ``grad``; ``create_graph=True`` recomputes through the portable
definition).

Points where a piecewise formula changes branch are checked against torch too: a Huber or
smooth-L1 residual of exactly 0 (the optimum) and exactly δ, and a logit of exactly 0 (a
zero-initialised classifier head) for ``binary_cross_entropy_with_logits``. torch's kernels of
the two Huber losses are torch's own; the portable formula, fast under ``jax.jit``, has the
documented second derivatives at δ (and on torch at 0) instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch_examples import BUILTIN, differentiable, example

import lossreg

jax = pytest.importorskip("jax")
jnp = jax.numpy

NAMES = sorted(BUILTIN)
TOL = {"rtol": 1e-7, "atol": 1e-10}
# Refusals a user may get where torch.nn.functional itself refuses the transform.
REFUSALS = (NotImplementedError, RuntimeError, lossreg.LossError)


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's notes on batching-rule fallbacks
        yield


def _problem(name: str, reduction: str = "mean", seed: int = 0) -> tuple[dict[str, np.ndarray], list[str], dict]:
    inputs, options = example(name, seed=seed)
    return inputs, differentiable(name, inputs), {**options, "reduction": reduction}


def _torch_loss(loss: Callable[..., Any], inputs: dict, diff: list[str], options: dict) -> Callable[..., Any]:
    """``loss`` as a function of its differentiable inputs alone (the others held)."""
    arrays = {k: torch.as_tensor(np.asarray(v)) for k, v in inputs.items()}
    opts = {k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}

    def f(*values: torch.Tensor) -> torch.Tensor:
        return loss(*{**arrays, **dict(zip(diff, values))}.values(), **opts)

    return f


def _primals(inputs: dict, diff: list[str]) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(1)
    primals = tuple(torch.as_tensor(np.asarray(inputs[k])).clone() for k in diff)
    return primals, tuple(torch.randn(p.shape, dtype=p.dtype, generator=g) for p in primals)


def _close(got: Any, want: Any, what: str) -> None:
    if isinstance(want, (tuple, list)):
        assert isinstance(got, (tuple, list)) and len(got) == len(want), what
        for a, b in zip(got, want):
            _close(a, b, what)
        return
    if isinstance(want, bool):  # gradgradcheck's verdict
        assert got is want, what
        return
    if want is None:  # torch.autograd.functional: None for an output that does not depend on an input
        assert got is None or not torch.as_tensor(np.asarray(got)).any(), what
        return
    if got is None:
        got = torch.zeros_like(want)
    got = got if isinstance(got, torch.Tensor) else torch.as_tensor(np.asarray(got))
    torch.testing.assert_close(got, want, **TOL, equal_nan=True, msg=lambda m: f"{what}: {m}")


def _check(what: str, ours: Callable[[], Any], theirs: Callable[[], Any], own_reverse: Callable[[], Any] | None) -> None:
    """Ours equals torch's; where torch refuses, ours refuses or equals its own reverse-mode answer."""
    try:
        want = theirs()
    except REFUSALS:
        try:
            got = ours()
        except REFUSALS:
            return
        if own_reverse is not None:
            _close(got, own_reverse(), f"{what} (torch refuses: against lossreg's reverse mode)")
        return
    _close(ours(), want, what)


def _dual(f: Callable[..., Any], primals: tuple, tangents: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    with fwAD.dual_level():
        out = fwAD.unpack_dual(f(*(fwAD.make_dual(p, t) for p, t in zip(primals, tangents))))
        return out.primal.clone(), out.tangent.clone()


def _jvp_by_reverse(f: Callable[..., Any], primals: tuple, tangents: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    jac = torch.func.jacrev(f, tuple(range(len(primals))))(*primals)
    out = f(*primals)
    tangent = sum((j.reshape(out.numel(), -1) @ t.reshape(-1)).reshape(out.shape) for j, t in zip(jac, tangents))
    return out, tangent


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "portable"])
@pytest.mark.parametrize("name", NAMES)
def test_torch_forward_mode_and_second_derivatives_match_torch_nn(name: str, kernels: bool) -> None:
    inputs, diff, options = _problem(name)
    ref = _torch_loss(getattr(F, name), inputs, diff, options)
    primals, tangents = _primals(inputs, diff)
    argnums = tuple(range(len(primals)))
    with lossreg.use_kernels(kernels):
        ours = _torch_loss(getattr(lossreg, name), inputs, diff, options)
        jacrev = lambda: torch.func.jacrev(ours, argnums)(*primals)  # noqa: E731
        hessrev = lambda: torch.func.jacrev(torch.func.jacrev(ours, argnums), argnums)(*primals)  # noqa: E731
        by_reverse = lambda: _jvp_by_reverse(ours, primals, tangents)  # noqa: E731
        _check("torch.func.jvp", lambda: torch.func.jvp(ours, primals, tangents),
               lambda: torch.func.jvp(ref, primals, tangents), by_reverse)
        _check("torch.func.jacfwd", lambda: torch.func.jacfwd(ours, argnums)(*primals),
               lambda: torch.func.jacfwd(ref, argnums)(*primals), jacrev)
        _check("forward_ad dual tensors", lambda: _dual(ours, primals, tangents), lambda: _dual(ref, primals, tangents),
               by_reverse)
        _check("torch.func.hessian", lambda: torch.func.hessian(ours, argnums)(*primals),
               lambda: torch.func.hessian(ref, argnums)(*primals), hessrev)
        _check("torch.autograd.functional.hessian(vectorize=True)",
               lambda: torch.autograd.functional.hessian(ours, primals, vectorize=True),
               lambda: torch.autograd.functional.hessian(ref, primals, vectorize=True), None)
        # First derivatives by reverse mode, vectorized: no refusal is documented here.
        _check("torch.autograd.functional.jacobian(vectorize=True)",
               lambda: torch.autograd.functional.jacobian(ours, primals, vectorize=True),
               lambda: torch.autograd.functional.jacobian(ref, primals, vectorize=True), None)
        _check("gradgradcheck", lambda: torch.autograd.gradgradcheck(ours, tuple(p.requires_grad_() for p in primals)),
               lambda: torch.autograd.gradgradcheck(ref, tuple(p.detach().requires_grad_() for p in primals)), None)


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "portable"])
@pytest.mark.parametrize("name", NAMES)
def test_torch_jacobians_of_unreduced_losses_and_per_sample_jacobians(name: str, kernels: bool) -> None:
    """jacfwd and vectorized jacobian of the unreduced loss; vmap over jacrev of three problems."""
    inputs, diff, options = _problem(name, "none")
    ref = _torch_loss(getattr(F, name), inputs, diff, options)
    primals, _ = _primals(inputs, diff)
    argnums = tuple(range(len(primals)))
    problems = [_problem(name, "none", seed) for seed in range(3)]
    stacked = tuple(torch.stack([torch.as_tensor(np.asarray(p[0][k])) for p in problems]) for k in diff)
    with lossreg.use_kernels(kernels):
        ours = _torch_loss(getattr(lossreg, name), inputs, diff, options)
        _check("torch.func.jacfwd of the unreduced loss", lambda: torch.func.jacfwd(ours, argnums)(*primals),
               lambda: torch.func.jacfwd(ref, argnums)(*primals), lambda: torch.func.jacrev(ours, argnums)(*primals))
        _check("torch.autograd.functional.jacobian(vectorize=True) of the unreduced loss",
               lambda: torch.autograd.functional.jacobian(ours, primals, vectorize=True),
               lambda: torch.autograd.functional.jacobian(ref, primals, vectorize=True), None)
        _check("vmap(jacrev)", lambda: torch.func.vmap(torch.func.jacrev(ours, argnums))(*stacked),
               lambda: torch.func.vmap(torch.func.jacrev(ref, argnums))(*stacked), None)


# torch.func.linearize records the jvp with make_fx, on real tensors that make_fx refuses to read: a
# value check that read them raised its "trying to get value out of a tracing tensor" (with kernels:
# ctc_loss, gaussian_nll_loss, linear_cross_entropy, multi_margin_loss and multilabel_margin_loss, whose
# forward mode is the portable definition's; without: the class-index and probability checks too).
@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "portable"])
@pytest.mark.parametrize("name", NAMES)
def test_torch_linearize_gives_the_jvp(name: str, kernels: bool) -> None:
    inputs, diff, options = _problem(name, "none")
    primals, tangents = _primals(inputs, diff)
    with lossreg.use_kernels(kernels):
        ours = _torch_loss(getattr(lossreg, name), inputs, diff, options)
        want = torch.func.jvp(ours, primals, tangents)
        value, jvp_of = torch.func.linearize(ours, *primals)
    _close((value, jvp_of(*tangents)), want, "torch.func.linearize")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_linear_cross_entropy_kernel_in_vectorized_reverse_mode_jacobians(reduction: str) -> None:
    """``jacobian(vectorize=True)`` and ``autograd.grad(is_grads_batched=True)`` batch the incoming
    gradient with torch's legacy vmap; the kernel's backward pass scaled its forward-made gradients
    in place by it and detached it (internal RuntimeErrors from vmap)."""
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(6, 4, dtype=torch.float64, generator=g)
    weight = torch.randn(5, 4, dtype=torch.float64, generator=g)
    target = torch.randint(0, 5, (6,), generator=g)
    # "mean" and "sum" scale the gradients made in the forward pass; "none" makes them in the backward pass.
    got = torch.autograd.functional.jacobian(
        lambda h, w: lossreg.linear_cross_entropy(h, w, target, reduction=reduction), (hidden, weight), vectorize=True)
    want = torch.autograd.functional.jacobian(
        lambda h, w: F.linear_cross_entropy(h, w, target, reduction=reduction), (hidden, weight), vectorize=True)
    _close(got, want, "jacobian(vectorize=True)")
    h = hidden.clone().requires_grad_()
    cotangents = torch.randn(3, *((6,) if reduction == "none" else ()), dtype=torch.float64, generator=g)
    got = torch.autograd.grad(lossreg.linear_cross_entropy(h, weight, target, reduction=reduction), h, cotangents,
                              is_grads_batched=True)[0]
    h_ref = hidden.clone().requires_grad_()
    want = torch.autograd.grad(F.linear_cross_entropy(h_ref, weight, target, reduction=reduction), h_ref, cotangents,
                               is_grads_batched=True)[0]
    _close(got, want, "autograd.grad(is_grads_batched=True)")


# Residuals at the optimum (0), exactly at the thresholds (±0.5, ±1), inside and outside.
RESIDUALS = [0.0, 0.5, -0.5, 0.2, 1.0, -1.0, -1.25, 3.0]
KINKS = [("huber_loss", {"delta": 0.5}), ("smooth_l1_loss", {"beta": 0.5}), ("smooth_l1_loss", {"beta": 1.0}),
         ("huber_loss", {"delta": 1.0})]


def _portable_second_derivatives(name: str, options: dict, x: np.ndarray, y: np.ndarray, want: torch.Tensor,
                                  torch_abs: bool) -> torch.Tensor:
    """torch's Hessian of the mean loss as the portable Huber formula has it (documented): at a
    residual of exactly δ (β) 1/4 of the inside's second derivative 1 (1/β), where torch's
    HuberLoss takes the inside's and its SmoothL1Loss the outside's 0; with torch's ``abs``
    (slope 0 at 0), 0 at a residual of 0."""
    if name not in ("huber_loss", "smooth_l1_loss"):
        return want
    bound = options.get("delta", options.get("beta", 1.0))
    inside = 1.0 if name == "huber_loss" else 1.0 / bound
    at = np.flatnonzero(np.abs(x - y) == bound)
    assert at.size, "the residuals include the threshold"
    want = want.clone()
    want[at, at] = inside / 4 / x.size
    if torch_abs:
        zero = np.flatnonzero(x == y)
        want[zero, zero] = 0.0
    return want


def _kink_inputs(name: str) -> tuple[np.ndarray, np.ndarray, dict]:
    if name == "binary_cross_entropy_with_logits":  # a zero-initialised head: logits of exactly 0
        return (np.array([[0.0, 0.0, 1.5], [-2.0, 0.0, 0.3]]), np.array([[0.3, 1.0, 0.0], [1.0, 0.0, 0.5]]),
                {"pos_weight": np.array([2.0, 0.5, 1.0]), "weight": np.array([1.0, 3.0, 0.5])})
    return np.array(RESIDUALS) + 1.0, np.ones(len(RESIDUALS)), {}


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "portable"])
@pytest.mark.parametrize(("name", "options"), [*KINKS, ("binary_cross_entropy_with_logits", {}),
                                               ("binary_cross_entropy_with_logits", {"arrays": True})])
def test_torch_hessian_where_the_formula_changes_branch(name: str, options: dict, kernels: bool) -> None:
    x, y, arrays = _kink_inputs(name)
    options = {k: v for k, v in options.items() if k != "arrays"} | \
        ({k: torch.as_tensor(v) for k, v in arrays.items()} if options.get("arrays") else {})
    target = torch.as_tensor(y)
    transforms = {
        "torch.func.hessian": lambda f, x: torch.func.hessian(f)(x),
        "jacrev(jacrev)": lambda f, x: torch.func.jacrev(torch.func.jacrev(f))(x),
        # torch's own double backward differs from its functorch formula at |d| = δ (Huber: 0, not 1)
        "torch.autograd.functional.hessian": torch.autograd.functional.hessian,
    }
    for what, transform in transforms.items():
        want = transform(lambda x: getattr(F, name)(x, target, **options), torch.as_tensor(x))
        if not kernels:  # torch's kernels are torch's own
            want = _portable_second_derivatives(name, options, x, y, want, torch_abs=True)
        with lossreg.use_kernels(kernels):
            got = transform(lambda x: getattr(lossreg, name)(x, target, **options), torch.as_tensor(x))
        _close(got, want, f"{what} of {name} {options}")
    # The first derivative keeps torch's conventions at those points.
    xt = torch.as_tensor(x).requires_grad_()
    xr = torch.as_tensor(x).requires_grad_()
    with lossreg.use_kernels(kernels):
        got = torch.autograd.grad(getattr(lossreg, name)(xt, target, **options), xt)[0]
    _close(got, torch.autograd.grad(getattr(F, name)(xr, target, **options), xr)[0], f"gradient of {name}")


def test_huber_and_smooth_l1_keep_torch_values_and_gradients_at_infinite_and_nan_residuals() -> None:
    x = torch.tensor([np.inf, -np.inf, np.nan, 0.0, 0.5], dtype=torch.float64)
    target = torch.zeros(5, dtype=torch.float64)
    for name, options in KINKS:
        for kernels in (True, False):
            ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
            with lossreg.use_kernels(kernels):
                got = getattr(lossreg, name)(ours, target, reduction="none", **options)
            want = getattr(F, name)(theirs, target, reduction="none", **options)
            _close(got, want, f"{name} {options}")
            _close(torch.autograd.grad(got.sum(), ours)[0], torch.autograd.grad(want.sum(), theirs)[0],
                   f"gradient of {name} {options}")


# ----------------------------------------------------------------------------------------- JAX


@pytest.fixture
def x64() -> Iterator[None]:
    with jax.enable_x64(True):
        yield


def _jax_loss(name: str, inputs: dict, diff: list[str], options: dict) -> Callable[..., Any]:
    arrays = {k: jnp.asarray(np.asarray(v)) for k, v in inputs.items()}
    opts = {k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    loss = getattr(lossreg, name)

    def f(*values: Any) -> Any:
        return loss(*{**arrays, **dict(zip(diff, values))}.values(), **opts)

    return f


def _torch_answers(name: str, inputs: dict, diff: list[str], options: dict) -> dict[str, Any]:
    """torch.nn.functional's jvp, Jacobian and Hessian; torch.func's reverse mode where torch's
    forward mode is not implemented (its CTC and margin losses), None where neither is."""
    f = _torch_loss(getattr(F, name), inputs, diff, options)
    primals, tangents = _primals(inputs, diff)
    argnums = tuple(range(len(primals)))
    answers: dict[str, Any] = {"primals": primals, "tangents": tangents}
    try:
        answers["jvp"] = torch.func.jvp(f, primals, tangents)
    except REFUSALS:
        answers["jvp"] = _jvp_by_reverse(f, primals, tangents)
    answers["jacobian"] = torch.func.jacrev(f, argnums)(*primals)
    try:
        answers["hessian"] = torch.func.jacrev(torch.func.jacrev(f, argnums), argnums)(*primals)
    except REFUSALS:
        answers["hessian"] = None
    return answers


@pytest.mark.parametrize("name", NAMES)
def test_jax_forward_mode_and_hessian_match_torch_nn(name: str, x64: None) -> None:
    """On the default path (JAX kernels): jvp, linearize, jacfwd under jit, hessian under jit,
    grad of grad; ``linear_cross_entropy``'s kernel (a custom_vjp) refuses forward mode as the
    README says (a lossreg.UnsupportedError naming the way out, not JAX's bare TypeError), and
    its Hessian (forward over reverse) is torch's."""
    inputs, diff, options = _problem(name)
    want = _torch_answers(name, inputs, diff, options)
    f = _jax_loss(name, inputs, diff, options)
    primals = [jnp.asarray(p.numpy()) for p in want["primals"]]
    tangents = [jnp.asarray(t.numpy()) for t in want["tangents"]]
    argnums = tuple(range(len(primals)))
    forward = [
        ("jax.jvp", lambda: jax.jvp(f, primals, tangents), want["jvp"]),
        ("jax.linearize", lambda: (lambda out, lin: (out, lin(*tangents)))(*jax.linearize(f, *primals)), want["jvp"]),
        ("jit(jacfwd)", lambda: jax.jit(jax.jacfwd(f, argnums))(*primals), want["jacobian"]),
    ]
    for what, ours, expected in forward:
        if name == "linear_cross_entropy" and what == "jax.linearize":
            # documented: linearize applies the forward mode when its linear function is called,
            # outside lossreg, so JAX's own refusal is what comes
            with pytest.raises(TypeError, match="forward-mode autodiff.*custom_vjp"):
                ours()
        elif name == "linear_cross_entropy":  # documented (see the last test)
            with pytest.raises(lossreg.UnsupportedError, match=r"linear_cross_entropy: the JAX kernel gives first "
                               r"derivatives by reverse mode only .*use_kernels\(False\)"):
                ours()
        else:
            _close([np.asarray(a) for a in ours()], expected, what)
    if want["hessian"] is not None:
        _close(jax.jit(jax.hessian(f, argnums))(*primals), want["hessian"], "jit(hessian)")
        # grad of grad of a scalar reduction: the Hessian-vector product along the first tangent
        v = tangents[0]
        hvp = jax.grad(lambda x: jnp.sum(jax.grad(f)(x, *primals[1:]) * v))(primals[0])
        h = want["hessian"][0][0].reshape(primals[0].size, primals[0].size)
        _close(hvp, (h @ want["tangents"][0].reshape(-1)).reshape(primals[0].shape), "grad(grad)")


# ctc_loss's portable recursion is a Python loop over the frames, which JAX unrolls (seconds to
# compile); its JAX kernel (a lax.scan) is checked in forward mode above.
@pytest.mark.parametrize("name", [n for n in NAMES if n != "ctc_loss"])
def test_jax_portable_path_in_forward_mode_matches_torch_nn(name: str, x64: None) -> None:
    """With the kernels off: jvp under jit, and vmap of jacfwd against the loop over three problems."""
    inputs, diff, options = _problem(name)
    want = _torch_answers(name, inputs, diff, options)
    primals = [jnp.asarray(p.numpy()) for p in want["primals"]]
    tangents = [jnp.asarray(t.numpy()) for t in want["tangents"]]
    argnums = tuple(range(len(primals)))
    with lossreg.use_kernels(False):
        f = _jax_loss(name, inputs, diff, options)
        _close([np.asarray(a) for a in jax.jit(lambda p, t: jax.jvp(f, p, t))(primals, tangents)], want["jvp"],
               "jit(jvp)")
        problems = [_problem(name, seed=seed) for seed in range(3)]
        stacked = [jnp.stack([jnp.asarray(p[0][k]) for p in problems]) for k in diff]
        got = jax.vmap(jax.jacfwd(f, argnums))(*stacked)
    for i, p in enumerate(problems):
        torch_f = _torch_loss(getattr(F, name), inputs, diff, options)  # problem 0's other inputs, as f
        expected = torch.func.jacrev(torch_f, argnums)(*(torch.as_tensor(np.asarray(p[0][k])) for k in diff))
        _close([np.asarray(g[i]) for g in got], expected, f"vmap(jacfwd), problem {i}")


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "portable"])
@pytest.mark.parametrize(("name", "options"), [*KINKS, ("binary_cross_entropy_with_logits", {"arrays": True})])
def test_jax_hessian_where_the_formula_changes_branch(name: str, options: dict, kernels: bool, x64: None) -> None:
    x, y, arrays = _kink_inputs(name)
    use_arrays = options.get("arrays", False)
    options = {k: v for k, v in options.items() if k != "arrays"}
    t_opts = {**options, **({k: torch.as_tensor(v) for k, v in arrays.items()} if use_arrays else {})}
    j_opts = {**options, **({k: jnp.asarray(v) for k, v in arrays.items()} if use_arrays else {})}
    want = torch.func.hessian(lambda x: getattr(F, name)(x, torch.as_tensor(y), **t_opts))(torch.as_tensor(x))
    want = _portable_second_derivatives(name, options, x, y, want, torch_abs=False)
    with lossreg.use_kernels(kernels):
        loss = lambda x: getattr(lossreg, name)(x, jnp.asarray(y), **j_opts)  # noqa: E731
        _close(jax.jit(jax.hessian(loss))(jnp.asarray(x)), want, f"jit(hessian) of {name} {options}")
        _close(jax.jacfwd(jax.grad(loss))(jnp.asarray(x)), want, f"jacfwd(grad) of {name} {options}")


def test_jax_linear_cross_entropy_forward_mode_on_the_portable_path(x64: None) -> None:
    """The JAX kernel (a custom_vjp) refuses forward mode with lossreg's UnsupportedError, naming
    the loss and the way out, as torch's kernel does (JAX's own TypeError named neither);
    ``use_kernels(False)`` gives the unfused cross-entropy's forward-mode answer."""
    rng = np.random.default_rng(0)
    h, w = jnp.asarray(rng.standard_normal((6, 4))), jnp.asarray(rng.standard_normal((5, 4)))
    t = jnp.asarray(rng.integers(0, 5, 6))
    dh = jnp.asarray(rng.standard_normal((6, 4)))
    with pytest.raises(lossreg.UnsupportedError, match=r"^linear_cross_entropy: .*lossreg.use_kernels\(False\)"):
        jax.jvp(lambda x: lossreg.linear_cross_entropy(x, w, t), (h,), (dh,))
    with lossreg.use_kernels(False):
        got = jax.jvp(lambda x: lossreg.linear_cross_entropy(x, w, t), (h,), (dh,))
    unfused = lambda x: -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(x @ w.T), t[:, None], 1))  # noqa: E731
    _close([np.asarray(a) for a in got], [torch.as_tensor(np.asarray(a)) for a in jax.jvp(unfused, (h,), (dh,))],
           "portable jvp")


def test_jax_linear_cross_entropy_gradient_of_a_jvp_is_lossregs_refusal_too(x64: None) -> None:
    """Reverse mode over forward mode (``jax.grad`` or ``jax.vjp`` of a function taking a ``jax.jvp``
    of the loss, with or without ``jit``) meets the kernel's custom VJP in forward mode as well: it is
    the same UnsupportedError (JAX's own was a NotImplementedError, "Differentiation rule for
    'custom_lin' not implemented", naming neither the loss nor the way out), and
    ``use_kernels(False)`` gives the unfused cross-entropy's answer."""
    rng = np.random.default_rng(0)
    h, w = jnp.asarray(rng.standard_normal((6, 4))), jnp.asarray(rng.standard_normal((5, 4)))
    t = jnp.asarray(rng.integers(0, 5, 6))
    dh = jnp.asarray(rng.standard_normal((6, 4)))
    directional = lambda x: jax.jvp(lambda y: lossreg.linear_cross_entropy(y, w, t), (x,), (dh,))[1]  # noqa: E731
    for transform in (jax.grad, lambda f: jax.jit(jax.grad(f)), lambda f: lambda x: jax.vjp(f, x)[1](1.0)):
        with pytest.raises(lossreg.UnsupportedError, match=r"^linear_cross_entropy: .*lossreg.use_kernels\(False\)"):
            transform(directional)(h)
    with lossreg.use_kernels(False):
        got = jax.grad(directional)(h)
    unfused = lambda x: -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(x @ w.T), t[:, None], 1))  # noqa: E731
    want = jax.grad(lambda x: jax.jvp(unfused, (x,), (dh,))[1])(h)
    _close(np.asarray(got), torch.as_tensor(np.asarray(want)), "portable gradient of a jvp")
