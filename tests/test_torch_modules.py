"""lossreg.torch: every registered loss as a real torch.nn.Module, interchangeable with torch.nn's.

The modules are compared with torch.nn's class of the same name (value and gradients), then
used the ways a torch model uses its criterion: in module trees, moved with ``.to()``, saved
with ``state_dict``/``torch.save``, hooked, and trained under DDP with two processes.
"""

from __future__ import annotations

import functools
import inspect
import io
import re
import subprocess
from collections.abc import Callable
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from strategies import REFERENCES, make_good
from sweep import sweep

import lossreg
import lossreg.torch as lt

ROOT = Path(__file__).resolve().parents[1]
BUILTIN = [n for n in lossreg.names() if lossreg.spec(n).plugin == "lossreg"]
W3 = [1.0, 2.0, 0.5]  # array options exact in float32, so that configs compare equal after a round trip
# Non-default options per loss (array options as lists), compared too; the defaults always are.
OPTIONS = {
    "cross_entropy": {"weight": W3, "ignore_index": 1, "label_smoothing": 0.1},
    "nll_loss": {"weight": W3, "reduction": "sum"},
    "binary_cross_entropy": {"weight": W3},
    "binary_cross_entropy_with_logits": {"weight": W3, "pos_weight": [2.0, 1.0, 3.0]},
    "multi_margin_loss": {"p": 2, "margin": 0.5, "weight": W3},
    "multilabel_soft_margin_loss": {"weight": W3, "reduction": "none"},
    "smooth_l1_loss": {"beta": 0.5},
    "huber_loss": {"delta": 0.5, "reduction": "sum"},
    "kl_div": {"reduction": "batchmean", "log_target": True},
    "poisson_nll_loss": {"log_input": False, "full": True},
    "gaussian_nll_loss": {"full": True},
    "triplet_margin_loss": {"margin": 0.3, "p": 1.0, "swap": True},
    "triplet_margin_with_distance_loss": {"margin": 0.3, "swap": True},
    "ctc_loss": {"zero_infinity": True, "reduction": "sum"},
    "margin_ranking_loss": {"margin": 0.2},
    "cosine_embedding_loss": {"margin": 0.1},
    "hinge_embedding_loss": {"margin": 0.7, "reduction": "none"},
    "linear_cross_entropy": {"bias": [0.125, -0.25, 0.375, 0.0, 0.5], "label_smoothing": 0.1, "z_loss": 1e-3},
}


# torch.nn.LinearCrossEntropyLoss(in_features, num_classes) owns its projection; lossreg's takes the
# projection weight as an input (hidden, weight, target): compared with the functional reference.
OTHER_INTERFACE_IN_TORCH = {"linear_cross_entropy"}


def _inputs(name: str, options: dict) -> list[torch.Tensor]:
    ex = make_good(name, seed=3)
    if options.get("log_target"):
        ex.inputs["target"] = np.log(ex.inputs["target"] + 0.05)
    if options.get("log_input") is False:
        ex.inputs["input"] = np.abs(ex.inputs["input"]) + 0.1  # rates, for log_input=False
    grads = lossreg.spec(name).differentiable
    return [torch.from_numpy(v).requires_grad_(k in grads and v.dtype == np.float64) for k, v in ex.inputs.items()]


def _torch_nn(name: str, options: dict) -> Callable[..., torch.Tensor]:
    """torch.nn's module of the same class name, with tensors for the array options; else the
    torch reference of the fuzz tests."""
    opts = {k: torch.tensor(v, dtype=torch.float64) if isinstance(v, list) else v for k, v in options.items()}
    cls = getattr(torch.nn, lossreg.spec(name).class_name, None)
    if cls is None or name in OTHER_INTERFACE_IN_TORCH:
        return functools.partial(REFERENCES[name], **opts)
    if name == "huber_loss":  # torch.nn.HuberLoss takes no weight (F.huber_loss does)
        opts.pop("weight", None)
    return cls(**opts)


CONFIGURED = [(name, {}) for name in BUILTIN] + [(name, OPTIONS[name]) for name in BUILTIN if name in OPTIONS]


@pytest.mark.parametrize(("name", "options"), CONFIGURED)
def test_each_module_equals_torch_nn_in_value_and_gradient(name: str, options: dict) -> None:
    ours = lt.get(name, **options).double()  # .double(): float buffers follow, as in torch.nn
    theirs = _torch_nn(name, options)
    assert isinstance(ours, torch.nn.Module) and type(ours).__name__ == lossreg.spec(name).class_name
    if isinstance(theirs, torch.nn.Module):
        assert type(theirs).__name__ == type(ours).__name__
        assert {k for k, _ in ours.named_buffers()} == {k for k, _ in theirs.named_buffers()}
    a, b = _inputs(name, options), _inputs(name, options)
    got, want = ours(*a), theirs(*(x.long() if not x.is_floating_point() else x for x in b))
    torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-10)
    leaves = [(x, y) for x, y in zip(a, b) if x.requires_grad]
    g_got = torch.autograd.grad(got.sum(), [x for x, _ in leaves], allow_unused=True, materialize_grads=True)
    g_want = torch.autograd.grad(want.sum(), [y for _, y in leaves], allow_unused=True, materialize_grads=True)
    torch.testing.assert_close(g_got, g_want, rtol=1e-7, atol=1e-10, equal_nan=True)  # NaN where torch gives NaN


def test_a_fresh_process_first_lookup_by_name_inside_torch_compile_fullgraph_compiles() -> None:
    """The first ``lossreg.torch.get(name)`` of a process, inside a compiled region: the plugins
    load and the class is made outside the trace (their locks and entry points cannot be traced)."""
    script = textwrap.dedent("""
        import torch, lossreg.torch as lt
        x, t = torch.randn(2, 3, 4, 4, dtype=torch.float64), torch.randint(0, 3, (2, 4, 4))
        step = torch.compile(lambda a, b: lt.get("cross_entropy", label_smoothing=0.1)(a, b), fullgraph=True,
                             backend="eager")
        got = step(x, t)
        want = torch.nn.functional.cross_entropy(x, t, label_smoothing=0.1)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


@pytest.mark.parametrize(("name", "options"), sweep(CONFIGURED))  # a Dynamo trace apiece
def test_a_module_made_inside_torch_compile_fullgraph_gives_the_eager_modules_value_and_gradient(
        name: str, options: dict) -> None:
    """As model code written for torch.nn does (``loss_fct = CrossEntropyLoss(); loss_fct(logits,
    labels)`` inside ``forward``): the module is made within the trace, with no graph break, from
    its class (looked up in ``lossreg.torch``, which makes it, as importing it does) or by name."""
    torch._dynamo.reset()  # the lambdas below share their code with every other loss's: each its own budget
    opts = {k: torch.tensor(v, dtype=torch.float64) if isinstance(v, list) else v for k, v in options.items()}
    class_name = lossreg.spec(name).class_name
    by_class = torch.compile(lambda *arrays: getattr(lt, class_name)(**opts)(*arrays), backend="eager", fullgraph=True)
    by_name = torch.compile(lambda *arrays: lt.get(name, **opts)(*arrays), backend="eager", fullgraph=True)
    a, b = _inputs(name, options), _inputs(name, options)
    want = lt.get(name, **opts)(*b)
    got = by_class(*a)
    torch.testing.assert_close(by_name(*_inputs(name, options)), want, rtol=1e-12, atol=0)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    leaves = [(x, y) for x, y in zip(a, b) if x.requires_grad]
    g_got = torch.autograd.grad(got.sum(), [x for x, _ in leaves], allow_unused=True, materialize_grads=True)
    g_want = torch.autograd.grad(want.sum(), [y for _, y in leaves], allow_unused=True, materialize_grads=True)
    torch.testing.assert_close(g_got, g_want, rtol=1e-12, atol=0, equal_nan=True)


def test_a_module_made_inside_a_dynamic_compile_right_after_a_reload_compiles() -> None:
    """Code that makes its criterion in the trace, compiled for torch.nn's and then lossreg's (one
    code object, so Dynamo makes the second trace's ints symbols), right after a reload: the fresh
    registry's first lookup of the class form compared the loss's spec with the earlier registry's
    in the trace, and Dynamo raised "SymNodeVariable() is not a constant" (seen as a failure of
    tests/test_user_hunt_inductor.py whenever an earlier test had reloaded the registry)."""
    torch._dynamo.reset()
    lt.MultiMarginLoss()  # the class form exists, made by the registry a reload replaces
    lossreg.reload()
    try:
        def step(lib: Any) -> Callable[..., Any]:
            return lambda x, y: lib.MultiMarginLoss(margin=0.5)(x, y)

        for lib in (torch.nn, lt):
            compiled = torch.compile(step(lib), backend="eager", dynamic=True)
            for n, c in [(4, 3), (5, 7), (8, 11)]:
                x, y = torch.randn(n, c, dtype=torch.float64), torch.randint(0, c, (n,))
                torch.testing.assert_close(compiled(x, y), F.multi_margin_loss(x, y, margin=0.5), rtol=1e-12, atol=0)
    finally:
        lossreg.reload()


def test_constructor_arguments_are_torch_nns() -> None:
    w = torch.tensor(W3)
    assert torch.equal(lt.CrossEntropyLoss(w).weight, w)  # torch.nn's leading positional argument
    assert lt.TripletMarginLoss(0.5, 1.0).p == 1.0 and lt.TripletMarginLoss(0.5).margin == 0.5
    with pytest.raises(TypeError, match="positional"):
        lt.CrossEntropyLoss(w, None)  # torch.nn's next one is the deprecated size_average: not taken
    with pytest.raises(lossreg.LossTypeError, match="cross_entropy: argument 'size_average'"):
        lt.CrossEntropyLoss(size_average=True)
    with pytest.raises(lossreg.LossValueError, match="reduction"):
        lt.MSELoss(reduction="avg")(torch.zeros(2), torch.zeros(2))


def test_forward_takes_the_arrays_by_name_too() -> None:
    x, y = torch.randn(4, 3), torch.tensor([0, 2, 1, 1])
    crit = lt.CrossEntropyLoss()
    torch.testing.assert_close(crit(input=x, target=y), torch.nn.CrossEntropyLoss()(input=x, target=y))
    torch.testing.assert_close(crit(x, target=y), F.cross_entropy(x, y))
    with pytest.raises(lossreg.LossTypeError, match="argument 'target' expected each array once.*got no value"):
        crit(input=x)
    with pytest.raises(lossreg.LossTypeError, match="argument 'input' .*got an unexpected or repeated argument"):
        crit(x, y, input=x)
    with pytest.raises(lossreg.LossTypeError, match="argument 'reduction' .*options when the module is made"):
        crit(x, y, reduction="sum")


def test_forward_signature_names_the_arrays_as_torch_nns_so_export_takes_its_dynamic_shapes() -> None:
    """torch.export binds ``dynamic_shapes`` (and keyword inputs) to forward's parameters: the specs
    written for torch.nn's module, per array by position or by torch.nn's names, fit lossreg's."""
    for name in BUILTIN:
        cls = getattr(torch.nn, lossreg.spec(name).class_name)
        if name not in OTHER_INTERFACE_IN_TORCH:
            assert (inspect.signature(getattr(lt, cls.__name__)().forward).parameters.keys()
                    == inspect.signature(cls().forward).parameters.keys()), name
    n = torch.export.Dim("n")
    x, y = torch.randn(4, 3), torch.tensor([0, 2, 1, 1])
    program = torch.export.export(lt.CrossEntropyLoss(label_smoothing=0.1), (x, y), dynamic_shapes=({0: n}, {0: n}))
    x7, y7 = torch.randn(7, 3), torch.tensor([0, 2, 1, 1, 0, 2, 2])
    torch.testing.assert_close(program.module()(x7, y7), F.cross_entropy(x7, y7, label_smoothing=0.1))
    rates, counts = torch.randn(4, 3), torch.rand(4, 3) * 3
    program = torch.export.export(lt.PoissonNLLLoss(), (), {"log_input": rates, "target": counts},
                                  dynamic_shapes={"log_input": {0: n}, "target": {0: n}})
    torch.testing.assert_close(program.module()(log_input=rates[:2], target=counts[:2]),
                               F.poisson_nll_loss(rates[:2], counts[:2]))


def test_array_options_are_buffers_that_move_and_round_trip_through_state_dict() -> None:
    crit = lt.BCEWithLogitsLoss(weight=W3, pos_weight=torch.tensor([2.0, 1.0, 3.0]))
    assert crit.weight.dtype == torch.float32 and dict(crit.named_buffers()).keys() == {"weight", "pos_weight"}
    crit.to(torch.float64)
    assert crit.weight.dtype == crit.pos_weight.dtype == torch.float64
    buf = io.BytesIO()
    torch.save(crit.state_dict(), buf)
    buf.seek(0)
    fresh = lt.BCEWithLogitsLoss(weight=torch.zeros(3, dtype=torch.float64), pos_weight=torch.zeros(3, dtype=torch.float64))
    fresh.load_state_dict(torch.load(buf))  # weights_only=True: buffers are plain tensors
    assert torch.equal(fresh.weight, crit.weight) and torch.equal(fresh.pos_weight, crit.pos_weight)
    unweighted = lt.CrossEntropyLoss()
    assert unweighted.weight is None and "weight" not in unweighted.state_dict()  # as torch.nn


@pytest.mark.parametrize("weight", [np.array([1 + 1j, 1.0, 1.0]), np.array([1, 2, 3]), np.array([True, False, True])],
                         ids=["complex", "int64", "bool"])
def test_a_numpy_array_option_keeps_its_dtype_so_the_call_refuses_what_the_functional_form_refuses(weight) -> None:
    # A cast to torch's default dtype took integer and bool weights (which the functional and class
    # forms refuse) and dropped a complex weight's imaginary part, giving a loss.
    x, t = torch.randn(4, 3, dtype=torch.float64), torch.tensor([0, 1, 2, 2])
    with pytest.raises(lossreg.LossTypeError) as info:
        lt.CrossEntropyLoss(weight=weight)(x, t)
    assert info.value.argument == "weight", info.value
    with pytest.raises(lossreg.LossTypeError):
        lossreg.cross_entropy(x, t, weight=torch.from_numpy(weight))


def test_a_list_option_is_a_buffer_of_the_default_dtype_python_ints_past_int64_too() -> None:
    x, t = torch.randn(4, 3, dtype=torch.float64), torch.tensor([0, 1, 2, 2])
    crit = lt.CrossEntropyLoss(weight=[2**70, 1, 1])  # torch.as_tensor read them as int64: "Overflow"
    assert crit.weight.dtype == torch.get_default_dtype()
    torch.testing.assert_close(crit(x, t), F.cross_entropy(x, t, weight=torch.tensor([2.0**70, 1, 1]).double()))


def test_an_option_given_as_a_parameter_is_a_parameter() -> None:
    weight = torch.nn.Parameter(torch.tensor(W3))
    crit = lt.CrossEntropyLoss(weight=weight)
    assert [name for name, _ in crit.named_parameters()] == ["weight"] and crit.weight is weight
    crit(torch.randn(4, 3), torch.tensor([0, 1, 2, 0])).backward()
    assert weight.grad is not None and weight.grad.shape == (3,)


def test_each_call_reads_the_options_wherever_torch_keeps_them_now() -> None:
    """Options changed after the module is made take effect, as in torch.nn: an attribute set, a
    buffer replaced, a weight swapped in by torch.func.functional_call, a parametrized weight."""
    x, y = torch.randn(6, 3, dtype=torch.float64), torch.tensor([0, 1, 2, 2, 1, 0])
    w = torch.tensor(W3, dtype=torch.float64)
    ours, theirs = lt.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    for key, value in [("reduction", "sum"), ("label_smoothing", 0.2), ("ignore_index", 2), ("weight", w)]:
        setattr(ours, key, value)
        setattr(theirs, key, value)
        torch.testing.assert_close(ours(x, y), theirs(x, y), rtol=0, atol=0)
    ours.reduction = "mean"  # back to the default object's equal: passed or not, the same call
    torch.testing.assert_close(ours(x, y), F.cross_entropy(x, y, weight=w, label_smoothing=0.2, ignore_index=2))

    fresh = lt.CrossEntropyLoss(weight=[1.0, 1.0, 1.0])
    swapped = torch.func.functional_call(fresh, {"weight": 2 * w}, (x, y))
    torch.testing.assert_close(swapped, F.cross_entropy(x, y, weight=2 * w))
    torch.testing.assert_close(fresh(x, y), F.cross_entropy(x, y))  # the module's own weight after the call

    class Doubled(torch.nn.Module):
        def forward(self, weight: torch.Tensor) -> torch.Tensor:
            return 2 * weight

    torch.nn.utils.parametrize.register_parametrization(fresh, "weight", Doubled())
    torch.testing.assert_close(fresh(x, y), F.cross_entropy(x, y, weight=torch.full((3,), 2.0, dtype=torch.float64)))


class Classifier(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
        self.losses = torch.nn.ModuleDict({"ce": lt.CrossEntropyLoss(weight=W3, label_smoothing=0.1),
                                           "nll": lt.NLLLoss(weight=W3)})

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        return self.losses["ce"](logits, y) + self.losses["nll"](logits.log_softmax(-1), y)


def test_in_a_module_tree_with_hooks_and_torch_save() -> None:
    torch.manual_seed(0)
    model = Classifier().double()
    assert {"losses.ce.weight", "losses.nll.weight"} <= set(model.state_dict())
    assert model.losses["ce"].weight.dtype == torch.float64
    seen = []
    handle = model.losses["ce"].register_forward_hook(lambda mod, args, out: seen.append((type(mod).__name__, out)))
    x, y = torch.randn(5, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 1, 0])
    value = model(x, y)
    assert seen and seen[0][0] == "CrossEntropyLoss" and seen[0][1].ndim == 0
    handle.remove()
    reference = (torch.nn.CrossEntropyLoss(weight=model.losses["ce"].weight, label_smoothing=0.1)(model.net(x), y)
                 + torch.nn.NLLLoss(weight=model.losses["nll"].weight)(model.net(x).log_softmax(-1), y))
    torch.testing.assert_close(value, reference)
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)  # a whole pickled model: the classes are found by name
    assert type(loaded.losses["ce"]) is lt.CrossEntropyLoss
    torch.testing.assert_close(loaded(x, y), value)


def test_torch_fx_symbolic_trace_of_a_model_holding_losses_keeps_them_leaves_as_torch_nns() -> None:
    """fx's tracer keeps torch.nn's loss modules as ``call_module`` leaves; lossreg's are recorded as the
    same leaves (their checks cannot run on fx's proxies), so the traced model computes the eager one's."""
    torch.manual_seed(0)
    model = Classifier().double()
    traced = torch.fx.symbolic_trace(model)
    assert [node.target for node in traced.graph.nodes if node.op == "call_module"][-2:] == ["losses.ce", "losses.nll"]
    assert traced.state_dict().keys() == model.state_dict().keys()
    x, y = torch.randn(5, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 1, 0])
    got, want = traced(x, y), model(x, y)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    params = list(model.parameters())
    torch.testing.assert_close(torch.autograd.grad(got, params), torch.autograd.grad(want, params), rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", BUILTIN)
def test_torch_fx_symbolic_trace_of_a_loss_module_itself_records_its_functional_form(name: str) -> None:
    """``torch.fx.symbolic_trace(torch.nn.MSELoss())`` records a call of ``F.mse_loss``; lossreg's module
    traces to its functional form (fx raised its TraceError on the module's ``*arrays``). The traced
    module takes the arrays by position, gives the module's value and gradients, and reads array
    options and an owned layer's parameters as attributes, so it follows their updates."""
    options = {k: torch.tensor(v, dtype=torch.float64) if isinstance(v, list) else v
               for k, v in OPTIONS.get(name, {}).items()}
    module = lt.get(name, **options)
    if name == "linear_cross_entropy":  # the owned-layer form too: torch.nn's LinearCrossEntropyLoss(in, classes)
        module = lt.LinearCrossEntropyLoss(4, 3, bias=True, dtype=torch.float64)
    traced = torch.fx.symbolic_trace(module)
    assert [n.op for n in traced.graph.nodes if n.op in ("call_function", "call_module")][-1] == "call_function"
    arrays = _inputs(name, OPTIONS.get(name, {})) if name != "linear_cross_entropy" else [
        torch.randn(5, 4, dtype=torch.float64, requires_grad=True), torch.tensor([0, 2, 1, 1, 0])]
    got, want = traced(*arrays), module(*arrays)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    leaves = [a for a in arrays if a.requires_grad] + list(module.parameters())
    torch.testing.assert_close(torch.autograd.grad(got.sum(), leaves), torch.autograd.grad(want.sum(), leaves),
                               equal_nan=True)  # poisson_nll_loss(full=True): torch's NaN at a target of 0
    state = [t for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()]
    if state:
        with torch.no_grad():
            for t in state:
                t.mul_(1.5)
        torch.testing.assert_close(traced(*arrays), module(*arrays), rtol=1e-12, atol=0)


def test_torch_fx_symbolic_trace_of_a_loss_module_with_a_callable_option_says_what_traces() -> None:
    with pytest.raises(lossreg.UnsupportedError, match="distance_function; trace a model that holds it"):
        torch.fx.symbolic_trace(lt.TripletMarginWithDistanceLoss(distance_function=torch.nn.PairwiseDistance()))


def test_torch_load_in_a_fresh_interpreter_finds_the_generated_class(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(torch.nn.ModuleDict({"crit": lt.CrossEntropyLoss(weight=W3, ignore_index=2)}), path)
    code = ("import torch, sys; m = torch.load(sys.argv[1], weights_only=False)['crit'];"
            "print(type(m).__module__, type(m).__name__, m.ignore_index, m.weight.tolist())")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["lossreg.torch", "CrossEntropyLoss", "2", "[1.0,", "2.0,", "0.5]"]


def test_get_config_equals_the_class_forms_and_rebuilds_the_module() -> None:
    for name in BUILTIN:
        options = {k: v for k, v in OPTIONS.get(name, {}).items()}
        module = lt.get(name, **{k: torch.tensor(v) if isinstance(v, list) else v for k, v in options.items()})
        config = module.get_config()
        assert config == lossreg.get(name, **options).get_config(), name
        rebuilt = lt.from_config(config)
        assert type(rebuilt) is type(module) and rebuilt.get_config() == config


def test_plugins_losses_are_modules_too(segmentation) -> None:
    """The real lossreg-segmentation package (conftest's fixture: registered as its entry point
    would, unless another module's tests already did)."""
    assert "FocalLoss" in dir(lt) and "DiceLoss" in dir(lt)
    focal = lt.FocalLoss(weight=W3, gamma=0.0).double()  # gamma = 0: exactly weighted cross-entropy
    assert focal.weight.dtype == torch.float64 and focal.gamma == 0.0
    x, y = torch.randn(6, 3, dtype=torch.float64, requires_grad=True), torch.tensor([0, 1, 2, 2, 1, 0])
    torch.testing.assert_close(focal(x, y), F.cross_entropy(x, y, weight=torch.tensor(W3, dtype=torch.float64)))
    buf = io.BytesIO()
    torch.save(focal, buf)
    buf.seek(0)
    assert type(torch.load(buf, weights_only=False)) is lt.FocalLoss


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchLoss"):
        lt.NoSuchLoss  # noqa: B018


def test_ddp_two_processes_on_gloo(tmp_path: Path) -> None:
    """Two CPU processes: DDP broadcasts rank 0's loss weight and averages gradients as torch.nn's would."""
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "fixtures" / "ddp_train.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    # two processes share stdout: their lines may interleave ("rank1-okrank0-ok")
    assert sorted(re.findall(r"rank\d-ok", done.stdout)) == ["rank0-ok", "rank1-ok"], done.stdout
