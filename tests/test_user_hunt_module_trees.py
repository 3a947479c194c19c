"""lossreg.torch modules inside the nn.Module trees torch users hold, and what torch does with those
trees: a traced module saved and loaded as torch.nn's is."""

from __future__ import annotations

import copy
import io
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import lossreg.torch as lt

W3 = [1.0, 2.0, 0.5]


def _criteria() -> dict[str, torch.nn.Module]:
    return {"weighted": lt.CrossEntropyLoss(weight=torch.tensor(W3), label_smoothing=0.1),
            "number_pos_weight": lt.BCEWithLogitsLoss(pos_weight=2.0),  # a _number_like node
            "owned_layer": lt.LinearCrossEntropyLoss(4, 3, bias=True)}


def _arrays(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    if name == "owned_layer":
        return torch.randn(5, 4, generator=g), torch.tensor([0, 1, 2, 1, 0])
    if name == "number_pos_weight":
        return torch.randn(5, 3, generator=g), (torch.rand(5, 3, generator=g) > 0.5).float()
    return torch.randn(5, 3, generator=g), torch.tensor([0, 1, 2, 1, 0])


@pytest.mark.parametrize("name", list(_criteria()))
def test_a_traced_loss_module_pickles_and_torch_saves_as_torch_nns(name: str) -> None:
    """``torch.save(torch.fx.symbolic_trace(torch.nn.CrossEntropyLoss()))`` works: pickle imports each
    function the graph calls by its name. lossreg's traced module called the registry's functional
    form, which its name (``lossreg.losses.classification.cross_entropy``) does not find, and pickling
    failed with torch.package's ObjMismatchError; the graph now calls ``lossreg.torch.cross_entropy``."""
    module = _criteria()[name]
    traced = torch.fx.symbolic_trace(module)
    x, y = _arrays(name)
    want = module(x, y)
    buffer = io.BytesIO()
    torch.save(traced, buffer)
    buffer.seek(0)
    for loaded in (torch.load(buffer, weights_only=False), pickle.loads(pickle.dumps(traced)), copy.deepcopy(traced)):
        torch.testing.assert_close(loaded(x, y), want, rtol=0, atol=0)
        assert [n.op for n in loaded.graph.nodes if n.op.startswith("call")][-1] == "call_function"


def test_a_model_traced_with_a_hooked_criterion_pickles() -> None:
    """A hooked criterion is traced through to its functional form (its hooks run on the trace): the
    model's GraphModule calls that form, and pickles."""
    model = torch.nn.ModuleDict({"net": torch.nn.Linear(4, 3), "loss": lt.CrossEntropyLoss(weight=W3)})
    model["loss"].register_forward_hook(lambda module, args, out: out * 2)

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, x, y):  # type: ignore[no-untyped-def]  # fx records annotations, here strings
            return self.inner["loss"](self.inner["net"](x), y)

    eager = Model()
    traced = torch.fx.symbolic_trace(eager)
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 1, 0])
    torch.testing.assert_close(pickle.loads(pickle.dumps(traced))(x, y), eager(x, y), rtol=0, atol=0)


def test_a_saved_traced_loss_module_loads_in_a_fresh_process(tmp_path: Path) -> None:
    path = tmp_path / "traced.pt"
    module = lt.CrossEntropyLoss(weight=torch.tensor(W3))
    torch.save(torch.fx.symbolic_trace(module), path)
    x, y = _arrays("weighted")
    code = textwrap.dedent(f"""
        import torch
        traced = torch.load({str(path)!r}, weights_only=False)  # no lossreg import: the graph's imports do it
        x = torch.tensor({x.tolist()!r})
        print(float(traced(x, torch.tensor({y.tolist()!r}))))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert float(out.split()[-1]) == pytest.approx(float(module(x, y)), rel=1e-6)


class _Softplus(torch.nn.Module):
    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.softplus(weight)


def test_fx_traces_a_loss_module_with_a_parametrized_weight_as_torch_nns() -> None:
    """``symbolic_trace`` of ``torch.nn.CrossEntropyLoss`` with a parametrized weight traces (fx computes
    the weight on proxies). An fx Proxy is callable, and lossreg refused the weight as a "callable
    weight" with UnsupportedError; it now traces to torch.nn's value, following the weight's updates."""
    x, y = _arrays("weighted")
    ours, theirs = lt.CrossEntropyLoss(weight=torch.tensor(W3)), torch.nn.CrossEntropyLoss(weight=torch.tensor(W3))
    for module in (ours, theirs):
        torch.nn.utils.parametrize.register_parametrization(module, "weight", _Softplus())
    traced = torch.fx.symbolic_trace(ours)
    torch.testing.assert_close(traced(x, y), torch.fx.symbolic_trace(theirs)(x, y), rtol=0, atol=0)
    with torch.no_grad():
        ours.parametrizations.weight.original.mul_(3)
    torch.testing.assert_close(traced(x, y), ours(x, y), rtol=0, atol=0)


@pytest.mark.parametrize("hooked", [False, True])
def test_fx_traces_a_loss_module_whose_weight_is_a_parameter_and_its_gradient_flows(hooked: bool) -> None:
    """An option given as an ``nn.Parameter`` trains (README); fx reads it as a proxy, which was refused
    as a callable option, both for the loss module itself and for a hooked one inside a model."""
    x, y = _arrays("weighted")
    weight = torch.nn.Parameter(torch.tensor(W3))
    criterion = lt.CrossEntropyLoss(weight=weight)
    if hooked:
        criterion.register_forward_hook(lambda module, args, out: 2 * out)
    model = torch.nn.ModuleDict({"loss": criterion})

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, x, y):  # type: ignore[no-untyped-def]  # fx records annotations, here strings
            return self.inner["loss"](x, y)

    traced = torch.fx.symbolic_trace(Model() if hooked else criterion)
    got = traced(x, y)
    want = model["loss"](x, y)  # the eager module's (torch.nn's cross_entropy takes no gradient for its weight)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    (grad,) = torch.autograd.grad(got, weight)
    torch.testing.assert_close(grad, torch.autograd.grad(want, weight)[0], rtol=0, atol=0)


def test_a_data_parallel_replica_of_the_owned_layer_module_runs_its_own_layer() -> None:
    """``nn.DataParallel`` replicates a module per GPU by ``_replicate_for_data_parallel`` (a copy of its
    ``__dict__``) and gives each replica its copy of the layer. The owned form's ``forward``, bound to
    the module in that ``__dict__``, ran the original's layer (device 0's) in every replica; torch.nn's
    ``LinearCrossEntropyLoss`` runs the replica's. Simulated here on the CPU, as replicate does it."""
    x, y = _arrays("owned_layer")
    for cls in (torch.nn.LinearCrossEntropyLoss, lt.LinearCrossEntropyLoss):
        replica = cls(4, 3, bias=True)._replicate_for_data_parallel()
        layer = torch.nn.Linear(4, 3)
        replica._modules["linear"] = layer  # what replicate does, with the layer's copy on the replica's device
        torch.testing.assert_close(replica(x, y), torch.nn.functional.cross_entropy(layer(x), y))


class _Twice(torch.nn.Module):
    def forward(self, tensor: torch.Tensor) -> torch.Tensor:
        return 2 * tensor


@pytest.mark.parametrize("parametrized", ["weight", "bias"])
def test_fx_trace_of_the_owned_layer_module_traces_a_parametrized_layer_as_torch_nns(parametrized: str) -> None:
    """``symbolic_trace(torch.nn.LinearCrossEntropyLoss(...))`` with a parametrized layer (weight_norm,
    spectral_norm, parametrize) traces the parametrization: the graph's parameters are its originals,
    which take the gradient. lossreg's graph read ``linear.weight`` as one get_attr, a copy of the
    computed weight (no gradient, no updates), and left a parametrized bias out (another value)."""
    x, y = _arrays("owned_layer")
    traced = {}
    for cls in (torch.nn.LinearCrossEntropyLoss, lt.LinearCrossEntropyLoss):
        torch.manual_seed(0)
        module = cls(4, 3, bias=True)
        torch.nn.utils.parametrize.register_parametrization(module.linear, parametrized, _Twice())
        graph = torch.fx.symbolic_trace(module)
        value = graph(x, y)
        torch.testing.assert_close(value, module(x, y))
        traced[cls.__module__] = (value, dict(zip([n for n, _ in graph.named_parameters()],
                                                  torch.autograd.grad(value, list(graph.parameters())))))
    (ours, our_grads), (theirs, their_grads) = traced["lossreg.torch"], traced["torch.nn.modules.loss"]
    torch.testing.assert_close(ours, theirs)
    assert our_grads.keys() == their_grads.keys()
    for name, grad in their_grads.items():
        torch.testing.assert_close(our_grads[name], grad)
