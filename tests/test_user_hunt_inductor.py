"""A user-style hunt: a PyTorch engineer who trains with ``torch.compile`` on its default backend
(inductor), with lossreg's modules (``lossreg.torch``) or functional forms in the model or the
training step, checked against the same code written with ``torch.nn`` and compiled the same way.

What the file pins (each lossreg count against torch.nn's, measured in the same run):

- recompilations and graph breaks, counted with Dynamo's ``CompileCounter`` (cheap) over ten steps:
  batch sizes changing every step (automatic dynamic shapes; ``dynamic=True`` and
  ``mark_dynamic`` under ``LOSSREG_SLOW=1``), for the losses of torch.nn a training loop uses:
  lossreg never breaks the graph and compiles no more often than torch.nn (torch.nn's ``CTCLoss``
  and ``GaussianNLLLoss`` break it; lossreg's compile); values and gradients are torch.nn's;
- ``dynamic=True`` with the number of classes changing: one compile, as torch.nn's (the bug found:
  the margin losses and cross-entropy's portable definition formatted their checks' messages,
  which quote C, before checking, and that made C a constant of the graph);
- a ``CrossEntropyLoss(weight, ignore_index, label_smoothing)`` training loop: a varying number of
  ignored labels, all-ignored batches, train/eval switching and ``torch.no_grad()`` evaluation
  compile as often as torch.nn's; a ``label_smoothing`` changed every step recompiles every step
  in both (a Python float Dynamo specialises on, up to its recompile limit), and lossreg's value
  follows the schedule as torch's does;
- bad input inside a compiled function: without ``fullgraph`` lossreg's own error (its class and
  message, as eager code raises it); under ``fullgraph=True``, Dynamo's "Observed exception"
  naming lossreg's error (``LossValueError('cross_entropy', 'target', ...)``). The bug found:
  Dynamo could not trace the errors' constructor (``super().__init__`` of a builtin exception), so
  every bad input under ``fullgraph=True`` gave ``Attempted to call a super() attribute that is
  not a function or method`` and said nothing of the input; with ``dynamic=True`` two of the
  error paths also stopped Dynamo (a concatenation of two f-strings holding symbolic sizes, a
  ``hasattr`` asked of a symbolic float option);
- weight buffers changed after compiling (in place, replaced, ``load_state_dict``, ``.double()``)
  are read by the compiled loss, with torch.nn's recompilations;
- the second bug found: with lossreg's registry loaded before torch was imported (NumPy use of a
  loss first, or lossreg's own pytest plugin), the torch kernels load on their first call; traced
  by torch.compile, that call made the graph guard on the kernel being unloaded, so every loss
  recompiled on its second compiled call (one more inductor compile each);
- inductor itself: a compiled training step with ``optimizer.step()`` inside follows torch.nn's
  compiled step exactly (losses and parameters, float32); ``torch.export.export`` +
  ``run_decompositions()`` of a model holding a loss gives eager's value at another batch size.
  ``LOSSREG_SLOW=1`` widens it: more losses and float64, ``mode="reduce-overhead"`` on the CPU,
  ``options={"max_autotune": False}``, compiled autograd, AOTInductor.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch._dynamo
from torch import nn
from torch._dynamo.testing import CompileCounter
from torch._dynamo.utils import counters

import lossreg
import lossreg.torch as lt

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
SLOW = os.environ.get("LOSSREG_SLOW", "0") == "1"
D = torch.float64
W5 = [1.0, 2.0, 0.5, 1.0, 3.0]


@pytest.fixture(autouse=True)
def _quiet() -> Any:
    import torch._inductor.config

    torch._dynamo.reset()
    with warnings.catch_warnings(), torch._inductor.config.patch(compile_threads=1):
        warnings.simplefilter("ignore")  # Dynamo's recompile-limit warning, notes on lru_caches
        yield
    torch._dynamo.reset()


# --- inputs a training loop gives each loss: batch size n, draw i ----------------------------------

def _inputs(name: str, n: int, i: int, dtype: torch.dtype = D) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(i)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, dtype=dtype, generator=g)

    def labels(*shape: int) -> torch.Tensor:
        return torch.randint(0, 5, shape, generator=g)

    def u(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, dtype=dtype, generator=g)

    if name == "CTCLoss":  # T = 12 frames (lossreg compiles one graph per T: README); 3 labels at most, so
        # that no size of the first batch (4) equals another (Dynamo's duck sizing would tie them)
        lengths = torch.randint(1, 4, (n,), generator=g)
        return [torch.log_softmax(r(12, n, 5), 2), torch.randint(1, 5, (n, 3), generator=g),
                torch.full((n,), 12, dtype=torch.long), lengths]
    return {
        "CrossEntropyLoss": lambda: [r(n, 5), labels(n)],
        "BCEWithLogitsLoss": lambda: [r(n, 5), u(n, 5)],
        "MSELoss": lambda: [r(n, 5), r(n, 5)],
        "HuberLoss": lambda: [r(n, 5), r(n, 5)],
        "NLLLoss": lambda: [torch.log_softmax(r(n, 5, 3, 4), 1), labels(n, 3, 4)],
        "KLDivLoss": lambda: [torch.log_softmax(r(n, 5), 1), torch.log_softmax(r(n, 5), 1)],
        "TripletMarginLoss": lambda: [r(n, 5), r(n, 5), r(n, 5)],
        "CosineEmbeddingLoss": lambda: [r(n, 5), r(n, 5), labels(n) % 2 * 2 - 1],
        "MultiMarginLoss": lambda: [r(n, 5), labels(n)],
        "GaussianNLLLoss": lambda: [r(n, 5), r(n, 5), u(n, 5) + 0.1],
        "BCELoss": lambda: [torch.sigmoid(r(n, 5)), u(n, 5)],
        "SmoothL1Loss": lambda: [r(n, 5), r(n, 5)],
    }[name]()


def _options(name: str, dtype: torch.dtype = D) -> dict[str, Any]:
    w = torch.tensor(W5, dtype=dtype)
    return {
        "CrossEntropyLoss": {"weight": w, "ignore_index": 2, "label_smoothing": 0.1},
        "BCEWithLogitsLoss": {"pos_weight": w},
        "HuberLoss": {"delta": 0.5},
        "NLLLoss": {"weight": w, "ignore_index": 1},
        "KLDivLoss": {"reduction": "batchmean", "log_target": True},
        "TripletMarginLoss": {"margin": 0.5},
        "CosineEmbeddingLoss": {"margin": 0.2},
        "MultiMarginLoss": {"p": 2, "margin": 0.5, "weight": w},
        "CTCLoss": {"zero_infinity": True},
        "SmoothL1Loss": {"beta": 0.5},
    }.get(name, {})


CI_LOSSES = ["CrossEntropyLoss", "BCEWithLogitsLoss", "MSELoss", "HuberLoss", "NLLLoss", "KLDivLoss",
             "TripletMarginLoss", "CosineEmbeddingLoss", "MultiMarginLoss", "CTCLoss", "GaussianNLLLoss"]
TORCH_BREAKS = {"CTCLoss", "GaussianNLLLoss"}  # torch.nn's break the graph (a data-dependent shape, a check)
SIZES = [4, 5, 6, 7, 8, 9, 10, 11, 12, 13]


def _counted(step: Callable[..., Any], calls: list[Callable[[Callable[..., Any]], Any]],
             **compile_kw: Any) -> tuple[int, int, list[Any]]:
    """Frames compiled, graph breaks and results of ``calls`` made on ``step`` compiled with a counter."""
    torch._dynamo.reset()
    counters.clear()
    cnt = CompileCounter()
    compiled = torch.compile(step, backend=cnt, **compile_kw)
    results = [call(compiled) for call in calls]
    return cnt.frame_count, sum(counters["graph_break"].values()), results


def _batch_calls(name: str, mode: str) -> list[Callable[[Callable[..., Any]], Any]]:
    def call(n: int, i: int) -> Callable[[Callable[..., Any]], Any]:
        def run(f: Callable[..., Any]) -> Any:
            arrays = _inputs(name, n, i)
            if mode == "mark_dynamic":
                for a in arrays:
                    if a.ndim:
                        torch._dynamo.mark_dynamic(a, 1 if a is arrays[0] and name == "CTCLoss" else 0)
            arrays[0].requires_grad_(True)
            out = f(*arrays)
            return out.detach(), torch.autograd.grad(out.sum(), arrays[0])[0]
        return run
    return [call(n, i) for i, n in enumerate(SIZES)]


MODES = ["automatic", "dynamic", "mark_dynamic"] if SLOW else ["automatic"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", CI_LOSSES)
def test_changing_batch_sizes_recompile_as_torch_nn_and_never_break_the_graph(name: str, mode: str) -> None:
    kw = {"dynamic": True} if mode == "dynamic" else {}
    runs = {}
    for lib in (nn, lt):
        crit = getattr(lib, name)(**_options(name))
        runs[lib] = _counted(lambda *a: crit(*a), _batch_calls(name, mode), **kw)
    (t_frames, t_breaks, want), (frames, breaks, got) = runs[nn], runs[lt]
    assert breaks == 0, f"lossreg broke the graph {breaks} times"
    if name in TORCH_BREAKS:
        assert t_breaks > 0 and frames <= (1 if mode != "automatic" else 2), (t_frames, frames)
    else:
        assert (frames, breaks) == (t_frames, t_breaks), f"lossreg {frames} frames, torch.nn {t_frames}"
    for (v, g), (tv, tg) in zip(got, want):
        torch.testing.assert_close(v, tv, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(g, tg, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("name", "kernels", "weighted"), [
    ("MultiMarginLoss", True, False), ("MultiMarginLoss", True, True), ("MultiLabelMarginLoss", True, False),
    ("CrossEntropyLoss", False, False), ("CrossEntropyLoss", False, True), ("NLLLoss", False, True)])
def test_changing_class_counts_under_dynamic_true_compile_once_as_torch_nn(name: str, kernels: bool,
                                                                          weighted: bool) -> None:
    """``dynamic=True`` keeps C symbolic too. The checks' messages quote C (``class indices in [0, C)``,
    ``a vector of one weight per class, shape (C,)``): formatted before the check, they made C a
    constant of the graph, one compile per class count (the margin losses, and cross-entropy's
    portable definition); they are now made only to raise."""
    def call(n: int, c: int) -> Callable[[Callable[..., Any]], Any]:
        def run(f: Callable[..., Any]) -> Any:
            g = torch.Generator().manual_seed(c)
            x = torch.randn(n, c, dtype=D, generator=g, requires_grad=True)
            y = (torch.randint(-1, c, (n, c), generator=g) if name == "MultiLabelMarginLoss"
                 else torch.randint(0, c, (n,), generator=g))
            out = f(x, y, torch.rand(c, dtype=D, generator=g) if weighted else None)
            return out.detach(), torch.autograd.grad(out, x)[0]
        return run

    def step(lib: Any) -> Callable[..., Any]:
        return lambda x, y, w: getattr(lib, name)(**({"weight": w} if weighted else {}))(x, y)
    calls = [call(n, c) for n, c in [(4, 3), (5, 7), (8, 11), (3, 5)]]
    t_frames, _, want = _counted(step(nn), calls, dynamic=True)
    with lossreg.use_kernels(kernels):
        frames, breaks, got = _counted(step(lt), calls, dynamic=True)
    assert (frames, breaks, t_frames) == (1, 0, 1)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kernels", [True, False])
def test_bce_under_dynamic_true_fullgraph_compiles_once_on_both_paths(kernels: bool) -> None:
    """``BCELoss`` clamps its logs at -100 (``toolkit.safe_log``'s ``floor=-100.0``). Under
    ``dynamic=True`` Dynamo makes a float default argument symbolic, and array-api-compat's torch
    ``clip`` asks ``math.isnan`` of its bounds, which Dynamo cannot trace: with the kernels off (the
    portable definition, as a plugin's loss calling ``safe_log`` runs) the call broke the graph, and
    ``fullgraph=True`` refused it ("torch.* op returned non-Tensor"). ``toolkit.clip`` now clamps torch
    arrays itself."""
    def call(n: int) -> Callable[[Callable[..., Any]], Any]:
        def run(f: Callable[..., Any]) -> Any:
            g = torch.Generator().manual_seed(n)
            x = torch.rand(n, 3, dtype=D, generator=g).clamp(0.05, 0.95).requires_grad_(True)
            # log(0) takes the -100 floor (the gradient there is not torch's off the kernels: see the README)
            x0 = torch.zeros(n, 3, dtype=D)
            t, w = torch.rand(n, 3, dtype=D, generator=g), torch.tensor(W5[:3], dtype=D)
            out = f(x, x0, t, w)
            return out.detach(), torch.autograd.grad(out, x)[0]
        return run

    def step(lib: Any) -> Callable[..., Any]:
        return lambda x, x0, t, w: lib.BCELoss(weight=w)(x, t) + lib.BCELoss(weight=w)(x0, t)
    calls = [call(n) for n in (4, 6, 9)]
    t_frames, _, want = _counted(step(nn), calls, dynamic=True, fullgraph=True)
    with lossreg.use_kernels(kernels):
        frames, breaks, got = _counted(step(lt), calls, dynamic=True, fullgraph=True)
    assert (frames, breaks, t_frames) == (1, 0, 1)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_toolkit_clip_takes_a_symbolic_float_bound_under_fullgraph() -> None:
    """A plugin's loss passing a float option on to ``toolkit.clip`` (or ``safe_log``'s ``floor``)
    compiles in one graph under ``dynamic=True``, for every value of the option; a NaN bound still
    gives NaN, as array-api-compat's ``clip`` (and the standard) give, where ``torch.clamp`` would not."""
    import array_api_compat.torch as xpt
    from lossreg import toolkit

    def run(f: Callable[..., Any]) -> list[Any]:
        x = torch.tensor([1e-30, 0.5, 2.0], dtype=D)
        return [f(x, lo) for lo in (-60.0, -10.0, 0.0)]
    frames, breaks, got = _counted(lambda x, lo: toolkit.safe_log(xpt, x, floor=lo), [run],
                                   dynamic=True, fullgraph=True)
    assert (frames, breaks) == (1, 0)
    x = torch.tensor([1e-30, 0.5, 2.0], dtype=D)
    want = [torch.log(x).clamp(min=lo) for lo in (-60.0, -10.0, 0.0)]
    torch.testing.assert_close(got[0], want, rtol=1e-12, atol=0.0)
    assert toolkit.clip(xpt, x, min=float("nan")).isnan().all()


@pytest.mark.parametrize("p", [1.5, 3.0, float("inf")])
def test_triplet_margin_loss_with_a_non_integer_p_compiles_under_dynamic_true_fullgraph(p: float) -> None:
    """``TripletMarginLoss(p=1.5)``: ``dynamic=True`` makes the module's float ``p`` symbolic, and
    the norm asked ``math.isinf(p)``, which Dynamo cannot trace: ``fullgraph=True`` refused the
    model ("torch.* op returned non-Tensor"), where torch.nn's compiles in one graph. It now
    compares p with infinity."""
    def call(n: int) -> Callable[[Callable[..., Any]], Any]:
        def run(f: Callable[..., Any]) -> Any:
            g = torch.Generator().manual_seed(n)
            a, pos, neg = (torch.randn(n, 5, dtype=D, generator=g) for _ in range(3))
            a.requires_grad_(True)
            out = f(a, pos, neg)
            return out.detach(), torch.autograd.grad(out, a)[0]
        return run

    def step(lib: Any) -> Callable[..., Any]:
        crit = lib.TripletMarginLoss(p=p, swap=True)
        return lambda a, pos, neg: crit(a, pos, neg)
    calls = [call(n) for n in (4, 6)]
    t_frames, _, want = _counted(step(nn), calls, dynamic=True, fullgraph=True)
    frames, breaks, got = _counted(step(lt), calls, dynamic=True, fullgraph=True)
    assert (frames, breaks, t_frames) == (1, 0, 1)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


# --- a cross-entropy training loop: ignored labels, train/eval, no_grad, a smoothing schedule -------

def _ce_loop(lib: Any, what: str) -> tuple[int, int, list[Any]]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.5), nn.Linear(16, 5)).double()
    crit = lib.CrossEntropyLoss(weight=torch.tensor(W5, dtype=D), ignore_index=-1, label_smoothing=0.1)
    model = nn.ModuleDict({"net": net, "loss": crit})

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return model["loss"](model["net"](x), y)

    def call(i: int) -> Callable[[Callable[..., Any]], Any]:
        def run(f: Callable[..., Any]) -> Any:
            g = torch.Generator().manual_seed(i)
            x, y = torch.randn(8, 8, dtype=D, generator=g), torch.randint(0, 5, (8,), generator=g)
            if what == "ignored":
                y[: i % 9] = -1  # 0 to 8 of the 8 labels ignored
            if what == "all_ignored" and i % 2:
                y[:] = -1  # torch's mean over no label: NaN
            if what == "label_smoothing":
                model["loss"].label_smoothing = 0.02 * i
            model.train(what != "train_eval" or i % 2 == 0)
            torch.manual_seed(i)  # the same dropout masks for both
            if what == "no_grad" and i % 2:
                with torch.no_grad():
                    return f(x, y)
            out = f(x, y)
            return out.detach(), torch.autograd.grad(out, net[0].weight)[0]
        return run
    return _counted(step, [call(i) for i in range(10)])


@pytest.mark.parametrize("what", ["ignored", "all_ignored", "train_eval", "no_grad", "label_smoothing"])
def test_a_cross_entropy_training_loop_compiles_as_often_as_torch_nns(what: str) -> None:
    (t_frames, t_breaks, want), (frames, breaks, got) = _ce_loop(nn, what), _ce_loop(lt, what)
    assert (frames, breaks) == (t_frames, t_breaks), f"lossreg {frames} frames {breaks} breaks, torch.nn {t_frames}"
    if what == "label_smoothing":  # both recompile for each value, up to Dynamo's limit, then run eagerly
        assert frames == torch._dynamo.config.recompile_limit
    else:
        assert frames <= 2 and breaks == 0
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14, equal_nan=True)


@pytest.mark.parametrize("name", ["CrossEntropyLoss", "BCEWithLogitsLoss", "MultiMarginLoss"])
def test_array_options_changed_after_compiling_are_read_as_torch_nn_reads_them(name: str) -> None:
    """The weight buffers are graph inputs, not constants: changed in place, replaced, loaded with
    ``load_state_dict`` or moved by ``.double()`` after the first compile, the compiled loss follows,
    recompiling as often as torch.nn's."""
    key = "pos_weight" if name == "BCEWithLogitsLoss" else "weight"
    g = torch.Generator().manual_seed(0)
    x, labels, probs = torch.randn(6, 5, generator=g), torch.randint(0, 5, (6,), generator=g), torch.rand(6, 5, generator=g)
    target = probs if name == "BCEWithLogitsLoss" else labels
    runs = []
    for lib in (nn, lt):
        crit = getattr(lib, name)(**{key: torch.tensor(W5)})

        def changes(f: Callable[..., Any], crit: nn.Module = crit) -> list[torch.Tensor]:
            out = [f(x, target)]
            getattr(crit, key).mul_(3.0)
            out.append(f(x, target))
            setattr(crit, key, torch.ones(5))
            out.append(f(x, target))
            crit.load_state_dict({key: torch.linspace(0.5, 2.0, 5)})
            out.append(f(x, target))
            crit.double()
            out.append(f(x.double(), target.double() if target.is_floating_point() else target))
            return out
        runs.append(_counted(lambda a, b, crit=crit: crit(a, b), [changes]))
    (t_frames, t_breaks, want), (frames, breaks, got) = runs
    assert (frames, breaks) == (t_frames, t_breaks)
    torch.testing.assert_close(got, want)


def test_a_first_call_compiled_after_lossreg_loaded_before_torch_does_not_recompile_on_the_second() -> None:
    """lossreg used before torch was imported (its registry loaded: NumPy preprocessing with a
    loss, or lossreg's pytest plugin) leaves the torch kernels to import on their first call. That
    call, traced by torch.compile, made the graph guard on the kernel not being loaded yet: every
    loss recompiled on its second call (one more inductor compile each). In a fresh process."""
    script = textwrap.dedent("""
        import json, sys, warnings
        warnings.simplefilter("ignore")
        import numpy as np
        import lossreg
        lossreg.mse_loss(np.zeros(3), np.ones(3))  # the registry is loaded; torch is not imported
        assert "torch" not in sys.modules
        import torch
        from torch._dynamo.testing import CompileCounter
        import lossreg.torch as lt
        x, t = torch.randn(6, 5), torch.randint(0, 5, (6,))
        counts = {}
        for name, loss, args in [("torch.nn", torch.nn.CrossEntropyLoss(), (x, t)),
                                 ("module", lt.CrossEntropyLoss(), (x, t)),
                                 ("functional", lambda a, b: lossreg.mse_loss(a, b), (x, x.flip(0)))]:
            torch._dynamo.reset()
            cnt = CompileCounter()
            compiled = torch.compile(loss, backend=cnt, fullgraph=True)
            for _ in range(3):
                compiled(*args)
            counts[name] = cnt.frame_count
        print(json.dumps(counts))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.splitlines()[-1]) == {"torch.nn": 1, "module": 1, "functional": 1}


def test_a_python_float_option_passed_to_the_compiled_step_recompiles_no_more_than_torch() -> None:
    """A schedule's value passed as an argument: torch's functional losses specialise on it (one
    graph per value); lossreg's triplet margin stays symbolic, where torch's recompiles."""
    for name, loss in [("cross_entropy", lambda lib, x, y, s: lib.cross_entropy(x, y, label_smoothing=s)),
                       ("huber_loss", lambda lib, x, y, s: lib.huber_loss(x, x.flip(0), delta=s + 0.5)),
                       ("triplet_margin_loss", lambda lib, x, y, s: lib.triplet_margin_loss(x, x * 2, x + 1,
                                                                                            margin=s + 0.5))]:
        calls = []
        for i in range(6):
            g = torch.Generator().manual_seed(i)
            x, y = torch.randn(6, 5, dtype=D, generator=g), torch.randint(0, 5, (6,), generator=g)
            calls.append(lambda f, x=x, y=y, i=i: f(x, y, 0.01 * i))
        t_frames, _, want = _counted(lambda x, y, s: loss(torch.nn.functional, x, y, s), calls)
        frames, breaks, got = _counted(lambda x, y, s: loss(lossreg, x, y, s), calls)
        assert breaks == 0 and frames <= t_frames, (name, frames, t_frames)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


# --- bad input inside a compiled function ------------------------------------------------------------

X = torch.randn(4, 5, dtype=D)
BAD = {
    "target_wrong_batch": ("CrossEntropyLoss", {}, lambda: (X, torch.tensor([0, 1, 2]))),
    "target_bool": ("CrossEntropyLoss", {}, lambda: (X, torch.tensor([True, False, True, False]))),
    "target_float_not_probabilities": ("CrossEntropyLoss", {}, lambda: (X, torch.zeros(4, dtype=D))),
    "weight_wrong_size": ("CrossEntropyLoss", {"weight": torch.ones(3, dtype=D)}, lambda: (X, torch.tensor([0, 1, 2, 3]))),
    "label_smoothing_1.5": ("CrossEntropyLoss", {"label_smoothing": 1.5}, lambda: (X, torch.tensor([0, 1, 2, 3]))),
    "mse_shape": ("MSELoss", {}, lambda: (X, torch.rand(4, 1, dtype=D))),
    "mse_integer_target": ("MSELoss", {}, lambda: (X, torch.ones(4, 5, dtype=torch.long))),
    "bce_integer_target": ("BCEWithLogitsLoss", {}, lambda: (X, torch.ones(4, 5, dtype=torch.long))),
    "nll_target_shape": ("NLLLoss", {}, lambda: (torch.randn(4, 5, 3, dtype=D), torch.zeros(4, 2, dtype=torch.long))),
    "kl_shape": ("KLDivLoss", {"reduction": "batchmean"}, lambda: (X, torch.rand(4, 4, dtype=D))),
    "triplet_shape": ("TripletMarginLoss", {}, lambda: (X, X, torch.randn(3, 5, dtype=D))),
    "cosine_target_length": ("CosineEmbeddingLoss", {}, lambda: (X, X, torch.ones(3, dtype=torch.long))),
    "multi_margin_float_target": ("MultiMarginLoss", {}, lambda: (X, torch.ones(4, dtype=D))),
    "huber_integer_input": ("HuberLoss", {}, lambda: (torch.ones(4, dtype=torch.long),) * 2),
    "ctc_float_targets": ("CTCLoss", {}, lambda: (torch.randn(6, 2, 5, dtype=D).log_softmax(2), torch.ones(2, 3, dtype=D),
                                                  torch.tensor([6, 6]), torch.tensor([3, 3]))),
}
# Under dynamic=True, where the error path formats a symbolic size or option (see the README)
DYNAMIC_BAD = ["target_wrong_batch", "target_bool", "mse_shape", "mse_integer_target", "bce_integer_target",
               "nll_target_shape", "kl_shape", "cosine_target_length", "multi_margin_float_target",
               "huber_integer_input", "ctc_float_targets", "weight_wrong_size", "target_float_not_probabilities"]


def _eager_error(case: str) -> lossreg.LossError:
    cls, options, arrays = BAD[case]
    with pytest.raises(lossreg.LossError) as info:
        getattr(lt, cls)(**options)(*arrays())
    return info.value


# Each case graph-breaks, then runs eagerly: seconds apiece; four in CI, every one with LOSSREG_SLOW=1.
@pytest.mark.parametrize("case", sorted(BAD) if SLOW else ["target_wrong_batch", "mse_shape", "bce_integer_target",
                                                           "label_smoothing_1.5"])
def test_bad_input_in_a_compiled_function_raises_lossregs_error(case: str) -> None:
    cls, options, arrays = BAD[case]
    want = _eager_error(case)
    with pytest.raises(type(want)) as info:
        torch.compile(getattr(lt, cls)(**options), backend="eager")(*arrays())
    assert str(info.value) == str(want)


@pytest.mark.parametrize(("case", "dynamic"), [(c, False) for c in sorted(BAD)] + [(c, True) for c in DYNAMIC_BAD])
def test_bad_input_under_fullgraph_names_lossregs_error_not_a_dynamo_limitation(case: str, dynamic: bool) -> None:
    """Dynamo cannot let an exception out of a fullgraph trace: it reports "Observed exception"
    with the exception's constructor arguments (torch.nn's own errors come as "RuntimeError when
    making fake tensor call" with their message). It used to stop earlier, at the error's own
    constructor, saying nothing of the input."""
    cls, options, arrays = BAD[case]
    want = _eager_error(case)
    with pytest.raises(torch._dynamo.exc.Unsupported) as info:
        torch.compile(getattr(lt, cls)(**options), backend="eager", fullgraph=True, dynamic=dynamic)(*arrays())
    text = str(info.value)
    assert "Observed exception" in text, text[:600]
    assert f"{type(want).__name__}({want.loss!r}, {want.argument!r}, " in text, text[:600]


@pytest.mark.parametrize("case", ["triplet_shape", "label_smoothing_1.5"])
def test_two_error_messages_are_not_built_in_a_dynamic_fullgraph_trace_as_the_readme_says(case: str) -> None:
    """README: with dynamic shapes, a symbolic float option's repr and a join of symbolic shapes stop
    Dynamo before lossreg's error exists; without fullgraph the call still raises lossreg's error."""
    cls, options, arrays = BAD[case]
    want = _eager_error(case)
    with pytest.raises(torch._dynamo.exc.Unsupported) as info:
        torch.compile(getattr(lt, cls)(**options), backend="eager", fullgraph=True, dynamic=True)(*arrays())
    assert "Observed exception" not in str(info.value)
    torch._dynamo.reset()
    with pytest.raises(type(want), match=want.argument):
        torch.compile(getattr(lt, cls)(**options), backend="eager", dynamic=True)(*arrays())


# --- inductor: a compiled training step with the optimizer inside --------------------------------------

class _Model(nn.Module):
    def __init__(self, crit: nn.Module) -> None:
        super().__init__()
        self.lin, self.crit = nn.Linear(5, 5), crit

    def forward(self, x: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        return self.crit(self.lin(x), *rest)


def _train(lib: Any, name: str, dtype: torch.dtype, **compile_kw: Any) -> tuple[list[torch.Tensor], list[torch.Tensor], int, int]:
    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    options = {k: v.to(dtype) if isinstance(v, torch.Tensor) else v for k, v in _options(name, dtype).items()}
    model = _Model(getattr(lib, name)(**options)).to(dtype)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    @torch.compile(**compile_kw)
    def step(*arrays: torch.Tensor) -> torch.Tensor:
        opt.zero_grad()
        loss = model(*arrays)
        loss.backward()
        opt.step()
        return loss

    losses = []
    for i, n in enumerate([4, 4, 6, 7]):
        arrays = _inputs(name, n, i, dtype)
        if name in ("NLLLoss", "KLDivLoss"):  # the linear layer gives (N, 5) scores
            arrays = [arrays[0].flatten(2)[..., 0], arrays[1].flatten(1)[:, 0]] if name == "NLLLoss" else arrays
        losses.append(step(*arrays).detach())
    return losses, [p.detach().clone() for p in model.parameters()], counters["stats"]["unique_graphs"], \
        sum(counters["graph_break"].values())


TRAIN = ([(n, t) for n in ("CrossEntropyLoss", "BCEWithLogitsLoss", "NLLLoss", "MultiMarginLoss", "TripletMarginLoss",
                          "CosineEmbeddingLoss", "HuberLoss", "KLDivLoss", "MSELoss") for t in ("float32", "float64")]
         if SLOW else [("CrossEntropyLoss", "float32")])


@pytest.mark.parametrize(("name", "dtype"), TRAIN)
def test_an_inductor_training_step_with_the_optimizer_inside_follows_torch_nns(name: str, dtype: str) -> None:
    dt = getattr(torch, dtype)
    want_losses, want_params, t_graphs, t_breaks = _train(nn, name, dt)
    losses, params, graphs, breaks = _train(lt, name, dt)
    assert (graphs, breaks) == (t_graphs, t_breaks)  # loss.backward() breaks both graphs, the same way
    tol = {"rtol": 1e-5, "atol": 1e-6} if dt is torch.float32 else {"rtol": 1e-12, "atol": 1e-14}
    torch.testing.assert_close(losses, want_losses, **tol)
    torch.testing.assert_close(params, want_params, **tol)


def test_export_and_run_decompositions_of_a_model_holding_a_loss_gives_eagers_value() -> None:
    torch.manual_seed(0)
    crit = lt.CrossEntropyLoss(weight=torch.tensor(W5), ignore_index=-1, label_smoothing=0.1)
    model = _Model(crit)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 5, generator=g), torch.randint(0, 5, (6,), generator=g)
    y[0] = -1
    n = torch.export.Dim("n")
    program = torch.export.export(model, (x, y), dynamic_shapes=({0: n}, ({0: n},))).run_decompositions()
    x2, y2 = torch.randn(9, 5, generator=g), torch.randint(0, 5, (9,), generator=g)
    reference = _Model(nn.CrossEntropyLoss(weight=torch.tensor(W5), ignore_index=-1, label_smoothing=0.1))
    reference.load_state_dict(model.state_dict())
    for a, b in [(x, y), (x2, y2)]:
        torch.testing.assert_close(program.module()(a, b), reference(a, b))


# --- LOSSREG_SLOW=1: inductor's other modes -------------------------------------------------------------

slow = pytest.mark.skipif(not SLOW, reason="inductor compiles of several seconds each: LOSSREG_SLOW=1")


@slow
@pytest.mark.parametrize("kw", [{"mode": "reduce-overhead"}, {"backend": "inductor", "options": {"max_autotune": False}}],
                         ids=["reduce-overhead", "max_autotune_off"])
def test_inductor_modes_give_torch_nns_step(kw: dict) -> None:
    want_losses, want_params, t_graphs, t_breaks = _train(nn, "CrossEntropyLoss", torch.float32, **kw)
    losses, params, graphs, breaks = _train(lt, "CrossEntropyLoss", torch.float32, **kw)
    assert (graphs, breaks) == (t_graphs, t_breaks)
    torch.testing.assert_close(losses, want_losses)
    torch.testing.assert_close(params, want_params)


@slow
def test_compiled_autograd_step_follows_torch_nns() -> None:
    with torch._dynamo.config.patch(compiled_autograd=True):
        want_losses, want_params, t_graphs, t_breaks = _train(nn, "CrossEntropyLoss", torch.float32)
        losses, params, graphs, breaks = _train(lt, "CrossEntropyLoss", torch.float32)
    assert (graphs, breaks) == (t_graphs, t_breaks)
    torch.testing.assert_close(losses, want_losses)
    torch.testing.assert_close(params, want_params)


@slow
def test_aot_inductor_package_of_a_model_holding_a_loss(tmp_path: Any) -> None:
    torch.manual_seed(0)
    model = _Model(lt.CrossEntropyLoss(weight=torch.tensor(W5), ignore_index=-1, label_smoothing=0.1))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 5, generator=g), torch.randint(0, 5, (6,), generator=g)
    n = torch.export.Dim("n")
    program = torch.export.export(model, (x, y), dynamic_shapes=({0: n}, ({0: n},)))
    path = torch._inductor.aoti_compile_and_package(program, package_path=str(tmp_path / "m.pt2"))
    runner = torch._inductor.aoti_load_package(path)
    x2, y2 = torch.randn(9, 5, generator=g), torch.randint(0, 5, (9,), generator=g)
    torch.testing.assert_close(runner(x2, y2), model(x2, y2))
